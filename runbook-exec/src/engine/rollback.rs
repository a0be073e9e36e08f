//! Rollbacks: every completed step undone in reverse order, each verified; the exercise
//! after a successful run, a restore before it.

use std::time::Instant;

use runbook_core::report::{RollbackExercise, RollbackPurpose, StepRecord, StepStatus, Verdict};
use runbook_core::{Runbook, Step};

use super::Session;
use super::phase::{InFlight, Slot, unfinished_attempt};
use crate::{ExecError, Result};

impl Session {
    /// Runs the rollbacks of every completed step in reverse order, each verified by its
    /// own checks, and records them. After every step passed this is the rollback
    /// exercise ("rollback tested", the report's `rollback`); before, it restores the
    /// sandbox (the report's `restores`, never the exercise): to give up after a failure,
    /// whose record [`Session::failure`] keeps (the verdict stays `failed`), or to start
    /// over. With nothing left to roll back, it records nothing and returns the last run.
    pub async fn rollback(&mut self) -> Result<&RollbackExercise> {
        self.settle()?;
        if self.completed.is_empty() {
            let last = match &self.report.rollback {
                Some(_) => Some(Slot::Exercise),
                None => self.report.restores.len().checked_sub(1).map(Slot::Restore),
            };
            if let Some(slot) = last {
                return Ok(self.slot_ref(slot));
            }
        }
        let purpose = if self.all_passed() {
            RollbackPurpose::Exercise
        } else {
            RollbackPurpose::Restore {
                failed: self.failure().map(|r| r.id.clone()),
            }
        };
        let slot = self.roll_back_until(None, purpose).await?;
        Ok(self.slot_ref(slot))
    }

    /// Goes back to before `step_id`, a step that passed, so that it can be amended and
    /// run again: the rollbacks of the completed steps from the last one down to
    /// `step_id` (included) run in reverse order, each verified, and stop at the first
    /// that fails. They are recorded in the report's `restores` (to redo `step_id`); the
    /// next step is then `step_id` when they all passed. A step that has not passed needs
    /// no rewind.
    pub async fn rewind_to(&mut self, step_id: &str) -> Result<&RollbackExercise> {
        self.settle()?;
        if self.runbook.step(step_id).is_none() {
            return Err(ExecError::NoSuchStep(step_id.to_owned()));
        }
        if !self.completed.iter().any(|c| c == step_id) {
            return Err(ExecError::Usage(format!(
                "step `{step_id}` has not passed: amend it as it is, no rewind is needed"
            )));
        }
        let purpose = RollbackPurpose::Redo {
            step: step_id.to_owned(),
        };
        let slot = self.roll_back_until(Some(step_id), purpose).await?;
        Ok(self.slot_ref(slot))
    }

    /// [`Session::rewind_to`] `step_id`, as an error when a rollback failed.
    pub(super) async fn go_back_before(&mut self, step_id: &str) -> Result<()> {
        let rewind = self.rewind_to(step_id).await?;
        if rewind.verdict == Verdict::Passed {
            Ok(())
        } else {
            Err(ExecError::RewindFailed(step_id.to_owned()))
        }
    }

    /// Rolls back the completed steps newest first, down to `stop` (included; all when
    /// `None`), recording them as they run where `purpose` belongs. A rewind stops at its
    /// first failed rollback (what is before it is left as it is); the others go on, to
    /// restore what they can.
    async fn roll_back_until(
        &mut self,
        stop: Option<&str>,
        purpose: RollbackPurpose,
    ) -> Result<Slot> {
        let run = RollbackExercise {
            verdict: Verdict::Incomplete,
            steps: Vec::new(),
            purpose,
        };
        let slot = if run.purpose == RollbackPurpose::Exercise {
            self.report.rollback = Some(run);
            Slot::Exercise
        } else {
            self.report.restores.push(run);
            Slot::Restore(self.report.restores.len() - 1)
        };
        let mut all_passed = true;
        for id in self.completed.clone().into_iter().rev() {
            let Some(step) = self.runbook.step(&id).cloned() else {
                continue;
            };
            let passed = match &step.rollback {
                // A step without a rollback (read-only) has nothing to undo: the exercise
                // leaves it done; a rewind runs it again after the amended step.
                None if stop.is_none() => continue,
                None => true,
                Some(rollback) => {
                    let as_step = Step {
                        run: rollback.run.clone(),
                        timeout: rollback.timeout,
                        verify: rollback.verify.clone(),
                        files: Vec::new(),
                        ..step.clone()
                    };
                    // Recorded before it runs, as for a step: a dropped call leaves it
                    // cancelled, not missing.
                    self.slot(slot).steps.push(StepRecord {
                        id: step.id.clone(),
                        title: format!("Roll back: {}", step.title),
                        status: StepStatus::Failed,
                        attempts: vec![unfinished_attempt(&as_step.run)],
                    });
                    self.in_flight = Some(InFlight::Rollback {
                        id: step.id.clone(),
                        slot,
                        started: Instant::now(),
                    });
                    self.save()?;
                    let result = self.run_step(&as_step, 1, true).await;
                    self.in_flight = None;
                    let attempt = match result {
                        Ok(attempt) => attempt,
                        Err(e) => {
                            let run = self.slot(slot);
                            run.steps.pop();
                            run.verdict = Verdict::Failed;
                            self.save()?;
                            return Err(e);
                        }
                    };
                    let passed = attempt.passed();
                    let record = self.slot(slot).steps.last_mut().expect("just pushed");
                    record.status = if passed {
                        StepStatus::Passed
                    } else {
                        StepStatus::Failed
                    };
                    record.attempts = vec![attempt];
                    passed
                }
            };
            all_passed &= passed;
            if passed {
                self.completed.retain(|c| *c != id);
                self.next = self.first_pending();
            }
            if stop == Some(id.as_str()) || (stop.is_some() && !passed) {
                break;
            }
        }
        self.next = self.first_pending();
        self.slot(slot).verdict = if all_passed {
            Verdict::Passed
        } else {
            Verdict::Failed
        };
        self.save()?;
        Ok(slot)
    }
}

impl Session {
    /// Continues the session with `edited`, the runbook as a person fixed it after a
    /// failure (`runbook resume ID --amend FIXED.yaml`): the first step that differs
    /// (its text, or a config file it uses) is where the run picks up again. When that
    /// step already passed, the session first goes back before it ([`Session::rewind_to`]).
    /// The failure that led here keeps the difference as its amendment; the changed step
    /// gets a known issue whose error is that failure's cause line, unless the edit gave it
    /// one itself. Returns the id of the step the run continues from, if any differs.
    pub async fn amend_runbook(&mut self, edited: Runbook) -> Result<Option<String>> {
        self.settle()?;
        super::refuse_lint_errors(&edited)?;
        let Some(changed) = first_changed_step(&self.runbook, &edited) else {
            return Ok(None);
        };
        if self.completed.contains(&changed) {
            self.go_back_before(&changed).await?;
        }
        let mut edited = edited;
        if let Some(i) = self.unanswered_failure(None) {
            let diff = runbook_core::report::line_diff(
                &runbook_core::to_yaml_string(&self.runbook),
                &runbook_core::to_yaml_string(&edited),
            );
            let error = self.known_error(i);
            let step = edited
                .steps
                .iter_mut()
                .find(|s| s.id == changed)
                .expect("the changed step is in the edited runbook");
            let before = self
                .runbook
                .step(&changed)
                .map_or(0, |s| s.known_issues.len());
            if step.known_issues.len() <= before {
                step.known_issues.push(runbook_core::KnownIssue::new(
                    self.redactor.redact(&error),
                    "Found in the sandbox: see the failed attempt's evidence.",
                    format!("The runbook was changed from step `{changed}` on, as the amendment's diff shows."),
                ));
            }
            let fix = step
                .known_issues
                .last()
                .map(|k| k.fix.clone())
                .unwrap_or_default();
            self.answer(i, &runbook_core::report::compact_diff(&diff, 2), &fix);
        }
        // What is still to run starts at the changed step; what passed before it stays.
        self.completed
            .retain(|c| edited.steps.iter().any(|s| s.id == *c));
        self.runbook = edited;
        self.next = self.first_pending();
        self.log_line(&format!(
            "### runbook amended: the run goes on from step {changed}\n"
        ));
        self.save()?;
        Ok(Some(changed))
    }
}

/// The first step of `edited` that differs from `before` (its own text, known issues
/// aside, or the content of a config file it uses), or that `before` does not have.
fn first_changed_step(before: &Runbook, edited: &Runbook) -> Option<String> {
    let bare = |s: &Step| {
        let mut s = s.clone();
        s.known_issues.clear();
        s
    };
    let file = |rb: &Runbook, path: &str| rb.config_file(path).map(|f| f.content.clone());
    edited.steps.iter().enumerate().find_map(|(i, s)| {
        let same = before.steps.get(i).is_some_and(|b| bare(b) == bare(s))
            && s.files.iter().all(|f| file(before, f) == file(edited, f))
            // Files written before the first step belong to no step: the first step.
            && (i > 0
                || edited.config_files.iter().all(|f| {
                    edited.steps.iter().any(|s| s.files.contains(&f.path))
                        || file(before, &f.path) == Some(f.content.clone())
                }));
        (!same).then(|| s.id.clone())
    })
}
