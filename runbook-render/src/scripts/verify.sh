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

!PREFLIGHT!
!ENVIRONMENT!
!STEP_FUNCTIONS!
[ -n "$NO_PREFLIGHT" ] || preflight
STARTED_AT=""
[ -z "$FROM" ] && STARTED_AT=1
FAILED=0
for step in "${STEPS[@]}"; do
  [ "$step" = "$FROM" ] && STARTED_AT=1
  [ -n "$STARTED_AT" ] || continue
  "verify_${step//-/_}" || FAILED=$((FAILED + 1))
done
if [ "$FAILED" -gt 0 ]; then
  echo "$FAILED step(s) failed verification" >&2
  exit 1
fi
echo "All verifications passed."
