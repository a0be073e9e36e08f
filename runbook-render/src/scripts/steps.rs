//! How each step becomes bash: its function in the script (`deploy_<id>`, `rollback_<id>`,
//! `verify_<id>`), its `run_step …` and `check …` lines (library.sh runs them), and the
//! shell form of each typed probe (`file`, `tcp`, `http`, `process`, Kubernetes), so that
//! the scripts judge a check on the target as the sandbox judged it.

use std::fmt::Write;

use runbook_core::report::{Report, StepStatus};
use runbook_core::{Check, Expect, KubeCheck, Probe, Runbook, Step, TextMatch};

use super::{Kind, kind_prefix, timeouts};
use crate::text::sh_quote;

/// What the sandbox did with one step, for the comment above it.
fn step_evidence(report: Option<&Report>, id: &str) -> String {
    let Some(r) = report else {
        return "not run in a sandbox".into();
    };
    match r.steps.iter().find(|s| s.id == id) {
        None => "NOT run in the sandbox".into(),
        Some(s) if s.status == StepStatus::Passed => {
            format!("passed in the sandbox (attempt {})", s.attempts.len())
        }
        Some(s) => format!("FAILED in the sandbox ({} attempt(s))", s.attempts.len()),
    }
}

/// `run_step …` for a command (a step's or its rollback's), then its checks.
#[allow(clippy::too_many_arguments)]
fn run_step_call(
    out: &mut String,
    runbook: &Runbook,
    step: &Step,
    label: &str,
    command: &str,
    (timeout, default): (Option<runbook_core::HumanDuration>, std::time::Duration),
    checks: &[Check],
    on_fail: &str,
) {
    let timeout = timeout
        .map_or(default, |t| t.as_duration())
        .as_secs()
        .max(1);
    let _ = writeln!(
        out,
        "run_step {} {} {timeout} {} {} || {on_fail}",
        sh_quote(&step.id),
        sh_quote(label),
        sh_quote(step.workdir.as_deref().unwrap_or(".")),
        literal(command)
    );
    for c in checks {
        check_call(out, runbook, c, on_fail);
    }
}

/// One function a step, `deploy_<id>` (its config files, its command, its checks),
/// `rollback_<id>` (its rollback and the rollback's checks) or `verify_<id>` (its checks),
/// each under a comment saying what the sandbox did with the step.
pub(super) fn step_functions(
    runbook: &Runbook,
    report: Option<&Report>,
    kind: Kind,
    order: &[&Step],
    secret_names: &[&str],
) -> String {
    let mut out = String::new();
    let step_default = timeouts(report).0;
    let total = order.len();
    for (n, step) in order.iter().enumerate() {
        let _ = writeln!(
            out,
            "# Step {}/{total}: {} ({})",
            n + 1,
            step.title.replace('\n', " "),
            step_evidence(report, &step.id)
        );
        let _ = writeln!(
            out,
            "{}_{}() {{",
            kind_prefix(kind),
            step.id.replace('-', "_")
        );
        let id = sh_quote(&step.id);
        let on_fail = if kind == Kind::Verify {
            format!("{{ record_failure {id}; return 1; }}")
        } else {
            format!("fail {id}")
        };
        match kind {
            Kind::Deploy => {
                for f in files_of(runbook, step, n) {
                    let holds_secret = runbook
                        .config_file(f)
                        .map(|c| runbook_core::template::template_references(&c.content))
                        .is_some_and(|refs| refs.iter().any(|r| secret_names.contains(&r.name)));
                    let mode = if holds_secret { "0600" } else { "0644" };
                    let _ = writeln!(out, "render_config {id} {} {mode}", sh_quote(f));
                }
                let label = format!("[{}/{total}] {}", n + 1, step.title);
                let timeout = (step.timeout, step_default);
                run_step_call(
                    &mut out,
                    runbook,
                    step,
                    &label,
                    &step.run,
                    timeout,
                    &step.verify,
                    &on_fail,
                );
            }
            Kind::Rollback => match &step.rollback {
                Some(rollback) => {
                    let label = format!("[{}/{total}] Roll back: {}", n + 1, step.title);
                    let timeout = (rollback.timeout, step_default);
                    run_step_call(
                        &mut out,
                        runbook,
                        step,
                        &label,
                        &rollback.run,
                        timeout,
                        &rollback.verify,
                        &on_fail,
                    );
                    if rollback.verify.is_empty() {
                        out.push_str("  UNVERIFIED=$((UNVERIFIED + 1))\n");
                    }
                }
                None => {
                    let what = format!(
                        "==> [{}/{total}] {} ({}): no rollback declared; left as it is",
                        n + 1,
                        step.title,
                        step.id
                    );
                    let _ = writeln!(out, "  echo {}", sh_quote(&what));
                }
            },
            Kind::Verify => {
                let what = format!("==> [{}/{total}] {} ({})", n + 1, step.title, step.id);
                let _ = writeln!(out, "echo {}", sh_quote(&what));
                for c in &step.verify {
                    check_call(&mut out, runbook, c, &on_fail);
                }
            }
        }
        out.push_str("}\n\n");
    }
    out
}

/// The config files a step renders before it runs: its own, and for the first step the
/// files no step names.
pub(super) fn files_of<'a>(runbook: &'a Runbook, step: &'a Step, n: usize) -> Vec<&'a str> {
    let unreferenced = runbook
        .config_files
        .iter()
        .filter(|f| !runbook.steps.iter().any(|s| s.files.contains(&f.path)))
        .map(|f| f.path.as_str());
    if n == 0 {
        unreferenced
            .chain(step.files.iter().map(String::as_str))
            .collect()
    } else {
        step.files.iter().map(String::as_str).collect()
    }
}

/// A heredoc delimiter that no line of `text` equals.
fn delimiter(text: &str) -> String {
    let mut d = "RUNBOOK_CMD".to_owned();
    while text.lines().any(|l| l == d) {
        d.push('_');
    }
    d
}

/// `"$(cat <<'RUNBOOK_CMD' … RUNBOOK_CMD\n)"`: the text, byte for byte, as one argument.
fn literal(text: &str) -> String {
    let d = delimiter(text);
    format!("\"$(cat <<'{d}'\n{}\n{d}\n)\"", text.trim_end_matches('\n'))
}

fn mode(m: &Option<TextMatch>) -> (&'static str, &str) {
    match m {
        None => ("none", ""),
        Some(TextMatch::Equals(s)) => ("equals", s),
        Some(TextMatch::Contains(s)) => ("contains", s),
        Some(TextMatch::Matches(s)) => ("matches", s),
    }
}

/// The shell command of a check. Typed Kubernetes checks become their kubectl
/// equivalent, in the namespace the runbook's `NAMESPACE` names (the sandbox's, in the
/// sandbox), never in whatever namespace the operator's context points at.
fn check_command(runbook: &Runbook, check: &Check) -> (String, Expect) {
    match &check.probe {
        Probe::Command(c) => (c.clone(), check.expect.clone()),
        Probe::Kube(k) => {
            let (command, expect) = kubectl_equivalent(k);
            let command = match (
                runbook.variable("NAMESPACE"),
                command.strip_prefix("kubectl "),
            ) {
                (Some(_), Some(rest)) => format!("kubectl -n \"$NAMESPACE\" {rest}"),
                _ => command,
            };
            (command, expect)
        }
        typed @ (Probe::File(_) | Probe::Tcp(_) | Probe::Http(_) | Probe::Process(_)) => {
            (probe_shell(typed).unwrap_or_default(), Expect::default())
        }
    }
}

/// The shell form of a typed probe, as the scripts run it: [`Probe::shell`], the one
/// meaning the sandbox uses too.
///
/// ```
/// use runbook_core::{FileProbe, Probe};
/// let shell = runbook_render::probe_shell(&Probe::File(FileProbe::exists("app/${NAME}.conf")));
/// assert_eq!(shell.as_deref(), Some(r#"test -e 'app/'"${NAME}"'.conf'"#));
/// ```
pub fn probe_shell(probe: &Probe) -> Option<String> {
    probe.shell()
}

/// An expected text as one bash word: its `${NAME}` placeholders expand from the
/// environment (the target's values), everything else is literal. A `matches` pattern
/// stays literal.
fn expected_word(mode: &str, text: &str) -> String {
    if mode == "matches" {
        return sh_quote(text);
    }
    runbook_core::shell::expanding(text)
}

/// The same check as a `kubectl` command and what its output must be, for the
/// scripts a human runs (in the namespace of the current kubectl context).
fn kubectl_equivalent(check: &KubeCheck) -> (String, Expect) {
    let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let ok = |stdout: Option<TextMatch>| Expect {
        exit_code: None,
        stdout,
        stderr: None,
    };
    match check {
        // At least `count` pods Running with Ready=True, as the in-process check counts.
        KubeCheck::PodsReady { selector, count } => (
            format!(
                "kubectl get pods -l {} -o jsonpath='{{range .items[*]}}{{.status.phase}}/{{.status.conditions[?(@.type==\"Ready\")].status}}{{\"\\n\"}}{{end}}' | grep -c '^Running/True$' | {{ read -r n; echo \"$n pod(s) Running and Ready\"; [ \"$n\" -ge {count} ]; }}",
                q(selector)
            ),
            ok(None),
        ),
        // What `kubectl rollout status` prints when it is done, kind by kind.
        KubeCheck::RolloutComplete { kind, name } => (
            format!(
                "kubectl rollout status {} --timeout=10s",
                q(&format!("{}/{name}", kind.to_lowercase()))
            ),
            ok(Some(if kind == "StatefulSet" {
                TextMatch::Matches("rolling update complete|partitioned roll out complete".into())
            } else {
                TextMatch::Contains("successfully rolled out".into())
            })),
        ),
        // EndpointSlices (v1 Endpoints is deprecated); a null `ready` means ready.
        KubeCheck::ServiceEndpoints { name } => (
            format!(
                "kubectl get endpointslices -l {} -o jsonpath='{{range .items[*].endpoints[*]}}{{.conditions.ready}}{{\"\\n\"}}{{end}}' | grep -cv '^false$'",
                q(&format!("kubernetes.io/service-name={name}"))
            ),
            ok(Some(TextMatch::Matches("^[1-9]".into()))),
        ),
        KubeCheck::Exists(r) => (
            format!(
                "kubectl get {} {} -o name",
                q(&r.kind.to_lowercase()),
                q(&r.name)
            ),
            ok(None),
        ),
        KubeCheck::Absent(r) => (
            format!(
                "kubectl get {} {} --ignore-not-found -o name",
                q(&r.kind.to_lowercase()),
                q(&r.name)
            ),
            ok(Some(TextMatch::Equals(String::new()))),
        ),
    }
}

/// Appends the `check NAME EXPECTED WITHIN INTERVAL EXIT OUT_MODE OUT_WANT ERR_MODE ERR_WANT
/// COMMAND || ON_FAIL` line of `check` (library.sh's `check` runs it).
pub(super) fn check_call(out: &mut String, runbook: &Runbook, check: &Check, on_fail: &str) {
    let (command, expect) = check_command(runbook, check);
    let (out_mode, out_want) = mode(&expect.stdout);
    let (err_mode, err_want) = mode(&expect.stderr);
    let within = check
        .retry
        .within
        .map_or(0, |w| w.as_duration().as_millis());
    let interval = check.retry.interval().as_millis();
    let describe = Check {
        expect: expect.clone(),
        ..check.clone()
    }
    .expectation();
    let _ = writeln!(
        out,
        "check {} {} {within} {interval} {} {out_mode} {} {err_mode} {} {} || {on_fail}",
        sh_quote(&check.label()),
        sh_quote(&describe),
        expect.expected_exit_code(),
        expected_word(out_mode, out_want),
        expected_word(err_mode, err_want),
        literal(&command),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a rendered `kubectl` command with `kubectl` replaced by a shell function
    /// that prints `output` (what the real kubectl prints for that jsonpath): the
    /// exit code and stdout.
    fn with_fake_kubectl(command: &str, output: &str) -> (i32, String) {
        let script = format!(
            "kubectl() {{ printf '%s' {}; }}\n{command}",
            sh_quote(output)
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn rendered_kube_checks_judge_as_the_provider_does() {
        // At least `count` pods Running and Ready (a Ready Pending pod does not count).
        let pods = |count| {
            kubectl_equivalent(&KubeCheck::PodsReady {
                selector: "app=db".into(),
                count,
            })
            .0
        };
        let listing = "Running/True\nPending/True\nRunning/False\nRunning/True\n";
        assert_eq!(with_fake_kubectl(&pods(2), listing).0, 0);
        assert_eq!(with_fake_kubectl(&pods(1), listing).0, 0);
        assert_ne!(with_fake_kubectl(&pods(3), listing).0, 0);
        assert_ne!(with_fake_kubectl(&pods(1), "").0, 0);

        // An endpoint whose `ready` is null (printed empty) is ready; `false` is not.
        let (endpoints, expect) =
            kubectl_equivalent(&KubeCheck::ServiceEndpoints { name: "web".into() });
        assert_eq!(
            expect.stdout,
            Some(TextMatch::Matches("^[1-9]".into())),
            "the test below reads the output as this pattern does"
        );
        let ready = |out: &str| out.starts_with(|c: char| ('1'..='9').contains(&c));
        assert!(ready(&with_fake_kubectl(&endpoints, "\n").1));
        assert!(ready(&with_fake_kubectl(&endpoints, "false\ntrue\n").1));
        assert!(!ready(&with_fake_kubectl(&endpoints, "false\n").1));
        assert!(!ready(&with_fake_kubectl(&endpoints, "").1));
    }

    #[test]
    fn expected_texts_expand_only_their_placeholders() {
        assert_eq!(
            expected_word("equals", "port=${APP_PORT}"),
            r#"'port='"${APP_PORT}""#
        );
        assert_eq!(expected_word("equals", "${A}-$HOME"), r#""${A}"'-$HOME'"#);
        assert_eq!(expected_word("matches", "^${A}$"), "'^${A}$'");
        assert_eq!(expected_word("none", ""), "''");
    }
}
