#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted commands, checks and titles are literal by design
# Deploy: !TITLE!
# !VERDICT!
# Generated from runbook.yaml: each command and check is the runbook's, byte for byte;
# the comment above each step says whether it ran in the sandbox. Steps and rollbacks
# run under `bash -e -o pipefail` (a step fails at its first failing line), checks as
# written. Needs bash >= 4, coreutils (timeout, date, mktemp), grep -P and flock
# (util-linux: one deploy or rollback at a time in a work directory).
# Usage: RUNBOOK_WORK_DIR=DIR (default: the package's work/) scripts/deploy.sh [--from STEP | --again] [--no-preflight] [--as-root] | --render-config DIR
set -euo pipefail
# The locale the sandbox gave every command.
export LANG=C.UTF-8 LC_ALL=C.UTF-8

FROM="" AGAIN="" NO_PREFLIGHT="" RENDER_TO=""!AS_ROOT_VARIABLE!
usage() { echo "usage: $0 [--from STEP | --again] [--no-preflight]!AS_ROOT_USAGE! | --render-config DIR"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM="${2:?--from needs a step id}"; shift 2 ;;
    --again) AGAIN=1; shift ;;
    --render-config) RENDER_TO="${2:?--render-config needs a directory}"; shift 2 ;;
!AS_ROOT_OPTION!
    --no-preflight) NO_PREFLIGHT=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
STEPS=(!STEPS!)
if [ -n "$FROM" ] && [[ " ${STEPS[*]} " != *" $FROM "* ]]; then
  echo "unknown step '$FROM'; steps: ${STEPS[*]}" >&2
  exit 2
fi
if [ -n "$FROM" ] && [ -n "$AGAIN" ]; then echo "--from and --again exclude each other" >&2; exit 2; fi

!SETTINGS!

# The config files each step renders: FILE_STEPS[i] renders FILE_PATHS[i].
FILE_STEPS=(!FILE_STEPS!) FILE_PATHS=(!FILE_PATHS!)
!JOURNAL!

enter_work_dir
JOURNAL="$WORK_DIR/.runbook-journal" LOCK="$WORK_DIR/.runbook-lock"

!PREFLIGHT!
!IDENTITY!
!ENVIRONMENT!
!RENDER_CONFIG!
!STEP_FUNCTIONS!
lock_work_dir
fail() {
  record_failure "$1"
  echo "FAILED at step $1. Fix the cause, then resume with: $0 --from $1 (or undo what ran with scripts/rollback.sh)" >&2
  exit 1
}
!RENDER_TO!
[ -n "$NO_PREFLIGHT" ] || preflight
!WARN_ENVIRONMENT!
load_journal
if [ -z "$FROM" ] && [ -z "$AGAIN" ] && [ "${#STARTED[@]}" -gt 0 ]; then
  # The step named is the one the last deploy failed at, not the first step that is not
  # deployed (after a rollback, every step before the failed one is not).
  if [ -n "$STOPPED_AT" ]; then
    BEFORE=()
    for step in "${STEPS[@]}"; do
      [ "$step" != "$STOPPED_AT" ] || break
      [ -n "${COMPLETED[$step]:-}" ] || BEFORE+=("$step")
    done
    if [ "${#BEFORE[@]}" -eq 0 ]; then
      refuse 3 "An earlier deploy stopped at step $STOPPED_AT: it started and did not complete (journal: $JOURNAL). Resume with --from $STOPPED_AT, roll back with scripts/rollback.sh, or start over with --again."
    fi
    refuse 3 "An earlier deploy stopped at step $STOPPED_AT: it started, did not complete and was not rolled back, and the journal ($JOURNAL) shows the steps before it not deployed (${BEFORE[*]}). Inspect what $STOPPED_AT left, then roll it back with scripts/rollback.sh --include-incomplete, or start over with --again."
  fi
  for step in "${STEPS[@]}"; do
    if [ -z "${COMPLETED[$step]:-}" ]; then
      refuse 3 "An earlier deploy did not finish: the journal ($JOURNAL) shows step $step not deployed, after steps that are. Deploy the rest with --from $step, roll back with scripts/rollback.sh, or start over with --again."
    fi
  done
  refuse 3 "Already deployed: the journal ($JOURNAL) shows every step completed. Check it with scripts/verify.sh; repeat it with --again."
fi
if [ -n "$AGAIN" ]; then journal again; fi
STARTED_AT=""
[ -z "$FROM" ] && STARTED_AT=1
for step in "${STEPS[@]}"; do
  [ "$step" = "$FROM" ] && STARTED_AT=1
  [ -n "$STARTED_AT" ] || continue
  journal started "$step"
  "deploy_${step//-/_}"
  journal completed "$step"
done
echo "Deployed: every step passed its checks."
