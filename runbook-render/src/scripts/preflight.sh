preflight() {
  echo "==> Pre-flight: the tools this runbook was tested with"
!TOOLS!
!CHECKS!
  if [ -n "$OUTCOME_STATUS" ]; then
    echo "Pre-flight failed: nothing was changed. Fix what it names (or pass --no-preflight at your own risk)." >&2
    exit 1
  fi
}

