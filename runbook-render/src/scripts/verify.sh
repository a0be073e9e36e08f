#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted commands, checks and titles are literal by design
# Verify: !TITLE!
# !VERDICT!
# Generated from runbook.yaml: each command and check is the runbook's, byte for byte;
# the comment above each step says whether it ran in the sandbox. Steps and rollbacks
# run under `bash -e -o pipefail` (a step fails at its first failing line), checks as
# written. Needs bash >= 4, coreutils (timeout, date, mktemp) and grep -P.
# Usage: RUNBOOK_WORK_DIR=DIR (default: the package's work/) scripts/verify.sh [--from STEP] [--once] [--no-preflight]
set -euo pipefail
# The locale the sandbox gave every command.
export LANG=C.UTF-8 LC_ALL=C.UTF-8

FROM="" NO_PREFLIGHT=""
usage() { echo "usage: $0 [--from STEP] [--once] [--no-preflight]"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM="${2:?--from needs a step id}"; shift 2 ;;
    --once) export RUNBOOK_CHECK_ONCE=1; shift ;;
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

!SETTINGS!

enter_work_dir
JOURNAL="$WORK_DIR/.runbook-journal"

# deployed_here: whether deploy.sh's journal in this work directory shows a step deployed
# (started or completed, and not rolled back since). Read only, ids compared as text: a
# journal line is data.
deployed_here() {
  local what id rest live=" "
  refuse_link "$JOURNAL" "the journal"
  [ -f "$JOURNAL" ] || return 1
  while read -r what id rest || [ -n "$what" ]; do
    if [ -z "$id" ] || [ -n "$rest" ]; then continue; fi
    case "$what" in
      started | completed) [[ "$live" == *" $id "* ]] || live+="$id " ;;
      rolledback) live=${live/" $id "/" "} ;;
    esac
  done < "$JOURNAL"
  [ "$live" != " " ]
}

!PREFLIGHT!
!ENVIRONMENT!
!STEP_FUNCTIONS!
[ -n "$NO_PREFLIGHT" ] || preflight
# On a target the journal shows nothing deployed on, every step would fail, each with its
# own feedback file: the first failing step is enough to say so.
DEPLOYED=1
deployed_here || DEPLOYED=""
STARTED_AT=""
[ -z "$FROM" ] && STARTED_AT=1
FAILED=0
for step in "${STEPS[@]}"; do
  [ "$step" = "$FROM" ] && STARTED_AT=1
  [ -n "$STARTED_AT" ] || continue
  if ! "verify_${step//-/_}"; then
    FAILED=$((FAILED + 1))
    if [ -z "$DEPLOYED" ]; then
      echo "Not deployed: step $step failed verification, and the journal ($JOURNAL) shows nothing deployed from this work directory (never deployed, or rolled back). Deploy with scripts/deploy.sh, or set RUNBOOK_WORK_DIR to the work directory of the deploy. The steps after $step were not checked." >&2
      exit 1
    fi
  fi
done
if [ "$FAILED" -gt 0 ]; then
  echo "$FAILED step(s) failed verification" >&2
  exit 1
fi
echo "All verifications passed."
