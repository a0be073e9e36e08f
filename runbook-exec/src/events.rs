//! Events the engine emits while it works, for progress bars and streaming agents.

use std::sync::Mutex;

use serde::Serialize;

use crate::Stream;

/// Something that happened during a run. Every text is already redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Event {
    /// A sandbox is ready.
    #[serde(rename_all = "camelCase")]
    SandboxReady {
        /// Its id.
        id: String,
        /// The provider.
        provider: String,
        /// Its lifetime.
        lifetime: String,
        /// Whether it was resumed rather than provisioned.
        resumed: bool,
    },
    /// A prerequisite was checked.
    #[serde(rename_all = "camelCase")]
    Preflight {
        /// The tool.
        tool: String,
        /// The detected version.
        detected: Option<String>,
        /// Whether it satisfies the requirement.
        satisfied: bool,
    },
    /// A step (or a rollback) started.
    #[serde(rename_all = "camelCase")]
    StepStarted {
        /// Step id.
        step: String,
        /// Step title.
        title: String,
        /// 1-based attempt number.
        attempt: u32,
        /// Whether this is the step's rollback.
        rollback: bool,
    },
    /// One line of output.
    #[serde(rename_all = "camelCase")]
    Output {
        /// Step id.
        step: String,
        /// Which stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// A check's attempt did not confirm the result; it is tried again after its
    /// interval, until its `within` deadline.
    #[serde(rename_all = "camelCase")]
    CheckRetrying {
        /// Step id.
        step: String,
        /// Check label.
        check: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// What it saw.
        actual: String,
    },
    /// A check passed.
    #[serde(rename_all = "camelCase")]
    CheckPassed {
        /// Step id.
        step: String,
        /// Check label.
        check: String,
        /// Attempts it took.
        attempts: u32,
    },
    /// A check failed (after all its attempts).
    #[serde(rename_all = "camelCase")]
    CheckFailed {
        /// Step id.
        step: String,
        /// Check label.
        check: String,
        /// Attempts made.
        attempts: u32,
        /// What it expected.
        expected: String,
        /// What it saw.
        actual: String,
    },
    /// A step (or a rollback) finished.
    #[serde(rename_all = "camelCase")]
    StepFinished {
        /// Step id.
        step: String,
        /// Whether it passed.
        passed: bool,
        /// Wall time in milliseconds.
        duration_ms: u64,
        /// Why it failed, if it did.
        failure: String,
        /// Whether this was the step's rollback.
        rollback: bool,
    },
    /// The sandbox was destroyed, or kept.
    #[serde(rename_all = "camelCase")]
    Teardown {
        /// Its id.
        id: String,
        /// `true` when destroyed, `false` when kept (persistent).
        destroyed: bool,
    },
}

/// Receives the engine's events. Called from the engine's task: keep it quick.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: &Event);

    /// Whether to emit [`Event::Output`] for every line (default: yes). Saying no
    /// saves the line splitting on commands that print a lot.
    fn wants_output(&self) -> bool {
        true
    }
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn event(&self, _: &Event) {}

    fn wants_output(&self) -> bool {
        false
    }
}

impl<F: Fn(&Event) + Send + Sync> Observer for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// Keeps every event in memory (for tests and for agents that read them later).
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Observer for Recorder {
    fn event(&self, event: &Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.clone());
        }
    }
}
