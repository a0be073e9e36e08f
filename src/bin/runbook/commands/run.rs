//! `runbook run` and `runbook resume`: drive a session to its end, then write the
//! package (and rehearse it, for a new run) through `runbook::ops::finish`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use runbook::exec::{Observer, Provider, RunOptions, Session};
use runbook::{Lifetime, Runbook};

use crate::cli::{EventsFormat, Resume, Run, RunArgs};
use crate::report::{print_failure, print_rehearsal};
use crate::shared::{Failure, load_clean, load_lessons, provider};
use crate::{Signals, progress, signal_name};

/// `runbook run FILE`: the runbook in a new sandbox, then its package, rehearsed.
pub async fn run(args: Run) -> Result<ExitCode, Failure> {
    if args.matrix {
        return crate::commands::matrix::run(args).await;
    }
    let Run {
        file,
        lifetime,
        run,
        keep,
        ..
    } = args;
    let mut runbook = load_clean(&file)?;
    let vars = run.values.values()?;
    for carried in runbook::ops::prepare(&mut runbook, &vars, &load_lessons(run.lessons.clone())?)?
    {
        eprintln!("{carried}");
    }
    runbook::render::check_target(&run.out, run.force)?;
    let lifetime = match (lifetime.map(Lifetime::from), keep) {
        (Some(l), true) if l != Lifetime::Persistent => {
            return Err(Failure(format!(
                "--keep keeps the sandbox, which a {l} lifetime cannot: drop one of them"
            )));
        }
        (_, true) => Some(Lifetime::Persistent),
        (l, false) => l,
    };
    let provider = provider(&run.sandbox, run.isolate_network).await?;
    run_session(provider.as_ref(), Start::New(runbook, lifetime), &run, vars).await
}

/// `runbook resume ID [FILE | --amend FIXED]`: a kept sandbox continued, then its package.
pub async fn resume(args: Resume) -> Result<ExitCode, Failure> {
    let Resume {
        id,
        file,
        amend,
        run,
    } = args;
    let amending = amend.is_some();
    let mut runbook = file.or(amend).as_deref().map(load_clean).transpose()?;
    let vars = run.values.values()?;
    if let Some(rb) = runbook.as_mut() {
        let lessons = load_lessons(run.lessons.clone())?;
        for carried in runbook::ops::prepare(rb, &vars, &lessons)? {
            eprintln!("{carried}");
        }
    }
    runbook::render::check_target(&run.out, run.force)?;
    let provider = provider(&run.sandbox, run.isolate_network).await?;
    let start = match (amending, runbook) {
        (true, Some(rb)) => Start::Amend(id, rb),
        (_, runbook) => Start::Resume(id, runbook),
    };
    run_session(provider.as_ref(), start, &run, vars).await
}

/// How the session begins: a new sandbox, or a kept one continued.
enum Start {
    New(Runbook, Option<Lifetime>),
    Resume(String, Option<Runbook>),
    /// Continue a kept sandbox with the runbook as fixed after a failure.
    Amend(String, Runbook),
}

/// The session from `start` to its end, then the package written (and rehearsed); a
/// signal at any point ends it with the sandbox torn down or kept, as its lifetime says.
async fn run_session(
    provider: &dyn Provider,
    start: Start,
    args: &RunArgs,
    vars: BTreeMap<String, String>,
) -> Result<ExitCode, Failure> {
    let mut signals = Signals::listen()?;
    let sandbox_id = Arc::new(Mutex::new(None));
    let observer: Arc<dyn Observer> = match args.events {
        Some(EventsFormat::Ndjson) => Arc::new(progress::Ndjson {
            sandbox: sandbox_id.clone(),
        }),
        None if std::io::stderr().is_terminal() => {
            let t = progress::Terminal::new(sandbox_id.clone());
            t.spawn_ticker();
            Arc::new(t)
        }
        None => Arc::new(progress::Quiet {
            sandbox: sandbox_id.clone(),
        }),
    };
    // An upgrade continues the state an earlier package left: it cannot be rehearsed from
    // scratch, so `resume` does not rehearse.
    let rehearse = !args.no_rehearsal && matches!(start, Start::New(..));
    let lifetime_hint = match &start {
        Start::New(rb, l) => l.unwrap_or_else(|| runbook::recommend_lifetime(rb).lifetime),
        Start::Resume(..) | Start::Amend(..) => Lifetime::Persistent,
    };
    let given = vars.clone();
    let options = RunOptions {
        lifetime: match &start {
            Start::New(_, l) => *l,
            Start::Resume(..) | Start::Amend(..) => None,
        },
        vars,
        observer,
        ..RunOptions::default()
    };
    let mode = runbook::exec::RunMode {
        exercise_rollback: args.exercise_rollback,
        ..runbook::exec::RunMode::default()
    };
    let work = async {
        let session = match start {
            Start::New(rb, _) => Session::start(provider, rb, options).await?,
            Start::Resume(id, rb) => Session::resume(provider, &id, rb, options).await?,
            Start::Amend(id, fixed) => {
                let mut session = Session::resume(provider, &id, None, options).await?;
                match session.amend_runbook(fixed).await? {
                    Some(step) => eprintln!("amended: the run goes back to step `{step}` and on"),
                    None => eprintln!("the fixed runbook changes no step: the run goes on"),
                }
                session
            }
        };
        // After the start: a resumed sandbox's runbook is known only now.
        runbook::ops::check_vars(session.runbook(), &given)
            .map_err(|e| runbook::exec::ExecError::Usage(e.to_string()))?;
        args.values.warn_exposed(session.runbook());
        runbook::exec::drive(session, mode).await
    };
    // The work is dropped when a signal wins, before anything is printed: dropping the
    // session kills the command in flight and tears down (or keeps) the sandbox.
    let finished = tokio::select! {
        r = work => Ok(r),
        n = signals.next() => Err(n),
    };
    let outcome = match finished {
        Ok(r) => r?,
        Err(n) => {
            let id = sandbox_id
                .lock()
                .ok()
                .and_then(|s| s.clone())
                .unwrap_or_else(|| "(not yet created)".into());
            let name = signal_name(n);
            if lifetime_hint == Lifetime::Persistent {
                eprintln!(
                    "\n{name}: sandbox {id} is kept; continue with `runbook resume {id}` or remove it with `runbook sandbox destroy {id}`"
                );
            } else {
                eprintln!("\n{name}: sandbox {id} was torn down, with everything it ran");
            }
            return Ok(ExitCode::from(128 + n));
        }
    };
    if !outcome.preflight_problems.is_empty() {
        eprintln!(
            "pre-flight failed:\n{}",
            outcome.preflight_problems.join("\n")
        );
    } else if !outcome.passed() {
        print_failure(&outcome.report);
    }
    if outcome
        .report
        .rollback
        .as_ref()
        .is_some_and(|r| r.verdict != runbook::report::Verdict::Passed)
    {
        eprintln!("the rollback exercise FAILED: see test-results/test-summary.yaml");
    }
    if outcome
        .report
        .restores
        .iter()
        .any(|r| r.verdict != runbook::report::Verdict::Passed)
    {
        eprintln!(
            "a rollback that restored the sandbox FAILED: see `restores` in test-results/test-summary.yaml"
        );
    }
    let kept = (outcome.report.sandbox.lifetime == Some(Lifetime::Persistent))
        .then(|| outcome.report.sandbox.id.clone());
    // Where a kept sandbox is, to look around in it.
    let location = match &kept {
        Some(id) => provider
            .list()
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|s| &s.id == id))
            .and_then(|s| s.location),
        None => None,
    };
    let out = &args.out;
    let request = runbook::ops::FinishRequest {
        out,
        force: args.force,
        rehearse,
    };
    let mut on = |stage: runbook::ops::FinishStage<'_>| match stage {
        runbook::ops::FinishStage::Written(outcome) => {
            let verdict = outcome.report.verdict.as_str();
            eprintln!("handoff package ({verdict}): {}", out.display());
            if let Some(id) = &kept {
                eprintln!(
                    "sandbox {id} is kept{}: `runbook resume {id} [FILE]` continues it, `runbook sandbox destroy {id}` removes it",
                    location
                        .as_deref()
                        .map(|l| format!(" ({l})"))
                        .unwrap_or_default()
                );
            }
        }
        runbook::ops::FinishStage::Rehearsing => eprintln!(
            "rehearsing the package: its own scripts, in a fresh sandbox, with other values"
        ),
        runbook::ops::FinishStage::Rehearsed(rehearsal) => print_rehearsal(rehearsal),
        _ => {}
    };
    let finishing = runbook::ops::finish(provider, outcome, request, &mut on);
    // The rehearsal sandbox dies with the rehearsal when a signal wins.
    let handoff = tokio::select! {
        r = finishing => r?,
        n = signals.next() => {
            eprintln!("\n{}: the rehearsal sandbox was torn down; {} holds the sandbox run's package, not rehearsed", signal_name(n), out.display());
            return Ok(ExitCode::from(128 + n));
        }
    };
    if let Some(rehearsal) = &handoff.outcome.report.rehearsal {
        eprintln!(
            "handoff package ({}): {}",
            if rehearsal.verdict == runbook::report::Verdict::Passed {
                "passed, rehearsed"
            } else {
                "rehearsal FAILED"
            },
            out.display()
        );
    }
    Ok(if handoff.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
