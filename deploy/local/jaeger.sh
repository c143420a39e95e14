#!/usr/bin/env bash
# Local Jaeger v2 (all-in-one, in-memory storage): where the services' traces go.
#
#   deploy/local/jaeger.sh install   # build the binary once (Go, from the Go module proxy)
#   deploy/local/jaeger.sh start     # install if needed, start, wait until ready
#   deploy/local/jaeger.sh stop      # SIGTERM, then SIGKILL after 20 s
#   deploy/local/jaeger.sh status    # exit 0 if running, 3 if not
#
# No release tarball or container here: Jaeger is built from its Go module
# (github.com/jaegertracing/jaeger, whose ./cmd/jaeger is Jaeger v2). `go install mod@ver`
# refuses a module with replace directives, so the module is downloaded and built inside a
# copy of it. The build takes a few minutes once; the binary is cached outside the work
# tree (AIDMESH_CACHE_DIR, default ~/.cache/aidmesh), so later starts are instant.
#
# Listens on 127.0.0.1 only: OTLP/HTTP 4318 (the services export there), OTLP/gRPC 4317,
# the HTTP API (GET /api/traces/<trace id>) and a web page 16686, health 13133. The page is
# our small viewer (deploy/local/jaeger/ui): Jaeger's own UI is built separately and is not
# in the Go module. Traces live in memory (the newest AIDMESH_JAEGER_MAX_TRACES) and are
# gone when Jaeger stops.
#
# Env: AIDMESH_STATE_DIR (default <repo>/var), AIDMESH_CACHE_DIR, AIDMESH_JAEGER_OTLP_HTTP_PORT
#      (4318), AIDMESH_JAEGER_OTLP_GRPC_PORT (4317), AIDMESH_JAEGER_UI_PORT (16686),
#      AIDMESH_JAEGER_QUERY_GRPC_PORT (16685), AIDMESH_JAEGER_HEALTH_PORT (13133),
#      AIDMESH_JAEGER_MAX_TRACES (20000), AIDMESH_JAEGER_START_TIMEOUT (60 s), GO (go binary).
set -euo pipefail

AIDMESH_COMPONENT=jaeger
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

JAEGER_MODULE=github.com/jaegertracing/jaeger
JAEGER_VERSION=v1.76.0   # the Go module's tag; its ./cmd/jaeger is Jaeger v2

CACHE_ROOT=${AIDMESH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aidmesh}
BIN_DIR=$CACHE_ROOT/jaeger-$JAEGER_VERSION
BIN=$BIN_DIR/jaeger

JAEGER_DIR=$AIDMESH_STATE_ROOT/jaeger           # runtime state (not checked in)
CONFIG=$JAEGER_DIR/config.yaml
PID_FILE=$JAEGER_DIR/jaeger.pid
LOG=$JAEGER_DIR/jaeger.log
BUILD_LOG=$JAEGER_DIR/build.log
UI_DIR=$AIDMESH_LOCAL_DIR/jaeger/ui              # checked in: index.html, see its comment

OTLP_HTTP_PORT=${AIDMESH_JAEGER_OTLP_HTTP_PORT:-4318}
OTLP_GRPC_PORT=${AIDMESH_JAEGER_OTLP_GRPC_PORT:-4317}
UI_PORT=${AIDMESH_JAEGER_UI_PORT:-16686}
QUERY_GRPC_PORT=${AIDMESH_JAEGER_QUERY_GRPC_PORT:-16685}
HEALTH_PORT=${AIDMESH_JAEGER_HEALTH_PORT:-13133}
MAX_TRACES=${AIDMESH_JAEGER_MAX_TRACES:-20000}
START_TIMEOUT=${AIDMESH_JAEGER_START_TIMEOUT:-60}

# ---- install -------------------------------------------------------------------------------

find_go() {
  local cand
  for cand in "${GO:-}" "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go/bin/go; do
    [[ -n $cand && -x $cand ]] && { echo "$cand"; return 0; }
  done
  return 1
}

# Builds the binary into the cache (once). Builds in a temporary directory and moves the
# binary in at the end, so an interrupted build never leaves a binary that looks complete.
cmd_install() {
  mkdir -p "$JAEGER_DIR"
  if [[ -x $BIN ]]; then return 0; fi
  local go
  go=$(find_go) || die "Go is needed once, to build Jaeger $JAEGER_VERSION from its Go module." \
    "Install Go 1.24+ (https://go.dev/doc/install, or: apt-get install golang-go) and re-run $0, or set GO=/path/to/go"
  say "building Jaeger v2 from $JAEGER_MODULE@$JAEGER_VERSION with $("$go" version | cut -d' ' -f3) (once; a few minutes)"
  local t0=$SECONDS tmp src
  mkdir -p "$CACHE_ROOT"
  tmp=$(mktemp -d "$CACHE_ROOT/jaeger-build.XXXXXX")
  # shellcheck disable=SC2064  # expand $tmp now: it is local
  trap "rm -rf '$tmp'" EXIT
  # The module cache is read-only, and the build must run inside the module (for its
  # replace directives): copy it out. GOFLAGS=-mod=mod lets go fetch what go.sum lists.
  if ! src=$(cd "$tmp" && GOFLAGS=-mod=mod "$go" mod download -json "$JAEGER_MODULE@$JAEGER_VERSION" 2>"$BUILD_LOG" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'); then
    cat "$BUILD_LOG" >&2
    die "go mod download $JAEGER_MODULE@$JAEGER_VERSION failed (is the Go module proxy reachable? log above)"
  fi
  [[ -n $src && -d $src ]] || { cat "$BUILD_LOG" >&2; die "go mod download did not say where the module is (log above)"; }
  cp -r "$src" "$tmp/src"
  chmod -R u+w "$tmp/src"
  if ! (cd "$tmp/src" && CGO_ENABLED=0 "$go" build -trimpath \
      -ldflags "-s -w -X $JAEGER_MODULE/internal/version.latestVersion=$JAEGER_VERSION" \
      -o "$tmp/jaeger" ./cmd/jaeger) >>"$BUILD_LOG" 2>&1; then
    tail -n 40 "$BUILD_LOG" >&2
    die "go build of ./cmd/jaeger failed (last lines above, full log $BUILD_LOG)"
  fi
  mkdir -p "$BIN_DIR"
  mv "$tmp/jaeger" "$BIN"
  rm -rf "$tmp"
  trap - EXIT
  say "built $BIN in $((SECONDS - t0))s"
}

# ---- config ---------------------------------------------------------------------------------

# Regenerated on every start so that port changes via env vars take effect.
write_config() {
  cat >"$CONFIG" <<EOF
# Generated by deploy/local/jaeger.sh on every start: edit the script, not this file.
# Jaeger v2 all-in-one: OTLP in, in-memory storage, query API + UI. Loopback only.
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none          # no self-metrics port to collide with anything
    logs:
      level: info

extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:$HEALTH_PORT
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false  # else its own API calls show up as a service "jaeger"
    ui:
      assets_path: $UI_DIR  # our small viewer: Jaeger's own UI is not in its Go module
    http:
      endpoint: 127.0.0.1:$UI_PORT
    grpc:
      endpoint: 127.0.0.1:$QUERY_GRPC_PORT
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: $MAX_TRACES

receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$OTLP_HTTP_PORT
      grpc:
        endpoint: 127.0.0.1:$OTLP_GRPC_PORT

processors:
  batch:

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
EOF
}

# ---- start / stop / status -------------------------------------------------------------------

read_pid() { cat "$PID_FILE" 2>/dev/null || true; }
is_running() { pid_alive "$(read_pid)" "$BIN"; }

running_ui() {
  sed -n '/jaeger_query:/,/grpc:/s/^ *endpoint: //p' "$CONFIG" 2>/dev/null | head -n1
}

show_log() {
  echo "---- last 40 lines of $LOG ----" >&2
  tail -n 40 "$LOG" >&2 2>/dev/null || echo "(no log)" >&2
}

# Ready when the health check says so (every component started) and both the OTLP
# receiver and the query API accept connections.
is_ready() {
  port_open "$OTLP_HTTP_PORT" && port_open "$UI_PORT" || return 1
  (
    exec 3<>"/dev/tcp/127.0.0.1/$HEALTH_PORT" || exit 1
    printf 'GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    IFS= read -r -t 2 status <&3 && [[ $status == *" 200"* ]]
  ) 2>/dev/null
}

cmd_start() {
  if is_running; then
    say "already running (pid $(read_pid), UI http://$(running_ui))"
    return 0
  fi
  rm -f "$PID_FILE"
  # Check the ports before the (possibly long) build, so a conflict is reported at once.
  require_port_free "$OTLP_HTTP_PORT" AIDMESH_JAEGER_OTLP_HTTP_PORT
  require_port_free "$OTLP_GRPC_PORT" AIDMESH_JAEGER_OTLP_GRPC_PORT
  require_port_free "$UI_PORT" AIDMESH_JAEGER_UI_PORT
  require_port_free "$QUERY_GRPC_PORT" AIDMESH_JAEGER_QUERY_GRPC_PORT
  require_port_free "$HEALTH_PORT" AIDMESH_JAEGER_HEALTH_PORT

  cmd_install
  write_config
  "$BIN" validate --config "$CONFIG" >"$LOG" 2>&1 || { show_log; die "Jaeger refused its config $CONFIG (log above)"; }

  say "starting (OTLP http://127.0.0.1:$OTLP_HTTP_PORT, UI http://127.0.0.1:$UI_PORT)"
  local t0=$SECONDS
  # setsid + nohup: Jaeger survives the calling shell; the pid file holds Jaeger's own pid.
  (
    cd "$JAEGER_DIR"
    # shellcheck disable=SC2016  # $$ is for the inner shell
    nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$BIN" --config "$CONFIG" >"$LOG" 2>&1 </dev/null &
  )

  local deadline=$((SECONDS + START_TIMEOUT)) pid=""
  while ((SECONDS < deadline)); do
    pid=$(read_pid)
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      show_log
      rm -f "$PID_FILE"
      die "Jaeger exited during startup (log above)"
    fi
    if [[ -n $pid ]] && is_ready 2>/dev/null; then
      say "ready in $((SECONDS - t0))s (pid $pid, UI http://127.0.0.1:$UI_PORT)"
      return 0
    fi
    sleep 0.3
  done
  show_log
  cmd_stop >&2
  die "not ready after ${START_TIMEOUT}s (log above); a slow machine may need AIDMESH_JAEGER_START_TIMEOUT=120"
}

cmd_stop() {
  stop_process "$PID_FILE" "$BIN" 20
}

cmd_status() {
  if is_running; then
    say "running (pid $(read_pid), UI http://$(running_ui))"
    return 0
  fi
  [[ -f $PID_FILE ]] && rm -f "$PID_FILE"   # stale: the process is gone
  say "stopped"
  return 3
}

case ${1:-} in
  install) cmd_install ;;
  start)   cmd_start ;;
  stop)    cmd_stop ;;
  status)  cmd_status ;;
  *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
esac
