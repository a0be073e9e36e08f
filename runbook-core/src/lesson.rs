//! Lessons: a production failure turned into a pre-flight check and a known issue for
//! every similar runbook.

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::feedback::{Feedback, Phase};
use crate::lint::{Diagnostic, Rule};
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
    /// A regular expression on step commands, to narrow where it applies.
    pub commands: Option<String>,
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
        let error = feedback.error_excerpt();
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
                commands: draft.commands,
            },
            preflight: draft.check,
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

    /// The indexes of the steps the lesson's known issue belongs to: those whose command
    /// or rollback invokes one of its tools or matches its pattern, and in the runbook it
    /// was learnt from, the step that failed.
    pub fn matching_steps(&self, runbook: &Runbook) -> Vec<usize> {
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
                let commands = || std::iter::once(&s.run).chain(s.rollback.iter().map(|r| &r.run));
                (runbook.metadata.name == self.origin.runbook && s.id == self.origin.step)
                    || re
                        .as_ref()
                        .is_some_and(|re| commands().any(|c| re.is_match(c)))
                    || (re.is_none()
                        && commands().any(|c| {
                            let invoked = invoked_tools(c);
                            self.applies.tools.iter().any(|t| invoked.contains(&t.tool))
                        }))
            })
            .map(|(i, _)| i)
            .collect()
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

/// What [`Runbook::adopt_lesson`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Whether a pre-flight item was added.
    pub preflight: bool,
    /// The steps that received the known issue.
    pub steps: Vec<String>,
}

impl Adoption {
    /// Whether nothing changed (the runbook already carried the lesson).
    pub fn is_empty(&self) -> bool {
        !self.preflight && self.steps.is_empty()
    }
}

impl Runbook {
    /// Carries a lesson: its check joins `preflight` (once), its known issue goes to the
    /// matching steps (once each). The version is left alone; see
    /// [`Runbook::bump_minor_version`].
    pub fn adopt_lesson(&mut self, lesson: &Lesson) -> Adoption {
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
        done
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
/// does not carry.
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
            let mut help = String::from("carry it: ");
            if let Some(check) = &l.preflight {
                help.push_str(&format!(
                    "add to `preflight:` an item with `lesson: {}` and its check ({}{}); ",
                    l.id,
                    check.label(),
                    if check.expect == crate::Expect::default() {
                        String::new()
                    } else {
                        format!(", expect {}", check.expectation())
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
                    "lesson `{}` applies to this runbook: {} (learnt from {})",
                    l.id,
                    l.title,
                    l.origin.describe()
                ),
                help,
            )
        })
        .collect()
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
    let spaced = command
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
        let tool = word.rsplit('/').next().unwrap_or(word);
        if !tool.is_empty() && !BUILTINS.contains(&tool) && !out.iter().any(|t| t == tool) {
            out.push(tool.to_owned());
        }
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
