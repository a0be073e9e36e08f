//! Lessons: a production failure turned into a pre-flight check and a known issue for
//! every similar runbook.

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::feedback::{Feedback, Phase, normalise_error};
use crate::lint::{Diagnostic, Rule};
use crate::role::{LessonRole, check_variables, map_roles, rename_check, rename_words};
use crate::{ApiVersion, Check, KnownIssue, PreflightCheck, Runbook};

/// The kind of a lesson document; always `Lesson`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum LessonKind {
    /// A lesson.
    #[default]
    Lesson,
}

/// What a production failure taught: when it applies, and what a runbook should do about
/// it (a pre-flight check, a known issue on the matching steps, or both).
///
/// A lessons library is a directory of YAML files, one lesson a file (`<id>.yaml`):
/// see [`crate::load_lessons`].
///
/// ```
/// use runbook_core::{Check, Lesson, Runbook, Step};
/// let lesson: Lesson = runbook_core::lesson_from_yaml_str(r#"
/// apiVersion: runbook/v1
/// kind: Lesson
/// id: pg-port-taken
/// title: The server port may already be taken on the target
/// origin: { runbook: postgres, step: start-server, error: "could not bind IPv4 address" }
/// applies: { tools: [{ tool: pg_ctl, version: ">=15, <16" }] }
/// preflight: { run: "! (exec 3<>/dev/tcp/127.0.0.1/$PGPORT) 2>/dev/null" }
/// "#)?;
/// let other = Runbook::builder("pg-replica")
///     .step(Step::new("start", "Start").run("pg_ctl -D data start").read_only()
///         .verify(Check::command("pg_isready")))
///     .build_unchecked();
/// assert!(lesson.applies_to(&other));
/// assert!(!lesson.is_carried_by(&other));
/// # Ok::<(), runbook_core::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lesson {
    /// Always `runbook/v1`.
    pub api_version: ApiVersion,
    /// Always `Lesson`.
    pub kind: LessonKind,
    /// A lowercase slug, unique in the library; also the file name (`<id>.yaml`).
    pub id: String,
    /// What was learnt, in one line.
    pub title: String,
    /// The failure it was learnt from.
    pub origin: LessonOrigin,
    /// When it applies; every matcher given must hold (none: every runbook).
    #[serde(default, skip_serializing_if = "Applies::is_empty")]
    pub applies: Applies,
    /// A check to run before step 1 changes anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Check>,
    /// What each variable the check uses stands for, so that a runbook naming its
    /// variables otherwise can carry it (see [`Lesson::fit`]). Lessons written before
    /// roles have none: they fit the runbooks that declare the check's variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<LessonRole>,
    /// The error, its cause and the fix, for the matching steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_issue: Option<KnownIssue>,
}

/// Where a lesson was learnt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LessonOrigin {
    /// The runbook's name.
    pub runbook: String,
    /// The runbook's version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The step that failed.
    pub step: String,
    /// The script that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The error, as the target printed it (secrets masked).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The package id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub package: String,
    /// When it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time: String,
}

impl LessonOrigin {
    /// One line: "postgres 1.0.0, step `start-server` (deploy): could not bind …".
    pub fn describe(&self) -> String {
        let mut out = self.runbook.clone();
        if !self.version.is_empty() {
            out.push(' ');
            out.push_str(&self.version);
        }
        out.push_str(&format!(", step `{}`", self.step));
        if let Some(p) = self.phase {
            out.push_str(&format!(" ({p} on a target)"));
        }
        if !self.error.is_empty() {
            out.push_str(": ");
            out.push_str(&self.error);
        }
        out
    }
}

/// When a lesson applies to a runbook.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Applies {
    /// The runbook uses one of these tools (a prerequisite, or a command its steps
    /// invoke), in a version range that overlaps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolMatcher>,
    /// The runbook targets this platform (`linux`, `kubernetes`); a runbook that names
    /// none matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// A regular expression (Rust `regex` syntax) that some step or rollback command matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<String>,
}

impl Applies {
    /// Whether no matcher is set.
    pub fn is_empty(&self) -> bool {
        *self == Applies::default()
    }
}

/// A tool, and optionally the versions a lesson applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolMatcher {
    /// The command name (`pg_ctl`).
    pub tool: String,
    /// A semver requirement (`>=15, <16`); matches a runbook whose own requirement on
    /// the tool overlaps it, or that declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// What a human or an agent knows about a failure, to make a lesson of it with
/// [`Lesson::from_feedback`]. Everything is optional but the lesson needs a pre-flight
/// check or a cause and a fix.
#[derive(Debug, Clone, Default)]
pub struct LessonDraft {
    /// The lesson id (default: a slug of the title).
    pub id: Option<String>,
    /// The title (default: the step and the error).
    pub title: Option<String>,
    /// The pre-flight check that would have caught it.
    pub check: Option<Check>,
    /// Why it happened.
    pub cause: Option<String>,
    /// What fixes it.
    pub fix: Option<String>,
    /// The tools it applies to, instead of those the failed command invokes.
    pub tools: Vec<String>,
    /// A regular expression on step commands: where it applies and which steps get the
    /// known issue (default: the failing command's tool and subcommand, `\bpg_ctl\b[^\n]*\bstart\b`).
    pub commands: Option<String>,
    /// The error, instead of the line of the feedback that reads like one (normalised
    /// either way: see [`normalise_error`]).
    pub error: Option<String>,
    /// The runbook the failing package was rendered from: the roles of the check's
    /// variables are read from it. Without it the lesson states no roles and fits only
    /// runbooks that declare the check's variables by the same names.
    pub origin: Option<Runbook>,
}

/// A lesson that could not be made or is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LessonError(pub String);

impl Lesson {
    /// Makes a lesson of a feedback file: its origin is the failure; it applies to
    /// runbooks using the tools the failed command invokes (only the runbook's
    /// prerequisites among them, when there are any), in the versions the runbook required, on the
    /// same platform; it carries the draft's check and known issue.
    ///
    /// ```
    /// use runbook_core::{Check, LessonDraft, Lesson};
    /// let feedback = runbook_core::feedback_from_yaml_str(
    ///     "apiVersion: runbook/v1\nkind: Feedback\nrunbook: {name: web, platform: linux}\n\
    ///      phase: deploy\nstep: start\ncommand: mkdir -p run && nginx -c \"$CONF\"\nexitCode: 1\n\
    ///      stderr: ['bind() to 0.0.0.0:80 failed (98: Address already in use)']\n\
    ///      target: {tools: [{tool: nginx, required: '^1.22', found: 1.22.1}]}\n")?;
    /// let lesson = Lesson::from_feedback(&feedback, LessonDraft {
    ///     title: Some("Port 80 may be taken".into()),
    ///     check: Some(Check::command("! ss -Hltn 'sport = :80' | grep -q .")),
    ///     ..LessonDraft::default()
    /// })?;
    /// assert_eq!(lesson.id, "port-80-may-be-taken");
    /// assert_eq!(lesson.applies.tools[0].tool, "nginx");
    /// assert_eq!(lesson.applies.tools[0].version.as_deref(), Some("^1.22"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_feedback(feedback: &Feedback, draft: LessonDraft) -> Result<Lesson, LessonError> {
        let error = normalise_error(&draft.error.unwrap_or_else(|| feedback.error_excerpt()));
        if error.is_empty() {
            return Err(LessonError(
                "the error is empty once timestamps and ids are removed: give it with --error"
                    .into(),
            ));
        }
        let known_issue = match (draft.cause, draft.fix) {
            (Some(cause), Some(fix)) => Some(KnownIssue::new(error.clone(), cause, fix)),
            (None, None) => None,
            _ => {
                return Err(LessonError(
                    "a known issue needs both a cause and a fix (--cause and --fix)".into(),
                ));
            }
        };
        if draft.check.is_none() && known_issue.is_none() {
            return Err(LessonError(
                "a lesson needs a pre-flight check (--check) or a cause and a fix (--cause, --fix): \
                 say what would have caught the failure, or how to get past it"
                    .into(),
            ));
        }
        let title = draft.title.unwrap_or_else(|| {
            format!(
                "{} step `{}` failed on a target: {}",
                feedback.runbook.name,
                feedback.step,
                shorten(&error, 80)
            )
        });
        let id = draft.id.unwrap_or_else(|| slugify(&title));
        let tools = if draft.tools.is_empty() {
            let invoked = invoked_tools(&feedback.command);
            let required: Vec<String> = invoked
                .iter()
                .filter(|t| feedback.target.tools.iter().any(|f| &f.tool == *t))
                .cloned()
                .collect();
            if required.is_empty() {
                invoked
            } else {
                required
            }
        } else {
            draft.tools
        };
        let commands = match draft.commands {
            Some(re) => {
                // A pattern the failing command does not match would not even bring the
                // lesson back to the runbook it was learnt from.
                let compiled = Regex::new(&re).map_err(|e| {
                    LessonError(format!(
                        "--commands `{re}` is not a regular expression: {e}"
                    ))
                })?;
                if !compiled.is_match(&feedback.command) {
                    return Err(LessonError(format!(
                        "--commands `{re}` does not match the command that failed ({}): the lesson \
                         would apply nowhere it is needed",
                        shorten(&feedback.command, 120)
                    )));
                }
                Some(re)
            }
            None => command_pattern(&feedback.command, &tools),
        };
        let roles = match (&draft.origin, &draft.check) {
            (Some(origin), Some(check)) => check_variables(check)
                .iter()
                .map(|name| {
                    LessonRole::of(origin, name).ok_or_else(|| {
                        LessonError(format!(
                            "the check uses `${name}`, which runbook `{}` does not declare: use its \
                             variables' names (it declares: {})",
                            origin.metadata.name,
                            origin
                                .variables
                                .iter()
                                .map(|v| v.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        let lesson = Lesson {
            api_version: ApiVersion::V1,
            kind: LessonKind::Lesson,
            id,
            title,
            origin: LessonOrigin {
                runbook: feedback.runbook.name.clone(),
                version: feedback.runbook.version.clone(),
                step: feedback.step.clone(),
                phase: Some(feedback.phase),
                error,
                package: feedback.package.clone(),
                time: feedback.time.clone(),
            },
            applies: Applies {
                tools: tools
                    .into_iter()
                    .map(|tool| ToolMatcher {
                        version: feedback
                            .target
                            .tools
                            .iter()
                            .find(|f| f.tool == tool && !f.required.is_empty())
                            .map(|f| f.required.clone()),
                        tool,
                    })
                    .collect(),
                platform: feedback.runbook.platform.clone(),
                commands,
            },
            preflight: draft.check,
            roles,
            known_issue,
        };
        match lesson.problems().first() {
            Some(p) => Err(LessonError(p.clone())),
            None => Ok(lesson),
        }
    }

    /// What is wrong with the lesson (empty when it is valid).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !crate::lint::is_slug(&self.id) {
            out.push(format!(
                "lesson id `{}` is not a lowercase slug (e.g. `pg-port-taken`)",
                self.id
            ));
        }
        if self.title.trim().is_empty() {
            out.push("the lesson has no title".into());
        }
        if self.preflight.is_none() && self.known_issue.is_none() {
            out.push(
                "the lesson has neither `preflight` nor `knownIssue`: it would change nothing"
                    .into(),
            );
        }
        if let Some(re) = &self.applies.commands
            && let Err(e) = Regex::new(re)
        {
            out.push(format!(
                "`applies.commands` is not a valid regular expression: {e}"
            ));
        }
        for (i, r) in self.roles.iter().enumerate() {
            if self.roles[..i].iter().any(|o| o.variable == r.variable) {
                out.push(format!("`roles` names `{}` twice", r.variable));
            }
        }
        for t in &self.applies.tools {
            if let Some(v) = &t.version
                && semver::VersionReq::parse(v).is_err()
            {
                out.push(format!(
                    "`applies.tools` {}: `{v}` is not a semver requirement",
                    t.tool
                ));
            }
        }
        out
    }

    /// Whether the lesson applies to `runbook`: every matcher it has holds.
    pub fn applies_to(&self, runbook: &Runbook) -> bool {
        let a = &self.applies;
        let platform = match (&a.platform, &runbook.target.platform) {
            (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
            _ => true,
        };
        let tools = a.tools.is_empty() || a.tools.iter().any(|t| uses_tool(runbook, t));
        let commands = match a.commands.as_deref().map(Regex::new) {
            None => true,
            Some(Ok(re)) => commands_of(runbook).any(|c| re.is_match(c)),
            Some(Err(_)) => false,
        };
        platform && tools && commands
    }

    /// The indexes of the steps the lesson's known issue belongs to: in the runbook it
    /// was learnt from, the step that failed (and no other: a step that runs the same tool
    /// did not fail); elsewhere, the steps whose command or rollback matches its
    /// `applies.commands` pattern, or for a lesson without one (written before patterns),
    /// those that invoke one of its tools.
    pub fn matching_steps(&self, runbook: &Runbook) -> Vec<usize> {
        if runbook.metadata.name == self.origin.runbook
            && let Some(i) = runbook.steps.iter().position(|s| s.id == self.origin.step)
        {
            return vec![i];
        }
        let re = self
            .applies
            .commands
            .as_deref()
            .and_then(|r| Regex::new(r).ok());
        runbook
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                let mut commands = std::iter::once(&s.run).chain(s.rollback.iter().map(|r| &r.run));
                match &re {
                    Some(re) => commands.any(|c| re.is_match(c)),
                    None => commands.any(|c| {
                        let invoked = invoked_tools(c);
                        self.applies.tools.iter().any(|t| invoked.contains(&t.tool))
                    }),
                }
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The variables the lesson's check uses, each once.
    pub fn check_variables(&self) -> Vec<String> {
        self.preflight
            .as_ref()
            .map_or_else(Vec::new, check_variables)
    }

    /// The lesson as `runbook` carries it: each variable its check uses mapped to the
    /// runbook's variable that plays the same role ([`LessonRole`]), the check's references
    /// and the names in its title, cause and fix rewritten. Refused, naming each role no
    /// variable plays (or several could), when the runbook cannot run the check.
    pub fn fit(&self, runbook: &Runbook) -> Result<Fit, LessonMisfit> {
        let names =
            map_roles(&self.roles, &self.check_variables(), runbook).map_err(|problems| {
                LessonMisfit {
                    lesson: self.id.clone(),
                    title: self.title.clone(),
                    problems,
                }
            })?;
        let renamed: BTreeMap<String, String> =
            names.into_iter().filter(|(from, to)| from != to).collect();
        let mut lesson = self.clone();
        if !renamed.is_empty() {
            lesson.title = rename_words(&self.title, &renamed);
            lesson.preflight = self.preflight.as_ref().map(|c| rename_check(c, &renamed));
            lesson.known_issue = self.known_issue.as_ref().map(|k| KnownIssue {
                cause: rename_words(&k.cause, &renamed),
                fix: rename_words(&k.fix, &renamed),
                ..k.clone()
            });
        }
        Ok(Fit {
            lesson,
            renamed: renamed.into_iter().collect(),
        })
    }

    /// Whether `runbook` already carries the lesson: its pre-flight item (when it has
    /// one) and its known issue on a matching step (when it has one and a step matches).
    pub fn is_carried_by(&self, runbook: &Runbook) -> bool {
        let mine = |l: &Option<String>| l.as_deref() == Some(self.id.as_str());
        let preflight =
            self.preflight.is_none() || runbook.preflight.iter().any(|p| mine(&p.lesson));
        let steps = self.matching_steps(runbook);
        let issue = self.known_issue.is_none()
            || steps.is_empty()
            || steps.iter().any(|&i| {
                runbook.steps[i]
                    .known_issues
                    .iter()
                    .any(|k| mine(&k.lesson))
            });
        preflight && issue
    }

    /// The pre-flight item that carries the lesson's check.
    pub fn preflight_item(&self) -> Option<PreflightCheck> {
        self.preflight.as_ref().map(|check| PreflightCheck {
            id: self.id.clone(),
            title: self.title.clone(),
            check: check.clone(),
            lesson: Some(self.id.clone()),
            origin: Some(self.origin.describe()),
        })
    }
}

/// A lesson as a runbook carries it: see [`Lesson::fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The lesson, with the runbook's variable names.
    pub lesson: Lesson,
    /// Each variable of the check renamed, as (the lesson's name, the runbook's name).
    pub renamed: Vec<(String, String)>,
}

/// A lesson a runbook cannot carry: a variable its check needs plays no role there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lesson `{lesson}` ({title}) does not fit this runbook: {}", problems.join("; "))]
pub struct LessonMisfit {
    /// The lesson's id.
    pub lesson: String,
    /// Its title.
    pub title: String,
    /// Each role that cannot be mapped, in one sentence.
    pub problems: Vec<String>,
}

/// What [`Runbook::adopt_lesson`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Whether a pre-flight item was added.
    pub preflight: bool,
    /// The steps that received the known issue.
    pub steps: Vec<String>,
    /// The check's variables renamed to the runbook's, as (the lesson's, the runbook's).
    pub renamed: Vec<(String, String)>,
}

impl Adoption {
    /// Whether nothing changed (the runbook already carried the lesson).
    pub fn is_empty(&self) -> bool {
        !self.preflight && self.steps.is_empty()
    }
}

impl Runbook {
    /// Carries a lesson, fitted to this runbook's variables ([`Lesson::fit`]): its check
    /// joins `preflight` (once), its known issue goes to the matching steps (once each).
    /// A lesson that does not fit changes nothing. The version is left alone; see
    /// [`Runbook::bump_minor_version`].
    pub fn adopt_lesson(&mut self, lesson: &Lesson) -> Result<Adoption, LessonMisfit> {
        let Fit { lesson, renamed } = lesson.fit(self)?;
        let lesson = &lesson;
        let mut done = Adoption::default();
        let mine = |l: &Option<String>| l.as_deref() == Some(lesson.id.as_str());
        if let Some(item) = lesson.preflight_item()
            && !self.preflight.iter().any(|p| mine(&p.lesson))
        {
            // The id must stay unique in the checklist.
            let mut item = item;
            let mut n = 2;
            while self.preflight.iter().any(|p| p.id == item.id) {
                item.id = format!("{}-{n}", lesson.id);
                n += 1;
            }
            self.preflight.push(item);
            done.preflight = true;
        }
        if let Some(issue) = &lesson.known_issue {
            for i in lesson.matching_steps(self) {
                let step = &mut self.steps[i];
                if !step.known_issues.iter().any(|k| mine(&k.lesson)) {
                    step.known_issues.push(KnownIssue {
                        lesson: Some(lesson.id.clone()),
                        ..issue.clone()
                    });
                    done.steps.push(step.id.clone());
                }
            }
        }
        if !done.is_empty() {
            done.renamed = renamed;
        }
        Ok(done)
    }

    /// Bumps the minor version (`1.0.3` -> `1.1.0`; none -> `0.1.0`).
    pub fn bump_minor_version(&mut self) -> Result<(), LessonError> {
        let v = &self.metadata.version;
        let next = if v.is_empty() {
            semver::Version::new(0, 1, 0)
        } else {
            let old = crate::prerequisite::parse_lenient(v).ok_or_else(|| {
                LessonError(format!(
                    "the runbook's version `{v}` is not a semver version: set `metadata.version` (e.g. 1.0.0)"
                ))
            })?;
            semver::Version::new(old.major, old.minor + 1, 0)
        };
        self.metadata.version = next.to_string();
        Ok(())
    }
}

/// An `unaddressed-lesson` warning for each lesson that applies to `runbook` and that it
/// does not carry: how to carry it (its check with this runbook's variable names), or why
/// it cannot be carried (a role no variable plays), in which case `run --lessons` skips it.
pub fn unaddressed_lessons(runbook: &Runbook, lessons: &[Lesson]) -> Vec<Diagnostic> {
    lessons
        .iter()
        .filter(|l| l.applies_to(runbook) && !l.is_carried_by(runbook))
        .map(|l| {
            // The step it is about when one matches (a place in the file to point at).
            let path = match l.matching_steps(runbook).first() {
                Some(i) => format!("steps[{i}]"),
                None if !runbook.preflight.is_empty() => "preflight".to_owned(),
                None => "metadata".to_owned(),
            };
            let learnt = format!("(learnt from {})", l.origin.describe());
            let fit = match l.fit(runbook) {
                Ok(fit) => fit,
                Err(misfit) => {
                    return Diagnostic::new(
                        Rule::UnaddressedLesson,
                        path,
                        format!(
                            "lesson `{}` applies to this runbook but cannot be carried: {} {learnt}; \
                             `runbook run --lessons` skips it",
                            l.id,
                            misfit.problems.join("; ")
                        ),
                        "declare a variable that plays the role (its category, kind and tools), \
                         or carry the check by hand with this runbook's names and `lesson: <id>`",
                    );
                }
            };
            let carried = &fit.lesson;
            let mut help = String::from("carry it: ");
            if let Some(check) = &carried.preflight {
                help.push_str(&format!(
                    "add to `preflight:` an item with `lesson: {}` and its check ({}{}){}; ",
                    l.id,
                    check.label(),
                    if check.expect == crate::Expect::default() {
                        String::new()
                    } else {
                        format!(", expect {}", check.expectation())
                    },
                    if fit.renamed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " with this runbook's variables ({})",
                            fit.renamed
                                .iter()
                                .map(|(from, to)| format!("{to} for {from}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ));
            }
            if l.known_issue.is_some() {
                help.push_str(&format!(
                    "add its known issue to the matching steps with `lesson: {}`; ",
                    l.id
                ));
            }
            help.push_str(
                "`runbook run --lessons DIR` carries it into the package without editing the file",
            );
            Diagnostic::new(
                Rule::UnaddressedLesson,
                path,
                format!(
                    "lesson `{}` applies to this runbook: {} {learnt}",
                    l.id, carried.title
                ),
                help,
            )
        })
        .collect()
}

/// The pattern of the steps a failure is about: the first of `tools` the failing command
/// invokes, and its subcommand (the bare word right after it, `helm upgrade`, else the
/// last bare word of that simple command, `pg_ctl … start`): `\bpg_ctl\b[^\n]*\bstart\b`.
/// `None` when the command invokes none of them.
fn command_pattern(command: &str, tools: &[String]) -> Option<String> {
    let spaced = command
        .replace("$(", " ; ")
        .replace(['`', ';', '|', '&', '\n', '(', ')'], " ; ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let simple: Vec<&[&str]> = words.split(|w| *w == ";").collect();
    let bare = |w: &&&str| {
        let mut chars = w.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    for tool in tools {
        for words in &simple {
            let Some(at) = words
                .iter()
                .position(|w| w.rsplit('/').next() == Some(tool.as_str()))
            else {
                continue;
            };
            let after = &words[at + 1..];
            let sub = after
                .first()
                .filter(|w| bare(w))
                .or_else(|| after.iter().rev().find(|w| bare(w)));
            let mut pattern = format!(r"\b{}\b", regex::escape(tool));
            if let Some(sub) = sub {
                pattern.push_str(&format!(r"[^\n]*\b{}\b", regex::escape(sub)));
            }
            return Some(pattern);
        }
    }
    None
}

fn uses_tool(runbook: &Runbook, matcher: &ToolMatcher) -> bool {
    let declared = runbook
        .prerequisites
        .iter()
        .find(|p| p.tool == matcher.tool);
    let invoked = commands_of(runbook).any(|c| invoked_tools(c).contains(&matcher.tool));
    if declared.is_none() && !invoked {
        return false;
    }
    match (
        matcher.version.as_deref().map(semver::VersionReq::parse),
        declared.map(|p| p.requirement()),
    ) {
        (Some(Ok(want)), Some(Ok(have))) => crate::prerequisite::overlaps(&want, &have),
        // The runbook says nothing about the version: the lesson may apply.
        _ => true,
    }
}

fn commands_of(runbook: &Runbook) -> impl Iterator<Item = &String> {
    runbook
        .steps
        .iter()
        .flat_map(|s| std::iter::once(&s.run).chain(s.rollback.iter().map(|r| &r.run)))
}

/// Shell words that start a command but are not the tool it runs.
const PREFIXES: &[&str] = &[
    "sudo", "env", "exec", "command", "nohup", "time", "nice", "setsid", "xargs", "then", "do",
    "else", "elif", "if", "while", "until", "!", "{", "(",
];

/// Builtins, keywords and ubiquitous utilities: never the tool a lesson is about.
const BUILTINS: &[&str] = &[
    "echo", "printf", "test", "[", "[[", "cd", "export", "set", "unset", "true", "false", "read",
    "local", "return", "exit", "shift", "source", ".", "eval", "wait", "trap", ":", "let",
    "declare", "fi", "done", "esac", "}", ")", "for", "case", "in", "function", "sleep", "cat",
];

/// The tools a shell command invokes, in order, each once: the first word of every simple
/// command (after `;`, `&&`, `||`, `|`, `&`, a newline, `$(` or a keyword), without
/// assignments, `sudo`/`env`/`timeout N` prefixes, builtins and paths (`/usr/bin/psql` is
/// `psql`). A heuristic, not a shell parser: it reads what runbooks usually write.
///
/// ```
/// let tools = runbook_core::invoked_tools("mkdir -p \"$D\" && PGPORT=1 sudo -u postgres pg_ctl start | tee log\nhelm upgrade x");
/// assert_eq!(tools, ["mkdir", "pg_ctl", "tee", "helm"]);
/// ```
pub fn invoked_tools(command: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut at_start = true;
    let mut skip_options = false;
    let mut timeout_arg = false;
    let spaced = without_quoted(&without_heredocs(&command.replace("\\\n", " ")))
        .replace("$(", " ; ")
        .replace(['`', ';', '|', '&', '\n', '(', ')'], " ; ");
    for word in spaced.split_whitespace() {
        if word == ";" {
            at_start = true;
            skip_options = false;
            timeout_arg = false;
            continue;
        }
        if !at_start {
            continue;
        }
        let word = word.trim_matches(|c| c == '"' || c == '\'');
        if skip_options && word.starts_with('-') {
            // `sudo -u postgres` and the like: the option's value is skipped too.
            if matches!(word, "-u" | "-g" | "-n" | "-C") {
                timeout_arg = true;
            }
            continue;
        }
        if timeout_arg {
            timeout_arg = false;
            continue;
        }
        if word.is_empty()
            || (word.contains('=') && !word.starts_with('='))
            || word.starts_with('$')
            || PREFIXES.contains(&word)
        {
            skip_options = matches!(word, "sudo" | "env" | "nice" | "xargs");
            continue;
        }
        if word == "timeout" {
            skip_options = true;
            timeout_arg = true;
            continue;
        }
        at_start = false;
        skip_options = false;
        if word.starts_with(['-', '\\', '*', '<', '>']) {
            // An option or a redirection left at the start of a line: not a tool.
            continue;
        }
        let tool = word.rsplit('/').next().unwrap_or(word);
        if !tool.is_empty() && !BUILTINS.contains(&tool) && !out.iter().any(|t| t == tool) {
            out.push(tool.to_owned());
        }
    }
    out
}

/// `command` without the bodies of its here-documents (`<<'SQL'` … `SQL`): their lines
/// are input, not commands.
fn without_heredocs(command: &str) -> String {
    let mut out = String::with_capacity(command.len());
    let mut until: Option<String> = None;
    for line in command.lines() {
        if let Some(end) = &until {
            if line.trim() == end {
                until = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if let Some(at) = line.find("<<")
            && !line[at..].starts_with("<<<")
        {
            let word: String = line[at + 2..]
                .trim_start_matches('-')
                .trim_start()
                .trim_start_matches(['\'', '"'])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() {
                until = Some(word);
            }
        }
    }
    out
}

/// `command` with the text of its single-quoted strings removed (`-c 'CREATE TABLE t
/// (id int); DROP …'` is an argument, not commands); the quotes stay.
fn without_quoted(command: &str) -> String {
    let mut out = String::with_capacity(command.len());
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in command.chars() {
        if single {
            if c == '\'' {
                single = false;
                out.push(c);
            }
            continue;
        }
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            double = !double;
        } else if c == '\'' && !double {
            single = true;
        }
        out.push(c);
    }
    out
}

/// A lowercase slug of a title: `Port 80 may be taken!` -> `port-80-may-be-taken`.
pub fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 60 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "lesson".into()
    } else {
        slug
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}
