//! What a sandbox run recorded: the evidence that goes into the handoff package.
//!
//! The executor (`runbook-exec`) fills these; the renderer (`runbook-render`) reads
//! them. They live here, with no runtime attached, so that rendering needs no executor
//! and a report can be read back from `test-summary.yaml`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Lifetime;

/// The result of testing a runbook in a sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The runbook's name.
    pub runbook: String,
    /// The overall verdict.
    pub verdict: Verdict,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// Wall time of the whole run in milliseconds.
    pub duration_ms: u64,
    /// The sandbox the run used.
    pub sandbox: SandboxDescription,
    /// Detected versions of the prerequisites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<ToolVersion>,
    /// One record per step run, in order.
    pub steps: Vec<StepRecord>,
    /// The rollback exercise: every rollback run after every step had passed, when one
    /// was run. Never a rollback that restored the sandbox (those are in
    /// [`restores`](Report::restores)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackExercise>,
    /// The rollbacks run before every step had passed, in the order they ran: to restore
    /// the sandbox after a failure (giving up, or to start over), or to go back before a
    /// step that passed and was then amended
    /// ([`Session::rewind_to`](../../runbook_exec/struct.Session.html)). Each says why
    /// ([`RollbackExercise::purpose`]). Read from `rewinds` too, its former name.
    #[serde(default, alias = "rewinds", skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<RollbackExercise>,
    /// The rehearsal of the package in a second sandbox, when one was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<Rehearsal>,
    /// The run options in force, so that the package's scripts use what was tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<RunSettings>,
}

/// The engine's defaults as they were for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSettings {
    /// The timeout of a step without its own, in milliseconds.
    pub step_timeout_ms: u64,
    /// The timeout of one check attempt without a deadline, in milliseconds.
    pub check_timeout_ms: u64,
}

/// Pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Every step passed.
    Passed,
    /// A step failed.
    Failed,
    /// Not every step has run yet (a persistent sandbox in progress).
    #[default]
    Incomplete,
}

impl Verdict {
    /// `passed`, `failed` or `incomplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Incomplete => "incomplete",
        }
    }
}

/// A sandbox describing itself: facts that feed version metadata and limitations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxDescription {
    /// The provider (`local`, `kube`).
    pub provider: String,
    /// The sandbox id.
    pub id: String,
    /// The lifetime it was provisioned for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Lifetime>,
    /// Operating system and kernel.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// Number of nodes (1 for a local sandbox).
    pub nodes: u32,
    /// Whether the sandbox had no network beyond loopback.
    #[serde(default)]
    pub network_isolated: bool,
    /// The user commands ran as.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The `PATH` commands ran with (the rest of their environment is the locale,
    /// `HOME`, `TMPDIR`, `USER` and the runbook's variables).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Versions of the platform itself (kernel, shell, API server).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// The container image the sandbox ran in (the container provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageFacts>,
    /// The limits the sandbox ran under, when it had any.
    #[serde(default, skip_serializing_if = "crate::SandboxLimits::is_empty")]
    pub limits: crate::SandboxLimits,
}

/// The container image a sandbox ran in, as the engine knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageFacts {
    /// The name the runbook or the caller gave (`localhost/base:bookworm`).
    pub name: String,
    /// The image id (`sha256:…`): what the same name may no longer mean tomorrow.
    pub id: String,
    /// Its registry digests (`docker.io/library/debian@sha256:…`), when it was pulled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
    /// `PRETTY_NAME` of the image's `/etc/os-release`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os_release: String,
}

/// A prerequisite as found in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolVersion {
    /// The tool.
    pub tool: String,
    /// The requirement from the runbook.
    pub required: String,
    /// The detected version, if the tool was found and its version read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<String>,
    /// Whether the detected version satisfies the requirement.
    pub satisfied: bool,
    /// Where the tool was found (`command -v`), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The record of one step: every attempt, with every check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// The step id.
    pub id: String,
    /// The step title.
    pub title: String,
    /// Passed when the last attempt's command and checks all passed.
    pub status: StepStatus,
    /// Every attempt, in order (more than one when the step was amended and retried).
    pub attempts: Vec<Attempt>,
}

impl StepRecord {
    /// The last attempt.
    pub fn last(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    /// Wall time of all attempts in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.attempts.iter().map(|a| a.duration_ms).sum()
    }
}

/// The state of a step in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    /// The command and every check passed.
    Passed,
    /// The command or a check failed.
    Failed,
}

/// One run of a step's command and checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The command exactly as run.
    pub command: String,
    /// The command's outcome.
    pub output: CommandOutput,
    /// Wall time of the command and its checks in milliseconds.
    pub duration_ms: u64,
    /// Every check's verdict (none when the command itself failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckRecord>,
    /// Why the attempt failed, in one line; empty when it passed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure: String,
    /// Why the attempt failed, for a program to match on; `None` when it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<FailureKind>,
    /// What the sandbox showed when the attempt failed (pod status, events, logs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diagnostics: String,
    /// The lines that carry the cause of a failure (`FATAL: …`, `permission denied`),
    /// picked from the output, the files the attempt changed and the step's `diagnose`
    /// commands: what to read first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<String>,
    /// The ends of the text files the failed attempt created or changed in the sandbox
    /// (its logs first), collected before anything was torn down; bounded and redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileTail>,
    /// What the step's `diagnose` commands printed when the attempt failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnose: Vec<DiagnoseOutput>,
    /// How the step was changed after this attempt failed, when it was amended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amendment: Option<AmendmentRecord>,
}

/// An amendment that followed a failed attempt: what changed and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmendmentRecord {
    /// What changed, as a line diff of YAML (`-` removed, `+` added, two spaces
    /// unchanged, `…` for unchanged lines left out): the step before and after, followed
    /// by the config files whose content changed; or, for an edited runbook, the runbook.
    pub diff: String,
    /// The fix, as the known issue recorded it.
    pub fix: String,
}

/// The end of a file a failed attempt created or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileTail {
    /// Its path, relative to the sandbox's working directory.
    pub path: String,
    /// Its last lines (at most 40, from its last 4 KiB).
    pub lines: Vec<String>,
}

/// What one `diagnose` command printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiagnoseOutput {
    /// The command, as written.
    pub command: String,
    /// Its exit code (`None`: killed).
    pub exit_code: Option<i32>,
    /// Its stdout and stderr (at most 8 KiB, the end kept).
    pub output: String,
}

impl Attempt {
    /// Whether the command and every check passed.
    pub fn passed(&self) -> bool {
        self.failure.is_empty()
    }

    /// The line that says why a failed attempt failed: its first cause line (what the
    /// sandbox showed), else the first line of its failure.
    pub fn cause_line(&self) -> String {
        self.causes
            .first()
            .cloned()
            .unwrap_or_else(|| self.failure.lines().next().unwrap_or_default().to_owned())
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FailureKind {
    /// The command exited with a non-zero code.
    ExitCode {
        /// The code.
        code: i32,
    },
    /// The command was killed by a signal (not by the timeout).
    Killed,
    /// The command ran past its timeout and was killed.
    TimedOut,
    /// The caller cancelled the attempt (an MCP client's `notifications/cancelled`): the
    /// command, or the check running, was killed. It says nothing of the step itself.
    Cancelled,
    /// The command succeeded but a check did not confirm the result.
    Check {
        /// The check's index in the step's `verify` (or the rollback's).
        index: usize,
        /// The check's name.
        name: String,
    },
}

/// What a command did, with its output (redacted and capped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandOutput {
    /// The exit code; none when killed by a signal or a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Whether the timeout killed it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// Standard output, up to the cap.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    /// Standard error, up to the cap.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// Bytes of stdout past the cap, counted but not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stdout_dropped: u64,
    /// Bytes of stderr past the cap, counted but not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stderr_dropped: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CommandOutput {
    /// Whether the command exited 0 in time.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// A check's verdict: what it expected and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// The check's label (its name, or its command).
    pub name: String,
    /// The probe command, for command checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Whether it passed.
    pub passed: bool,
    /// How many attempts it took.
    pub attempts: u32,
    /// What it expected, in words.
    pub expected: String,
    /// What it saw on the last attempt.
    pub actual: String,
    /// Wall time of all attempts in milliseconds.
    pub duration_ms: u64,
}

/// Rollbacks run in reverse step order, each verified: the exercise after a successful
/// run, or a restore before it ([`purpose`](RollbackExercise::purpose) says which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackExercise {
    /// Whether every rollback and its checks passed.
    pub verdict: Verdict,
    /// One record per rolled-back step, in the order they ran (reverse step order).
    pub steps: Vec<StepRecord>,
    /// Why these rollbacks ran. Absent in older reports: the exercise.
    #[serde(default)]
    pub purpose: RollbackPurpose,
}

/// Why rollbacks ran: what a report may claim of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RollbackPurpose {
    /// The exercise: after every step had passed, every rollback ran to prove it works.
    #[default]
    Exercise,
    /// A restore before every step had passed: the sandbox put back as it was, after
    /// `failed` failed (to give up, or to start over), or on the caller's word alone.
    Restore {
        /// The step whose failure stood when the rollbacks ran, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed: Option<String>,
    },
    /// Back to before `step`, a step that had passed, to amend it and run it again.
    Redo {
        /// The step to redo.
        step: String,
    },
}

/// The package proving itself: its own scripts, run as a human would in a second, fresh
/// sandbox, with values other than the sandbox run's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rehearsal {
    /// Passed when every phase did what it must.
    pub verdict: Verdict,
    /// The rehearsal sandbox.
    pub sandbox: String,
    /// What failed, naming the phase (and the step the script named), when it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure: String,
    /// The line of the failed script's output that says why (the first naming an error,
    /// the scripts' own summary lines aside), when it printed one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cause: String,
    /// Every variable's value in the rehearsal, next to the sandbox run's (secrets masked).
    pub values: Vec<RehearsalValue>,
    /// Each script run, in order.
    pub runs: Vec<ScriptRun>,
    /// What was still there after the rollback (processes, files): must be nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<String>,
    /// Package files a human changed since it was written, rehearsed as changed
    /// (`runbook rehearse --allow-edits`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edited: Vec<String>,
}

/// A variable in the rehearsal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RehearsalValue {
    /// The variable.
    pub name: String,
    /// Its value in the sandbox run (`***` for a secret).
    pub sandbox: String,
    /// Its value in the rehearsal (`***` for a secret).
    pub rehearsal: String,
    /// How the rehearsal value was chosen, or why it could not change.
    pub how: String,
}

/// One run of a package script in the rehearsal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScriptRun {
    /// What the run proves (`deploy`, `verify`, `verify again`, `deploy again`, `rollback`,
    /// `verify after rollback`).
    pub phase: String,
    /// The command, as a human types it.
    pub command: String,
    /// What it had to do (`exit 0`, `fail`, `exit 0 or 3`).
    pub expected: String,
    /// Its exit code; `None` when killed.
    pub exit_code: Option<i32>,
    /// Whether it did what it had to.
    pub passed: bool,
    /// Wall time.
    pub duration_ms: u64,
    /// The last lines it printed (redacted), when it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
}

/// A line diff of `before` and `after`: each line prefixed with `-` (removed), `+` (added)
/// or two spaces (kept), in order. Texts of more than 2,000 lines are shown whole, removed
/// then added.
///
/// ```
/// let d = runbook_core::report::line_diff("a\nb\nc\n", "a\nB\nc\n");
/// assert_eq!(d, "  a\n-b\n+B\n  c\n");
/// ```
pub fn line_diff(before: &str, after: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let mut out = String::new();
    if a.len() > 2000 || b.len() > 2000 {
        a.iter().for_each(|l| out.push_str(&format!("-{l}\n")));
        b.iter().for_each(|l| out.push_str(&format!("+{l}\n")));
        return out;
    }
    // The longest common subsequence, from the end.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        }
    }
    out
}

/// A [`line_diff`] with only the changed lines and `context` kept lines around each
/// change; the rest becomes `  …`.
///
/// ```
/// let d = runbook_core::report::line_diff("a\nb\nc\nd\ne\nf\n", "a\nb\nc\nd\ne\nF\n");
/// assert_eq!(runbook_core::report::compact_diff(&d, 1), "  …\n  e\n-f\n+F\n");
/// ```
pub fn compact_diff(diff: &str, context: usize) -> String {
    let lines: Vec<&str> = diff.lines().collect();
    let changed: Vec<bool> = lines.iter().map(|l| !l.starts_with("  ")).collect();
    let near = |i: usize| {
        let from = i.saturating_sub(context);
        let to = (i + context).min(lines.len().saturating_sub(1));
        (from..=to).any(|j| changed[j])
    };
    let mut out = String::new();
    let mut skipped = false;
    for (i, line) in lines.iter().enumerate() {
        if near(i) {
            if skipped {
                out.push_str("  …\n");
                skipped = false;
            }
            out.push_str(line);
            out.push('\n');
        } else {
            skipped = true;
        }
    }
    if skipped {
        out.push_str("  …\n");
    }
    out
}
