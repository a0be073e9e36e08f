//! The on-disk store: a directory per sandbox under `<state root>/local/`, its
//! `meta.json`, and what a sandbox owns outside it (a user, a cgroup, a network
//! namespace), all named after its id: provisioning, resuming, listing, destroying and
//! reaping sandboxes.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use runbook_core::Lifetime;
use serde::{Deserialize, Serialize};

use super::sandbox::LocalSandbox;
use super::{
    KILL_LIMIT, LocalProvider, MARKER_VAR, RUNNING_FILE, RunAs, contain, identity, process,
    random_suffix,
};
use crate::lock::SandboxLock;
use crate::state;
use crate::{ExecError, ProvisionRequest, Reaped, Result, SandboxInfo};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Meta {
    pub(super) runbook: String,
    pub(super) lifetime: Lifetime,
    created_unix: u64,
    /// The network namespace the sandbox's commands run in, when isolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) netns: Option<String>,
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

    pub(crate) fn resume_local(&self, id: &str) -> Result<LocalSandbox> {
        if !valid_id(id) {
            return Err(ExecError::NotFound(id.to_owned()));
        }
        let dir = self.sandboxes().join(id);
        let meta = read_meta(&dir).ok_or_else(|| ExecError::NotFound(id.to_owned()))?;
        if meta.lifetime != Lifetime::Persistent {
            return Err(ExecError::NotPersistent {
                id: id.to_owned(),
                lifetime: meta.lifetime,
            });
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

    pub(super) fn reap_local(&self) -> Result<Reaped> {
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
pub(super) fn destroy_dir(id: &str, dir: &Path, meta: Option<&Meta>) -> Result<()> {
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
