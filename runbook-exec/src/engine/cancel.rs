//! Cancelling what a session is running, from outside it (an MCP client's
//! `notifications/cancelled`, a caller's deadline): the command and everything it started
//! are killed, and the attempt is recorded as cancelled, never as passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// A handle that cancels the command or check a [`Session`](super::Session) is running
/// ([`Session::canceller`](super::Session::canceller)). It can be cloned and moved to
/// another task while the session is busy.
///
/// A cancel reaches only the step (or rollback) in flight when it is called: when nothing
/// runs it does nothing, so a cancel that arrives late cannot stop the next step.
#[derive(Debug, Clone)]
pub struct Canceller {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The operation in flight (0: none).
    running: AtomicU64,
    /// The last operation numbers handed out.
    issued: AtomicU64,
    /// The operation that was cancelled.
    cancelled: watch::Sender<u64>,
}

impl Default for Canceller {
    fn default() -> Self {
        Canceller {
            shared: Arc::new(Shared {
                running: AtomicU64::new(0),
                issued: AtomicU64::new(0),
                cancelled: watch::Sender::new(0),
            }),
        }
    }
}

impl Canceller {
    /// Cancels the step or rollback in flight, if any: its command (or the check running)
    /// is killed, and it is recorded as [`FailureKind::Cancelled`](runbook_core::report::FailureKind::Cancelled).
    pub fn cancel(&self) {
        let running = self.shared.running.load(Ordering::SeqCst);
        if running != 0 {
            self.shared.cancelled.send_replace(running);
        }
    }

    /// Starts an operation that this handle can cancel until it is dropped.
    pub(super) fn begin(&self) -> Operation {
        let id = self.shared.issued.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.running.store(id, Ordering::SeqCst);
        Operation {
            id,
            cancelled: self.shared.cancelled.subscribe(),
            shared: self.shared.clone(),
        }
    }
}

/// One cancellable operation (a step's attempt or a rollback).
pub(super) struct Operation {
    id: u64,
    cancelled: watch::Receiver<u64>,
    shared: Arc<Shared>,
}

impl Operation {
    /// Resolves when this operation is cancelled.
    pub(super) async fn cancelled(&mut self) {
        let id = self.id;
        // The sender lives in `shared`, which this operation holds: it cannot close.
        let _ = self.cancelled.wait_for(|c| *c == id).await;
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        // Nothing runs any more: a cancel from now on is for nobody.
        let _ =
            self.shared
                .running
                .compare_exchange(self.id, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_reaches_only_the_operation_in_flight() {
        let canceller = Canceller::default();
        // Nothing runs: the cancel is for nobody.
        canceller.cancel();
        let mut first = canceller.begin();
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), first.cancelled());
        assert!(
            pending.await.is_err(),
            "a cancel before it began reached it"
        );
        canceller.cancel();
        first.cancelled().await;
        drop(first);
        // A late cancel, after the operation ended, does not reach the next one.
        canceller.cancel();
        let mut second = canceller.begin();
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(20), second.cancelled());
        assert!(
            pending.await.is_err(),
            "a late cancel reached the next operation"
        );
    }
}
