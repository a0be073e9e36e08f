//! `runbook render`: write a handoff package without running anything.

use std::process::ExitCode;

use runbook::render::{Evidence, Package};

use crate::cli::Render;
use crate::shared::{Failure, load_clean};

/// `runbook render FILE --out DIR`: the package of a runbook that lints clean, untested or
/// from an earlier run's report.
pub fn exec(args: Render) -> Result<ExitCode, Failure> {
    let Render {
        file,
        report,
        out,
        force,
    } = args;
    let runbook = load_clean(&file)?;
    let report = match report.as_deref() {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure(format!("cannot read `{}`: {e}", path.display())))?;
            Some(
                runbook::report_from_yaml_str(&text)
                    .map_err(|e| Failure(e.in_file(path).to_string()))?,
            )
        }
        None => None,
    };
    let evidence = report.as_ref().map(|r| Evidence {
        report: r,
        log: None,
    });
    Package::render(&runbook, evidence, &[])?.write_to(&out, force)?;
    eprintln!(
        "handoff package ({}): {}",
        if report.is_some() {
            "from the report"
        } else {
            "untested"
        },
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
