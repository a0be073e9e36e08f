//! The operations under every front door: the `runbook` CLI, the MCP server and library
//! callers make the same decisions here, so the same runbook gives the same package
//! through any of them.
//!
//! - [`prepare`]: refuses a variable the runbook does not declare (naming the closest one)
//!   and carries every lesson of the library that applies, fitted to the runbook's
//!   variables (a lesson that does not fit is skipped with a warning, never refused);
//! - then the caller drives a [`Session`](crate::exec::Session) (a failed pre-flight makes
//!   the session itself refuse to run steps);
//! - [`finish`]: writes the package, rehearses it when the run passed, and writes it again
//!   with the rehearsal's evidence, always in that order.

use std::collections::BTreeMap;
use std::path::Path;

use runbook_core::report::Rehearsal;
use runbook_core::{Lesson, Runbook};

use crate::exec::{ExecError, Outcome, Provider};
use crate::render::RenderError;

/// Why an operation refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// A value was given for a variable the runbook does not declare.
    #[error("{0}")]
    UndeclaredVariable(String),
    /// The engine or the sandbox failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The package could not be rendered or written.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// A lesson of the library that applies to a runbook: its id, title and what it added,
/// or why it was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedLesson {
    /// The lesson's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Whether its pre-flight check now runs before step 1.
    pub preflight: bool,
    /// The steps that now carry its known issue.
    pub steps: Vec<String>,
    /// The check's variables renamed to the runbook's, as (the lesson's, the runbook's).
    pub renamed: Vec<(String, String)>,
    /// Why it was not carried (a role its check needs that no variable plays); the run
    /// goes on without it.
    pub skipped: Option<String>,
}

impl std::fmt::Display for CarriedLesson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(why) = &self.skipped {
            return write!(
                f,
                "warning: lesson `{}` ({}) applies but is skipped: {why}",
                self.id, self.title
            );
        }
        let mut what = Vec::new();
        if self.preflight {
            let mut check = "its pre-flight check runs before step 1".to_owned();
            if !self.renamed.is_empty() {
                let names: Vec<String> = self
                    .renamed
                    .iter()
                    .map(|(from, to)| format!("${to} for ${from}"))
                    .collect();
                check.push_str(&format!(" with {}", names.join(", ")));
            }
            what.push(check);
        }
        if !self.steps.is_empty() {
            what.push(format!("its known issue is on {}", self.steps.join(", ")));
        }
        write!(
            f,
            "lesson `{}` applies ({}): {}",
            self.id,
            self.title,
            what.join("; ")
        )
    }
}

/// Gets a runbook ready to run with `vars`: every name in `vars` must be a variable the
/// runbook declares (a misspelt `--var APP_PROT` would otherwise be ignored silently, and
/// the run would use the sandbox value), and every lesson of `lessons` that applies is
/// carried into it (its pre-flight check with the runbook's variable names, its known
/// issue on the matching steps). Returns the lessons carried, and those skipped because a
/// variable their check needs plays no role in this runbook (with `skipped` set: a
/// warning to show, not a refusal). Nothing is provisioned.
pub fn prepare(
    runbook: &mut Runbook,
    vars: &BTreeMap<String, String>,
    lessons: &[Lesson],
) -> Result<Vec<CarriedLesson>, OpsError> {
    check_vars(runbook, vars)?;
    Ok(carry_lessons(runbook, lessons))
}

/// Refuses a name in `vars` that `runbook` does not declare, naming the closest
/// declared one.
pub fn check_vars(runbook: &Runbook, vars: &BTreeMap<String, String>) -> Result<(), OpsError> {
    let declared: Vec<&str> = runbook.variables.iter().map(|v| v.name.as_str()).collect();
    let unknown: Vec<String> = vars
        .keys()
        .filter(|name| !declared.contains(&name.as_str()))
        .map(|name| match closest(name, &declared) {
            Some(near) => format!("`{name}` (did you mean `{near}`?)"),
            None => format!("`{name}`"),
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(OpsError::UndeclaredVariable(format!(
        "runbook `{}` declares no variable {}; it declares: {}",
        runbook.metadata.name,
        unknown.join(", no variable "),
        if declared.is_empty() {
            "none".to_owned()
        } else {
            declared.join(", ")
        }
    )))
}

/// The declared name nearest to `name`, when it is near enough to be a typo.
fn closest<'a>(name: &str, declared: &[&'a str]) -> Option<&'a str> {
    declared
        .iter()
        .map(|d| (edit_distance(name, d), *d))
        .filter(|(distance, d)| *distance <= 2.max(d.len() / 4))
        .min()
        .map(|(_, d)| d)
}

/// Levenshtein distance, on characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Carries every lesson that applies into the runbook; returns what each added, or why
/// it was skipped.
fn carry_lessons(runbook: &mut Runbook, lessons: &[Lesson]) -> Vec<CarriedLesson> {
    let mut carried = Vec::new();
    for lesson in lessons {
        if !lesson.applies_to(runbook) {
            continue;
        }
        let entry = |skipped| CarriedLesson {
            id: lesson.id.clone(),
            title: lesson.title.clone(),
            preflight: false,
            steps: Vec::new(),
            renamed: Vec::new(),
            skipped,
        };
        match runbook.adopt_lesson(lesson) {
            Ok(done) if done.is_empty() => {}
            Ok(done) => carried.push(CarriedLesson {
                preflight: done.preflight,
                steps: done.steps,
                renamed: done.renamed,
                ..entry(None)
            }),
            Err(misfit) => carried.push(entry(Some(misfit.problems.join("; ")))),
        }
    }
    carried
}

/// How to hand a finished run over.
#[derive(Debug, Clone, Copy)]
pub struct FinishRequest<'a> {
    /// The package's directory.
    pub out: &'a Path,
    /// Replace a package this library wrote there (and nobody changed since).
    pub force: bool,
    /// Rehearse the package when the run passed (its own scripts, in a fresh sandbox,
    /// with other values).
    pub rehearse: bool,
}

/// Where [`finish`] is, for a front door that reports progress.
#[derive(Debug)]
#[non_exhaustive]
pub enum FinishStage<'a> {
    /// The package of the sandbox run is written.
    Written(&'a Outcome),
    /// The rehearsal starts.
    Rehearsing,
    /// The rehearsal ended; the package is about to be written again with it.
    Rehearsed(&'a Rehearsal),
}

/// What was handed over.
#[derive(Debug)]
pub struct Handoff {
    /// The run, with its rehearsal when there was one.
    pub outcome: Outcome,
    /// The package's files, relative to its directory.
    pub files: Vec<String>,
}

impl Handoff {
    /// Whether the run passed, and its rehearsal too when there was one.
    pub fn passed(&self) -> bool {
        self.outcome.passed()
            && self
                .outcome
                .report
                .rehearsal
                .as_ref()
                .is_none_or(|r| r.verdict == runbook_core::report::Verdict::Passed)
    }
}

/// Writes the package of a finished run, then (when asked and the run passed) rehearses
/// it and writes it again with the rehearsal's evidence. A failed run is never
/// rehearsed: its package says what failed, and a rehearsal would only fail the same way.
/// `on` hears each stage.
pub async fn finish(
    provider: &dyn Provider,
    mut outcome: Outcome,
    request: FinishRequest<'_>,
    on: &mut (dyn FnMut(FinishStage<'_>) + Send),
) -> Result<Handoff, OpsError> {
    let package = crate::render_package(&outcome)?;
    package.write_to(request.out, request.force)?;
    on(FinishStage::Written(&outcome));
    if request.rehearse && outcome.passed() {
        on(FinishStage::Rehearsing);
        let rehearsal = crate::rehearse(
            provider,
            &outcome.runbook,
            &package,
            &outcome.values,
            &crate::RehearsalOptions::default(),
        )
        .await?;
        on(FinishStage::Rehearsed(&rehearsal));
        outcome.report.rehearsal = Some(rehearsal);
        // The package is ours and unchanged since a moment ago: it gains its evidence.
        let package = crate::render_package(&outcome)?;
        package.write_to(request.out, true)?;
        let files = package.paths().map(str::to_owned).collect();
        return Ok(Handoff { outcome, files });
    }
    let files = package.paths().map(str::to_owned).collect();
    Ok(Handoff { outcome, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_variable_names_the_closest_declared_one() {
        let runbook = runbook_core::from_yaml_str(
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: t }\nvariables:\n  - { name: APP_PORT, category: endpoint, sandbox: '1', production: p }\n  - { name: APP_DIR, category: other, sandbox: a, production: p }\nsteps:\n  - id: s\n    title: S\n    run: echo \"$APP_PORT $APP_DIR\"\n    readOnly: true\n    verify: [{ run: 'true' }]\n",
        )
        .unwrap();
        let vars = |n: &str| BTreeMap::from([(n.to_owned(), "9".to_owned())]);
        let err = check_vars(&runbook, &vars("APP_PROT"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`APP_PROT` (did you mean `APP_PORT`?)"),
            "{err}"
        );
        assert!(err.contains("it declares: APP_PORT, APP_DIR"), "{err}");
        let err = check_vars(&runbook, &vars("ZZZ")).unwrap_err().to_string();
        assert!(!err.contains("did you mean"), "{err}");
        check_vars(&runbook, &vars("APP_DIR")).unwrap();
    }

    #[test]
    fn a_lesson_that_does_not_fit_is_skipped_with_a_warning_not_refused() {
        let mut runbook = runbook_core::from_yaml_str(
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: t }\nvariables:\n  - { name: OUT, category: other, sandbox: a, production: p }\nsteps:\n  - id: s\n    title: S\n    run: touch \"$OUT\"\n    readOnly: true\n    verify: [{ run: 'true' }]\n",
        )
        .unwrap();
        let lesson = |id: &str, check: &str| {
            runbook_core::lesson_from_yaml_str(&format!(
                "apiVersion: runbook/v1\nkind: Lesson\nid: {id}\ntitle: T\norigin: {{ runbook: o, step: s }}\n\
                 applies: {{ tools: [{{ tool: touch }}] }}\npreflight: {{ run: '{check}' }}\n\
                 roles: [{{ variable: APP_PORT, category: endpoint, kind: port }}]\n"
            ))
            .unwrap()
        };
        let lessons = [
            lesson("needs-a-port", "! ss -ltn | grep -q :$APP_PORT"),
            lesson("needs-nothing", "test -n \"$OUT\""),
        ];
        let carried = prepare(&mut runbook, &BTreeMap::new(), &lessons).unwrap();
        assert_eq!(carried.len(), 2, "{carried:?}");
        let skipped = carried[0].to_string();
        assert!(
            skipped.starts_with("warning: lesson `needs-a-port`")
                && skipped.contains("`$APP_PORT`"),
            "{skipped}"
        );
        assert!(carried[1].skipped.is_none() && carried[1].preflight);
        assert_eq!(runbook.preflight.len(), 1);
        assert_eq!(
            runbook.preflight[0].lesson.as_deref(),
            Some("needs-nothing")
        );
    }
}
