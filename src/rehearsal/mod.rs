//! The rehearsal: the package proves itself before it is handed over.
//!
//! After the sandbox run, the package's own scripts run in a second, fresh sandbox of the
//! same provider, as the human will run them, with values other than the sandbox's:
//! `deploy.sh`, `verify.sh` twice (checks must be repeatable and change nothing),
//! `deploy.sh` again (it must pass or refuse cleanly, as its journal says),
//! `rollback.sh --yes`, then `verify.sh --once` must fail, and nothing the scripts
//! started or wrote may be left. The rehearsal sandbox is destroyed whatever happened.
//!
//! Here, the phases and their order; in `values`, how the rehearsal's values are chosen;
//! in `run`, how a script runs in the rehearsal sandbox and what is looked for after the
//! rollback; in `failure`, how a failed phase is described (from the script's outcome
//! file).

mod failure;
mod run;
mod values;

use std::collections::BTreeMap;
use std::time::Duration;

use runbook_core::Runbook;
use runbook_core::report::{Rehearsal, Verdict};
use runbook_exec::{ExecError, Provider, ProvisionRequest, Redactor, Sandbox};
use runbook_render::Package;

use failure::{cause, describe_failure, outcome};
use run::{leftovers, run_script};
use values::rehearsal_values;

/// How a rehearsal runs.
#[derive(Debug, Clone)]
pub struct RehearsalOptions {
    /// Values to use instead of the derived ones (`--var` of `runbook rehearse`).
    pub vars: BTreeMap<String, String>,
    /// The longest one script may run (default 30 minutes).
    pub script_timeout: Duration,
}

impl Default for RehearsalOptions {
    fn default() -> Self {
        RehearsalOptions {
            vars: BTreeMap::new(),
            script_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// A phase: its name, the script command, what it must do (in words, and as a test of
/// the exit code).
type Phase = (
    &'static str,
    &'static str,
    &'static str,
    fn(Option<i32>) -> bool,
);

/// Where the rehearsal puts the package and the scripts' work directory, relative to the
/// rehearsal sandbox's own work directory.
const PACKAGE: &str = "package";
const TARGET: &str = "target";

/// Rehearses `package` (rendered from `runbook`) in a fresh sandbox of `provider`, with
/// values other than the sandbox's. `sandbox_values` are the values the sandbox run used
/// that `runbook` does not record: [`Outcome::values`](crate::exec::Outcome::values) for
/// the runbook of a run; nothing for the `runbook.yaml` of a written package, which
/// records them. A variable not there counts with its `sandbox:` value.
///
/// A failed phase is not an error: the returned [`Rehearsal`] says `Failed` and what
/// failed. Errors are failures of the machinery (the provider cannot provision).
pub async fn rehearse(
    provider: &dyn Provider,
    runbook: &Runbook,
    package: &Package,
    sandbox_values: &BTreeMap<String, String>,
    options: &RehearsalOptions,
) -> Result<Rehearsal, ExecError> {
    // The same image and limits as the sandbox run: a fresh container of the same target.
    let request = ProvisionRequest::for_runbook(runbook, runbook_core::Lifetime::Ephemeral);
    let mut sandbox = provider.provision(&request).await?;
    let result = rehearse_in(sandbox.as_ref(), runbook, package, sandbox_values, options).await;
    // Destroyed whatever happened (dropping would too; this reports a failure to).
    let teardown = sandbox.teardown().await;
    let rehearsal = result?;
    teardown?;
    Ok(rehearsal)
}

async fn rehearse_in(
    sandbox: &dyn Sandbox,
    runbook: &Runbook,
    package: &Package,
    sandbox_values: &BTreeMap<String, String>,
    options: &RehearsalOptions,
) -> Result<Rehearsal, ExecError> {
    let values = rehearsal_values(runbook, sandbox, sandbox_values, options)?;
    let redactor = Redactor::new(&values.secrets);
    for path in package.paths() {
        let bytes = package.get(path).unwrap_or_default();
        sandbox
            .write_file(&format!("{PACKAGE}/{path}"), bytes)
            .await?;
    }
    let mut env = values.values.clone();
    env.insert("RUNBOOK_WORK_DIR".into(), TARGET.into());
    let mut rehearsal = Rehearsal {
        verdict: Verdict::Passed,
        sandbox: sandbox.id().to_owned(),
        values: values.shown.clone(),
        ..Rehearsal::default()
    };
    let has_rollback = runbook.steps.iter().any(|s| s.rollback.is_some());
    // The first run's pre-flight proves the tools; nothing changes them in between.
    let phases: Vec<Phase> = vec![
        ("deploy", "scripts/deploy.sh", "exit 0", |c| c == Some(0)),
        (
            "verify",
            "scripts/verify.sh --no-preflight",
            "exit 0",
            |c| c == Some(0),
        ),
        (
            "verify again",
            "scripts/verify.sh --no-preflight",
            "exit 0",
            |c| c == Some(0),
        ),
        (
            "deploy again",
            "scripts/deploy.sh --no-preflight",
            "exit 0, or 3 (refused: already deployed)",
            |c| matches!(c, Some(0 | 3)),
        ),
        (
            "rollback",
            "scripts/rollback.sh --yes --no-preflight",
            "exit 0",
            |c| c == Some(0),
        ),
        (
            "verify after rollback",
            "scripts/verify.sh --once --no-preflight",
            "fail (what was deployed is gone)",
            |c| c.is_some_and(|c| c != 0),
        ),
    ];
    for (phase, command, expected, ok) in phases {
        if phase == "verify after rollback" && !has_rollback {
            continue;
        }
        // A failure the phase expects is no feedback for anyone.
        let mut env = env.clone();
        if phase == "verify after rollback" {
            env.insert("RUNBOOK_NO_FEEDBACK".into(), "1".into());
        }
        let run = run_script(
            sandbox, &env, phase, command, expected, ok, &redactor, options,
        )
        .await?;
        let passed = run.passed;
        if !passed {
            let outcome = outcome(sandbox, &run, &redactor).await?;
            rehearsal.failure =
                describe_failure(&run, outcome.as_ref(), &values.values, &values.sandbox);
            rehearsal.cause = cause(&run.output);
        }
        rehearsal.runs.push(run);
        if !passed {
            rehearsal.verdict = Verdict::Failed;
            return Ok(rehearsal);
        }
    }
    rehearsal.leftovers = leftovers(sandbox, &redactor).await?;
    if !rehearsal.leftovers.is_empty() {
        rehearsal.verdict = Verdict::Failed;
        rehearsal.failure = format!(
            "after rollback.sh, something is left: {}",
            rehearsal.leftovers.join("; ")
        );
    }
    Ok(rehearsal)
}

/// The sandbox values a runbook records. In the `runbook.yaml` of a written package,
/// these are the values its sandbox run used ([`write_package`](crate::write_package)
/// records [`Outcome::values`](crate::exec::Outcome::values) there); in an authored
/// runbook, its `sandbox:` values. [`rehearse`] reads them from the runbook itself.
pub fn sandbox_values(runbook: &Runbook) -> BTreeMap<String, String> {
    runbook
        .variables
        .iter()
        .filter_map(|v| v.sandbox.clone().map(|s| (v.name.clone(), s)))
        .collect()
}
