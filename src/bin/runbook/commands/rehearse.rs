//! `runbook rehearse`: re-prove a package by rehearsing its scripts in a fresh sandbox.

use std::path::Path;
use std::process::ExitCode;

use runbook::exec::Provider;

use crate::cli::{Rehearse, VarArgs};
use crate::report::print_rehearsal;
use crate::shared::{Failure, provider, refuse_link, write_no_follow};
use crate::{Signals, signal_name};

/// `runbook rehearse PACKAGE`: the given values, the provider, then the rehearsal.
pub async fn exec(args: Rehearse) -> Result<ExitCode, Failure> {
    let Rehearse {
        package,
        allow_edits,
        values,
        sandbox: which,
    } = args;
    let options = runbook::RehearsalOptions {
        vars: values.values()?,
        ..runbook::RehearsalOptions::default()
    };
    let p = provider(&which, false).await?;
    rehearse_package(p.as_ref(), &package, allow_edits, &values, &options).await
}

/// The package's scripts, as they are on disk, in a fresh sandbox; the evidence goes next
/// to the package (`PACKAGE.rehearsal.yaml`), never into it.
async fn rehearse_package(
    provider: &dyn Provider,
    dir: &Path,
    allow_edits: bool,
    values: &VarArgs,
    options: &runbook::RehearsalOptions,
) -> Result<ExitCode, Failure> {
    let (package, edited) = runbook::render::read_package(dir)?;
    if !edited.is_empty() && !allow_edits {
        return Err(Failure(format!(
            "`{}` was changed since it was written ({}): its SHA256SUMS no longer hold. \
             Rehearse the changed package with --allow-edits (the changed files are recorded)",
            dir.display(),
            edited.join(", ")
        )));
    }
    let name = dir
        .file_name()
        .map_or_else(|| "package".into(), |n| n.to_string_lossy().into_owned());
    let evidence = dir.with_file_name(format!("{name}.rehearsal.yaml"));
    refuse_link(&evidence)?;
    let text = package
        .text("runbook.yaml")
        .ok_or_else(|| Failure(format!("`{}` has no runbook.yaml", dir.display())))?;
    let runbook = runbook::from_yaml_str(text)
        .map_err(|e| Failure(e.in_file(dir.join("runbook.yaml")).to_string()))?;
    values.warn_exposed(&runbook);
    let values = runbook::sandbox_values(&runbook);
    let mut signals = Signals::listen()?;
    eprintln!(
        "rehearsing `{}`: its own scripts, in a fresh sandbox, with other values",
        dir.display()
    );
    let mut rehearsal = tokio::select! {
        r = runbook::rehearse(provider, &runbook, &package, &values, options) => r?,
        n = signals.next() => {
            eprintln!("\n{}: the rehearsal sandbox was torn down", signal_name(n));
            return Ok(ExitCode::from(128 + n));
        }
    };
    rehearsal.edited = edited;
    print_rehearsal(&rehearsal);
    write_no_follow(&evidence, &runbook::to_yaml(&rehearsal))?;
    let passed = rehearsal.verdict == runbook::report::Verdict::Passed;
    if passed {
        eprintln!("rehearsal passed: {}", evidence.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("evidence: {}", evidence.display());
        Ok(ExitCode::FAILURE)
    }
}
