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

/// The most of a file a `file` probe reads to look for a text.
const MAX_PROBE_READ: u64 = 16 * 1024 * 1024;

/// Looks at a file under `root` for a `file` probe, in-process: no link may lead out of
/// `root` (`openat2` with `RESOLVE_BENEATH`), so root never reads a path the sandbox
/// pointed elsewhere.
pub(super) fn observe_file(
    root: &Path,
    probe: &runbook_core::FileProbe,
) -> Result<crate::Observation> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    use nix::fcntl::{OpenHow, ResolveFlag, openat2};

    let seen = |satisfied: bool, actual: String| Ok(crate::Observation { satisfied, actual });
    let dir: OwnedFd = nix::fcntl::open(
        root,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| refused(root, e))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(&dir, probe.path.as_str(), how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => {
            return seen(!probe.exists, format!("`{}` is absent", probe.path));
        }
        Err(Errno::EXDEV) => {
            return seen(
                false,
                format!(
                    "`{}` leads out of the work directory; a file check looks only inside it (use a command check)",
                    probe.path
                ),
            );
        }
        Err(Errno::ENOSYS) => {
            return Err(ExecError::Unsupported {
                provider: "local".into(),
                what: "file checks on a kernel without openat2 (Linux 5.6+)".into(),
            });
        }
        Err(e) => {
            return seen(
                false,
                format!("`{}` cannot be opened: {}", probe.path, e.desc()),
            );
        }
    };
    if !probe.exists {
        return seen(false, format!("`{}` exists", probe.path));
    }
    let file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(ExecError::io("inspect", root.join(&probe.path)))?;
    if let Some(want) = probe.mode_bits() {
        let have = meta.permissions().mode() & 0o7777;
        if have != want {
            return seen(false, format!("`{}` has mode {have:o}", probe.path));
        }
    }
    if probe.contains.is_none() && probe.matches.is_none() {
        return seen(true, format!("`{}` exists", probe.path));
    }
    if meta.is_dir() {
        return seen(false, format!("`{}` is a directory", probe.path));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PROBE_READ)
        .read_to_end(&mut bytes)
        .map_err(ExecError::io("read", root.join(&probe.path)))?;
    let text = String::from_utf8_lossy(&bytes);
    if let Some(c) = &probe.contains
        && !text.contains(c.as_str())
    {
        return seen(false, format!("`{}` does not contain it", probe.path));
    }
    if let Some(p) = &probe.matches {
        let re = regex::Regex::new(p)
            .map_err(|e| ExecError::Usage(format!("invalid pattern /{p}/: {e}")))?;
        if !re.is_match(&text) {
            return seen(false, format!("`{}` does not match /{p}/", probe.path));
        }
    }
    seen(true, format!("`{}` as expected", probe.path))
}
