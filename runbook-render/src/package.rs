//! The handoff package: every file, checked for secrets, hashed, written atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

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
    /// The target exists and replacing it was not asked for.
    #[error("`{}` already exists; remove it or ask to replace it (`--force`)", .0.display())]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
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

/// The runbook as shipped: secret variables keep their source, not their sandbox value.
fn without_secret_values(runbook: &Runbook) -> Runbook {
    let mut shipped = runbook.clone();
    for v in &mut shipped.variables {
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
        let shipped = without_secret_values(runbook);
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
        add("scripts/deploy.sh", scripts::deploy_script(runbook));
        add("scripts/rollback.sh", scripts::rollback_script(runbook));
        add("scripts/verify.sh", scripts::verify_script(runbook));
        add("versions.yaml", evidence::versions(runbook, report));
        if let Some(e) = evidence {
            add(
                "test-results/test-summary.yaml",
                evidence::test_summary(e.report),
            );
            add("test-results/junit.xml", evidence::junit(runbook, e.report));
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
            let digest = Sha256::digest(bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            sums.push_str(&format!("{hex}  {path}\n"));
        }
        self.files.insert("SHA256SUMS".into(), sums.into_bytes());
        self
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

    /// Writes the package to `target` atomically: it is built in a temporary directory
    /// next to `target` and renamed into place, so a failure never leaves half a
    /// package. An existing `target` is replaced only when `replace` is true.
    pub fn write_to(&self, target: &Path, replace: bool) -> Result<(), RenderError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| RenderError::Io {
                action,
                path,
                source,
            }
        };
        if target.exists() && !replace {
            return Err(RenderError::Exists(target.to_owned()));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
        let name = target
            .file_name()
            .map_or_else(|| "package".into(), |n| n.to_string_lossy().into_owned());
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let result = self.write_files(&staging).and_then(|()| {
            if target.exists() {
                let old = parent.join(format!(".{name}.old-{}", std::process::id()));
                std::fs::rename(target, &old).map_err(io("move aside", target))?;
                std::fs::rename(&staging, target).map_err(io("rename into place", target))?;
                std::fs::remove_dir_all(&old).map_err(io("remove the old package", &old))
            } else {
                std::fs::rename(&staging, target).map_err(io("rename into place", target))
            }
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
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
