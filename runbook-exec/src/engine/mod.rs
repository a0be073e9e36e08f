//! The deploy -> validate -> document engine.
//!
//! A [`Session`] owns one sandbox and walks a runbook through it step by step: it
//! writes the step's config files, runs the command exactly as written with the
//! variables in the environment, runs the checks with their retry policy, and records
//! every attempt. An agent drives it stepwise ([`Session::run_next`],
//! [`Session::amend`], [`Session::retry`]); [`run_all`] drives it to the end.

mod cancel;
mod capture;
mod checks;
mod diagnose;
mod finish;
mod log;
mod look;
mod options;
mod phase;
mod preflight;
mod rollback;
mod step;
mod values;

pub use self::cancel::Canceller;
pub use self::diagnose::cause_lines;
pub use self::finish::Outcome;
pub use self::look::{FileExcerpt, READ_LIMIT};
pub use self::options::{Amendment, RunMode, RunOptions};
pub use self::phase::Phase;
use self::values::resolve_values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runbook_core::report::{Report, StepRecord, Verdict};
use runbook_core::{Lifetime, Runbook, Severity, Step};

use self::log::SandboxLog;
use crate::events::Event;
use crate::redact::Redactor;
use crate::state;
use crate::time::now_rfc3339;
use crate::{CommandSpec, ExecError, Provider, ProvisionRequest, Result, Sandbox};

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
    /// What the last pre-flight found wrong: while it holds anything, no step runs.
    preflight_problems: Vec<String>,
    /// Cancels the step in flight from another task.
    canceller: Canceller,
    /// The attempt or rollback running now: still set at the next call when the call that
    /// ran it was dropped.
    in_flight: Option<phase::InFlight>,
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
        let request = ProvisionRequest::for_runbook(&runbook, lifetime);
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
        let mut session = Session::assemble(
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
        let own = sandbox.secret_values();
        let redactor = Redactor::new(
            secret_names
                .iter()
                .filter_map(|n| values.get(n))
                .chain(own.iter()),
        );
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
            preflight_problems: Vec::new(),
            canceller: Canceller::default(),
            in_flight: None,
        };
        session.report.verdict = session.verdict();
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

    /// What the last pre-flight found wrong (a missing tool, a failing pre-flight check),
    /// if it failed: then [`Session::run_next`] and [`Session::retry`] refuse to run a
    /// step, with [`ExecError::Preflight`], until a pre-flight passes.
    pub fn preflight_problems(&self) -> &[String] {
        &self.preflight_problems
    }

    /// The redactor for this session's secrets.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// A handle that cancels the step (or rollback) this session is running, from another
    /// task: its command is killed and the attempt recorded as cancelled. The session stays
    /// usable (`retry` runs the step again).
    ///
    /// ```no_run
    /// # async fn demo(mut session: runbook_exec::Session) -> runbook_exec::Result<()> {
    /// let cancel = session.canceller();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    ///     cancel.cancel();
    /// });
    /// let record = session.run_next().await?;
    /// # Ok(()) }
    /// ```
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Sends this session's events to `observer` from now on (a progress reporter for one
    /// call, say); returns the one it replaces.
    pub fn set_observer(
        &mut self,
        observer: std::sync::Arc<dyn crate::Observer>,
    ) -> std::sync::Arc<dyn crate::Observer> {
        std::mem::replace(&mut self.options.observer, observer)
    }

    /// The step that runs next, or `None` when every step passed.
    pub fn next_step(&self) -> Option<&Step> {
        self.runbook.steps.get(self.next)
    }

    /// Whether `step_id` has passed in this session (and is not rolled back).
    pub fn step_passed(&self, step_id: &str) -> bool {
        self.completed.iter().any(|c| c == step_id)
    }

    fn record(&self, id: &str) -> Option<&StepRecord> {
        self.report.steps.iter().find(|r| r.id == id)
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
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

/// Drives a started (or resumed) session through the whole cycle: pre-flight, every
/// remaining step, the rollbacks `mode` asks for, and the end its lifetime decides. This
/// is the one place the cycle is written; [`run_all`] and the CLI use it.
///
/// Neither a failing step nor a failed pre-flight is an error: the outcome says `Failed`,
/// holds the evidence, and names what the pre-flight found missing
/// ([`Outcome::preflight_problems`]).
pub async fn drive(mut session: Session, mode: RunMode) -> Result<Outcome> {
    let problems = match session.preflight().await {
        Ok(_) => Vec::new(),
        Err(ExecError::Preflight(problems)) => problems,
        Err(e) => return Err(e),
    };
    // A failed pre-flight runs no step: the session itself refuses them.
    if problems.is_empty() {
        let passed = session.run_remaining().await?;
        if (passed && mode.exercise_rollback) || (!passed && mode.rollback_on_failure) {
            session.rollback().await?;
        }
    }
    let mut outcome = session.finish().await?;
    outcome.preflight_problems = problems;
    Ok(outcome)
}

/// Lints, provisions, runs pre-flight and every step, optionally rolls back, and
/// finishes the session according to its lifetime ([`drive`] on a new session).
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
    let outcome = drive(Session::start(provider, runbook, options).await?, mode).await?;
    if outcome.preflight_problems.is_empty() {
        Ok(outcome)
    } else {
        Err(ExecError::Preflight(outcome.preflight_problems.clone()))
    }
}

/// Where the complete sandbox log of a control directory is.
pub fn log_path(control_dir: &Path) -> PathBuf {
    control_dir.join(log::FULL_LOG)
}
