//! The lock that keeps two processes out of one sandbox.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::{ExecError, Result};

const LOCK_FILE: &str = "lock";

/// An exclusive lock on a sandbox, held for as long as this value lives. The kernel
/// releases it when the process dies, even by SIGKILL.
#[derive(Debug)]
pub struct SandboxLock {
    _lock: nix::fcntl::Flock<File>,
}

impl SandboxLock {
    /// Takes the lock of the sandbox whose control directory is `dir`, or says who holds it.
    pub fn acquire(dir: &Path, id: &str) -> Result<SandboxLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(ExecError::io("open the sandbox lock", &path))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let holder = format!(
                    "process {} on {} since {}",
                    std::process::id(),
                    hostname(),
                    crate::time::now_rfc3339()
                );
                let _ = lock.set_len(0);
                let _ = lock.rewind();
                let _ = lock.write_all(holder.as_bytes());
                let _ = lock.sync_data();
                Ok(SandboxLock { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                if holder.trim().is_empty() {
                    holder = "another process".into();
                }
                Err(ExecError::Locked {
                    id: id.to_owned(),
                    holder: holder.trim().to_owned(),
                })
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "this host".into())
}
