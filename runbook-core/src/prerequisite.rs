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

/// One bound of a lowered semver requirement: an operator (`>=`, `>`, `<`, `<=`, `=`) and
/// a `major.minor.patch` version.
pub type Bound = (&'static str, (u64, u64, u64));

/// The bounds of a semver requirement, with cargo's meaning of partial versions, tilde,
/// caret and wildcards (pre-release tags ignored): what a shell script can compare.
///
/// ```
/// let req = semver::VersionReq::parse("^1.2").unwrap();
/// assert_eq!(runbook_core::prerequisite::bounds(&req), [(">=", (1, 2, 0)), ("<", (2, 0, 0))]);
/// ```
pub fn bounds(req: &semver::VersionReq) -> Vec<Bound> {
    use semver::Op;
    let mut out = Vec::new();
    for c in &req.comparators {
        let (i, j, k) = (c.major, c.minor, c.patch);
        let lo = (i, j.unwrap_or(0), k.unwrap_or(0));
        // The first version past the precision given: 1 -> 2.0.0, 1.2 -> 1.3.0.
        let next = match (j, k) {
            (None, _) => (i + 1, 0, 0),
            (Some(j), None) => (i, j + 1, 0),
            (Some(j), Some(k)) => (i, j, k + 1),
        };
        match c.op {
            Op::Exact | Op::Wildcard => match k {
                Some(_) if c.op == Op::Exact => out.push(("=", lo)),
                _ => {
                    out.push((">=", lo));
                    out.push(("<", next));
                }
            },
            Op::Greater => match k {
                Some(_) => out.push((">", lo)),
                None => out.push((">=", next)),
            },
            Op::GreaterEq => out.push((">=", lo)),
            Op::Less => out.push(("<", lo)),
            Op::LessEq => match k {
                Some(_) => out.push(("<=", lo)),
                None => out.push(("<", next)),
            },
            Op::Tilde => {
                out.push((">=", lo));
                out.push((
                    "<",
                    if j.is_some() {
                        (i, lo.1 + 1, 0)
                    } else {
                        (i + 1, 0, 0)
                    },
                ));
            }
            Op::Caret => {
                out.push((">=", lo));
                let upper = match (i, j, k) {
                    (0, Some(0), Some(k)) => (0, 0, k + 1),
                    (0, Some(j), _) if j > 0 || k.is_none() => (0, j + 1, 0),
                    (0, None, _) => (1, 0, 0),
                    (i, _, _) => (i + 1, 0, 0),
                };
                out.push(("<", upper));
            }
            _ => out.push((">=", lo)),
        }
    }
    out
}

/// Whether some version satisfies both requirements (pre-release tags ignored): a lesson
/// learnt with `>=15, <16` applies to a runbook that needs `^15.4`, not to one that needs
/// `>=16`.
///
/// ```
/// use runbook_core::prerequisite::overlaps;
/// let req = |s| semver::VersionReq::parse(s).unwrap();
/// assert!(overlaps(&req(">=15, <16"), &req("^15.4")));
/// assert!(!overlaps(&req(">=15, <16"), &req(">=16")));
/// assert!(overlaps(&req("*"), &req("=1.2.3")));
/// ```
pub fn overlaps(a: &semver::VersionReq, b: &semver::VersionReq) -> bool {
    let mut lo = (0, 0, 0);
    let mut hi = (u64::MAX, 0, 0);
    let past = |v: (u64, u64, u64)| (v.0, v.1, v.2.saturating_add(1));
    for (op, v) in bounds(a).into_iter().chain(bounds(b)) {
        let (l, h) = match op {
            ">=" => (v, hi),
            ">" => (past(v), hi),
            "<" => (lo, v),
            "<=" => (lo, past(v)),
            _ => (v, past(v)),
        };
        lo = lo.max(l);
        hi = hi.min(h);
    }
    lo < hi
}
