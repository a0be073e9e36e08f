//! The tools' work: each call translates its arguments, asks the engine or the operations
//! layer ([`crate::ops`]), and translates the answer. A call on a session runs under that
//! session's lock; its client can cancel it (the step's command is killed) and follow it
//! (progress notifications).

use std::future::Future;

use rmcp::model::ProgressToken;
use rmcp::{Peer, RoleServer};
use runbook_core::KnownIssue;
use serde_json::Value;

use super::error::{ToolError, ToolResult, parse, to_value};
use super::progress::Progress;
use super::results::{
    Destroyed, Executed, Finished, RolledBack, SandboxList, SchemaDoc, SessionView, StepRun,
};
use super::sessions::Entry;
use super::tools::{
    AmendArgs, Document, ExecArgs, FinishArgs, NoArgs, ReadFileArgs, ResumeArgs, SandboxArgs,
    SchemaArgs, SessionArgs, StartArgs,
};
use super::{McpServer, load, status, validate};
use crate::exec::{Amendment, ExecError, RunOptions, Session};

/// What a call knows of its request: whether its client cancelled it, and where its
/// progress goes.
pub(super) struct Call {
    /// Cancelled when the client sends `notifications/cancelled` for the request.
    pub(super) cancelled: tokio_util::sync::CancellationToken,
    /// The client, and the token its progress notifications carry, if it asked for them.
    pub(super) progress: Option<(Peer<RoleServer>, ProgressToken)>,
}

impl McpServer {
    pub(super) async fn dispatch(&self, name: &str, args: Value, call: &Call) -> ToolResult {
        match name {
            "validate" => validate(parse(args)?, &self.inner.root),
            "schema" => {
                let a: SchemaArgs = parse(args)?;
                let text = match a.document {
                    Document::Runbook => runbook_core::json_schema(),
                    Document::Feedback => runbook_core::feedback_json_schema(),
                    Document::Lesson => runbook_core::lesson_json_schema(),
                };
                let schema: Value = serde_json::from_str(&text)
                    .map_err(|e| ToolError::new("internal", e.to_string()))?;
                to_value(&SchemaDoc { schema })
            }
            "session_start" => self.start(parse(args)?).await,
            "run_next" => self.step(parse(args)?, false, call).await,
            "retry" => self.step(parse(args)?, true, call).await,
            "amend" => self.amend(parse(args)?, call).await,
            "rollback" => {
                let a: SessionArgs = parse(args)?;
                let entry = self.inner.sessions.get(&a.session)?;
                self.with_session(&entry, "rollback", None, call, async |s| {
                    let exercise = s.rollback().await?.clone();
                    to_value(&RolledBack { rollback: exercise })
                })
                .await
            }
            "session_status" => {
                let a: SessionArgs = parse(args)?;
                self.status_of(&a.session).await
            }
            "finish" => self.finish(parse(args)?, call).await,
            "session_resume" => self.resume(parse(args)?).await,
            "sandbox_list" => {
                let _: NoArgs = parse(args)?;
                let sandboxes = self.inner.provider.list().await?;
                to_value(&SandboxList { sandboxes })
            }
            "sandbox_destroy" => self.destroy(parse(args)?).await,
            "exec" => {
                let a: ExecArgs = parse(args)?;
                let entry = self.inner.sessions.get(&a.session)?;
                let timeout = std::time::Duration::from_secs(a.timeout_seconds.clamp(1, 3600));
                self.with_session(&entry, "exec", None, call, async |s| {
                    // A cancel drops the command, which kills it.
                    let output = tokio::select! {
                        output = s.exec(&a.command, timeout) => output?,
                        () = call.cancelled.cancelled() => {
                            return Err(ToolError::new("cancelled", "cancelled: the command was killed"));
                        }
                    };
                    to_value(&Executed { output })
                })
                .await
            }
            "read_file" => {
                let a: ReadFileArgs = parse(args)?;
                let entry = self.inner.sessions.get(&a.session)?;
                self.with_session(&entry, "read_file", None, call, async |s| {
                    let excerpt = s.read_file(&a.path).await.map_err(|e| match e {
                        e @ ExecError::BadPath { .. } => ToolError::argument("path", e.to_string()),
                        e => e.into(),
                    })?;
                    to_value(&excerpt)
                })
                .await
            }
            // Refused before dispatch, as a protocol error (`-32602`).
            other => Err(ToolError::new("unknown_tool", format!("no tool `{other}`"))),
        }
    }

    /// Runs `work` on the session of `entry` under its lock, marked as running `tool`
    /// (on `step`), with the call's cancellation and progress; then masks the session's
    /// secrets in what it returns and remembers the session's view for `session_status`.
    async fn with_session(
        &self,
        entry: &Entry,
        tool: &str,
        step: Option<String>,
        call: &Call,
        work: impl AsyncFnOnce(&mut Session) -> ToolResult,
    ) -> ToolResult {
        let mut guard = entry.session.lock().await;
        let session = guard
            .as_mut()
            .ok_or_else(|| ToolError::argument("session", "the session is finished"))?;
        let _running = entry.running(tool, step);
        let progress = call
            .progress
            .clone()
            .map(|(peer, token)| Progress::start(peer, token));
        let previous = progress
            .as_ref()
            .map(|p| session.set_observer(p.observer()));
        let result = attend(work(session), entry, call).await;
        if let Some(previous) = previous {
            session.set_observer(previous);
        }
        let mut value = result?;
        let id = session.id().to_owned();
        super::mask(&mut value, session.redactor(), &id);
        let mut view = to_value(&status(session))?;
        super::mask(&mut view, session.redactor(), &id);
        entry.set_view(view);
        Ok(value)
    }

    /// `run_next` and `retry`. A record an earlier call could not deliver (its client
    /// cancelled it, or gave up waiting and called again) is returned first, marked
    /// `late`, and no step runs.
    async fn step(&self, a: SessionArgs, retry: bool, call: &Call) -> ToolResult {
        let entry = self.inner.sessions.get(&a.session)?;
        let since = entry.ended();
        let tool = if retry { "retry" } else { "run_next" };
        self.with_session(&entry, tool, None, call, async |s| {
            if let Some(record) = entry.take_late(since) {
                return to_value(&StepRun {
                    done: false,
                    step: Some(record),
                    next_step: s.next_step().map(|n| n.id.clone()),
                    late: true,
                });
            }
            let record = if retry {
                Some(s.retry().await.map_err(|e| super::refusal(s, e))?)
            } else {
                s.run_next().await.map_err(|e| super::refusal(s, e))?
            };
            if let Some(record) = &record {
                // A cancelled request gets no response: the record waits for the next call.
                entry.ended_with(record, !call.cancelled.is_cancelled());
            }
            to_value(&StepRun {
                done: record.is_none(),
                step: record,
                next_step: s.next_step().map(|n| n.id.clone()),
                late: false,
            })
        })
        .await
    }

    async fn amend(&self, a: AmendArgs, call: &Call) -> ToolResult {
        if a.run.is_none() && a.verify.is_none() && a.configs.is_empty() {
            return Err(ToolError::argument(
                "run",
                "give the step's new command (`run`), its new checks (`verify`) and/or new config file content (`configs`)",
            ));
        }
        let amendment = Amendment {
            run: a.run,
            verify: a.verify,
            configs: a.configs,
            ..Amendment::default()
        };
        let issue = KnownIssue::new(a.error, a.cause, a.fix);
        let step = a.step;
        let entry = self.inner.sessions.get(&a.session)?;
        self.with_session(&entry, "amend", Some(step.clone()), call, async |s| {
            // A passed step that is amended or uses a changed config file: its rollback and
            // those of the steps after it run first (recorded in the report's `restores`).
            s.amend_and_rewind(&step, amendment, issue)
                .await
                .map_err(|e| match e {
                    e @ ExecError::RewindFailed(_) => ToolError::new("rewind_failed", e.chain()),
                    e => e.into(),
                })?;
            to_value(&status(s))
        })
        .await
    }

    /// Where a session is, at once: while a call runs, the view the last call left, with
    /// what runs now.
    async fn status_of(&self, id: &str) -> ToolResult {
        let entry = self.inner.sessions.get(id)?;
        let mut value = match entry.session.try_lock() {
            Ok(guard) => {
                let session = guard
                    .as_ref()
                    .ok_or_else(|| ToolError::argument("session", "the session is finished"))?;
                let mut value = to_value(&status(session))?;
                super::mask(&mut value, session.redactor(), id);
                value
            }
            Err(_) => {
                let mut value = entry.view();
                if let Some(running) = entry.now_running() {
                    value["running"] = to_value(&running)?;
                }
                value
            }
        };
        // Already masked when it was recorded.
        if let Some(late) = entry.undelivered() {
            value["lateStep"] = to_value(&late)?;
        }
        Ok(value)
    }

    async fn start(&self, a: StartArgs) -> ToolResult {
        let mut runbook = load(&a.source, &self.inner.root)?;
        let lessons = match &a.lessons {
            Some(dir) => self.inner.root.lessons("lessons", dir)?,
            None => Vec::new(),
        };
        let carried = crate::ops::prepare(&mut runbook, &a.vars, &lessons).map_err(ops_error)?;
        let options = RunOptions {
            lifetime: a.lifetime,
            vars: a.vars,
            ..RunOptions::default()
        };
        let session = Session::start(self.inner.provider.as_ref(), runbook, options).await?;
        self.opened(
            session,
            Some(carried.iter().map(ToString::to_string).collect()),
        )
        .await
    }

    /// As `runbook resume` does: a given runbook is prepared like a new one (variables
    /// checked, lessons carried); without one, the variables are checked against the
    /// runbook the sandbox holds.
    async fn resume(&self, a: ResumeArgs) -> ToolResult {
        let lessons = match &a.lessons {
            Some(dir) => self.inner.root.lessons("lessons", dir)?,
            None => Vec::new(),
        };
        let mut carried = None;
        let runbook = if a.source.runbook.is_some() || a.source.path.is_some() {
            let mut runbook = load(&a.source, &self.inner.root)?;
            let lessons =
                crate::ops::prepare(&mut runbook, &a.vars, &lessons).map_err(ops_error)?;
            carried = Some(lessons.iter().map(ToString::to_string).collect());
            Some(runbook)
        } else {
            None
        };
        let given = runbook.is_some();
        let options = RunOptions {
            vars: a.vars.clone(),
            ..RunOptions::default()
        };
        let session =
            Session::resume(self.inner.provider.as_ref(), &a.sandbox, runbook, options).await?;
        if !given {
            // Dropping the session keeps its persistent sandbox.
            crate::ops::check_vars(session.runbook(), &a.vars).map_err(ops_error)?;
        }
        self.opened(session, carried).await
    }

    /// A new session: its pre-flight, then it is kept under its id.
    async fn opened(&self, mut session: Session, lessons: Option<Vec<String>>) -> ToolResult {
        let (tools, problems) = match session.preflight().await {
            Ok(tools) => (tools, Vec::new()),
            Err(ExecError::Preflight(problems)) => (session.report().preflight.clone(), problems),
            Err(e) => return Err(e.into()),
        };
        let mut view: SessionView = status(&session);
        view.preflight = Some(tools);
        view.preflight_problems = Some(problems);
        view.lessons = lessons;
        let mut value = to_value(&view)?;
        let id = session.id().to_owned();
        super::mask(&mut value, session.redactor(), &id);
        let mut plain = to_value(&status(&session))?;
        super::mask(&mut plain, session.redactor(), &id);
        self.inner.sessions.keep(session, plain);
        Ok(value)
    }

    async fn finish(&self, a: FinishArgs, call: &Call) -> ToolResult {
        // Resolved inside the root before anything else, and written through the parent
        // directory opened there.
        let target = self.inner.root.write_target("out", &a.out)?;
        let out = &target.path;
        crate::render::check_target(out, a.force)
            .map_err(|e| ToolError::argument("out", target.message(&e)))?;
        let entry = self.inner.sessions.get(&a.session)?;
        let session = entry.session.lock().await.take().ok_or_else(|| {
            ToolError::argument("session", format!("session `{}` is finished", a.session))
        })?;
        self.inner.sessions.remove(&a.session);
        let redactor = session.redactor().clone();
        let outcome = session.finish().await?;
        let request = crate::ops::FinishRequest {
            out,
            force: a.force,
            rehearse: a.rehearse,
        };
        let mut quiet = |_: crate::ops::FinishStage<'_>| {};
        let finishing =
            crate::ops::finish(self.inner.provider.as_ref(), outcome, request, &mut quiet);
        // A cancel stops the rehearsal (dropping it kills its commands and tears its
        // sandbox down); the package was written before it began.
        let handoff = tokio::select! {
            handoff = finishing => handoff,
            () = call.cancelled.cancelled() => {
                return Err(ToolError::new(
                    "cancelled",
                    "cancelled: the package was written, its rehearsal stopped",
                ));
            }
        };
        let handoff = handoff.map_err(|e| match e {
            crate::ops::OpsError::Render(e) => ToolError::new("render_failed", target.message(&e)),
            crate::ops::OpsError::Exec(e) => e.into(),
            other => ToolError::new("execution_failed", other.to_string()),
        })?;
        let outcome = handoff.outcome;
        let mut value = to_value(&Finished {
            verdict: outcome.report.verdict.as_str().to_owned(),
            rehearsal: outcome
                .report
                .rehearsal
                .as_ref()
                .map(|r| r.verdict.as_str().to_owned()),
            package: a.out.clone(),
            files: handoff.files,
        })?;
        super::mask(&mut value, &redactor, &a.session);
        Ok(value)
    }

    async fn destroy(&self, a: SandboxArgs) -> ToolResult {
        // A session of this server on it ends first (its lock is released).
        let held = self.inner.sessions.remove(&a.sandbox);
        let was_session = held.is_some();
        if let Some(entry) = held {
            entry.canceller.cancel();
            drop(entry.session.lock().await.take());
        }
        match self.inner.provider.destroy(&a.sandbox).await {
            Ok(()) => {}
            // An ephemeral or session sandbox went with its session.
            Err(ExecError::NotFound(_)) if was_session => {}
            Err(e) => return Err(e.into()),
        }
        to_value(&Destroyed {
            destroyed: a.sandbox,
        })
    }
}

/// An operations-layer refusal as the tool error it is.
fn ops_error(e: crate::ops::OpsError) -> ToolError {
    match e {
        crate::ops::OpsError::UndeclaredVariable(m) => {
            ToolError::at("undeclared_variable", "vars", m)
        }
        crate::ops::OpsError::Exec(e) => e.into(),
        other => ToolError::new("execution_failed", other.to_string()),
    }
}

/// Awaits `work`; when the client cancels the request, cancels the session's step (its
/// command is killed, the step recorded as cancelled) and awaits the rest of the work.
async fn attend<T>(work: impl Future<Output = T>, entry: &Entry, call: &Call) -> T {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        out = &mut work => out,
        () = call.cancelled.cancelled() => {
            entry.canceller.cancel();
            work.await
        }
    }
}
