//! The sessions a server holds, and what a call leaves for the next one: the record a
//! cancelled or abandoned call could not deliver, and what runs now (so that
//! `session_status` answers at once while a step runs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use runbook_core::report::StepRecord;
use serde_json::Value;

use super::error::ToolError;
use super::results::RunningView;
use crate::exec::{Canceller, Session};

/// Every session of a server, by id.
#[derive(Default)]
pub(super) struct Table(Mutex<HashMap<String, Arc<Entry>>>);

impl Table {
    /// The session `id`, or an error that says how to get one.
    pub(super) fn get(&self, id: &str) -> Result<Arc<Entry>, ToolError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

    /// Keeps `session` under its id, with `view` as what `session_status` shows while a
    /// call runs.
    pub(super) fn keep(&self, session: Session, view: Value) {
        let id = session.id().to_owned();
        let entry = Entry {
            canceller: session.canceller(),
            session: tokio::sync::Mutex::new(Some(session)),
            late: Mutex::new(Late::default()),
            running: Mutex::new(None),
            view: Mutex::new(view),
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::new(entry));
    }

    /// Takes the session `id` out of the table.
    pub(super) fn remove(&self, id: &str) -> Option<Arc<Entry>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Drops every session.
    pub(super) fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// One session and what its calls leave behind.
pub(super) struct Entry {
    /// The session, taken out (`None`) once finished.
    pub(super) session: tokio::sync::Mutex<Option<Session>>,
    /// Cancels the step the session runs, without waiting for its lock.
    pub(super) canceller: Canceller,
    late: Mutex<Late>,
    running: Mutex<Option<(String, Option<String>, Instant)>>,
    /// The session as the last call left it (masked), for `session_status` while a call runs.
    view: Mutex<Value>,
}

/// The step records the calls produced, counted, and the one no caller received.
#[derive(Default)]
struct Late {
    /// How many step calls have ended.
    ended: u64,
    /// The record of the last step call that ended.
    last: Option<StepRecord>,
    /// A record whose call was cancelled: the next step call returns it.
    undelivered: Option<StepRecord>,
}

impl Entry {
    /// How many step calls have ended so far.
    pub(super) fn ended(&self) -> u64 {
        self.late
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ended
    }

    /// Records a step call's record; `delivered` is false when its caller cancelled it.
    pub(super) fn ended_with(&self, record: &StepRecord, delivered: bool) {
        let mut late = self.late.lock().unwrap_or_else(PoisonError::into_inner);
        late.ended += 1;
        late.last = Some(record.clone());
        late.undelivered = (!delivered).then(|| record.clone());
    }

    /// The record a caller did not receive: one whose call was cancelled, or, when calls
    /// had ended since `since` (this call waited behind one whose caller gave up), the
    /// last of them. Taken: it is delivered once.
    pub(super) fn take_late(&self, since: u64) -> Option<StepRecord> {
        let mut late = self.late.lock().unwrap_or_else(PoisonError::into_inner);
        let undelivered = late.undelivered.take();
        if late.ended > since {
            late.last.clone()
        } else {
            undelivered
        }
    }

    /// The undelivered record, left in place.
    pub(super) fn undelivered(&self) -> Option<StepRecord> {
        self.late
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .undelivered
            .clone()
    }

    /// Marks `tool` (running `step`) as in progress, until the guard is dropped.
    pub(super) fn running(&self, tool: &str, step: Option<String>) -> RunningGuard<'_> {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((tool.to_owned(), step, Instant::now()));
        RunningGuard(self)
    }

    /// What runs now, if anything.
    pub(super) fn now_running(&self) -> Option<RunningView> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(tool, step, since)| RunningView {
                tool: tool.clone(),
                step: step.clone(),
                seconds: since.elapsed().as_secs(),
            })
    }

    /// Remembers the session's view after a call.
    pub(super) fn set_view(&self, view: Value) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = view;
    }

    /// The session's view after the last call.
    pub(super) fn view(&self) -> Value {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Clears an entry's "running" mark when the call ends, however it ends.
pub(super) struct RunningGuard<'a>(&'a Entry);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        *self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}
