//! Containment: a cgroup v2 per sandbox, so teardown kills every process a sandbox
//! started, whatever it did to escape (`setsid`, `env -i`, a double fork, `cd /`).
//!
//! Every command runs in a leaf cgroup of its own under the sandbox's cgroup
//! (`<cgroup2 mount>/runbook/<sandbox id>/<leaf>`): a command that times out, or whose
//! run is interrupted, is killed with everything it started; a daemon a step started on
//! purpose stays in its leaf until the sandbox is torn down, which kills the whole
//! subtree through `cgroup.kill`. The hierarchy is found in the mount table; creating
//! cgroups needs root. Without them, the provider falls back to process groups plus a
//! scan of `/proc` (docs/providers.md says what that cannot catch).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where this machine's cgroup v2 hierarchy is mounted, if it is and we may write to it.
pub(super) fn hierarchy() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = mounts.lines().find_map(|line| {
            // "<id> <parent> <dev> <root> <mount point> <options> ... - <fstype> <source> ..."
            let (fields, rest) = line.split_once(" - ")?;
            (rest.split_whitespace().next()? == "cgroup2")
                .then(|| fields.split_whitespace().nth(4).map(unescape))?
        })?;
        let base = PathBuf::from(mount).join("runbook");
        match std::fs::create_dir(&base) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        base.join("cgroup.kill").exists().then_some(base)
    })
    .as_deref()
}

/// Mount points escape spaces and tabs as octal (`\040`).
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

/// The cgroup of a sandbox, when cgroups are available.
pub(super) fn sandbox_cgroup(id: &str) -> Option<PathBuf> {
    hierarchy().map(|h| h.join(id))
}

/// Creates a cgroup (and its sandbox parent); an existing one is reused. A reaper may
/// remove an empty parent at the same moment: then it is made again.
pub(super) fn create(path: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::create_dir_all(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => return Ok(()),
        }
    }
}

/// Whether any process is still in the cgroup or below it.
pub(super) fn populated(path: &Path) -> bool {
    std::fs::read_to_string(path.join("cgroup.events"))
        .is_ok_and(|e| e.lines().any(|l| l == "populated 1"))
}

/// Kills every process in the cgroup and below it, waits (up to `limit`) until they are
/// gone, then removes the cgroup tree. Returns whether nothing is left running.
pub(super) fn kill(path: &Path, limit: Duration) -> bool {
    if !path.exists() {
        return true;
    }
    let _ = std::fs::write(path.join("cgroup.kill"), "1");
    let deadline = Instant::now() + limit;
    while populated(path) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let empty = !populated(path);
    remove_tree(path);
    empty
}

/// Removes a cgroup and its children, deepest first (only empty cgroups can go).
pub(super) fn remove_tree(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(path);
}

/// The pids in the cgroup and below it.
pub(super) fn processes(path: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(processes(&entry.path()));
            }
        }
    }
    out
}

/// Removes the cgroups of sandboxes that run nothing (a sandbox whose directory was
/// deleted without destroying it leaves its cgroup behind). An empty cgroup holds no
/// state: a live sandbox re-creates its own when it next runs a command.
pub(super) fn remove_empty() {
    let Some(base) = hierarchy() else {
        return;
    };
    if let Ok(entries) = std::fs::read_dir(base) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !populated(&entry.path()) {
                remove_tree(&entry.path());
            }
        }
    }
}
