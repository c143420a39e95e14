#!/usr/bin/env bash
# Start, stop and inspect the AidMesh services locally, each as its own background process.
#
#   deploy/local/services.sh start [SERVICE...]   # default: all, then wait until ready
#   deploy/local/services.sh stop  [SERVICE...]   # SIGTERM (graceful), SIGKILL after 30 s
#   deploy/local/services.sh status
#
# Logs: var/logs/<service>.log (JSON lines); pids: var/run/<service>.pid.
# Ports: registration 8101, shelter 8102, health 8103, protection 8104, cash 8106, audit 8105
# (override with AIDMESH_<SERVICE>_HTTP_PORT). Kafka and PostgreSQL come from the
# usual AIDMESH_KAFKA_BOOTSTRAP / AIDMESH_PG_DSN.
set -euo pipefail
AIDMESH_COMPONENT=services
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

ALL_SERVICES=("${AIDMESH_SERVICES[@]}")   # and their ports: _common.sh
PYTHON=$AIDMESH_REPO_ROOT/.venv/bin/python
LOG_DIR=$AIDMESH_STATE_ROOT/logs
RUN_DIR=$AIDMESH_STATE_ROOT/run
READY_TIMEOUT=${AIDMESH_SERVICES_START_TIMEOUT:-60}
# Locally every flow is traced (one trace per registration in Jaeger, for the demo); the
# services' own default is one flow in ten (ADR 0012).
export AIDMESH_TRACE_SAMPLE_RATIO=${AIDMESH_TRACE_SAMPLE_RATIO:-1}

port_of() { service_port "$1"; }

pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }

running() { pid_alive "$(pid_of "$1")" "aidmesh_$1"; }

# use_local_key SETTING FILE_NAME WHAT COMMAND...: a service that refuses to start without a
# key gets one, unless it is given (AIDMESH_<SETTING> or AIDMESH_<SETTING>_FILE): COMMAND
# generates it once into var/secrets/FILE_NAME (git-ignored, mode 600), never into the repo.
#   protection's data key (narratives), registration's key-encryption key (ADR 0010: keep
#   it, households registered under a lost KEK can never be read again), health's clinical
#   key (clinical notes), registration's inter-agency key (cash: other agencies' lists).
use_local_key() {
  local setting=$1 name=$2 what=$3 dir=$AIDMESH_STATE_ROOT/secrets file value_var file_var
  shift 3
  value_var=AIDMESH_$setting file_var=AIDMESH_${setting}_FILE
  [[ -z ${!value_var:-} && -z ${!file_var:-} ]] || return 0
  file=$dir/$name
  if [[ ! -s $file ]]; then
    mkdir -p "$dir" && chmod 700 "$dir"
    (umask 077 && "$PYTHON" "$@" >"$file")
    AIDMESH_COMPONENT=${name%%-*} say "generated a local $what in $file"
  fi
  export "$file_var=$file"
}

# Every service verifies the bearer tokens of its HTTP API with the issuer's public key and
# refuses to start without one (ADR 0009). Unless keys are given (AIDMESH_AUTH_PUBLIC_KEYS or
# _FILE), a local pair is generated once into var/secrets/auth/ (git-ignored): the private
# key local1.key (mode 600) signs the demo's and the tests' tokens (`aidmesh token issue`),
# the services get only the public local1.pem.
use_local_auth_keys() {
  [[ -z ${AIDMESH_AUTH_PUBLIC_KEYS:-} && -z ${AIDMESH_AUTH_PUBLIC_KEYS_FILE:-} ]] || return 0
  local dir=$AIDMESH_STATE_ROOT/secrets/auth
  if [[ ! -s $dir/local1.pem ]]; then
    mkdir -p "$AIDMESH_STATE_ROOT/secrets" && chmod 700 "$AIDMESH_STATE_ROOT/secrets"
    "$AIDMESH_REPO_ROOT/.venv/bin/aidmesh" token keygen --dir "$dir" --kid local1 >/dev/null
    AIDMESH_COMPONENT=auth say "generated a local token signing key in $dir/local1.key"
  fi
  export AIDMESH_AUTH_PUBLIC_KEYS_FILE=$dir/local1.pem
}

start_one() {
  local svc=$1 port
  port=$(port_of "$svc")
  if running "$svc"; then
    AIDMESH_COMPONENT=$svc say "already running (pid $(pid_of "$svc"), http://127.0.0.1:$port)"
    return 0
  fi
  AIDMESH_COMPONENT=$svc require_port_free "$port" "AIDMESH_${svc^^}_HTTP_PORT"
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  case $svc in
    protection)   use_local_key PROTECTION_DATA_KEY protection-data-key "data key" \
                    -m aidmesh_protection new-key local1 ;;
    registration) use_local_key REGISTRATION_KEK registration-kek "key-encryption key" \
                    -m aidmesh_registration new-kek local1
                  # the key agencies share to compare caseloads (POST /assistance-lists)
                  use_local_key REGISTRATION_INTERAGENCY_KEY registration-interagency-key \
                    "inter-agency key" -m aidmesh_registration new-interagency-key ;;
    health)       use_local_key HEALTH_CLINICAL_KEY health-clinical-key "clinical key" \
                    -m aidmesh_health new-key ;;
  esac
  use_local_auth_keys
  # setsid: the service outlives the shell that started it (make up returns).
  setsid nohup "$PYTHON" -m "aidmesh_$svc" >>"$LOG_DIR/$svc.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$svc.pid"
  AIDMESH_COMPONENT=$svc say "starting (pid $!, http://127.0.0.1:$port, log $LOG_DIR/$svc.log)"
}

# ready_now PORT [show]: true when the service's /readyz answers 200 (prints it with "show").
ready_now() {
  "$PYTHON" - "$1" "${2:-}" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2) as r:
        body = r.read().decode()
except Exception as exc:  # not listening yet, or 503 while starting
    body = getattr(exc, "read", lambda: str(exc).encode())().decode()
    if sys.argv[2]:
        print(body)
    sys.exit(1)
PY
}

wait_ready() {
  local svc=$1 port deadline
  port=$(port_of "$svc")
  deadline=$((SECONDS + READY_TIMEOUT))
  until ready_now "$port"; do
    if ! running "$svc"; then
      tail -n 30 "$LOG_DIR/$svc.log" >&2 || true
      AIDMESH_COMPONENT=$svc die "exited during start-up (log above, full log $LOG_DIR/$svc.log)"
    fi
    if ((SECONDS > deadline)); then
      ready_now "$port" show >&2 || true
      AIDMESH_COMPONENT=$svc die "not ready after ${READY_TIMEOUT}s (see $LOG_DIR/$svc.log)"
    fi
    sleep 0.5
  done
  AIDMESH_COMPONENT=$svc say "ready"
}

stop_one() {
  local svc=$1 pid
  pid=$(pid_of "$svc")
  if ! running "$svc"; then
    rm -f "$RUN_DIR/$svc.pid"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    running "$svc" || break
    sleep 0.5
  done
  if running "$svc"; then
    AIDMESH_COMPONENT=$svc warn "did not stop within 30 s; killing"
    kill -KILL "$pid" || true
  fi
  rm -f "$RUN_DIR/$svc.pid"
  AIDMESH_COMPONENT=$svc say "stopped"
}

cmd=${1:-status}
shift || true
services=("$@")
[[ ${#services[@]} -gt 0 ]] || services=("${ALL_SERVICES[@]}")
[[ -x $PYTHON ]] || die "no virtualenv at $AIDMESH_REPO_ROOT/.venv: run 'make install' first"

case $cmd in
  start)
    for svc in "${services[@]}"; do start_one "$svc"; done
    for svc in "${services[@]}"; do wait_ready "$svc"; done
    ;;
  stop)
    for svc in "${services[@]}"; do stop_one "$svc"; done
    ;;
  status)
    rc=0
    for svc in "${services[@]}"; do
      if running "$svc"; then
        echo "$svc: running (pid $(pid_of "$svc"), http://127.0.0.1:$(port_of "$svc"))"
      else
        echo "$svc: stopped"; rc=3
      fi
    done
    exit $rc
    ;;
  *)
    echo "usage: $0 {start|stop|status} [SERVICE...]" >&2; exit 2 ;;
esac
