//! Feedback: what a package's script writes when it fails on a real target.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ApiVersion;

/// The kind of a feedback document; always `Feedback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum FeedbackKind {
    /// A feedback file.
    #[default]
    Feedback,
}

/// Which script failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// `deploy.sh`.
    Deploy,
    /// `verify.sh`.
    Verify,
    /// `rollback.sh`.
    Rollback,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Deploy => "deploy",
            Phase::Verify => "verify",
            Phase::Rollback => "rollback",
        })
    }
}

/// A failure on a real target, as `deploy.sh`, `verify.sh` or `rollback.sh` recorded it
/// in `feedback/<UTC time>-<step>.yaml`: the gap the sandbox did not catch.
/// [`crate::Lesson::from_feedback`] turns it into a lesson.
///
/// Secret variables' values are masked (`***`) by the script before the file is written.
///
/// ```
/// let feedback = runbook_core::feedback_from_yaml_str(r#"
/// apiVersion: runbook/v1
/// kind: Feedback
/// package: 5f0c…
/// runbook: { name: postgres, version: 1.0.0, platform: linux }
/// phase: deploy
/// step: start-server
/// command: pg_ctl -D "$PGDATA" -l server.log start
/// exitCode: 1
/// stderr: ["pg_ctl: could not start server"]
/// target: { os: Debian GNU/Linux 12, kernel: 6.1.0, architecture: x86_64,
///           tools: [{ tool: pg_ctl, required: ">=15, <16", found: 15.18.0 }] }
/// time: 2026-11-27T10:00:00Z
/// "#)?;
/// assert_eq!(feedback.step, "start-server");
/// assert_eq!(feedback.error_excerpt(), "pg_ctl: could not start server");
/// # Ok::<(), runbook_core::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Feedback {
    /// Always `runbook/v1`.
    pub api_version: ApiVersion,
    /// Always `Feedback`.
    pub kind: FeedbackKind,
    /// The package id: the SHA-256 of its `SHA256SUMS`.
    #[serde(default)]
    pub package: String,
    /// The runbook the package was rendered from.
    pub runbook: RunbookRef,
    /// Which script failed.
    pub phase: Phase,
    /// The step that failed.
    pub step: String,
    /// The failing check's name, when a check failed rather than the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The command that failed, as the runbook writes it (variables unexpanded).
    pub command: String,
    /// Its exit code (124 when it timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The last lines of its standard output, secrets masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stdout: Vec<String>,
    /// The last lines of its standard error, secrets masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr: Vec<String>,
    /// What the target is.
    #[serde(default)]
    pub target: TargetFacts,
    /// When it failed (RFC 3339, UTC).
    #[serde(default)]
    pub time: String,
}

/// The runbook a package came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunbookRef {
    /// Its name.
    pub name: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Its target platform (`linux`, `kubernetes`), when it declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// Facts about the target a script ran on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetFacts {
    /// The operating system (`PRETTY_NAME` of `/etc/os-release`, or `uname -s`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// The kernel release (`uname -r`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernel: String,
    /// The machine architecture (`uname -m`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    /// The user the script ran as.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The tools the target pre-flight found (empty with `--no-preflight`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<FoundTool>,
}

/// A prerequisite as the target pre-flight found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FoundTool {
    /// The tool.
    pub tool: String,
    /// The runbook's requirement.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub required: String,
    /// The version found, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

impl Feedback {
    /// The line that best says what went wrong: the last line of standard error that
    /// reads like an error (`could not`, `failed`, `denied`, …), else its last non-empty
    /// line, else the same of standard output, else the exit code.
    pub fn error_excerpt(&self) -> String {
        const ERRORISH: &[&str] = &[
            "error",
            "fail",
            "could not",
            "cannot",
            "can't",
            "unable",
            "denied",
            "refused",
            "not found",
            "no such",
            "invalid",
            "in use",
            "timed out",
            "fatal",
        ];
        let last = |lines: &[String], pick: &dyn Fn(&str) -> bool| {
            lines
                .iter()
                .rev()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && pick(l))
                .map(str::to_owned)
        };
        let errorish = |l: &str| {
            let l = l.to_lowercase();
            ERRORISH.iter().any(|e| l.contains(e))
        };
        last(&self.stderr, &errorish)
            .or_else(|| last(&self.stdout, &errorish))
            .or_else(|| last(&self.stderr, &|_| true))
            .or_else(|| last(&self.stdout, &|_| true))
            .unwrap_or_else(|| match self.exit_code {
                Some(code) => format!("exit code {code}"),
                None => "failed".to_owned(),
            })
    }
}

/// An error line without what differs from one occurrence to the next: timestamps
/// (`2026-11-29 17:21:38.197 UTC`, `2026-11-29T17:21:38Z`, `17:21:38`), process ids
/// (`[6638]`, `pid 6638`) and hex ids (`0x7f3a…`, UUIDs, runs of 8 or more hex digits
/// with a letter and a digit in them), with the spaces around them collapsed. What is left is what a
/// known issue and a lesson's title should say, and what the next occurrence will print.
///
/// ```
/// use runbook_core::feedback::normalise_error;
/// assert_eq!(
///     normalise_error("2026-11-29 17:21:38.197 UTC [6638] FATAL:  could not bind IPv4 address \"127.0.0.1\": Address already in use"),
///     "FATAL: could not bind IPv4 address \"127.0.0.1\": Address already in use"
/// );
/// assert_eq!(normalise_error("container 3f9d2c71e0ab exited (pid 412)"), "container exited");
/// ```
pub fn normalise_error(text: &str) -> String {
    static NOISE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(concat!(
            // A date with an optional time and zone, or a time of day alone.
            r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?",
            r"(?:\s?(?:Z|UTC|GMT|CES?T|EST|EDT|PST|PDT|[+-]\d{2}:?\d{2})\b)?",
            r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:\s?(?:Z|UTC|GMT)\b)?",
            // Process ids.
            r"|\[\d+\]|\(?\b[Pp][Ii][Dd][ =:]\s*\d+\)?",
            // Hex ids: 0x…, UUIDs, long runs of hex digits holding a digit.
            r"|\b0x[0-9a-fA-F]+\b",
            r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
            r"|\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*\b",
        ))
        .expect("a valid pattern")
    });
    let cleaned = NOISE.replace_all(text, |c: &regex::Captures<'_>| {
        let m = &c[0];
        // The last alternative matches every number: only a long one with a letter or of 8
        // digits and more is an id (a port or an exit code stays).
        let bare_hex = m.chars().all(|ch| ch.is_ascii_hexdigit());
        if bare_hex && (m.len() < 8 || !m.chars().any(|ch| ch.is_ascii_alphabetic())) {
            m.to_owned()
        } else {
            String::new()
        }
    });
    let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .trim_matches(|c: char| c == ':' || c == '-' || c == ',' || c.is_whitespace())
        .to_owned()
}
