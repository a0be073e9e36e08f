//! The deploy -> validate -> document engine.
//!
//! A [`Session`] owns one sandbox and walks a runbook through it step by step: it
//! writes the step's config files, runs the command exactly as written with the
//! variables in the environment, runs the checks with their retry policy, and records
//! every attempt. An agent drives it stepwise ([`Session::run_next`],
//! [`Session::amend`], [`Session::retry`]); [`run_all`] drives it to the end.

mod capture;
mod checks;
mod log;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook_core::report::{
    Attempt, CommandOutput, Report, RollbackExercise, StepRecord, StepStatus, ToolVersion, Verdict,
};
use runbook_core::template::fill_template;
use runbook_core::{Check, KnownIssue, Lifetime, Runbook, Severity, Step};

use self::capture::Capture;
use self::log::SandboxLog;
use crate::events::{Event, NoObserver, Observer};
use crate::redact::Redactor;
use crate::state;
pub use crate::state::SessionState;
use crate::time::now_rfc3339;
use crate::{CommandSpec, ExecError, Provider, ProvisionRequest, Result, Sandbox};

/// How a session runs.
#[derive(Clone)]
pub struct RunOptions {
    /// The sandbox lifetime. By default, [`runbook_core::recommend_lifetime`] picks it.
    pub lifetime: Option<Lifetime>,
    /// Values that override the runbook's sandbox values (`--var NAME=VALUE`).
    pub vars: BTreeMap<String, String>,
    /// Timeout of a step without its own (default 10 minutes).
    pub step_timeout: Duration,
    /// Timeout of one check attempt without a retry deadline (default 60 seconds).
    pub check_timeout: Duration,
    /// Bytes of each stream kept in memory per attempt (default 1 MiB); the rest is
    /// counted, and written in full to the sandbox log.
    pub output_cap: usize,
    /// Where events go (default: nowhere).
    pub observer: Arc<dyn Observer>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            lifetime: None,
            vars: BTreeMap::new(),
            step_timeout: runbook_core::DEFAULT_STEP_TIMEOUT,
            check_timeout: runbook_core::DEFAULT_CHECK_TIMEOUT,
            output_cap: 1024 * 1024,
            observer: Arc::new(NoObserver),
        }
    }
}

impl RunOptions {
    /// The defaults in force, as the report records them for the scripts.
    fn settings(&self) -> runbook_core::report::RunSettings {
        runbook_core::report::RunSettings {
            step_timeout_ms: millis(self.step_timeout),
            check_timeout_ms: millis(self.check_timeout),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("lifetime", &self.lifetime)
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("step_timeout", &self.step_timeout)
            .field("check_timeout", &self.check_timeout)
            .field("output_cap", &self.output_cap)
            .finish_non_exhaustive()
    }
}

/// A change to a failing step, made by the agent that is debugging it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Amendment {
    /// A new command.
    pub run: Option<String>,
    /// New checks (replacing the old ones).
    pub verify: Option<Vec<Check>>,
}

impl Amendment {
    /// Replaces the command.
    pub fn run(command: impl Into<String>) -> Self {
        Amendment {
            run: Some(command.into()),
            verify: None,
        }
    }

    /// Replaces the checks too.
    pub fn verify(mut self, checks: Vec<Check>) -> Self {
        self.verify = Some(checks);
        self
    }
}

/// What a finished session hands over: the amended runbook, the report, the log.
#[derive(Debug)]
pub struct Outcome {
    /// The runbook as amended during the session (known issues included).
    pub runbook: Runbook,
    /// The evidence.
    pub report: Report,
    /// The redacted sandbox log as it ships: each command's output keeps its first and
    /// last MiB, with the full size and SHA-256 of what was left out (the complete log
    /// stays in the sandbox's control directory, [`log_path`], while the sandbox exists).
    pub log: String,
    /// The session's secrets, for checking that nothing about to be shipped holds one.
    pub redactor: Redactor,
}

impl Outcome {
    /// The sandbox log as text.
    pub fn log(&self) -> &str {
        &self.log
    }

    /// Whether every step passed.
    pub fn passed(&self) -> bool {
        self.report.verdict == Verdict::Passed
    }
}

/// One runbook in one sandbox, driven step by step.
pub struct Session {
    sandbox: Box<dyn Sandbox>,
    runbook: Runbook,
    values: BTreeMap<String, String>,
    secret_names: Vec<String>,
    redactor: Redactor,
    options: RunOptions,
    lifetime: Lifetime,
    report: Report,
    completed: Vec<String>,
    next: usize,
    log: SandboxLog,
    started: Instant,
    provider: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sandbox", &self.sandbox.id())
            .field("runbook", &self.runbook.metadata.name)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Lints the runbook, provisions a sandbox and gets ready to run the first step.
    ///
    /// Fails on lint errors, or when a variable has no sandbox value.
    pub async fn start(
        provider: &dyn Provider,
        runbook: Runbook,
        options: RunOptions,
    ) -> Result<Session> {
        refuse_lint_errors(&runbook)?;
        let (values, secret_names) = resolve_values(&runbook, &options.vars, &BTreeMap::new())?;
        let lifetime = options
            .lifetime
            .unwrap_or_else(|| runbook_core::recommend_lifetime(&runbook).lifetime);
        let request = ProvisionRequest {
            runbook: runbook.metadata.name.clone(),
            lifetime,
        };
        // The provider hands the sandbox over locked: nothing can reap it from here on.
        let sandbox = provider.provision(&request).await?;
        let mut report = Report {
            runbook: runbook.metadata.name.clone(),
            verdict: Verdict::Incomplete,
            started_at: now_rfc3339(),
            ..Report::default()
        };
        report.settings = Some(options.settings());
        report.sandbox = sandbox.describe().await?;
        report.sandbox.lifetime = Some(lifetime);
        let session = Session::assemble(
            sandbox,
            runbook,
            values,
            secret_names,
            options,
            lifetime,
            report,
            Vec::new(),
            provider.name().to_owned(),
            false,
        )?;
        session.save()?;
        Ok(session)
    }

    /// Resumes a persistent sandbox in a new process, continuing from its saved state.
    ///
    /// With `runbook`, the session continues with that runbook (an upgrade runbook, say):
    /// steps already completed in the sandbox are skipped, values already used (generated
    /// secrets included) are kept.
    pub async fn resume(
        provider: &dyn Provider,
        id: &str,
        runbook: Option<Runbook>,
        options: RunOptions,
    ) -> Result<Session> {
        let sandbox = provider.resume(id).await?;
        let state = state::load(sandbox.control_dir())?.ok_or_else(|| {
            ExecError::Provider(format!(
                "sandbox `{id}` has no saved state; it cannot be resumed, only destroyed"
            ))
        })?;
        let runbook = runbook.unwrap_or(state.runbook);
        refuse_lint_errors(&runbook)?;
        let (values, secret_names) = resolve_values(&runbook, &options.vars, &state.values)?;
        let mut secret_names = secret_names;
        secret_names.extend(state.secrets.iter().cloned());
        secret_names.sort();
        secret_names.dedup();
        let mut report = state.report;
        report.settings = Some(options.settings());
        report.runbook = runbook.metadata.name.clone();
        report.verdict = Verdict::Incomplete;
        report.sandbox = sandbox.describe().await?;
        report.sandbox.lifetime = Some(state.lifetime);
        Session::assemble(
            sandbox,
            runbook,
            values,
            secret_names,
            options,
            state.lifetime,
            report,
            state.completed,
            provider.name().to_owned(),
            true,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        sandbox: Box<dyn Sandbox>,
        runbook: Runbook,
        values: BTreeMap<String, String>,
        secret_names: Vec<String>,
        options: RunOptions,
        lifetime: Lifetime,
        report: Report,
        completed: Vec<String>,
        provider: String,
        resumed: bool,
    ) -> Result<Session> {
        let mut values = values;
        for (name, value) in sandbox.fixed_values() {
            if runbook.variable(&name).is_some() {
                values.insert(name, value);
            }
        }
        let redactor = Redactor::new(secret_names.iter().filter_map(|n| values.get(n)));
        let log = SandboxLog::open(sandbox.control_dir(), sandbox.id())?;
        let next = runbook
            .steps
            .iter()
            .position(|s| !completed.contains(&s.id))
            .unwrap_or(runbook.steps.len());
        let mut session = Session {
            sandbox,
            runbook,
            values,
            secret_names,
            redactor,
            lifetime,
            report,
            completed,
            next,
            log,
            started: Instant::now(),
            provider,
            options,
        };
        let header = format!(
            "### sandbox {} ({}, {}) {} at {}\n",
            session.sandbox.id(),
            session.provider,
            lifetime,
            if resumed { "resumed" } else { "provisioned" },
            now_rfc3339()
        );
        session.log_line(&header);
        session.options.observer.event(&Event::SandboxReady {
            id: session.sandbox.id().to_owned(),
            provider: session.provider.clone(),
            lifetime: lifetime.to_string(),
            resumed,
        });
        Ok(session)
    }

    /// The sandbox id (give it to [`Session::resume`] later, for a persistent sandbox).
    pub fn id(&self) -> &str {
        self.sandbox.id()
    }

    /// The runbook, as amended so far.
    pub fn runbook(&self) -> &Runbook {
        &self.runbook
    }

    /// The report so far.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The sandbox's lifetime.
    pub fn lifetime(&self) -> Lifetime {
        self.lifetime
    }

    /// The values of the variables in this sandbox. Secret values are included: never
    /// print them.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The redactor for this session's secrets.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The step that runs next, or `None` when every step passed.
    pub fn next_step(&self) -> Option<&Step> {
        self.runbook.steps.get(self.next)
    }

    /// The record of the step that failed last and has not passed since, if any.
    pub fn failure(&self) -> Option<&StepRecord> {
        let step = self.next_step()?;
        self.record(&step.id)
            .filter(|r| r.status == StepStatus::Failed)
    }

    fn record(&self, id: &str) -> Option<&StepRecord> {
        self.report.steps.iter().find(|r| r.id == id)
    }

    /// Checks that every prerequisite is present in a satisfying version; the detected
    /// versions become the report's version metadata.
    pub async fn preflight(&mut self) -> Result<Vec<ToolVersion>> {
        let mut found = Vec::new();
        let mut problems = Vec::new();
        for p in self.runbook.prerequisites.clone() {
            let spec = self.spec(p.detect_command(), None, self.options.check_timeout);
            let mut sink = Capture::new(
                "preflight",
                64 * 1024,
                &self.redactor,
                &mut self.log,
                &NoObserver,
            );
            let exit = self.sandbox.run(&spec, &mut sink).await?;
            let out = sink.finish();
            let detected = if exit.code == Some(0) {
                p.parse_version(&format!("{}\n{}", out.stdout, out.stderr))
            } else {
                None
            };
            let satisfied = match (&detected, p.requirement()) {
                (Some(v), Ok(req)) => req.matches(v),
                _ => false,
            };
            if !satisfied {
                problems.push(match &detected {
                    None if exit.code == Some(127) => format!(
                        "- {} is not installed (`{}`: command not found)",
                        p.tool,
                        p.detect_command()
                    ),
                    None => format!(
                        "- {}: could not read its version from `{}`",
                        p.tool,
                        p.detect_command()
                    ),
                    Some(v) => format!("- {} {v} does not satisfy `{}`", p.tool, p.version),
                });
            }
            self.options.observer.event(&Event::Preflight {
                tool: p.tool.clone(),
                detected: detected.as_ref().map(ToString::to_string),
                satisfied,
            });
            let location = self.locate(&p.tool).await?;
            found.push(ToolVersion {
                tool: p.tool.clone(),
                required: p.version.clone(),
                detected: detected.map(|v| v.to_string()),
                satisfied,
                location,
            });
        }
        self.report.preflight = found.clone();
        self.log_line(&format!(
            "### pre-flight: {}\n",
            found
                .iter()
                .map(|t| format!("{} {}", t.tool, t.detected.as_deref().unwrap_or("missing")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if problems.is_empty() {
            Ok(found)
        } else {
            self.report.verdict = Verdict::Failed;
            Err(ExecError::Preflight(problems))
        }
    }

    /// Where the sandbox finds `tool` (`command -v`), so the package can say it.
    async fn locate(&mut self, tool: &str) -> Result<Option<String>> {
        let quoted = format!("'{}'", tool.replace('\'', r"'\''"));
        let spec = self.spec(
            format!("command -v -- {quoted}"),
            None,
            self.options.check_timeout,
        );
        let mut sink = Capture::new(
            "preflight",
            4096,
            &self.redactor,
            &mut self.log,
            &NoObserver,
        );
        let exit = self.sandbox.run(&spec, &mut sink).await?;
        let out = sink.finish();
        Ok((exit.code == Some(0))
            .then(|| out.stdout.trim().to_owned())
            .filter(|l| !l.is_empty()))
    }

    /// Runs the next step (or re-runs the step that failed). Returns its record, or
    /// `None` when every step has passed.
    pub async fn run_next(&mut self) -> Result<Option<&StepRecord>> {
        let Some(step) = self.runbook.steps.get(self.next).cloned() else {
            self.finish_verdict();
            return Ok(None);
        };
        let attempt_no = self.record(&step.id).map_or(0, |r| r.attempts.len()) as u32 + 1;
        let attempt = self.run_step(&step, attempt_no, false).await?;
        let passed = attempt.passed();
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
        let record = &mut self.report.steps[idx];
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
        Ok(Some(&self.report.steps[idx]))
    }

    /// Re-runs the failing step (after [`Session::amend`]).
    pub async fn retry(&mut self) -> Result<&StepRecord> {
        if self.failure().is_none() {
            return Err(ExecError::Usage("there is no failing step to retry".into()));
        }
        self.run_next()
            .await?
            .ok_or_else(|| ExecError::Usage("there is no step to retry".into()))
    }

    /// Changes a step that has not passed yet and records why: the error seen, its root
    /// cause and the fix. The known issue goes into the runbook, so the human learns it.
    pub fn amend(&mut self, step_id: &str, amendment: Amendment, issue: KnownIssue) -> Result<()> {
        if self.completed.iter().any(|c| c == step_id) {
            return Err(ExecError::Usage(format!(
                "step `{step_id}` already passed; amend a step that has not"
            )));
        }
        // Amend a copy and lint it first: a refused amendment changes nothing.
        let mut amended = self.runbook.clone();
        let step = amended
            .steps
            .iter_mut()
            .find(|s| s.id == step_id)
            .ok_or_else(|| ExecError::Usage(format!("no step `{step_id}` in the runbook")))?;
        if let Some(run) = amendment.run {
            step.run = run;
        }
        if let Some(verify) = amendment.verify {
            step.verify = verify;
        }
        // A known issue must not carry a secret into the package.
        step.known_issues.push(KnownIssue::new(
            self.redactor.redact(&issue.error),
            self.redactor.redact(&issue.cause),
            self.redactor.redact(&issue.fix),
        ));
        refuse_lint_errors(&amended)?;
        self.runbook = amended;
        let note = format!(
            "### step {step_id} amended: {}\n",
            self.redactor.redact(&issue.fix)
        );
        self.log_line(&note);
        self.save()
    }

    /// Runs every remaining step; stops at the first failure. Returns whether all passed.
    pub async fn run_remaining(&mut self) -> Result<bool> {
        while self.next < self.runbook.steps.len() {
            let passed = self
                .run_next()
                .await?
                .is_some_and(|r| r.status == StepStatus::Passed);
            if !passed {
                self.report.verdict = Verdict::Failed;
                return Ok(false);
            }
        }
        self.finish_verdict();
        Ok(true)
    }

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

    /// Ends the session: ephemeral and session sandboxes are destroyed, persistent ones
    /// kept (and resumable). Returns the amended runbook, the report and the log.
    pub async fn finish(mut self) -> Result<Outcome> {
        if self.report.verdict == Verdict::Incomplete && self.next >= self.runbook.steps.len() {
            self.finish_verdict();
        }
        if self.report.verdict == Verdict::Incomplete && self.failure().is_some() {
            self.report.verdict = Verdict::Failed;
        }
        self.report.duration_ms += millis(self.started.elapsed());
        self.save()?;
        let destroy = self.lifetime != Lifetime::Persistent;
        self.log_line(&format!(
            "### sandbox {} {}\n",
            self.sandbox.id(),
            if destroy {
                "destroyed"
            } else {
                "kept (persistent)"
            }
        ));
        // Read before teardown removes it: bounded, so it is held in memory, never copied
        // to a shared directory.
        let log = self.log.read_excerpt(self.sandbox.control_dir())?;
        if destroy {
            self.sandbox.teardown().await?;
        } else {
            self.sandbox.keep();
        }
        self.options.observer.event(&Event::Teardown {
            id: self.sandbox.id().to_owned(),
            destroyed: destroy,
        });
        // The package reports the values the sandbox used (after `--var`, the provider's
        // fixed values and values chosen at run time), never a secret's.
        let mut runbook = self.runbook;
        for v in &mut runbook.variables {
            if !self.secret_names.contains(&v.name)
                && let Some(used) = self.values.get(&v.name)
            {
                v.sandbox = Some(used.clone());
            }
        }
        Ok(Outcome {
            runbook,
            report: self.report,
            log,
            redactor: self.redactor,
        })
    }

    fn finish_verdict(&mut self) {
        let all = self
            .runbook
            .steps
            .iter()
            .all(|s| self.completed.contains(&s.id));
        self.report.verdict = if all {
            Verdict::Passed
        } else {
            Verdict::Failed
        };
    }

    fn save(&self) -> Result<()> {
        if self.lifetime != Lifetime::Persistent {
            return Ok(());
        }
        state::save(
            self.sandbox.control_dir(),
            &SessionState {
                format: 1,
                id: self.sandbox.id().to_owned(),
                provider: self.provider.clone(),
                lifetime: self.lifetime,
                runbook: self.runbook.clone(),
                values: self.values.clone(),
                secrets: self.secret_names.clone(),
                completed: self.completed.clone(),
                report: self.report.clone(),
            },
        )
    }

    fn log_line(&mut self, text: &str) {
        self.log.text(&self.redactor.redact(text));
    }

    fn spec(&self, command: String, workdir: Option<String>, timeout: Duration) -> CommandSpec {
        CommandSpec {
            command,
            env: self.values.clone(),
            workdir,
            timeout,
            errexit: false,
        }
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

    async fn run_step(&mut self, step: &Step, attempt_no: u32, rollback: bool) -> Result<Attempt> {
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
        let exit = self.sandbox.run(&spec, &mut sink).await?;
        let out = sink.finish();
        let output = CommandOutput {
            exit_code: exit.code,
            timed_out: exit.timed_out,
            stdout: out.stdout,
            stderr: out.stderr,
            stdout_dropped: out.stdout_dropped,
            stderr_dropped: out.stderr_dropped,
            duration_ms: millis(exit.duration),
        };
        let mut failure = String::new();
        if exit.timed_out {
            failure = format!(
                "the command timed out after {} (raise the step's `timeout:` if it needs longer)",
                runbook_core::HumanDuration(timeout)
            );
        } else if exit.code != Some(0) {
            failure = match exit.code {
                Some(c) => format!("the command exited with code {c}"),
                None => "the command was killed by a signal".into(),
            };
        }
        self.log_line(&format!(
            "--- {} in {:.2}s\n",
            match exit.code {
                Some(c) => format!("exit {c}"),
                None if exit.timed_out => "timed out".into(),
                None => "killed".into(),
            },
            exit.duration.as_secs_f64()
        ));
        let mut check_records = Vec::new();
        if failure.is_empty() {
            for check in &step.verify {
                let record = self.run_check(step, check).await?;
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
                }
                check_records.push(record);
                if !passed {
                    break;
                }
            }
        }
        let diagnostics = if failure.is_empty() {
            String::new()
        } else {
            let d = self.sandbox.diagnostics().await.unwrap_or_default();
            if !d.is_empty() {
                self.log_line(&format!("--- diagnostics\n{d}\n"));
            }
            self.redactor.redact(&d)
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
            diagnostics,
        })
    }
}

/// A runbook with lint errors must not run.
fn refuse_lint_errors(runbook: &Runbook) -> Result<()> {
    let errors: Vec<_> = runbook
        .lint()
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ExecError::Lint(errors))
    }
}

/// Resolves every variable's sandbox value: an override, a value kept from an earlier
/// session, the runbook's sandbox value, or a freshly generated secret.
fn resolve_values(
    runbook: &Runbook,
    overrides: &BTreeMap<String, String>,
    kept: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut values = BTreeMap::new();
    let mut secrets = Vec::new();
    for v in &runbook.variables {
        let value = if let Some(o) = overrides.get(&v.name) {
            o.clone()
        } else if let Some(k) = kept.get(&v.name) {
            k.clone()
        } else if let Some(s) = &v.sandbox {
            s.clone()
        } else if v.generate {
            generate_secret()?
        } else {
            return Err(ExecError::MissingValue(v.name.clone()));
        };
        if v.hides_value() {
            secrets.push(v.name.clone());
        }
        values.insert(v.name.clone(), value);
    }
    Ok((values, secrets))
}

/// 32 hex characters from the kernel's random source.
fn generate_secret() -> Result<String> {
    let mut bytes = [0u8; 16];
    let mut f = File::open("/dev/urandom").map_err(ExecError::io("open", "/dev/urandom"))?;
    std::io::Read::read_exact(&mut f, &mut bytes).map_err(ExecError::io("read", "/dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Lints, provisions, runs pre-flight and every step, optionally rolls back, and
/// finishes the session according to its lifetime.
///
/// A failing step is not an error: the returned [`Outcome`] says `Failed` and holds
/// the evidence. Errors are failures of the machinery (lint errors, a provider that
/// cannot provision, a failed pre-flight).
pub async fn run_all(
    provider: &dyn Provider,
    runbook: Runbook,
    options: RunOptions,
    mode: RunMode,
) -> Result<Outcome> {
    let mut session = Session::start(provider, runbook, options).await?;
    if let Err(e) = session.preflight().await {
        // The evidence of what was missing still comes out, in the error.
        let _ = session.finish().await;
        return Err(e);
    }
    let passed = session.run_remaining().await?;
    if (passed && mode.exercise_rollback) || (!passed && mode.rollback_on_failure) {
        session.rollback().await?;
    }
    session.finish().await
}

/// What [`run_all`] does besides running the steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunMode {
    /// After a successful run, run every rollback in reverse order and verify it.
    pub exercise_rollback: bool,
    /// After a failed run, roll back the completed steps in reverse order.
    pub rollback_on_failure: bool,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where the complete sandbox log of a control directory is.
pub fn log_path(control_dir: &Path) -> PathBuf {
    control_dir.join(log::FULL_LOG)
}
