#!/usr/bin/env bash
# Builds the container provider's test images from Debian's packages (no registry):
# a minimal root with mmdebstrap, imported into the engine with `podman import`.
#   localhost/runbook-test/bookworm-pg15   Debian 12, PostgreSQL 15
#   localhost/runbook-test/trixie-pg17     Debian 13, PostgreSQL 17
# An image already there is kept when its package list has not changed (a label holds
# the hash of this script). Usage: tests/container/images.sh [bookworm|trixie ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
stamp=$(sha256sum "$here/images.sh" | cut -c1-16)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {
  local suite=$1 pg=$2 name=$3
  if [ "$(podman image inspect --format '{{index .Labels "runbook.test/stamp"}}' "$name" 2>/dev/null)" = "$stamp" ]; then
    echo "$name is up to date"
    return
  fi
  echo "building $name (Debian $suite, PostgreSQL $pg)"
  mmdebstrap --quiet --variant=minbase \
    --include="postgresql-$pg,procps,iproute2,curl,ca-certificates" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    --format=tar "$suite" "$work/$suite.tar" http://deb.debian.org/debian
  podman import --quiet \
    --change "ENV PATH=/usr/lib/postgresql/$pg/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'CMD ["sleep", "infinity"]' \
    --change "LABEL runbook.test/stamp=$stamp" \
    "$work/$suite.tar" "$name" > /dev/null
  rm -f "$work/$suite.tar"
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)
# Side by side: most of the time is waiting on the mirror and unpacking.
pids=()
for suite in "${suites[@]}"; do
  case $suite in
    bookworm) build bookworm 15 localhost/runbook-test/bookworm-pg15:latest & ;;
    trixie) build trixie 17 localhost/runbook-test/trixie-pg17:latest & ;;
    *) echo "unknown suite $suite" >&2; exit 2 ;;
  esac
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid"
done
