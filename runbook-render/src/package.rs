//! The handoff package: every file, checked for secrets, hashed, written atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

use runbook_core::Runbook;
use runbook_core::report::Report;
use sha2::{Digest, Sha256};

use crate::{checklist, evidence, markdown, scripts};

/// Why a package could not be rendered or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A secret value would have been written into a file. Nothing was written.
    #[error(
        "`{file}` would contain the value of secret `{variable}`; nothing was written. Reference the variable instead of its value."
    )]
    SecretInPackage {
        /// The package file.
        file: String,
        /// The secret variable.
        variable: String,
    },
    /// A path would land outside the package.
    #[error("`{0}` is not a relative path inside the package (config files live under `config/`)")]
    BadPath(String),
    /// The target is a package already, and replacing it was not asked for.
    #[error("`{}` holds a handoff package already; ask to replace it (`--force`) or choose another directory", .0.display())]
    Exists(PathBuf),
    /// The target exists and is not a package this writer wrote (or was changed since):
    /// it is never replaced, with or without `--force`.
    #[error("`{}` is not a handoff package written by runbook ({why}); nothing was replaced: choose another directory, or move it away yourself", path.display())]
    NotAPackage {
        /// The target.
        path: PathBuf,
        /// What makes it not a package.
        why: String,
    },
    /// Writing failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The evidence of a sandbox run, for a tested package.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The report.
    pub report: &'a Report,
    /// The redacted sandbox log.
    pub log: Option<&'a str>,
}

/// A rendered handoff package: relative path -> bytes, in sorted order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Package {
    files: BTreeMap<String, Vec<u8>>,
}

/// The runbook as shipped: its sandbox values are the ones the run used (`values`, when
/// it ran), and secret variables keep their source, not their sandbox value.
fn shipped(runbook: &Runbook, values: &BTreeMap<String, String>) -> Runbook {
    let mut shipped = runbook.clone();
    for v in &mut shipped.variables {
        // A value that must stay hidden is never recorded, whatever the caller passed.
        if !v.hides_value()
            && let Some(used) = values.get(&v.name)
        {
            v.sandbox = Some(used.clone());
        }
        if v.is_secret() && v.sandbox.take().is_some() {
            v.generate = true;
        }
    }
    shipped
}

/// The forms a value takes once written into the package's formats.
fn encodings(value: &str) -> Vec<String> {
    let json = serde_json::to_string(value).unwrap_or_default();
    let mut forms = vec![
        value.to_owned(),
        json.trim_start_matches('"')
            .trim_end_matches('"')
            .to_owned(),
        crate::text::xml_escape(value),
    ];
    if value.trim().len() >= 4 {
        forms.push(value.trim().to_owned());
    }
    forms.retain(|f| !f.is_empty());
    forms.sort();
    forms.dedup();
    forms
}

/// Every string of the runbook, the report and the log, before any formatting: a secret
/// there would reach the package in some form.
fn check_inputs(
    runbook: &Runbook,
    evidence: Option<Evidence<'_>>,
    secrets: &[(String, String)],
) -> Result<(), RenderError> {
    fn holds(v: &serde_json::Value, secret: &str) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains(secret),
            serde_json::Value::Array(a) => a.iter().any(|x| holds(x, secret)),
            serde_json::Value::Object(o) => o
                .iter()
                .any(|(k, x)| k.contains(secret) || holds(x, secret)),
            _ => false,
        }
    }
    let mut inputs = vec![(
        "runbook.yaml",
        serde_json::to_value(runbook).unwrap_or_default(),
    )];
    if let Some(e) = evidence {
        inputs.push((
            "test-results/test-summary.yaml",
            serde_json::to_value(e.report).unwrap_or_default(),
        ));
        if let Some(log) = e.log {
            inputs.push((
                "test-results/sandbox-log.txt",
                serde_json::Value::String(log.to_owned()),
            ));
        }
    }
    for (name, value) in secrets {
        for (file, input) in &inputs {
            if holds(input, value) {
                return Err(RenderError::SecretInPackage {
                    file: (*file).to_owned(),
                    variable: name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The file of checksums of every other file.
const SUMS: &str = "SHA256SUMS";

/// The file that marks a directory as a package this writer wrote; it holds the
/// package's [id](Package::id).
pub const MARKER: &str = ".runbook-package";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new directory `<prefix>-<n>` under `parent`, created exclusively.
fn unique_dir(parent: &Path, prefix: &str) -> Result<PathBuf, RenderError> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for n in 0..1000u32 {
        let dir = parent.join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            seed.wrapping_add(n)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(RenderError::Io {
                    action: "create",
                    path: dir,
                    source,
                });
            }
        }
    }
    Err(RenderError::Io {
        action: "create a staging directory in",
        path: parent.to_owned(),
        source: std::io::Error::other("every name is taken"),
    })
}

/// Whether a package may be written at `target`: nothing there, an empty directory, or
/// (only when `replace`) a package this writer wrote that nobody has changed since,
/// checked file by file against its `SHA256SUMS`. Anything else is refused, so writing a
/// package never deletes a file it did not write. Callers check before long work (a
/// sandbox run), so that a bad target fails fast.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("notes.txt"), "mine")?;
/// let err = runbook_render::check_target(dir.path(), true).unwrap_err();
/// assert!(err.to_string().contains("notes.txt"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_target(target: &Path, replace: bool) -> Result<(), RenderError> {
    let not = |why: String| RenderError::NotAPackage {
        path: target.to_owned(),
        why,
    };
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RenderError::Io {
                action: "inspect",
                path: target.to_owned(),
                source,
            });
        }
    };
    if meta.file_type().is_symlink() {
        return Err(not("it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(not("it is a file, not a directory".into()));
    }
    if std::fs::read_dir(target).is_ok_and(|mut d| d.next().is_none()) {
        return Ok(());
    }
    let sums = std::fs::read(target.join(SUMS)).map_err(|_| {
        let first = std::fs::read_dir(target)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .unwrap_or_default();
        not(format!("it holds `{first}` and has no `{SUMS}`"))
    })?;
    let marker = std::fs::read_to_string(target.join(MARKER))
        .map_err(|_| not(format!("it has no `{MARKER}` marker")))?;
    if !marker.contains(&format!("id: {}", sha256_hex(&sums))) {
        return Err(not(format!("its `{MARKER}` does not match its `{SUMS}`")));
    }
    let listed: BTreeMap<String, String> = String::from_utf8_lossy(&sums)
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(hash, path)| (path.to_owned(), hash.to_owned()))
        .collect();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let entries = std::fs::read_dir(target.join(&rel)).map_err(|source| RenderError::Io {
            action: "read",
            path: target.join(&rel),
            source,
        })?;
        for entry in entries.flatten() {
            let path = rel.join(entry.file_name());
            let shown = path.to_string_lossy().into_owned();
            let kind = entry.file_type().map_err(|source| RenderError::Io {
                action: "inspect",
                path: entry.path(),
                source,
            })?;
            if kind.is_dir() {
                pending.push(path);
            } else if shown == SUMS || shown == MARKER {
            } else if !kind.is_file() {
                return Err(not(format!("`{shown}` is not a file the package wrote")));
            } else if let Some(hash) = listed.get(&shown) {
                let bytes = std::fs::read(entry.path()).map_err(|source| RenderError::Io {
                    action: "read",
                    path: entry.path(),
                    source,
                })?;
                if sha256_hex(&bytes) != *hash {
                    return Err(not(format!(
                        "`{shown}` was changed since the package was written"
                    )));
                }
            } else {
                return Err(not(format!("`{shown}` is not a file of the package")));
            }
        }
    }
    if replace {
        Ok(())
    } else {
        Err(RenderError::Exists(target.to_owned()))
    }
}

/// Reads a package this writer wrote back from `dir`: every file `SHA256SUMS` lists, as it
/// is on disk now, and the files whose content changed since (a human edited a config
/// file, say). Files the package did not write are not read.
///
/// A package holding a symbolic link anywhere is refused (naming it), and no file is read
/// through one: whoever reads a package (often root, to rehearse it) would otherwise copy
/// the file it points to into a sandbox and its evidence.
pub fn read_package(dir: &Path) -> Result<(Package, Vec<String>), RenderError> {
    let not = |why: String| RenderError::NotAPackage {
        path: dir.to_owned(),
        why,
    };
    if let Some(link) = first_link(dir)? {
        return Err(not(format!("`{link}` is a symbolic link")));
    }
    let root = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RenderError::Io {
        action: "open",
        path: dir.to_owned(),
        source: e.into(),
    })?;
    let read = |path: &str| read_no_links(&root, dir, path);
    let sums = read(SUMS).map_err(|_| not(format!("it has no `{SUMS}`")))?;
    let marker = read(MARKER)
        .ok()
        .and_then(|m| String::from_utf8(m).ok())
        .ok_or_else(|| not(format!("it has no `{MARKER}` marker")))?;
    if !marker.contains(&format!("id: {}", sha256_hex(&sums))) {
        return Err(not(format!("its `{MARKER}` does not match its `{SUMS}`")));
    }
    let mut files = BTreeMap::new();
    let mut edited = Vec::new();
    for line in String::from_utf8_lossy(&sums).lines() {
        let Some((hash, path)) = line.split_once("  ") else {
            continue;
        };
        if !safe_relative(path) {
            return Err(RenderError::BadPath(path.to_owned()));
        }
        let bytes = read(path)?;
        if sha256_hex(&bytes) != hash {
            edited.push(path.to_owned());
        }
        files.insert(path.to_owned(), bytes);
    }
    files.insert(SUMS.to_owned(), sums);
    files.insert(MARKER.to_owned(), marker.into_bytes());
    Ok((Package { files }, edited))
}

/// The first symbolic link under `dir`, relative to it.
fn first_link(dir: &Path) -> Result<Option<String>, RenderError> {
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let entries = std::fs::read_dir(dir.join(&rel)).map_err(|source| RenderError::Io {
            action: "read",
            path: dir.join(&rel),
            source,
        })?;
        for entry in entries.flatten() {
            let path = rel.join(entry.file_name());
            match entry.file_type() {
                Ok(kind) if kind.is_symlink() => {
                    return Ok(Some(path.to_string_lossy().into_owned()));
                }
                Ok(kind) if kind.is_dir() => pending.push(path),
                _ => {}
            }
        }
    }
    Ok(None)
}

/// The regular file `path` beneath the open directory `root` (shown as `dir`), resolved by
/// the kernel without following any symbolic link, even one planted after the check.
fn read_no_links(root: &OwnedFd, dir: &Path, path: &str) -> Result<Vec<u8>, RenderError> {
    let full = dir.join(path);
    let io = |source: std::io::Error| RenderError::Io {
        action: "read",
        path: full.clone(),
        source,
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = match nix::fcntl::openat2(root, path, how) {
        Ok(fd) => fd,
        Err(Errno::ELOOP) => {
            return Err(RenderError::NotAPackage {
                path: dir.to_owned(),
                why: format!("`{path}` is a symbolic link or lies behind one"),
            });
        }
        Err(e) => return Err(io(e.into())),
    };
    let mut file = std::fs::File::from(fd);
    if !file.metadata().map_err(io)?.is_file() {
        return Err(RenderError::NotAPackage {
            path: dir.to_owned(),
            why: format!("`{path}` is not a regular file"),
        });
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Moves every entry of `target` (but `staging` and `old`, inside it) into `old`, then
/// every entry of `staging` into `target`. On a failure every move done is undone.
fn swap_in(target: &Path, staging: &Path, old: &Path) -> Result<(), RenderError> {
    let names = |dir: &Path| -> Result<Vec<std::ffi::OsString>, RenderError> {
        let list = std::fs::read_dir(dir).map_err(|source| RenderError::Io {
            action: "read",
            path: dir.to_owned(),
            source,
        })?;
        Ok(list.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
    };
    let ours = [staging.file_name(), old.file_name()];
    // Both listings before any move: the old entries aside, then the new ones in.
    let mut moves: Vec<(PathBuf, PathBuf)> = names(target)?
        .into_iter()
        .filter(|n| !ours.contains(&Some(n.as_os_str())))
        .map(|n| (target.join(&n), old.join(&n)))
        .collect();
    moves.extend(
        names(staging)?
            .into_iter()
            .map(|n| (staging.join(&n), target.join(&n))),
    );
    for (i, (from, to)) in moves.iter().enumerate() {
        if let Err(source) = std::fs::rename(from, to) {
            for (from, to) in moves[..i].iter().rev() {
                let _ = std::fs::rename(to, from);
            }
            return Err(RenderError::Io {
                action: "move",
                path: from.clone(),
                source,
            });
        }
    }
    Ok(())
}

/// Files that are written executable.
fn is_script(path: &str) -> bool {
    path.starts_with("scripts/") && path.ends_with(".sh")
}

fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !path.contains('\\')
}

impl Package {
    /// Renders the package of `runbook`, tested (`Some(evidence)`) or not.
    ///
    /// `secrets` are values that must not appear in any file (the generated secrets of
    /// the run); the runbook's own secret sandbox values are always checked. Rendering
    /// reads no clock: the same inputs give the same bytes.
    ///
    /// ```
    /// use runbook_core::{Check, Runbook, Step};
    /// let runbook = Runbook::builder("hello")
    ///     .step(Step::new("greet", "Greet").run("echo hello").read_only()
    ///         .verify(Check::command("echo hello").stdout_equals("hello")))
    ///     .build()?.runbook;
    /// let package = runbook_render::Package::render(&runbook, None, &[])?;
    /// assert!(package.text("README.md").unwrap().contains("**Not tested.**"));
    /// assert!(package.get("scripts/deploy.sh").is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn render(
        runbook: &Runbook,
        evidence: Option<Evidence<'_>>,
        secrets: &[&str],
    ) -> Result<Package, RenderError> {
        Package::render_with(runbook, &BTreeMap::new(), evidence, secrets)
    }

    /// Renders the package of a sandbox run of `runbook`, as [`render`](Package::render)
    /// does, recording `values` (the values the run used, by variable name) as the
    /// variables' sandbox values: in `runbook.yaml`, the README and the checklist. A value
    /// of a variable that hides its value (a secret, a generated value) is never recorded.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use runbook_core::{Category, Check, Runbook, Step, Variable};
    /// use runbook_core::report::Report;
    /// let runbook = Runbook::builder("hello")
    ///     .variable(Variable::new("PORT", Category::Endpoint).sandbox("8080").production("yours"))
    ///     .step(Step::new("greet", "Greet").run("echo \"$PORT\"").read_only()
    ///         .verify(Check::command("true")))
    ///     .build()?.runbook;
    /// let report = Report::default();
    /// let evidence = runbook_render::Evidence { report: &report, log: None };
    /// let used = BTreeMap::from([("PORT".to_owned(), "18080".to_owned())]);
    /// let package = runbook_render::Package::render_run(&runbook, &used, evidence, &[])?;
    /// assert!(package.text("runbook.yaml").unwrap().contains(r#"sandbox: "18080""#));
    /// assert!(package.text("README.md").unwrap().contains("| `PORT` | `18080` |"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn render_run(
        runbook: &Runbook,
        values: &BTreeMap<String, String>,
        evidence: Evidence<'_>,
        secrets: &[&str],
    ) -> Result<Package, RenderError> {
        Package::render_with(runbook, values, Some(evidence), secrets)
    }

    fn render_with(
        runbook: &Runbook,
        values: &BTreeMap<String, String>,
        evidence: Option<Evidence<'_>>,
        secrets: &[&str],
    ) -> Result<Package, RenderError> {
        // The runbook's literal secret values, then the run's: none may be shipped.
        let mut all: Vec<(String, String)> = runbook
            .variables
            .iter()
            .filter(|v| v.is_secret())
            .filter_map(|v| v.sandbox.clone().map(|s| (v.name.clone(), s)))
            .collect();
        all.extend(
            secrets
                .iter()
                .map(|s| ("(a secret of the run)".to_owned(), (*s).to_owned())),
        );
        all.retain(|(_, s)| !s.is_empty());
        // A secret's sandbox value never leaves the sandbox, not even in runbook.yaml.
        let shipped = shipped(runbook, values);
        let runbook = &shipped;
        check_inputs(runbook, evidence, &all)?;
        let report = evidence.map(|e| e.report);
        let mut files = BTreeMap::new();
        let mut add = |path: &str, text: String| {
            files.insert(path.to_owned(), text.into_bytes());
        };
        add("README.md", markdown::readme(runbook, report));
        add("runbook.yaml", runbook_core::to_yaml_string(runbook));
        add("runbook.schema.json", runbook_core::json_schema());
        add(
            "adaptation-checklist.md",
            checklist::adaptation_checklist(runbook, report),
        );
        add("scripts/deploy.sh", scripts::deploy_script(runbook, report));
        add(
            "scripts/rollback.sh",
            scripts::rollback_script(runbook, report),
        );
        add("scripts/verify.sh", scripts::verify_script(runbook, report));
        add("versions.yaml", evidence::versions(runbook, report));
        if let Some(e) = evidence {
            add(
                "test-results/test-summary.yaml",
                evidence::test_summary(e.report),
            );
            add("test-results/junit.xml", evidence::junit(runbook, e.report));
            if let Some(r) = &e.report.rehearsal {
                add("test-results/rehearsal.yaml", runbook_core::to_yaml(r));
            }
            add(
                "test-results/sandbox-log.txt",
                e.log.unwrap_or("(no sandbox log was kept)\n").to_owned(),
            );
        }
        for f in &runbook.config_files {
            if !f.path.starts_with("config/") || !safe_relative(&f.path) {
                return Err(RenderError::BadPath(f.path.clone()));
            }
            add(&f.path, f.content.clone());
        }
        let package = Package { files };
        package.check_outputs(&all)?;
        Ok(package.with_checksums())
    }

    /// Every file, for every secret in every form it could be written in (raw, and
    /// escaped for JSON/YAML, XML and markdown).
    fn check_outputs(&self, secrets: &[(String, String)]) -> Result<(), RenderError> {
        for (name, value) in secrets {
            let forms = encodings(value);
            for (path, bytes) in &self.files {
                if forms
                    .iter()
                    .any(|f| bytes.windows(f.len()).any(|w| w == f.as_bytes()))
                {
                    return Err(RenderError::SecretInPackage {
                        file: path.clone(),
                        variable: name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn with_checksums(mut self) -> Package {
        let mut sums = String::new();
        for (path, bytes) in &self.files {
            sums.push_str(&format!("{}  {path}\n", sha256_hex(bytes)));
        }
        let marker = format!(
            "runbook handoff package\nid: {}\n",
            sha256_hex(sums.as_bytes())
        );
        self.files.insert(SUMS.into(), sums.into_bytes());
        self.files.insert(MARKER.into(), marker.into_bytes());
        self
    }

    /// The package's id: the SHA-256 of its `SHA256SUMS`, so of every file.
    pub fn id(&self) -> String {
        sha256_hex(self.get(SUMS).unwrap_or_default())
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// The file at `path` as text.
    pub fn text(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Every path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Writes the package to `target`: it is built in a temporary directory and renamed
    /// into place, so a failure never leaves half a package. An existing `target` (an
    /// empty directory, or with `replace` a package this writer wrote) is written in
    /// place: the directory itself (its owner, its mode, a mount point) stays.
    pub fn write_to(&self, target: &Path, replace: bool) -> Result<(), RenderError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| RenderError::Io {
                action,
                path,
                source,
            }
        };
        check_target(target, replace)?;
        // `check_target` let through only a real directory (never a link) or nothing.
        if std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            return self.write_in_place(target);
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
        let name = target
            .file_name()
            .map_or_else(|| "package".into(), |n| n.to_string_lossy().into_owned());
        let staging = unique_dir(&parent, &format!(".{name}.partial"))?;
        let result = self.write_files(&staging).and_then(|()| {
            std::fs::rename(&staging, target).map_err(io("rename into place", target))
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result
    }

    /// Writes the package into the existing directory `target`, which stays: its owner,
    /// its mode, a mount point are an operator's choice. The files are staged inside it,
    /// the entries already there (none, or a package checked by [`check_target`]) moved
    /// aside inside it, and the new ones renamed into place; on a failure the old entries
    /// are moved back.
    fn write_in_place(&self, target: &Path) -> Result<(), RenderError> {
        let staging = unique_dir(target, ".runbook-partial")?;
        let result = self.write_files(&staging).and_then(|()| {
            let old = unique_dir(target, ".runbook-old")?;
            let swapped = swap_in(target, &staging, &old);
            let cleaned = std::fs::remove_dir_all(&old).map_err(|source| RenderError::Io {
                action: "remove the old package",
                path: old.clone(),
                source,
            });
            swapped.and(cleaned)
        });
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    fn write_files(&self, root: &Path) -> Result<(), RenderError> {
        for (path, bytes) in &self.files {
            if !safe_relative(path) {
                return Err(RenderError::BadPath(path.clone()));
            }
            let full = root.join(path);
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir).map_err(|source| RenderError::Io {
                    action: "create",
                    path: dir.to_owned(),
                    source,
                })?;
            }
            let mut f = std::fs::File::create(&full).map_err(|source| RenderError::Io {
                action: "create",
                path: full.clone(),
                source,
            })?;
            f.write_all(bytes).map_err(|source| RenderError::Io {
                action: "write",
                path: full.clone(),
                source,
            })?;
            let mode = if is_script(path) { 0o755 } else { 0o644 };
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).map_err(
                |source| RenderError::Io {
                    action: "chmod",
                    path: full.clone(),
                    source,
                },
            )?;
        }
        Ok(())
    }
}
