//! The rules themselves. One pass over the runbook's texts, plus per-item checks.

use std::collections::{HashMap, HashSet};

/// Whether `pattern` is valid regex syntax: parsing is enough, and far cheaper than
/// compiling the automaton.
fn regex_error(pattern: &str) -> Option<String> {
    regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .err()
        .map(|e| e.to_string())
}

use super::path::{Segment, join};
use super::removed_apis::{manifest_headers, removed_api};
use super::walk::{TextKind, walk_texts};
use super::{Diagnostic, Rule};
use crate::template::{is_upper_snake, shell_assignments, shell_references, template_references};
use crate::{Check, Probe, Runbook, TextMatch, prerequisite::parse_lenient};

/// Environment variables every shell (or the sandbox) provides: commands may use them
/// without declaring them, and the `undeclared-variable` rule allows them. A test of
/// your own that "every variable is declared" allows the same names.
///
/// ```
/// use runbook_core::lint::{SHELL_ENVIRONMENT, is_shell_environment};
/// assert!(SHELL_ENVIRONMENT.contains(&"PWD"));
/// assert!(is_shell_environment("HOME") && !is_shell_environment("DB_HOST"));
/// ```
pub const SHELL_ENVIRONMENT: &[&str] = &[
    "HOME",
    "PATH",
    "PWD",
    "OLDPWD",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "TERM",
    "HOSTNAME",
    "RANDOM",
    "SECONDS",
    "LINENO",
    "IFS",
    "UID",
    "EUID",
    "PPID",
    "BASH",
    "BASH_SOURCE",
    "PIPESTATUS",
    "KUBECONFIG",
    // Set by the operator to run the package's scripts on a version a matrix found
    // unsupported (the pre-flight checks `runbook run --matrix` adds read it).
    "RUNBOOK_ALLOW_UNSUPPORTED",
];

const SANDBOX_ENDPOINTS: &[&str] = &[".svc.cluster.local", "localhost", "127.0.0.1"];

/// The longest runbook name: `rb-<name>-<8 hex>` must stay a DNS label and a label value.
pub(crate) const MAX_NAME: usize = 40;

/// Ids of a list (`steps`, `preflight`) that are not slugs, or repeat an earlier one.
/// `what` is (the list's key, its items in words, an example id).
fn slug_ids<'a>(
    out: &mut Vec<Diagnostic>,
    (list, noun, example): (&str, &str, &str),
    ids: impl Iterator<Item = &'a str>,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, id) in ids.enumerate() {
        if !is_slug(id) {
            out.push(Diagnostic::new(
                Rule::InvalidName,
                format!("{list}[{i}].id"),
                format!("{noun} id `{id}` is not a lowercase slug"),
                format!("use lowercase letters, digits and dashes, e.g. `{example}`"),
            ));
        }
        if let Some(first) = seen.insert(id, i) {
            out.push(Diagnostic::new(
                Rule::DuplicateStepId,
                format!("{list}[{i}].id"),
                format!("{noun} id `{id}` is already used by {list}[{first}]"),
                format!("give every {noun} a unique id"),
            ));
        }
    }
}

/// Whether `name` is an environment variable every shell has (`HOME`, `PATH`, …: one of
/// [`SHELL_ENVIRONMENT`]).
pub fn is_shell_environment(name: &str) -> bool {
    SHELL_ENVIRONMENT.contains(&name)
}

pub(crate) fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.ends_with('-')
}

fn config_path_problem(path: &str) -> Option<&'static str> {
    if path.starts_with('/') || path.contains('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Some("is absolute");
    }
    let Some(rest) = path.strip_prefix("config/") else {
        return Some("is not under `config/`");
    };
    if rest.is_empty()
        || rest
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Some("leaves `config/` or has an empty segment");
    }
    None
}

fn word_at(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(needle).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + needle.len()).copied();
        let boundary = |c: Option<u8>| {
            c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
        };
        needle.starts_with('.') || boundary(before) && boundary(after)
    })
}

/// Why a variable may not have this name, if it may not. Variables reach every command
/// (and the package's scripts export them): these names would change what the loader
/// loads, how the shell starts or what the sandbox itself set, in the sandbox and on
/// the target alike.
fn reserved_variable(name: &str) -> Option<&'static str> {
    if name.starts_with("LD_") || name == "GCONV_PATH" {
        Some("the dynamic loader reads it: it would load code into every program a step starts")
    } else if name.starts_with("BASH_FUNC_") || RESERVED_SHELL.contains(&name) {
        Some("the shell reads it when it starts: it would change how every command is run")
    } else if RESERVED_BASH_OWN.contains(&name) {
        Some("bash sets it itself and will not take a value for it")
    } else if RESERVED_SANDBOX.contains(&name) {
        Some("the sandbox and the package's scripts set it for every command themselves")
    } else {
        None
    }
}

/// Names the shell reads when it starts (`reserved-variable`).
pub(crate) const RESERVED_SHELL: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "POSIXLY_CORRECT",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "PS4",
    "BASH_XTRACEFD",
    "BASH_COMPAT",
];
/// Names bash sets itself (`reserved-variable`).
pub(crate) const RESERVED_BASH_OWN: &[&str] =
    &["UID", "EUID", "PPID", "BASH_VERSINFO", "BASH_ARGV0"];
/// Names the sandbox and the scripts set (`reserved-variable`).
pub(crate) const RESERVED_SANDBOX: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "RUNBOOK_SANDBOX_ID",
    // The container provider's per-command marker (a timeout kills what carries it).
    "RUNBOOK_COMMAND",
];
/// Every name `reserved-variable` refuses, besides the prefixes `LD_` and `BASH_FUNC_`.
pub(crate) fn reserved_names() -> Vec<&'static str> {
    let mut names = vec!["GCONV_PATH"];
    names.extend(RESERVED_SHELL);
    names.extend(RESERVED_BASH_OWN);
    names.extend(RESERVED_SANDBOX);
    names
}

/// Runs every rule over `runbook`; findings come in document order, errors and warnings mixed.
pub fn lint(runbook: &Runbook) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let d = |rule, path: String, message: String, help: &str| {
        Diagnostic::new(rule, path, message, help)
    };

    if !is_slug(&runbook.metadata.name) {
        out.push(d(
            Rule::InvalidName,
            "metadata.name".into(),
            format!(
                "runbook name `{}` is not a lowercase slug",
                runbook.metadata.name
            ),
            "use lowercase letters, digits and dashes, e.g. `postgres-upgrade`",
        ));
    } else if runbook.metadata.name.len() > MAX_NAME {
        out.push(d(
            Rule::InvalidName,
            "metadata.name".into(),
            format!(
                "runbook name `{}` is {} characters long; at most {MAX_NAME}",
                runbook.metadata.name,
                runbook.metadata.name.len()
            ),
            "shorten it: it becomes part of sandbox ids, Kubernetes namespace and label values (63 characters at most) and users",
        ));
    }

    // Variables: names, duplicates.
    let mut declared: HashMap<&str, usize> = HashMap::new();
    for (i, v) in runbook.variables.iter().enumerate() {
        let path = format!("variables[{i}].name");
        if !is_upper_snake(&v.name) {
            out.push(d(
                Rule::InvalidName,
                path.clone(),
                format!("variable name `{}` is not UPPER_SNAKE", v.name),
                "use uppercase letters, digits and underscores, e.g. `DB_HOST`",
            ));
        }
        for (field, value) in [("sandbox", &v.sandbox), ("rehearsal", &v.rehearsal)] {
            if value.as_deref().is_some_and(|t| t.contains('\0')) {
                out.push(d(
                    Rule::NulByte,
                    format!("variables[{i}].{field}"),
                    format!("the {field} value of `{}` holds a NUL byte, which no environment can carry", v.name),
                    "remove it",
                ));
            }
        }
        if let Some(why) = reserved_variable(&v.name) {
            out.push(d(
                Rule::ReservedVariable,
                path.clone(),
                format!("variable `{}` is reserved: {why}", v.name),
                &format!(
                    "rename it with a prefix of the application's (`APP_{}`); a step that needs the setting can set it in its own command",
                    v.name.trim_start_matches('_')
                ),
            ));
        }
        if let Some(first) = declared.insert(&v.name, i) {
            out.push(d(
                Rule::DuplicateVariable,
                path,
                format!(
                    "variable `{}` is already declared at variables[{first}]",
                    v.name
                ),
                "remove or rename one of them",
            ));
        }
        if v.sandbox.is_none() && !v.generate {
            out.push(d(
                Rule::NoSandboxValue,
                format!("variables[{i}]"),
                format!("variable `{}` has no sandbox value", v.name),
                "add `sandbox: <value>`, or `generate: true` for a secret",
            ));
        }
        if v.category == crate::Category::Credential && !v.is_secret() && !v.generate {
            out.push(d(
                Rule::CredentialNotSecret,
                format!("variables[{i}]"),
                format!(
                    "credential `{}` is not secret: its value would appear in the report, the log and the package",
                    v.name
                ),
                "add `secret: {source: …, reference: …}` (where production keeps it), or `generate: true` for a throwaway sandbox value",
            ));
        }
        if v.production.trim().is_empty() && v.secret.is_none() {
            out.push(d(
                Rule::NoProductionGuidance,
                format!("variables[{i}]"),
                format!("variable `{}` has no production guidance", v.name),
                "add `production:` saying what value to use in production",
            ));
        }
    }

    // Prerequisites.
    for (i, p) in runbook.prerequisites.iter().enumerate() {
        if let Err(e) = p.requirement() {
            out.push(d(
                Rule::InvalidSemver,
                format!("prerequisites[{i}].version"),
                format!("`{}` is not a semver requirement: {e}", p.version),
                "write a requirement like `>=1.28, <1.31`, `^3.13` or `*`",
            ));
        }
        if let Some(pattern) = &p.version_pattern
            && let Some(e) = regex_error(pattern)
        {
            out.push(d(
                Rule::InvalidRegex,
                format!("prerequisites[{i}].versionPattern"),
                format!("invalid regex: {}", first_line(&e.to_string())),
                "fix the pattern; its first capture group is the version",
            ));
        }
    }

    // Config files.
    let mut config_paths: HashSet<&str> = HashSet::new();
    let target_minor = runbook
        .target
        .kubernetes_version
        .as_deref()
        .and_then(parse_lenient)
        .filter(|v| v.major == 1)
        .map(|v| v.minor);
    for (i, f) in runbook.config_files.iter().enumerate() {
        if let Some(problem) = config_path_problem(&f.path) {
            out.push(d(
                Rule::ConfigPath,
                format!("configFiles[{i}].path"),
                format!("config file path `{}` {problem}", f.path),
                "use a relative path under `config/`, e.g. `config/values.yaml`",
            ));
        }
        if !config_paths.insert(&f.path) {
            out.push(d(
                Rule::ConfigPath,
                format!("configFiles[{i}].path"),
                format!("config file `{}` is declared twice", f.path),
                "keep one declaration per file",
            ));
        }
        if let Some(minor) = target_minor {
            for (api, kind, line) in manifest_headers(&f.content) {
                if let Some(r) = removed_api(&api, &kind, minor) {
                    out.push(d(
                        Rule::RemovedApi,
                        format!("configFiles[{i}].content"),
                        format!(
                            "{kind} `{api}` (line {line} of {}) was removed in Kubernetes 1.{}; the target is 1.{minor}",
                            f.path, r.removed_in
                        ),
                        &format!("use {}", r.replacement),
                    ));
                }
            }
        }
    }

    // Steps.
    slug_ids(
        &mut out,
        ("steps", "step", "deploy-db"),
        runbook.steps.iter().map(|s| s.id.as_str()),
    );
    for (i, s) in runbook.steps.iter().enumerate() {
        if s.run.trim().is_empty() {
            out.push(d(
                Rule::EmptyCommand,
                format!("steps[{i}].run"),
                format!("step `{}` has an empty command", s.id),
                "write the command exactly as the human will run it",
            ));
        }
        if s.verify.is_empty() {
            out.push(d(
                Rule::MissingVerification,
                format!("steps[{i}].verify"),
                format!("step `{}` has no verification", s.id),
                if s.run.contains("kubectl") || s.run.contains("helm") {
                    "add a check that positively confirms the result (e.g. the pod phase is `Running`)"
                } else {
                    "add a check that positively confirms the result (e.g. `run: cat app.conf` with \
                     `expect: {stdout: {contains: port=8080}}`)"
                },
            ));
        }
        if s.rollback.is_none() && !s.read_only {
            out.push(d(
                Rule::NoRollback,
                format!("steps[{i}]"),
                format!("step `{}` has no rollback", s.id),
                "add `rollback: {run: …}`, or `readOnly: true` if the step changes nothing",
            ));
        }
        for (k, file) in s.files.iter().enumerate() {
            if !config_paths.contains(file.as_str()) {
                out.push(d(
                    Rule::ConfigPath,
                    format!("steps[{i}].files[{k}]"),
                    format!("step `{}` uses `{file}`, which is not in configFiles", s.id),
                    "declare the file under `configFiles`, or fix the path",
                ));
            }
        }
        if let Some(r) = &s.rollback
            && r.run.trim().is_empty()
        {
            out.push(d(
                Rule::EmptyCommand,
                format!("steps[{i}].rollback.run"),
                format!("step `{}` has an empty rollback command", s.id),
                "write the command that undoes the step",
            ));
        }
        if let Some(r) = &s.rollback
            && r.verify.is_empty()
            && !r.run.trim().is_empty()
        {
            out.push(d(
                Rule::UnverifiedRollback,
                format!("steps[{i}].rollback"),
                format!("the rollback of step `{}` has no check", s.id),
                "add `verify:` under `rollback:` with a check that the step's effect is gone (e.g. `test ! -e \"$APP_DIR\"`)",
            ));
        }
        if let Some(w) = &s.workdir
            && (w.starts_with('/') || w.split('/').any(|seg| seg == ".."))
        {
            out.push(d(
                Rule::WorkdirOutside,
                format!("steps[{i}].workdir"),
                format!(
                    "step `{}` has workdir `{w}`, outside the work directory",
                    s.id
                ),
                "use a path relative to the work directory, without `..` (e.g. `app/config`)",
            ));
        }
        duration_limit(&mut out, &format!("steps[{i}].timeout"), s.timeout);
        if let Some(r) = &s.rollback {
            duration_limit(&mut out, &format!("steps[{i}].rollback.timeout"), r.timeout);
        }
        check_list(
            &mut out,
            &format!("steps[{i}].verify"),
            &s.verify,
            Some(&s.run),
        );
        if let Some(r) = &s.rollback {
            check_list(
                &mut out,
                &format!("steps[{i}].rollback.verify"),
                &r.verify,
                None,
            );
        }
    }

    // The pre-flight checklist.
    slug_ids(
        &mut out,
        ("preflight", "pre-flight item", "port-free"),
        runbook.preflight.iter().map(|p| p.id.as_str()),
    );
    for (i, p) in runbook.preflight.iter().enumerate() {
        one_check(&mut out, &format!("preflight[{i}].check"), &p.check, None);
    }

    sandbox_values_in_checks(&mut out, runbook);

    // One pass over every text: references, secrets, endpoints, helm.
    let secrets: Vec<(usize, &str)> = runbook
        .variables
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_secret())
        .filter_map(|(i, v)| {
            v.sandbox
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| (i, s))
        })
        .collect();
    let mut used: HashSet<&str> = HashSet::new();
    walk_texts(runbook, &mut |path: &[Segment], kind, text| {
        if text.contains('\0') {
            out.push(d(
                Rule::NulByte,
                join(path),
                "this text holds a NUL byte".into(),
                "remove it: write the byte with `printf '\\0'` in a command if a file needs it",
            ));
        }
        for &(i, secret) in &secrets {
            if text.contains(secret) {
                out.push(d(
                    Rule::SecretLiteral,
                    join(path),
                    format!(
                        "the sandbox value of secret `{}` appears here",
                        runbook.variables[i].name
                    ),
                    &format!(
                        "write `\"${}\"` instead of the value",
                        runbook.variables[i].name
                    ),
                ));
            }
        }
        match kind {
            TextKind::Command => {
                let assigned = shell_assignments(text);
                for r in shell_references(text) {
                    used.insert(r.name);
                    if !declared.contains_key(r.name)
                        && !SHELL_ENVIRONMENT.contains(&r.name)
                        && !assigned.contains(&r.name)
                    {
                        out.push(d(
                            Rule::UndeclaredVariable,
                            join(path),
                            format!("`${}` is not a declared variable", r.name),
                            &format!("declare `{}` under `variables`, or fix the name", r.name),
                        ));
                    }
                }
                for endpoint in SANDBOX_ENDPOINTS {
                    if word_at(text, endpoint) {
                        out.push(d(
                            Rule::HardcodedEndpoint,
                            join(path),
                            format!("the command hard-codes the sandbox endpoint `{endpoint}`"),
                            "use a variable of category `endpoint` (e.g. `\"$DB_HOST\"`) so production can change it",
                        ));
                    }
                }
                if (text.contains("helm install") || text.contains("helm upgrade"))
                    && !text.contains("--wait")
                    && !text.contains("--atomic")
                {
                    out.push(d(
                        Rule::HelmWithoutWait,
                        join(path),
                        "helm installs without `--wait`".into(),
                        "add `--wait --timeout <duration>` so the next step starts when the release is ready",
                    ));
                }
            }
            TextKind::Template => {
                for r in template_references(text) {
                    used.insert(r.name);
                    if !declared.contains_key(r.name) {
                        out.push(d(
                            Rule::UndeclaredVariable,
                            join(path),
                            format!("placeholder `${{{}}}` is not a declared variable", r.name),
                            &format!("declare `{}` under `variables`, or fix the name", r.name),
                        ));
                    }
                }
            }
            TextKind::Other => {}
        }
    });
    for (i, v) in runbook.variables.iter().enumerate() {
        if !used.contains(v.name.as_str()) {
            out.push(d(
                Rule::UnusedVariable,
                format!("variables[{i}]"),
                format!("variable `{}` is never used", v.name),
                "reference it as `\"$NAME\"` in a command or `${NAME}` in a config file, or remove it",
            ));
        }
    }
    out
}

/// The longest timeout, deadline or interval a runbook may ask for.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn duration_limit(out: &mut Vec<Diagnostic>, path: &str, value: Option<crate::HumanDuration>) {
    if let Some(v) = value
        && v.as_duration() > MAX_DURATION
    {
        out.push(Diagnostic::new(
            Rule::DurationLimit,
            path.to_owned(),
            format!("{v} is longer than a sandbox run may last (7 days)"),
            "use a duration of at most 168h (7 days); a step that needs longer belongs in several steps",
        ));
    }
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

/// Checks whose expected text holds a variable's sandbox value literally.
fn sandbox_values_in_checks(out: &mut Vec<Diagnostic>, runbook: &Runbook) {
    let values: Vec<(&str, &str)> = runbook
        .variables
        .iter()
        .filter(|v| !v.is_secret())
        .filter_map(|v| v.sandbox.as_deref().map(|s| (v.name.as_str(), s)))
        // Short values ("1", "app") match by accident far more often than they leak.
        .filter(|(_, s)| s.len() >= 4)
        .collect();
    let mut visit = |base: String, checks: &[Check]| {
        for (j, c) in checks.iter().enumerate() {
            for (stream, m) in [("stdout", &c.expect.stdout), ("stderr", &c.expect.stderr)] {
                let Some(m) = m else { continue };
                if let Some((name, value)) = values.iter().find(|(_, v)| m.operand().contains(v)) {
                    out.push(Diagnostic::new(
                        Rule::SandboxValueInCheck,
                        format!("{base}[{j}].expect.{stream}"),
                        format!("the check expects `{value}`, the sandbox value of `{name}`"),
                        format!("write `${{{name}}}` instead: it is filled with the value in force, in the sandbox and on the target"),
                    ));
                }
            }
        }
    };
    for (i, s) in runbook.steps.iter().enumerate() {
        visit(format!("steps[{i}].verify"), &s.verify);
        if let Some(r) = &s.rollback {
            visit(format!("steps[{i}].rollback.verify"), &r.verify);
        }
    }
}

fn check_list(out: &mut Vec<Diagnostic>, base: &str, checks: &[Check], step_command: Option<&str>) {
    for (j, c) in checks.iter().enumerate() {
        one_check(out, &format!("{base}[{j}]"), c, step_command);
    }
}

/// The findings on one check at `at` (`steps[0].verify[1]`, `preflight[0].check`).
fn one_check(out: &mut Vec<Diagnostic>, at: &str, c: &Check, step_command: Option<&str>) {
    if let Probe::Command(run) = &c.probe {
        if run.trim().is_empty() {
            out.push(Diagnostic::new(
                Rule::EmptyCommand,
                format!("{at}.run"),
                "the check has an empty command".into(),
                "write the command whose output confirms the result",
            ));
        }
        if step_command.is_some_and(|s| s.trim() == run.trim()) && !c.is_positive() {
            out.push(Diagnostic::new(
                Rule::ExitCodeOnly,
                at.to_owned(),
                "the check re-runs the step's command and only looks at its exit code".into(),
                "check the result itself: query the state and expect its output (`expect.stdout`)",
            ));
        }
    }
    duration_limit(out, &format!("{at}.within"), c.retry.within);
    duration_limit(out, &format!("{at}.interval"), c.retry.interval);
    if let Probe::File(f) = &c.probe {
        if let Some(e) = f.matches.as_deref().and_then(regex_error) {
            out.push(Diagnostic::new(
                Rule::InvalidRegex,
                format!("{at}.file.matches"),
                format!("invalid regex: {}", first_line(&e.to_string())),
                "fix the pattern (Rust regex syntax), or use `contains`",
            ));
        }
        if f.mode.is_some() && f.mode_bits().is_none() {
            out.push(Diagnostic::new(
                Rule::InvalidRegex,
                format!("{at}.file.mode"),
                format!(
                    "`{}` is not an octal mode",
                    f.mode.as_deref().unwrap_or_default()
                ),
                "write the mode in octal, quoted: `mode: \"0600\"`",
            ));
        }
    }
    for (stream, m) in [("stdout", &c.expect.stdout), ("stderr", &c.expect.stderr)] {
        if let Some(TextMatch::Matches(p)) = m
            && let Some(e) = regex_error(p)
        {
            out.push(Diagnostic::new(
                Rule::InvalidRegex,
                format!("{at}.expect.{stream}"),
                format!("invalid regex: {}", first_line(&e.to_string())),
                "fix the pattern (Rust regex syntax), or use `contains`",
            ));
        }
    }
}
