//! `runbook mcp`: the library's stepwise loop as Model Context Protocol tools, for agents
//! that are not written in Rust.
//!
//! The server holds [`Session`]s in its process, keyed by their sandbox id. Every tool
//! answers with structured content (the library's own types, serialized) or a tool error
//! (`isError`, with `error.kind`, `error.message` and, for a bad argument, `error.argument`);
//! every string it returns has the session's secret values masked. When the server stops
//! (stdin closed, a signal), dropping the sessions tears down their ephemeral and session
//! sandboxes and kills a command in flight, exactly as the CLI does; persistent ones stay
//! for `session_resume`.

mod lines;
mod root;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CustomRequest, CustomResult,
    ErrorCode, Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use runbook_core::report::{RollbackExercise, StepRecord, StepStatus, ToolVersion};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::exec::{Amendment, ExecError, Provider, RunOptions, Session};
use crate::findings::Finding;
use runbook_core::{Check, KnownIssue, Lifetime, Runbook};

/// The MCP server: one provider, the sessions it started.
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Box<dyn Provider>,
    /// Every path a tool takes is confined to it.
    root: root::Root,
    sessions: Mutex<HashMap<String, Shared>>,
}

/// A session, taken out (`None`) once finished.
type Shared = Arc<tokio::sync::Mutex<Option<Session>>>;

/// A tool's failure, returned as a tool result with `isError`.
#[derive(Debug)]
struct ToolError {
    kind: &'static str,
    message: String,
    argument: Option<String>,
}

impl ToolError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ToolError {
            kind,
            message: message.into(),
            argument: None,
        }
    }

    fn argument(name: &str, message: impl Into<String>) -> Self {
        Self::at("invalid_argument", name, message)
    }

    /// A failure of another kind than `invalid_argument` that still names the argument.
    fn at(kind: &'static str, name: &str, message: impl Into<String>) -> Self {
        ToolError {
            kind,
            message: message.into(),
            argument: Some(name.to_owned()),
        }
    }
}

impl From<ExecError> for ToolError {
    fn from(e: ExecError) -> Self {
        let kind = match &e {
            ExecError::Lint(_) => "lint_errors",
            ExecError::Preflight(_) => "preflight_failed",
            ExecError::NotFound(_) => "unknown_sandbox",
            ExecError::Locked { .. } => "sandbox_busy",
            _ => "execution_failed",
        };
        ToolError::new(kind, e.chain())
    }
}

type ToolResult = Result<Value, ToolError>;

// ---- arguments ----------------------------------------------------------------

/// A runbook given inline or by path.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunbookSource {
    /// The runbook's YAML (or JSON) text. Give this or `path`.
    #[serde(default)]
    runbook: Option<String>,
    /// A runbook file inside the server's root (`runbook mcp --root`), relative to it. Give this or `runbook`.
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ValidateArgs {
    #[serde(flatten)]
    source: RunbookSource,
    /// A lessons library inside the server's root: warn (`unaddressed-lesson`) for each lesson that applies.
    #[serde(default)]
    lessons: Option<String>,
}

/// Which JSON Schema.
#[derive(Debug, Default, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Document {
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
struct SchemaArgs {
    /// The document (default `runbook`).
    #[serde(default)]
    document: Document,
}

/// A sandbox lifetime.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum LifetimeArg {
    /// Torn down when the session finishes or the server stops.
    Ephemeral,
    /// Kept across steps of the session; torn down at its end.
    Session,
    /// Kept until destroyed; resumable with `session_resume`.
    Persistent,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StartArgs {
    #[serde(flatten)]
    source: RunbookSource,
    /// The sandbox lifetime (default: recommended from the runbook).
    #[serde(default)]
    lifetime: Option<LifetimeArg>,
    /// Sandbox values for variables, overriding the runbook's (`{"PGPORT": "55433"}`);
    /// a name the runbook does not declare is refused.
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// A lessons library inside the server's root: every lesson that applies is carried
    /// into the run (its pre-flight check runs before step 1, its known issue goes on the
    /// matching steps), as `runbook run --lessons` does.
    #[serde(default)]
    lessons: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SessionArgs {
    /// The session id (`session_start` returned it; it is the sandbox id).
    session: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AmendArgs {
    /// The session id.
    session: String,
    /// The step to amend.
    step: String,
    /// The step's new command.
    #[serde(default)]
    run: Option<String>,
    /// The step's new checks (they replace the old ones).
    #[serde(default)]
    verify: Option<Vec<Check>>,
    /// The error met ("ERROR:  permission denied for schema public"); by default the
    /// failed attempt's first cause line (what the sandbox showed).
    #[serde(default)]
    error: String,
    /// Why it happened.
    cause: String,
    /// What fixed it.
    fix: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FinishArgs {
    /// The session id.
    session: String,
    /// Where to write the handoff package (a missing or empty directory), inside the server's root.
    out: String,
    /// Replace a package this library wrote there, unchanged since.
    #[serde(default)]
    force: bool,
    /// Rehearse the package's scripts in a fresh sandbox with other values, when the run
    /// passed (default true), as `runbook run` does.
    #[serde(default = "yes")]
    rehearse: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResumeArgs {
    /// The persistent sandbox to continue.
    sandbox: String,
    /// Continue with this runbook (an upgrade) instead of the one it started with.
    #[serde(flatten)]
    source: RunbookSource,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SandboxArgs {
    /// The sandbox id (`sandbox_list`).
    sandbox: String,
}

// ---- results ----------------------------------------------------------------------

/// What `validate` returns.
#[derive(Serialize, JsonSchema)]
struct Validated {
    /// No error-level finding.
    valid: bool,
    /// How many findings are errors.
    errors: usize,
    /// How many are warnings.
    warnings: usize,
    /// Every finding, in file order.
    findings: Vec<Finding>,
}

/// What `schema` returns.
#[derive(Serialize, JsonSchema)]
struct SchemaDoc {
    /// The JSON Schema (draft 2020-12).
    schema: Value,
}

/// One step of a session.
#[derive(Serialize, JsonSchema)]
struct StepView {
    /// The step id.
    id: String,
    /// Its title.
    title: String,
    /// `pending`, `passed` or `failed`.
    status: String,
}

/// Where a session is: what `session_start`, `session_resume`, `session_status` and `amend`
/// return.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SessionView {
    /// The session id (the sandbox id).
    session: String,
    /// The sandbox id.
    sandbox: String,
    /// The runbook's name.
    runbook: String,
    /// `ephemeral`, `session` or `persistent`.
    lifetime: String,
    /// Every step, with its status.
    steps: Vec<StepView>,
    /// The step `run_next` runs, if any is left.
    next_step: Option<String>,
    /// The last failed step's record, when the session is stopped at one.
    failure: Option<StepRecord>,
    /// The verdict so far.
    verdict: String,
    /// What the pre-flight found (`session_start`, `session_resume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    preflight: Option<Vec<ToolVersion>>,
    /// Why the pre-flight failed (empty when it passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    preflight_problems: Option<Vec<String>>,
    /// The lessons carried into the run, and what each added (`session_start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    lessons: Option<Vec<String>>,
}

/// What `run_next` and `retry` return.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StepRun {
    /// No step was left to run (`run_next`).
    done: bool,
    /// The step's record: its attempts, their output and checks, the failure.
    step: Option<StepRecord>,
    /// The step `run_next` runs next.
    next_step: Option<String>,
}

/// What `rollback` returns.
#[derive(Serialize, JsonSchema)]
struct RolledBack {
    /// Each rollback run and its checks, and the verdict.
    rollback: RollbackExercise,
}

/// What `finish` returns.
#[derive(Serialize, JsonSchema)]
struct Finished {
    /// `passed`, `failed` or `incomplete`.
    verdict: String,
    /// The rehearsal's verdict, when the package was rehearsed.
    rehearsal: Option<String>,
    /// Where the package is.
    package: String,
    /// Its files, relative to it.
    files: Vec<String>,
}

/// What `sandbox_list` returns.
#[derive(Serialize, JsonSchema)]
struct SandboxList {
    /// Every sandbox: id, provider, runbook, lifetime, age, last step, or why it is damaged.
    sandboxes: Vec<crate::exec::SandboxInfo>,
}

/// What `sandbox_destroy` returns.
#[derive(Serialize, JsonSchema)]
struct Destroyed {
    /// The sandbox that is gone.
    destroyed: String,
}

/// A typed result as structured content.
fn to_value<T: Serialize>(result: &T) -> ToolResult {
    serde_json::to_value(result).map_err(|e| ToolError::new("internal", e.to_string()))
}

// ---- the tool list ------------------------------------------------------------

/// The JSON Schema of `T`, as a tool's input or output schema.
fn schema_object<T: JsonSchema>() -> Arc<serde_json::Map<String, Value>> {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut object = match serde_json::to_value(&schema) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
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
            "Fix a step (a new command and/or checks) and record the known issue: the error, its cause and the fix. A step that already passed is first rolled back, with every step after it, and runs again next.",
        ),
        tool::<SessionArgs, StepRun>("retry", "Run the step that failed again (after `amend`)."),
        tool::<SessionArgs, RolledBack>(
            "rollback",
            "Run every completed step's rollback in reverse order and verify it.",
        ),
        tool::<FinishArgs, Finished>(
            "finish",
            "End the session and write the handoff package (rehearsed when the run passed): the verdict and the package's files.",
        ),
        tool::<SessionArgs, SessionView>(
            "session_status",
            "Where a session is: its steps, the next one, the last failure, the verdict so far.",
        ),
        tool::<ResumeArgs, SessionView>(
            "session_resume",
            "Continue a persistent sandbox (optionally with another runbook) as a new session.",
        ),
        tool::<NoArgs, SandboxList>("sandbox_list", "The sandboxes of this server's provider."),
        tool::<SandboxArgs, Destroyed>(
            "sandbox_destroy",
            "Destroy a sandbox and everything running in it (ending its session here, if any).",
        ),
    ]
}

// ---- the server -----------------------------------------------------------------

impl McpServer {
    /// A server whose sessions use `provider`, and whose tools read and write only inside
    /// `root` (relative paths are resolved against it; a path that leaves it, through
    /// `..`, an absolute path or a symbolic link, is refused).
    pub fn new(provider: Box<dyn Provider>, root: &Path) -> std::io::Result<Self> {
        Ok(McpServer {
            inner: Arc::new(Inner {
                provider,
                root: root::Root::open(root)?,
                sessions: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The directory the tools' paths are confined to, canonicalized.
    pub fn root(&self) -> &Path {
        self.inner.root.path()
    }

    /// Serves on stdin/stdout until the client closes stdin. Sessions still open are then
    /// dropped: their ephemeral and session sandboxes torn down, persistent ones kept.
    pub async fn serve_stdio(self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use rmcp::ServiceExt;
        // rmcp reads stdin through `lines::forward`, which bounds and answers oversized
        // requests; its end of the pipe closes when stdin does.
        let (from_client, to_rmcp) = tokio::io::duplex(64 * 1024);
        let forwarding = tokio::spawn(lines::forward(tokio::io::stdin(), to_rmcp));
        let running = self
            .clone()
            .serve((from_client, tokio::io::stdout()))
            .await?;
        let _ = running.waiting().await;
        forwarding.abort();
        self.close();
        Ok(())
    }

    /// Drops every session this server holds (a command in flight is killed when its
    /// call is dropped with the runtime).
    pub fn close(&self) {
        if let Ok(mut sessions) = self.inner.sessions.lock() {
            sessions.clear();
        }
    }

    fn session(&self, id: &str) -> Result<Shared, ToolError> {
        self.inner
            .sessions
            .lock()
            .map_err(|_| ToolError::new("internal", "the session table is poisoned"))?
            .get(id)
            .cloned()
            .ok_or_else(|| {
                ToolError::argument(
                    "session",
                    format!(
                        "no session `{id}` in this server: start one with `session_start`, or continue a persistent sandbox with `session_resume`"
                    ),
                )
            })
    }

    fn keep(&self, session: Session) -> String {
        let id = session.id().to_owned();
        if let Ok(mut sessions) = self.inner.sessions.lock() {
            sessions.insert(id.clone(), Arc::new(tokio::sync::Mutex::new(Some(session))));
        }
        id
    }

    async fn dispatch(&self, name: &str, args: Value) -> ToolResult {
        match name {
            "validate" => validate(parse(args)?, &self.inner.root),
            "schema" => {
                let a: SchemaArgs = parse(args)?;
                let text = match a.document {
                    Document::Runbook => runbook_core::json_schema(),
                    Document::Feedback => runbook_core::feedback_json_schema(),
                    Document::Lesson => runbook_core::lesson_json_schema(),
                };
                let schema: Value = serde_json::from_str(&text)
                    .map_err(|e| ToolError::new("internal", e.to_string()))?;
                to_value(&SchemaDoc { schema })
            }
            "session_start" => self.start(parse(args)?).await,
            "run_next" => {
                let a: SessionArgs = parse(args)?;
                self.with_session(&a.session, async |s| {
                    let record = s.run_next().await.map_err(|e| refusal(s, e))?;
                    to_value(&StepRun {
                        done: record.is_none(),
                        step: record,
                        next_step: s.next_step().map(|n| n.id.clone()),
                    })
                })
                .await
            }
            "retry" => {
                let a: SessionArgs = parse(args)?;
                self.with_session(&a.session, async |s| {
                    let record = s.retry().await.map_err(|e| refusal(s, e))?;
                    to_value(&StepRun {
                        done: false,
                        step: Some(record),
                        next_step: s.next_step().map(|n| n.id.clone()),
                    })
                })
                .await
            }
            "amend" => {
                let a: AmendArgs = parse(args)?;
                if a.run.is_none() && a.verify.is_none() {
                    return Err(ToolError::argument(
                        "run",
                        "give the step's new command (`run`) and/or its new checks (`verify`)",
                    ));
                }
                let amendment = Amendment {
                    run: a.run,
                    verify: a.verify,
                    ..Amendment::default()
                };
                let issue = KnownIssue::new(a.error, a.cause, a.fix);
                let step = a.step;
                self.with_session(&a.session, async |s| {
                    // A step that passed: its rollback and those of the steps after it run
                    // first (recorded in the report's `rewinds`), then it is amended.
                    if s.step_passed(&step) {
                        let rewind = s.rewind_to(&step).await?;
                        if rewind.verdict != crate::report::Verdict::Passed {
                            return Err(ToolError::new(
                                "rewind_failed",
                                format!(
                                    "a rollback failed while going back before step `{step}`; \
                                     the session's report (`rewinds`) says which; fix it, or start a new session"
                                ),
                            ));
                        }
                    }
                    s.amend(&step, amendment, issue)?;
                    to_value(&status(s))
                })
                .await
            }
            "rollback" => {
                let a: SessionArgs = parse(args)?;
                self.with_session(&a.session, async |s| {
                    let exercise = s.rollback().await?.clone();
                    to_value(&RolledBack { rollback: exercise })
                })
                .await
            }
            "session_status" => {
                let a: SessionArgs = parse(args)?;
                self.with_session(&a.session, async |s| to_value(&status(s)))
                    .await
            }
            "finish" => self.finish(parse(args)?).await,
            "session_resume" => self.resume(parse(args)?).await,
            "sandbox_list" => {
                let _: NoArgs = parse(args)?;
                let sandboxes = self.inner.provider.list().await?;
                to_value(&SandboxList { sandboxes })
            }
            "sandbox_destroy" => {
                let a: SandboxArgs = parse(args)?;
                // A session of this server on it ends first (its lock is released).
                let held = self
                    .inner
                    .sessions
                    .lock()
                    .ok()
                    .and_then(|mut s| s.remove(&a.sandbox));
                let was_session = held.is_some();
                if let Some(shared) = held {
                    drop(shared.lock().await.take());
                }
                match self.inner.provider.destroy(&a.sandbox).await {
                    Ok(()) => {}
                    // An ephemeral or session sandbox went with its session.
                    Err(ExecError::NotFound(_)) if was_session => {}
                    Err(e) => return Err(e.into()),
                }
                to_value(&Destroyed {
                    destroyed: a.sandbox,
                })
            }
            other => Err(ToolError::new(
                "unknown_tool",
                format!("no tool `{other}`: see tools/list"),
            )),
        }
    }

    /// Runs `work` on a session, then masks the session's secrets in what it returns.
    async fn with_session(
        &self,
        id: &str,
        work: impl AsyncFnOnce(&mut Session) -> ToolResult,
    ) -> ToolResult {
        let shared = self.session(id)?;
        let mut guard = shared.lock().await;
        let session = guard
            .as_mut()
            .ok_or_else(|| ToolError::argument("session", format!("session `{id}` is finished")))?;
        let mut value = work(session).await?;
        mask(&mut value, session.redactor(), id);
        Ok(value)
    }

    async fn start(&self, a: StartArgs) -> ToolResult {
        let mut runbook = load(&a.source, &self.inner.root)?;
        let lessons = match &a.lessons {
            Some(dir) => self.inner.root.lessons("lessons", dir)?,
            None => Vec::new(),
        };
        let carried =
            crate::ops::prepare(&mut runbook, &a.vars, &lessons).map_err(|e| match e {
                crate::ops::OpsError::UndeclaredVariable(m) => {
                    ToolError::at("undeclared_variable", "vars", m)
                }
                other => ToolError::new("execution_failed", other.to_string()),
            })?;
        let options = RunOptions {
            lifetime: a.lifetime.map(|l| match l {
                LifetimeArg::Ephemeral => Lifetime::Ephemeral,
                LifetimeArg::Session => Lifetime::Session,
                LifetimeArg::Persistent => Lifetime::Persistent,
            }),
            vars: a.vars,
            ..RunOptions::default()
        };
        let session = Session::start(self.inner.provider.as_ref(), runbook, options).await?;
        self.opened(
            session,
            Some(carried.iter().map(ToString::to_string).collect()),
        )
        .await
    }

    async fn resume(&self, a: ResumeArgs) -> ToolResult {
        let runbook = if a.source.runbook.is_some() || a.source.path.is_some() {
            Some(load(&a.source, &self.inner.root)?)
        } else {
            None
        };
        let session = Session::resume(
            self.inner.provider.as_ref(),
            &a.sandbox,
            runbook,
            RunOptions::default(),
        )
        .await?;
        self.opened(session, None).await
    }

    /// A new session: its pre-flight, then it is kept under its id.
    async fn opened(&self, mut session: Session, lessons: Option<Vec<String>>) -> ToolResult {
        let (tools, problems) = match session.preflight().await {
            Ok(tools) => (tools, Vec::new()),
            Err(ExecError::Preflight(problems)) => (session.report().preflight.clone(), problems),
            Err(e) => return Err(e.into()),
        };
        let mut view = status(&session);
        view.preflight = Some(tools);
        view.preflight_problems = Some(problems);
        view.lessons = lessons;
        let mut value = to_value(&view)?;
        mask(&mut value, session.redactor(), session.id());
        self.keep(session);
        Ok(value)
    }

    async fn finish(&self, a: FinishArgs) -> ToolResult {
        // Resolved inside the root before anything else, and written through the parent
        // directory opened there.
        let target = self.inner.root.write_target("out", &a.out)?;
        let out = &target.path;
        crate::render::check_target(out, a.force)
            .map_err(|e| ToolError::argument("out", target.message(&e)))?;
        let shared = self.session(&a.session)?;
        let session = shared.lock().await.take().ok_or_else(|| {
            ToolError::argument("session", format!("session `{}` is finished", a.session))
        })?;
        if let Ok(mut sessions) = self.inner.sessions.lock() {
            sessions.remove(&a.session);
        }
        let redactor = session.redactor().clone();
        let outcome = session.finish().await?;
        let request = crate::ops::FinishRequest {
            out,
            force: a.force,
            rehearse: a.rehearse,
        };
        let handoff =
            crate::ops::finish(self.inner.provider.as_ref(), outcome, request, &mut |_| {})
                .await
                .map_err(|e| match e {
                    crate::ops::OpsError::Render(e) => {
                        ToolError::new("render_failed", target.message(&e))
                    }
                    crate::ops::OpsError::Exec(e) => e.into(),
                    other => ToolError::new("execution_failed", other.to_string()),
                })?;
        let outcome = handoff.outcome;
        let files = handoff.files;
        let mut value = to_value(&Finished {
            verdict: outcome.report.verdict.as_str().to_owned(),
            rehearsal: outcome
                .report
                .rehearsal
                .as_ref()
                .map(|r| r.verdict.as_str().to_owned()),
            package: a.out.clone(),
            files,
        })?;
        mask(&mut value, &redactor, &a.session);
        Ok(value)
    }
}

/// A step the session refused to run because its pre-flight failed (as `runbook run`
/// runs none then), said with what to do; other errors as they are.
fn refusal(session: &Session, e: ExecError) -> ToolError {
    match e {
        ExecError::Preflight(problems) => ToolError::new(
            "preflight_failed",
            format!(
                "the pre-flight of session `{}` failed, so no step runs in it:\n{}\n\
                 Fix the sandbox's tools (or the runbook) and start a new session; \
                 `sandbox_destroy` ends this one.",
                session.id(),
                problems.join("\n")
            ),
        ),
        e => e.into(),
    }
}

/// Where a session is, in the shape every session tool returns.
fn status(s: &Session) -> SessionView {
    let report = s.report();
    let steps = s
        .runbook()
        .steps
        .iter()
        .map(|step| StepView {
            id: step.id.clone(),
            title: step.title.clone(),
            status: match report.steps.iter().find(|r| r.id == step.id) {
                Some(r) if r.status == StepStatus::Passed => "passed",
                Some(_) => "failed",
                None => "pending",
            }
            .to_owned(),
        })
        .collect();
    SessionView {
        session: s.id().to_owned(),
        sandbox: s.id().to_owned(),
        runbook: s.runbook().metadata.name.clone(),
        lifetime: s.lifetime().to_string(),
        steps,
        next_step: s.next_step().map(|n| n.id.clone()),
        failure: s.failure().cloned(),
        verdict: report.verdict.as_str().to_owned(),
        preflight: None,
        preflight_problems: None,
        lessons: None,
    }
}

/// Masks every secret value in every string of `value`, but the session's id where a
/// result names it: an id is no secret, whatever a (short) secret value looks like.
fn mask(value: &mut Value, redactor: &crate::exec::Redactor, id: &str) {
    fn walk(value: &mut Value, redactor: &crate::exec::Redactor) {
        match value {
            Value::String(s) if !redactor.is_empty() => *s = redactor.redact(s),
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, redactor)),
            Value::Object(map) => map.values_mut().for_each(|v| walk(v, redactor)),
            _ => {}
        }
    }
    walk(value, redactor);
    for key in ["session", "sandbox"] {
        if let Some(v) = value.get_mut(key) {
            *v = Value::String(id.to_owned());
        }
    }
}

/// The arguments as `A`, or a tool error naming the argument that is wrong.
fn parse<A: DeserializeOwned>(args: Value) -> Result<A, ToolError> {
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        // The value may be a secret given in the wrong place: never echo it.
        let inner = runbook_core::without_values(&e.into_inner().to_string());
        // "missing field `session`" / "unknown field `sesion`" name it in the message.
        let named = inner
            .split('`')
            .nth(1)
            .filter(|_| inner.starts_with("missing field") || inner.starts_with("unknown field"));
        let argument = if path == "." || path.is_empty() {
            named.unwrap_or("arguments").to_owned()
        } else {
            path
        };
        ToolError::argument(&argument, format!("`{argument}`: {inner}"))
    })
}

impl RunbookSource {
    /// The runbook's text, and what to call it in findings (`<input>` or the path); the
    /// argument name that is wrong when it cannot be read.
    /// A file is read inside `root`, and must claim to be a runbook (its content is
    /// never quoted otherwise).
    fn text(&self, root: &root::Root) -> Result<(String, String), ToolError> {
        match (&self.runbook, &self.path) {
            (Some(text), None) => Ok(("<input>".to_owned(), text.clone())),
            (None, Some(path)) => {
                let text = root.read_file("path", path)?;
                if !root::claims_to_be_a_runbook(&text) {
                    return Err(ToolError::at(
                        "not_a_runbook",
                        "path",
                        format!(
                            "`{path}` is not a runbook: it has no `apiVersion: runbook/v1` and \
                             `kind: Runbook` (its content is not shown)"
                        ),
                    ));
                }
                Ok((path.clone(), text))
            }
            _ => Err(ToolError::argument(
                "runbook",
                "give exactly one of `runbook` (the YAML text) and `path` (a file)",
            )),
        }
    }

    /// The argument that holds the runbook.
    fn argument(&self) -> &'static str {
        if self.path.is_some() {
            "path"
        } else {
            "runbook"
        }
    }
}

/// Parses a runbook's text: JSON for a `.json` file or text that starts with `{`, else YAML.
fn parse_runbook(label: &str, text: &str) -> Result<Runbook, runbook_core::ParseError> {
    if label.ends_with(".json") || text.trim_start().starts_with('{') {
        runbook_core::from_json_str(text)
    } else {
        runbook_core::from_yaml_str(text)
    }
}

/// The runbook of a source, parsed (not linted: `Session::start` refuses lint errors).
fn load(source: &RunbookSource, root: &root::Root) -> Result<Runbook, ToolError> {
    let (label, text) = source.text(root)?;
    parse_runbook(&label, &text)
        .map_err(|e| ToolError::argument(source.argument(), parse_message(&e.in_file(&label))))
}

fn parse_message(e: &runbook_core::ParseError) -> String {
    format!("{e} (help: {})", e.help)
}

fn validate(a: ValidateArgs, root: &root::Root) -> ToolResult {
    let lessons = match &a.lessons {
        Some(dir) => root.lessons("lessons", dir)?,
        None => Vec::new(),
    };
    let (label, text) = a.source.text(root)?;
    let parsed = parse_runbook(&label, &text);
    let findings: Vec<Finding> = match parsed {
        Err(e) => vec![Finding::parse(&e, &label)],
        Ok(rb) => crate::findings::of(&rb, &text, &label, &lessons),
    };
    let errors = findings.iter().filter(|f| f.is_error()).count();
    to_value(&Validated {
        valid: errors == 0,
        errors,
        warnings: findings.len() - errors,
        findings,
    })
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("runbook", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tested infrastructure runbooks: validate a runbook, start a sandbox session, run \
                 its steps one by one, amend a failing step with its known issue, retry, exercise \
                 the rollbacks, and finish to write the verified handoff package.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    /// The stand-in of a request too large to read (see `lines`): a JSON-RPC error.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method != lines::TOO_LARGE {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                request.method,
                None,
            ));
        }
        let bytes = request
            .params
            .as_ref()
            .and_then(|p| p.get("bytes"))
            .and_then(Value::as_u64)
            .unwrap_or_default();
        Err(ErrorData::invalid_request(
            format!(
                "the request is {bytes} bytes; runbook mcp reads at most {} bytes (10 MiB) per \
                 message: give a large runbook by `path` instead of inline",
                lines::MAX_REQUEST
            ),
            None,
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let result = match self.dispatch(&request.name, args).await {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => CallToolResult::structured_error(json!({
                "error": {
                    "kind": e.kind,
                    "message": e.message,
                    "argument": e.argument,
                }
            })),
        };
        Ok(result.into())
    }
}
