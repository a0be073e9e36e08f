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
//!   existed before the deploy); without a terminal and without `--yes` nothing changes;
//! - the journal is data: a line whose step id or config file is not one the script was
//!   generated with is ignored with a warning, never expanded (an array subscript would
//!   be evaluated as code) nor used as a path;
//! - one `deploy.sh` or `rollback.sh` at a time in a work directory (`flock` on
//!   `.runbook-lock`); a work directory, journal or lock file that is a symbolic link is
//!   refused;
//! - `deploy.sh` fills config files by the sandbox's rule, byte for byte (one pass: a
//!   value is never scanned for placeholders);
//! - each header says what the sandbox proved (passed, FAILED at a step, not tested), and
//!   each step says whether it ran there.

use std::fmt::Write;

use runbook_core::report::{Report, StepStatus, Verdict};
use runbook_core::{Check, Expect, KubeCheck, Probe, Runbook, Step, TextMatch};

use crate::text::sh_quote;

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
        typed => (probe_shell(typed).unwrap_or_default(), Expect::default()),
    }
}

/// The shell form of a typed probe, as the scripts run it (exit 0 when it holds): `test`,
/// `grep` and `stat` for a file, bash's `/dev/tcp` for a port, `curl` for a URL,
/// `/proc/*/comm` for a process. `None` for a command (it is its own shell) and for a
/// Kubernetes check (it needs the runbook's namespace: see the scripts).
///
/// ```
/// use runbook_core::{FileProbe, Probe};
/// let shell = runbook_render::probe_shell(&Probe::File(FileProbe::exists("app/${NAME}.conf")));
/// assert_eq!(shell.as_deref(), Some(r#"test -e 'app/'"${NAME}"'.conf'"#));
/// ```
pub fn probe_shell(probe: &Probe) -> Option<String> {
    Some(match probe {
        Probe::Command(_) | Probe::Kube(_) => return None,
        Probe::File(f) => file_command(f),
        Probe::Tcp(t) => format!(
            "timeout 5 bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' {} {}",
            expected_word("equals", &t.host),
            expected_word("equals", &t.port)
        ),
        Probe::Http(h) => http_command(h),
        // The kernel's command name, at most 15 characters, as the sandbox compares it.
        Probe::Process(p) => format!(
            "grep -qsxF -- {} /proc/[0-9]*/comm",
            expected_word("equals", &p.name.chars().take(15).collect::<String>())
        ),
    })
}

/// A `file` probe as portable shell: `test`, `grep` and `stat`, relative to the work
/// directory, its `${NAME}` placeholders expanded from the environment.
fn file_command(f: &runbook_core::FileProbe) -> String {
    let path = expected_word("equals", &f.path);
    if !f.exists {
        return format!("test ! -e {path}");
    }
    let mut parts = vec![format!("test -e {path}")];
    if let Some(bits) = f.mode_bits() {
        parts.push(format!("test \"$(stat -c %a {path})\" = '{bits:o}'"));
    }
    if let Some(c) = &f.contains {
        parts.push(format!("grep -qF -- {} {path}", expected_word("equals", c)));
    }
    if let Some(m) = &f.matches {
        parts.push(format!("grep -qzP -- {} {path}", sh_quote(m)));
    }
    parts.join(" && ")
}

/// An `http` probe as `curl` (needed on the target for these checks only).
fn http_command(h: &runbook_core::HttpProbe) -> String {
    let secs = h.timeout.map_or(10, |t| t.as_duration().as_secs().max(1));
    let mut text = format!(
        "body=$(mktemp) && code=$(curl -sS -o \"$body\" -w '%{{http_code}}' --max-time {secs} -- {}) && test \"$code\" = '{}'",
        expected_word("equals", &h.url),
        h.status
    );
    if let Some(b) = &h.body_contains {
        text.push_str(&format!(
            " && grep -qF -- {} \"$body\"",
            expected_word("equals", b)
        ));
    }
    text.push_str("; rc=$?; rm -f \"$body\"; exit \"$rc\"");
    text
}

/// An expected text as one bash word: its `${NAME}` placeholders expand from the
/// environment (the target's values), everything else is literal. A `matches` pattern
/// stays literal.
fn expected_word(mode: &str, text: &str) -> String {
    if mode == "matches" {
        return sh_quote(text);
    }
    let mut out = String::new();
    let mut last = 0;
    for r in runbook_core::template::template_references(text) {
        if r.offset > last {
            out.push_str(&sh_quote(&text[last..r.offset]));
        }
        let _ = write!(out, "\"${{{}}}\"", r.name);
        last = r.offset + r.name.len() + 3;
    }
    if last < text.len() || out.is_empty() {
        out.push_str(&sh_quote(&text[last..]));
    }
    out
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

fn check_call(out: &mut String, runbook: &Runbook, check: &Check, on_fail: &str) {
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

fn function_name(prefix: &str, id: &str) -> String {
    format!("{prefix}_{}", id.replace('-', "_"))
}

const LIBRARY: &str = r#"# Milliseconds since the epoch, without a process where bash has EPOCHREALTIME (5+).
now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local t=${EPOCHREALTIME/[.,]/}
    echo "$(( 10#$t / 1000 ))"
  else
    date +%s%3N
  fi
}
# A step's output goes to the terminal as it comes and, through tee, to these files, for
# the feedback file if it fails.
OUTDIR=$(mktemp -d)
STEP_OUT=$OUTDIR/stdout STEP_ERR=$OUTDIR/stderr ERRFILE=$OUTDIR/check-stderr
FAIL_COMMAND="" FAIL_CODE="" FAIL_CHECK=""
declare -A FOUND=() REQUIRED=()
trap 'rm -rf "$OUTDIR"' EXIT

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
# Runs COMMAND (as written: no errexit) until its exit code and output satisfy the
# expectation or WITHIN_MS passes.
check() {
  local name=$1 expected=$2 within=$3 interval=$4 want_exit=$5
  local out_mode=$6 out_want=$7 err_mode=$8 err_want=$9 command=${10}
  local deadline attempt=0 code out err seen errfile=$ERRFILE
  # RUNBOOK_CHECK_ONCE=1 (verify.sh --once): one attempt each, no waiting for a state to come.
  [ -z "${RUNBOOK_CHECK_ONCE:-}" ] || within=0
  deadline=$(( $(now_ms) + within ))
  while :; do
    attempt=$((attempt + 1))
    code=0
    out=$(cd "$WORK_DIR" && timeout "$CHECK_TIMEOUT" bash -c "$command" 2>"$errfile" 9>&-) || code=$?
    err=$(<"$errfile")
    if [ "$code" -ne "$want_exit" ]; then
      seen="exit code $code${err:+ ($err)}"
    elif ! match_text "$out_mode" "$out_want" "$out"; then
      seen="stdout \"$out\""
    elif ! match_text "$err_mode" "$err_want" "$err"; then
      seen="stderr \"$err\""
    else
      echo "    ok: $name (attempt $attempt)"
      return 0
    fi
    FAIL_CHECK=$name FAIL_COMMAND=$command FAIL_CODE=$code
    printf '%s\n' "$out" > "$STEP_OUT"
    printf '%s\n' "$err" > "$STEP_ERR"
    if [ "$(( $(now_ms) + interval ))" -ge "$deadline" ]; then
      break
    fi
    sleep "$((interval / 1000)).$(printf '%03d' $((interval % 1000)))"
  done
  echo "    FAILED: $name: expected $expected; saw $seen (after $attempt attempt(s))" >&2
  return 1
}

# run_step ID TITLE TIMEOUT_S WORKDIR COMMAND: runs COMMAND as the sandbox did, with
# bash -e -o pipefail -c: it fails at its first failing line.
run_step() {
  local id=$1 title=$2 limit=$3 dir=$4 command=$5 start code=0 out_fd err_fd out_pid err_pid n=0
  echo "==> $title ($id)"
  start=$(now_ms)
  # The command stays in the foreground (Ctrl-C reaches it); the tees are not waited for,
  # so a daemon the step starts, which keeps their pipes open, cannot hold this script.
  # The descriptors are closed in the command's shell, so no daemon inherits them; nor
  # the lock's (9), which a daemon would otherwise hold after this script exits.
  exec {out_fd}> >(exec 9>&-; tee "$STEP_OUT")
  out_pid=$!
  exec {err_fd}> >(exec {out_fd}>&- 9>&-; tee "$STEP_ERR" >&2)
  err_pid=$!
  # shellcheck disable=SC2261 # one redirection per stream: shellcheck misreads >&"$fd"
  (exec {out_fd}>&- {err_fd}>&- 9>&- && cd "$WORK_DIR/$dir" && timeout "$limit" bash -e -o pipefail -c "$command") >&"$out_fd" 2>&"$err_fd" || code=$?
  exec {out_fd}>&- {err_fd}>&-
  if [ "$code" -ne 0 ]; then
    # Let the tees write out what the command printed (at most a second).
    while [ "$n" -lt 20 ] && { kill -0 "$out_pid" || kill -0 "$err_pid"; } 2>/dev/null; do
      sleep 0.05
      n=$((n + 1))
    done
    FAIL_CHECK="" FAIL_COMMAND=$command FAIL_CODE=$code
    echo "    FAILED: the command exited with code $code" >&2
    return 1
  fi
  echo "    ok: command ($(( $(now_ms) - start )) ms)"
}

# version_satisfies VERSION "OP MAJOR MINOR PATCH"...: every bound holds.
version_key() { printf '%09d%09d%09d' "$((10#${1:-0}))" "$((10#${2:-0}))" "$((10#${3:-0}))"; }
version_satisfies() {
  local version=${1#v} bound op major minor patch have want
  shift
  version=${version%%[-+]*}
  IFS=. read -r major minor patch _ <<< "$version.."
  have=$(version_key "$major" "$minor" "$patch")
  for bound in "$@"; do
    read -r op major minor patch <<< "$bound"
    want=$(version_key "$major" "$minor" "$patch")
    case "$op" in
      '>=') [[ ! "$have" < "$want" ]] ;;
      '>') [[ "$have" > "$want" ]] ;;
      '<') [[ "$have" < "$want" ]] ;;
      '<=') [[ ! "$have" > "$want" ]] ;;
      '=') [ "$have" = "$want" ] ;;
    esac || return 1
  done
}

# need_tool TOOL REQUIREMENT DETECT_COMMAND ERE BOUND...: the tool is there, in a version
# that satisfies the requirement, read the way the sandbox read it.
need_tool() {
  local tool=$1 requirement=$2 detect=$3 pattern=$4 out version
  shift 4
  REQUIRED[$tool]=$requirement
  if ! out=$(bash -c "$detect" 2>&1 9>&-); then
    echo "    FAILED: $tool: \`$detect\` failed; is $tool installed and on PATH ($PATH)?" >&2
    return 1
  fi
  if [[ "$out" =~ $pattern ]]; then
    version=${BASH_REMATCH[1]:-${BASH_REMATCH[0]}}
  else
    echo "    FAILED: $tool: cannot read a version from \`$detect\`: $out" >&2
    return 1
  fi
  if ! version_satisfies "$version" "$@"; then
    echo "    FAILED: $tool $version does not satisfy $requirement" >&2
    return 1
  fi
  FOUND[$tool]=$version
  echo "    ok: $tool $version ($(command -v "$tool" || echo "$detect"))"
}
"#;

/// Writes `feedback/<UTC time>-<step>.yaml` when a step or a check fails on the target:
/// what failed, the last lines of its output with every secret's value masked, and the
/// target's facts. Plain bash and coreutils, so it works wherever the scripts do.
const FEEDBACK_LIBRARY: &str = r##"# yaml_quote TEXT: TEXT as a YAML double-quoted scalar (control characters dropped).
yaml_quote() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/\\t}; s=${s//$'\n'/\\n}; s=${s//[[:cntrl:]]/}
  printf '"%s"' "$s"
}
# mask TEXT: TEXT with the value of every secret variable, and every piece of one of 8
# characters or more (a value a tool cut short), replaced by ***.
mask() {
  local text=$1 name value len k
  for name in "${SECRET_NAMES[@]}"; do
    value=${!name:-}
    [ -n "$value" ] || continue
    text=${text//"$value"/***}
    # Longest pieces first, so each is masked whole.
    for ((len = ${#value} - 1; len >= 8; len--)); do
      for ((k = 0; k + len <= ${#value}; k++)); do
        text=${text//"${value:k:len}"/***}
      done
    done
  done
  printf '%s' "$text"
}
# yaml_lines KEY FILE: the last 20 lines of FILE (at most its last 16 KiB, a cut first
# line dropped so no partial secret survives), masked, as a YAML list under KEY.
yaml_lines() {
  local key=$1 file=$2 line items=()
  [ -s "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line=$(mask "$line")
    items+=("  - $(yaml_quote "${line:0:1000}")")
  done < <(
    if [ "$(wc -c < "$file")" -gt 16384 ]; then tail -c 16384 "$file" | sed 1d; else cat "$file"; fi |
      if command -v iconv >/dev/null; then iconv -c -f UTF-8 -t UTF-8; else cat; fi | tail -n 20
  )
  [ "${#items[@]}" -eq 0 ] || printf '%s\n' "$key:" "${items[@]}"
}
# write_feedback STEP: records the last failure for the runbook's maintainers
# (RUNBOOK_NO_FEEDBACK=1: not, for a failure that is expected).
write_feedback() {
  local step=$1 dir="$PACKAGE_DIR/feedback" file stamp os n=1 tool
  [ -z "${RUNBOOK_NO_FEEDBACK:-}" ] || return 0
  if ! { mkdir -p "$dir" 2>/dev/null && [ -w "$dir" ]; }; then
    dir="$WORK_DIR/feedback"
    mkdir -p "$dir" || return 0
  fi
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  file="$dir/$stamp-$step.yaml"
  while [ -e "$file" ]; do n=$((n + 1)); file="$dir/$stamp-$step-$n.yaml"; done
  os=$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"') || true
  (
    umask 077
    echo "# What failed on this target, for the runbook's maintainers. Secrets are masked."
    echo "apiVersion: runbook/v1"
    echo "kind: Feedback"
    if [ -f "$PACKAGE_DIR/SHA256SUMS" ] && command -v sha256sum >/dev/null; then
      echo "package: $(sha256sum "$PACKAGE_DIR/SHA256SUMS" | cut -d' ' -f1)"
    fi
    echo "runbook:"
    echo "  name: $(yaml_quote "$RUNBOOK_NAME")"
    [ -z "$RUNBOOK_VERSION" ] || echo "  version: $(yaml_quote "$RUNBOOK_VERSION")"
    [ -z "$RUNBOOK_PLATFORM" ] || echo "  platform: $(yaml_quote "$RUNBOOK_PLATFORM")"
    echo "phase: $PHASE"
    echo "step: $(yaml_quote "$step")"
    [ -z "$FAIL_CHECK" ] || echo "check: $(yaml_quote "$(mask "$FAIL_CHECK")")"
    echo "command: $(yaml_quote "$(mask "$FAIL_COMMAND")")"
    [ -z "$FAIL_CODE" ] || echo "exitCode: $FAIL_CODE"
    yaml_lines stdout "$STEP_OUT"
    yaml_lines stderr "$STEP_ERR"
    echo "target:"
    echo "  os: $(yaml_quote "${os:-$(uname -s)}")"
    echo "  kernel: $(yaml_quote "$(uname -r)")"
    echo "  architecture: $(yaml_quote "$(uname -m)")"
    echo "  user: $(yaml_quote "$(id -un 2>/dev/null || id -u)")"
    if [ "${#REQUIRED[@]}" -gt 0 ]; then
      echo "  tools:"
      for tool in "${!REQUIRED[@]}"; do
        echo "    - tool: $(yaml_quote "$tool")"
        echo "      required: $(yaml_quote "${REQUIRED[$tool]}")"
        [ -z "${FOUND[$tool]:-}" ] || echo "      found: $(yaml_quote "${FOUND[$tool]}")"
      done
    fi
    echo "time: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ) > "$file" || return 0
  echo "Feedback written to $file: send it to the runbook's maintainers, or make a lesson of it:" >&2
  echo "  runbook feedback '$file' --lessons DIR --check 'A COMMAND THAT WOULD HAVE CAUGHT IT' [--cause ... --fix ...]" >&2
}
"##;

const JOURNAL_LIBRARY: &str = r#"# The journal: what deploy.sh started and completed, and the files it rendered.
journal() { refuse_link "$JOURNAL" "the journal"; printf '%s\n' "$*" >> "$JOURNAL"; }
# known_step ID: ID is one of the steps this script was generated with. A journal line
# is data: an id is compared as text before any use, because an associative-array
# subscript is expanded again (by unset, for one), so `started $(cmd)` would run cmd.
known_step() {
  local s
  for s in "${STEPS[@]}"; do [ "$s" != "$1" ] || return 0; done
  return 1
}
# file_index STEP PATH: the index in FILE_PATHS of the config file PATH that STEP renders;
# fails for any other pair (a path like ../../etc/x is never removed).
file_index() {
  local i
  for i in "${!FILE_PATHS[@]}"; do
    if [ "${FILE_STEPS[$i]}" = "$1" ] && [ "${FILE_PATHS[$i]}" = "$2" ]; then echo "$i"; return 0; fi
  done
  return 1
}
# shellcheck disable=SC2034 # COMPLETED is read by deploy.sh, RENDERED by rollback.sh
declare -A STARTED=() COMPLETED=()
# shellcheck disable=SC2034
load_journal() {
  STARTED=(); COMPLETED=(); RENDERED=()
  [ -f "$JOURNAL" ] || return 0
  local what id rest n=0 i
  while read -r what id rest || [ -n "$what" ]; do
    n=$((n + 1))
    case "$what" in
      '' | again) continue ;;
      started | completed | rolledback) [ -z "$rest" ] && known_step "$id" ;;
      file) i=$(file_index "$id" "$rest") && RENDERED+=("$i") ;;
      *) false ;;
    esac || {
      echo "WARNING: ignored line $n of $JOURNAL: not a step or config file of this runbook" >&2
      continue
    }
    case "$what" in
      # A step started again is incomplete until it completes again; `--again` forgets
      # nothing, so a re-run that fails still leaves every deployed step to roll back.
      started) STARTED[$id]=1; unset "COMPLETED[$id]" ;;
      completed) COMPLETED[$id]=1 ;;
      rolledback) unset "STARTED[$id]" "COMPLETED[$id]" ;;
    esac
  done < "$JOURNAL"
}

"#;

/// `render_config`, which fills the `${NAME}` placeholders of `names` (the declared
/// variables the config files name) exactly as [`runbook_core::template::fill_template`]
/// does in the sandbox: one pass from left to right; `${` up to the first `}` is a
/// placeholder when what is between is one of `names`, and is replaced by its value; all
/// else stays as written, and a value is never scanned again (a value holding `${OTHER}`
/// is written as it is).
fn render_config(names: &[&str]) -> String {
    let mut out = String::from(
        r#"# render_config STEP PATH MODE: fills the ${VAR} placeholders of PACKAGE_DIR/PATH from the
# environment into RENDER_DIR/PATH (mode MODE: 0600 when it holds a secret), and journals
# it for rollback.sh. One pass, as the sandbox fills them: the text before each `${` is
# copied; `${NAME}` of a declared variable becomes its value, which is never scanned
# again; anything else stays as written. Parameter expansion only (no eval, no envsubst).
# Line by line (each line keeps its newline), which changes nothing, as no name holds a
# newline, and keeps it linear in the size of the file.
render_config() {
  local rest out="" name="" lines=()
  mapfile lines < "$PACKAGE_DIR/$2"
  for rest in "${lines[@]}"; do
    while [[ "$rest" == *'${'* ]]; do
      out+=${rest%%'${'*}
      rest=${rest#*'${'}
      name=""
      [[ "$rest" != *'}'* ]] || name=${rest%%'}'*}
      case "$name" in
"#,
    );
    if !names.is_empty() {
        let _ = writeln!(
            out,
            "        {}) out+=${{!name}}; rest=${{rest#*'}}'}} ;;",
            names.join(" | ")
        );
    }
    out.push_str(
        r#"        *) out+='${' ;;
      esac
    done
    out+=$rest
  done
  mkdir -p "$(dirname "$RENDER_DIR/$2")"
  (umask 077 && printf '%s' "$out" > "$RENDER_DIR/$2")
  chmod "$3" "$RENDER_DIR/$2"
  if [ "$RENDER_DIR" = "$WORK_DIR" ]; then journal file "$1" "$2"; fi
}

"#,
    );
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
fn env_prefixes(runbook: &Runbook) -> Vec<&'static str> {
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

fn header(out: &mut String, runbook: &Runbook, report: Option<&Report>, kind: Kind) {
    let what = match kind {
        Kind::Deploy => "Deploy",
        Kind::Rollback => "Roll back",
        Kind::Verify => "Verify",
    };
    let _ = writeln!(out, "#!/usr/bin/env bash");
    out.push_str("# shellcheck disable=SC2016 # single-quoted commands, checks and titles are literal by design\n");
    let _ = writeln!(out, "# {what}: {}", runbook.display_title());
    let _ = writeln!(out, "# {}", verdict_line(report));
    out.push_str(
        "# Generated from runbook.yaml: each command and check is the runbook's, byte for byte;\n",
    );
    out.push_str(
        "# the comment above each step says whether it ran in the sandbox. Steps and rollbacks\n",
    );
    out.push_str(
        "# run under `bash -e -o pipefail` (a step fails at its first failing line), checks as\n",
    );
    out.push_str(if kind == Kind::Verify {
        "# written. Needs bash >= 4, coreutils (timeout, date, mktemp) and grep -P.\n"
    } else {
        "# written. Needs bash >= 4, coreutils (timeout, date, mktemp), grep -P and flock\n\
         # (util-linux: one deploy or rollback at a time in a work directory).\n"
    });
    let usage = match kind {
        Kind::Deploy => {
            "scripts/deploy.sh [--from STEP | --again] [--no-preflight] [--as-root] | --render-config DIR"
        }
        Kind::Rollback => {
            "scripts/rollback.sh [--all] [--to STEP] [--include-incomplete] [--yes] [--no-preflight] [--as-root]"
        }
        Kind::Verify => "scripts/verify.sh [--from STEP] [--once] [--no-preflight]",
    };
    let _ = writeln!(
        out,
        "# Usage: RUNBOOK_WORK_DIR=DIR (default: the package's work/) {usage}"
    );
    out.push_str("set -euo pipefail\n");
    out.push_str(
        "# The locale the sandbox gave every command.\nexport LANG=C.UTF-8 LC_ALL=C.UTF-8\n\n",
    );
}

fn arguments(out: &mut String, kind: Kind, ids: &[&str], as_root: bool) {
    let as_root_usage = if as_root { " [--as-root]" } else { "" };
    let (vars, usage) = match kind {
        Kind::Deploy => (
            "FROM AGAIN NO_PREFLIGHT RENDER_TO",
            format!(
                "[--from STEP | --again] [--no-preflight]{as_root_usage} | --render-config DIR"
            ),
        ),
        Kind::Rollback => (
            "TO ALL YES INCLUDE_INCOMPLETE NO_PREFLIGHT",
            format!(
                "[--all] [--to STEP] [--include-incomplete] [--yes] [--no-preflight]{as_root_usage}"
            ),
        ),
        Kind::Verify => (
            "FROM NO_PREFLIGHT",
            "[--from STEP] [--once] [--no-preflight]".to_owned(),
        ),
    };
    let mut vars: Vec<&str> = vars.split(' ').collect();
    if as_root {
        vars.push("AS_ROOT");
    }
    let _ = writeln!(
        out,
        "{}",
        vars.iter()
            .map(|v| format!("{v}=\"\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(out, "usage() {{ echo \"usage: $0 {usage}\"; }}");
    out.push_str("while [ $# -gt 0 ]; do\n  case \"$1\" in\n");
    match kind {
        Kind::Deploy => {
            out.push_str("    --from) FROM=\"${2:?--from needs a step id}\"; shift 2 ;;\n");
            out.push_str("    --again) AGAIN=1; shift ;;\n");
            out.push_str(
                "    --render-config) RENDER_TO=\"${2:?--render-config needs a directory}\"; shift 2 ;;\n",
            );
        }
        Kind::Rollback => {
            out.push_str("    --to) TO=\"${2:?--to needs a step id}\"; shift 2 ;;\n");
            out.push_str("    --all) ALL=1; shift ;;\n");
            out.push_str("    --yes|-y) YES=1; shift ;;\n");
            out.push_str("    --include-incomplete) INCLUDE_INCOMPLETE=1; shift ;;\n");
        }
        Kind::Verify => {
            out.push_str("    --from) FROM=\"${2:?--from needs a step id}\"; shift 2 ;;\n");
            out.push_str("    --once) export RUNBOOK_CHECK_ONCE=1; shift ;;\n");
        }
    }
    if as_root {
        out.push_str("    --as-root) AS_ROOT=1; shift ;;\n");
    }
    out.push_str("    --no-preflight) NO_PREFLIGHT=1; shift ;;\n");
    out.push_str("    -h|--help) usage; exit 0 ;;\n");
    out.push_str("    *) usage >&2; exit 2 ;;\n  esac\ndone\n");
    let _ = writeln!(
        out,
        "STEPS=({})",
        ids.iter()
            .map(|i| sh_quote(i))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let wanted = if kind == Kind::Rollback { "TO" } else { "FROM" };
    let _ = writeln!(
        out,
        "if [ -n \"${wanted}\" ] && [[ \" ${{STEPS[*]}} \" != *\" ${wanted} \"* ]]; then\n  \
         echo \"unknown step '${wanted}'; steps: ${{STEPS[*]}}\" >&2\n  exit 2\nfi"
    );
    if kind == Kind::Deploy {
        out.push_str("if [ -n \"$FROM\" ] && [ -n \"$AGAIN\" ]; then echo \"--from and --again exclude each other\" >&2; exit 2; fi\n");
    }
    out.push('\n');
}

/// The unprivileged user the sandbox ran steps as, when the package was tested so.
fn sandbox_user(report: Option<&Report>) -> Option<&str> {
    report
        .map(|r| r.sandbox.user.as_str())
        .filter(|u| !u.is_empty() && *u != "root")
}

fn preflight(out: &mut String, runbook: &Runbook, kind: Kind) {
    out.push_str("preflight() {\n  local failed=0\n  echo \"==> Pre-flight: the tools this runbook was tested with\"\n");
    for p in &runbook.prerequisites {
        let pattern = p
            .version_pattern
            .as_deref()
            .map_or_else(|| r"([0-9]+\.[0-9]+(\.[0-9]+)?)".to_owned(), to_ere);
        let bounds = p.requirement().map(|r| bounds(&r)).unwrap_or_default();
        let _ = writeln!(
            out,
            "  need_tool {} {} {} {}{} || failed=1",
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
    if kind == Kind::Deploy && !runbook.preflight.is_empty() {
        out.push_str("  echo \"==> Pre-flight checks (before any change)\"\n");
        for item in &runbook.preflight {
            let check = Check {
                name: Some(item.label()),
                ..item.check.clone()
            };
            let learnt = item.origin.as_deref().map_or_else(String::new, |o| {
                format!("echo {} >&2; ", sh_quote(&format!("      learnt from {o}")))
            });
            check_call(out, runbook, &check, &format!("{{ {learnt}failed=1; }}"));
        }
    }
    out.push_str("  if [ \"$failed\" -ne 0 ]; then\n    echo \"Pre-flight failed: nothing was changed. Fix what it names (or pass --no-preflight at your own risk).\" >&2\n    exit 1\n  fi\n}\n\n");
}

fn identity(out: &mut String, report: Option<&Report>, kind: Kind) {
    if kind == Kind::Verify {
        return;
    }
    match sandbox_user(report) {
        Some(user) => {
            let _ = writeln!(
                out,
                "# The sandbox ran every command as an unprivileged user ({user}), not as root.\n\
                 if [ \"$(id -u)\" -eq 0 ] && [ -z \"$AS_ROOT\" ]; then\n  \
                 echo \"refusing to run as root: the sandbox ran these commands as an unprivileged user ({user}). Run as the user that should own what this deploys, or pass --as-root.\" >&2\n  \
                 exit 2\nfi\n"
            );
        }
        None if report.is_none() => {
            out.push_str(
                "if [ \"$(id -u)\" -eq 0 ]; then\n  echo \"WARNING: running as root; this package was not tested, so nobody knows whether its commands expect root.\" >&2\nfi\n\n",
            );
        }
        None => {}
    }
}

fn environment_warning(out: &mut String, runbook: &Runbook) {
    let prefixes = env_prefixes(runbook);
    if prefixes.is_empty() {
        return;
    }
    let declared: Vec<&str> = runbook.variables.iter().map(|v| v.name.as_str()).collect();
    let _ = writeln!(
        out,
        "# The sandbox gave commands a clean environment: variables like these were not set there.\n\
         warn_environment() {{\n  local name found=()\n  for name in $(compgen -e); do\n    case \"$name\" in\n      {}) ;;\n      {}) found+=(\"$name\") ;;\n    esac\n  done\n  \
         if [ \"${{#found[@]}}\" -gt 0 ]; then\n    \
         echo \"WARNING: these variables are set here, change how the runbook's tools behave, and were not set in the sandbox: ${{found[*]}}. Unset them unless they are intended.\" >&2\n  fi\n}}\n",
        if declared.is_empty() {
            "RUNBOOK_NONE_".to_owned()
        } else {
            declared.join("|")
        },
        prefixes
            .iter()
            .map(|p| format!("{p}*"))
            .collect::<Vec<_>>()
            .join("|")
    );
}

fn script(runbook: &Runbook, report: Option<&Report>, kind: Kind) -> String {
    let mut out = String::new();
    let order: Vec<&Step> = match kind {
        Kind::Deploy | Kind::Rollback => runbook.steps.iter().collect(),
        Kind::Verify => runbook
            .steps
            .iter()
            .filter(|s| !s.verify.is_empty())
            .collect(),
    };
    header(&mut out, runbook, report, kind);
    let ids: Vec<&str> = order.iter().map(|s| s.id.as_str()).collect();
    arguments(
        &mut out,
        kind,
        &ids,
        kind != Kind::Verify && sandbox_user(report).is_some(),
    );

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
    let (step_default, check_default) = timeouts(report);
    let _ = writeln!(
        out,
        "CHECK_TIMEOUT=\"${{RUNBOOK_CHECK_TIMEOUT:-{}}}\"",
        check_default.as_secs().max(1)
    );
    out.push_str(REFUSE_LINK);
    out.push_str("mkdir -p \"$WORK_DIR\"\n");
    out.push_str("WORK_DIR=\"$(cd \"$WORK_DIR\" && pwd)\"\n");
    out.push_str("refuse_link \"$WORK_DIR\" \"the work directory\"\n");
    if kind != Kind::Verify {
        out.push_str("JOURNAL=\"$WORK_DIR/.runbook-journal\" LOCK=\"$WORK_DIR/.runbook-lock\"\n");
    }
    out.push('\n');
    let secret_names: Vec<&str> = runbook
        .variables
        .iter()
        .filter(|v| v.hides_value())
        .map(|v| v.name.as_str())
        .collect();
    let _ = writeln!(
        out,
        "# For feedback files: what this package is, and which values to mask.\n\
         RUNBOOK_NAME={} RUNBOOK_VERSION={} RUNBOOK_PLATFORM={} PHASE={}\nSECRET_NAMES=({})",
        sh_quote(&runbook.metadata.name),
        sh_quote(&runbook.metadata.version),
        sh_quote(runbook.target.platform.as_deref().unwrap_or("")),
        kind_prefix(kind),
        secret_names
            .iter()
            .map(|n| sh_quote(n))
            .collect::<Vec<_>>()
            .join(" ")
    );
    out.push_str(LIBRARY);
    out.push_str(FEEDBACK_LIBRARY);
    if kind != Kind::Verify {
        journal_files(&mut out, runbook);
        out.push_str(JOURNAL_LIBRARY);
    }
    out.push('\n');
    preflight(&mut out, runbook, kind);
    identity(&mut out, report, kind);
    environment_warning(&mut out, runbook);

    if kind == Kind::Deploy && !runbook.config_files.is_empty() {
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
        out.push_str(&render_config(&names));
    }

    let total = order.len();
    for (n, step) in order.iter().enumerate() {
        let func = function_name(kind_prefix(kind), &step.id);
        let _ = writeln!(
            out,
            "# Step {}/{total}: {} ({})",
            n + 1,
            step.title.replace('\n', " "),
            step_evidence(report, &step.id)
        );
        let _ = writeln!(out, "{func}() {{");
        let on_fail = if kind == Kind::Verify {
            format!("{{ write_feedback {}; return 1; }}", sh_quote(&step.id))
        } else {
            format!("fail {}", sh_quote(&step.id))
        };
        match kind {
            Kind::Deploy => {
                for f in files_of(runbook, step, n) {
                    let holds_secret = runbook
                        .config_file(f)
                        .map(|c| runbook_core::template::template_references(&c.content))
                        .is_some_and(|refs| refs.iter().any(|r| secret_names.contains(&r.name)));
                    let _ = writeln!(
                        out,
                        "render_config {} {} {}",
                        sh_quote(&step.id),
                        sh_quote(f),
                        if holds_secret { "0600" } else { "0644" }
                    );
                }
                let label = format!("[{}/{total}] {}", n + 1, step.title);
                run_step_call(
                    &mut out,
                    runbook,
                    step,
                    &label,
                    &step.run,
                    (step.timeout, step_default),
                    &step.verify,
                    &on_fail,
                );
            }
            Kind::Rollback => match &step.rollback {
                Some(rollback) => {
                    let label = format!("[{}/{total}] Roll back: {}", n + 1, step.title);
                    run_step_call(
                        &mut out,
                        runbook,
                        step,
                        &label,
                        &rollback.run,
                        (rollback.timeout, step_default),
                        &rollback.verify,
                        &on_fail,
                    );
                    if rollback.verify.is_empty() {
                        out.push_str("  UNVERIFIED=$((UNVERIFIED + 1))\n");
                    }
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  echo {}",
                        sh_quote(&format!(
                            "==> [{}/{total}] {} ({}): no rollback declared; left as it is",
                            n + 1,
                            step.title,
                            step.id
                        ))
                    );
                }
            },
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
                    check_call(&mut out, runbook, c, &on_fail);
                }
            }
        }
        out.push_str("}\n\n");
    }
    main(&mut out, runbook, kind);
    out
}

/// The config files a step renders before it runs: its own, and for the first step the
/// files no step names.
fn files_of<'a>(runbook: &'a Runbook, step: &'a Step, n: usize) -> Vec<&'a str> {
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

/// Defines `refuse_link PATH WHAT`, which stops the script when PATH is a symbolic link.
const REFUSE_LINK: &str = r#"# A symbolic link in place of the work directory (or of deploy.sh's and rollback.sh's
# journal and lock) would let whoever made it choose where this script writes and what
# state it reads: refuse it.
refuse_link() {
  if [ -L "$1" ]; then
    echo "refusing: $2 ($1) is a symbolic link; nothing was written through it" >&2
    exit 2
  fi
}
"#;

/// One deploy or rollback at a time: `flock` on `.runbook-lock` in the work directory,
/// for the whole run. The lock file is never removed (removing it would let two runs
/// lock two different files); its descriptor (9) is closed in every command the script
/// runs, so a daemon a step starts does not keep it locked.
const LOCK: &str = r#"refuse_link "$JOURNAL" "the journal"
refuse_link "$LOCK" "the lock file"
if ! command -v flock >/dev/null; then
  echo "this script needs flock (util-linux) to make sure it runs alone; nothing was changed" >&2
  exit 1
fi
# Created exclusively (noclobber never follows a link) and opened read-only: nothing is
# ever written to it, nor through a link put there in the meantime.
(set -C && : > "$LOCK") 2>/dev/null || true
refuse_link "$LOCK" "the lock file"
exec 9<"$LOCK"
if ! flock -n 9; then
  echo "refusing: another deploy.sh or rollback.sh is running in $WORK_DIR (it holds the lock $LOCK); nothing was changed. Wait for it to finish, then run this again." >&2
  exit 4
fi
"#;

/// The config files each step renders, for `load_journal` to check a journal's `file`
/// lines against: `FILE_STEPS[i]` renders `FILE_PATHS[i]`.
fn journal_files(out: &mut String, runbook: &Runbook) {
    let mut steps = Vec::new();
    let mut paths = Vec::new();
    for (n, step) in runbook.steps.iter().enumerate() {
        for f in files_of(runbook, step, n) {
            steps.push(sh_quote(&step.id));
            paths.push(sh_quote(f));
        }
    }
    let _ = writeln!(
        out,
        "# The config files each step renders: FILE_STEPS[i] renders FILE_PATHS[i].\nFILE_STEPS=({}) FILE_PATHS=({})",
        steps.join(" "),
        paths.join(" ")
    );
}

const FAIL: &str = r#"fail() {
  write_feedback "$1"
  echo "FAILED at step $1. Fix the cause, then resume with: $0 --from $1 (or undo what ran with scripts/rollback.sh)" >&2
  exit 1
}
"#;

const ROLLBACK_FAIL: &str = r#"fail() {
  write_feedback "$1"
  echo "FAILED rolling back step $1. Fix the cause, then run $0 again: it goes on with what the journal shows is still deployed." >&2
  exit 1
}
"#;

fn main(out: &mut String, runbook: &Runbook, kind: Kind) {
    let prefix = kind_prefix(kind);
    let has_env_warning = !env_prefixes(runbook).is_empty();
    if kind != Kind::Verify {
        out.push_str(LOCK);
    }
    match kind {
        Kind::Deploy => {
            out.push_str(FAIL);
            if !runbook.config_files.is_empty() {
                out.push_str("RENDER_DIR=\"$WORK_DIR\"\n");
                out.push_str("if [ -n \"$RENDER_TO\" ]; then\n  RENDER_DIR=\"$RENDER_TO\"\n");
                for (n, step) in runbook.steps.iter().enumerate() {
                    for f in files_of(runbook, step, n) {
                        let _ = writeln!(
                            out,
                            "  render_config {} {} 0600",
                            sh_quote(&step.id),
                            sh_quote(f)
                        );
                    }
                }
                out.push_str("  echo \"Config files rendered into $RENDER_TO (mode 0600): nothing else was done.\"\n  exit 0\nfi\n");
            } else {
                out.push_str("if [ -n \"$RENDER_TO\" ]; then echo \"this runbook has no config files\"; exit 0; fi\n");
            }
            out.push_str("[ -n \"$NO_PREFLIGHT\" ] || preflight\n");
            if has_env_warning {
                out.push_str("warn_environment\n");
            }
            out.push_str(
                r#"load_journal
if [ -z "$FROM" ] && [ -z "$AGAIN" ] && [ "${#STARTED[@]}" -gt 0 ]; then
  for step in "${STEPS[@]}"; do
    if [ -z "${COMPLETED[$step]:-}" ]; then
      echo "An earlier deploy stopped at step $step (journal: $JOURNAL). Resume with --from $step, roll back with scripts/rollback.sh, or start over with --again." >&2
      exit 3
    fi
  done
  echo "Already deployed: the journal ($JOURNAL) shows every step completed. Check it with scripts/verify.sh; repeat it with --again." >&2
  exit 3
fi
if [ -n "$AGAIN" ]; then journal again; fi
STARTED_AT=""
[ -z "$FROM" ] && STARTED_AT=1
for step in "${STEPS[@]}"; do
  [ "$step" = "$FROM" ] && STARTED_AT=1
  [ -n "$STARTED_AT" ] || continue
  journal started "$step"
"#,
            );
            let _ = writeln!(out, "  \"{prefix}_${{step//-/_}}\"");
            out.push_str("  journal completed \"$step\"\ndone\necho \"Deployed: every step passed its checks.\"\n");
        }
        Kind::Rollback => {
            out.push_str(ROLLBACK_FAIL);
            out.push_str("[ -n \"$NO_PREFLIGHT\" ] || preflight\n");
            if has_env_warning {
                out.push_str("warn_environment\n");
            }
            out.push_str(
                r#"load_journal
PLAN=() INCOMPLETE=()
for (( i=${#STEPS[@]}-1; i>=0; i-- )); do
  step=${STEPS[$i]}
  if [ -n "$ALL" ] || [ -n "${COMPLETED[$step]:-}" ]; then
    PLAN+=("$step")
  elif [ -n "${STARTED[$step]:-}" ]; then
    if [ -n "$INCLUDE_INCOMPLETE" ]; then PLAN+=("$step"); else INCOMPLETE+=("$step"); fi
  fi
done
if [ "${#INCOMPLETE[@]}" -gt 0 ]; then
  echo "Not rolled back: ${INCOMPLETE[*]} started but did not complete, so its rollback could undo what was there before this deploy. Inspect it, then add --include-incomplete if its rollback is right." >&2
fi
if [ -n "$TO" ]; then
  if [[ " ${PLAN[*]} " != *" $TO "* ]]; then
    echo "step '$TO' is not among the steps to roll back (${PLAN[*]:-none})" >&2
    exit 2
  fi
  CUT=()
  for step in "${PLAN[@]}"; do CUT+=("$step"); [ "$step" = "$TO" ] && break; done
  PLAN=("${CUT[@]}")
fi
if [ "${#PLAN[@]}" -eq 0 ]; then
  echo "Nothing to roll back: the journal ($JOURNAL) shows no deployed step. --all reverts every step regardless."
  exit 0
fi
echo "This rolls back, in this order: ${PLAN[*]}"
if [ -z "$YES" ]; then
  if [ ! -t 0 ]; then
    echo "refusing: rolling back can destroy data, and there is no terminal to confirm on. Re-run with --yes." >&2
    exit 2
  fi
  read -r -p "Proceed? [y/N] " answer
  case "$answer" in y|Y|yes|YES) ;; *) echo "Nothing was changed."; exit 1 ;; esac
fi
UNVERIFIED=0
for step in "${PLAN[@]}"; do
"#,
            );
            let _ = writeln!(out, "  \"{prefix}_${{step//-/_}}\"");
            out.push_str(
                r#"  if [ -f "$JOURNAL" ]; then
    # The config files the journal says this step rendered (load_journal kept only the
    # files the step renders).
    for i in "${RENDERED[@]}"; do
      if [ "${FILE_STEPS[$i]}" = "$step" ]; then rm -f -- "${WORK_DIR:?}/${FILE_PATHS[$i]}"; fi
    done
    journal rolledback "$step"
  fi
done
if [ "$UNVERIFIED" -gt 0 ]; then
  echo "Rolled back: ${PLAN[*]}. $UNVERIFIED rollback(s) have no checks: confirm those by hand."
else
  echo "Rolled back: ${PLAN[*]}; every rollback passed its checks."
fi
"#,
            );
        }
        Kind::Verify => {
            out.push_str("[ -n \"$NO_PREFLIGHT\" ] || preflight\n");
            out.push_str("STARTED_AT=\"\"\n[ -z \"$FROM\" ] && STARTED_AT=1\nFAILED=0\n");
            out.push_str("for step in \"${STEPS[@]}\"; do\n");
            out.push_str("  [ \"$step\" = \"$FROM\" ] && STARTED_AT=1\n  [ -n \"$STARTED_AT\" ] || continue\n");
            let _ = writeln!(
                out,
                "  \"{prefix}_${{step//-/_}}\" || FAILED=$((FAILED + 1))"
            );
            out.push_str("done\nif [ \"$FAILED\" -gt 0 ]; then\n  echo \"$FAILED step(s) failed verification\" >&2\n  exit 1\nfi\n");
            out.push_str("echo \"All verifications passed.\"\n");
        }
    }
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
