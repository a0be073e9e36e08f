//! A tool's failure, as every MCP client reads it: `isError`, and the error as JSON text
//! in `content` (`{"error": {"kind", "message", "argument"}}`), with no
//! `structuredContent`. The spec requires structured content to match the tool's output
//! schema, which describes success; the TypeScript SDK checks it even on errors, and
//! would throw instead of showing the agent what to fix.

use rmcp::model::{CallToolResult, ContentBlock};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::exec::ExecError;

/// A tool's failure, returned as a tool result with `isError`.
#[derive(Debug)]
pub(super) struct ToolError {
    pub(super) kind: &'static str,
    pub(super) message: String,
    pub(super) argument: Option<String>,
}

/// What a tool returns: structured content, or the failure.
pub(super) type ToolResult = Result<Value, ToolError>;

impl ToolError {
    pub(super) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ToolError {
            kind,
            message: message.into(),
            argument: None,
        }
    }

    /// An argument that is wrong (`invalid_argument`), named.
    pub(super) fn argument(name: &str, message: impl Into<String>) -> Self {
        Self::at("invalid_argument", name, message)
    }

    /// A failure of another kind than `invalid_argument` that still names the argument.
    pub(super) fn at(kind: &'static str, name: &str, message: impl Into<String>) -> Self {
        ToolError {
            kind,
            message: message.into(),
            argument: Some(name.to_owned()),
        }
    }

    /// The tool result: `isError`, the error as JSON text.
    pub(super) fn into_result(self) -> CallToolResult {
        let error = json!({
            "error": {
                "kind": self.kind,
                "message": self.message,
                "argument": self.argument,
            }
        });
        CallToolResult::error(vec![ContentBlock::text(error.to_string())])
    }
}

impl From<ExecError> for ToolError {
    fn from(e: ExecError) -> Self {
        let kind = match &e {
            ExecError::Lint(_) => "lint_errors",
            ExecError::Preflight(_) => "preflight_failed",
            ExecError::NotFound(_) => "unknown_sandbox",
            ExecError::Locked { .. } => "sandbox_busy",
            ExecError::ImageMissing { .. } => "image_missing",
            ExecError::EngineUnreachable { .. } => "engine_unreachable",
            _ => "execution_failed",
        };
        ToolError::new(kind, e.chain())
    }
}

/// A typed result as structured content.
pub(super) fn to_value<T: serde::Serialize>(result: &T) -> ToolResult {
    serde_json::to_value(result).map_err(|e| ToolError::new("internal", e.to_string()))
}

/// The arguments as `A`, or a tool error naming the argument that is wrong.
pub(super) fn parse<A: DeserializeOwned>(args: Value) -> Result<A, ToolError> {
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
