//! Roles: what a lesson's check needs from a runbook ("the TCP port of the server", an
//! `endpoint` port used with `pg_isready`), so that a lesson learnt from one runbook fits
//! another that names its variables otherwise. [`crate::Lesson::fit`] maps each role to
//! the variable of the target runbook that plays it and rewrites the check's references.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::template::{shell_assignments, shell_references, template_references};
use crate::{Category, Check, Probe, Runbook, TextMatch, ValueKind, Variable};

impl ValueKind {
    /// The kind of value `variable` plays in a lesson's role, read from its sandbox value
    /// ([`Variable::value_kind`]) or, when it has none, from its name; a hostname counts as
    /// an address; `None` when nothing tells (a bare word such as `pgdata`, a version).
    ///
    /// ```
    /// use runbook_core::{Category, ValueKind, Variable};
    /// let port = Variable::new("DB_LISTEN_PORT", Category::Endpoint).sandbox("55498");
    /// let host = Variable::new("DB_ADDR", Category::Endpoint).sandbox("127.0.0.1");
    /// assert_eq!(ValueKind::of(&port), Some(ValueKind::Port));
    /// assert_eq!(ValueKind::of(&host), Some(ValueKind::Address));
    /// ```
    pub fn of(variable: &Variable) -> Option<ValueKind> {
        let value = variable.sandbox.as_deref().map(str::trim).unwrap_or("");
        if value.is_empty() {
            // A generated or secret value says nothing; the name may.
            let name = variable.name.as_str();
            return if name.ends_with("PORT") {
                Some(ValueKind::Port)
            } else if name.ends_with("HOST") || name.ends_with("ADDR") {
                Some(ValueKind::Address)
            } else {
                None
            };
        }
        match variable.value_kind(value) {
            ValueKind::Hostname => Some(ValueKind::Address),
            ValueKind::Name | ValueKind::Version => None,
            kind => Some(kind),
        }
    }

    /// The kind in one word, as a role states it.
    fn word(self) -> &'static str {
        match self {
            ValueKind::Port => "port",
            ValueKind::Address | ValueKind::Hostname => "address",
            ValueKind::Cidr => "CIDR",
            ValueKind::Url => "URL",
            ValueKind::Path => "path",
            ValueKind::Number => "number",
            ValueKind::Version => "version",
            ValueKind::Name => "name",
        }
    }
}

/// A value a lesson's check needs, stated so that another runbook's variable can be found
/// for it: by category, kind of value and the tools that use it, not by name.
///
/// ```yaml
/// roles:
///   - variable: PGPORT              # the name the check uses
///     description: TCP port of the server
///     category: endpoint
///     kind: port
///     tools: [pg_isready, psql]     # the variable that plays it is used with one of them
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LessonRole {
    /// The variable the check names for it (the origin runbook's name, `PGPORT`).
    pub variable: String,
    /// What the value is, in words (the origin variable's description).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The category of the variable that plays it.
    #[serde(default)]
    pub category: Category,
    /// The kind of value; a variable of another kind never plays the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ValueKind>,
    /// The tools the origin runbook uses it with; the variable that plays it must appear
    /// in a command that invokes one of them (none: any variable of the category and kind).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
}

impl LessonRole {
    /// The role variable `name` of `runbook` plays: its category, kind, description, and
    /// the tools of the commands that use it. `None` when the runbook does not declare it.
    ///
    /// ```
    /// use runbook_core::{Category, LessonRole, Runbook, Step, Variable, Check, ValueKind};
    /// let origin = Runbook::builder("pg")
    ///     .variable(Variable::new("PGPORT", Category::Endpoint).sandbox("55432")
    ///         .description("TCP port of the server"))
    ///     .step(Step::new("ready", "Ready").run("pg_isready --port=\"$PGPORT\"").read_only()
    ///         .verify(Check::command("true")))
    ///     .build_unchecked();
    /// let role = LessonRole::of(&origin, "PGPORT").unwrap();
    /// assert_eq!((role.category, role.kind), (Category::Endpoint, Some(ValueKind::Port)));
    /// assert_eq!(role.tools, ["pg_isready"]);
    /// ```
    pub fn of(runbook: &Runbook, name: &str) -> Option<LessonRole> {
        let variable = runbook.variable(name)?;
        Some(LessonRole {
            variable: name.to_owned(),
            description: if variable.description.is_empty() {
                variable.production.clone()
            } else {
                variable.description.clone()
            },
            category: variable.category,
            kind: ValueKind::of(variable),
            tools: tools_using(runbook, name),
        })
    }

    /// "`$PGPORT` (TCP port of the server: an endpoint port used with pg_isready or psql)".
    pub fn describe(&self) -> String {
        let mut what = format!("{:?}", self.category).to_lowercase();
        if let Some(kind) = self.kind {
            what.push(' ');
            what.push_str(kind.word());
        }
        if !self.tools.is_empty() {
            what.push_str(" used with ");
            what.push_str(&self.tools.join(" or "));
        }
        if self.description.is_empty() {
            format!("`${}` (a {what})", self.variable)
        } else {
            format!("`${}` ({}: a {what})", self.variable, self.description)
        }
    }

    /// Whether `variable` of `runbook` can play the role.
    fn fits(&self, runbook: &Runbook, variable: &Variable) -> bool {
        variable.category == self.category
            && (self.kind.is_none() || ValueKind::of(variable) == self.kind)
            && (self.tools.is_empty() || {
                let used = tools_using(runbook, &variable.name);
                self.tools.iter().any(|t| used.contains(t))
            })
    }
}

/// The tools invoked by every command of `runbook` that expands `$name`, each once.
fn tools_using(runbook: &Runbook, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for command in commands(runbook) {
        if shell_references(command).iter().any(|r| r.name == name) {
            for tool in crate::invoked_tools(command) {
                if !out.contains(&tool) {
                    out.push(tool);
                }
            }
        }
    }
    out
}

/// Every shell text of a runbook: step and rollback commands, and command checks.
fn commands(runbook: &Runbook) -> impl Iterator<Item = &str> {
    runbook
        .steps
        .iter()
        .flat_map(|s| {
            std::iter::once(s.run.as_str())
                .chain(s.verify.iter().filter_map(Check::command_text))
                .chain(s.rollback.iter().flat_map(|r| {
                    std::iter::once(r.run.as_str())
                        .chain(r.verify.iter().filter_map(Check::command_text))
                }))
        })
        .chain(
            runbook
                .preflight
                .iter()
                .filter_map(|p| p.check.command_text()),
        )
}

/// The variables a check expands (a command's `$NAME`, a probe's or expectation's
/// `${NAME}`), each once, without the shell's own environment and names it assigns.
pub(crate) fn check_variables(check: &Check) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !crate::lint::is_shell_environment(name) && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    };
    for (text, shell) in texts(check) {
        if shell {
            let assigned = shell_assignments(text);
            for r in shell_references(text) {
                if !assigned.contains(&r.name) {
                    add(r.name);
                }
            }
        } else {
            for r in template_references(text) {
                add(r.name);
            }
        }
    }
    out
}

/// The texts of a check that may name variables, and whether each is shell.
fn texts(check: &Check) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    match &check.probe {
        Probe::Command(run) => out.push((run.as_str(), true)),
        Probe::File(f) => {
            out.push((f.path.as_str(), false));
            out.extend(f.contains.as_deref().map(|c| (c, false)));
        }
        Probe::Tcp(t) => out.extend([(t.host.as_str(), false), (t.port.as_str(), false)]),
        Probe::Http(h) => {
            out.push((h.url.as_str(), false));
            out.extend(h.body_contains.as_deref().map(|b| (b, false)));
        }
        Probe::Process(p) => out.push((p.name.as_str(), false)),
        Probe::Kube(_) => {}
    }
    for m in [&check.expect.stdout, &check.expect.stderr]
        .into_iter()
        .flatten()
    {
        if !matches!(m, TextMatch::Matches(_)) {
            out.push((m.operand(), false));
        }
    }
    out
}

/// The check with every reference to a key of `names` renamed to its value.
pub(crate) fn rename_check(check: &Check, names: &BTreeMap<String, String>) -> Check {
    let shell = |t: &str| rename(t, names, true);
    let template = |t: &str| rename(t, names, false);
    let mut out = check.clone();
    match &mut out.probe {
        Probe::Command(run) => *run = shell(run),
        Probe::File(f) => {
            f.path = template(&f.path);
            f.contains = f.contains.as_deref().map(template);
        }
        Probe::Tcp(t) => {
            t.host = template(&t.host);
            t.port = template(&t.port);
        }
        Probe::Http(h) => {
            h.url = template(&h.url);
            h.body_contains = h.body_contains.as_deref().map(template);
        }
        Probe::Process(p) => p.name = template(&p.name),
        Probe::Kube(_) => {}
    }
    for m in [&mut out.expect.stdout, &mut out.expect.stderr]
        .into_iter()
        .flatten()
    {
        match m {
            TextMatch::Equals(t) | TextMatch::Contains(t) => *t = template(t),
            TextMatch::Matches(_) => {}
        }
    }
    out
}

/// `text` with its references (`$NAME`, `${NAME…}` in shell; `${NAME}` in a template)
/// to the keys of `names` renamed; quoting and everything else stays as written.
fn rename(text: &str, names: &BTreeMap<String, String>, shell: bool) -> String {
    let refs = if shell {
        shell_references(text)
    } else {
        template_references(text)
    };
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in refs {
        let Some(new) = names.get(r.name) else {
            continue;
        };
        // The name starts after `$` or `${`.
        let start = r.offset
            + if text[r.offset + 1..].starts_with('{') {
                2
            } else {
                1
            };
        out.push_str(&text[last..start]);
        out.push_str(new);
        last = start + r.name.len();
    }
    out.push_str(&text[last..]);
    out
}

/// Prose (a title, a cause, a fix) with each whole word that is a key of `names`
/// (`PGPORT`, `$PGPORT`) replaced by its value.
pub(crate) fn rename_words(text: &str, names: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(names.get(word.as_str()).unwrap_or(word));
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Maps each variable of `needed` to the variable of `runbook` that plays its role:
/// itself when the runbook declares it and it fits its role (or the lesson states none),
/// else the one variable of the role's category, kind and tools (several: the one whose
/// description shares the most words with the role's). Each problem is one sentence.
pub(crate) fn map_roles(
    roles: &[LessonRole],
    needed: &[String],
    runbook: &Runbook,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut mapped: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for name in needed {
        let Some(role) = roles.iter().find(|r| &r.variable == name) else {
            if runbook.variable(name).is_some() {
                mapped.insert(name.clone(), name.clone());
            } else {
                problems.push(format!(
                    "its check uses `${name}`, which this runbook does not declare, and the lesson \
                     states no role for it (a lesson written before roles): add a `roles:` entry \
                     for `{name}` to the lesson file (see docs/feedback.md)"
                ));
            }
            continue;
        };
        let candidates: Vec<&Variable> = runbook
            .variables
            .iter()
            .filter(|v| role.fits(runbook, v))
            .filter(|v| !mapped.values().any(|m| m == &v.name))
            .collect();
        let chosen = match candidates.iter().find(|v| &v.name == name) {
            Some(same) => Ok(*same),
            None => match candidates.as_slice() {
                [] => Err(format!(
                    "no variable of this runbook plays the role of {}",
                    role.describe()
                )),
                [one] => Ok(*one),
                several => closest(role, several).ok_or_else(|| {
                    format!(
                        "several variables could play the role of {}: {}; the lesson is not \
                         carried rather than guessed (rename one, or give the lesson's role a \
                         description that tells them apart)",
                        role.describe(),
                        several
                            .iter()
                            .map(|v| format!("`{}`", v.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }),
            },
        };
        match chosen {
            Ok(v) => {
                mapped.insert(name.clone(), v.name.clone());
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(mapped)
    } else {
        Err(problems)
    }
}

/// The one candidate whose description and guidance share the most words with the
/// role's description; `None` on a tie.
fn closest<'a>(role: &LessonRole, candidates: &[&'a Variable]) -> Option<&'a Variable> {
    let words = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 2)
            .map(str::to_lowercase)
            .collect()
    };
    let want = words(&role.description);
    let mut scored: Vec<(usize, &Variable)> = candidates
        .iter()
        .map(|v| {
            let have = words(&format!("{} {} {}", v.name, v.description, v.production));
            (want.iter().filter(|w| have.contains(w)).count(), *v)
        })
        .collect();
    scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    match scored.as_slice() {
        [(best, v), rest @ ..] if *best > 0 && rest.first().is_none_or(|(s, _)| s < best) => {
            Some(*v)
        }
        _ => None,
    }
}
