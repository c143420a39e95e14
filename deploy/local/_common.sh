# shellcheck shell=bash
# Helpers shared by deploy/local/{kafka,postgres,infra}.sh. Sourced, never executed.
#
# Everything here is about local development infrastructure on loopback only:
# no service started by these scripts listens on anything but 127.0.0.1.

# Repo root = two levels above deploy/local/; state lives in <repo>/var unless overridden.
AIDMESH_LOCAL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AIDMESH_REPO_ROOT=$(cd "$AIDMESH_LOCAL_DIR/../.." && pwd)
# shellcheck disable=SC2034  # used by the scripts that source this file
AIDMESH_STATE_ROOT=${AIDMESH_STATE_DIR:-$AIDMESH_REPO_ROOT/var}
# Kafka passwords, one file per principal (kafka.sh writes admin's, `aidmesh infra bootstrap`
# the services'); exported so the services and tools started from these scripts find them.
export AIDMESH_KAFKA_SECRETS_DIR=${AIDMESH_KAFKA_SECRETS_DIR:-$AIDMESH_STATE_ROOT/secrets/kafka}

# ---- the services ---------------------------------------------------------------------
# The AidMesh services and their HTTP ports (as in ops' bootstrap SERVICES and each service's
# settings), for services.sh and the Prometheus scrape config. AIDMESH_<SERVICE>_HTTP_PORT
# moves one.
# shellcheck disable=SC2034  # used by the scripts that source this file
AIDMESH_SERVICES=(registration shelter health protection cash audit)
declare -A AIDMESH_SERVICE_DEFAULT_PORT=(
  [registration]=8101 [shelter]=8102 [health]=8103 [protection]=8104 [cash]=8106 [audit]=8105
)

service_port() {
  local var="AIDMESH_${1^^}_HTTP_PORT"
  echo "${!var:-${AIDMESH_SERVICE_DEFAULT_PORT[$1]}}"
}

# ---- output -----------------------------------------------------------------------------
# All progress lines look like "==> kafka: starting (127.0.0.1:9092)"; errors go to stderr.
say()  { printf '==> %s: %s\n' "$AIDMESH_COMPONENT" "$*"; }
warn() { printf '==> %s: WARNING: %s\n' "$AIDMESH_COMPONENT" "$*" >&2; }
die()  { printf '==> %s: ERROR: %s\n' "$AIDMESH_COMPONENT" "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# ---- ports ------------------------------------------------------------------------------
# True if something accepts TCP connections on 127.0.0.1:PORT. Uses bash's /dev/tcp so it
# needs no extra tools; a loopback connect is refused instantly when nothing listens.
port_open() {
  local port=$1
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# Best-effort description of who listens on PORT (needs ss from iproute2; empty otherwise).
port_owner() {
  local port=$1
  command -v ss >/dev/null 2>&1 || return 0
  # users:(("python3",pid=6459,fd=3)) -> python3 (pid 6459)
  ss -Hltnp "sport = :$port" 2>/dev/null \
    | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n1
}

# Fails with a clear message naming the port and the env var that moves it.
require_port_free() {
  local port=$1 var=$2 owner
  if port_open "$port"; then
    owner=$(port_owner "$port")
    die "port $port on 127.0.0.1 is already in use${owner:+ by $owner}, and not by our $AIDMESH_COMPONENT." \
        "Stop that process, or choose another port: $var=<port> $0 start"
  fi
}

# ---- packages ---------------------------------------------------------------------------
# apt_install PKG...: as root, installs Debian packages (apt-get update first, at most once
# an hour so infra.sh calling both scripts does not update twice). As a normal user it cannot
# install anything, so it stops and says exactly what to install.
apt_install() {
  if ! is_root; then
    die "missing prerequisite. Install it with: sudo apt-get install -y $* (then re-run $0)"
  fi
  command -v apt-get >/dev/null 2>&1 \
    || die "missing prerequisite ($*) and apt-get is not available: install it with your package manager"
  apt_update_once
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# apt-get update, unless the package lists were refreshed within the last hour (a fresh
# machine may have none at all, and then apt knows no packages).
apt_update_once() {
  is_root && command -v apt-get >/dev/null 2>&1 || return 0
  if ! find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null | grep -q .; then
    say "apt-get update"
    apt-get update -qq
  fi
}

# True if apt knows an installable candidate for PKG (package names differ between releases).
apt_has_candidate() {
  local cand
  cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
  [[ -n $cand && $cand != "(none)" ]]
}

# ---- processes --------------------------------------------------------------------------
# pid_alive PID PATTERN: process exists and its command line contains PATTERN (guards
# against a stale pid file whose pid was reused by an unrelated process).
pid_alive() {
  local pid=$1 pattern=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

# stop_process PID_FILE PATTERN GRACE_S: SIGTERM the process of a pid file (if it is alive
# and is ours), wait up to GRACE_S for it to exit, then SIGKILL; the pid file goes.
stop_process() {
  local pid_file=$1 pattern=$2 grace=$3 pid
  pid=$(cat "$pid_file" 2>/dev/null || true)
  if ! pid_alive "$pid" "$pattern"; then
    rm -f "$pid_file"
    say "not running"
    return 0
  fi
  say "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    warn "still running after ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$pid_file"
  say "stopped"
}
