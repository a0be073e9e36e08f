//! `runbook`: validate, test and hand off infrastructure runbooks from a shell.
//!
//! Laid out like cargo's CLI: the clap types in `cli`, one adapter per command in
//! `commands`, what they share in `shared`, `vars` and `report`; this file starts the
//! runtime, listens for signals and dispatches.

mod cli;
mod commands;
mod progress;
mod report;
mod shared;
mod vars;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use shared::Failure;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("error: internal error ({msg}); please report it with the command you ran");
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(Failure(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    };
    // Tasks still running (an MCP tool call whose client left) are dropped here, and with
    // them their sessions: a command in flight is killed, the sandbox torn down or kept,
    // synchronously. Only blocking threads are waited for, and briefly: one may be reading a
    // stdin that an MCP client keeps open.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

/// The command's adapter; each one parses nothing further and decides nothing itself.
async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Validate(args) => commands::validate::exec(args),
        Command::Feedback(args) => commands::feedback::exec(args),
        Command::Run(args) => commands::run::run(args).await,
        Command::Resume(args) => commands::run::resume(args).await,
        Command::Sandbox(args) => commands::sandbox::exec(args).await,
        Command::Rehearse(args) => commands::rehearse::exec(args).await,
        Command::Render(args) => commands::render::exec(args),
        #[cfg(feature = "mcp")]
        Command::Mcp(args) => commands::mcp::exec(args).await,
        Command::Schema(args) => commands::schema::exec(args),
        Command::New(args) => commands::new::exec(args),
    }
}

/// SIGINT, SIGTERM and SIGHUP, listened to from the start of a run.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Listens from now on: a signal that comes before `next` is not lost.
    pub fn listen() -> Result<Signals, Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The number of the next signal.
    pub async fn next(&mut self) -> u8 {
        tokio::select! {
            _ = self.int.recv() => 2,
            _ = self.term.recv() => 15,
            _ = self.hup.recv() => 1,
        }
    }
}

/// Signal `n` as the messages name it (what was torn down or kept follows it).
pub fn signal_name(n: u8) -> &'static str {
    match n {
        2 => "interrupted (SIGINT)",
        15 => "terminated (SIGTERM)",
        _ => "hung up (SIGHUP)",
    }
}
