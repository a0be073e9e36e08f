//! The tools: their arguments, and the list `tools/list` returns with the JSON Schemas of
//! arguments and results.
//!
//! The schemas are finished as runbook's own are ([`runbook_core::finish_schema`]): only
//! keywords that mean the same in draft-07 and 2020-12 and only standard formats, so that
//! Ajv compiles them in strict mode, whether as the TypeScript SDK does (draft-07, no
//! `$schema`) or as 2020-12. They declare no `$schema`: the MCP specification makes
//! 2020-12 the default, and the TypeScript SDK's Ajv refuses a declared 2020-12 URI.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::Tool;
use runbook_core::{Check, ConfigFile, Lifetime};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::results::{
    Destroyed, Executed, Finished, RolledBack, SandboxList, SchemaDoc, SessionView, StepRun,
    Validated,
};

/// A runbook given inline or by path.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunbookSource {
    /// The runbook's YAML (or JSON) text. Give this or `path`.
    #[serde(default)]
    pub(super) runbook: Option<String>,
    /// A runbook file inside the server's root (`runbook mcp --root`), relative to it. Give this or `runbook`.
    #[serde(default)]
    pub(super) path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ValidateArgs {
    #[serde(flatten)]
    pub(super) source: RunbookSource,
    /// A lessons library inside the server's root: warn (`unaddressed-lesson`) for each lesson that applies.
    #[serde(default)]
    pub(super) lessons: Option<String>,
}

/// Which JSON Schema.
#[derive(Debug, Default, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Document {
    /// `runbook.yaml`.
    #[default]
    Runbook,
    /// A feedback file.
    Feedback,
    /// A lesson.
    Lesson,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SchemaArgs {
    /// The document (default `runbook`).
    #[serde(default)]
    pub(super) document: Document,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartArgs {
    #[serde(flatten)]
    pub(super) source: RunbookSource,
    /// The sandbox lifetime (default: recommended from the runbook): `ephemeral` (torn
    /// down when the session finishes or the server stops), `session` (kept across the
    /// session's steps), `persistent` (kept until destroyed; `session_resume` continues it).
    #[serde(default)]
    pub(super) lifetime: Option<Lifetime>,
    /// Sandbox values for variables, overriding the runbook's (`{"PGPORT": "55433"}`);
    /// a name the runbook does not declare is refused.
    #[serde(default)]
    pub(super) vars: BTreeMap<String, String>,
    /// A lessons library inside the server's root: every lesson that applies is carried
    /// into the run (its pre-flight check runs before step 1, its known issue goes on the
    /// matching steps), as `runbook run --lessons` does.
    #[serde(default)]
    pub(super) lessons: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionArgs {
    /// The session id (`session_start` returned it; it is the sandbox id).
    pub(super) session: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AmendArgs {
    /// The session id.
    pub(super) session: String,
    /// The step to amend.
    pub(super) step: String,
    /// The step's new command.
    #[serde(default)]
    pub(super) run: Option<String>,
    /// The step's new checks (they replace the old ones).
    #[serde(default)]
    pub(super) verify: Option<Vec<Check>>,
    /// New content for config files of the runbook (`configFiles`), by `path`: the fix
    /// may belong in a file an earlier step, already passed, wrote. The steps that use a
    /// changed file are then rolled back (with every step after them) and run again.
    #[serde(default)]
    pub(super) configs: Vec<ConfigFile>,
    /// The error met ("ERROR:  permission denied for schema public"); by default the
    /// failed attempt's first cause line (what the sandbox showed).
    #[serde(default)]
    pub(super) error: String,
    /// Why it happened.
    pub(super) cause: String,
    /// What fixed it.
    pub(super) fix: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FinishArgs {
    /// The session id.
    pub(super) session: String,
    /// Where to write the handoff package (a missing or empty directory), inside the server's root.
    pub(super) out: String,
    /// Replace a package this library wrote there, unchanged since.
    #[serde(default)]
    pub(super) force: bool,
    /// Rehearse the package's scripts in a fresh sandbox with other values, when the run
    /// passed (default true), as `runbook run` does.
    #[serde(default = "yes")]
    pub(super) rehearse: bool,
}

pub(super) fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResumeArgs {
    /// The persistent sandbox to continue.
    pub(super) sandbox: String,
    /// Continue with this runbook (an upgrade) instead of the one it started with.
    #[serde(flatten)]
    pub(super) source: RunbookSource,
    /// Values for variables, as `session_start` takes them; a name the runbook does not
    /// declare is refused.
    #[serde(default)]
    pub(super) vars: BTreeMap<String, String>,
    /// A lessons library inside the server's root, carried into the given runbook as
    /// `session_start` carries it.
    #[serde(default)]
    pub(super) lessons: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SandboxArgs {
    /// The sandbox id (`sandbox_list`).
    pub(super) sandbox: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecArgs {
    /// The session id.
    pub(super) session: String,
    /// The command, run by the sandbox's shell as a step's command is (`ls -l data`,
    /// `journalctl -u app`).
    pub(super) command: String,
    /// Kill it after this many seconds (default 60).
    #[serde(default = "sixty")]
    #[schemars(range(min = 1, max = 3600))]
    pub(super) timeout_seconds: u64,
}

fn sixty() -> u64 {
    60
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadFileArgs {
    /// The session id.
    pub(super) session: String,
    /// The file, relative to the working directory of the steps (`server.log`).
    pub(super) path: String,
}

// ---- the tool list ------------------------------------------------------------

/// The JSON Schema of `T`, as a tool's input or output schema.
pub(super) fn schema_object<T: JsonSchema>() -> Arc<serde_json::Map<String, Value>> {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = serde_json::to_value(&schema).unwrap_or_default();
    runbook_core::finish_schema(&mut value);
    let Value::Object(mut object) = value else {
        return Arc::default();
    };
    // Clients show the tool's description, not the struct's name or docs.
    for key in ["title", "$schema", "description"] {
        object.remove(key);
    }
    Arc::new(object)
}

/// A tool whose arguments are `A` and whose structured result is `R`.
fn tool<A: JsonSchema, R: JsonSchema>(name: &'static str, description: &'static str) -> Tool {
    let mut tool = Tool::new(name, description, schema_object::<A>());
    tool.output_schema = Some(schema_object::<R>());
    tool
}

/// Every tool, with the JSON Schema of its arguments.
pub fn tools() -> Vec<Tool> {
    vec![
        tool::<ValidateArgs, Validated>(
            "validate",
            "Parse and lint a runbook: every finding with its rule, path, line, column and help.",
        ),
        tool::<SchemaArgs, SchemaDoc>(
            "schema",
            "The JSON Schema of runbook.yaml (or of a feedback or lesson file).",
        ),
        tool::<StartArgs, SessionView>(
            "session_start",
            "Lint a runbook, provision a sandbox, run the pre-flight: the session id, the steps and what the pre-flight found.",
        ),
        tool::<SessionArgs, StepRun>(
            "run_next",
            "Run the next step (its command, then its checks) and return its record; `done` when none is left.",
        ),
        tool::<AmendArgs, SessionView>(
            "amend",
            "Fix a step (a new command, checks and/or config file content) and record the known issue: the error, its cause and the fix. A step that already passed (or uses a changed config file) is first rolled back, with every step after it, and runs again next.",
        ),
        tool::<SessionArgs, StepRun>("retry", "Run the step that failed again (after `amend`)."),
        tool::<SessionArgs, RolledBack>(
            "rollback",
            "Run every completed step's rollback in reverse order and verify it: after every step passed, the rollback exercise; before, a restore (to give up after a failure, which `finish` then reports as `failed`, or to start over).",
        ),
        tool::<FinishArgs, Finished>(
            "finish",
            "End the session and write the handoff package (rehearsed when the run passed): the verdict and the package's files.",
        ),
        tool::<SessionArgs, SessionView>(
            "session_status",
            "Where a session is: its steps, the next one, the failure that stands, the verdict `finish` would give now.",
        ),
        tool::<ResumeArgs, SessionView>(
            "session_resume",
            "Continue a persistent sandbox (optionally with another runbook) as a new session.",
        ),
        tool::<ExecArgs, Executed>(
            "exec",
            "Run a command in the session's sandbox as its steps run (its user, cgroup, network, variables), to look around after a failure: recorded in the sandbox log, not a step; output masked, at most 1 MiB per stream.",
        ),
        tool::<ReadFileArgs, crate::exec::FileExcerpt>(
            "read_file",
            "The end of a file of the sandbox's working directory (at most its last 64 KiB, secrets masked): a log a failed step wrote, a config file it rendered.",
        ),
        tool::<NoArgs, SandboxList>("sandbox_list", "The sandboxes of this server's provider."),
        tool::<SandboxArgs, Destroyed>(
            "sandbox_destroy",
            "Destroy a sandbox and everything running in it (ending its session here, if any).",
        ),
    ]
}
