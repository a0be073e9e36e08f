//! `runbook validate`: parse and lint runbook files, as text or JSON.

use std::process::ExitCode;

use runbook::findings::Finding;

use crate::cli::{Format, Validate};
use crate::shared::{Failure, check_file, load_lessons};

/// `runbook validate FILE…`: every finding of every file; exit 1 when any is an error.
pub fn exec(args: Validate) -> Result<ExitCode, Failure> {
    let Validate {
        files,
        format,
        deny,
        lessons,
    } = args;
    let lessons = load_lessons(lessons)?;
    if let Some(bad) = deny.iter().find(|d| {
        *d != "warnings"
            && !runbook::Rule::ALL
                .iter()
                .any(|r| *r != runbook::Rule::Custom && r.code() == d.as_str())
    }) {
        let codes: Vec<&str> = runbook::Rule::ALL
            .iter()
            .filter(|r| **r != runbook::Rule::Custom)
            .map(|r| r.code())
            .collect();
        return Err(Failure(format!(
            "--deny `{bad}` is not a rule: use `warnings` or one of {}",
            codes.join(", ")
        )));
    }
    let mut findings: Vec<Finding> = files
        .iter()
        .flat_map(|f| check_file(f, &lessons).1)
        .collect();
    for f in &mut findings {
        if !f.is_error() && deny.iter().any(|d| d == "warnings" || *d == f.code) {
            f.severity = "error".into();
        }
    }
    let errors = findings.iter().filter(|f| f.is_error()).count();
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_else(|_| "[]".into())
        ),
        Format::Text => {
            for f in &findings {
                println!("{}", f.text());
            }
            let warnings = findings.len() - errors;
            eprintln!(
                "{} file(s): {errors} error(s), {warnings} warning(s)",
                files.len()
            );
        }
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
