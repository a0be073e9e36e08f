//! Starting a sandbox command so that nothing the runbook controls runs before the
//! sandbox's walls are up, or as root.
//!
//! The runbook's variables are data the sandbox controls: a variable named `PATH`,
//! `LD_PRELOAD` or `POSIXLY_CORRECT` changes what a program runs, what it loads and how a
//! shell starts. So when the executor is root and the command must be contained (a
//! cgroup, a network namespace, another user), the command starts as a chain in which
//! no link sees the runbook's environment until the last one:
//!
//! 1. `/bin/sh` as root, with an empty environment, writes its own pid into the
//!    command's cgroup (`JOIN`): from here on, everything is inside;
//! 2. `nsenter --net=…` as root enters the sandbox's network namespace, when isolated;
//! 3. `setpriv` drops to the sandbox's user;
//! 4. the loader, a system `bash` as that user, reads the command's environment from
//!    its stdin, changes to the working directory, and `exec`s the sandbox's shell with
//!    exactly that environment.
//!
//! Every program of the chain is named by an absolute path the executor resolved in the
//! system's own directories, never through a `PATH` the runbook set. The environment
//! goes through a pipe, never through argv (which every user can read in `/proc`).
//! Without root there is nothing to enter or drop: the shell starts directly.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tokio::process::Command;

use crate::{ExecError, Result};

/// Where root looks for the programs of the chain: the system's own directories only.
const SYSTEM_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The first link, as root: join the cgroup whose `cgroup.procs` is `$0`, then become
/// the rest of the chain. Nothing later in the chain can fork outside the cgroup.
const JOIN: &str = r#"echo $$ > "$0" || exit 125; exec "$@""#;

/// The last link, as the sandbox's user: the environment arrives on stdin as
/// NUL-terminated `NAME=VALUE` records ended by an empty one (without that end, the
/// executor died: nothing runs). Then into the working directory (`$0`) and `exec` the
/// shell. Afterwards stdin is at its end, as `/dev/null` would be.
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
    let privileged = walls.leaf.is_some() || walls.netns.is_some();
    if !privileged {
        // Nothing to enter: the shell itself, with std dropping to the user (if any) in
        // the child before `exec`.
        let mut c = Command::new(shell);
        c.args(args).current_dir(cwd).env_clear().envs(env);
        if let Some(u) = walls.user {
            c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        return Ok(Launch {
            command: c,
            stdin: None,
        });
    }
    let tools = tools()?;
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(leaf) = walls.leaf {
        argv.extend([
            tools.sh.clone().into(),
            "-c".into(),
            JOIN.into(),
            leaf.join("cgroup.procs").into(),
        ]);
    }
    if let Some(ns) = walls.netns {
        argv.extend([
            need(&tools.nsenter, "nsenter", "util-linux")?.into(),
            format!("--net=/run/netns/{ns}").into(),
            "--".into(),
        ]);
    }
    if let Some(u) = walls.user {
        argv.extend([
            need(&tools.setpriv, "setpriv", "util-linux")?.into(),
            format!("--reuid={}", u.uid).into(),
            format!("--regid={}", u.gid).into(),
            "--clear-groups".into(),
            "--".into(),
        ]);
    }
    argv.extend([
        need(&tools.bash, "bash", "bash")?.into(),
        "--noprofile".into(),
        "--norc".into(),
        "-c".into(),
        LOADER.into(),
        cwd.into(),
        shell.into(),
    ]);
    argv.extend(args.iter().cloned());
    let mut c = Command::new(&argv[0]);
    // Root's links run in `/` with nothing of the runbook's: the loader enters `cwd` as
    // the user, so root never follows a path the sandbox controls.
    c.args(&argv[1..]).current_dir("/").env_clear();
    Ok(Launch {
        command: c,
        stdin: Some(records(env)?),
    })
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
    sh: PathBuf,
    bash: Option<PathBuf>,
    nsenter: Option<PathBuf>,
    setpriv: Option<PathBuf>,
}

fn tools() -> Result<&'static Tools> {
    static TOOLS: OnceLock<Option<Tools>> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            Some(Tools {
                sh: system_program("sh")?,
                bash: system_program("bash"),
                nsenter: system_program("nsenter"),
                setpriv: system_program("setpriv"),
            })
        })
        .as_ref()
        .ok_or_else(|| ExecError::Provider("no `sh` in /usr/bin or /bin".into()))
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
