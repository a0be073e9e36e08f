#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted commands, checks and titles are literal by design
# Roll back: !TITLE!
# !VERDICT!
# Generated from runbook.yaml: each command and check is the runbook's, byte for byte;
# the comment above each step says whether it ran in the sandbox. Steps and rollbacks
# run under `bash -e -o pipefail` (a step fails at its first failing line), checks as
# written. Needs bash >= 4, coreutils (timeout, date, mktemp), grep -P and flock
# (util-linux: one deploy or rollback at a time in a work directory).
# Usage: RUNBOOK_WORK_DIR=DIR (default: the package's work/) scripts/rollback.sh [--all] [--to STEP] [--include-incomplete] [--yes] [--no-preflight] [--as-root]
set -euo pipefail
# The locale the sandbox gave every command.
export LANG=C.UTF-8 LC_ALL=C.UTF-8

TO="" ALL="" YES="" INCLUDE_INCOMPLETE="" NO_PREFLIGHT=""!AS_ROOT_VARIABLE!
usage() { echo "usage: $0 [--all] [--to STEP] [--include-incomplete] [--yes] [--no-preflight]!AS_ROOT_USAGE!"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --to) TO="${2:?--to needs a step id}"; shift 2 ;;
    --all) ALL=1; shift ;;
    --yes|-y) YES=1; shift ;;
    --include-incomplete) INCLUDE_INCOMPLETE=1; shift ;;
!AS_ROOT_OPTION!
    --no-preflight) NO_PREFLIGHT=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
STEPS=(!STEPS!)
if [ -n "$TO" ] && [[ " ${STEPS[*]} " != *" $TO "* ]]; then
  echo "unknown step '$TO'; steps: ${STEPS[*]}" >&2
  exit 2
fi

!SETTINGS!

# The config files each step renders: FILE_STEPS[i] renders FILE_PATHS[i].
FILE_STEPS=(!FILE_STEPS!) FILE_PATHS=(!FILE_PATHS!)
!JOURNAL!

enter_work_dir
JOURNAL="$WORK_DIR/.runbook-journal" LOCK="$WORK_DIR/.runbook-lock"

!PREFLIGHT!
!IDENTITY!
!ENVIRONMENT!
!STEP_FUNCTIONS!
lock_work_dir
fail() {
  record_failure "$1"
  echo "FAILED rolling back step $1. Fix the cause, then run $0 again: it goes on with what the journal shows is still deployed." >&2
  exit 1
}
[ -n "$NO_PREFLIGHT" ] || preflight
!WARN_ENVIRONMENT!
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
