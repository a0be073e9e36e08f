//! Tools the runbook needs, with the versions it was tested with.

use std::sync::OnceLock;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A tool that must be present, with a semver requirement on its version.
///
/// ```
/// use runbook_core::Prerequisite;
/// let psql = Prerequisite::new("psql", ">=15, <16");
/// let v = psql.parse_version("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)").unwrap();
/// assert_eq!(v.to_string(), "15.18.0");
/// assert!(psql.requirement().unwrap().matches(&v));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prerequisite {
    /// The tool's command name (`kubectl`, `helm`, `psql`).
    pub tool: String,
    /// A semver requirement (`>=1.28, <1.31`); `*` for any version.
    pub version: String,
    /// The command that prints the version (default: `<tool> --version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_command: Option<String>,
    /// A regex whose first capture group is the version (default: the first `N.N[.N]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_pattern: Option<String>,
}

fn default_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(\d+\.\d+(?:\.\d+)?(?:-[0-9A-Za-z.-]+)?)").expect("valid regex"))
}

impl Prerequisite {
    /// A tool with a semver requirement.
    pub fn new(tool: impl Into<String>, requirement: impl Into<String>) -> Self {
        Prerequisite {
            tool: tool.into(),
            version: requirement.into(),
            version_command: None,
            version_pattern: None,
        }
    }

    /// Sets the command that prints the version.
    pub fn version_command(mut self, command: impl Into<String>) -> Self {
        self.version_command = Some(command.into());
        self
    }

    /// Sets the regex whose first capture group is the version.
    pub fn version_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.version_pattern = Some(pattern.into());
        self
    }

    /// The command that prints the version.
    pub fn detect_command(&self) -> String {
        self.version_command
            .clone()
            .unwrap_or_else(|| format!("{} --version", self.tool))
    }

    /// The parsed requirement.
    pub fn requirement(&self) -> Result<semver::VersionReq, semver::Error> {
        semver::VersionReq::parse(&self.version)
    }

    /// Extracts the version from the output of [`Prerequisite::detect_command`].
    /// Two-part versions (`15.18`) are completed to `15.18.0`.
    pub fn parse_version(&self, output: &str) -> Option<semver::Version> {
        let custom;
        let re = match &self.version_pattern {
            Some(p) => {
                custom = Regex::new(p).ok()?;
                &custom
            }
            None => default_pattern(),
        };
        let caps = re.captures(output)?;
        let text = caps.get(1).or_else(|| caps.get(0))?.as_str();
        parse_lenient(text)
    }
}

/// Parses `1.29`, `v1.29.3`, `15.18` or `3.13.0-rc.1` as a semver version.
pub fn parse_lenient(text: &str) -> Option<semver::Version> {
    let text = text.trim().trim_start_matches('v');
    if let Ok(v) = semver::Version::parse(text) {
        return Some(v);
    }
    let (core, pre) = match text.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (text, None),
    };
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let mut v = semver::Version::new(major, minor, patch);
    if let Some(pre) = pre {
        v.pre = semver::Prerelease::new(pre).ok()?;
    }
    Some(v)
}
