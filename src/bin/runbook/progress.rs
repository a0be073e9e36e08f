//! What the user sees while a run goes on: a spinner line per step on a terminal,
//! JSON lines for agents, nothing otherwise.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runbook::exec::{Event, Observer};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

#[derive(Default)]
struct Current {
    title: String,
    started: Option<Instant>,
    detail: String,
    tick: usize,
}

/// A spinner line per step, redrawn by a ticker task.
#[derive(Clone)]
pub struct Terminal {
    current: Arc<Mutex<Current>>,
    /// The id of the sandbox, once it exists (for the Ctrl-C message).
    pub sandbox: Arc<Mutex<Option<String>>>,
}

impl Terminal {
    /// A terminal observer that records the sandbox id in `sandbox`.
    pub fn new(sandbox: Arc<Mutex<Option<String>>>) -> Self {
        Terminal {
            current: Arc::default(),
            sandbox,
        }
    }

    /// Starts redrawing the active step every 100 ms.
    pub fn spawn_ticker(&self) {
        let current = self.current.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                let Ok(mut c) = current.lock() else { return };
                if let Some(started) = c.started {
                    c.tick += 1;
                    let line = format!(
                        "\r\x1b[2K{} {} ({:.1}s){}",
                        SPINNER[c.tick % SPINNER.len()],
                        c.title,
                        started.elapsed().as_secs_f64(),
                        c.detail
                    );
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(line.as_bytes());
                    let _ = err.flush();
                }
            }
        });
    }
}

impl Observer for Terminal {
    fn event(&self, event: &Event) {
        let Ok(mut c) = self.current.lock() else {
            return;
        };
        let mut err = std::io::stderr().lock();
        match event {
            Event::SandboxReady {
                id,
                provider,
                lifetime,
                resumed,
            } => {
                if let Ok(mut s) = self.sandbox.lock() {
                    *s = Some(id.clone());
                }
                let verb = if *resumed { "resumed" } else { "provisioned" };
                let _ = writeln!(err, "sandbox {id} {verb} ({provider}, {lifetime})");
            }
            Event::Preflight {
                tool,
                detected,
                satisfied,
            } => {
                let mark = if *satisfied { "✓" } else { "✗" };
                let _ = writeln!(
                    err,
                    "{mark} pre-flight: {tool} {}",
                    detected.as_deref().unwrap_or("not found")
                );
            }
            Event::StepStarted {
                step,
                title,
                attempt,
                rollback,
            } => {
                let prefix = if *rollback { "roll back: " } else { "" };
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                c.title = format!("{prefix}{title} [{step}]{again}");
                c.started = Some(Instant::now());
                c.detail.clear();
            }
            Event::CheckRetrying { check, attempt, .. } => {
                c.detail = format!(" - check `{check}`: attempt {attempt} not yet, waiting");
            }
            Event::CheckFailed {
                check, attempts, ..
            } => {
                c.detail = format!(" - check `{check}` failed after {attempts} attempt(s)");
            }
            Event::CheckPassed {
                check, attempts, ..
            } if *attempts > 1 => {
                c.detail = format!(" - check `{check}` passed on attempt {attempts}");
            }
            Event::StepFinished {
                passed,
                duration_ms,
                failure,
                ..
            } => {
                let mark = if *passed { "✓" } else { "✗" };
                let _ = write!(
                    err,
                    "\r\x1b[2K{mark} {} ({:.1}s){}\n",
                    c.title,
                    *duration_ms as f64 / 1000.0,
                    c.detail
                );
                if !passed {
                    let _ = writeln!(err, "  {failure}");
                }
                c.started = None;
            }
            Event::Teardown { id, destroyed } => {
                let what = if *destroyed {
                    "destroyed"
                } else {
                    "kept (persistent)"
                };
                let _ = writeln!(err, "sandbox {id} {what}");
            }
            _ => {}
        }
    }

    fn wants_output(&self) -> bool {
        false
    }
}

/// The engine's events as JSON lines on stdout, for agents.
pub struct Ndjson {
    /// The id of the sandbox, once it exists.
    pub sandbox: Arc<Mutex<Option<String>>>,
}

impl Observer for Ndjson {
    fn event(&self, event: &Event) {
        if let Event::SandboxReady { id, .. } = event
            && let Ok(mut s) = self.sandbox.lock()
        {
            *s = Some(id.clone());
        }
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Quiet: only remembers the sandbox id.
pub struct Quiet {
    /// The id of the sandbox, once it exists.
    pub sandbox: Arc<Mutex<Option<String>>>,
}

impl Observer for Quiet {
    fn event(&self, event: &Event) {
        if let Event::SandboxReady { id, .. } = event
            && let Ok(mut s) = self.sandbox.lock()
        {
            *s = Some(id.clone());
        }
    }

    fn wants_output(&self) -> bool {
        false
    }
}
