//! The rollback exercise: every completed step undone in reverse order, each verified.

use runbook_core::Step;
use runbook_core::report::{RollbackExercise, StepRecord, StepStatus, Verdict};

use super::Session;
use crate::{ExecError, Result};

impl Session {
    /// Runs the rollbacks of every completed step in reverse order, each verified by its
    /// own checks, and records the verdicts. After a successful run this is the rollback
    /// exercise ("rollback tested"); after a failure it restores the sandbox.
    pub async fn rollback(&mut self) -> Result<&RollbackExercise> {
        let exercise = self.roll_back_until(None).await?;
        self.report.rollback = Some(exercise);
        self.save()?;
        Ok(self.report.rollback.as_ref().expect("just set"))
    }

    /// Goes back to before `step_id`, a step that passed, so that it can be amended and
    /// run again: the rollbacks of the completed steps from the last one down to
    /// `step_id` (included) run in reverse order, each verified, and stop at the first
    /// that fails. The rollbacks are recorded in the report (`rewinds`); the next step is
    /// then `step_id` when they all passed. A step that has not passed needs no rewind.
    pub async fn rewind_to(&mut self, step_id: &str) -> Result<&RollbackExercise> {
        if self.runbook.step(step_id).is_none() {
            return Err(ExecError::NoSuchStep(step_id.to_owned()));
        }
        if !self.completed.iter().any(|c| c == step_id) {
            return Err(ExecError::Usage(format!(
                "step `{step_id}` has not passed: amend it as it is, no rewind is needed"
            )));
        }
        let exercise = self.roll_back_until(Some(step_id)).await?;
        self.report.rewinds.push(exercise);
        self.save()?;
        Ok(self.report.rewinds.last().expect("just pushed"))
    }

    /// Rolls back the completed steps newest first, down to `stop` (included; all when
    /// `None`). A rewind stops at its first failed rollback (what is before it is left
    /// as it is); the exercise goes on, to restore what it can.
    async fn roll_back_until(&mut self, stop: Option<&str>) -> Result<RollbackExercise> {
        let mut records = Vec::new();
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
                    let attempt = self.run_step(&as_step, 1, true).await?;
                    let passed = attempt.passed();
                    records.push(StepRecord {
                        id: step.id.clone(),
                        title: format!("Roll back: {}", step.title),
                        status: if passed {
                            StepStatus::Passed
                        } else {
                            StepStatus::Failed
                        },
                        attempts: vec![attempt],
                    });
                    passed
                }
            };
            all_passed &= passed;
            if passed {
                self.completed.retain(|c| *c != id);
            }
            if stop == Some(id.as_str()) || (stop.is_some() && !passed) {
                break;
            }
        }
        self.next = self
            .runbook
            .steps
            .iter()
            .position(|s| !self.completed.contains(&s.id))
            .unwrap_or(self.runbook.steps.len());
        Ok(RollbackExercise {
            verdict: if all_passed {
                Verdict::Passed
            } else {
                Verdict::Failed
            },
            steps: records,
        })
    }
}
