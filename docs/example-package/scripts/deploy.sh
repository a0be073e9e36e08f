#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted commands, checks and titles are literal by design
# Deploy: Deploy PostgreSQL 15 for myapp
# Generated from runbook.yaml. The commands and checks are the ones tested in the sandbox,
# byte for byte. Needs bash >= 4, coreutils (timeout, date, mktemp) and grep -P.
# Config templates under config/ are filled from the environment with bash parameter
# expansion into the work directory (no eval, no envsubst).
# Usage: RUNBOOK_WORK_DIR=DIR (default: ../work) scripts/deploy.sh [--from STEP]
set -euo pipefail

FROM=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM="${2:?--from needs a step id}"; shift 2 ;;
    -h|--help) echo "usage: $0 [--from STEP]"; exit 0 ;;
    *) echo "usage: $0 [--from STEP]" >&2; exit 2 ;;
  esac
done
STEPS=('init-cluster' 'start-server' 'create-app-db')
if [ -n "$FROM" ] && [[ " ${STEPS[*]} " != *" $FROM "* ]]; then
  echo "unknown step '$FROM'; steps: ${STEPS[*]}" >&2
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
CHECK_TIMEOUT="${RUNBOOK_CHECK_TIMEOUT:-60}"
mkdir -p "$WORK_DIR"
WORK_DIR="$(cd "$WORK_DIR" && pwd)"

now_ms() { date +%s%3N; }

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

# render_config PATH: fills the ${VAR} placeholders of PACKAGE_DIR/PATH from the
# environment into WORK_DIR/PATH, with bash parameter expansion (no eval, no envsubst).
render_config() {
  local content
  IFS= read -r -d '' content < "$PACKAGE_DIR/$1" || true
  content=${content//'${PGHOST}'/"$PGHOST"}
  content=${content//'${PGPORT}'/"$PGPORT"}
  mkdir -p "$(dirname "$WORK_DIR/$1")"
  printf '%s' "$content" > "$WORK_DIR/$1"
}

# Step 1/3: Initialize the database cluster
deploy_init_cluster() {
render_config 'config/postgresql.conf'
run_step 'init-cluster' '[1/3] Initialize the database cluster' 120 '.' "$(cat <<'RUNBOOK_CMD'
initdb --pgdata="$PGDATA" --username=postgres --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
  --pwfile=<(printf '%s\n' "$PG_SUPERUSER_PASSWORD")
cp config/postgresql.conf "$PGDATA/runbook.conf"
printf "include 'runbook.conf'\n" >> "$PGDATA/postgresql.conf"
RUNBOOK_CMD
)" || fail 'init-cluster'
check 'cluster is PostgreSQL 15' 'exit code 0, stdout equals "15"' 0 1000 0 equals '15' none '' "$(cat <<'RUNBOOK_CMD'
cat "$PGDATA/PG_VERSION"
RUNBOOK_CMD
)" || fail 'init-cluster'
}

# Step 2/3: Start the server
deploy_start_server() {
run_step 'start-server' '[2/3] Start the server' 600 '.' "$(cat <<'RUNBOOK_CMD'
pg_ctl --pgdata="$PGDATA" --log="$PGDATA/server.log" --wait --timeout=60 start
RUNBOOK_CMD
)" || fail 'start-server'
check 'server accepts connections' 'exit code 0, stdout contains "accepting connections"' 30000 500 0 contains 'accepting connections' none '' "$(cat <<'RUNBOOK_CMD'
pg_isready --host="$PGHOST" --port="$PGPORT"
RUNBOOK_CMD
)" || fail 'start-server'
}

# Step 3/3: Create the application role and database
deploy_create_app_db() {
run_step 'create-app-db' '[3/3] Create the application role and database' 600 '.' "$(cat <<'RUNBOOK_CMD'
PGPASSWORD="$PG_SUPERUSER_PASSWORD" psql --host="$PGHOST" --port="$PGPORT" --username=postgres --dbname=postgres -v ON_ERROR_STOP=1 -v app_user="$APP_USER" -v app_password="$APP_PASSWORD" -v app_db="$APP_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'app_user', :'app_password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT format('CREATE DATABASE %I', :'app_db')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
ALTER DATABASE :"app_db" OWNER TO :"app_user";
SQL
RUNBOOK_CMD
)" || fail 'create-app-db'
check 'app user can connect' 'exit code 0, stdout equals "1"' 0 1000 0 equals '1' none '' "$(cat <<'RUNBOOK_CMD'
PGPASSWORD="$APP_PASSWORD" psql --host="$PGHOST" --port="$PGPORT" --username="$APP_USER" --dbname="$APP_DB" -tAc 'SELECT 1'
RUNBOOK_CMD
)" || fail 'create-app-db'
check 'app user can run DDL' 'exit code 0, stdout contains "DROP TABLE"' 0 1000 0 contains 'DROP TABLE' none '' "$(cat <<'RUNBOOK_CMD'
PGPASSWORD="$APP_PASSWORD" psql --host="$PGHOST" --port="$PGPORT" --username="$APP_USER" --dbname="$APP_DB" -v ON_ERROR_STOP=1 -c 'CREATE TABLE _runbook_ddl_test (id int); DROP TABLE _runbook_ddl_test;'
RUNBOOK_CMD
)" || fail 'create-app-db'
}

STARTED=""
[ -z "$FROM" ] && STARTED=1
for step in "${STEPS[@]}"; do
  [ "$step" = "$FROM" ] && STARTED=1
  [ -n "$STARTED" ] || continue
  "deploy_${step//-/_}"
done
echo "Deployed: every step passed its checks."
