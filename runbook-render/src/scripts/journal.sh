# shellcheck shell=bash
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
