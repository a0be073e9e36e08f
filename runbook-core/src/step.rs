//! Steps: the command exactly as the human will run it, its checks, its rollback.

/// The timeout of a step (and of a rollback) that sets none: 10 minutes, in the sandbox
/// and in the package's scripts alike.
pub const DEFAULT_STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Check, HumanDuration};

/// One step of a runbook: deploy, then validate, then document.
///
/// ```
/// use std::time::Duration;
/// use runbook_core::{Check, Step};
/// let step = Step::new("deploy-db", "Deploy PostgreSQL")
///     .run("helm install db bitnami/postgresql -n \"$NAMESPACE\" --wait --timeout 120s")
///     .timeout(Duration::from_secs(180))
///     .verify(Check::command("kubectl get pods -n \"$NAMESPACE\" -o jsonpath='{.items[0].status.phase}'")
///         .stdout_equals("Running")
///         .within(Duration::from_secs(60)))
///     .rollback("helm uninstall db -n \"$NAMESPACE\" --wait")
///     .note("The --wait flag is important.");
/// assert_eq!(step.verify.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Stable identifier: a lowercase slug (`deploy-db`), unique in the runbook.
    pub id: String,
    /// Human title ("Deploy PostgreSQL").
    pub title: String,
    /// What the step does and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The command, exactly as the human will run it. Variables as `"$NAME"`.
    pub run: String,
    /// Working directory relative to the sandbox (or package) root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The longest the command may run before it is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Config files (paths under `config/`) this step applies; written before it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Positive confirmations that the step worked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<Check>,
    /// How to undo the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// Marks a step that changes nothing (a pre-check, a smoke test): it needs no rollback.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Notes for the human ("the --wait flag is important because …").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Errors met while testing this step, with their cause and fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_issues: Vec<KnownIssue>,
    /// Commands that show why the step failed (`journalctl -u app`, `kubectl describe
    /// pod …`): run like checks when an attempt fails, before anything is torn down;
    /// their output goes into the attempt's evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnose: Vec<String>,
}

impl Step {
    /// A step with an id and a title; add the command with [`Step::run`].
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Step {
            id: id.into(),
            title: title.into(),
            description: String::new(),
            run: String::new(),
            workdir: None,
            timeout: None,
            files: Vec::new(),
            verify: Vec::new(),
            rollback: None,
            read_only: false,
            notes: Vec::new(),
            known_issues: Vec::new(),
            diagnose: Vec::new(),
        }
    }

    /// Adds a command that shows why the step failed, run only when an attempt fails
    /// (see [`Step::diagnose`](Step#structfield.diagnose)).
    pub fn diagnose(mut self, command: impl Into<String>) -> Self {
        self.diagnose.push(command.into());
        self
    }

    /// Sets the command, exactly as the human will run it.
    pub fn run(mut self, command: impl Into<String>) -> Self {
        self.run = command.into();
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Sets the working directory (relative to the sandbox root; default: the root).
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Sets the timeout of the command (default: the executor's, 10 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// Declares that the step applies a config file (a path under `config/`).
    pub fn uses_file(mut self, path: impl Into<String>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Adds a verification.
    pub fn verify(mut self, check: Check) -> Self {
        self.verify.push(check);
        self
    }

    /// Sets the rollback command, without checks of its own.
    pub fn rollback(mut self, command: impl Into<String>) -> Self {
        self.rollback = Some(Rollback::new(command));
        self
    }

    /// Sets a rollback with its own verifications.
    pub fn rollback_with(mut self, rollback: Rollback) -> Self {
        self.rollback = Some(rollback);
        self
    }

    /// Marks the step as changing nothing, so it needs no rollback.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Adds a note for the human.
    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.notes.push(text.into());
        self
    }

    /// Records a known issue: an error met, its root cause and the fix.
    pub fn known_issue(mut self, issue: KnownIssue) -> Self {
        self.known_issues.push(issue);
        self
    }

    /// Every check of the step: its own, then its rollback's.
    ///
    /// ```
    /// use runbook_core::{Check, Rollback, Step};
    /// let step = Step::new("s", "S").run("true")
    ///     .verify(Check::command("true"))
    ///     .rollback_with(Rollback::new("true").verify(Check::command("true")));
    /// assert_eq!(step.all_checks().count(), 2);
    /// ```
    pub fn all_checks(&self) -> impl Iterator<Item = &Check> {
        self.verify
            .iter()
            .chain(self.rollback.iter().flat_map(|r| r.verify.iter()))
    }
}

/// How to undo a step, with its own verifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollback {
    /// The rollback command.
    pub run: String,
    /// The longest the rollback may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Positive confirmation that the rollback worked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<Check>,
}

impl Rollback {
    /// A rollback command without checks.
    pub fn new(command: impl Into<String>) -> Self {
        Rollback {
            run: command.into(),
            timeout: None,
            verify: Vec::new(),
        }
    }

    /// Adds a verification of the rollback.
    pub fn verify(mut self, check: Check) -> Self {
        self.verify.push(check);
        self
    }
}

/// An error met while testing, its root cause, and the fix applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KnownIssue {
    /// The error as seen ("permission denied for schema public").
    pub error: String,
    /// Why it happened.
    pub cause: String,
    /// What fixed it.
    pub fix: String,
    /// The id of the lesson this issue came from, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesson: Option<String>,
}

impl KnownIssue {
    /// A known issue from its three parts.
    pub fn new(error: impl Into<String>, cause: impl Into<String>, fix: impl Into<String>) -> Self {
        KnownIssue {
            error: error.into(),
            cause: cause.into(),
            fix: fix.into(),
            lesson: None,
        }
    }
}
