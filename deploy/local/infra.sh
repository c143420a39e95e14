#!/usr/bin/env bash
# Local development infrastructure in one command: PostgreSQL + Kafka on 127.0.0.1.
#
#   deploy/local/infra.sh up       # install what is missing, start both, wait until ready
#   deploy/local/infra.sh down     # stop both
#   deploy/local/infra.sh status   # exit 0 only if both are running
#
# Each service has its own script (postgres.sh, kafka.sh, jaeger.sh, prometheus.sh) with
# the same env vars; see README.md. Prometheus scrapes the AidMesh services, which services.sh starts.
set -euo pipefail

AIDMESH_COMPONENT=infra
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

PG=$AIDMESH_LOCAL_DIR/postgres.sh
KAFKA=$AIDMESH_LOCAL_DIR/kafka.sh
PROMETHEUS=$AIDMESH_LOCAL_DIR/prometheus.sh
JAEGER=$AIDMESH_LOCAL_DIR/jaeger.sh

case ${1:-} in
  up)
    t0=$SECONDS
    # PostgreSQL first: it is quick, and a failure there is reported before Kafka's longer start.
    bash "$PG" start
    bash "$KAFKA" start
    bash "$JAEGER" start       # traces (the first start builds it, a few minutes)
    bash "$PROMETHEUS" start   # scrapes the services' /metrics (they start later)
    say "up in $((SECONDS - t0))s (state in $AIDMESH_STATE_ROOT)"
    echo "    postgres: postgresql://postgres@127.0.0.1:${AIDMESH_PG_PORT:-5433}/postgres"
    echo "    kafka:    bootstrap 127.0.0.1:${AIDMESH_KAFKA_PORT:-9092}"
    echo "    jaeger:   http://127.0.0.1:${AIDMESH_JAEGER_UI_PORT:-16686} (OTLP http://127.0.0.1:${AIDMESH_JAEGER_OTLP_HTTP_PORT:-4318})"
    echo "    prometheus: http://127.0.0.1:${AIDMESH_PROMETHEUS_PORT:-9090}"
    ;;
  down)
    # Reverse of start; stop every one even if another fails to stop.
    rc=0
    bash "$PROMETHEUS" stop || rc=$?
    bash "$JAEGER" stop || rc=$?
    bash "$KAFKA" stop || rc=$?
    bash "$PG" stop || rc=$?
    exit "$rc"
    ;;
  status)
    rc=0
    bash "$PG" status || rc=$?
    bash "$KAFKA" status || rc=$?
    bash "$JAEGER" status || rc=$?
    bash "$PROMETHEUS" status || rc=$?
    exit "$rc"
    ;;
  *)
    echo "usage: $0 {up|down|status}" >&2
    exit 2
    ;;
esac
