#!/usr/bin/env bash
# Local development infrastructure in one command: PostgreSQL + Kafka on 127.0.0.1.
#
#   deploy/local/infra.sh up       # install what is missing, start both, wait until ready
#   deploy/local/infra.sh down     # stop both
#   deploy/local/infra.sh status   # exit 0 only if both are running
#
# Each service has its own script (postgres.sh, kafka.sh) with the same env vars; see README.md.
set -euo pipefail

AIDMESH_COMPONENT=infra
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

PG=$AIDMESH_LOCAL_DIR/postgres.sh
KAFKA=$AIDMESH_LOCAL_DIR/kafka.sh

case ${1:-} in
  up)
    t0=$SECONDS
    # PostgreSQL first: it is quick, and a failure there is reported before Kafka's longer start.
    bash "$PG" start
    bash "$KAFKA" start
    say "up in $((SECONDS - t0))s (state in $AIDMESH_STATE_ROOT)"
    echo "    postgres: postgresql://postgres@127.0.0.1:${AIDMESH_PG_PORT:-5433}/postgres"
    echo "    kafka:    bootstrap 127.0.0.1:${AIDMESH_KAFKA_PORT:-9092}"
    ;;
  down)
    # Kafka first (reverse of start); stop both even if one of them fails to stop.
    rc=0
    bash "$KAFKA" stop || rc=$?
    bash "$PG" stop || rc=$?
    exit "$rc"
    ;;
  status)
    rc=0
    bash "$PG" status || rc=$?
    bash "$KAFKA" status || rc=$?
    exit "$rc"
    ;;
  *)
    echo "usage: $0 {up|down|status}" >&2
    exit 2
    ;;
esac
