//! A version matrix: one runbook against several targets at once, each in its own
//! sandbox with its own rehearsal, and one compatibility table (targets x steps) that
//! says where the runbook works, where not, and why, from evidence.
//!
//! [`run`] drives every target through the same pipeline as `runbook run` (a session,
//! then [`ops::finish`](crate::ops::finish): the package, its rehearsal), at most `jobs`
//! at a time; a failure in one target does not stop the others. Each target's package is
//! written to `<out>/<target>/`, the table to `<out>/compatibility.md` and
//! `<out>/compatibility.yaml`. The scheduler knows nothing of providers: the caller gives
//! one per target (a container image, a kube context, or the local provider with other
//! values).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runbook_core::report::{Report, StepStatus, Verdict};
use runbook_core::{Check, Expectation, MatrixTarget, PreflightCheck, Runbook};
use serde::Serialize;

use crate::exec::{ExecError, Observer, Outcome, Provider, RunMode, RunOptions, Session};
use crate::ops::{FinishRequest, OpsError};

/// The file that marks a directory as a matrix's output (so `--force` replaces only one).
pub const TABLE_YAML: &str = "compatibility.yaml";
/// The table in words.
pub const TABLE_MD: &str = "compatibility.md";

/// One target to run: what the runbook says of it, and the provider that makes its
/// sandboxes.
pub struct TargetRun {
    /// The target.
    pub target: MatrixTarget,
    /// Its provider (a container provider at its image, a kube provider at its context…).
    pub provider: Arc<dyn Provider>,
    /// Hears its engine's events.
    pub observer: Arc<dyn Observer>,
}

/// How to run the matrix.
#[derive(Debug, Clone)]
pub struct MatrixRequest {
    /// The directory of the packages and the table.
    pub out: PathBuf,
    /// Replace a matrix output written there before.
    pub force: bool,
    /// Rehearse each target's package (when its run passed).
    pub rehearse: bool,
    /// How many targets run at once (at least 1).
    pub jobs: usize,
    /// Values over the runbook's sandbox values, for every target (each target's own
    /// `values` win over these).
    pub vars: BTreeMap<String, String>,
    /// Exercise every rollback after a successful run.
    pub exercise_rollback: bool,
}

/// What one target did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    /// The target's name.
    pub name: String,
    /// Its image or context, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its kube context, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// What it was expected to do.
    pub expect: Expectation,
    /// Why it was expected to fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The run's verdict (`failed` when the sandbox could not even be made).
    pub verdict: Verdict,
    /// The rehearsal's verdict, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<Verdict>,
    /// Whether it did what it was expected to.
    pub as_expected: bool,
    /// Per step, in the runbook's order: `passed`, `failed at check NAME`, `failed`,
    /// `not reached`.
    pub steps: Vec<StepCell>,
    /// The first cause line of the failure (the server's own reason, when the sandbox
    /// showed one), or the machinery's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The known issues the run recorded, as `step: error`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub known_issues: Vec<String>,
    /// Tool versions found in its sandbox.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, String>,
    /// What its sandbox ran on (the image's `os-release`, or the host's).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// Its package's directory, relative to the output directory.
    pub package: String,
}

/// One cell of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepCell {
    /// The step id.
    pub step: String,
    /// What happened to it there.
    pub status: String,
}

/// The whole matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixOutcome {
    /// The runbook's name and version.
    pub runbook: String,
    /// Whether every target did what it was expected to.
    pub green: bool,
    /// The targets it is proven on (passed, as expected).
    pub proven_on: Vec<String>,
    /// The targets it is known not to support (failed, as expected), each with why.
    pub not_supported: Vec<String>,
    /// Every target, in the runbook's order.
    pub targets: Vec<TargetResult>,
}

/// Refuses a matrix that cannot run: no targets, a name twice, a target without its
/// reason, a value for a variable the runbook does not declare.
pub fn check(runbook: &Runbook, targets: &[MatrixTarget]) -> Result<(), OpsError> {
    let mut problems = Vec::new();
    if targets.is_empty() {
        problems.push("the runbook has no `targets:` to run as a matrix".to_owned());
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in targets {
        problems.extend(t.problems());
        if !seen.insert(t.name.as_str()) {
            problems.push(format!("target `{}` is named twice", t.name));
        }
        if let Err(e) = crate::ops::check_vars(runbook, &t.values) {
            problems.push(format!("target `{}`: {e}", t.name));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(OpsError::UndeclaredVariable(problems.join("\n")))
    }
}

/// Runs every target (at most `request.jobs` at once), writes each package and the
/// table. Errors are the machinery's before anything ran (a bad matrix, an output
/// directory that is not ours); a target whose sandbox fails is a failed target.
pub async fn run(
    runbook: &Runbook,
    targets: Vec<TargetRun>,
    request: &MatrixRequest,
) -> Result<MatrixOutcome, OpsError> {
    let plain: Vec<MatrixTarget> = targets.iter().map(|t| t.target.clone()).collect();
    check(runbook, &plain)?;
    prepare_out(&request.out, request.force)?;
    let gate = Arc::new(tokio::sync::Semaphore::new(request.jobs.max(1)));
    // 1. Every target's sandbox run, at most `jobs` at once.
    let mut running = tokio::task::JoinSet::new();
    for (index, t) in targets.into_iter().enumerate() {
        let (gate, runbook, request) = (gate.clone(), runbook.clone(), request.clone());
        running.spawn(async move {
            let _slot = gate.acquire_owned().await;
            let ran = run_sandbox(runbook, &t, &request).await;
            (index, t, ran)
        });
    }
    let mut ran = Vec::new();
    while let Some(done) = running.join_next().await {
        ran.push(done.map_err(|e| {
            OpsError::Exec(ExecError::Usage(format!("a target's run panicked: {e}")))
        })?);
    }
    ran.sort_by_key(|(i, _, _)| *i);
    // 2. What the failed targets teach the passing ones: their scripts refuse those versions.
    let refusals = unsupported_versions(runbook, &ran);
    // 3. Every package written and rehearsed, with those refusals in the passing ones.
    let mut finishing = tokio::task::JoinSet::new();
    for (index, t, ran) in ran {
        let (gate, runbook, request) = (gate.clone(), runbook.clone(), request.clone());
        let refusals = refusals.clone();
        finishing.spawn(async move {
            let _slot = gate.acquire_owned().await;
            (
                index,
                finish_target(&runbook, t, ran, &refusals, &request).await,
            )
        });
    }
    let mut results: Vec<(usize, TargetResult)> = Vec::new();
    while let Some(done) = finishing.join_next().await {
        results.push(done.map_err(|e| {
            OpsError::Exec(ExecError::Usage(format!(
                "a target's package panicked: {e}"
            )))
        })?);
    }
    results.sort_by_key(|(i, _)| *i);
    let targets: Vec<TargetResult> = results.into_iter().map(|(_, r)| r).collect();
    let outcome = MatrixOutcome {
        runbook: match runbook.metadata.version.as_str() {
            "" => runbook.metadata.name.clone(),
            v => format!("{} {v}", runbook.metadata.name),
        },
        green: targets.iter().all(|t| t.as_expected),
        proven_on: targets
            .iter()
            .filter(|t| t.as_expected && t.expect == Expectation::Pass)
            .map(|t| t.name.clone())
            .collect(),
        not_supported: targets
            .iter()
            .filter(|t| t.as_expected && t.expect == Expectation::Fail)
            .map(|t| {
                format!(
                    "{}: {}",
                    t.name,
                    t.reason.as_deref().unwrap_or("expected to fail")
                )
            })
            .collect(),
        targets,
    };
    write_table(&request.out, runbook, &outcome)?;
    Ok(outcome)
}

/// The output directory: new, or a matrix's output when `force`.
fn prepare_out(out: &Path, force: bool) -> Result<(), OpsError> {
    let io = |e: std::io::Error| {
        OpsError::Exec(ExecError::Usage(format!(
            "cannot use {}: {e}",
            out.display()
        )))
    };
    if out.exists() {
        let ours = out.join(TABLE_YAML).is_file();
        let empty = std::fs::read_dir(out).map_err(io)?.next().is_none();
        if !(empty || force && ours) {
            return Err(OpsError::Exec(ExecError::Usage(format!(
                "{} exists and is not empty{}: choose another --out{}",
                out.display(),
                if ours { " (a matrix's output)" } else { "" },
                if ours {
                    ", or pass --force to replace it"
                } else {
                    ""
                }
            ))));
        }
    }
    std::fs::create_dir_all(out).map_err(io)
}

/// One target's sandbox run (the session driven to its end).
async fn run_sandbox(
    mut runbook: Runbook,
    t: &TargetRun,
    request: &MatrixRequest,
) -> Result<Outcome, ExecError> {
    if let Some(image) = &t.target.image {
        runbook.target.image = Some(image.clone());
    }
    let mut vars = request.vars.clone();
    vars.extend(t.target.values.clone());
    let options = RunOptions {
        vars,
        observer: t.observer.clone(),
        ..RunOptions::default()
    };
    let mode = RunMode {
        exercise_rollback: request.exercise_rollback,
        ..RunMode::default()
    };
    let session = Session::start(t.provider.as_ref(), runbook, options).await?;
    crate::exec::drive(session, mode).await
}

/// A pre-flight check that refuses a tool version a failed target had (and no passing
/// one): the package's `deploy.sh` stops before changing anything on such a target,
/// unless `RUNBOOK_ALLOW_UNSUPPORTED` is set (then it warns and goes on).
fn unsupported_versions(
    runbook: &Runbook,
    ran: &[(usize, TargetRun, Result<Outcome, ExecError>)],
) -> Vec<PreflightCheck> {
    let major = |v: &str| v.split('.').next().unwrap_or(v).to_owned();
    let passing: BTreeSet<(String, String)> = ran
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok().filter(|o| o.passed()))
        .flat_map(|o| o.report.preflight.iter())
        .filter_map(|t| Some((t.tool.clone(), major(t.detected.as_deref()?))))
        .collect();
    let mut checks = Vec::new();
    for (_, t, r) in ran {
        let Ok(outcome) = r else { continue };
        if outcome.passed() {
            continue;
        }
        let why = t.target.reason.clone().unwrap_or_else(|| {
            outcome
                .report
                .steps
                .iter()
                .find(|s| s.status != StepStatus::Passed)
                .and_then(|s| s.last())
                .and_then(|a| {
                    a.causes
                        .first()
                        .cloned()
                        .or_else(|| Some(a.failure.clone()))
                })
                .map(|c| runbook_core::feedback::normalise_error(&c))
                .unwrap_or_else(|| "it failed there".into())
        });
        for tool in &outcome.report.preflight {
            let Some(version) = tool.detected.as_deref() else {
                continue;
            };
            let m = major(version);
            if passing.contains(&(tool.tool.clone(), m.clone())) {
                continue;
            }
            let Some(prerequisite) = runbook.prerequisites.iter().find(|p| p.tool == tool.tool)
            else {
                continue;
            };
            let command = refusal_command(
                &prerequisite.detect_command(),
                &m,
                &format!(
                    "{} {m} is what the matrix target `{}` had, where this runbook failed: {why}. \
                     Set RUNBOOK_ALLOW_UNSUPPORTED=1 to go on anyway.",
                    tool.tool, t.target.name
                ),
            );
            checks.push(PreflightCheck {
                id: format!("not-{}-{}", t.target.name, slug(&tool.tool)),
                title: format!(
                    "Not {} {m}, which the matrix found unsupported (target `{}`)",
                    tool.tool, t.target.name
                ),
                check: Check::command(command),
                lesson: None,
                origin: Some(format!("version matrix, target `{}`: {why}", t.target.name)),
            });
        }
    }
    checks
}

/// Fails (saying `message`) when `detect` prints major version `major`, unless
/// `RUNBOOK_ALLOW_UNSUPPORTED` is set (then it only says it).
fn refusal_command(detect: &str, major: &str, message: &str) -> String {
    format!(
        "if {{ {detect}; }} 2>/dev/null | grep -qE '(^|[^0-9.]){}\\.'; then \
         echo {} >&2; test -n \"${{RUNBOOK_ALLOW_UNSUPPORTED:-}}\"; fi",
        regex_escape(major),
        runbook_core::shell::quote(message),
    )
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = !c.is_ascii_alphanumeric();
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// One target's package (rehearsed when asked and its run passed) and its row.
async fn finish_target(
    runbook: &Runbook,
    t: TargetRun,
    ran: Result<Outcome, ExecError>,
    refusals: &[PreflightCheck],
    request: &MatrixRequest,
) -> TargetResult {
    let target = t.target;
    let dir = request.out.join(&target.name);
    let finished = match ran {
        Ok(mut outcome) => {
            if outcome.passed() {
                outcome.runbook.preflight.extend(refusals.iter().cloned());
            }
            let finish = FinishRequest {
                out: &dir,
                force: request.force,
                rehearse: request.rehearse,
            };
            crate::ops::finish(t.provider.as_ref(), outcome, finish, &mut |_| {}).await
        }
        Err(e) => Err(OpsError::Exec(e)),
    };
    let mut result = TargetResult {
        name: target.name.clone(),
        image: target.image.clone(),
        context: target.context.clone(),
        expect: target.expect,
        reason: target.reason.clone(),
        verdict: Verdict::Failed,
        rehearsal: None,
        as_expected: false,
        steps: runbook
            .steps
            .iter()
            .map(|s| StepCell {
                step: s.id.clone(),
                status: "not reached".into(),
            })
            .collect(),
        cause: None,
        known_issues: Vec::new(),
        tools: BTreeMap::new(),
        os: String::new(),
        package: target.name.clone(),
    };
    let passed = match finished {
        Ok(handoff) => {
            let passed = handoff.passed();
            fill(&mut result, &handoff.outcome.report);
            for step in &handoff.outcome.runbook.steps {
                for issue in &step.known_issues {
                    result
                        .known_issues
                        .push(format!("{}: {}", step.id, issue.error));
                }
            }
            passed
        }
        Err(e) => {
            result.cause = Some(e.to_string());
            false
        }
    };
    result.as_expected = passed == (target.expect == Expectation::Pass);
    result
}

/// The table's row of a target from its report.
fn fill(result: &mut TargetResult, report: &Report) {
    result.verdict = report.verdict;
    result.rehearsal = report.rehearsal.as_ref().map(|r| r.verdict);
    result.os = report
        .sandbox
        .image
        .as_ref()
        .map(|i| i.os_release.clone())
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| report.sandbox.os.clone());
    for tool in &report.preflight {
        if let Some(v) = &tool.detected {
            result.tools.insert(tool.tool.clone(), v.clone());
        }
    }
    for record in &report.steps {
        let Some(cell) = result.steps.iter_mut().find(|c| c.step == record.id) else {
            continue;
        };
        cell.status = match record.status {
            StepStatus::Passed => "passed".into(),
            _ => match record
                .last()
                .and_then(|a| a.checks.iter().find(|c| !c.passed))
            {
                Some(check) if record.last().is_some_and(|a| a.output.exit_code == Some(0)) => {
                    format!("failed at check `{}`", check.name)
                }
                _ => "failed".into(),
            },
        };
        if record.status != StepStatus::Passed && result.cause.is_none() {
            // The server's reason, without its timestamp and pid: the same on every run.
            result.cause = record
                .last()
                .and_then(|a| {
                    a.causes
                        .first()
                        .cloned()
                        .or_else(|| Some(a.failure.clone()))
                })
                .map(|c| runbook_core::feedback::normalise_error(&c))
                .filter(|c| !c.is_empty());
        }
    }
    if result.cause.is_none()
        && let Some(r) = &report.rehearsal
        && r.verdict != Verdict::Passed
    {
        result.cause = Some("the package's rehearsal failed: see its rehearsal.yaml".into());
    }
}

/// `compatibility.yaml` and `compatibility.md` in `out`.
fn write_table(out: &Path, runbook: &Runbook, outcome: &MatrixOutcome) -> Result<(), OpsError> {
    let write = |name: &str, text: String| {
        std::fs::write(out.join(name), text).map_err(|e| {
            OpsError::Exec(ExecError::Usage(format!(
                "cannot write {}: {e}",
                out.join(name).display()
            )))
        })
    };
    write(TABLE_YAML, runbook_core::to_yaml(outcome))?;
    write(TABLE_MD, table_markdown(runbook, outcome))
}

/// The table in markdown: the verdicts, then targets x steps, then why.
pub fn table_markdown(runbook: &Runbook, outcome: &MatrixOutcome) -> String {
    let mut md = String::new();
    let title = if runbook.metadata.title.is_empty() {
        &runbook.metadata.name
    } else {
        &runbook.metadata.title
    };
    let _ = writeln!(md, "# Compatibility: {title}\n");
    let _ = writeln!(
        md,
        "The same runbook, each target in a sandbox of its own, each package rehearsed on its own. \
         The matrix is **{}**: {}.\n",
        if outcome.green { "green" } else { "RED" },
        if outcome.green {
            "every target did what it was expected to"
        } else {
            "a target did not do what it was expected to (marked ✗ below)"
        }
    );
    if !outcome.proven_on.is_empty() {
        let _ = writeln!(md, "- **Proven on:** {}", outcome.proven_on.join(", "));
    }
    for n in &outcome.not_supported {
        let (name, why) = n.split_once(": ").unwrap_or((n, ""));
        let _ = writeln!(md, "- **Not supported on {name}**, because {why}");
    }
    md.push('\n');
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    md.push_str("| step |");
    for t in &outcome.targets {
        let _ = write!(md, " {} |", cell(&t.name));
    }
    md.push_str("\n|---|");
    for _ in &outcome.targets {
        md.push_str("---|");
    }
    md.push('\n');
    type Row = (&'static str, Box<dyn Fn(&TargetResult) -> String>);
    let rows: [Row; 4] = [
        (
            "target",
            Box::new(|t| {
                t.image
                    .clone()
                    .or_else(|| t.context.clone())
                    .unwrap_or_else(|| "local".into())
            }),
        ),
        ("os", Box::new(|t| t.os.clone())),
        (
            "tools",
            Box::new(|t| {
                t.tools
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ),
        (
            "expected",
            Box::new(|t| match t.expect {
                Expectation::Pass => "pass".into(),
                Expectation::Fail => "fail".into(),
            }),
        ),
    ];
    for (label, value) in &rows {
        let _ = write!(md, "| *{label}* |");
        for t in &outcome.targets {
            let _ = write!(md, " {} |", cell(&value(t)));
        }
        md.push('\n');
    }
    for (i, step) in runbook.steps.iter().enumerate() {
        let _ = write!(md, "| `{}` |", cell(&step.id));
        for t in &outcome.targets {
            let status = t.steps.get(i).map_or("", |c| c.status.as_str());
            let _ = write!(md, " {} |", cell(status));
        }
        md.push('\n');
    }
    md.push_str("| **verdict** |");
    for t in &outcome.targets {
        let mark = if t.as_expected { "✓" } else { "✗" };
        let rehearsed = match t.rehearsal {
            Some(Verdict::Passed) => ", rehearsed",
            Some(_) => ", rehearsal failed",
            None => "",
        };
        let _ = write!(md, " {mark} {}{rehearsed} |", t.verdict.as_str());
    }
    md.push_str("\n\n");
    for t in &outcome.targets {
        if let Some(cause) = &t.cause {
            let _ = writeln!(md, "- **{}**: {}", t.name, cell(cause));
        }
        for issue in &t.known_issues {
            let _ = writeln!(md, "- **{}**, known issue: {}", t.name, cell(issue));
        }
    }
    let _ = writeln!(
        md,
        "\nEach target's package (scripts, evidence, versions) is in its directory: {}.",
        outcome
            .targets
            .iter()
            .map(|t| format!("[`{}/`]({}/README.md)", t.package, t.package))
            .collect::<Vec<_>>()
            .join(", ")
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal, run by bash against a fake `initdb` of each version.
    #[test]
    fn the_scripts_refuse_a_version_the_matrix_found_unsupported_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let command = refusal_command("initdb --version", "17", "initdb 17 is unsupported");
        let run = |version: &str, allow: bool| {
            std::fs::write(
                dir.path().join("initdb"),
                format!("#!/bin/sh\necho 'initdb (PostgreSQL) {version}'\n"),
            )
            .unwrap();
            std::fs::set_permissions(
                dir.path().join("initdb"),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            let mut c = std::process::Command::new("bash");
            c.args(["-c", &command])
                .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()));
            if allow {
                c.env("RUNBOOK_ALLOW_UNSUPPORTED", "1");
            }
            let out = c.output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (ok, said) = run("17.2", false);
        assert!(!ok && said.contains("initdb 17 is unsupported"), "{said}");
        let (ok, said) = run("17.2", true);
        assert!(ok && said.contains("initdb 17 is unsupported"), "{said}");
        assert_eq!(run("15.18", false), (true, String::new()));
        assert_eq!(run("1.17.3", false), (true, String::new()));
    }
}
