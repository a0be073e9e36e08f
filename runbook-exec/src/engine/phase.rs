//! The session's state machine: where a session is ([`Phase`]), the failure that stands,
//! the verdict it would finish with, and what a dropped call left behind.
//!
//! docs/agents.md draws it. In short: a step that fails leaves its failure standing until
//! that step passes again; rollbacks before every step has passed restore (they never
//! count as the exercise); an attempt is recorded before its command runs, as cancelled,
//! so that a call dropped half-way (a caller's own timeout) leaves a numbered, retryable
//! attempt rather than nothing.

use std::time::Instant;

use runbook_core::report::{
    Attempt, FailureKind, RollbackExercise, RollbackPurpose, StepRecord, StepStatus, Verdict,
};

use super::{Session, millis};
use crate::Result;
use crate::events::Event;

/// Where a session is. [`Session::phase`] tells it; docs/agents.md draws the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Steps are left to run and no failure stands: [`Session::run_next`] runs the next.
    Ready,
    /// A step failed and has not passed since ([`Session::failure`] holds its record).
    /// When it is the next step, [`Session::amend`] then [`Session::retry`]; after a
    /// restore or a redo, [`Session::run_next`] goes on from the first step not passed;
    /// [`Session::finish`] gives up, with the verdict `failed`.
    Failed,
    /// Every step passed: [`Session::rollback`] now is the rollback exercise.
    Passed,
    /// Every step passed, then the rollback exercise ran.
    RolledBack,
}

impl Phase {
    /// The verdict a session in this phase finishes with.
    pub fn verdict(self) -> Verdict {
        match self {
            Phase::Ready => Verdict::Incomplete,
            Phase::Failed => Verdict::Failed,
            Phase::Passed | Phase::RolledBack => Verdict::Passed,
        }
    }
}

/// What runs while a call is in flight, so that the next call can tell a dropped one.
#[derive(Debug)]
pub(super) enum InFlight {
    /// A step's attempt (already recorded as cancelled).
    Step { id: String, started: Instant },
    /// One rollback of a rollback run (already recorded as cancelled) in `slot`.
    Rollback {
        id: String,
        slot: Slot,
        started: Instant,
    },
}

/// Where a rollback run is recorded.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    /// `report.rollback`.
    Exercise,
    /// `report.restores[i]`.
    Restore(usize),
}

/// What an attempt says until it ends: if the call running it is dropped, it stays so.
pub(super) fn unfinished_attempt(command: &str) -> Attempt {
    Attempt {
        command: command.to_owned(),
        failure: "cancelled: the call running it was dropped (a caller's timeout, say), or its \
                  process stopped, before the attempt ended"
            .into(),
        failure_kind: Some(FailureKind::Cancelled),
        ..Attempt::default()
    }
}

impl Session {
    /// Where the session is in its state machine.
    pub fn phase(&self) -> Phase {
        if self.failure().is_some() {
            Phase::Failed
        } else if self.all_passed() {
            Phase::Passed
        } else if self
            .report
            .rollback
            .as_ref()
            .is_some_and(|r| r.purpose == RollbackPurpose::Exercise)
        {
            Phase::RolledBack
        } else {
            Phase::Ready
        }
    }

    /// The verdict the session would finish with now: `failed` while a failure stands
    /// (after giving up with [`Session::rollback`] too), `passed` once every step passed,
    /// else `incomplete`.
    pub fn verdict(&self) -> Verdict {
        self.phase().verdict()
    }

    /// The record of the step whose failure stands: it failed and has not passed since.
    /// The next step's own first ([`Session::retry`] runs it again); else, after a
    /// restore or a redo moved the session back, the last such step of the runbook. A
    /// rollback does not clear a failure: only that step passing does.
    pub fn failure(&self) -> Option<&StepRecord> {
        self.failure_here().or_else(|| {
            self.runbook.steps.iter().rev().find_map(|s| {
                self.record(&s.id)
                    .filter(|r| r.status == StepStatus::Failed && !self.step_passed(&s.id))
            })
        })
    }

    /// The next step's record, when its last attempt failed: what [`Session::retry`] runs.
    pub(super) fn failure_here(&self) -> Option<&StepRecord> {
        let step = self.next_step()?;
        self.record(&step.id)
            .filter(|r| r.status == StepStatus::Failed)
    }

    pub(super) fn all_passed(&self) -> bool {
        self.runbook
            .steps
            .iter()
            .all(|s| self.completed.contains(&s.id))
    }

    pub(super) fn slot(&mut self, slot: Slot) -> &mut RollbackExercise {
        match slot {
            Slot::Exercise => self
                .report
                .rollback
                .as_mut()
                .expect("the exercise is recorded"),
            Slot::Restore(i) => &mut self.report.restores[i],
        }
    }

    pub(super) fn slot_ref(&self, slot: Slot) -> &RollbackExercise {
        match slot {
            Slot::Exercise => self
                .report
                .rollback
                .as_ref()
                .expect("the exercise is recorded"),
            Slot::Restore(i) => &self.report.restores[i],
        }
    }

    /// Ends what a dropped call left running. Its attempt was recorded as cancelled before
    /// it began; here the log entry gets its end, the duration and the event are given,
    /// and a rollback run gets its verdict. Every call that changes the session starts so.
    pub(super) fn settle(&mut self) -> Result<()> {
        let Some(dropped) = self.in_flight.take() else {
            return Ok(());
        };
        let (id, started, rollback) = match dropped {
            InFlight::Step { id, started } => {
                if let Some(a) = self
                    .report
                    .steps
                    .iter_mut()
                    .find(|r| r.id == id)
                    .and_then(|r| r.attempts.last_mut())
                {
                    a.duration_ms = millis(started.elapsed());
                }
                (id, started, false)
            }
            InFlight::Rollback { id, slot, started } => {
                let run = self.slot(slot);
                run.verdict = Verdict::Failed;
                if let Some(a) = run.steps.last_mut().and_then(|r| r.attempts.last_mut()) {
                    a.duration_ms = millis(started.elapsed());
                }
                // The rollbacks that passed before it undid their steps.
                self.next = self.first_pending();
                (id, started, true)
            }
        };
        let failure = unfinished_attempt("").failure;
        self.log_line(&format!("--- {failure}\n"));
        self.options.observer.event(&Event::StepFinished {
            step: id,
            passed: false,
            duration_ms: millis(started.elapsed()),
            failure,
            rollback,
        });
        self.save()
    }
}
