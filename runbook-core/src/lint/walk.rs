//! Visits every text of a runbook with its path and what kind of text it is.

use super::path::Segment::{self, Index, Key};
use crate::TextMatch;
use crate::{Check, Probe, Runbook};

/// What a text of a runbook is, which decides how variables are referenced in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TextKind {
    /// A shell command (a step's `run`, a check's `run`, a rollback, a diagnose command,
    /// a version command): `$NAME` references
    /// ([`shell_references`](crate::template::shell_references)).
    Command,
    /// A text with `${NAME}` placeholders filled with the values in force: a config
    /// file's content, a typed probe's fields, a check's expected `equals`/`contains`
    /// ([`template_references`](crate::template::template_references)).
    Template,
    /// Prose or data (titles, descriptions, notes, a `matches` pattern): no references,
    /// but still shipped, so it must not hold a secret.
    Other,
}

/// One text of a runbook: where it is, what kind of text it is, and the text
/// ([`Runbook::texts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookText<'r> {
    /// Its path from the root, as lint findings print it: `steps[2].verify[0].run`.
    pub path: String,
    /// What it is.
    pub kind: TextKind,
    /// The text as written.
    pub text: &'r str,
}

impl Runbook {
    /// Every text of the runbook with its path and kind, in document order: the ones the
    /// lint rules read (titles, descriptions, commands, checks, rollbacks, config files,
    /// notes, known issues, limitations, the checklist). Sandbox values of variables are
    /// not among them (they are values, not texts of the runbook).
    ///
    /// For a test suite's own rules: "every variable is declared", "no text names the
    /// staging host", …
    ///
    /// ```
    /// use runbook_core::lint::{TextKind, is_shell_environment};
    /// use runbook_core::template::shell_references;
    /// use runbook_core::{Check, Runbook, Step};
    ///
    /// let runbook = Runbook::builder("demo")
    ///     .step(Step::new("write", "Write")
    ///         .run("cd \"$PWD\" && echo hi > out.txt")
    ///         .verify(Check::file("out.txt").contains("hi"))
    ///         .rollback("rm out.txt"))
    ///     .build()?
    ///     .runbook;
    /// let texts = runbook.texts();
    /// let run = texts.iter().find(|t| t.path == "steps[0].run").unwrap();
    /// assert_eq!(run.kind, TextKind::Command);
    /// assert!(texts.iter().any(|t| t.path == "steps[0].verify[0].file.contains"));
    /// let undeclared: Vec<&str> = texts.iter()
    ///     .filter(|t| t.kind == TextKind::Command)
    ///     .flat_map(|t| shell_references(t.text))
    ///     .map(|r| r.name)
    ///     .filter(|n| !is_shell_environment(n) && runbook.variable(n).is_none())
    ///     .collect();
    /// assert!(undeclared.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn texts(&self) -> Vec<RunbookText<'_>> {
        let mut out = Vec::new();
        walk_texts(self, &mut |path, kind, text| {
            out.push(RunbookText {
                path: super::path::join(path),
                kind,
                text,
            })
        });
        out
    }
}

pub(crate) struct Walker<'a, 'r> {
    path: Vec<Segment>,
    visit: &'a mut dyn FnMut(&[Segment], TextKind, &'r str),
}

impl<'r> Walker<'_, 'r> {
    fn text(&mut self, key: &'static str, kind: TextKind, text: &'r str) {
        self.path.push(Key(key));
        (self.visit)(&self.path, kind, text);
        self.path.pop();
    }

    fn texts(&mut self, key: &'static str, items: &'r [String]) {
        self.path.push(Key(key));
        for (i, t) in items.iter().enumerate() {
            self.path.push(Index(i));
            (self.visit)(&self.path, TextKind::Other, t);
            self.path.pop();
        }
        self.path.pop();
    }

    fn opt(&mut self, key: &'static str, text: &'r Option<String>) {
        if let Some(t) = text {
            self.text(key, TextKind::Other, t);
        }
    }

    fn checks(&mut self, key: &'static str, checks: &'r [Check]) {
        self.path.push(Key(key));
        for (i, c) in checks.iter().enumerate() {
            self.path.push(Index(i));
            self.check(c);
            self.path.pop();
        }
        self.path.pop();
    }

    /// The texts of one check, at the current path.
    fn check(&mut self, c: &'r Check) {
        self.opt("name", &c.name);
        match &c.probe {
            Probe::Command(run) => self.text("run", TextKind::Command, run),
            Probe::File(f) => {
                self.path.push(Key("file"));
                self.text("path", TextKind::Template, &f.path);
                if let Some(c) = &f.contains {
                    self.text("contains", TextKind::Template, c);
                }
                self.path.pop();
            }
            Probe::Tcp(t) => {
                self.path.push(Key("tcp"));
                self.text("host", TextKind::Template, &t.host);
                self.text("port", TextKind::Template, &t.port);
                self.path.pop();
            }
            Probe::Http(h) => {
                self.path.push(Key("http"));
                self.text("url", TextKind::Template, &h.url);
                if let Some(b) = &h.body_contains {
                    self.text("bodyContains", TextKind::Template, b);
                }
                self.path.pop();
            }
            Probe::Process(p) => {
                self.path.push(Key("process"));
                self.text("name", TextKind::Template, &p.name);
                self.path.pop();
            }
            Probe::Kube(_) => {}
        }
        self.path.push(Key("expect"));
        for (k, m) in [("stdout", &c.expect.stdout), ("stderr", &c.expect.stderr)] {
            // `equals` and `contains` may name variables as `${NAME}`, filled with the
            // values in force (the sandbox's, or the target's in the scripts).
            match m {
                Some(TextMatch::Matches(p)) => self.text(k, TextKind::Other, p),
                Some(m) => self.text(k, TextKind::Template, m.operand()),
                None => {}
            }
        }
        self.path.pop();
    }
}

/// Calls `visit` with every text of `runbook`, except the sandbox values of variables
/// (which the secret rule treats on its own).
pub(crate) fn walk_texts<'r>(
    runbook: &'r Runbook,
    visit: &mut dyn FnMut(&[Segment], TextKind, &'r str),
) {
    let mut w = Walker {
        path: Vec::with_capacity(8),
        visit,
    };
    w.path.push(Key("metadata"));
    w.text("title", TextKind::Other, &runbook.metadata.title);
    w.text(
        "description",
        TextKind::Other,
        &runbook.metadata.description,
    );
    w.path.pop();
    w.texts("requirements", &runbook.requirements);
    w.texts("successCriteria", &runbook.success_criteria);
    w.path.push(Key("prerequisites"));
    for (i, p) in runbook.prerequisites.iter().enumerate() {
        w.path.push(Index(i));
        if let Some(c) = &p.version_command {
            w.text("versionCommand", TextKind::Command, c);
        }
        w.path.pop();
    }
    w.path.pop();
    w.path.push(Key("variables"));
    for (i, v) in runbook.variables.iter().enumerate() {
        w.path.push(Index(i));
        w.text("description", TextKind::Other, &v.description);
        w.text("production", TextKind::Other, &v.production);
        w.path.pop();
    }
    w.path.pop();
    w.path.push(Key("preflight"));
    for (i, p) in runbook.preflight.iter().enumerate() {
        w.path.push(Index(i));
        w.text("title", TextKind::Other, &p.title);
        w.path.push(Key("check"));
        w.check(&p.check);
        w.path.pop();
        w.path.pop();
    }
    w.path.pop();
    w.path.push(Key("configFiles"));
    for (i, f) in runbook.config_files.iter().enumerate() {
        w.path.push(Index(i));
        w.text("description", TextKind::Other, &f.description);
        w.text("content", TextKind::Template, &f.content);
        w.path.pop();
    }
    w.path.pop();
    w.path.push(Key("steps"));
    for (i, s) in runbook.steps.iter().enumerate() {
        w.path.push(Index(i));
        w.text("title", TextKind::Other, &s.title);
        w.text("description", TextKind::Other, &s.description);
        w.text("run", TextKind::Command, &s.run);
        w.checks("verify", &s.verify);
        if let Some(r) = &s.rollback {
            w.path.push(Key("rollback"));
            w.text("run", TextKind::Command, &r.run);
            w.checks("verify", &r.verify);
            w.path.pop();
        }
        w.texts("notes", &s.notes);
        w.path.push(Key("diagnose"));
        for (k, command) in s.diagnose.iter().enumerate() {
            w.path.push(Index(k));
            (w.visit)(&w.path, TextKind::Command, command);
            w.path.pop();
        }
        w.path.pop();
        w.path.push(Key("knownIssues"));
        for (k, issue) in s.known_issues.iter().enumerate() {
            w.path.push(Index(k));
            w.text("error", TextKind::Other, &issue.error);
            w.text("cause", TextKind::Other, &issue.cause);
            w.text("fix", TextKind::Other, &issue.fix);
            w.path.pop();
        }
        w.path.pop();
        w.path.pop();
    }
    w.path.pop();
    w.path.push(Key("limitations"));
    for (i, l) in runbook.limitations.iter().enumerate() {
        w.path.push(Index(i));
        w.opt("title", &l.title);
        w.texts("untested", &l.untested);
        w.texts("production", &l.production);
        w.path.pop();
    }
    w.path.pop();
    w.texts("checklist", &runbook.checklist);
}
