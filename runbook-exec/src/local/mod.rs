//! The local provider: a directory per sandbox on this machine.
//!
//! Each sandbox is `<state root>/local/<id>/` with `work/` (the working directory,
//! `HOME`), `tmp/` (`TMPDIR`) and `control/` (the executor's log, state and lock, out of
//! the commands' reach). Commands run through `bash -c` in a clean environment (only
//! `PATH`, the locale, the runbook's variables and what the caller adds).
//!
//! When this process runs as root, the sandbox is a boundary:
//!
//! - **its own identity**: a user created for the sandbox ([`RunAs::PerSandbox`]), so
//!   two sandboxes cannot read each other's files (`work/` and `tmp/` are 0700) or
//!   signal each other's processes;
//! - **containment**: every command runs in a cgroup v2 of its own under the sandbox's,
//!   so a timeout, an interruption or teardown kills everything it started, daemons
//!   that called `setsid` or double-forked included;
//! - **no link followed**: config files are written without following any link a step
//!   planted (see `files.rs`), and nothing is ever written to a predictable name in a
//!   shared directory.
//!
//! Without root, commands run as the current user in a process group of their own;
//! teardown also kills what carries the sandbox's marker variable or works inside its
//! directory (docs/providers.md says what that cannot catch).

mod contain;
mod files;
mod identity;
mod leftovers;
mod probes;
pub(crate) mod process;
mod spawn;

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use runbook_core::Lifetime;
use runbook_core::report::SandboxDescription;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::lock::SandboxLock;
use crate::state;
use crate::{
    CommandSpec, ExecError, Exit, OutputSink, Provider, ProvisionRequest, Reaped, Result, Sandbox,
    SandboxInfo,
};

/// The environment variable that marks every process of a sandbox.
pub const MARKER_VAR: &str = "RUNBOOK_SANDBOX_ID";

/// How long teardown waits for a sandbox's processes to die.
const KILL_LIMIT: Duration = Duration::from_secs(10);

/// The control file naming the command in flight, so that a later process can end what
/// an interrupted attempt left running.
const RUNNING_FILE: &str = "running";

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
    root: PathBuf,
    shell: String,
    run_as: RunAs,
    path: String,
    env: BTreeMap<String, String>,
    /// Values passed through from the caller's environment: masked in recorded output.
    kept: Vec<String>,
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
            RunAs::PerSandbox
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

    fn sandboxes(&self) -> PathBuf {
        self.root.join("local")
    }

    fn named_user(name: &str) -> Result<nix::unistd::User> {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    runbook: String,
    lifetime: Lifetime,
    created_unix: u64,
    /// The network namespace the sandbox's commands run in, when isolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
    /// Who commands run as: a user created for this sandbox (`own: true`), a named user,
    /// or (absent) the user of the executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<MetaUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaUser {
    name: String,
    own: bool,
}

/// The names a sandbox owns outside its directory, all derived from its id, so that a
/// sandbox whose metadata is damaged can still be destroyed whole.
struct Names {
    user: String,
    netns: String,
}

impl Names {
    fn of(id: &str) -> Names {
        let suffix = id.rsplit('-').next().unwrap_or(id);
        Names {
            user: identity::user_name(suffix),
            netns: format!("runbook-{suffix}"),
        }
    }
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

pub(crate) fn random_suffix() -> String {
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

impl LocalProvider {
    /// Provisions a local sandbox directory (also the command side of other providers).
    ///
    /// The sandbox is assembled under a hidden name, locked, and only then renamed into
    /// place: nothing that lists or reaps sandboxes can see it before it is locked.
    pub(crate) fn provision_local(&self, request: &ProvisionRequest) -> Result<LocalSandbox> {
        mkdir(&self.sandboxes(), 0o755)?;
        let shared_user = match &self.run_as {
            RunAs::User(name) => Some(Self::named_user(name)?),
            _ => None,
        };
        let per_sandbox = self.run_as == RunAs::PerSandbox;
        if (per_sandbox || shared_user.is_some())
            && let Some(blocked) = unreachable_ancestor(&self.sandboxes())
        {
            return Err(ExecError::Provider(format!(
                "sandbox commands run as an unprivileged user, who cannot enter `{}`: choose a \
                 state root it can reach (RUNBOOK_STATE_DIR=/var/lib/runbook, or a directory under /tmp)",
                blocked.display()
            )));
        }
        let id = format!("{}-{}", request.runbook, random_suffix());
        let names = Names::of(&id);
        let dir = self.sandboxes().join(&id);
        let staging = self.sandboxes().join(format!(".{id}.new"));
        std::fs::create_dir(&staging).map_err(ExecError::io("create the directory", &staging))?;
        let mut undo = Undo {
            staging: Some(staging.clone()),
            user: None,
            cgroup: None,
            netns: None,
            id: id.clone(),
        };
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))
            .map_err(ExecError::io("set permissions of", &staging))?;
        mkdir(&staging.join("control"), 0o700)?;
        let lock = SandboxLock::acquire(&staging.join("control"), &id)?;
        let user = if per_sandbox {
            let u = identity::create(&names.user, &id, &dir.join("work"))?;
            undo.user = Some(names.user.clone());
            Some(u)
        } else {
            shared_user
        };
        for sub in ["work", "tmp"] {
            mkdir(&staging.join(sub), 0o700)?;
            give(&staging.join(sub), user.as_ref())?;
        }
        let cgroup = contain::sandbox_cgroup(&id);
        if let Some(cg) = &cgroup {
            contain::create(cg).map_err(ExecError::io("create the cgroup", cg))?;
            undo.cgroup = Some(cg.clone());
        }
        let netns = self.isolate_network.then(|| names.netns.clone());
        if let Some(ns) = &netns {
            ensure_netns(ns)?;
            undo.netns = Some(ns.clone());
        }
        let meta = Meta {
            runbook: request.runbook.clone(),
            lifetime: request.lifetime,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            netns,
            user: user.as_ref().map(|u| MetaUser {
                name: u.name.clone(),
                own: per_sandbox,
            }),
        };
        let meta_path = staging.join("meta.json");
        std::fs::write(
            &meta_path,
            serde_json::to_vec_pretty(&meta).unwrap_or_default(),
        )
        .map_err(ExecError::io("write", &meta_path))?;
        // The sandbox user may enter (group) but not change or list others' directories.
        if let Some(u) = &user {
            chown(&staging, Some(0), Some(u.gid.as_raw()))
                .map_err(ExecError::io("chown", &staging))?;
            std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o750))
                .map_err(ExecError::io("set permissions of", &staging))?;
        } else {
            std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))
                .map_err(ExecError::io("set permissions of", &staging))?;
        }
        std::fs::rename(&staging, &dir).map_err(ExecError::io("rename into place", &dir))?;
        undo.disarm();
        Ok(self.open(id, dir, meta, user, cgroup, lock))
    }

    /// The handle on a sandbox that is ready and locked.
    fn open(
        &self,
        id: String,
        dir: PathBuf,
        meta: Meta,
        user: Option<nix::unistd::User>,
        cgroup: Option<PathBuf>,
        lock: SandboxLock,
    ) -> LocalSandbox {
        let loader = if user.is_some() && nix::unistd::geteuid().is_root() {
            spawn::private_loader(&self.root).ok()
        } else {
            spawn::system_loader().ok()
        };
        LocalSandbox {
            id,
            control: dir.join("control"),
            dir,
            shell: self.shell.clone(),
            path: self.path.clone(),
            env: self.env.clone(),
            kept: self.kept.clone(),
            user,
            cgroup,
            meta,
            alive: true,
            description: OnceLock::new(),
            lock: Some(lock),
            commands: AtomicU64::new(0),
            loader,
        }
    }

    pub(crate) fn resume_local(&self, id: &str) -> Result<LocalSandbox> {
        if !valid_id(id) {
            return Err(ExecError::NotFound(id.to_owned()));
        }
        let dir = self.sandboxes().join(id);
        let meta = read_meta(&dir).ok_or_else(|| ExecError::NotFound(id.to_owned()))?;
        if meta.lifetime != Lifetime::Persistent {
            return Err(ExecError::Usage(format!(
                "sandbox `{id}` is {}, not persistent: only persistent sandboxes can be resumed",
                meta.lifetime
            )));
        }
        let control = dir.join("control");
        let lock = SandboxLock::acquire(&control, id)?;
        let user = match &meta.user {
            Some(u) => Some(Self::named_user(&u.name)?),
            None => None,
        };
        let cgroup = contain::sandbox_cgroup(id);
        if let Some(cg) = &cgroup {
            contain::create(cg).map_err(ExecError::io("create the cgroup", cg))?;
        }
        end_interrupted(&control, cgroup.as_deref());
        if let Some(ns) = &meta.netns {
            ensure_netns(ns)?;
        }
        Ok(self.open(id.to_owned(), dir, meta, user, cgroup, lock))
    }

    pub(crate) fn list_local(&self) -> Result<Vec<SandboxInfo>> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.sandboxes()) else {
            return Ok(out);
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            // Hidden entries are sandboxes still being provisioned (or their remains).
            if id.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            let created_unix = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let location = Some(dir.join("work").to_string_lossy().into_owned());
            let info = match read_meta_checked(&dir) {
                Ok(meta) => SandboxInfo {
                    id,
                    provider: "local".into(),
                    runbook: meta.runbook,
                    lifetime: meta.lifetime,
                    created_unix: meta.created_unix,
                    last_step: state::load(&dir.join("control"))
                        .ok()
                        .flatten()
                        .and_then(|s| s.completed.last().cloned()),
                    damaged: None,
                    location,
                },
                Err(why) => SandboxInfo {
                    id,
                    provider: "local".into(),
                    runbook: String::new(),
                    lifetime: Lifetime::Persistent,
                    created_unix,
                    last_step: None,
                    damaged: Some(why),
                    location,
                },
            };
            out.push(info);
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
        if !valid_id(id) || !dir.is_dir() {
            return Err(ExecError::NotFound(id.to_owned()));
        }
        // A damaged sandbox may have lost its control directory: make one to lock.
        let control = dir.join("control");
        if !control.is_dir() {
            mkdir(&control, 0o700)?;
        }
        let _lock = SandboxLock::acquire(&control, id)?;
        destroy_dir(id, &dir, read_meta(&dir).as_ref())
    }

    fn reap_local(&self) -> Result<Reaped> {
        let mut reaped = Reaped::default();
        // What sandboxes deleted behind the provider's back left outside their directory.
        for (user, id) in identity::orphans() {
            if let Some(cg) = contain::sandbox_cgroup(&id) {
                contain::kill(&cg, KILL_LIMIT);
            }
            if let Err(e) = identity::remove(&user, &id) {
                reaped.skipped.push((id, e.chain()));
            }
        }
        contain::remove_empty();
        for s in self.list_local()? {
            if let Some(why) = s.damaged {
                reaped.skipped.push((
                    s.id.clone(),
                    format!(
                        "damaged ({why}); destroy it with `runbook sandbox destroy {}`",
                        s.id
                    ),
                ));
                continue;
            }
            if s.lifetime == Lifetime::Persistent {
                continue;
            }
            match self.destroy_local(&s.id) {
                Ok(()) => reaped.destroyed.push(s.id),
                Err(ExecError::NotFound(_)) => {}
                Err(e) => reaped.skipped.push((s.id, e.chain())),
            }
        }
        Ok(reaped)
    }
}

/// Undoes a provisioning that failed half-way.
struct Undo {
    staging: Option<PathBuf>,
    user: Option<String>,
    cgroup: Option<PathBuf>,
    netns: Option<String>,
    id: String,
}

impl Undo {
    fn disarm(&mut self) {
        self.staging = None;
        self.user = None;
        self.cgroup = None;
        self.netns = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            contain::kill(cg, KILL_LIMIT);
        }
        if let Some(ns) = &self.netns {
            delete_netns(ns);
        }
        if let Some(user) = &self.user {
            let _ = identity::remove(user, &self.id);
        }
        if let Some(dir) = &self.staging {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A sandbox id names one directory entry: no separators, nothing hidden.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.starts_with('.') && !id.contains('/') && !id.contains('\0')
}

fn read_meta(dir: &Path) -> Option<Meta> {
    read_meta_checked(dir).ok()
}

fn read_meta_checked(dir: &Path) -> std::result::Result<Meta, String> {
    let bytes =
        std::fs::read(dir.join("meta.json")).map_err(|e| format!("cannot read meta.json: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("meta.json is garbled: {e}"))
}

/// Ends what an interrupted command left running (the previous process died mid-step).
fn end_interrupted(control: &Path, cgroup: Option<&Path>) {
    let marker = control.join(RUNNING_FILE);
    let Ok(text) = std::fs::read_to_string(&marker) else {
        return;
    };
    for line in text.lines() {
        match line.split_once('=') {
            Some(("leaf", leaf)) if !leaf.contains('/') && !leaf.is_empty() => {
                if let Some(cg) = cgroup {
                    contain::kill(&cg.join(leaf), KILL_LIMIT);
                }
            }
            Some(("pgid", pgid)) => {
                if let Ok(pgid) = pgid.parse::<i32>()
                    && pgid > 1
                {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pgid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_file(marker);
}

/// Kills everything the sandbox runs, removes what it owns outside its directory (its
/// cgroup, network namespace and user), then its directory.
fn destroy_dir(id: &str, dir: &Path, meta: Option<&Meta>) -> Result<()> {
    let names = Names::of(id);
    if let Some(cg) = contain::sandbox_cgroup(id) {
        contain::kill(&cg, KILL_LIMIT);
    }
    process::kill_sandbox_processes(&format!("{MARKER_VAR}={id}"), dir, KILL_LIMIT);
    let netns = meta.and_then(|m| m.netns.clone()).unwrap_or(names.netns);
    delete_netns(&netns);
    // Only a user created for this sandbox (its comment says so) is removed.
    let own_user = meta
        .and_then(|m| m.user.as_ref())
        .map_or(names.user, |u| u.name.clone());
    identity::remove(&own_user, id)?;
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
    kept: Vec<String>,
    user: Option<nix::unistd::User>,
    /// The sandbox's cgroup, when contained.
    cgroup: Option<PathBuf>,
    meta: Meta,
    /// Cleared when torn down or kept: dropping it then does nothing.
    alive: bool,
    description: OnceLock<SandboxDescription>,
    /// Held from provisioning (or resuming) until the sandbox is dropped.
    lock: Option<SandboxLock>,
    /// Numbers the commands' cgroups.
    commands: AtomicU64,
    /// The bash that loads a contained command's environment (see `spawn.rs`).
    loader: Option<PathBuf>,
}

impl LocalSandbox {
    /// Writes a file beneath the work directory that only the sandbox's user can read
    /// (mode 0600), such as a credential the steps use.
    pub async fn write_private(&self, path: &str, contents: &[u8]) -> Result<()> {
        self.write_mode(path, contents, 0o600).await
    }

    async fn write_mode(&self, path: &str, contents: &[u8], mode: u32) -> Result<()> {
        let rel = relative(path)?.to_owned();
        let (root, contents, user) = (self.work_dir(), contents.to_vec(), self.user.clone());
        tokio::task::spawn_blocking(move || {
            files::write_beneath(&root, &rel, &contents, mode, user.as_ref())
        })
        .await
        .map_err(|e| ExecError::Provider(format!("writing a file failed: {e}")))?
    }

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

    /// The user commands run as, when it is not the executor's own.
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.name.as_str())
    }

    /// The command for `spec`, behind the sandbox's walls (see `spawn.rs`): in its cgroup
    /// `leaf` and network namespace, as the sandbox's user, before any of the runbook's
    /// environment is applied.
    fn command(&self, spec: &CommandSpec, leaf: Option<&Path>) -> Result<spawn::Launch> {
        let mut cwd = self.work_dir();
        if let Some(w) = &spec.workdir {
            cwd = cwd.join(relative(w)?);
        }
        let shell = spawn::resolve(&self.shell, &self.path)?;
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if spec.errexit {
            // bash and POSIX shells alike (dash has pipefail since 0.5.11).
            args.extend(["-e".into(), "-o".into(), "pipefail".into()]);
        }
        args.extend(["-c".into(), spec.command.clone().into()]);
        let mut env: BTreeMap<String, String> = [
            ("PATH", self.path.clone()),
            ("LANG", "C.UTF-8".into()),
            ("LC_ALL", "C.UTF-8".into()),
            ("HOME", self.work_dir().to_string_lossy().into_owned()),
            (
                "TMPDIR",
                self.dir.join("tmp").to_string_lossy().into_owned(),
            ),
            (MARKER_VAR, self.id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(u) = &self.user {
            env.insert("USER".into(), u.name.clone());
            env.insert("LOGNAME".into(), u.name.clone());
        }
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Last: teardown finds the sandbox's processes by it, so nothing may override it.
        env.insert(MARKER_VAR.into(), self.id.clone());
        let walls = spawn::Walls {
            leaf,
            netns: self.meta.netns.as_deref(),
            user: self.user.as_ref(),
            loader: self.loader.as_deref(),
        };
        spawn::launch(&shell, &args, &cwd, &env, &walls)
    }

    /// A typed probe evaluated by a shell command in the sandbox (where in-process cannot
    /// see what the sandbox sees): satisfied when it exits 0.
    async fn probe_by_command(&self, command: String) -> Result<crate::Observation> {
        struct Discard;
        impl OutputSink for Discard {
            fn output(&mut self, _: crate::Stream, _: &[u8]) {}
        }
        let spec = CommandSpec {
            command: command.clone(),
            env: BTreeMap::new(),
            workdir: None,
            timeout: Duration::from_secs(15),
            errexit: false,
        };
        let exit = Sandbox::run(self, &spec, &mut Discard).await?;
        Ok(crate::Observation {
            satisfied: exit.code == Some(0),
            actual: match exit.code {
                Some(0) => "as expected".into(),
                Some(c) => format!("`{command}` exited {c}"),
                None => format!("`{command}` was killed"),
            },
        })
    }

    /// A fresh cgroup for one command, recorded as in flight.
    fn start_leaf(&self) -> Result<Option<PathBuf>> {
        let Some(cg) = &self.cgroup else {
            return Ok(None);
        };
        let n = self.commands.fetch_add(1, Ordering::Relaxed);
        let name = format!("c{}-{n}", random_suffix());
        let leaf = cg.join(&name);
        contain::create(&leaf).map_err(ExecError::io("create the cgroup", &leaf))?;
        let marker = self.control.join(RUNNING_FILE);
        std::fs::write(&marker, format!("leaf={name}\n"))
            .map_err(ExecError::io("write", &marker))?;
        Ok(Some(leaf))
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
        let leaf = self.start_leaf()?;
        let result = match self.command(spec, leaf.as_deref()) {
            Ok(launch) => {
                let marker = self.control.join(RUNNING_FILE);
                let (command, input) = (launch.command, launch.stdin);
                process::run(command, input, spec.timeout, leaf.as_deref(), &marker, out).await
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(self.control.join(RUNNING_FILE));
        // A leaf is kept while a daemon the command started lives in it.
        if let Some(leaf) = &leaf
            && !contain::populated(leaf)
        {
            let _ = std::fs::remove_dir(leaf);
        }
        result
    }

    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<()> {
        self.write_mode(path, contents, 0o644).await
    }

    fn secret_values(&self) -> Vec<String> {
        self.kept.clone()
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
            path: self.path.clone(),
            versions,
        };
        let _ = self.description.set(description.clone());
        Ok(description)
    }

    async fn probe(&self, probe: &runbook_core::Probe) -> Result<crate::Observation> {
        match probe {
            runbook_core::Probe::File(f) => {
                let (root, f) = (self.work_dir(), f.clone());
                tokio::task::spawn_blocking(move || files::observe_file(&root, &f))
                    .await
                    .map_err(|e| ExecError::Provider(format!("a file check failed: {e}")))?
            }
            // Inside a network namespace, ports and URLs are only reachable from a process
            // in it: the same shell the scripts use, run there.
            runbook_core::Probe::Tcp(t) if self.meta.netns.is_some() => {
                self.probe_by_command(format!(
                    "timeout 5 bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' '{}' '{}'",
                    t.host.replace('\'', ""),
                    t.port.replace('\'', "")
                ))
                .await
            }
            runbook_core::Probe::Http(h) if self.meta.netns.is_some() => {
                self.probe_by_command(format!(
                    "curl -sS -o /dev/null -w '%{{http_code}}' --max-time 10 -- '{}' | grep -qx '{}'",
                    h.url.replace('\'', ""),
                    h.status
                ))
                .await
            }
            runbook_core::Probe::Tcp(t) => {
                let (host, port) = (t.host.clone(), t.port.clone());
                tokio::task::spawn_blocking(move || {
                    Ok(probes::tcp(&host, &port, Duration::from_secs(5)))
                })
                .await
                .map_err(|e| ExecError::Provider(format!("a TCP check failed: {e}")))?
            }
            runbook_core::Probe::Http(h) => {
                let h = h.clone();
                tokio::task::spawn_blocking(move || Ok(probes::http(&h)))
                    .await
                    .map_err(|e| ExecError::Provider(format!("an HTTP check failed: {e}")))?
            }
            runbook_core::Probe::Process(p) => {
                let pids = self.processes().await.unwrap_or_default();
                Ok(probes::process_named(&pids, &p.name))
            }
            other => Err(ExecError::Unsupported {
                provider: "local".into(),
                what: format!("this kind of check ({})", crate::sandbox::probe_kind(other)),
            }),
        }
    }

    async fn processes(&self) -> Option<Vec<i32>> {
        let mut pids = self
            .cgroup
            .as_deref()
            .map(contain::processes)
            .unwrap_or_default();
        pids.extend(process::sandbox_processes(
            &format!("{MARKER_VAR}={}", self.id),
            &self.dir,
            std::process::id(),
        ));
        pids.sort_unstable();
        pids.dedup();
        Some(pids)
    }

    async fn teardown(&mut self) -> Result<()> {
        self.alive = false;
        let (id, dir, meta) = (self.id.clone(), self.dir.clone(), self.meta.clone());
        let result = tokio::task::spawn_blocking(move || destroy_dir(&id, &dir, Some(&meta)))
            .await
            .map_err(|e| ExecError::Provider(format!("teardown task failed: {e}")))?;
        self.lock = None;
        result
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
            let _ = destroy_dir(&self.id, &self.dir, Some(&self.meta));
        }
    }
}
