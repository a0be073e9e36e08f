# The sandbox gave commands a clean environment: variables like these were not set there.
warn_environment() {
  local name found=()
  for name in $(compgen -e); do
    case "$name" in
      !DECLARED!) ;;
      !PREFIXES!) found+=("$name") ;;
    esac
  done
  if [ "${#found[@]}" -gt 0 ]; then
    echo "WARNING: these variables are set here, change how the runbook's tools behave, and were not set in the sandbox: ${found[*]}. Unset them unless they are intended." >&2
  fi
}

