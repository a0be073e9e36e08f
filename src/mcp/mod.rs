//! `runbook mcp`: the library's stepwise loop as Model Context Protocol tools, for agents
//! that are not written in Rust.
//!
//! The server holds [`Session`]s in its process, keyed by their sandbox id. Every tool
//! answers with structured content (the library's own types, serialized, matching the
//! tool's output schema) or a tool error: `isError`, and `{"error": {"kind", "message",
//! "argument"}}` as JSON text in `content` (see `error`). Every string it returns has the
//! session's secret values masked. A client may cancel a call (the step's command is
//! killed and the step recorded as cancelled) and ask for progress (`progressToken`). When the server stops
//! (stdin closed, a signal), dropping the sessions tears down their ephemeral and session
//! sandboxes and kills a command in flight, exactly as the CLI does; persistent ones stay
//! for `session_resume`.

mod calls;
mod error;
mod lines;
mod progress;
mod results;
mod root;
mod sessions;
mod tools;

use std::path::Path;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CustomRequest, CustomResult, ErrorCode,
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use runbook_core::Runbook;
use runbook_core::report::StepStatus;
use serde_json::Value;

use self::error::{ToolError, ToolResult, to_value};
use self::results::{SessionView, StepView, Validated};
pub use self::tools::tools;
use self::tools::{RunbookSource, ValidateArgs};
use crate::exec::{ExecError, Provider, Session};
use crate::findings::Finding;

/// The MCP server: one provider, the sessions it started.
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Box<dyn Provider>,
    /// Every path a tool takes is confined to it.
    root: root::Root,
    sessions: sessions::Table,
}

impl McpServer {
    /// A server whose sessions use `provider`, and whose tools read and write only inside
    /// `root` (relative paths are resolved against it; a path that leaves it, through
    /// `..`, an absolute path or a symbolic link, is refused).
    pub fn new(provider: Box<dyn Provider>, root: &Path) -> std::io::Result<Self> {
        Ok(McpServer {
            inner: Arc::new(Inner {
                provider,
                root: root::Root::open(root)?,
                sessions: sessions::Table::default(),
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
        self.inner.sessions.clear();
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
                _ if s.step_passed(&step.id) => "passed",
                // It passed, then a rollback undid it (a restore, a redo): it runs again.
                Some(r) if r.status == StepStatus::Passed => "rolledBack",
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
        verdict: s.verdict().as_str().to_owned(),
        preflight: None,
        preflight_problems: None,
        lessons: None,
        running: None,
        late_step: None,
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

/// The MCP methods whose parameters rmcp could not read reach the server as custom
/// requests: their answer is "invalid params" (`-32602`), not "method not found".
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

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

    /// A request rmcp could not read: the stand-in of one too large (see `lines`), a
    /// known method with malformed params, or an unknown method.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if KNOWN_METHODS.contains(&request.method.as_str()) {
            let why = match request.method.as_str() {
                "tools/call" => {
                    "`tools/call` takes `name` (a string: see tools/list) and `arguments` (an object)"
                }
                _ => "see the MCP specification for its parameters",
            };
            return Err(ErrorData::invalid_params(
                format!("invalid params for `{}`: {why}", request.method),
                None,
            ));
        }
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
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // An unknown tool is a protocol error (the spec's and SEP-1303's "invalid params");
        // a wrong argument is a tool error the agent reads and fixes.
        if !tools().iter().any(|t| t.name == request.name) {
            return Err(ErrorData::invalid_params(
                format!("no tool `{}`: tools/list names them", request.name),
                Some(serde_json::json!({ "tool": request.name })),
            ));
        }
        let call = calls::Call {
            cancelled: context.ct.clone(),
            progress: context
                .meta
                .get_progress_token()
                .map(|token| (context.peer.clone(), token)),
        };
        let args = Value::Object(request.arguments.unwrap_or_default());
        let result = match self.dispatch(&request.name, args, &call).await {
            Ok(value) => rmcp::model::CallToolResult::structured(value),
            Err(e) => e.into_result(),
        };
        Ok(result.into())
    }
}
