//! `runbook mcp`: serve the tools of `runbook::mcp` on stdin/stdout until the client
//! leaves or a signal comes.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::Mcp;
use crate::shared::{Failure, provider};
use crate::{Signals, signal_name};

/// `runbook mcp [--root DIR]`: the server, confined to DIR.
pub async fn exec(args: Mcp) -> Result<ExitCode, Failure> {
    let Mcp {
        sandbox: which,
        root,
    } = args;
    let p = provider(&which, false).await?;
    let mut signals = Signals::listen()?;
    let root = root.unwrap_or_else(|| PathBuf::from("."));
    let server = runbook::mcp::McpServer::new(p, &root)
        .map_err(|e| Failure(format!("--root `{}`: {e}", root.display())))?;
    tokio::select! {
        r = server.clone().serve_stdio() => {
            r.map_err(|e| Failure(format!("the MCP connection failed: {e}")))?;
            Ok(ExitCode::SUCCESS)
        }
        n = signals.next() => {
            server.close();
            eprintln!("{}: the MCP server stopped; its ephemeral and session sandboxes are torn down", signal_name(n));
            Ok(ExitCode::from(128 + n))
        }
    }
}
