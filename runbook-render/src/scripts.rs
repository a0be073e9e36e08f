//! `scripts/deploy.sh`, `rollback.sh` and `verify.sh`: the tested commands and checks,
//! byte for byte, as bash a human can run.

use std::fmt::Write;

use runbook_core::{Check, Expect, Probe, Runbook, Step, TextMatch};

use crate::text::sh_quote;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deploy,
    Rollback,
    Verify,
}

/// `scripts/deploy.sh`.
pub fn deploy_script(runbook: &Runbook) -> String {
    script(runbook, Kind::Deploy)
}

/// `scripts/rollback.sh`.
pub fn rollback_script(runbook: &Runbook) -> String {
    script(runbook, Kind::Rollback)
}

/// `scripts/verify.sh`.
pub fn verify_script(runbook: &Runbook) -> String {
    script(runbook, Kind::Verify)
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

fn check_call(out: &mut String, check: &Check, on_fail: &str) {
    let (command, expect): (String, Expect) = match &check.probe {
        Probe::Command(c) => (c.clone(), check.expect.clone()),
        Probe::Kube(k) => k.kubectl_equivalent(),
        other => (
            format!(
                "echo {} >&2; false",
                sh_quote(&format!("unsupported check: {other:?}"))
            ),
            Expect::default(),
        ),
    };
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
        sh_quote(out_want),
        sh_quote(err_want),
        literal(&command),
    );
}

/// `run_step …` for a command (a step's or its rollback's), then its checks.
fn run_step_call(
    out: &mut String,
    step: &Step,
    label: &str,
    command: &str,
    timeout: Option<runbook_core::HumanDuration>,
    checks: &[Check],
    on_fail: &str,
) {
    let timeout = timeout.map_or(600, |t| t.as_duration().as_secs().max(1));
    let _ = writeln!(
        out,
        "run_step {} {} {timeout} {} {} || {on_fail}",
        sh_quote(&step.id),
        sh_quote(label),
        sh_quote(step.workdir.as_deref().unwrap_or(".")),
        literal(command)
    );
    for c in checks {
        check_call(out, c, on_fail);
    }
}

fn function_name(prefix: &str, id: &str) -> String {
    format!("{prefix}_{}", id.replace('-', "_"))
}

const LIBRARY: &str = r#"now_ms() { date +%s%3N; }

# match MODE WANT TEXT: whether TEXT (without trailing whitespace) satisfies MODE WANT.
match_text() {
  local mode=$1 want=$2 text=$3
  text="${text%"${text##*[![:space:]]}"}"
  case "$mode" in
    none) return 0 ;;
    equals) want="${want%"${want##*[![:space:]]}"}"; [ "$text" = "$want" ] ;;
    contains) [[ "$text" == *"$want"* ]] ;;
    matches) printf '%s' "$text" | grep -qzP -- "$want" ;;
    *) return 1 ;;
  esac
}

# check NAME EXPECTED WITHIN_MS INTERVAL_MS EXIT OUT_MODE OUT_WANT ERR_MODE ERR_WANT COMMAND
# Runs COMMAND until its exit code and output satisfy the expectation or WITHIN_MS passes.
check() {
  local name=$1 expected=$2 within=$3 interval=$4 want_exit=$5
  local out_mode=$6 out_want=$7 err_mode=$8 err_want=$9 command=${10}
  local deadline attempt=0 code out err seen errfile
  deadline=$(( $(now_ms) + within ))
  errfile=$(mktemp)
  while :; do
    attempt=$((attempt + 1))
    code=0
    out=$(cd "$WORK_DIR" && timeout "$CHECK_TIMEOUT" bash -c "$command" 2>"$errfile") || code=$?
    err=$(cat "$errfile")
    if [ "$code" -ne "$want_exit" ]; then
      seen="exit code $code${err:+ ($err)}"
    elif ! match_text "$out_mode" "$out_want" "$out"; then
      seen="stdout \"$out\""
    elif ! match_text "$err_mode" "$err_want" "$err"; then
      seen="stderr \"$err\""
    else
      echo "    ok: $name (attempt $attempt)"
      rm -f "$errfile"
      return 0
    fi
    if [ "$(( $(now_ms) + interval ))" -ge "$deadline" ]; then
      break
    fi
    sleep "$((interval / 1000)).$(printf '%03d' $((interval % 1000)))"
  done
  rm -f "$errfile"
  echo "    FAILED: $name: expected $expected; saw $seen (after $attempt attempt(s))" >&2
  return 1
}

# run_step ID TITLE TIMEOUT_S WORKDIR COMMAND: runs COMMAND as the sandbox did, with bash -c.
run_step() {
  local id=$1 title=$2 limit=$3 dir=$4 command=$5 start code=0
  echo "==> $title ($id)"
  start=$(now_ms)
  (cd "$WORK_DIR/$dir" && timeout "$limit" bash -c "$command") || code=$?
  if [ "$code" -ne 0 ]; then
    echo "    FAILED: the command exited with code $code" >&2
    return 1
  fi
  echo "    ok: command ($(( $(now_ms) - start )) ms)"
}

fail() {
  echo "FAILED at step $1. Fix the cause, then resume with: $0 --from $1" >&2
  exit 1
}
"#;

const RENDER_CONFIG: &str = r#"# render_config PATH: fills the ${VAR} placeholders of PACKAGE_DIR/PATH from the
# environment into WORK_DIR/PATH, with bash parameter expansion (no eval, no envsubst).
render_config() {
  local content
  IFS= read -r -d '' content < "$PACKAGE_DIR/$1" || true
"#;

fn script(runbook: &Runbook, kind: Kind) -> String {
    let mut out = String::new();
    let (what, order): (&str, Vec<&Step>) = match kind {
        Kind::Deploy => ("Deploy", runbook.steps.iter().collect()),
        Kind::Rollback => (
            "Roll back",
            runbook
                .steps
                .iter()
                .rev()
                .filter(|s| s.rollback.is_some())
                .collect(),
        ),
        Kind::Verify => (
            "Verify",
            runbook
                .steps
                .iter()
                .filter(|s| !s.verify.is_empty())
                .collect(),
        ),
    };
    let _ = writeln!(out, "#!/usr/bin/env bash");
    out.push_str("# shellcheck disable=SC2016 # single-quoted commands, checks and titles are literal by design\n");
    let _ = writeln!(out, "# {what}: {}", runbook.display_title());
    out.push_str("# Generated from runbook.yaml. The commands and checks are the ones tested in the sandbox,\n");
    out.push_str(
        "# byte for byte. Needs bash >= 4, coreutils (timeout, date, mktemp) and grep -P.\n",
    );
    if kind == Kind::Deploy && !runbook.config_files.is_empty() {
        out.push_str("# Config templates under config/ are filled from the environment with bash parameter\n");
        out.push_str("# expansion into the work directory (no eval, no envsubst).\n");
    }
    out.push_str("# Usage: RUNBOOK_WORK_DIR=DIR (default: ../work) ");
    let _ = writeln!(
        out,
        "{} [--from STEP]",
        match kind {
            Kind::Deploy => "scripts/deploy.sh",
            Kind::Rollback => "scripts/rollback.sh",
            Kind::Verify => "scripts/verify.sh",
        }
    );
    out.push_str("set -euo pipefail\n\n");

    // Arguments.
    let ids: Vec<&str> = order.iter().map(|s| s.id.as_str()).collect();
    out.push_str("FROM=\"\"\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n");
    out.push_str("    --from) FROM=\"${2:?--from needs a step id}\"; shift 2 ;;\n");
    out.push_str("    -h|--help) echo \"usage: $0 [--from STEP]\"; exit 0 ;;\n");
    out.push_str("    *) echo \"usage: $0 [--from STEP]\" >&2; exit 2 ;;\n  esac\ndone\n");
    let _ = writeln!(
        out,
        "STEPS=({})",
        ids.iter()
            .map(|i| sh_quote(i))
            .collect::<Vec<_>>()
            .join(" ")
    );
    out.push_str("if [ -n \"$FROM\" ] && [[ \" ${STEPS[*]} \" != *\" $FROM \"* ]]; then\n");
    out.push_str("  echo \"unknown step '$FROM'; steps: ${STEPS[*]}\" >&2\n  exit 2\nfi\n\n");

    // Variables: required, never defaulted to a sandbox value.
    if !runbook.variables.is_empty() {
        out.push_str(
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
    }
    out.push_str("PACKAGE_DIR=\"$(cd \"$(dirname \"${BASH_SOURCE[0]}\")/..\" && pwd)\"\n");
    out.push_str("WORK_DIR=\"${RUNBOOK_WORK_DIR:-$PACKAGE_DIR/work}\"\n");
    out.push_str("CHECK_TIMEOUT=\"${RUNBOOK_CHECK_TIMEOUT:-60}\"\n");
    out.push_str("mkdir -p \"$WORK_DIR\"\n");
    out.push_str("WORK_DIR=\"$(cd \"$WORK_DIR\" && pwd)\"\n\n");
    out.push_str(LIBRARY);

    if kind == Kind::Deploy && !runbook.config_files.is_empty() {
        out.push('\n');
        out.push_str(RENDER_CONFIG);
        let mut names: Vec<&str> = runbook
            .config_files
            .iter()
            .flat_map(|f| runbook_core::template::template_references(&f.content))
            .map(|r| r.name)
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let _ = writeln!(out, "  content=${{content//'${{{name}}}'/\"${name}\"}}");
        }
        out.push_str("  mkdir -p \"$(dirname \"$WORK_DIR/$1\")\"\n");
        out.push_str("  printf '%s' \"$content\" > \"$WORK_DIR/$1\"\n}\n");
    }
    out.push('\n');

    let total = order.len();
    for (n, step) in order.iter().enumerate() {
        let func = function_name(kind_prefix(kind), &step.id);
        let _ = writeln!(
            out,
            "# Step {}/{total}: {}",
            n + 1,
            step.title.replace('\n', " ")
        );
        let _ = writeln!(out, "{func}() {{");
        let on_fail = if kind == Kind::Verify {
            "return 1".to_owned()
        } else {
            format!("fail {}", sh_quote(&step.id))
        };
        match kind {
            Kind::Deploy => {
                let unreferenced = runbook
                    .config_files
                    .iter()
                    .filter(|f| !runbook.steps.iter().any(|s| s.files.contains(&f.path)))
                    .map(|f| f.path.as_str());
                let files: Vec<&str> = if n == 0 {
                    unreferenced
                        .chain(step.files.iter().map(String::as_str))
                        .collect()
                } else {
                    step.files.iter().map(String::as_str).collect()
                };
                for f in files {
                    let _ = writeln!(out, "render_config {}", sh_quote(f));
                }
                let label = format!("[{}/{total}] {}", n + 1, step.title);
                run_step_call(
                    &mut out,
                    step,
                    &label,
                    &step.run,
                    step.timeout,
                    &step.verify,
                    &on_fail,
                );
            }
            Kind::Rollback => {
                let rollback = step.rollback.as_ref().expect("filtered above");
                let label = format!("[{}/{total}] Roll back: {}", n + 1, step.title);
                run_step_call(
                    &mut out,
                    step,
                    &label,
                    &rollback.run,
                    rollback.timeout,
                    &rollback.verify,
                    &on_fail,
                );
            }
            Kind::Verify => {
                let _ = writeln!(
                    out,
                    "echo {}",
                    sh_quote(&format!(
                        "==> [{}/{total}] {} ({})",
                        n + 1,
                        step.title,
                        step.id
                    ))
                );
                for c in &step.verify {
                    check_call(&mut out, c, &on_fail);
                }
            }
        }
        out.push_str("}\n\n");
    }

    // Main: run each step from --from on.
    out.push_str("STARTED=\"\"\n[ -z \"$FROM\" ] && STARTED=1\n");
    if kind == Kind::Verify {
        out.push_str("FAILED=0\n");
    }
    out.push_str("for step in \"${STEPS[@]}\"; do\n");
    out.push_str("  [ \"$step\" = \"$FROM\" ] && STARTED=1\n  [ -n \"$STARTED\" ] || continue\n");
    let prefix = kind_prefix(kind);
    match kind {
        Kind::Verify => {
            let _ = writeln!(
                out,
                "  \"{prefix}_${{step//-/_}}\" || FAILED=$((FAILED + 1))"
            );
            out.push_str("done\nif [ \"$FAILED\" -gt 0 ]; then\n  echo \"$FAILED step(s) failed verification\" >&2\n  exit 1\nfi\n");
            out.push_str("echo \"All verifications passed.\"\n");
        }
        _ => {
            let _ = writeln!(out, "  \"{prefix}_${{step//-/_}}\"");
            let done = if kind == Kind::Deploy {
                "Deployed"
            } else {
                "Rolled back"
            };
            let _ = writeln!(out, "done\necho \"{done}: every step passed its checks.\"");
        }
    }
    out
}

fn kind_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Deploy => "deploy",
        Kind::Rollback => "rollback",
        Kind::Verify => "verify",
    }
}
