#!/usr/bin/env bash
# The container engine for the container provider's tests: Podman's Docker-compatible
# service on its default rootful socket (/run/podman/podman.sock, which the provider
# finds by itself), with the test images built from Debian's packages.
#   tests/container/engine.sh start   install podman, start the service, build the images
#   tests/container/engine.sh stop    stop the service (the images are kept)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="$here/containers.conf"
socket=/run/podman/podman.sock
pidfile=/run/podman/runbook-test-service.pid

case ${1:-} in
  start)
    if ! command -v podman > /dev/null || ! command -v mmdebstrap > /dev/null; then
      apt-get install -y -q podman runc catatonit mmdebstrap uidmap > /dev/null
    fi
    mkdir -p /run/podman
    if ! curl -sf --unix-socket "$socket" http://d/_ping > /dev/null 2>&1; then
      nohup podman system service --time=0 "unix://$socket" > /tmp/podman-service.log 2>&1 &
      echo $! > "$pidfile"
      for _ in $(seq 100); do
        curl -sf --unix-socket "$socket" http://d/_ping > /dev/null 2>&1 && break
        sleep 0.1
      done
      curl -sf --unix-socket "$socket" http://d/_ping > /dev/null \
        || { echo "podman's service did not start: see /tmp/podman-service.log" >&2; exit 1; }
    fi
    "$here/images.sh"
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2> /dev/null || true
      rm -f "$pidfile"
    fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
