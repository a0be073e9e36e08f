//! What the CLI prints of a run's report (the failed step) and of a rehearsal (its values,
//! its scripts, why it failed).

/// The rehearsal's values (those it kept, and why), one line per script it ran, and for
/// a failed rehearsal what failed and the line of output that says why.
pub fn print_rehearsal(rehearsal: &runbook::report::Rehearsal) {
    for v in &rehearsal.values {
        if v.rehearsal == v.sandbox {
            eprintln!("  {}: {} ({})", v.name, v.rehearsal, v.how);
        } else {
            eprintln!("  {}: {} -> {} ({})", v.name, v.sandbox, v.rehearsal, v.how);
        }
    }
    print_rehearsal_runs(rehearsal);
    if rehearsal.verdict != runbook::report::Verdict::Passed {
        eprintln!("rehearsal FAILED: {}", rehearsal.failure);
        if !rehearsal.cause.is_empty() {
            eprintln!("cause: {}", rehearsal.cause);
        }
    }
}

/// One line per script the rehearsal ran.
fn print_rehearsal_runs(rehearsal: &runbook::report::Rehearsal) {
    for run in &rehearsal.runs {
        eprintln!(
            "  {} {}: {}",
            if run.passed { "ok" } else { "FAILED" },
            run.phase,
            run.command
        );
    }
}

/// Why the last failed step of `report` failed, what it printed, and how to go on.
pub fn print_failure(report: &runbook::report::Report) {
    let Some(record) = report
        .steps
        .iter()
        .rfind(|r| r.status == runbook::report::StepStatus::Failed)
    else {
        return;
    };
    let Some(attempt) = record.attempts.last() else {
        return;
    };
    eprintln!(
        "\nstep `{}` ({}) failed: {}",
        record.id, record.title, attempt.failure
    );
    eprintln!("command:\n{}", indent(&attempt.command));
    for c in &attempt.checks {
        let mark = if c.passed { "ok" } else { "FAILED" };
        eprintln!(
            "check `{}` {mark}: expected {}; saw {} ({} attempt(s))",
            c.name, c.expected, c.actual, c.attempts
        );
    }
    let output = if attempt.output.stderr.trim().is_empty() {
        &attempt.output.stdout
    } else {
        &attempt.output.stderr
    };
    if !output.trim().is_empty() {
        let tail: Vec<&str> = output.trim_end().lines().rev().take(10).collect();
        eprintln!(
            "last output:\n{}",
            indent(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        );
    }
    if !attempt.causes.is_empty() {
        eprintln!(
            "the cause, as the sandbox showed it:\n{}",
            indent(&attempt.causes.join("\n"))
        );
    }
    for file in &attempt.files {
        let tail: Vec<&str> = file
            .lines
            .iter()
            .rev()
            .take(10)
            .map(String::as_str)
            .collect();
        eprintln!(
            "end of {} (changed while the step ran):\n{}",
            file.path,
            indent(&tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        );
    }
    for d in &attempt.diagnose {
        eprintln!("$ {}\n{}", d.command, indent(d.output.trim_end()));
    }
    match report.sandbox.lifetime {
        Some(runbook::Lifetime::Persistent) => eprintln!(
            "fix the runbook, then go on in the same sandbox: `runbook resume {} --amend FIXED.yaml`",
            report.sandbox.id
        ),
        _ => eprintln!(
            "sandbox {} was torn down; rerun with --keep to keep it and continue it with `runbook resume`",
            report.sandbox.id
        ),
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
