//! Starting a sandbox command so that nothing the runbook controls runs before the
//! sandbox's walls are up, or as root.
//!
//! The runbook's variables are data the sandbox controls: a variable named `PATH`,
//! `LD_PRELOAD` or `POSIXLY_CORRECT` changes what a program runs, what it loads and how a
//! shell starts. So when the executor is root and the command must be contained (a
//! cgroup, a network namespace, another user), no program before the command's own shell
//! sees the runbook's environment:
//!
//! 1. with network isolation, `nsenter --net=…` as root enters the namespace and
//!    `setpriv` drops to the sandbox's user (otherwise std drops to it before `exec`);
//! 2. the loader, `bash` as that user with an **empty** environment, waits for its
//!    input on stdin; the executor first moves it into the command's cgroup, then sends
//!    the command's environment as NUL-terminated `NAME=VALUE` records ended by an
//!    empty one (without that end, the executor died: nothing runs);
//! 3. the loader enters the working directory and `exec`s the sandbox's shell with
//!    exactly that environment, inside the cgroup; or, when that shell is the loader's
//!    own bash and no variable acts at process start, exports the environment and runs
//!    the command itself, as `bash -c` would ([`LOADER_EVAL`]): one `exec` per command.
//!
//! While it waits outside the cgroup, the loader must not be something the sandbox's
//! other processes (same uid) can trace and make fork: it is a root-owned copy of the
//! system's bash that the sandbox's user may execute but not read ([`private_loader`]),
//! and the kernel makes a process running an unreadable program non-dumpable, which
//! forbids `ptrace` by that user. The shell it then `exec`s is dumpable again, as usual,
//! but already inside.
//!
//! Every program is named by an absolute path the executor resolved itself (in the
//! system's own directories, or the provider's `PATH` for the shell), never through a
//! `PATH` the runbook set. The environment goes through a pipe, never through argv (which
//! every user can read in `/proc`). Without root there is nothing to enter or drop: the
//! shell starts directly.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokio::process::Command;

use crate::{ExecError, Result};

/// Where root looks for the programs of the chain: the system's own directories only.
const SYSTEM_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The loader, as the sandbox's user: the environment arrives on stdin as NUL-terminated
/// `NAME=VALUE` records ended by an empty one (without that end, the executor died:
/// nothing runs). Then into the working directory (`$0`) and `exec` the shell. Afterwards
/// stdin is at its end, as `/dev/null` would be.
const LOADER: &str = r#"__rb_env=() __rb_go=
while IFS= read -r -d '' __rb_kv; do
  if [ -z "$__rb_kv" ]; then __rb_go=1; break; fi
  __rb_env+=("$__rb_kv")
done
[ -n "$__rb_go" ] || exit 125
cd -- "$0" || exit 125
unset __rb_kv __rb_go PWD OLDPWD SHLVL
if [ "${#__rb_env[@]}" -gt 0 ]; then export -- "${__rb_env[@]}" || exit 125; fi
exec "$@""#;

/// The loader when the command's shell is the loader's own bash: the same wait and the
/// same records, then the command runs in this very process, as `bash -c` would run it
/// (one `exec` per command instead of two). `$0` and the positional parameters, the
/// options before `-c` (`set -e -o pipefail`), `BASH_EXECUTION_STRING`, `$_`, `PWD`,
/// `OLDPWD`, `SHLVL` and line numbers are those of a fresh `bash -c`; the environment is
/// exported before the command, so its children see exactly it. What differs, and why a
/// variable that acts when a process starts takes the two-`exec` path ([`acts_at_start`]):
/// the shell process itself was started with an empty environment, so variables read
/// only at startup (`BASH_ENV`, `POSIXLY_CORRECT`, `LD_PRELOAD`, …) would not act on it.
/// One line: an `eval` on line 1 numbers the command's lines from 1, as `-c` does.
const LOADER_EVAL: &str = "__rb_env=() __rb_go=; \
while IFS= read -r -d '' __rb_kv; do \
if [ -z \"$__rb_kv\" ]; then __rb_go=1; break; fi; __rb_env+=(\"$__rb_kv\"); done; \
[ -n \"$__rb_go\" ] || exit 125; \
cd -P -- \"$0\" || exit 125; \
unset __rb_kv __rb_go OLDPWD; declare -x OLDPWD; \
if [ \"${#__rb_env[@]}\" -gt 0 ]; then export -- \"${__rb_env[@]}\" || exit 125; fi; \
if [ \"${BASH_VERSINFO[0]}\" -lt 5 ]; then unset __rb_env PWD OLDPWD SHLVL; exec \"$@\"; fi; \
__rb_env=(\"$1\"); shift; \
while [ \"$#\" -gt 0 ] && [ \"$1\" != -c ]; do __rb_env+=(\"$1\"); shift; done; \
[ \"$#\" -ge 2 ] || exit 125; \
BASH_EXECUTION_STRING=$2; shift 2; \
if [ \"$#\" -gt 0 ]; then BASH_ARGV0=$1; shift; else BASH_ARGV0=${__rb_env[0]}; fi; \
set \"${__rb_env[@]:1}\" -- \"$@\"; unset __rb_env; : \"$BASH\"; \
eval \"$BASH_EXECUTION_STRING\"";

/// Names bash will not take from the loader (read-only or its own): a command cannot
/// be given them.
const BASH_OWN: &[&str] = &[
    "BASHOPTS",
    "BASH_VERSINFO",
    "EUID",
    "PPID",
    "SHELLOPTS",
    "UID",
];

/// What a command needs to be contained.
pub(super) struct Walls<'a> {
    /// The cgroup's directory the command must start in.
    pub leaf: Option<&'a Path>,
    /// The network namespace (under `/run/netns`) it runs in.
    pub netns: Option<&'a str>,
    /// The user it runs as, when not the executor's own.
    pub user: Option<&'a nix::unistd::User>,
    /// The loader's bash (see [`private_loader`]), when there is one.
    pub loader: Option<&'a Path>,
}

/// A command ready to spawn, and what must be written to its stdin (then closed).
pub(super) struct Launch {
    /// The process to start.
    pub command: Command,
    /// The environment records for the loader, when there is one.
    pub stdin: Option<Vec<u8>>,
}

/// The command that runs `shell` with `args` in `cwd` with exactly `env`, behind
/// `walls`. `shell` must be an absolute path ([`resolve`]).
pub(super) fn launch(
    shell: &Path,
    args: &[OsString],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    walls: &Walls<'_>,
) -> Result<Launch> {
    if walls.leaf.is_none() && walls.netns.is_none() && walls.user.is_none() {
        // Nothing to enter or drop: the shell itself.
        let mut c = Command::new(shell);
        c.args(args).current_dir(cwd).env_clear().envs(env);
        return Ok(Launch {
            command: c,
            stdin: None,
        });
    }
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(ns) = walls.netns {
        let tools = tools()?;
        argv.extend([
            need(&tools.nsenter, "nsenter", "util-linux")?.into(),
            format!("--net=/run/netns/{ns}").into(),
            "--".into(),
        ]);
        if let Some(u) = walls.user {
            argv.extend([
                need(&tools.setpriv, "setpriv", "util-linux")?.into(),
                format!("--reuid={}", u.uid).into(),
                format!("--regid={}", u.gid).into(),
                "--clear-groups".into(),
                "--".into(),
            ]);
        }
    }
    let loader = walls.loader.ok_or_else(|| {
        ExecError::Provider(format!(
            "a contained command needs `bash` in {} (install bash)",
            SYSTEM_DIRS.join(", ")
        ))
    })?;
    // Without a namespace to enter, std starts the loader itself and can name it as the
    // shell (`argv[0]`, hence `$BASH` and the prefix of bash's own messages).
    let in_process = walls.netns.is_none() && runs_in_loader(shell, args, env);
    argv.extend([
        loader.into(),
        "--noprofile".into(),
        "--norc".into(),
        "-c".into(),
        if in_process { LOADER_EVAL } else { LOADER }.into(),
        cwd.into(),
        shell.into(),
    ]);
    argv.extend(args.iter().cloned());
    let mut c = Command::new(&argv[0]);
    if in_process {
        std::os::unix::process::CommandExt::arg0(c.as_std_mut(), shell);
    }
    // The loader enters `cwd` as the user: root never follows a path the sandbox controls.
    c.args(&argv[1..]).current_dir("/").env_clear();
    if walls.netns.is_none()
        && let Some(u) = walls.user
    {
        // std drops the privileges (and the supplementary groups) in the child.
        c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
    }
    Ok(Launch {
        command: c,
        stdin: Some(records(env)?),
    })
}

/// Whether the command can run in the loader's own process ([`LOADER_EVAL`]): its shell
/// is the loader's bash (the same file), invoked as `[options] -c COMMAND [ARG0 ARGS…]`,
/// and no variable acts when a process starts ([`acts_at_start`]).
fn runs_in_loader(shell: &Path, args: &[OsString], env: &BTreeMap<String, String>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(c) = args.iter().position(|a| a == "-c") else {
        return false;
    };
    let options_only = args[..c]
        .iter()
        .enumerate()
        .all(|(i, a)| a.as_encoded_bytes().starts_with(b"-") || (i > 0 && args[i - 1] == "-o"));
    if c + 1 >= args.len() || !options_only || env.keys().any(|k| acts_at_start(k)) {
        return false;
    }
    // The loader is always the system's bash or its copy ([`private_loader`],
    // [`system_loader`]): the shell must be that same bash.
    let system = tools().ok().and_then(|t| t.bash.as_deref());
    system.is_some_and(
        |bash| match (std::fs::metadata(shell), std::fs::metadata(bash)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        },
    )
}

/// Variables that act when a process starts (read by bash or the C library before any
/// command runs, or kept by bash for itself): with one of them, the command's shell is a
/// process of its own, started with the environment (two `exec`s).
fn acts_at_start(name: &str) -> bool {
    const PREFIXES: &[&str] = &["BASH", "LD_", "MALLOC_", "GLIBC_", "GCONV_"];
    const NAMES: &[&str] = &[
        "_",
        "ENV",
        "POSIXLY_CORRECT",
        "SHLVL",
        "PWD",
        "OLDPWD",
        "IFS",
        "LOCPATH",
        "NLSPATH",
        "LANGUAGE",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "RES_OPTIONS",
        "TZDIR",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// The environment as the loader reads it.
fn records(env: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (name, value) in env {
        if !is_identifier(name) || BASH_OWN.contains(&name.as_str()) || name.starts_with("__rb_") {
            return Err(ExecError::Usage(format!(
                "the environment variable `{name}` cannot be given to a command: \
                 its name is not a shell identifier or bash reserves it; rename it"
            )));
        }
        if value.contains('\0') {
            return Err(ExecError::Usage(format!(
                "the value of `{name}` contains a NUL byte, which no environment can hold"
            )));
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out.push(0);
    Ok(out)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The programs of the chain, found once in [`SYSTEM_DIRS`].
struct Tools {
    bash: Option<PathBuf>,
    nsenter: Option<PathBuf>,
    setpriv: Option<PathBuf>,
}

fn tools() -> Result<&'static Tools> {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    Ok(TOOLS.get_or_init(|| Tools {
        bash: system_program("bash"),
        nsenter: system_program("nsenter"),
        setpriv: system_program("setpriv"),
    }))
}

/// The loader for sandboxes whose commands run as another user: a copy of the system's
/// bash in `dir` (root's, which sandboxes cannot change), mode 0711, so that the process
/// running it is not dumpable and no process of the sandbox's user can trace it while it
/// waits outside the cgroup. The copy follows the system's bash (size and modification
/// time). When it cannot be made, the system's bash, with that window open.
pub(super) fn private_loader(dir: &Path) -> Result<PathBuf> {
    let bash = need(&tools()?.bash, "bash", "bash")?;
    Ok(copy_unreadable(&bash, &dir.join(LOADER_COPY)).unwrap_or(bash))
}

/// The name of the loader's copy of bash in the state root.
const LOADER_COPY: &str = ".loader-bash";

/// The loader when nobody else's processes could trace it: the system's bash.
pub(super) fn system_loader() -> Result<PathBuf> {
    need(&tools()?.bash, "bash", "bash")
}

fn copy_unreadable(from: &Path, to: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let src = std::fs::metadata(from).ok()?;
    if let Ok(m) = std::fs::symlink_metadata(to)
        && m.is_file()
        && m.uid() == 0
        && m.mode() & 0o7777 == 0o711
        && m.len() == src.len()
        && m.modified().ok() == src.modified().ok()
    {
        return Some(to.to_owned());
    }
    // Assembled under a name of its own, then renamed: a concurrent provisioning sees
    // the old copy or the new one, never half of one.
    let tmp = to.with_extension(super::random_suffix());
    let made = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&tmp)?;
        std::io::copy(&mut std::fs::File::open(from)?, &mut out)?;
        out.set_permissions(std::fs::Permissions::from_mode(0o711))?;
        out.set_modified(src.modified()?)?;
        std::fs::rename(&tmp, to)
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return None;
    }
    Some(to.to_owned())
}

/// A program of the system's own (in `/usr/sbin`, `/usr/bin`, `/sbin` or `/bin`).
pub(super) fn system_program(name: &str) -> Option<PathBuf> {
    find_in(name, SYSTEM_DIRS.iter().map(Path::new))
}

fn need(tool: &Option<PathBuf>, name: &str, package: &str) -> Result<PathBuf> {
    tool.clone().ok_or_else(|| {
        ExecError::Provider(format!(
            "a contained command needs `{name}` in {} (install {package})",
            SYSTEM_DIRS.join(", ")
        ))
    })
}

/// `program` as an absolute path: itself when it names a path, else the first
/// executable of that name in `path` (the provider's, never the runbook's).
pub(super) fn resolve(program: &str, path: &str) -> Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    find_in(program, std::env::split_paths(path))
        .ok_or_else(|| ExecError::Provider(format!("`{program}` is not in the PATH `{path}`")))
}

fn find_in<P: AsRef<Path>>(name: &str, dirs: impl IntoIterator<Item = P>) -> Option<PathBuf> {
    dirs.into_iter()
        .map(|d| d.as_ref().join(name))
        .filter(|p| p.is_absolute())
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_end_with_an_empty_one_and_refuse_what_bash_reserves() {
        let env = BTreeMap::from([("A".to_owned(), "1\n2".to_owned())]);
        assert_eq!(records(&env).unwrap(), b"A=1\n2\0\0");
        for bad in ["UID", "SHELLOPTS", "1X", "A-B", "", "__rb_go"] {
            let env = BTreeMap::from([(bad.to_owned(), String::new())]);
            assert!(records(&env).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_ignores_relative_path_entries() {
        assert!(resolve("sh", ".:relative").is_err());
        assert!(resolve("sh", "/usr/bin:/bin").unwrap().is_absolute());
    }
}
