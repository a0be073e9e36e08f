//! Steps: running the next one (with its files and checks), retrying it after an
//! amendment, running the rest.

use std::time::Instant;

use runbook_core::report::{Attempt, FailureKind, StepRecord, StepStatus};
use runbook_core::template::fill_template;
use runbook_core::{ConfigFile, KnownIssue, Runbook, Step};

use super::capture::Capture;
use super::phase::{InFlight, unfinished_attempt};
use super::{Amendment, Session, millis, refuse_lint_errors};
use crate::events::Event;
use crate::{CommandSpec, ExecError, Result};

impl Session {
    /// Runs the next step (or re-runs the step that failed). Returns its record, or
    /// `None` when every step has passed.
    ///
    /// The record is a copy, so the session stays free for the natural next call
    /// (`session.amend(&record.id, …)`).
    pub async fn run_next(&mut self) -> Result<Option<StepRecord>> {
        self.settle()?;
        if !self.preflight_problems.is_empty() {
            // What the pre-flight found missing (a tool, a free port) would make the step
            // fail or do harm.
            return Err(ExecError::Preflight(self.preflight_problems.clone()));
        }
        let Some(step) = self.runbook.steps.get(self.next).cloned() else {
            self.save()?;
            return Ok(None);
        };
        let idx = match self.report.steps.iter().position(|r| r.id == step.id) {
            Some(i) => i,
            None => {
                self.report.steps.push(StepRecord {
                    id: step.id.clone(),
                    title: step.title.clone(),
                    status: StepStatus::Failed,
                    attempts: Vec::new(),
                });
                self.report.steps.len() - 1
            }
        };
        let before = self.report.steps[idx].status;
        let attempt_no = self.report.steps[idx].attempts.len() as u32 + 1;
        // Recorded before it runs, as cancelled: when the caller drops this call (its own
        // timeout), the next call finds the attempt, numbered, and `retry` runs it again.
        let record = &mut self.report.steps[idx];
        record.attempts.push(unfinished_attempt(&step.run));
        record.status = StepStatus::Failed;
        self.in_flight = Some(InFlight::Step {
            id: step.id.clone(),
            started: Instant::now(),
        });
        self.save()?;
        let result = self.run_step(&step, attempt_no, false).await;
        self.in_flight = None;
        let record = &mut self.report.steps[idx];
        record.attempts.pop();
        let attempt = match result {
            Ok(attempt) => attempt,
            Err(e) => {
                // The machinery failed, not the step: as if the attempt had not begun.
                record.status = before;
                if record.attempts.is_empty() {
                    self.report.steps.remove(idx);
                }
                self.save()?;
                return Err(e);
            }
        };
        let passed = attempt.passed();
        record.title = step.title.clone();
        record.attempts.push(attempt);
        record.status = if passed {
            StepStatus::Passed
        } else {
            StepStatus::Failed
        };
        if passed {
            self.completed.push(step.id.clone());
            self.next += 1;
        }
        self.save()?;
        Ok(Some(self.report.steps[idx].clone()))
    }

    /// Re-runs the failing step (after [`Session::amend`]): the next step, when its last
    /// attempt failed (or was cancelled).
    pub async fn retry(&mut self) -> Result<StepRecord> {
        self.settle()?;
        if !self.preflight_problems.is_empty() {
            return Err(ExecError::Preflight(self.preflight_problems.clone()));
        }
        if self.failure_here().is_none() {
            return Err(ExecError::NothingToRetry);
        }
        self.run_next().await?.ok_or(ExecError::NothingToRetry)
    }

    /// Changes a step that has not passed yet and records why: the error seen, its root
    /// cause and the fix. The known issue goes into the runbook, so the human learns it;
    /// an empty `error` is taken from the failed attempt's first cause line. The failed
    /// attempt keeps the amendment (the step's diff, with the content of any config file
    /// it changed, and the fix) as evidence. A step that passed is refused, and so is a
    /// config file a step that passed uses: [`Session::amend_and_rewind`] goes back
    /// before such a step first.
    pub fn amend(&mut self, step_id: &str, amendment: Amendment, issue: KnownIssue) -> Result<()> {
        self.settle()?;
        if self.completed.iter().any(|c| c == step_id) {
            return Err(ExecError::StepPassed(step_id.to_owned()));
        }
        let (amended, changed) = self.amended(step_id, amendment, &issue)?;
        if let Some((user, path)) = self.passed_user(&changed) {
            return Err(ExecError::Usage(format!(
                "config file `{path}` is used by step `{user}`, which already passed: go back before it \
                 with `rewind_to(\"{user}\")` first, or amend with `amend_and_rewind`"
            )));
        }
        if let Some(i) = self.unanswered_failure(Some(step_id)) {
            // What was changed, not the known issue it records; the config files changed
            // follow the step.
            let view = |rb: &Runbook| {
                let mut s = rb.step(step_id).cloned().expect("the step exists");
                s.known_issues.clear();
                let mut text = runbook_core::to_yaml(&s);
                let files: Vec<&ConfigFile> =
                    changed.iter().filter_map(|p| rb.config_file(p)).collect();
                if !files.is_empty() {
                    text.push_str("configFiles:\n");
                    text.push_str(&runbook_core::to_yaml(&files));
                }
                text
            };
            let mut diff = runbook_core::report::line_diff(&view(&self.runbook), &view(&amended));
            if !changed.is_empty() {
                // A config file can be long: the changed lines and some context suffice.
                diff = runbook_core::report::compact_diff(&diff, 2);
            }
            self.answer(i, &diff, &issue.fix);
        }
        self.runbook = amended;
        let note = format!(
            "### step {step_id} amended: {}\n",
            self.redactor.redact(&issue.fix)
        );
        self.log_line(&note);
        self.save()
    }

    /// Amends `step_id` as [`Session::amend`] does, after going back when it must: when
    /// the step passed, or when a config file whose content the amendment changes is used
    /// by a step that passed, the session first rolls back from the last completed step
    /// down to the earliest such step ([`Session::rewind_to`], recorded in the report's
    /// `restores`). An amendment that would be refused is refused before anything is rolled
    /// back. Returns the step the session went back to, if it did: the run goes on from
    /// there ([`Session::run_next`] or [`Session::run_remaining`]; [`Session::retry`] only
    /// when no rewind was needed).
    pub async fn amend_and_rewind(
        &mut self,
        step_id: &str,
        amendment: Amendment,
        issue: KnownIssue,
    ) -> Result<Option<String>> {
        self.settle()?;
        let (_, changed) = self.amended(step_id, amendment.clone(), &issue)?;
        let target = self
            .runbook
            .steps
            .iter()
            .find(|s| {
                self.step_passed(&s.id)
                    && (s.id == step_id || changed.iter().any(|p| uses(&self.runbook, s, p)))
            })
            .map(|s| s.id.clone());
        if let Some(target) = &target {
            self.go_back_before(target).await?;
        }
        self.amend(step_id, amendment, issue)?;
        Ok(target)
    }

    /// The runbook with `amendment` applied to `step_id` and `issue` recorded on it
    /// (redacted, its error taken from the failure it answers when empty), linted; and
    /// the paths of the config files whose content it changes. Changes nothing.
    fn amended(
        &self,
        step_id: &str,
        amendment: Amendment,
        issue: &KnownIssue,
    ) -> Result<(Runbook, Vec<String>)> {
        let mut amended = self.runbook.clone();
        let mut changed = Vec::new();
        for file in amendment.configs {
            let Some(old) = amended
                .config_files
                .iter_mut()
                .find(|f| f.path == file.path)
            else {
                let known: Vec<&str> = self
                    .runbook
                    .config_files
                    .iter()
                    .map(|f| f.path.as_str())
                    .collect();
                return Err(ExecError::Usage(format!(
                    "no config file `{}` in the runbook (its config files: {}); an amendment changes \
                     the content of those there are",
                    file.path,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            if old.content != file.content {
                old.content = file.content;
                changed.push(file.path.clone());
            }
            if !file.description.is_empty() {
                old.description = file.description;
            }
        }
        let step = amended
            .steps
            .iter_mut()
            .find(|s| s.id == step_id)
            .ok_or_else(|| ExecError::NoSuchStep(step_id.to_owned()))?;
        if let Some(run) = amendment.run {
            step.run = run;
        }
        if let Some(verify) = amendment.verify {
            step.verify = verify;
        }
        if let Some(rollback) = amendment.rollback {
            step.rollback = rollback;
        }
        if let Some(files) = amendment.files {
            step.files = files;
        }
        if let Some(timeout) = amendment.timeout {
            step.timeout = timeout.map(runbook_core::HumanDuration);
        }
        // The failed attempt this amendment answers: the step's own, or (after a rewind to
        // an earlier step) the last failure not answered yet. Its cause line is the known
        // issue's error when the caller gave none (rather than a generic "could not start
        // server").
        let error = match self.unanswered_failure(Some(step_id)) {
            Some(i) if issue.error.trim().is_empty() => self.known_error(i),
            _ => issue.error.clone(),
        };
        // A known issue must not carry a secret into the package.
        step.known_issues.push(KnownIssue::new(
            self.redactor.redact(&error),
            self.redactor.redact(&issue.cause),
            self.redactor.redact(&issue.fix),
        ));
        refuse_lint_errors(&amended)?;
        Ok((amended, changed))
    }

    /// The first step that passed and uses one of the config files `paths`, with that
    /// path.
    fn passed_user(&self, paths: &[String]) -> Option<(String, String)> {
        self.runbook.steps.iter().find_map(|s| {
            let path = paths.iter().find(|p| uses(&self.runbook, s, p))?;
            self.step_passed(&s.id)
                .then(|| (s.id.clone(), path.clone()))
        })
    }

    /// The step record whose last attempt failed and no amendment has answered yet:
    /// `step_id`'s own when it is one, else (after a rewind to an earlier step) the latest.
    pub(super) fn unanswered_failure(&self, step_id: Option<&str>) -> Option<usize> {
        let unanswered = |r: &StepRecord| {
            r.attempts
                .last()
                .is_some_and(|a| !a.passed() && a.amendment.is_none())
        };
        self.report
            .steps
            .iter()
            .position(|r| Some(r.id.as_str()) == step_id && unanswered(r))
            .or_else(|| self.report.steps.iter().rposition(unanswered))
    }

    /// The error a known issue records for record `i`'s failed attempt: its cause line,
    /// without what differs on every run (timestamps, process ids, hex ids), so that the
    /// operator's log shows the same words.
    pub(super) fn known_error(&self, i: usize) -> String {
        self.report.steps[i]
            .attempts
            .last()
            .map(|a| runbook_core::feedback::normalise_error(&a.cause_line()))
            .unwrap_or_default()
    }

    /// Records on record `i`'s failed attempt the amendment that answers it (redacted).
    pub(super) fn answer(&mut self, i: usize, diff: &str, fix: &str) {
        let amendment = runbook_core::report::AmendmentRecord {
            diff: self.redactor.redact(diff),
            fix: self.redactor.redact(fix),
        };
        if let Some(a) = self.report.steps[i].attempts.last_mut() {
            a.amendment = Some(amendment);
        }
    }

    /// The first step that has not passed (or the end): where the run goes on.
    pub(super) fn first_pending(&self) -> usize {
        self.runbook
            .steps
            .iter()
            .position(|s| !self.completed.contains(&s.id))
            .unwrap_or(self.runbook.steps.len())
    }

    /// Runs every remaining step; stops at the first failure. Returns whether all passed.
    pub async fn run_remaining(&mut self) -> Result<bool> {
        while self.next < self.runbook.steps.len() {
            let passed = self
                .run_next()
                .await?
                .is_some_and(|r| r.status == StepStatus::Passed);
            if !passed {
                return Ok(false);
            }
        }
        self.save()?;
        Ok(true)
    }

    async fn write_files(&mut self, step: &Step) -> Result<()> {
        // Files no step names are written before the first step; a step's own files are
        // (re)written before it runs, so an amended template takes effect.
        let mut paths: Vec<&str> = step.files.iter().map(String::as_str).collect();
        if self.next == 0 && self.completed.is_empty() {
            paths.extend(
                self.runbook
                    .config_files
                    .iter()
                    .filter(|f| !self.runbook.steps.iter().any(|s| s.files.contains(&f.path)))
                    .map(|f| f.path.as_str()),
            );
        }
        for path in paths {
            if let Some(file) = self.runbook.config_file(path) {
                let content = fill_template(&file.content, &self.values);
                self.sandbox.write_file(path, content.as_bytes()).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn run_step(
        &mut self,
        step: &Step,
        attempt_no: u32,
        rollback: bool,
    ) -> Result<Attempt> {
        let observer = self.options.observer.clone();
        observer.event(&Event::StepStarted {
            step: step.id.clone(),
            title: step.title.clone(),
            attempt: attempt_no,
            rollback,
        });
        if !rollback {
            self.write_files(step).await?;
        }
        let started = Instant::now();
        let since = super::diagnose::now_epoch();
        let kind = if rollback { "rollback" } else { "step" };
        self.log_line(&format!(
            "\n=== {kind} {} (attempt {attempt_no}): {}\n$ {}\n",
            step.id, step.title, step.run
        ));
        let timeout = step
            .timeout
            .map_or(self.options.step_timeout, |t| t.as_duration());
        let spec = CommandSpec {
            errexit: true,
            ..self.spec(step.run.clone(), step.workdir.clone(), timeout)
        };
        let mut sink = Capture::new(
            &step.id,
            self.options.output_cap,
            &self.redactor,
            &mut self.log,
            observer.as_ref(),
        );
        // Cancelling drops the run, which kills the command's process group and cgroup.
        let mut operation = self.canceller.begin();
        let (exit, mut cancelled) = tokio::select! {
            exit = self.sandbox.run(&spec, &mut sink) => (exit?, false),
            () = operation.cancelled() => (
                crate::Exit { code: None, timed_out: false, duration: started.elapsed() },
                true,
            ),
        };
        let output = sink.finish().into_output(&exit);
        let mut failure = String::new();
        let mut failure_kind = None;
        if cancelled {
            failure =
                "cancelled while the command ran: it was killed, with everything it started".into();
            failure_kind = Some(FailureKind::Cancelled);
        } else if exit.timed_out {
            failure = format!(
                "the command timed out after {} (raise the step's `timeout:` if it needs longer)",
                runbook_core::HumanDuration(timeout)
            );
            failure_kind = Some(FailureKind::TimedOut);
        } else if exit.code != Some(0) {
            (failure, failure_kind) = match exit.code {
                Some(c) => (
                    format!("the command exited with code {c}"),
                    Some(FailureKind::ExitCode { code: c }),
                ),
                None => (
                    "the command was killed by a signal".into(),
                    Some(FailureKind::Killed),
                ),
            };
        }
        self.log_line(&format!(
            "--- {} in {:.2}s\n",
            match exit.code {
                Some(c) => format!("exit {c}"),
                None if cancelled => "cancelled".into(),
                None if exit.timed_out => "timed out".into(),
                None => "killed".into(),
            },
            exit.duration.as_secs_f64()
        ));
        let mut check_records = Vec::new();
        if failure.is_empty() {
            for (index, check) in step.verify.iter().enumerate() {
                let record = tokio::select! {
                    record = self.run_check(step, check) => record?,
                    () = operation.cancelled() => {
                        cancelled = true;
                        failure = format!("cancelled while check `{}` ran", check.label());
                        failure_kind = Some(FailureKind::Cancelled);
                        break;
                    }
                };
                let passed = record.passed;
                if passed {
                    observer.event(&Event::CheckPassed {
                        step: step.id.clone(),
                        check: record.name.clone(),
                        attempts: record.attempts,
                    });
                } else {
                    observer.event(&Event::CheckFailed {
                        step: step.id.clone(),
                        check: record.name.clone(),
                        attempts: record.attempts,
                        expected: record.expected.clone(),
                        actual: record.actual.clone(),
                    });
                    failure = format!(
                        "check `{}` failed: expected {}; saw {}",
                        record.name, record.expected, record.actual
                    );
                    failure_kind = Some(FailureKind::Check {
                        index,
                        name: record.name.clone(),
                    });
                }
                check_records.push(record);
                if !passed {
                    break;
                }
            }
        }
        drop(operation);
        // A cancelled attempt ends now: the caller asked it to stop, not to investigate.
        let (diagnostics, evidence) = if failure.is_empty() || cancelled {
            (String::new(), super::diagnose::Evidence::default())
        } else {
            let d = self.sandbox.diagnostics().await.unwrap_or_default();
            if !d.is_empty() {
                self.log_line(&format!("--- diagnostics\n{d}\n"));
            }
            let evidence = self
                .evidence(step, &since, &output.stdout, &output.stderr)
                .await?;
            (self.redactor.redact(&d), evidence)
        };
        let duration_ms = millis(started.elapsed());
        observer.event(&Event::StepFinished {
            step: step.id.clone(),
            passed: failure.is_empty(),
            duration_ms,
            failure: failure.clone(),
            rollback,
        });
        Ok(Attempt {
            command: step.run.clone(),
            output,
            duration_ms,
            checks: check_records,
            failure,
            failure_kind,
            diagnostics,
            causes: evidence.causes,
            files: evidence.files,
            diagnose: evidence.diagnose,
            amendment: None,
        })
    }
}

/// Whether `step` writes the config file at `path` before it runs: it lists it, or no
/// step does and it is the first step (see `write_files`).
pub(super) fn uses(runbook: &Runbook, step: &Step, path: &str) -> bool {
    step.files.iter().any(|f| f == path)
        || (runbook
            .steps
            .first()
            .is_some_and(|first| first.id == step.id)
            && !runbook
                .steps
                .iter()
                .any(|s| s.files.iter().any(|f| f == path)))
}
