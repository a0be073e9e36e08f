//! The provider: [`LocalProvider`], its builder and its [`Provider`] implementation. The
//! sandboxes it provisions are kept by `store.rs`; the handle on one is `sandbox.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{MARKER_VAR, contain, process};
use crate::{ExecError, Provider, ProvisionRequest, Reaped, Result, Sandbox, SandboxInfo};

/// Who sandbox commands run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// The user this process runs as (even root).
    CurrentUser,
    /// A named unprivileged user, shared by every sandbox (they are not isolated from
    /// each other).
    User(String),
    /// A user created for each sandbox when it is provisioned and removed when it is
    /// destroyed (needs root and `useradd`): sandboxes cannot read each other's files or
    /// signal each other's processes.
    PerSandbox,
}

/// Provisions sandboxes as directories on this machine.
///
/// ```no_run
/// # async fn demo() -> runbook_exec::Result<()> {
/// use runbook_exec::{LocalProvider, RunAs};
/// let provider = LocalProvider::new()?          // state root: $RUNBOOK_STATE_DIR, or the default
///     .shell("bash")                             // default
///     .run_as(RunAs::PerSandbox)                 // default when running as root
///     .env("http_proxy", "");                    // added to every command
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LocalProvider {
    pub(super) root: PathBuf,
    pub(super) shell: String,
    pub(super) run_as: RunAs,
    pub(super) path: String,
    pub(super) env: BTreeMap<String, String>,
    /// Values passed through from the caller's environment: masked in recorded output.
    pub(super) kept: Vec<String>,
    pub(super) isolate_network: bool,
}

impl LocalProvider {
    /// A provider whose state root is `$RUNBOOK_STATE_DIR`, or by default
    /// `/var/lib/runbook` when running as root (so an unprivileged user can reach it) and
    /// `$XDG_STATE_HOME/runbook` (`~/.local/state/runbook`) otherwise.
    pub fn new() -> Result<Self> {
        Ok(Self::with_root(default_root()?))
    }

    /// A provider with its sandboxes under `root` (a relative one is resolved against the
    /// working directory, once, here).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        let run_as = if nix::unistd::geteuid().is_root() {
            RunAs::PerSandbox
        } else {
            RunAs::CurrentUser
        };
        let root: PathBuf = root.into();
        LocalProvider {
            // Made absolute once: every sandbox path (a user's home, a cgroup's work dir)
            // derives from it, and `useradd` refuses a relative home.
            root: std::path::absolute(&root).unwrap_or(root),
            shell: "bash".into(),
            run_as,
            path: std::env::var("PATH")
                .unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()),
            env: BTreeMap::new(),
            kept: Vec::new(),
            isolate_network: false,
        }
    }

    /// The shell that runs commands with `-c` (default `bash`).
    pub fn shell(mut self, shell: impl Into<String>) -> Self {
        self.shell = shell.into();
        self
    }

    /// Who commands run as. By default a user of the sandbox's own
    /// ([`RunAs::PerSandbox`]) when this process is root, else the current user.
    /// Running sandbox commands as root must be asked for explicitly.
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

    /// Passes `name` from this process's environment to every command, when it is set
    /// (the commands' environment is otherwise cleared): what a cloud CLI or an exec
    /// credential plugin needs (`AWS_PROFILE`, `AWS_ACCESS_KEY_ID`, `CLOUDSDK_CONFIG`…).
    /// Its value is treated as a secret: masked wherever output is recorded.
    pub fn keep_env(mut self, name: &str) -> Self {
        if let Ok(value) = std::env::var(name) {
            if !value.is_empty() {
                self.kept.push(value.clone());
            }
            self.env.insert(name.to_owned(), value);
        }
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

    /// Whether commands of this provider's sandboxes are contained in cgroups (root and
    /// a writable cgroup v2 hierarchy), so that nothing they start outlives teardown.
    pub fn contained(&self) -> bool {
        contain::hierarchy().is_some()
    }

    /// The live processes of a sandbox: those in its cgroup, marked with its id, or
    /// working inside its directory.
    pub fn processes(&self, id: &str) -> Vec<i32> {
        let mut pids = contain::sandbox_cgroup(id)
            .map(|cg| contain::processes(&cg))
            .unwrap_or_default();
        pids.extend(process::sandbox_processes(
            &format!("{MARKER_VAR}={id}"),
            &self.sandboxes().join(id),
            std::process::id(),
        ));
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The directory of a sandbox.
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.sandboxes().join(id)
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn sandboxes(&self) -> PathBuf {
        self.root.join("local")
    }

    pub(super) fn named_user(name: &str) -> Result<nix::unistd::User> {
        nix::unistd::User::from_name(name)
            .map_err(|e| ExecError::Provider(format!("cannot look up user `{name}`: {e}")))?
            .ok_or_else(|| {
                ExecError::Provider(format!(
                    "user `{name}` does not exist: create it, or choose another with `RunAs::User`"
                ))
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

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Box<dyn Sandbox>> {
        let this = self.clone();
        let request = request.clone();
        let sandbox = tokio::task::spawn_blocking(move || this.provision_local(&request))
            .await
            .map_err(|e| ExecError::Provider(format!("provisioning failed: {e}")))??;
        Ok(Box::new(sandbox))
    }

    async fn resume(&self, id: &str) -> Result<Box<dyn Sandbox>> {
        Ok(Box::new(self.resume_local(id)?))
    }

    async fn list(&self) -> Result<Vec<SandboxInfo>> {
        self.list_local()
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        let (this, id) = (self.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || this.destroy_local(&id))
            .await
            .map_err(|e| ExecError::Provider(format!("destroying failed: {e}")))?
    }

    /// Ephemeral and session sandboxes whose run died without tearing them down (a
    /// SIGKILL, a power cut): nobody holds their lock, so they are destroyed. Busy and
    /// damaged sandboxes are reported and left alone.
    async fn reap(&self) -> Result<Reaped> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.reap_local())
            .await
            .map_err(|e| ExecError::Provider(format!("reaping failed: {e}")))?
    }
}
