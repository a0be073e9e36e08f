//! The directory an MCP client's paths are confined to (`runbook mcp --root DIR`).
//!
//! The server often runs as root, while its client only has the authority of the project
//! it works in: every path a tool takes is resolved inside the root, and a path that
//! leaves it (`..`, an absolute path elsewhere, a symbolic link pointing out) is refused.
//! Resolution is done by the kernel (`openat2` with `RESOLVE_BENEATH`) against a handle on
//! the root, so a link swapped in between a check and the open cannot lead outside.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use super::ToolError;

/// The root directory, open.
pub(super) struct Root {
    /// Its canonical path: absolute paths given by a client must start with it.
    path: PathBuf,
    fd: OwnedFd,
}

/// A directory opened inside the root, to write into.
pub(super) struct WriteTarget {
    /// The target's path through the opened parent (`/proc/self/fd/N/name`): whatever
    /// happens to the path the client gave, it names the directory that was checked.
    pub path: PathBuf,
    /// The path as the client gave it.
    shown: String,
    /// Keeps `path` valid.
    _parent: OwnedFd,
}

impl WriteTarget {
    /// An error about the target, naming it as the client did rather than by its handle.
    pub fn message(&self, e: &dyn std::fmt::Display) -> String {
        e.to_string()
            .replace(&self.path.display().to_string(), &self.shown)
    }
}

impl Root {
    /// Opens `dir` (canonicalized) as the root.
    pub fn open(dir: &Path) -> std::io::Result<Root> {
        let path = dir.canonicalize()?;
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { path, fd })
    }

    /// The root's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path` relative to the root: an absolute path must lie under it.
    fn relative(&self, argument: &str, path: &str) -> Result<PathBuf, ToolError> {
        if path.is_empty() {
            return Err(ToolError::argument(
                argument,
                format!("`{argument}` is empty"),
            ));
        }
        let path = Path::new(path);
        if path.is_absolute() {
            return match path.strip_prefix(&self.path) {
                Ok(rel) if rel.as_os_str().is_empty() => Ok(PathBuf::from(".")),
                Ok(rel) => Ok(rel.to_owned()),
                Err(_) => Err(self.outside(argument, path)),
            };
        }
        Ok(path.to_owned())
    }

    fn outside(&self, argument: &str, path: &Path) -> ToolError {
        ToolError::at(
            "outside_root",
            argument,
            format!(
                "`{}` is outside this server's root `{}` (through `..`, an absolute path or a \
                 symbolic link): give a path inside it, or start `runbook mcp --root` elsewhere",
                path.display(),
                self.path.display()
            ),
        )
    }

    /// Opens `rel` beneath the root (or beneath `dir`, itself opened beneath the root).
    fn open_beneath(
        &self,
        dir: Option<&OwnedFd>,
        rel: &Path,
        flags: OFlag,
    ) -> nix::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(dir.unwrap_or(&self.fd), rel, how)
    }

    /// The error for a failed open of `path`, named after the argument that gave it.
    fn open_error(&self, argument: &str, path: &Path, e: Errno) -> ToolError {
        match e {
            // The kernel's answer to a path that resolves outside the root.
            Errno::EXDEV | Errno::ELOOP => self.outside(argument, path),
            e => ToolError::argument(
                argument,
                format!("cannot open `{}`: {}", path.display(), e.desc()),
            ),
        }
    }

    /// The text of the regular file at `path` (the argument `argument`), inside the root.
    pub fn read_file(&self, argument: &str, path: &str) -> Result<String, ToolError> {
        let rel = self.relative(argument, path)?;
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
        let fd = self
            .open_beneath(
                None,
                &rel,
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            )
            .map_err(|e| self.open_error(argument, Path::new(path), e))?;
        read_regular(argument, path, fd)
    }

    /// The lessons of the library at `path`, inside the root: every `*.yaml` / `*.yml`
    /// regular file of it, sorted by name, as `runbook_core::load_lessons` reads them; a
    /// link to a file outside the library is refused. A missing directory is an empty
    /// library.
    pub fn lessons(
        &self,
        argument: &str,
        path: &str,
    ) -> Result<Vec<runbook_core::Lesson>, ToolError> {
        let rel = self.relative(argument, path)?;
        let dir = match self.open_beneath(None, &rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(self.open_error(argument, Path::new(path), e)),
        };
        // The directory is listed through its handle, not through the path again.
        let listing = std::fs::read_dir(fd_path(&dir))
            .map_err(|e| ToolError::argument(argument, format!("cannot read `{path}`: {e}")))?;
        let mut names: Vec<std::ffi::OsString> = listing
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .filter(|n| {
                Path::new(n)
                    .extension()
                    .is_some_and(|e| e == "yaml" || e == "yml")
            })
            .collect();
        names.sort();
        let mut lessons: Vec<runbook_core::Lesson> = Vec::with_capacity(names.len());
        for name in names {
            let shown = Path::new(path).join(&name).display().to_string();
            let fd = self
                .open_beneath(
                    Some(&dir),
                    Path::new(&name),
                    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
                )
                .map_err(|e| self.open_error(argument, Path::new(&shown), e))?;
            let text = read_regular(argument, &shown, fd)?;
            let lesson = runbook_core::lesson_from_yaml_str(&text).map_err(|e| {
                ToolError::argument(argument, super::parse_message(&e.in_file(&shown)))
            })?;
            if lessons.iter().any(|l| l.id == lesson.id) {
                return Err(ToolError::argument(
                    argument,
                    format!("{shown}: a second lesson with id `{}`", lesson.id),
                ));
            }
            lessons.push(lesson);
        }
        Ok(lessons)
    }

    /// Where to write a package named by `path`, inside the root: its parent directory is
    /// opened (made first if missing, one directory at a time, each inside the root) and
    /// the package is written through that handle.
    pub fn write_target(&self, argument: &str, path: &str) -> Result<WriteTarget, ToolError> {
        let rel = self.relative(argument, path)?;
        let name = match rel.components().next_back() {
            Some(Component::Normal(name)) => name.to_owned(),
            _ => {
                return Err(ToolError::argument(
                    argument,
                    format!("`{path}` does not name a directory to write inside the root"),
                ));
            }
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let mut dir = self
            .open_beneath(None, Path::new("."), OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| self.open_error(argument, Path::new(path), e))?;
        let mut prefix = PathBuf::new();
        for component in parent.components() {
            prefix.push(component);
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
            dir = match self.open_beneath(None, &prefix, flags) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    // Made inside the directory just opened (inside the root), then opened
                    // again by its path beneath the root.
                    match nix::sys::stat::mkdirat(
                        &dir,
                        component.as_os_str(),
                        Mode::from_bits_truncate(0o777),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(ToolError::argument(
                                argument,
                                format!("cannot create `{}`: {}", prefix.display(), e.desc()),
                            ));
                        }
                    }
                    self.open_beneath(None, &prefix, flags)
                        .map_err(|e| self.open_error(argument, Path::new(path), e))?
                }
                Err(e) => return Err(self.open_error(argument, Path::new(path), e)),
            };
        }
        Ok(WriteTarget {
            path: fd_path(&dir).join(name),
            shown: path.to_owned(),
            _parent: dir,
        })
    }
}

/// The path of an open file through `/proc/self/fd`.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The text of `fd`, which must be a regular file.
fn read_regular(argument: &str, shown: &str, fd: OwnedFd) -> Result<String, ToolError> {
    let mut file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| ToolError::argument(argument, format!("cannot inspect `{shown}`: {e}")))?;
    if !meta.is_file() {
        return Err(ToolError::argument(
            argument,
            format!("`{shown}` is not a regular file"),
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| ToolError::argument(argument, format!("cannot read `{shown}`: {e}")))?;
    Ok(text)
}

/// Whether a file's text claims to be a runbook: its `apiVersion: runbook/v1` and
/// `kind: Runbook`, in YAML or JSON. The parse error of a file that does not is never
/// shown: it would quote the file (the first line of `/etc/shadow`, say).
pub(super) fn claims_to_be_a_runbook(text: &str) -> bool {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '"' | '\''))
        .collect();
    compact.contains("apiVersion:runbook/v1") && compact.contains("kind:Runbook")
}
