//! Progress notifications for a call that carries a `progressToken`: what the engine does
//! (a step started, each check attempt that must be retried, a check passed or failed, a
//! step finished) and, every second while a
//! command runs, how long it has run and how many lines it printed. At most four
//! notifications a second: events that come faster are coalesced into the latest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;

use crate::exec::{Event, Observer};

/// The shortest time between two notifications.
const MIN_GAP: Duration = Duration::from_millis(250);
/// How often a running command is reported when nothing else happens.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Sends a call's progress to its client until dropped.
pub(super) struct Progress {
    observer: Arc<Reporter>,
    forwarder: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts reporting to `peer` under `token`.
    pub(super) fn start(peer: Peer<RoleServer>, token: ProgressToken) -> Progress {
        let (tx, rx) = mpsc::unbounded_channel();
        let observer = Arc::new(Reporter {
            tx,
            lines: AtomicU64::new(0),
        });
        let forwarder = tokio::spawn(forward(peer, token, rx, observer.clone()));
        Progress {
            observer,
            forwarder,
        }
    }

    /// The engine observer that feeds this reporter.
    pub(super) fn observer(&self) -> Arc<dyn Observer> {
        self.observer.clone()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

/// The observer half: turns engine events into messages, counts output lines.
struct Reporter {
    tx: mpsc::UnboundedSender<String>,
    lines: AtomicU64,
}

impl Observer for Reporter {
    fn event(&self, event: &Event) {
        let message = match event {
            Event::Output { .. } => {
                self.lines.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Event::StepStarted {
                step,
                attempt,
                rollback,
                ..
            } => {
                let what = if *rollback {
                    "rollback of step"
                } else {
                    "step"
                };
                format!("{what} `{step}` started (attempt {attempt})")
            }
            Event::CheckRetrying {
                step,
                check,
                attempt,
                ..
            } => format!("step `{step}`: check `{check}` attempt {attempt} not yet, retrying"),
            Event::CheckPassed { step, check, .. } => {
                format!("step `{step}`: check `{check}` passed")
            }
            Event::CheckFailed { step, check, .. } => {
                format!("step `{step}`: check `{check}` failed")
            }
            Event::StepFinished {
                step,
                passed,
                duration_ms,
                ..
            } => format!(
                "step `{step}` {} after {:.1} s",
                if *passed { "passed" } else { "failed" },
                *duration_ms as f64 / 1000.0
            ),
            _ => return,
        };
        let _ = self.tx.send(message);
    }
}

async fn forward(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut rx: mpsc::UnboundedReceiver<String>,
    reporter: Arc<Reporter>,
) {
    let started = Instant::now();
    let mut last_sent = Instant::now();
    let mut latest: Option<String> = None;
    let mut sent = 0u32;
    let mut tick = tokio::time::interval(MIN_GAP);
    loop {
        tokio::select! {
            message = rx.recv() => match message {
                Some(m) => latest = Some(m),
                None => return,
            },
            _ = tick.tick() => {
                let due = latest.take().or_else(|| {
                    (last_sent.elapsed() >= HEARTBEAT).then(|| {
                        format!(
                            "running for {} s, {} lines of output",
                            started.elapsed().as_secs(),
                            reporter.lines.load(Ordering::Relaxed)
                        )
                    })
                });
                if let Some(message) = due {
                    sent += 1;
                    let param = ProgressNotificationParam::new(token.clone(), f64::from(sent))
                        .with_message(message);
                    if peer.notify_progress(param).await.is_err() {
                        return;
                    }
                    last_sent = Instant::now();
                }
            }
        }
    }
}
