//! `scripts/deploy.sh`, `rollback.sh` and `verify.sh`: the tested commands and checks,
//! byte for byte, as bash a human can run on a target that is not the sandbox.
//!
//! What makes them safe to run in production:
//!
//! - steps and rollbacks run under `bash -e -o pipefail`, as in the sandbox: a multi-line
//!   step fails at its first failing line; checks run as written (their exit code is
//!   what they are judged by);
//! - a pre-flight checks every prerequisite (present, its version read the way the
//!   sandbox read it, the semver requirement satisfied) before anything changes;
//! - `deploy.sh` keeps a journal in the work directory (each step started and completed,
//!   each config file rendered); `rollback.sh` reverts only the steps the journal shows
//!   completed, newest first, after listing them and asking (or `--yes`), and removes
//!   the config files those steps rendered; a step that started but did not complete is
//!   named and left alone unless `--include-incomplete` (its rollback could destroy what
//!   existed before the deploy); a step that completed once stays completed when a re-run
//!   of it fails (`--again`), so it is still rolled back; `--all` lists the steps the
//!   journal shows never ran and asks again (or needs `--yes --all`); without a terminal
//!   and without `--yes` nothing changes;
//! - after a failed deploy, `deploy.sh` names the step it failed at (also once the steps
//!   before it are rolled back), never an earlier one;
//! - `verify.sh` on a work directory whose journal shows nothing deployed stops at the
//!   first failing step and says so: one message, one feedback file;
//! - feedback files are created 0600, exclusively, whatever the operator's umask;
//! - the journal is data: a line whose step id or config file is not one the script was
//!   generated with is ignored with a warning, never expanded (an array subscript would
//!   be evaluated as code) nor used as a path;
//! - one `deploy.sh` or `rollback.sh` at a time in a work directory (`flock` on
//!   `.runbook-lock`); a work directory, journal or lock file that is a symbolic link is
//!   refused;
//! - `deploy.sh` fills config files by the sandbox's rule, byte for byte (one pass: a
//!   value is never scanned for placeholders);
//! - each script records how it ended in `.runbook-outcome` in the work directory
//!   (`status=`, `phase=`, `exit=`, `step=`, `check=`, `reason=`), replaced whole, never
//!   written through a link: what a program (the rehearsal) reads instead of the English;
//! - each header says what the sandbox proved (passed, FAILED at a step, not tested), and
//!   each step says whether it ran there.
//!
//! # The bash is kept as bash
//!
//! The scripts are made of files under `src/scripts/`, included with `include_str!`:
//! `library.sh` (the functions every script needs: checks, steps, pre-flight, feedback
//! files, the outcome), `journal.sh` (the journal and the lock of `deploy.sh` and
//! `rollback.sh`), three pieces with markers of their own (`preflight.sh`,
//! `render_config.sh`, `environment.sh`), and one template per script (`deploy.sh`,
//! `rollback.sh`, `verify.sh`) whose `!NAME!` markers are filled with what is particular
//! to the runbook: its steps as functions (the submodule `steps`), its variables, its
//! prerequisites, its config files (see `fill`). The Rust writes that data, no more.
//! Each rendered script holds its own copy of the library, so that it runs alone on a
//! target, copied anywhere with the package; `library.sh` and `journal.sh` are checked
//! with `shellcheck` as files, and every rendered script is checked as a whole.
//!
//! Markers rather than a template engine: the scripts need substitution and nothing else
//! (what varies per step is built here, from the typed model), and an engine's syntax
//! collides with bash's: `{#` opens a comment in Jinja-like engines and is everywhere in
//! bash (`${#STEPS[@]}`), `{{` appears in the kubectl checks. A marker is `!NAME!`
//! (capitals and underscores), which the bash of these files never writes; a function of a
//! few lines fills the markers in one pass (a value is never scanned for markers, as
//! `render_config` never rescans a value), with no new dependency.

mod steps;

use std::fmt::Write;

use runbook_core::report::{Report, StepStatus, Verdict};
use runbook_core::{Check, Runbook, Step};

use crate::text::sh_quote;
pub use steps::probe_shell;
use steps::{check_call, files_of, step_functions};

/// The functions every script holds (one source for all three).
const LIBRARY: &str = include_str!("scripts/library.sh");
/// The journal and the lock of `deploy.sh` and `rollback.sh`.
const JOURNAL: &str = include_str!("scripts/journal.sh");
/// `render_config`, in `deploy.sh` when the runbook has config files.
const RENDER_CONFIG: &str = include_str!("scripts/render_config.sh");
/// `preflight`, in every script.
const PREFLIGHT: &str = include_str!("scripts/preflight.sh");
/// `warn_environment`, when the runbook's tools read variables such as `PG*`.
const ENVIRONMENT: &str = include_str!("scripts/environment.sh");
/// What every script sets up before its own part (at `!SETTINGS!`): the variables it
/// needs, where it works, what it is and which values to mask, then the library.
const SETTINGS: &str = include_str!("scripts/settings.sh");
const DEPLOY: &str = include_str!("scripts/deploy.sh");
const ROLLBACK: &str = include_str!("scripts/rollback.sh");
const VERIFY: &str = include_str!("scripts/verify.sh");

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deploy,
    Rollback,
    Verify,
}

/// `scripts/deploy.sh`; `report` is the sandbox run's, if there was one.
pub fn deploy_script(runbook: &Runbook, report: Option<&Report>) -> String {
    script(runbook, report, Kind::Deploy)
}

/// `scripts/rollback.sh`.
pub fn rollback_script(runbook: &Runbook, report: Option<&Report>) -> String {
    script(runbook, report, Kind::Rollback)
}

/// `scripts/verify.sh`.
pub fn verify_script(runbook: &Runbook, report: Option<&Report>) -> String {
    script(runbook, report, Kind::Verify)
}

/// The one-line verdict every part of the package opens with: the sandbox run, the
/// rollback exercise and the rehearsal.
pub fn verdict_line(report: Option<&Report>) -> String {
    let run = run_verdict(report);
    match report.and_then(|r| r.rehearsal.as_ref()) {
        None => run,
        Some(h) if h.verdict == Verdict::Passed => format!(
            "{run} Rehearsed: the scripts in this package ran end to end in a fresh sandbox with other values."
        ),
        Some(h) => format!(
            "{run} REHEARSAL FAILED: {}.",
            h.failure.trim_end_matches('.')
        ),
    }
}

fn run_verdict(report: Option<&Report>) -> String {
    let Some(r) = report else {
        return "NOT TESTED: nothing in this package has run in a sandbox.".into();
    };
    let failed_at = r
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Failed)
        .map(|s| s.id.as_str());
    let rollbacks = match &r.rollback {
        None => "rollbacks not exercised",
        Some(rb) if rb.verdict == Verdict::Passed => "rollbacks exercised: passed",
        Some(_) => "rollbacks exercised: FAILED",
    };
    match (r.verdict, failed_at) {
        (Verdict::Passed, _) => format!("Tested in a sandbox: passed ({rollbacks})."),
        (Verdict::Failed, Some(step)) => {
            format!("Tested in a sandbox: FAILED at step `{step}` ({rollbacks}).")
        }
        (Verdict::Failed, None) => {
            "Tested in a sandbox: FAILED before the first step (pre-flight).".into()
        }
        (Verdict::Incomplete, _) => {
            format!("Tested in a sandbox: incomplete, not every step ran ({rollbacks}).")
        }
    }
}

/// Fills the `!NAME!` markers of `template` (NAME: capitals and underscores) with their
/// `values`, in one pass: a value is never scanned for markers. A marker alone on its line
/// stands for whole lines: the value replaces the line (a final newline added if it lacks
/// one), and an empty value removes it; any other marker is replaced where it stands.
///
/// # Panics
///
/// On a marker without a value: the templates are this crate's, and its tests render each.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let value = |name: &str| match values.iter().find(|(n, _)| *n == name) {
        Some((_, v)) => v.as_str(),
        None => panic!("no value for the marker !{name}! of a script template"),
    };
    let mut out = String::with_capacity(template.len() * 2);
    for line in template.split_inclusive('\n') {
        if let Some(("", name, "\n" | "")) = next_marker(line) {
            let v = value(name);
            out.push_str(v);
            if !v.is_empty() && !v.ends_with('\n') {
                out.push('\n');
            }
            continue;
        }
        let mut rest = line;
        while let Some((before, name, after)) = next_marker(rest) {
            out.push_str(before);
            out.push_str(value(name));
            rest = after;
        }
        out.push_str(rest);
    }
    out
}

/// The first marker of `text`: what is before it, its name, and what is after it.
fn next_marker(text: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    while let Some(at) = text[from..].find('!').map(|i| from + i) {
        let name = &text[at + 1..];
        let len = name
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
            .count();
        if len > 0 && name[len..].starts_with('!') {
            return Some((&text[..at], &name[..len], &name[len + 1..]));
        }
        from = at + 1;
    }
    None
}

/// A source file as the scripts hold it: without its `# shellcheck shell=bash` line, which
/// only tells shellcheck what the file alone is.
fn source(file: &str) -> String {
    file.strip_prefix("# shellcheck shell=bash\n")
        .unwrap_or(file)
        .to_owned()
}

fn script(runbook: &Runbook, report: Option<&Report>, kind: Kind) -> String {
    let order: Vec<&Step> = match kind {
        Kind::Deploy | Kind::Rollback => runbook.steps.iter().collect(),
        Kind::Verify => runbook
            .steps
            .iter()
            .filter(|s| !s.verify.is_empty())
            .collect(),
    };
    let quoted =
        |words: &mut dyn Iterator<Item = &str>| words.map(sh_quote).collect::<Vec<_>>().join(" ");
    let as_root = kind != Kind::Verify && sandbox_user(report).is_some();
    let on = |text: &str| if as_root { text } else { "" }.to_owned();
    let secret_names: Vec<&str> = runbook
        .variables
        .iter()
        .filter(|v| v.hides_value())
        .map(|v| v.name.as_str())
        .collect();
    let files: Vec<(&str, &str)> = runbook
        .steps
        .iter()
        .enumerate()
        .flat_map(|(n, s)| {
            files_of(runbook, s, n)
                .into_iter()
                .map(|f| (s.id.as_str(), f))
        })
        .collect();
    let warn_environment = !env_prefixes(runbook).is_empty();
    let values = [
        ("TITLE", runbook.display_title().to_owned()),
        ("VERDICT", verdict_line(report)),
        ("AS_ROOT_VARIABLE", on(" AS_ROOT=\"\"")),
        ("AS_ROOT_USAGE", on(" [--as-root]")),
        ("AS_ROOT_OPTION", on("    --as-root) AS_ROOT=1; shift ;;")),
        ("STEPS", quoted(&mut order.iter().map(|s| s.id.as_str()))),
        ("VARIABLES", variables(runbook)),
        (
            "CHECK_TIMEOUT",
            timeouts(report).1.as_secs().max(1).to_string(),
        ),
        (
            "CHECK_MIN_MS",
            runbook_core::Retry::MIN_ATTEMPT.as_millis().to_string(),
        ),
        ("NAME", sh_quote(&runbook.metadata.name)),
        ("VERSION", sh_quote(&runbook.metadata.version)),
        (
            "PLATFORM",
            sh_quote(runbook.target.platform.as_deref().unwrap_or("")),
        ),
        ("SECRET_NAMES", quoted(&mut secret_names.iter().copied())),
        (
            "PHASE",
            match kind {
                Kind::Deploy => "deploy",
                Kind::Rollback => "rollback",
                Kind::Verify => "verify",
            }
            .to_owned(),
        ),
        ("LIBRARY", source(LIBRARY)),
        ("FILE_STEPS", quoted(&mut files.iter().map(|f| f.0))),
        ("FILE_PATHS", quoted(&mut files.iter().map(|f| f.1))),
        ("JOURNAL", source(JOURNAL)),
        ("PREFLIGHT", preflight(runbook, kind)),
        ("IDENTITY", identity(report)),
        ("ENVIRONMENT", environment_warning(runbook)),
        ("RENDER_CONFIG", render_config(runbook)),
        (
            "STEP_FUNCTIONS",
            step_functions(runbook, report, kind, &order, &secret_names),
        ),
        ("RENDER_TO", render_to(&files)),
        (
            "WARN_ENVIRONMENT",
            if warn_environment {
                "warn_environment"
            } else {
                ""
            }
            .to_owned(),
        ),
    ];
    let template = match kind {
        Kind::Deploy => DEPLOY,
        Kind::Rollback => ROLLBACK,
        Kind::Verify => VERIFY,
    };
    // The settings' own markers are filled in the same single pass.
    fill(&template.replacen("!SETTINGS!\n", SETTINGS, 1), &values)
}

/// Every variable must be set: never defaulted to a sandbox value.
fn variables(runbook: &Runbook) -> String {
    if runbook.variables.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# Every variable must be set for your environment: see adaptation-checklist.md.\n",
    );
    for v in &runbook.variables {
        let _ = writeln!(
            out,
            ": \"${{{}:?{} is not set: see adaptation-checklist.md}}\"",
            v.name, v.name
        );
    }
    let names: Vec<&str> = runbook.variables.iter().map(|v| v.name.as_str()).collect();
    let _ = writeln!(out, "export {}\n", names.join(" "));
    out
}

/// The step and check timeouts the sandbox run used (the engine's defaults when the
/// package is untested), so that the scripts time out as the tested run did.
fn timeouts(report: Option<&Report>) -> (std::time::Duration, std::time::Duration) {
    match report.and_then(|r| r.settings) {
        Some(s) => (
            std::time::Duration::from_millis(s.step_timeout_ms),
            std::time::Duration::from_millis(s.check_timeout_ms),
        ),
        None => (
            runbook_core::DEFAULT_STEP_TIMEOUT,
            runbook_core::DEFAULT_CHECK_TIMEOUT,
        ),
    }
}

/// `render_config` (render_config.sh), which fills the `${NAME}` placeholders of the
/// declared variables the config files name exactly as
/// [`runbook_core::template::fill_template`] does in the sandbox: one pass from left to
/// right; `${` up to the first `}` is a placeholder when what is between is one of those
/// names, and is replaced by its value; all else stays as written, and a value is never
/// scanned again (a value holding `${OTHER}` is written as it is). Empty without config
/// files.
fn render_config(runbook: &Runbook) -> String {
    if runbook.config_files.is_empty() {
        return String::new();
    }
    // The sandbox fills the declared variables only (its values are theirs): an
    // undeclared `${NAME}` stays as written there, so it does here.
    let mut names: Vec<&str> = runbook
        .config_files
        .iter()
        .flat_map(|f| runbook_core::template::template_references(&f.content))
        .map(|r| r.name)
        .filter(|n| runbook.variable(n).is_some())
        .collect();
    names.sort_unstable();
    names.dedup();
    let declared = if names.is_empty() {
        String::new()
    } else {
        format!(
            "        {}) out+=${{!name}}; rest=${{rest#*'}}'}} ;;",
            names.join(" | ")
        )
    };
    fill(RENDER_CONFIG, &[("DECLARED", declared)])
}

/// `deploy.sh --render-config DIR`: every config file, filled, into DIR (mode 0600), and
/// nothing else.
fn render_to(files: &[(&str, &str)]) -> String {
    if files.is_empty() {
        return "if [ -n \"$RENDER_TO\" ]; then echo \"this runbook has no config files\"; exit 0; fi\n"
            .into();
    }
    let mut out = String::from(
        "RENDER_DIR=\"$WORK_DIR\"\nif [ -n \"$RENDER_TO\" ]; then\n  RENDER_DIR=\"$RENDER_TO\"\n",
    );
    for (step, path) in files {
        let _ = writeln!(
            out,
            "  render_config {} {} 0600",
            sh_quote(step),
            sh_quote(path)
        );
    }
    out.push_str("  echo \"Config files rendered into $RENDER_TO (mode 0600): nothing else was done.\"\n  exit 0\nfi\n");
    out
}

/// Tools whose behaviour environment variables change silently, by the prefix of those
/// variables.
const TOOL_ENV: &[(&[&str], &str)] = &[
    (
        &[
            "psql",
            "pg_ctl",
            "initdb",
            "pg_dump",
            "pg_restore",
            "pg_isready",
            "createdb",
            "dropdb",
            "createuser",
        ],
        "PG",
    ),
    (&["helm"], "HELM_"),
    (&["redis-cli"], "REDISCLI_"),
    (&["mysql", "mysqldump"], "MYSQL_"),
];

/// The environment prefixes that matter for this runbook's commands.
pub(crate) fn env_prefixes(runbook: &Runbook) -> Vec<&'static str> {
    let mut texts: Vec<&str> = runbook.steps.iter().map(|s| s.run.as_str()).collect();
    texts.extend(runbook.prerequisites.iter().map(|p| p.tool.as_str()));
    for s in &runbook.steps {
        texts.extend(s.verify.iter().filter_map(Check::command_text));
        if let Some(r) = &s.rollback {
            texts.push(&r.run);
        }
    }
    let words: std::collections::HashSet<&str> = texts
        .iter()
        .flat_map(|t| t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')))
        .collect();
    TOOL_ENV
        .iter()
        .filter(|(tools, _)| tools.iter().any(|t| words.contains(t)))
        .map(|(_, prefix)| *prefix)
        .collect()
}

/// A Rust regex as POSIX ERE for bash's `=~` (the common differences only).
fn to_ere(pattern: &str) -> String {
    pattern.replace(r"\d", "[0-9]").replace("(?:", "(")
}

/// The bounds of a semver requirement as `OP MAJOR MINOR PATCH` words for `need_tool`.
pub(crate) fn bounds(req: &semver::VersionReq) -> Vec<String> {
    runbook_core::prerequisite::bounds(req)
        .into_iter()
        .map(|(op, v)| format!("{op} {} {} {}", v.0, v.1, v.2))
        .collect()
}

/// The unprivileged user the sandbox ran steps as, when the package was tested so.
fn sandbox_user(report: Option<&Report>) -> Option<&str> {
    report
        .map(|r| r.sandbox.user.as_str())
        .filter(|u| !u.is_empty() && *u != "root")
}

/// `preflight` (preflight.sh): every prerequisite (`need_tool`), and in `deploy.sh` the
/// runbook's pre-flight checks. The first failure is noted as the outcome; any stops the
/// script.
fn preflight(runbook: &Runbook, kind: Kind) -> String {
    let mut tools = String::new();
    for p in &runbook.prerequisites {
        let pattern = p
            .version_pattern
            .as_deref()
            .map_or_else(|| r"([0-9]+\.[0-9]+(\.[0-9]+)?)".to_owned(), to_ere);
        let bounds = p.requirement().map(|r| bounds(&r)).unwrap_or_default();
        let _ = writeln!(
            tools,
            "  need_tool {} {} {} {}{} || note_failure",
            sh_quote(&p.tool),
            sh_quote(&p.version),
            sh_quote(&p.detect_command()),
            sh_quote(&pattern),
            bounds
                .iter()
                .map(|b| format!(" {}", sh_quote(b)))
                .collect::<String>()
        );
    }
    // The checklist guards the first change, so only deploy.sh runs it: after a deploy,
    // what it checks (a free port, say) no longer holds.
    let mut checks = String::new();
    if kind == Kind::Deploy && !runbook.preflight.is_empty() {
        checks.push_str("  echo \"==> Pre-flight checks (before any change)\"\n");
        for item in &runbook.preflight {
            let check = Check {
                name: Some(item.label()),
                ..item.check.clone()
            };
            let mut learnt = item.origin.as_deref().map_or_else(String::new, |o| {
                format!("echo {} >&2; ", sh_quote(&format!("      learnt from {o}")))
            });
            // A lesson's fix travels as the known issue it put on the matching steps.
            let fix = item.lesson.as_deref().and_then(|id| {
                runbook
                    .steps
                    .iter()
                    .flat_map(|s| &s.known_issues)
                    .find(|k| k.lesson.as_deref() == Some(id))
            });
            if let Some(k) = fix {
                let _ = write!(
                    learnt,
                    "echo {} >&2; ",
                    sh_quote(&format!("      fix: {}", k.fix))
                );
            }
            let on_fail = format!("{{ {learnt}note_failure; }}");
            check_call(&mut checks, runbook, &check, &on_fail);
        }
    }
    fill(PREFLIGHT, &[("TOOLS", tools), ("CHECKS", checks)])
}

/// `deploy.sh` and `rollback.sh` refuse root when the sandbox ran as an unprivileged user
/// (unless `--as-root`), and warn as root when the package is untested.
fn identity(report: Option<&Report>) -> String {
    match sandbox_user(report) {
        Some(user) => format!(
            "# The sandbox ran every command as an unprivileged user ({user}), not as root.\n\
             if [ \"$(id -u)\" -eq 0 ] && [ -z \"$AS_ROOT\" ]; then\n  \
             refuse 2 \"refusing to run as root: the sandbox ran these commands as an unprivileged user ({user}). Run as the user that should own what this deploys, or pass --as-root.\"\n\
             fi\n\n"
        ),
        None if report.is_none() => "if [ \"$(id -u)\" -eq 0 ]; then\n  echo \"WARNING: running as root; this package was not tested, so nobody knows whether its commands expect root.\" >&2\nfi\n\n".into(),
        None => String::new(),
    }
}

/// `warn_environment` (environment.sh), when the runbook's tools read variables (such as
/// `PG*`) that the sandbox did not set; empty otherwise.
fn environment_warning(runbook: &Runbook) -> String {
    let prefixes = env_prefixes(runbook);
    if prefixes.is_empty() {
        return String::new();
    }
    let declared: Vec<&str> = runbook.variables.iter().map(|v| v.name.as_str()).collect();
    let declared = if declared.is_empty() {
        "RUNBOOK_NONE_".to_owned()
    } else {
        declared.join("|")
    };
    let prefixes: Vec<String> = prefixes.iter().map(|p| format!("{p}*")).collect();
    fill(
        ENVIRONMENT,
        &[("DECLARED", declared), ("PREFIXES", prefixes.join("|"))],
    )
}

fn kind_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Deploy => "deploy",
        Kind::Rollback => "rollback",
        Kind::Verify => "verify",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_filled_in_one_pass() {
        let values = [("A", "!B!".to_owned()), ("B", "b".to_owned())];
        assert_eq!(fill("x=!A! y=!B!\n", &values), "x=!B! y=b\n");
        // Whole lines: replaced with their newline; an empty value removes the line.
        let values = [("L", "one\ntwo".to_owned()), ("E", String::new())];
        assert_eq!(fill("a\n!L!\n!E!\nb\n", &values), "a\none\ntwo\nb\n");
        // Bash's own exclamation marks are no markers.
        let bash = "[[ ! \"$a\" < \"$b\" ]] && echo \"${!name}\" \"${!FILE_PATHS[@]}\" !\n";
        assert_eq!(fill(bash, &[]), bash);
    }

    /// Every marker of every template is one `script` fills, and none is left.
    #[test]
    fn every_marker_has_a_value() {
        // Every piece: a config file, a tool whose variables matter (psql), a rollback.
        let runbook = runbook_core::from_yaml_str(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: m }
variables: [{ name: A, category: other, sandbox: x, production: p }]
prerequisites: [{ tool: psql, version: ">=15" }]
configFiles: [{ path: c.conf, content: "a=${A}\n" }]
steps:
  - { id: a, title: A, run: psql, verify: [{ run: "true" }], rollback: { run: "true" } }
"#,
        )
        .unwrap();
        for kind in [Kind::Deploy, Kind::Rollback, Kind::Verify] {
            let text = script(&runbook, None, kind);
            assert!(next_marker(&text).is_none(), "{text}");
            assert!(text.contains("\npreflight() {") && text.contains("\nwarn_environment() {"));
            assert_eq!(text.contains("\nrender_config() {"), kind == Kind::Deploy);
        }
        assert!(next_marker(&source(LIBRARY)).is_none());
        assert!(next_marker(&source(JOURNAL)).is_none());
    }

    /// Evaluates the rendered bounds the way the script does, in Rust.
    fn satisfied(bounds: &[String], v: &semver::Version) -> bool {
        let have = (v.major, v.minor, v.patch);
        bounds.iter().all(|b| {
            let w: Vec<&str> = b.split(' ').collect();
            let want = (
                w[1].parse().unwrap(),
                w[2].parse().unwrap(),
                w[3].parse().unwrap(),
            );
            match w[0] {
                ">=" => have >= want,
                ">" => have > want,
                "<" => have < want,
                "<=" => have <= want,
                _ => have == want,
            }
        })
    }

    proptest::proptest! {
        #[test]
        fn rendered_bounds_agree_with_semver(
            op in proptest::sample::select(vec!["", "=", ">", ">=", "<", "<=", "~", "^"]),
            parts in proptest::collection::vec(0u64..4, 1..4),
            wildcard in proptest::bool::ANY,
            v in (0u64..5, 0u64..5, 0u64..5),
        ) {
            let text = if wildcard && parts.len() < 3 && op.is_empty() {
                format!("{}.*", parts.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
            } else {
                format!("{op}{}", parts.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
            };
            let req = semver::VersionReq::parse(&text).unwrap();
            let version = semver::Version::new(v.0, v.1, v.2);
            proptest::prop_assert_eq!(
                satisfied(&bounds(&req), &version),
                req.matches(&version),
                "{} vs {}: {:?}", text, version, bounds(&req)
            );
        }
    }
}
