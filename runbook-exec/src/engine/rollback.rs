//! The rollback exercise: every completed step undone in reverse order, each verified.

use runbook_core::Step;
use runbook_core::report::{RollbackExercise, StepRecord, StepStatus, Verdict};

use super::Session;
use crate::Result;

impl Session {
    /// Runs the rollbacks of every completed step in reverse order, each verified by its
    /// own checks, and records the verdicts. After a successful run this is the rollback
    /// exercise ("rollback tested"); after a failure it restores the sandbox.
    pub async fn rollback(&mut self) -> Result<&RollbackExercise> {
        let mut records = Vec::new();
        let mut all_passed = true;
        for id in self.completed.clone().into_iter().rev() {
            let Some(step) = self.runbook.step(&id).cloned() else {
                continue;
            };
            let Some(rollback) = &step.rollback else {
                continue;
            };
            let as_step = Step {
                run: rollback.run.clone(),
                timeout: rollback.timeout,
                verify: rollback.verify.clone(),
                files: Vec::new(),
                ..step.clone()
            };
            let attempt = self.run_step(&as_step, 1, true).await?;
            let passed = attempt.passed();
            all_passed &= passed;
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
            if passed {
                self.completed.retain(|c| *c != id);
            }
        }
        self.next = self
            .runbook
            .steps
            .iter()
            .position(|s| !self.completed.contains(&s.id))
            .unwrap_or(self.runbook.steps.len());
        self.report.rollback = Some(RollbackExercise {
            verdict: if all_passed {
                Verdict::Passed
            } else {
                Verdict::Failed
            },
            steps: records,
        });
        self.save()?;
        Ok(self.report.rollback.as_ref().expect("just set"))
    }
}
