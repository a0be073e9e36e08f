//! The local provider: a directory per sandbox on this machine.
//!
//! Each sandbox is `<state root>/local/<id>/` with `work/` (the working directory,
//! `HOME`), `tmp/` (`TMPDIR`) and `control/` (the executor's log and state, out of the
//! commands' reach). Commands run through `bash -c` in a clean environment (only
//! `PATH`, the locale, the runbook's variables and what the caller adds), each in its
//! own process group. When this process runs as root, commands run as an unprivileged
//! user (`nobody` by default). Teardown kills every process the sandbox started,
//! daemons included, then removes the directory.

mod process;

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use runbook_core::Lifetime;
use runbook_core::report::SandboxDescription;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::engine::state;
use crate::{
    CommandSpec, ExecError, Exit, OutputSink, Provider, ProvisionRequest, Result, Sandbox,
    SandboxInfo,
};

/// The environment variable that marks every process of a sandbox.
pub const MARKER_VAR: &str = "RUNBOOK_SANDBOX_ID";

/// Who sandbox commands run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// The user this process runs as (even root).
    CurrentUser,
    /// A named unprivileged user.
    User(String),
}

/// Provisions sandboxes as directories on this machine.
///
/// ```no_run
/// # async fn demo() -> runbook_exec::Result<()> {
/// use runbook_exec::{LocalProvider, RunAs};
/// let provider = LocalProvider::new()?          // state root: $RUNBOOK_STATE_DIR, or the default
///     .shell("bash")                             // default
///     .run_as(RunAs::User("nobody".into()))      // default when running as root
///     .env("http_proxy", "");                    // added to every command
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LocalProvider {
    root: PathBuf,
    shell: String,
    run_as: RunAs,
    path: String,
    env: BTreeMap<String, String>,
    isolate_network: bool,
}

impl LocalProvider {
    /// A provider whose state root is `$RUNBOOK_STATE_DIR`, or by default
    /// `/var/lib/runbook` when running as root (so an unprivileged user can reach it) and
    /// `$XDG_STATE_HOME/runbook` (`~/.local/state/runbook`) otherwise.
    pub fn new() -> Result<Self> {
        Ok(Self::with_root(default_root()?))
    }

    /// A provider with its sandboxes under `root`.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        let run_as = if nix::unistd::geteuid().is_root() {
            RunAs::User("nobody".into())
        } else {
            RunAs::CurrentUser
        };
        LocalProvider {
            root: root.into(),
            shell: "bash".into(),
            run_as,
            path: std::env::var("PATH")
                .unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()),
            env: BTreeMap::new(),
            isolate_network: false,
        }
    }

    /// The shell that runs commands with `-c` (default `bash`).
    pub fn shell(mut self, shell: impl Into<String>) -> Self {
        self.shell = shell.into();
        self
    }

    /// Who commands run as. By default `nobody` when this process is root, else the
    /// current user. Running sandbox commands as root must be asked for explicitly.
    pub fn run_as(mut self, run_as: RunAs) -> Self {
        self.run_as = run_as;
        self
    }

    /// The `PATH` commands see (default: this process's `PATH`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Adds an environment variable to every command.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Runs every command of new sandboxes in a network namespace of their own, with
    /// only a loopback interface: a runbook under test provably cannot reach production
    /// (or anything else off the sandbox). Daemons a step starts stay reachable on the
    /// sandbox's own `127.0.0.1`. Needs root, `ip` (iproute2), `nsenter` and `setpriv`
    /// (util-linux). By default, this is disabled.
    pub fn isolate_network(mut self, yes: bool) -> Self {
        self.isolate_network = yes;
        self
    }

    /// The live processes of a sandbox (those marked with its id or inside its directory).
    pub fn processes(&self, id: &str) -> Vec<i32> {
        process::sandbox_processes(
            &format!("{MARKER_VAR}={id}"),
            &self.sandboxes().join(id),
            std::process::id(),
        )
    }

    /// The directory of a sandbox.
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.sandboxes().join(id)
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn sandboxes(&self) -> PathBuf {
        self.root.join("local")
    }

    fn user(&self) -> Result<Option<nix::unistd::User>> {
        match &self.run_as {
            RunAs::CurrentUser => Ok(None),
            RunAs::User(name) => nix::unistd::User::from_name(name)
                .map_err(|e| ExecError::Provider(format!("cannot look up user `{name}`: {e}")))?
                .map(Some)
                .ok_or_else(|| {
                    ExecError::Provider(format!(
                        "user `{name}` does not exist: create it, or choose another with `RunAs::User`"
                    ))
                }),
        }
    }

    fn open(&self, id: &str, meta: Meta) -> Result<LocalSandbox> {
        let user = self.user()?;
        Ok(LocalSandbox {
            id: id.to_owned(),
            dir: self.sandboxes().join(id),
            control: self.sandboxes().join(id).join("control"),
            shell: self.shell.clone(),
            path: self.path.clone(),
            env: self.env.clone(),
            user,
            meta,
            alive: true,
            description: OnceLock::new(),
        })
    }
}

fn default_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("RUNBOOK_STATE_DIR") {
        return Ok(dir.into());
    }
    if nix::unistd::geteuid().is_root() {
        return Ok("/var/lib/runbook".into());
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return Ok(PathBuf::from(dir).join("runbook"));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/state/runbook"))
        .ok_or_else(|| {
            ExecError::Provider(
                "neither RUNBOOK_STATE_DIR nor HOME is set: set RUNBOOK_STATE_DIR".into(),
            )
        })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    runbook: String,
    lifetime: Lifetime,
    created_unix: u64,
    /// The network namespace the sandbox's commands run in, when isolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
}

/// Runs a setup command (as this process's user) and says clearly what failed.
fn setup(program: &str, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| {
            ExecError::Provider(format!(
                "network isolation needs `{program}` (install iproute2 / util-linux): {e}"
            ))
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ExecError::Provider(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Creates (or re-creates after a reboot) the sandbox's network namespace with loopback up.
fn ensure_netns(name: &str) -> Result<()> {
    if Path::new("/run/netns").join(name).exists() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(ExecError::Provider(
            "network isolation needs root (to create a network namespace); run without it, or as root".into(),
        ));
    }
    setup("ip", &["netns", "add", name])?;
    setup("ip", &["-n", name, "link", "set", "lo", "up"])
}

fn delete_netns(name: &str) {
    if Path::new("/run/netns").join(name).exists() {
        let _ = setup("ip", &["netns", "delete", name]);
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir_all(path).map_err(ExecError::io("create the directory", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(ExecError::io("set permissions of", path))
}

fn give(path: &Path, user: Option<&nix::unistd::User>) -> Result<()> {
    if let Some(u) = user {
        chown(path, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
            .map_err(ExecError::io("chown", path))?;
    }
    Ok(())
}

/// Says which ancestor of `dir` an unprivileged user cannot enter, if any.
fn unreachable_ancestor(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .filter(|a| a.exists())
        .find(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(Path::to_owned)
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Box<dyn Sandbox>> {
        Ok(Box::new(self.provision_local(request)?))
    }

    async fn resume(&self, id: &str) -> Result<Box<dyn Sandbox>> {
        Ok(Box::new(self.resume_local(id)?))
    }

    async fn list(&self) -> Result<Vec<SandboxInfo>> {
        self.list_local()
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        self.destroy_local(id)
    }

    /// Ephemeral and session sandboxes whose run died without tearing them down (a
    /// SIGKILL, a power cut): nobody holds their lock, so they are destroyed.
    async fn reap(&self) -> Result<Vec<String>> {
        let mut reaped = Vec::new();
        for s in self.list_local()? {
            if s.lifetime == Lifetime::Persistent {
                continue;
            }
            match self.destroy_local(&s.id) {
                Ok(()) => reaped.push(s.id),
                Err(ExecError::Locked { .. } | ExecError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reaped)
    }
}

impl LocalProvider {
    /// Provisions a local sandbox directory (also the command side of other providers).
    pub(crate) fn provision_local(&self, request: &ProvisionRequest) -> Result<LocalSandbox> {
        let user = self.user()?;
        mkdir(&self.sandboxes(), 0o755)?;
        if let (Some(u), Some(blocked)) = (&user, unreachable_ancestor(&self.sandboxes())) {
            return Err(ExecError::Provider(format!(
                "sandbox commands run as `{}`, who cannot enter `{}`: choose a state root it can reach \
                 (RUNBOOK_STATE_DIR=/var/lib/runbook, or a directory under /tmp)",
                u.name,
                blocked.display()
            )));
        }
        let id = format!("{}-{}", request.runbook, random_suffix());
        let dir = self.sandboxes().join(&id);
        mkdir(&dir, 0o755)?;
        mkdir(&dir.join("control"), 0o700)?;
        for sub in ["work", "tmp"] {
            mkdir(&dir.join(sub), 0o700)?;
            give(&dir.join(sub), user.as_ref())?;
        }
        let netns = self
            .isolate_network
            .then(|| format!("runbook-{}", random_suffix()));
        if let Some(ns) = &netns
            && let Err(e) = ensure_netns(ns)
        {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let meta = Meta {
            runbook: request.runbook.clone(),
            lifetime: request.lifetime,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            netns,
        };
        let meta_path = dir.join("meta.json");
        std::fs::write(
            &meta_path,
            serde_json::to_vec_pretty(&meta).unwrap_or_default(),
        )
        .map_err(ExecError::io("write", &meta_path))?;
        self.open(&id, meta)
    }

    pub(crate) fn resume_local(&self, id: &str) -> Result<LocalSandbox> {
        let meta = read_meta(&self.sandboxes().join(id))
            .ok_or_else(|| ExecError::NotFound(id.to_owned()))?;
        if meta.lifetime != Lifetime::Persistent {
            return Err(ExecError::Usage(format!(
                "sandbox `{id}` is {}, not persistent: only persistent sandboxes can be resumed",
                meta.lifetime
            )));
        }
        if let Some(ns) = &meta.netns {
            ensure_netns(ns)?;
        }
        self.open(id, meta)
    }

    pub(crate) fn list_local(&self) -> Result<Vec<SandboxInfo>> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.sandboxes()) else {
            return Ok(out);
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(meta) = read_meta(&dir) else {
                continue;
            };
            let last_step = state::load(&dir.join("control"))
                .ok()
                .flatten()
                .and_then(|s| s.completed.last().cloned());
            out.push(SandboxInfo {
                id: entry.file_name().to_string_lossy().into_owned(),
                provider: "local".into(),
                runbook: meta.runbook,
                lifetime: meta.lifetime,
                created_unix: meta.created_unix,
                last_step,
            });
        }
        out.sort_by(|a, b| {
            a.created_unix
                .cmp(&b.created_unix)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    pub(crate) fn destroy_local(&self, id: &str) -> Result<()> {
        let dir = self.sandboxes().join(id);
        if id.is_empty() || id.contains('/') || !dir.join("meta.json").exists() {
            return Err(ExecError::NotFound(id.to_owned()));
        }
        let _lock = state::SandboxLock::acquire(&dir.join("control"), id)?;
        let netns = read_meta(&dir).and_then(|m| m.netns);
        destroy_dir(id, &dir, netns.as_deref())
    }
}

fn read_meta(dir: &Path) -> Option<Meta> {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()
}

fn destroy_dir(id: &str, dir: &Path, netns: Option<&str>) -> Result<()> {
    process::kill_sandbox_processes(&format!("{MARKER_VAR}={id}"), dir, Duration::from_secs(10));
    if let Some(ns) = netns {
        delete_netns(ns);
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ExecError::io("remove the sandbox", dir)(e)),
    }
}

/// A sandbox directory on this machine. See the [module docs](self).
#[derive(Debug)]
pub struct LocalSandbox {
    id: String,
    dir: PathBuf,
    control: PathBuf,
    shell: String,
    path: String,
    env: BTreeMap<String, String>,
    user: Option<nix::unistd::User>,
    meta: Meta,
    /// Cleared when torn down or kept: dropping it then does nothing.
    alive: bool,
    description: OnceLock<SandboxDescription>,
}

impl LocalSandbox {
    /// Adds an environment variable to every command of this sandbox (it wins over the
    /// runbook's values).
    #[cfg_attr(not(feature = "kube"), allow(dead_code))] // used by the kube provider
    pub(crate) fn set_env(&mut self, name: &str, value: &str) {
        self.env.insert(name.to_owned(), value.to_owned());
    }

    /// Whether dropping it would still destroy it (not torn down, not kept).
    #[cfg_attr(not(feature = "kube"), allow(dead_code))] // used by the kube provider
    pub(crate) fn is_alive(&self) -> bool {
        self.alive
    }

    /// The sandbox's lifetime.
    #[cfg_attr(not(feature = "kube"), allow(dead_code))] // used by the kube provider
    pub(crate) fn lifetime(&self) -> Lifetime {
        self.meta.lifetime
    }

    /// The runbook the sandbox was made for.
    #[cfg_attr(not(feature = "kube"), allow(dead_code))] // used by the kube provider
    pub(crate) fn runbook_name(&self) -> &str {
        &self.meta.runbook
    }

    /// The working directory of commands.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    fn command(&self, spec: &CommandSpec) -> Result<Command> {
        let mut cwd = self.work_dir();
        if let Some(w) = &spec.workdir {
            cwd = cwd.join(relative(w)?);
        }
        let mut c = match &self.meta.netns {
            // Enter the sandbox's network namespace as root, then drop to the sandbox user.
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("--");
                if let Some(u) = &self.user {
                    c.arg("setpriv")
                        .arg(format!("--reuid={}", u.uid))
                        .arg(format!("--regid={}", u.gid))
                        .arg("--clear-groups")
                        .arg("--");
                }
                c.arg(&self.shell);
                c
            }
            None => {
                let mut c = Command::new(&self.shell);
                if let Some(u) = &self.user {
                    // std also drops the supplementary groups when it changes the uid.
                    c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
                }
                c
            }
        };
        c.arg("-c").arg(&spec.command).current_dir(cwd).env_clear();
        let home = self.work_dir();
        c.env("PATH", &self.path)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", &home)
            .env("TMPDIR", self.dir.join("tmp"))
            .env(MARKER_VAR, &self.id);
        if let Some(u) = &self.user {
            c.env("USER", &u.name).env("LOGNAME", &u.name);
        }
        c.envs(&spec.env).envs(&self.env);
        Ok(c)
    }
}

/// A relative path that stays inside its root.
fn relative(path: &str) -> Result<&Path> {
    let p = Path::new(path);
    if p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(p)
    } else {
        Err(ExecError::Usage(format!(
            "`{path}` must be a relative path inside the sandbox"
        )))
    }
}

#[async_trait]
impl Sandbox for LocalSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    fn control_dir(&self) -> &Path {
        &self.control
    }

    async fn run(&self, spec: &CommandSpec, out: &mut dyn OutputSink) -> Result<Exit> {
        let command = self.command(spec)?;
        process::run(command, spec.timeout, out).await
    }

    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<()> {
        let rel = relative(path)?;
        let target = self.work_dir().join(rel);
        // Create parents one by one so each can be handed to the sandbox user.
        let mut dir = self.work_dir();
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                dir.push(c);
                if !dir.exists() {
                    std::fs::create_dir(&dir)
                        .map_err(ExecError::io("create the directory", &dir))?;
                    give(&dir, self.user.as_ref())?;
                }
            }
        }
        tokio::fs::write(&target, contents)
            .await
            .map_err(ExecError::io("write", &target))?;
        give(&target, self.user.as_ref())
    }

    async fn describe(&self) -> Result<SandboxDescription> {
        if let Some(d) = self.description.get() {
            return Ok(d.clone());
        }
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let kernel = read("/proc/sys/kernel/osrelease");
        let distro = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|s| s.trim_matches('"').to_owned())
            .unwrap_or_default();
        let mut versions = BTreeMap::new();
        versions.insert("kernel".to_owned(), kernel.clone());
        let shell_version = Command::new(&self.shell)
            .arg("-c")
            .arg("echo \"${BASH_VERSION:-unknown}\"")
            .env_clear()
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        versions.insert(self.shell.clone(), shell_version);
        let description = SandboxDescription {
            provider: "local".into(),
            id: self.id.clone(),
            lifetime: Some(self.meta.lifetime),
            os: format!("{distro} (Linux {kernel})").trim().to_owned(),
            nodes: 1,
            network_isolated: self.meta.netns.is_some(),
            user: match &self.user {
                Some(u) => u.name.clone(),
                None => nix::unistd::User::from_uid(nix::unistd::geteuid())
                    .ok()
                    .flatten()
                    .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name),
            },
            versions,
        };
        let _ = self.description.set(description.clone());
        Ok(description)
    }

    async fn teardown(&mut self) -> Result<()> {
        self.alive = false;
        let (id, dir, netns) = (self.id.clone(), self.dir.clone(), self.meta.netns.clone());
        tokio::task::spawn_blocking(move || destroy_dir(&id, &dir, netns.as_deref()))
            .await
            .map_err(|e| ExecError::Provider(format!("teardown task failed: {e}")))?
    }

    fn keep(&mut self) {
        self.alive = false;
    }
}

impl Drop for LocalSandbox {
    fn drop(&mut self) {
        // An ephemeral or session sandbox dropped without teardown (an error, a panic, a
        // cancelled future) is destroyed here, synchronously.
        if self.alive && self.meta.lifetime != Lifetime::Persistent {
            let _ = destroy_dir(&self.id, &self.dir, self.meta.netns.as_deref());
        }
    }
}
