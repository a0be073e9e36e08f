#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted commands, checks and titles are literal by design
# Roll back: Deploy PostgreSQL 15 for myapp
# Tested in a sandbox: passed (rollbacks exercised: passed). Rehearsed: the scripts in this package ran end to end in a fresh sandbox with other values.
# Generated from runbook.yaml: each command and check is the runbook's, byte for byte;
# the comment above each step says whether it ran in the sandbox. Steps and rollbacks
# run under `bash -e -o pipefail` (a step fails at its first failing line), checks as
# written. Needs bash >= 4, coreutils (timeout, date, mktemp), grep -P and flock
# (util-linux: one deploy or rollback at a time in a work directory).
# Usage: RUNBOOK_WORK_DIR=DIR (default: the package's work/) scripts/rollback.sh [--all] [--to STEP] [--include-incomplete] [--yes] [--no-preflight] [--as-root]
set -euo pipefail
# The locale the sandbox gave every command.
export LANG=C.UTF-8 LC_ALL=C.UTF-8

TO="" ALL="" YES="" INCLUDE_INCOMPLETE="" NO_PREFLIGHT="" AS_ROOT=""
usage() { echo "usage: $0 [--all] [--to STEP] [--include-incomplete] [--yes] [--no-preflight] [--as-root]"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --to) TO="${2:?--to needs a step id}"; shift 2 ;;
    --all) ALL=1; shift ;;
    --yes|-y) YES=1; shift ;;
    --include-incomplete) INCLUDE_INCOMPLETE=1; shift ;;
    --as-root) AS_ROOT=1; shift ;;
    --no-preflight) NO_PREFLIGHT=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
STEPS=('init-cluster' 'start-server' 'create-app-db')
if [ -n "$TO" ] && [[ " ${STEPS[*]} " != *" $TO "* ]]; then
  echo "unknown step '$TO'; steps: ${STEPS[*]}" >&2
  exit 2
fi

# Every variable must be set for your environment: see adaptation-checklist.md.
: "${PGDATA:?PGDATA is not set: see adaptation-checklist.md}"
: "${PGHOST:?PGHOST is not set: see adaptation-checklist.md}"
: "${PGPORT:?PGPORT is not set: see adaptation-checklist.md}"
: "${APP_DB:?APP_DB is not set: see adaptation-checklist.md}"
: "${APP_USER:?APP_USER is not set: see adaptation-checklist.md}"
: "${PG_SUPERUSER_PASSWORD:?PG_SUPERUSER_PASSWORD is not set: see adaptation-checklist.md}"
: "${APP_PASSWORD:?APP_PASSWORD is not set: see adaptation-checklist.md}"
export PGDATA PGHOST PGPORT APP_DB APP_USER PG_SUPERUSER_PASSWORD APP_PASSWORD

PACKAGE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK_DIR="${RUNBOOK_WORK_DIR:-$PACKAGE_DIR/work}"
CHECK_TIMEOUT="${RUNBOOK_CHECK_TIMEOUT:-60}" CHECK_MIN_MS=1000

# For feedback files and the outcome: what this package is, and which values to mask.
RUNBOOK_NAME='postgres' RUNBOOK_VERSION='1.0.0' RUNBOOK_PLATFORM='' PHASE=rollback
SECRET_NAMES=('PG_SUPERUSER_PASSWORD' 'APP_PASSWORD')

# The library of deploy.sh, rollback.sh and verify.sh, made from one source
# (runbook-render/src/scripts/library.sh): each script holds a copy, so that it runs alone
# wherever the package is copied. The script sets PACKAGE_DIR, WORK_DIR, CHECK_TIMEOUT,
# CHECK_MIN_MS, RUNBOOK_NAME, RUNBOOK_VERSION, RUNBOOK_PLATFORM, PHASE and SECRET_NAMES
# before it.

# A symbolic link in place of the work directory (or of deploy.sh's and rollback.sh's
# journal and lock) would let whoever made it choose where this script writes and what
# state it reads: refuse it.
refuse_link() {
  if [ -L "$1" ]; then
    refuse 2 "refusing: $2 ($1) is a symbolic link; nothing was written through it"
  fi
}
# refuse CODE MESSAGE: the script will not go on: MESSAGE goes to stderr and into the
# outcome (status refused), and the script exits with CODE.
refuse() {
  echo "$2" >&2
  [ -n "$OUTCOME_STATUS" ] || OUTCOME_STATUS=refused OUTCOME_REASON=$2
  exit "$1"
}
# now_ms: NOW_MS, milliseconds since the epoch, without a process where bash has
# EPOCHREALTIME (5+): set, not printed, so that reading the clock needs no subshell.
now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local t=${EPOCHREALTIME/[.,]/}
    NOW_MS=$(( 10#$t / 1000 ))
  else
    NOW_MS=$(date +%s%3N)
  fi
}
# A step's output goes to the terminal as it comes and, through tee, to these files, for
# the feedback file if it fails.
OUTDIR=$(mktemp -d)
STEP_OUT=$OUTDIR/stdout STEP_ERR=$OUTDIR/stderr ERRFILE=$OUTDIR/check-stderr
# What failed last (a check, a step's command, a tool), for the feedback file and the outcome.
FAIL_COMMAND="" FAIL_CODE="" FAIL_CHECK="" FAIL_REASON=""
declare -A FOUND=() REQUIRED=()
# How this script ended, for `.runbook-outcome` (see write_outcome): written on exit once
# the work directory is known.
OUTCOME="" OUTCOME_STATUS="" OUTCOME_STEP="" OUTCOME_CHECK="" OUTCOME_REASON=""
trap 'on_exit $?' EXIT

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
# expectation or WITHIN_MS passes. An attempt gets the time left until WITHIN_MS (at
# least CHECK_MIN_MS), or CHECK_TIMEOUT seconds without WITHIN_MS: the sandbox's rule
# (Retry::attempt_limit in runbook-core), so an attempt ends where it ended there.
check() {
  local name=$1 expected=$2 within=$3 interval=$4 want_exit=$5
  local out_mode=$6 out_want=$7 err_mode=$8 err_want=$9 command=${10}
  local deadline limit left attempt=0 code out err seen errfile=$ERRFILE
  now_ms
  deadline=$(( NOW_MS + within ))
  while :; do
    attempt=$((attempt + 1))
    limit=$CHECK_TIMEOUT
    if [ "$within" -gt 0 ]; then
      now_ms
      left=$(( deadline - NOW_MS ))
      [ "$left" -ge "$CHECK_MIN_MS" ] || left=$CHECK_MIN_MS
      # Seconds with three decimals, as timeout(1) reads them.
      limit=$((left / 1000)).$((left / 100 % 10))$((left / 10 % 10))$((left % 10))
    fi
    code=0
    out=$(cd "$WORK_DIR" && timeout "$limit" bash -c "$command" 2>"$errfile" 9>&-) || code=$?
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
    # RUNBOOK_CHECK_ONCE=1 (verify.sh --once): one attempt each, no waiting for a state to come.
    now_ms
    if [ -n "${RUNBOOK_CHECK_ONCE:-}" ] || [ "$(( NOW_MS + interval ))" -ge "$deadline" ]; then
      break
    fi
    sleep "$((interval / 1000)).$(printf '%03d' $((interval % 1000)))"
  done
  FAIL_REASON="expected $expected; saw $seen (after $attempt attempt(s))"
  echo "    FAILED: $name: $FAIL_REASON" >&2
  return 1
}

# run_step ID TITLE TIMEOUT_S WORKDIR COMMAND: runs COMMAND as the sandbox did, with
# bash -e -o pipefail -c: it fails at its first failing line.
run_step() {
  local id=$1 title=$2 limit=$3 dir=$4 command=$5 start code=0 out_fd err_fd out_pid err_pid n=0
  echo "==> $title ($id)"
  now_ms
  start=$NOW_MS
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
    FAIL_REASON="the command exited with code $code"
    echo "    FAILED: $FAIL_REASON" >&2
    return 1
  fi
  now_ms
  echo "    ok: command ($(( NOW_MS - start )) ms)"
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
    FAIL_CHECK=$tool FAIL_REASON="\`$detect\` failed; is $tool installed and on PATH ($PATH)?"
    echo "    FAILED: $tool: $FAIL_REASON" >&2
    return 1
  fi
  if [[ "$out" =~ $pattern ]]; then
    version=${BASH_REMATCH[1]:-${BASH_REMATCH[0]}}
  else
    FAIL_CHECK=$tool FAIL_REASON="cannot read a version from \`$detect\`: $out"
    echo "    FAILED: $tool: $FAIL_REASON" >&2
    return 1
  fi
  if ! version_satisfies "$version" "$@"; then
    FAIL_CHECK=$tool FAIL_REASON="$tool $version does not satisfy $requirement"
    echo "    FAILED: $FAIL_REASON" >&2
    return 1
  fi
  FOUND[$tool]=$version
  echo "    ok: $tool $version ($(command -v "$tool" || echo "$detect"))"
}
# yaml_quote TEXT: TEXT as a YAML double-quoted scalar (control characters dropped).
yaml_quote() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/\\t}; s=${s//$'\n'/\\n}; s=${s//[[:cntrl:]]/}
  printf '"%s"' "$s"
}
# mask TEXT: TEXT with the value of every secret variable, and every piece of one of 8
# characters or more (a value a tool cut short), replaced by ***.
mask() {
  local masked
  mask_into masked "$1"
  printf '%s' "$masked"
}
# mask_into VAR TEXT: sets VAR to TEXT masked as mask does, without a subshell. Its own
# variables start with _m so that they never hide the caller's VAR.
mask_into() {
  local _mtext=$2 _mname _mvalue _mlen _mk _mpiece
  for _mname in "${SECRET_NAMES[@]}"; do
    _mvalue=${!_mname:-}
    [ -n "$_mvalue" ] || continue
    _mtext=${_mtext//"$_mvalue"/***}
    # Any piece of 8 or more holds an 8-character one: without one, nothing more to do.
    _mpiece=
    for ((_mk = 0; _mk + 8 <= ${#_mvalue}; _mk++)); do
      if [[ $_mtext == *"${_mvalue:_mk:8}"* ]]; then _mpiece=1; break; fi
    done
    [ -n "$_mpiece" ] || continue
    # Longest pieces first, so each is masked whole.
    for ((_mlen = ${#_mvalue} - 1; _mlen >= 8; _mlen--)); do
      for ((_mk = 0; _mk + _mlen <= ${#_mvalue}; _mk++)); do
        _mtext=${_mtext//"${_mvalue:_mk:_mlen}"/***}
      done
    done
  done
  printf -v "$1" '%s' "$_mtext"
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
  # Opened inside the subshell, under its umask: created 0600 whatever the operator's umask
  # (it holds the command's output), and exclusively (noclobber), never through a link.
  (
    umask 077
    set -C
    exec > "$file" || exit 1
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
  ) || return 0
  echo "Feedback written to $file: send it to the runbook's maintainers, or make a lesson of it:" >&2
  echo "  runbook feedback '$file' --lessons DIR --check 'A COMMAND THAT WOULD HAVE CAUGHT IT' [--cause ... --fix ...]" >&2
}

# The outcome: `.runbook-outcome` in the work directory says how the last script that ran
# there ended, for a program to read (the rehearsal does) rather than this English: one
# `key=value` a line, the value to the end of the line (control characters as spaces,
# secrets masked). `status` is running, passed, failed (a step, a check or the pre-flight
# failed) or refused (the script would not go on: a symbolic link, the lock, the journal's
# state, root, no confirmation); `phase` is deploy, rollback or verify; `exit` the exit
# code; `step` the step it failed at; `check` the check that failed (absent when a step's
# command did); `reason` what happened, in one line.

# note_failure [STEP]: the first failure this script reports is its outcome: STEP (none in
# the pre-flight), and the check and the reason the failed check or command left.
note_failure() {
  [ -z "$OUTCOME_STATUS" ] || return 0
  OUTCOME_STATUS=failed OUTCOME_STEP=${1:-} OUTCOME_CHECK=$FAIL_CHECK OUTCOME_REASON=$FAIL_REASON
}
# record_failure STEP: STEP failed: the outcome says so, and a feedback file tells why.
record_failure() {
  note_failure "$1"
  write_feedback "$1"
}
# outcome_line KEY VALUE: KEY=VALUE, masked, on one line; nothing for an empty VALUE.
outcome_line() {
  local value
  mask_into value "$2"
  [ -z "$value" ] || printf '%s=%s\n' "$1" "${value//[[:cntrl:]]/ }"
}
# write_outcome STATUS [EXIT]: replaces the outcome file whole: a new file, renamed over
# the old one, so that nothing is ever written through a link planted there. Where it
# cannot be written, nothing is.
write_outcome() {
  local tmp
  tmp=$(mktemp "$OUTCOME.XXXXXX" 2>/dev/null) || return 0
  if {
    echo "status=$1"
    echo "phase=$PHASE"
    outcome_line exit "${2:-}"
    outcome_line step "$OUTCOME_STEP"
    outcome_line check "$OUTCOME_CHECK"
    outcome_line reason "$OUTCOME_REASON"
  } > "$tmp" && mv -fT -- "$tmp" "$OUTCOME" 2>/dev/null; then
    return 0
  fi
  rm -f -- "$tmp"
}
# on_exit CODE: the temporary files go; the outcome is written (passed when CODE is 0).
on_exit() {
  local status=${OUTCOME_STATUS:-failed}
  rm -rf "$OUTDIR"
  [ "$1" -ne 0 ] || status=passed
  [ -z "$OUTCOME" ] || write_outcome "$status" "$1" || true
}
# enter_work_dir: creates the work directory (relative paths are relative to it) and
# refuses it if it is a symbolic link; from then on this script's outcome is written there.
enter_work_dir() {
  mkdir -p "$WORK_DIR"
  WORK_DIR="$(cd "$WORK_DIR" && pwd)"
  refuse_link "$WORK_DIR" "the work directory"
  OUTCOME="$WORK_DIR/.runbook-outcome"
  write_outcome running
}

# The config files each step renders: FILE_STEPS[i] renders FILE_PATHS[i].
FILE_STEPS=('init-cluster') FILE_PATHS=('config/postgresql.conf')
# The journal and the lock of deploy.sh and rollback.sh (verify.sh changes nothing and holds
# neither), copied into both from this one source (runbook-render/src/scripts/journal.sh),
# after library.sh. The script sets STEPS, FILE_STEPS, FILE_PATHS, JOURNAL and LOCK first.

# The journal: what deploy.sh started and completed, and the files it rendered.
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
# STARTED and COMPLETED: the steps the journal shows started and completed since their
# last rollback; STOPPED_AT: the step the last deploy started and did not complete (the
# one it failed at), empty when it completed what it started or that step was rolled back.
# shellcheck disable=SC2034 # COMPLETED and STOPPED_AT are read by deploy.sh, RENDERED by rollback.sh
declare -A STARTED=() COMPLETED=()
STOPPED_AT=""
# shellcheck disable=SC2034
load_journal() {
  STARTED=(); COMPLETED=(); RENDERED=(); STOPPED_AT=""
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
      # A step that completed stays completed when it is started again (`--again`,
      # `--from`): what it deployed is still there, so a re-run that fails still leaves it,
      # and every other deployed step, to roll back. Only its rollback clears it.
      started) STARTED[$id]=1; STOPPED_AT=$id ;;
      completed) COMPLETED[$id]=1; [ "$STOPPED_AT" != "$id" ] || STOPPED_AT="" ;;
      rolledback) unset "STARTED[$id]" "COMPLETED[$id]"; [ "$STOPPED_AT" != "$id" ] || STOPPED_AT="" ;;
    esac
  done < "$JOURNAL"
}

# lock_work_dir: one deploy or rollback at a time in a work directory, for the whole run:
# `flock` on the lock file, which is never removed (removing it would let two runs lock two
# different files). Its descriptor (9) is closed in every command the script runs, so a
# daemon a step starts does not keep it locked.
lock_work_dir() {
  refuse_link "$JOURNAL" "the journal"
  refuse_link "$LOCK" "the lock file"
  if ! command -v flock >/dev/null; then
    refuse 1 "this script needs flock (util-linux) to make sure it runs alone; nothing was changed"
  fi
  # Created exclusively (noclobber never follows a link) and opened read-only: nothing is
  # ever written to it, nor through a link put there in the meantime.
  (set -C && : > "$LOCK") 2>/dev/null || true
  refuse_link "$LOCK" "the lock file"
  exec 9<"$LOCK"
  if ! flock -n 9; then
    refuse 4 "refusing: another deploy.sh or rollback.sh is running in $WORK_DIR (it holds the lock $LOCK); nothing was changed. Wait for it to finish, then run this again."
  fi
}

enter_work_dir
JOURNAL="$WORK_DIR/.runbook-journal" LOCK="$WORK_DIR/.runbook-lock"

preflight() {
  echo "==> Pre-flight: the tools this runbook was tested with"
  need_tool 'initdb' '>=15, <16' 'initdb --version' '([0-9]+\.[0-9]+(\.[0-9]+)?)' '>= 15 0 0' '< 16 0 0' || note_failure
  need_tool 'pg_ctl' '>=15, <16' 'pg_ctl --version' '([0-9]+\.[0-9]+(\.[0-9]+)?)' '>= 15 0 0' '< 16 0 0' || note_failure
  need_tool 'psql' '>=15, <16' 'psql --version' '([0-9]+\.[0-9]+(\.[0-9]+)?)' '>= 15 0 0' '< 16 0 0' || note_failure
  if [ -n "$OUTCOME_STATUS" ]; then
    echo "Pre-flight failed: nothing was changed. Fix what it names (or pass --no-preflight at your own risk)." >&2
    exit 1
  fi
}

# The sandbox ran every command as an unprivileged user (rb-e41d9e83), not as root.
if [ "$(id -u)" -eq 0 ] && [ -z "$AS_ROOT" ]; then
  refuse 2 "refusing to run as root: the sandbox ran these commands as an unprivileged user (rb-e41d9e83). Run as the user that should own what this deploys, or pass --as-root."
fi

# The sandbox gave commands a clean environment: variables like these were not set there.
warn_environment() {
  local name found=()
  for name in $(compgen -e); do
    case "$name" in
      PGDATA|PGHOST|PGPORT|APP_DB|APP_USER|PG_SUPERUSER_PASSWORD|APP_PASSWORD) ;;
      PG*) found+=("$name") ;;
    esac
  done
  if [ "${#found[@]}" -gt 0 ]; then
    echo "WARNING: these variables are set here, change how the runbook's tools behave, and were not set in the sandbox: ${found[*]}. Unset them unless they are intended." >&2
  fi
}

# Step 1/3: Initialize the database cluster (passed in the sandbox (attempt 1))
rollback_init_cluster() {
run_step 'init-cluster' '[1/3] Roll back: Initialize the database cluster' 600 '.' "$(cat <<'RUNBOOK_CMD'
rm -rf "$PGDATA"
RUNBOOK_CMD
)" || fail 'init-cluster'
check 'data directory is gone' 'exit code 0, stdout equals "absent"' 0 1000 0 equals 'absent' none '' "$(cat <<'RUNBOOK_CMD'
test ! -e "$PGDATA" && echo absent
RUNBOOK_CMD
)" || fail 'init-cluster'
}

# Step 2/3: Start the server (passed in the sandbox (attempt 1))
rollback_start_server() {
run_step 'start-server' '[2/3] Roll back: Start the server' 600 '.' "$(cat <<'RUNBOOK_CMD'
pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop
RUNBOOK_CMD
)" || fail 'start-server'
check 'server no longer answers' 'exit code 2' 30000 1000 2 none '' none '' "$(cat <<'RUNBOOK_CMD'
pg_isready --host="$PGHOST" --port="$PGPORT"
RUNBOOK_CMD
)" || fail 'start-server'
}

# Step 3/3: Create the application role and database (passed in the sandbox (attempt 2))
rollback_create_app_db() {
run_step 'create-app-db' '[3/3] Roll back: Create the application role and database' 600 '.' "$(cat <<'RUNBOOK_CMD'
PGPASSWORD="$PG_SUPERUSER_PASSWORD" psql --host="$PGHOST" --port="$PGPORT" --username=postgres --dbname=postgres -v ON_ERROR_STOP=1 -v app_user="$APP_USER" -v app_db="$APP_DB" <<'SQL'
DROP DATABASE IF EXISTS :"app_db";
DROP ROLE IF EXISTS :"app_user";
SQL
RUNBOOK_CMD
)" || fail 'create-app-db'
  UNVERIFIED=$((UNVERIFIED + 1))
}

lock_work_dir
fail() {
  record_failure "$1"
  echo "FAILED rolling back step $1. Fix the cause, then run $0 again: it goes on with what the journal shows is still deployed." >&2
  exit 1
}
[ -n "$NO_PREFLIGHT" ] || preflight
warn_environment
load_journal
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
    refuse 2 "step '$TO' is not among the steps to roll back (${PLAN[*]:-none})"
  fi
  CUT=()
  for step in "${PLAN[@]}"; do CUT+=("$step"); [ "$step" = "$TO" ] && break; done
  PLAN=("${CUT[@]}")
fi
if [ "${#PLAN[@]}" -eq 0 ]; then
  echo "Nothing to roll back: the journal ($JOURNAL) shows no deployed step. If this target was deployed from another work directory, set RUNBOOK_WORK_DIR to it. (--all runs every step's rollback whatever the journal says, even of steps never run here, which can destroy what was there before: it lists those and asks first.)"
  exit 0
fi
# --all: the steps in the plan that this target never ran, per the journal: their
# rollbacks undo what this deploy did not create (an rm -rf of someone else's data).
NEVER_RAN=()
if [ -n "$ALL" ]; then
  for step in "${PLAN[@]}"; do
    [ -n "${STARTED[$step]:-}" ] || [ -n "${COMPLETED[$step]:-}" ] || NEVER_RAN+=("$step")
  done
fi
echo "This rolls back, in this order: ${PLAN[*]}"
if [ "${#NEVER_RAN[@]}" -gt 0 ]; then
  echo "WARNING: --all also runs the rollback of ${#NEVER_RAN[@]} step(s) the journal ($JOURNAL) shows this target never ran: ${NEVER_RAN[*]}. Their rollbacks can destroy what was there before, which no deploy from this work directory created."
fi
if [ -z "$YES" ]; then
  if [ ! -t 0 ]; then
    refuse 2 "refusing: rolling back can destroy data, and there is no terminal to confirm on. Re-run with --yes${ALL:+ (with --all: --yes --all, after reading the list above)}."
  fi
  read -r -p "Proceed? [y/N] " answer
  case "$answer" in y|Y|yes|YES) ;; *) refuse 1 "Nothing was changed." ;; esac
  if [ "${#NEVER_RAN[@]}" -gt 0 ]; then
    read -r -p "Also roll back ${NEVER_RAN[*]}, which this target never ran? Type the word all to confirm: " answer
    [ "$answer" = all ] || refuse 1 "Nothing was changed. Without --all, only what the journal shows deployed is rolled back."
  fi
fi
UNVERIFIED=0
for step in "${PLAN[@]}"; do
  "rollback_${step//-/_}"
  if [ -f "$JOURNAL" ]; then
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
