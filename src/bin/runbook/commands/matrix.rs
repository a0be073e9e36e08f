//! `runbook run --matrix`: every target of the runbook, each in its own sandbox, through
//! `runbook::matrix`, with a line per target as it goes and the table at the end.

use std::process::ExitCode;
use std::sync::Arc;

use runbook::exec::{Event, Observer, Provider};
use runbook::matrix::{MatrixRequest, TargetRun};
use runbook::{Expectation, MatrixTarget};

use crate::cli::{EventsFormat, ProviderArg, Run};
use crate::shared::{Failure, load_clean, load_lessons, provider};
use crate::{Signals, signal_name};

/// Says what each target does, prefixed with its name (or as NDJSON with a `target` field).
struct Prefixed {
    target: String,
    ndjson: bool,
}

impl Observer for Prefixed {
    fn event(&self, event: &Event) {
        if self.ndjson {
            if let Ok(serde_json::Value::Object(mut map)) = serde_json::to_value(event) {
                map.insert("target".into(), self.target.clone().into());
                println!("{}", serde_json::Value::Object(map));
            }
            return;
        }
        let line = match event {
            Event::SandboxReady { id, .. } => format!("sandbox {id} ready"),
            Event::StepFinished {
                step,
                passed: true,
                rollback: false,
                ..
            } => format!("step `{step}` passed"),
            Event::StepFinished {
                step,
                passed: false,
                failure,
                rollback: false,
                ..
            } => format!("step `{step}` FAILED: {failure}"),
            Event::Teardown { id, .. } => format!("sandbox {id} done"),
            _ => return,
        };
        eprintln!("[{}] {line}", self.target);
    }
}

/// `runbook run FILE --matrix`.
pub async fn run(args: Run) -> Result<ExitCode, Failure> {
    let Run {
        file,
        run,
        jobs,
        targets: only,
        ..
    } = args;
    let mut runbook = load_clean(&file)?;
    let vars = run.values.values()?;
    for carried in runbook::ops::prepare(&mut runbook, &vars, &load_lessons(run.lessons.clone())?)?
    {
        eprintln!("{carried}");
    }
    let mut targets: Vec<MatrixTarget> = runbook.targets.clone();
    for name in &only {
        if !targets.iter().any(|t| &t.name == name) {
            return Err(Failure(format!(
                "the runbook has no target `{name}`; it has: {}",
                targets
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if !only.is_empty() {
        targets.retain(|t| only.contains(&t.name));
    }
    runbook::matrix::check(&runbook, &targets)?;
    let which = run.sandbox.provider;
    if which == ProviderArg::Container && run.sandbox.container.image.is_some() {
        return Err(Failure(
            "--image sets one image for every sandbox; a matrix takes each target's `image:`: drop --image"
                .into(),
        ));
    }
    let base = provider(&run.sandbox, run.isolate_network).await?;
    let base: Arc<dyn Provider> = Arc::from(base);
    let mut runs = Vec::new();
    for target in targets {
        let provider =
            target_provider(&run.sandbox, which, &base, &target, run.isolate_network).await?;
        runs.push(TargetRun {
            observer: Arc::new(Prefixed {
                target: target.name.clone(),
                ndjson: matches!(run.events, Some(EventsFormat::Ndjson)),
            }),
            target,
            provider,
        });
    }
    let request = MatrixRequest {
        out: run.out.clone(),
        force: run.force,
        rehearse: !run.no_rehearsal,
        jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        vars,
        exercise_rollback: run.exercise_rollback,
    };
    eprintln!(
        "matrix: {} target(s), {} at a time",
        runs.len(),
        request.jobs
    );
    let mut signals = Signals::listen()?;
    // A signal drops every target's run: each sandbox is torn down with it.
    let outcome = tokio::select! {
        r = runbook::matrix::run(&runbook, runs, &request) => r?,
        n = signals.next() => {
            eprintln!("\n{}: every target's sandbox was torn down", signal_name(n));
            return Ok(ExitCode::from(128 + n));
        }
    };
    for t in &outcome.targets {
        let expected = match t.expect {
            Expectation::Pass => "expected to pass",
            Expectation::Fail => "expected to fail",
        };
        eprintln!(
            "{} {}: {} ({expected}){}",
            if t.as_expected { "ok  " } else { "FAIL" },
            t.name,
            t.verdict.as_str(),
            t.cause
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default()
        );
    }
    eprintln!(
        "compatibility table: {}",
        run.out.join(runbook::matrix::TABLE_MD).display()
    );
    Ok(if outcome.green {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The provider of one target: the container provider at its image, the kube provider at
/// its context, the local provider as it is (only the values differ).
async fn target_provider(
    args: &crate::cli::SandboxArgs,
    which: ProviderArg,
    base: &Arc<dyn Provider>,
    target: &MatrixTarget,
    isolate_network: bool,
) -> Result<Arc<dyn Provider>, Failure> {
    match which {
        ProviderArg::Container => {
            #[cfg(feature = "container")]
            if let Some(image) = &target.image {
                let mut container = args.container.clone();
                container.image = Some(image.clone());
                return Ok(Arc::from(
                    provider_with(args, container, isolate_network).await?,
                ));
            }
            Ok(base.clone())
        }
        ProviderArg::Kube => match &target.context {
            Some(context) => Ok(Arc::from(
                crate::shared::kube_provider_at(args, Some(context)).await?,
            )),
            None => Ok(base.clone()),
        },
        ProviderArg::Local => {
            if target.image.is_some() || target.context.is_some() {
                eprintln!(
                    "warning: target `{}` names an image or a context, which the local provider ignores (--provider container or kube uses them)",
                    target.name
                );
            }
            Ok(base.clone())
        }
    }
}

#[cfg(feature = "container")]
async fn provider_with(
    args: &crate::cli::SandboxArgs,
    container: crate::cli::ContainerArgs,
    isolate_network: bool,
) -> Result<Box<dyn Provider>, Failure> {
    let mut args = args.clone();
    args.container = container;
    provider(&args, isolate_network).await
}
