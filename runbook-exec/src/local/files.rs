//! Writing into a directory the sandbox controls, from a process that may be root,
//! without ever following a link the sandbox planted.
//!
//! Every path component is opened relative to its parent with `O_NOFOLLOW`, so a
//! symbolic link anywhere on the way is refused instead of followed; the file is
//! written to a new, exclusively created temporary name in its final directory,
//! handed to the sandbox user through its descriptor, and renamed over the target
//! (a rename replaces a link itself, never what it points to).

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{User, fchown};

use crate::{ExecError, Result};

fn open_dir_at(dir: &OwnedFd, name: &Path) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn refused(shown: &Path, e: Errno) -> ExecError {
    match e {
        Errno::ELOOP | Errno::ENOTDIR => ExecError::Provider(format!(
            "refused to write `{}`: a symbolic link or a file stands where a directory should be \
             (something in the sandbox planted it); the executor never follows links inside the sandbox",
            shown.display()
        )),
        _ => ExecError::Provider(format!("cannot write `{}`: {}", shown.display(), e.desc())),
    }
}

/// Writes `contents` at `rel` (a relative path of normal components) under `root`,
/// creating missing directories; new directories and the file belong to `owner`.
pub(super) fn write_beneath(
    root: &Path,
    rel: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<&User>,
) -> Result<()> {
    let (uid, gid) = (owner.map(|u| u.uid), owner.map(|u| u.gid));
    let mut dir: OwnedFd = nix::fcntl::open(
        root,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| refused(root, e))?;
    let name = rel
        .file_name()
        .ok_or_else(|| ExecError::Usage(format!("`{}` names no file", rel.display())))?;
    let mut shown = root.to_path_buf();
    for part in rel.parent().into_iter().flat_map(Path::components) {
        let Component::Normal(part) = part else {
            continue;
        };
        shown.push(part);
        let next = match open_dir_at(&dir, Path::new(part)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match mkdirat(&dir, part, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(refused(&shown, e)),
                }
                let fd = open_dir_at(&dir, Path::new(part)).map_err(|e| refused(&shown, e))?;
                if owner.is_some() {
                    fchown(&fd, uid, gid).map_err(|e| refused(&shown, e))?;
                }
                fd
            }
            Err(e) => return Err(refused(&shown, e)),
        };
        dir = next;
    }
    shown.push(name);
    let tmp = format!(
        ".{}.runbook-{}",
        name.to_string_lossy(),
        super::random_suffix()
    );
    let fd = openat(
        &dir,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|e| refused(&shown, e))?;
    let finish = || -> Result<()> {
        if owner.is_some() {
            fchown(&fd, uid, gid).map_err(|e| refused(&shown, e))?;
        }
        // The mode is set on the descriptor: the umask must not widen or narrow it.
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
            .map_err(|e| refused(&shown, e))?;
        let mut file = std::fs::File::from(fd.try_clone().map_err(ExecError::io("write", &shown))?);
        file.write_all(contents)
            .map_err(ExecError::io("write", &shown))?;
        renameat(&dir, tmp.as_str(), &dir, name).map_err(|e| refused(&shown, e))
    };
    let result = finish();
    if result.is_err() {
        let _ = nix::unistd::unlinkat(&dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    result
}
