//! What a sandbox's user leaves outside its directory: files in the machine's shared
//! writable places (`/tmp`, `/var/tmp`, `/dev/shm`, …) and System V IPC objects. They
//! outlive the sandbox's processes, and the next sandbox may get the same uid: teardown
//! removes them before the user goes, and keeps the user (so the uid is not given to
//! another sandbox) while anything of theirs remains.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// The shared places an unprivileged user can write to on a usual Linux machine.
const SHARED_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue"];

/// How deep world-writable directories are searched (a sandbox can nest them).
const MAX_DEPTH: usize = 16;

/// Removes every file `uid` owns in the shared places and every IPC object it owns or
/// created. Returns what could not be removed (empty when nothing of `uid` remains).
pub(super) fn remove(uid: u32) -> Vec<String> {
    let mut left = Vec::new();
    for dir in SHARED_DIRS {
        let dir = Path::new(dir);
        // A shared place that is a link (`/var/lock -> /run/lock`) is visited as its target.
        if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            sweep(dir, uid, 0, &mut left);
        }
    }
    left.extend(remove_ipc(uid));
    left
}

/// Removes the entries of `dir` that `uid` owns (a directory whole: std's removal never
/// follows links) and searches the world-writable directories it does not own, the only
/// ones where `uid` could have put something among other users' files.
fn sweep(dir: &Path, uid: u32, depth: usize, left: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() == uid {
            let removed = if meta.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                left.push(format!("{}: {e}", path.display()));
            }
        } else if meta.is_dir() && meta.mode() & 0o002 != 0 && depth < MAX_DEPTH {
            sweep(&path, uid, depth + 1, left);
        }
    }
}

/// Removes the System V shared memory segments, message queues and semaphore sets that
/// `uid` owns or created.
fn remove_ipc(uid: u32) -> Vec<String> {
    let mut left = Vec::new();
    for (table, id_column, flag) in [
        ("shm", "shmid", "-m"),
        ("msg", "msqid", "-q"),
        ("sem", "semid", "-s"),
    ] {
        for id in ipc_objects(table, id_column, uid) {
            let Some(ipcrm) = super::spawn::system_program("ipcrm") else {
                left.push(format!(
                    "IPC {table} {id}: no `ipcrm` to remove it (install util-linux)"
                ));
                continue;
            };
            let removed = Command::new(ipcrm).args([flag, &id]).env_clear().output();
            match removed {
                Ok(o) if o.status.success() => {}
                Ok(o) => left.push(format!(
                    "IPC {table} {id}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => left.push(format!("IPC {table} {id}: cannot run ipcrm: {e}")),
            }
        }
    }
    left
}

/// The ids in `/proc/sysvipc/<table>` whose owner or creator is `uid`.
fn ipc_objects(table: &str, id_column: &str, uid: u32) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(Path::new("/proc/sysvipc").join(table)) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split_whitespace().collect();
    let at = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(id), Some(owner), Some(creator)) = (at(id_column), at("uid"), at("cuid")) else {
        return Vec::new();
    };
    let uid = uid.to_string();
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let ours = fields.get(owner) == Some(&uid.as_str())
                || fields.get(creator) == Some(&uid.as_str());
            ours.then(|| fields.get(id).map(|s| (*s).to_owned()))?
        })
        .collect()
}
