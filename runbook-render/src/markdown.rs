//! `README.md`: the human runbook, following the seed's "Document" example.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use runbook_core::report::{Report, RollbackPurpose, StepRecord, StepStatus, Verdict};
use runbook_core::{Check, Probe, Runbook, Step};

use crate::checklist::{checklist_items, limitations_markdown};
use crate::text::{cell, clip, code, fenced, human_ms, inline};

/// Renders README.md for `runbook`, with the evidence of `report` when it was tested.
pub fn readme(runbook: &Runbook, report: Option<&Report>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", runbook.display_title());
    if !runbook.metadata.description.is_empty() {
        let _ = writeln!(out, "{}\n", runbook.metadata.description.trim());
    }
    match report {
        Some(r) => {
            let _ = writeln!(
                out,
                "> **{}** The steps below ran exactly as written in an isolated {} sandbox on {}; \
                 each says how it went, and the evidence is in `test-results/`.\n",
                crate::scripts::verdict_line(Some(r)),
                r.sandbox.provider,
                r.started_at
            );
        }
        None => out.push_str(
            "> **Not tested.** This runbook has not been run in a sandbox: no command, check or rollback \
             below has been verified. Treat it as a draft.\n\n",
        ),
    }

    summary(&mut out, runbook, report);
    how_to_run(&mut out, runbook, report);
    if !runbook.requirements.is_empty() || !runbook.success_criteria.is_empty() {
        out.push_str("## Requirements\n\n");
        for r in &runbook.requirements {
            let _ = writeln!(out, "- {}", r.trim());
        }
        if !runbook.success_criteria.is_empty() {
            out.push_str("\n**Success criteria:**\n\n");
            for c in &runbook.success_criteria {
                let _ = writeln!(out, "- {}", c.trim());
            }
        }
        out.push('\n');
    }
    prerequisites(&mut out, runbook, report);
    preflight_checks(&mut out, runbook, report);
    variables(&mut out, runbook);
    if let Some(r) = report {
        timeline(&mut out, r);
    }

    out.push_str("## Steps\n\n");
    out.push_str("Run them in order with `scripts/deploy.sh` (resume with `--from STEP`), or by hand as below.\n\n");
    // Records by step id: a lookup per step must not scan the whole report.
    let records: HashMap<&str, &StepRecord> = report
        .map(|r| r.steps.iter().map(|s| (s.id.as_str(), s)).collect())
        .unwrap_or_default();
    for (i, step) in runbook.steps.iter().enumerate() {
        let record = records.get(step.id.as_str()).copied();
        step_section(&mut out, i + 1, step, record, report.is_some());
    }

    out.push_str("## Production Adaptation Checklist\n\nBefore executing this runbook on production, update the following:\n\n");
    out.push_str(&checklist_items(runbook, report));
    out.push_str("\n(Also in `adaptation-checklist.md`.)\n\n");
    out.push_str("## Limitations of Sandbox Testing\n\n");
    out.push_str(&limitations_markdown(runbook, report));
    rollback_procedure(&mut out, runbook, report);
    versions(&mut out, report);
    out.push_str("## Files\n\n");
    out.push_str(
        "- `runbook.yaml`: this runbook, machine-readable (`runbook.schema.json` describes it)\n",
    );
    for f in &runbook.config_files {
        let desc = if f.description.is_empty() {
            String::new()
        } else {
            format!(": {}", f.description.trim())
        };
        let _ = writeln!(out, "- `{}`{desc}", f.path);
    }
    out.push_str("- `scripts/deploy.sh`, `scripts/verify.sh`, `scripts/rollback.sh`\n");
    if report.is_some() {
        out.push_str("- `test-results/`: the sandbox log, `test-summary.yaml` and `junit.xml`\n");
    }
    out.push_str("- `versions.yaml`, `SHA256SUMS`\n");
    out
}

fn summary(out: &mut String, runbook: &Runbook, report: Option<&Report>) {
    out.push_str("## Summary\n\n| | |\n|---|---|\n");
    let _ = writeln!(out, "| What | {} |", cell(runbook.display_title()));
    let t = &runbook.target;
    let mut target = Vec::new();
    for (label, v) in [
        ("platform", &t.platform),
        ("cloud", &t.cloud),
        ("Kubernetes", &t.kubernetes_version),
        ("architecture", &t.architecture),
    ] {
        if let Some(v) = v {
            target.push(format!("{label} {v}"));
        }
    }
    if !target.is_empty() {
        let _ = writeln!(out, "| Target environment | {} |", cell(&target.join(", ")));
    }
    if !runbook.metadata.version.is_empty() {
        let _ = writeln!(
            out,
            "| Runbook version | {} |",
            cell(&runbook.metadata.version)
        );
    }
    match report {
        Some(r) => {
            let s = &r.sandbox;
            let lifetime = s.lifetime.map(|l| format!(", {l}")).unwrap_or_default();
            let user = if s.user.is_empty() {
                String::new()
            } else {
                format!(", commands run as `{}`", s.user)
            };
            let image = s
                .image
                .as_ref()
                .map(|i| format!(", image `{}`", cell(&i.name)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| Sandbox | {} provider{image}{lifetime}; {}; {} node(s){}{user} |",
                cell(&s.provider),
                cell(&s.os),
                s.nodes,
                if s.network_isolated {
                    ", network isolated"
                } else {
                    ""
                }
            );
            let verdict = match r.verdict {
                Verdict::Passed => "Passed",
                Verdict::Failed => "FAILED",
                Verdict::Incomplete => "Incomplete",
            };
            let passed_ids: HashSet<&str> = r
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Passed)
                .map(|s| s.id.as_str())
                .collect();
            let passed = runbook
                .steps
                .iter()
                .filter(|s| passed_ids.contains(s.id.as_str()))
                .count();
            let _ = writeln!(
                out,
                "| Verdict | {verdict}: {passed} of {} step(s) passed |",
                runbook.steps.len()
            );
            let _ = writeln!(
                out,
                "| Tested | {} (total {}) |",
                r.started_at,
                human_ms(r.duration_ms)
            );
            let unverified = runbook
                .steps
                .iter()
                .filter(|s| s.rollback.as_ref().is_some_and(|r| r.verify.is_empty()))
                .count();
            let rollback = match &r.rollback {
                Some(x) if x.verdict == Verdict::Passed && unverified == 0 => {
                    "Tested: every rollback ran and passed its checks".to_owned()
                }
                Some(x) if x.verdict == Verdict::Passed => {
                    format!("Tested: every rollback ran; {unverified} of them have no checks")
                }
                Some(_) => "Tested: FAILED (see the rollback procedure)".to_owned(),
                None => "Not exercised".to_owned(),
            };
            let _ = writeln!(out, "| Rollback | {rollback} |");
        }
        None => {
            out.push_str("| Verdict | Not tested |\n");
        }
    }
    let rec = runbook_core::recommend_lifetime(runbook);
    let _ = writeln!(
        out,
        "| Recommended sandbox | {} ({}) |\n",
        rec.lifetime, rec.reason
    );
}

fn prerequisites(out: &mut String, runbook: &Runbook, report: Option<&Report>) {
    if runbook.prerequisites.is_empty() {
        return;
    }
    out.push_str("## Prerequisites\n\n| Tool | Required | Tested with |\n|---|---|---|\n");
    for p in &runbook.prerequisites {
        let tested = report
            .and_then(|r| r.preflight.iter().find(|t| t.tool == p.tool))
            .and_then(|t| t.detected.clone())
            .unwrap_or_else(|| "not tested".into());
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} |",
            cell(&p.tool),
            cell(&p.version),
            cell(&tested)
        );
    }
    out.push('\n');
}

/// The pre-flight checklist: what `deploy.sh` confirms before any change, and where each
/// item was learnt.
fn preflight_checks(out: &mut String, runbook: &Runbook, report: Option<&Report>) {
    if runbook.preflight.is_empty() {
        return;
    }
    let in_sandbox = match report {
        Some(r) if r.steps.is_empty() && r.verdict != runbook_core::report::Verdict::Passed => {
            "checked in the sandbox before step 1"
        }
        Some(_) => "passed in the sandbox before step 1",
        None => "not tested",
    };
    out.push_str(
        "## Pre-flight checks\n\n`scripts/deploy.sh` runs these on the target after the tool checks and \
         before any change; if one fails it stops with nothing changed.\n\n",
    );
    // An item may come from a lesson, made of a feedback file: every text is escaped.
    for item in &runbook.preflight {
        let what = match item.check.command_text() {
            Some(c) => code(c),
            None => inline(&item.check.label()),
        };
        let _ = write!(
            out,
            "- **{}** ({}, {in_sandbox}): {what}, expect {}",
            inline(&item.title),
            code(&item.id),
            inline(&item.check.expectation())
        );
        match (&item.lesson, &item.origin) {
            (Some(l), Some(o)) => {
                let _ = write!(out, ". From lesson {}, learnt from {}", code(l), inline(o));
            }
            (Some(l), None) => {
                let _ = write!(out, ". From lesson {}", code(l));
            }
            (None, Some(o)) => {
                let _ = write!(out, ". Learnt from {}", inline(o));
            }
            (None, None) => {}
        }
        out.push_str(".\n");
    }
    out.push('\n');
}

fn variables(out: &mut String, runbook: &Runbook) {
    if runbook.variables.is_empty() {
        return;
    }
    out.push_str("## Variables\n\nEvery command reads these from the environment; set them for production first.\n\n");
    out.push_str("| Name | Sandbox value | Production |\n|---|---|---|\n");
    for v in &runbook.variables {
        let sandbox = if v.hides_value() {
            "secret".to_owned()
        } else {
            v.sandbox
                .as_deref()
                .map_or_else(|| "(none)".to_owned(), code)
        };
        let mut production = v.production.trim().to_owned();
        if let Some(s) = &v.secret {
            if !production.is_empty() {
                production.push(' ');
            }
            production.push_str(&format!(
                "(from {} {})",
                s.source.label(),
                code(&s.reference)
            ));
        }
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            v.name,
            cell(&sandbox),
            cell(&production)
        );
    }
    out.push('\n');
}

fn timeline(out: &mut String, report: &Report) {
    if report.steps.is_empty() {
        return;
    }
    out.push_str("## Timeline\n\n```mermaid\ngantt\n    title Sandbox run (step durations)\n    dateFormat x\n    axisFormat %M:%S\n");
    let mut start = 0u64;
    for (i, s) in report.steps.iter().enumerate() {
        let end = start + s.duration_ms().max(1);
        let state = if s.status == StepStatus::Passed {
            "done"
        } else {
            "crit"
        };
        let title: String = s
            .title
            .chars()
            .map(|c| {
                if matches!(c, ':' | '#' | ';' | '\n') {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let _ = writeln!(out, "    {title} :{state}, s{i}, {start}, {end}");
        start = end;
    }
    out.push_str("```\n\n");
}

fn check_lines(
    out: &mut String,
    checks: &[Check],
    records: Option<&[runbook_core::report::CheckRecord]>,
) {
    for (i, c) in checks.iter().enumerate() {
        let observed = match records.and_then(|r| r.get(i)) {
            Some(r) if r.passed => format!(
                " Observed: as expected{}.",
                if r.attempts > 1 {
                    format!(
                        " after {} attempts ({})",
                        r.attempts,
                        human_ms(r.duration_ms)
                    )
                } else {
                    String::new()
                }
            ),
            Some(r) => format!(" Observed: {}.", r.actual),
            None => String::new(),
        };
        let retry = c
            .retry
            .within
            .map(|w| format!(" (retried for up to {w})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- **{}**: expect {}{retry}.{observed}",
            c.label(),
            c.expectation()
        );
        if let Probe::Command(cmd) = &c.probe
            && (c.name.is_some() || cmd.contains('\n'))
        {
            for line in fenced("bash", cmd).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
}

fn step_section(
    out: &mut String,
    n: usize,
    step: &Step,
    record: Option<&StepRecord>,
    tested: bool,
) {
    let _ = writeln!(out, "### Step {n}: {}\n", step.title.trim());
    if !step.description.is_empty() {
        let _ = writeln!(out, "{}\n", step.description.trim());
    }
    if !step.files.is_empty() {
        let files: Vec<String> = step.files.iter().map(|f| code(f)).collect();
        let _ = writeln!(out, "Applies {}.\n", files.join(", "));
    }
    out.push_str("**Command:**\n\n");
    out.push_str(&fenced("bash", &step.run));
    out.push('\n');
    match record {
        Some(r) => {
            let last = r.attempts.last();
            let took = last.map_or(0, |a| a.duration_ms);
            if r.status == StepStatus::Passed {
                let _ = write!(out, "**Result:** Success ({})", human_ms(took));
                if r.attempts.iter().any(|a| !a.passed()) {
                    let _ = write!(
                        out,
                        " on attempt {}, after fixing the issue below",
                        r.attempts.len()
                    );
                } else if r.attempts.len() > 1 {
                    // It passed before, and ran again after an amendment of an earlier step.
                    let _ = write!(out, " (run {} times)", r.attempts.len());
                }
                out.push_str("\n\n");
            } else {
                let failure = last.map(|a| a.failure.as_str()).unwrap_or("");
                let _ = writeln!(
                    out,
                    "**Result:** FAILED after {} attempt(s): {failure}\n",
                    r.attempts.len()
                );
                if let Some(a) = last {
                    let output = [a.output.stderr.trim(), a.output.stdout.trim()]
                        .into_iter()
                        .find(|s| !s.is_empty());
                    if let Some(o) = output {
                        out.push_str("Output:\n\n");
                        out.push_str(&fenced("text", &clip(o, 2000)));
                        out.push('\n');
                    }
                    if !a.diagnostics.is_empty() {
                        out.push_str("Sandbox diagnostics at the failure:\n\n");
                        out.push_str(&fenced("text", &clip(&a.diagnostics, 4000)));
                        out.push('\n');
                    }
                    attempt_evidence(out, a);
                }
            }
            let earlier = r.attempts.len().saturating_sub(1);
            let failed_before = r.attempts[..earlier].iter().any(|a| !a.passed());
            if failed_before {
                out.push_str("What failed in the sandbox, and how it was fixed:\n\n");
            }
            for (i, a) in r
                .attempts
                .iter()
                .enumerate()
                .take(earlier)
                .filter(|(_, a)| !a.passed())
            {
                if let Some(cause) = a.causes.first() {
                    let _ = writeln!(
                        out,
                        "- Attempt {} failed: {} (cause: {})",
                        i + 1,
                        a.failure.lines().next().unwrap_or(""),
                        code(cause)
                    );
                } else {
                    match a.failure.split_once('\n') {
                        None => {
                            let _ = writeln!(out, "- Attempt {} failed: {}", i + 1, a.failure);
                        }
                        Some(_) => {
                            let _ = writeln!(out, "- Attempt {} failed:\n", i + 1);
                            for line in fenced("text", &a.failure).lines() {
                                let _ = writeln!(out, "  {line}");
                            }
                        }
                    }
                }
                if let Some(fixed) = &a.amendment {
                    let _ = writeln!(out, "\n  Fixed: {}\n", inline(&fixed.fix));
                    for line in fenced("diff", fixed.diff.trim_end()).lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                }
            }
            if failed_before {
                out.push('\n');
            }
        }
        None if tested => out.push_str("**Result:** Not run (an earlier step failed).\n\n"),
        None => out.push_str("**Result:** Not tested.\n\n"),
    }
    if !step.verify.is_empty() {
        out.push_str("**Verification:**\n\n");
        let records = record
            .and_then(|r| r.attempts.last())
            .map(|a| a.checks.as_slice());
        check_lines(out, &step.verify, records);
        out.push('\n');
    }
    if let Some(rb) = &step.rollback {
        out.push_str("**Rollback:**\n\n");
        out.push_str(&fenced("bash", &rb.run));
        if !rb.verify.is_empty() {
            out.push('\n');
            check_lines(out, &rb.verify, None);
        }
        out.push('\n');
    }
    if !step.notes.is_empty() {
        out.push_str("**Notes:**");
        if step.notes.len() == 1 {
            let _ = writeln!(out, " {}\n", step.notes[0].trim());
        } else {
            out.push_str("\n\n");
            for note in &step.notes {
                let _ = writeln!(out, "- {}", note.trim());
            }
            out.push('\n');
        }
    }
    if !step.known_issues.is_empty() {
        out.push_str("**Known issues:**\n\n");
        // A known issue may come from a lesson, made of a feedback file: escaped.
        for k in &step.known_issues {
            let _ = writeln!(out, "- **Error:** {}", code(k.error.trim()));
            let _ = writeln!(out, "  - **Root cause:** {}", inline(&k.cause));
            let _ = writeln!(out, "  - **Fix:** {}", inline(&k.fix));
        }
        out.push('\n');
    }
}

/// Who runs the package, where, with what: what the sandbox was, stated for the target.
fn how_to_run(out: &mut String, runbook: &Runbook, report: Option<&Report>) {
    out.push_str(
        "## How to run this package
\n",
    );
    match report
        .map(|r| r.sandbox.user.as_str())
        .filter(|u| !u.is_empty())
    {
        Some("root") => out.push_str("- **Who:** the sandbox ran every command as root.\n"),
        Some(user) => {
            let _ = writeln!(
                out,
                "- **Who:** an unprivileged user that will own what this deploys; the sandbox ran every \
                 command as `{user}`, never as root (the scripts refuse root unless `--as-root`)."
            );
        }
        None => out
            .push_str("- **Who:** not tested: nobody knows yet whether the commands need root.\n"),
    }
    out.push_str(
        "- **Where:** relative paths are relative to the work directory: `RUNBOOK_WORK_DIR` \
         (default `work/` inside this package). `deploy.sh` keeps its journal there \
         (`.runbook-journal`), which `rollback.sh` reads; both hold a lock there (`.runbook-lock`, \
         with `flock`), so only one of them runs at a time. Every script records how it ended \
         there, for a program to read (`.runbook-outcome`: `status=`, `phase=`, `step=`, \
         `check=`, `reason=`).\n",
    );
    out.push_str(
        "- **Environment:** set every variable of the table below (`adaptation-checklist.md` says \
         how). The sandbox gave commands a clean environment: `PATH`, `LANG`/`LC_ALL=C.UTF-8`, \
         `HOME`, `TMPDIR`, `USER` and the runbook's variables, nothing else; the scripts set the same \
         locale",
    );
    let prefixes = crate::scripts::env_prefixes(runbook);
    if !prefixes.is_empty() {
        let names: Vec<String> = prefixes.iter().map(|p| format!("`{p}*`")).collect();
        let _ = write!(
            out,
            " and warn about variables that change the runbook's tools ({})",
            names.join(", ")
        );
    }
    out.push('.');
    // Where the sandbox found the tools, not its whole `PATH`: that was the author's
    // (their home, their toolchains), which means nothing on the target.
    let mut dirs: Vec<&str> = Vec::new();
    for t in report.map(|r| r.preflight.as_slice()).unwrap_or_default() {
        if let Some((dir, _)) = t.location.as_deref().and_then(|l| l.rsplit_once('/'))
            && !dir.is_empty()
            && !dirs.contains(&dir)
        {
            dirs.push(dir);
        }
    }
    if dirs.is_empty() {
        out.push('\n');
    } else {
        let dirs: Vec<String> = dirs.iter().map(|d| code(d)).collect();
        let _ = writeln!(
            out,
            " The sandbox found the runbook's tools in {}; on the target, the scripts look for \
             them on `PATH`.",
            dirs.join(", ")
        );
    }
    if let Some(r) = report.filter(|r| !r.preflight.is_empty()) {
        let tools: Vec<String> = r
            .preflight
            .iter()
            .map(|t| {
                format!(
                    "`{}` {} (`{}`){}",
                    t.tool,
                    t.detected.as_deref().unwrap_or("missing"),
                    t.required,
                    t.location
                        .as_deref()
                        .map(|l| format!(" at `{l}`"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "- **Tools:** {}; every script checks them first (pre-flight) and changes nothing if one is \
             missing or too old.",
            tools.join(", ")
        );
    }
    out.push_str(
        "- **Order:** `scripts/deploy.sh` (stops at the first failure; `--from STEP` resumes), \
         `scripts/verify.sh` (repeatable), and if needed `scripts/rollback.sh`.\n",
    );
    out.push_str(
        "- **When a script fails:** it writes `feedback/<UTC time>-<step>.yaml` in this package \
         (or in the work directory when the package is read-only): the failing command, its exit \
         code, the last lines of its output with every secret masked, and the target's facts. \
         `runbook feedback FILE --lessons DIR` turns it into a lesson that every similar runbook \
         then checks before it runs.\n",
    );
    if !runbook.config_files.is_empty() {
        out.push_str(
            "- **By hand:** `scripts/deploy.sh --render-config DIR` fills the templates of `config/` \
             from your environment into DIR (files holding a secret are written 0600) and does nothing \
             else; the files under `config/` themselves still hold `${VAR}` placeholders.\n",
        );
    }
    out.push_str(
        "- **Semantics:** steps and rollbacks run under `bash -e -o pipefail`, exactly as in the \
         sandbox: a multi-line step fails at its first failing line. Checks run as written.
\n",
    );
}

fn rollback_procedure(out: &mut String, runbook: &Runbook, report: Option<&Report>) {
    out.push_str("## Rollback Procedure\n\n");
    let steps: Vec<&Step> = runbook
        .steps
        .iter()
        .rev()
        .filter(|s| s.rollback.is_some())
        .collect();
    if steps.is_empty() {
        out.push_str("No step declares a rollback.\n\n");
        return;
    }
    restores(out, report);
    match report.and_then(|r| r.rollback.as_ref()) {
        Some(x) if x.verdict == Verdict::Passed => out.push_str(
            "**Rollback tested:** after the successful run, every rollback below ran in this order in the \
             sandbox and succeeded; those with checks passed them.\n\n",
        ),
        Some(_) => out.push_str("**Rollback tested: FAILED.** See `test-results/test-summary.yaml`.\n\n"),
        None => out.push_str("The rollbacks were not exercised in the sandbox.\n\n"),
    }
    out.push_str(
        "Undo the steps in reverse order. `scripts/rollback.sh` does this for the steps its journal \
         shows `deploy.sh` completed (after listing them and asking; `--yes` to confirm without a \
         terminal, `--to STEP` to stop after one, `--include-incomplete` for a step that failed \
         half-way; `--all` runs every step's rollback, even of steps the journal shows never ran \
         here, which can destroy what was there before: it lists those and asks again, or needs \
         `--yes --all`):\n\n",
    );
    for (i, s) in steps.iter().enumerate() {
        let rb = s.rollback.as_ref().expect("filtered");
        let _ = writeln!(out, "{}. **{}** (`{}`):\n", i + 1, s.title.trim(), s.id);
        for line in fenced("bash", &rb.run).lines() {
            let _ = writeln!(out, "   {line}");
        }
        out.push('\n');
    }
}

/// The rollbacks that ran before every step had passed, in the order they ran: they
/// restored the sandbox (after a failure, or to redo a step) and prove less than the
/// exercise, so they are told apart from it.
fn restores(out: &mut String, report: Option<&Report>) {
    let restores = report.map_or(&[][..], |r| r.restores.as_slice());
    if restores.is_empty() {
        return;
    }
    out.push_str(
        "**Rollbacks that restored the sandbox** while it was tested, before every step had passed \
         (not the rollback exercise), in the order they ran:\n\n",
    );
    for (i, r) in restores.iter().enumerate() {
        let why = match &r.purpose {
            RollbackPurpose::Restore { failed: Some(step) } => {
                format!("After step {} failed, to restore the sandbox", code(step))
            }
            RollbackPurpose::Restore { failed: None } => "To restore the sandbox".to_owned(),
            RollbackPurpose::Redo { step } => {
                format!("To redo step {}, amended after it had passed", code(step))
            }
            // A report written before purposes were recorded: its `rewinds`.
            RollbackPurpose::Exercise => "To go back before an amended step".to_owned(),
        };
        let ran: Vec<String> = r.steps.iter().map(|s| code(&s.id)).collect();
        let ran = if ran.is_empty() {
            "no rollback ran (nothing to undo)".to_owned()
        } else {
            format!(
                "the rollbacks of {} ran: {}",
                ran.join(", "),
                if r.verdict == Verdict::Passed {
                    "passed"
                } else {
                    "FAILED"
                }
            )
        };
        let _ = writeln!(out, "{}. {why}: {ran}.", i + 1);
    }
    out.push('\n');
}

fn versions(out: &mut String, report: Option<&Report>) {
    out.push_str("## Version Metadata\n\n");
    match report {
        Some(r) => {
            out.push_str("Tested with (also in `versions.yaml`):\n\n");
            for t in &r.preflight {
                let _ = writeln!(
                    out,
                    "- `{}` {}",
                    t.tool,
                    t.detected.as_deref().unwrap_or("not found")
                );
            }
            for (k, v) in &r.sandbox.versions {
                let _ = writeln!(out, "- {k} {v}");
            }
            if !r.sandbox.os.is_empty() {
                let _ = writeln!(out, "- {}", r.sandbox.os);
            }
            if let Some(image) = &r.sandbox.image {
                let digest = image.digests.first().unwrap_or(&image.id);
                let _ = writeln!(out, "- image `{}` (`{digest}`)", image.name);
            }
            let limits = limits_text(&r.sandbox.limits);
            if !limits.is_empty() {
                let _ = writeln!(out, "- limits: {limits}");
            }
        }
        None => out.push_str("Not tested: `versions.yaml` lists the requirements only.\n"),
    }
    out.push('\n');
}

/// `memory 512Mi, pids 256, cpus 1.5`, or empty.
fn limits_text(limits: &runbook_core::SandboxLimits) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &limits.memory {
        parts.push(format!("memory {m}"));
    }
    if let Some(p) = limits.pids {
        parts.push(format!("pids {p}"));
    }
    if let Some(c) = &limits.cpus {
        parts.push(format!("cpus {c}"));
    }
    parts.join(", ")
}

/// What the sandbox showed of a failed attempt: the cause lines, the ends of the files
/// it changed, what the step's `diagnose` commands printed.
fn attempt_evidence(out: &mut String, a: &runbook_core::report::Attempt) {
    if !a.causes.is_empty() {
        out.push_str("The cause, as the sandbox showed it:\n\n");
        out.push_str(&fenced("text", &a.causes.join("\n")));
        out.push('\n');
    }
    for f in &a.files {
        let _ = writeln!(
            out,
            "End of {} (changed while the step ran):\n",
            code(&f.path)
        );
        out.push_str(&fenced("text", &f.lines.join("\n")));
        out.push('\n');
    }
    for d in &a.diagnose {
        let _ = writeln!(out, "{}:\n", code(&d.command));
        out.push_str(&fenced("text", &clip(&d.output, 4000)));
        out.push('\n');
    }
}
