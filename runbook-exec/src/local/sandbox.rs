//! The sandbox: [`LocalSandbox`], the handle on one sandbox directory, and its
//! [`Sandbox`] implementation; here a command's environment and walls are assembled.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use runbook_core::Lifetime;
use runbook_core::report::SandboxDescription;
use tokio::process::Command;

use super::store::{Meta, destroy_dir};
use super::{
    LocalProvider, MARKER_VAR, RUNNING_FILE, contain, files, process, random_suffix, spawn,
};
use crate::lock::SandboxLock;
use crate::{CommandSpec, ExecError, Exit, OutputSink, Result, Sandbox};

/// A sandbox directory on this machine. See the [module docs](super).
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
    pub(super) meta: Meta,
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

impl LocalProvider {
    /// The handle on a sandbox that is ready and locked.
    pub(super) fn open(
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
    #[cfg_attr(not(any(feature = "kube", feature = "container")), allow(dead_code))] // other providers
    pub(crate) fn set_env(&mut self, name: &str, value: &str) {
        self.env.insert(name.to_owned(), value.to_owned());
    }

    /// Whether dropping it would still destroy it (not torn down, not kept).
    #[cfg_attr(not(any(feature = "kube", feature = "container")), allow(dead_code))] // other providers
    pub(crate) fn is_alive(&self) -> bool {
        self.alive
    }

    /// The sandbox's lifetime.
    #[cfg_attr(not(any(feature = "kube", feature = "container")), allow(dead_code))] // other providers
    pub(crate) fn lifetime(&self) -> Lifetime {
        self.meta.lifetime
    }

    /// The runbook the sandbox was made for.
    #[cfg_attr(not(any(feature = "kube", feature = "container")), allow(dead_code))] // other providers
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
pub(crate) fn relative(path: &str) -> Result<&Path> {
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
            ..SandboxDescription::default()
        };
        let _ = self.description.set(description.clone());
        Ok(description)
    }

    async fn probe(&self, probe: &runbook_core::Probe) -> Result<crate::Observation> {
        self.probe_local(probe).await
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
