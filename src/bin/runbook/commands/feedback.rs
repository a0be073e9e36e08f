//! `runbook feedback`: turn a feedback file from a failing target into a lesson, and
//! optionally amend a runbook to carry it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use runbook::Diagnostic;

use crate::cli::Feedback;
use crate::shared::{Failure, lessons_dir, parse_failure, write_new};

/// `runbook feedback FILE`: the lesson the flags describe, learnt from FILE.
pub fn exec(args: Feedback) -> Result<ExitCode, Failure> {
    let Feedback {
        file,
        lessons,
        title,
        id,
        check,
        expect,
        cause,
        fix,
        tool,
        error,
        commands,
        origin,
        runbook,
    } = args;
    let check = check.map(|c| expected_check(c, &expect)).transpose()?;
    let feedback = runbook::load_feedback(&file).map_err(|e| parse_failure(&e))?;
    let origin = origin_runbook(&file, &feedback, origin.as_deref(), runbook.as_deref())?;
    let draft = runbook::LessonDraft {
        id,
        title,
        check,
        cause,
        fix,
        tools: tool,
        commands,
        error,
        origin,
    };
    write_lesson(&file, &feedback, lessons, draft, runbook.as_deref())
}

/// The runbook the failing package was rendered from: `--origin`, else the package's own
/// `runbook.yaml` (the feedback file is `<package>/feedback/<file>`), else `--runbook`;
/// the last two only when they have the feedback's runbook name.
fn origin_runbook(
    file: &Path,
    feedback: &runbook::Feedback,
    origin: Option<&Path>,
    amend: Option<&Path>,
) -> Result<Option<runbook::Runbook>, Failure> {
    let name = &feedback.runbook.name;
    if let Some(path) = origin {
        let (rb, _) = runbook::load(path).map_err(|e| parse_failure(&e))?;
        if &rb.metadata.name != name {
            return Err(Failure(format!(
                "--origin {} is runbook `{}`, but the feedback is from runbook `{name}`",
                path.display(),
                rb.metadata.name
            )));
        }
        return Ok(Some(rb));
    }
    let packaged = file
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "feedback"))
        .and_then(Path::parent)
        .map(|p| p.join("runbook.yaml"));
    for path in packaged.iter().map(PathBuf::as_path).chain(amend) {
        // A file that does not load is not the origin; the lesson is made without it.
        if let Ok((rb, _)) = runbook::load(path)
            && &rb.metadata.name == name
        {
            return Ok(Some(rb));
        }
    }
    Ok(None)
}

/// A check of `command` with the `--expect KIND:VALUE` conditions.
fn expected_check(command: String, expect: &[String]) -> Result<runbook::Check, Failure> {
    let mut check = runbook::Check::command(command);
    for e in expect {
        let bad = || {
            Failure(format!(
                "--expect `{e}`: use exit-code:N, stdout-equals:TEXT, stdout-contains:TEXT, \
                 stdout-matches:REGEX, or the same for stderr"
            ))
        };
        let (kind, value) = e.split_once(':').ok_or_else(bad)?;
        check = match kind {
            "exit-code" => check.exit_code(value.trim().parse().map_err(|_| bad())?),
            "stdout-equals" => check.stdout_equals(value),
            "stdout-contains" => check.stdout_contains(value),
            "stdout-matches" => check.stdout_matches(value),
            "stderr-equals" => check.stderr_equals(value),
            "stderr-contains" => check.stderr_contains(value),
            "stderr-matches" => check.stderr_matches(value),
            _ => return Err(bad()),
        };
    }
    Ok(check)
}

/// The lesson into the library, and with `--runbook` (`amend`) into that runbook.
fn write_lesson(
    file: &Path,
    feedback: &runbook::Feedback,
    lessons: Option<PathBuf>,
    draft: runbook::LessonDraft,
    amend: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let dir = lessons_dir(lessons).ok_or_else(|| {
        Failure("say where the lessons library is: --lessons DIR (or $RUNBOOK_LESSONS)".into())
    })?;
    let has_origin = draft.origin.is_some();
    let lesson = runbook::Lesson::from_feedback(feedback, draft)?;
    let unstated = lesson.check_variables();
    if !has_origin && !unstated.is_empty() {
        eprintln!(
            "warning: the runbook `{}` was not found (give --origin FILE): the roles of ${} are \
             not stated, so the lesson fits only runbooks that declare them by these names",
            feedback.runbook.name,
            unstated.join(", $")
        );
    }
    // The library must stay readable: refuse a lesson whose id is taken.
    let existing = runbook::load_lessons(&dir).map_err(|e| parse_failure(&e))?;
    let path = dir.join(format!("{}.yaml", lesson.id));
    if existing.iter().any(|l| l.id == lesson.id) || path.exists() {
        return Err(Failure(format!(
            "the library already has a lesson `{}` ({}): give this one another --id",
            lesson.id,
            path.display()
        )));
    }
    // A runbook that cannot carry the lesson is refused before anything is written.
    let amended = match amend {
        None => None,
        Some(rb_path) => {
            let (mut rb, _) = runbook::load(rb_path).map_err(|e| parse_failure(&e))?;
            let done = rb.adopt_lesson(&lesson).map_err(|misfit| {
                Failure(format!(
                    "{} cannot carry the lesson; nothing was written: {misfit}",
                    rb_path.display()
                ))
            })?;
            if done.is_empty() {
                eprintln!(
                    "{} already carries lesson `{}`",
                    rb_path.display(),
                    lesson.id
                );
                None
            } else {
                rb.bump_minor_version()?;
                let errors: Vec<String> = rb
                    .lint()
                    .into_iter()
                    .filter(Diagnostic::is_error)
                    .map(|d| d.to_string())
                    .collect();
                if !errors.is_empty() {
                    return Err(Failure(format!(
                        "{} cannot carry the lesson; nothing was written:\n{}",
                        rb_path.display(),
                        errors.join("\n")
                    )));
                }
                Some((rb_path, rb, done))
            }
        }
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure(format!("cannot create {}: {e}", dir.display())))?;
    let text = format!(
        "# Learnt from {}; written by `runbook feedback`.\n{}",
        file.display(),
        runbook::to_yaml(&lesson)
    );
    write_new(&path, &text)?;
    println!("lesson `{}` written to {}", lesson.id, path.display());
    for role in &lesson.roles {
        println!("  role: {}", role.describe());
    }
    if let Some(pattern) = &lesson.applies.commands {
        println!("  applies to steps whose command matches: {pattern}");
    }
    if let Some((rb_path, rb, done)) = amended {
        std::fs::write(rb_path, runbook::to_yaml_string(&rb))
            .map_err(|e| Failure(format!("cannot write {}: {e}", rb_path.display())))?;
        let mut what = Vec::new();
        if done.preflight {
            what.push(format!("pre-flight check `{}`", lesson.id));
        }
        if !done.steps.is_empty() {
            what.push(format!("known issue on {}", done.steps.join(", ")));
        }
        println!(
            "{} amended: {}; version {}",
            rb_path.display(),
            what.join(", "),
            rb.metadata.version
        );
    }
    Ok(ExitCode::SUCCESS)
}
