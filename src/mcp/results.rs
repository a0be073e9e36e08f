//! What the tools return: the structured content, whose JSON Schemas are the tools'
//! output schemas.

use runbook_core::report::{RollbackExercise, StepRecord, ToolVersion};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::findings::Finding;

/// What `validate` returns.
#[derive(Serialize, JsonSchema)]
pub(super) struct Validated {
    /// No error-level finding.
    pub(super) valid: bool,
    /// How many findings are errors.
    pub(super) errors: usize,
    /// How many are warnings.
    pub(super) warnings: usize,
    /// Every finding, in file order.
    pub(super) findings: Vec<Finding>,
}

/// What `schema` returns.
#[derive(Serialize, JsonSchema)]
pub(super) struct SchemaDoc {
    /// The JSON Schema (draft 2020-12).
    pub(super) schema: Value,
}

/// One step of a session.
#[derive(Serialize, JsonSchema)]
pub(super) struct StepView {
    /// The step id.
    pub(super) id: String,
    /// Its title.
    pub(super) title: String,
    /// `pending`, `passed`, `failed` (its last attempt failed or was cancelled) or
    /// `rolledBack` (it passed, then a rollback undid it: it runs again).
    pub(super) status: String,
}

/// Where a session is: what `session_start`, `session_resume`, `session_status` and `amend`
/// return.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionView {
    /// The session id (the sandbox id).
    pub(super) session: String,
    /// The sandbox id.
    pub(super) sandbox: String,
    /// The runbook's name.
    pub(super) runbook: String,
    /// `ephemeral`, `session` or `persistent`.
    pub(super) lifetime: String,
    /// Every step, with its status.
    pub(super) steps: Vec<StepView>,
    /// The step `run_next` runs, if any is left.
    pub(super) next_step: Option<String>,
    /// The record of the failure that stands: a step that failed and has not passed since
    /// (a rollback that gives up on it keeps it).
    pub(super) failure: Option<StepRecord>,
    /// The verdict `finish` would give now: `failed` while a failure stands, `passed`
    /// once every step passed, else `incomplete`.
    pub(super) verdict: String,
    /// What the pre-flight found (`session_start`, `session_resume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) preflight: Option<Vec<ToolVersion>>,
    /// Why the pre-flight failed (empty when it passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) preflight_problems: Option<Vec<String>>,
    /// The lessons carried into the run, and what each added (`session_start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) lessons: Option<Vec<String>>,
    /// What a call is running in this session now (`session_status` answers at once,
    /// from the session as the last finished call left it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) running: Option<RunningView>,
    /// The record of a step whose call was cancelled or abandoned before it ended: the
    /// next `run_next` or `retry` returns it (marked `late`) instead of running a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) late_step: Option<StepRecord>,
}

/// A call in progress in a session.
#[derive(Clone, Serialize, JsonSchema)]
pub(super) struct RunningView {
    /// The tool (`run_next`, `retry`, `rollback`, `amend`).
    pub(super) tool: String,
    /// The step it runs, when it runs one.
    pub(super) step: Option<String>,
    /// How long it has run, in seconds.
    #[schemars(range(min = 0))]
    pub(super) seconds: u64,
}

/// What `run_next` and `retry` return.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct StepRun {
    /// No step was left to run (`run_next`).
    pub(super) done: bool,
    /// The step's record: its attempts, their output and checks, the failure.
    pub(super) step: Option<StepRecord>,
    /// The step `run_next` runs next.
    pub(super) next_step: Option<String>,
    /// The record is of a step an earlier call ran, whose caller cancelled it or gave up
    /// waiting (a client timeout): it is delivered now, and no further step ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) late: bool,
}

/// What `rollback` returns.
#[derive(Serialize, JsonSchema)]
pub(super) struct RolledBack {
    /// Each rollback run and its checks, the verdict, and the purpose: the exercise after
    /// every step passed, or a restore before (to give up after a failure, or start over).
    pub(super) rollback: RollbackExercise,
}

/// What `finish` returns.
#[derive(Serialize, JsonSchema)]
pub(super) struct Finished {
    /// `passed`, `failed` or `incomplete`.
    pub(super) verdict: String,
    /// The rehearsal's verdict, when the package was rehearsed.
    pub(super) rehearsal: Option<String>,
    /// Where the package is.
    pub(super) package: String,
    /// Its files, relative to it.
    pub(super) files: Vec<String>,
}

/// What `sandbox_list` returns.
#[derive(Serialize, JsonSchema)]
pub(super) struct SandboxList {
    /// Every sandbox: id, provider, runbook, lifetime, age, last step, or why it is damaged.
    pub(super) sandboxes: Vec<crate::exec::SandboxInfo>,
}

/// What `sandbox_destroy` returns.
#[derive(Serialize, JsonSchema)]
pub(super) struct Destroyed {
    /// The sandbox that is gone.
    pub(super) destroyed: String,
}

/// What `exec` returns.
#[derive(Serialize, JsonSchema)]
pub(super) struct Executed {
    /// The command's exit code, output (masked, capped) and duration.
    pub(super) output: runbook_core::report::CommandOutput,
}
