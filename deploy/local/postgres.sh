#!/usr/bin/env bash
# Local private PostgreSQL cluster for development (separate from any system cluster).
#
#   deploy/local/postgres.sh install   # PostgreSQL server binaries (apt-get as root)
#   deploy/local/postgres.sh start     # initdb once, start, wait until it accepts connections
#   deploy/local/postgres.sh stop      # fast shutdown
#   deploy/local/postgres.sh status    # exit 0 if running, 3 if not
#
# Listens on 127.0.0.1:$AIDMESH_PG_PORT (5433, so it never collides with a Debian system
# cluster on 5432) and on a unix socket in the state dir. Authentication is "trust": this is
# a throwaway dev cluster reachable only from this machine. Admin DSN:
#   postgresql://postgres@127.0.0.1:5433/postgres
# Application databases are created by the Python tooling, not here.
#
# Env: AIDMESH_STATE_DIR (default <repo>/var), AIDMESH_PG_PORT (5433),
#      AIDMESH_PG_START_TIMEOUT (60 s).
set -euo pipefail

AIDMESH_COMPONENT=postgres
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

PG_DIR=$AIDMESH_STATE_ROOT/postgres
DATA_DIR=$PG_DIR/data
SOCKET_DIR=$PG_DIR/run
LOG_FILE=$PG_DIR/postgres.log
PORT=${AIDMESH_PG_PORT:-5433}
START_TIMEOUT=${AIDMESH_PG_START_TIMEOUT:-60}
ADDRESS=127.0.0.1:$PORT

PG_BIN=""

# ---- binaries ------------------------------------------------------------------------------

# Debian installs server binaries under /usr/lib/postgresql/<major>/bin (not on PATH).
# An existing cluster must be run by the major version that created it, so prefer that one;
# otherwise take the newest installed version.
find_pg_bin() {
  local want="" dir
  [[ -f $DATA_DIR/PG_VERSION ]] && want=$(cat "$DATA_DIR/PG_VERSION")
  if [[ -n $want && -x /usr/lib/postgresql/$want/bin/initdb ]]; then
    PG_BIN=/usr/lib/postgresql/$want/bin
    return 0
  fi
  # shellcheck disable=SC2012  # version dirs are plain numbers
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl ]]; then
    PG_BIN=$dir
  elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    PG_BIN=$(dirname "$(command -v pg_ctl)")   # non-Debian layouts
  else
    return 1
  fi
  if [[ -n $want && $("$PG_BIN/pg_ctl" --version | awk '{print $3}' | cut -d. -f1) != "$want" ]]; then
    die "$DATA_DIR was created by PostgreSQL $want, but only $("$PG_BIN/pg_ctl" --version) is installed." \
        "Install postgresql-$want, or reset the local cluster: rm -rf $PG_DIR"
  fi
}

cmd_install() {
  if find_pg_bin; then return 0; fi
  say "PostgreSQL server binaries not found"
  # Note: Debian's package may create and start a system cluster on port 5432. That is
  # harmless (ours is a separate cluster on $PORT) and nothing here relies on it.
  apt_install postgresql
  find_pg_bin || die "installed postgresql but found no initdb under /usr/lib/postgresql/*/bin"
}

# ---- running as the right user ---------------------------------------------------------------

# initdb and postgres refuse to run as root. As root we run them as the "postgres" OS user
# (created by Debian's package) and give it the state dir; otherwise we run as ourselves.
as_pg() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

prepare_dirs() {
  mkdir -p "$PG_DIR"
  if is_root; then
    id postgres >/dev/null 2>&1 \
      || die "OS user 'postgres' does not exist (it comes with Debian's postgresql package): apt-get install -y postgresql"
    # The postgres user must be able to reach $PG_DIR: grant search (x, not read) on any
    # ancestor that blocks it, e.g. /root (700) if the repo lives there.
    local d=$PG_DIR
    while [[ $d != / ]]; do
      d=$(dirname "$d")
      if ! runuser -u postgres -- test -x "$d"; then
        say "chmod o+x $d (so the postgres user can reach $PG_DIR)"
        chmod o+x "$d"
      fi
    done
    chown postgres:postgres "$PG_DIR"
    [[ -e $LOG_FILE ]] && chown postgres:postgres "$LOG_FILE"
  fi
  as_pg mkdir -p "$SOCKET_DIR"
  as_pg chmod 755 "$SOCKET_DIR"
  # Unix socket paths are limited to 107 bytes; fail clearly rather than with a cryptic error.
  local sock=$SOCKET_DIR/.s.PGSQL.$PORT
  (( ${#sock} <= 100 )) || die "socket path too long (${#sock} > 100 bytes): $sock. Use a shorter AIDMESH_STATE_DIR."
}

# initdb once. The data dir's PG_VERSION file marks a finished initdb.
init_once() {
  [[ -f $DATA_DIR/PG_VERSION ]] && return 0
  if [[ -e $DATA_DIR ]] && [[ -n $(ls -A "$DATA_DIR" 2>/dev/null) ]]; then
    die "$DATA_DIR exists but holds no complete cluster (interrupted initdb?). Reset it: rm -rf $DATA_DIR"
  fi
  # C.UTF-8 gives UTF-8 with byte-order (fast, deterministic) collation; fall back to C.
  local locale=C
  locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' && locale=C.UTF-8
  say "initdb ($("$PG_BIN/initdb" --version), locale $locale) in $DATA_DIR"
  ( cd "$PG_DIR" &&   # cwd must be readable by the postgres user
    as_pg "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust -E UTF8 --locale="$locale" \
      >"$PG_DIR/initdb.log" 2>&1 ) \
    || { cat "$PG_DIR/initdb.log" >&2; rm -rf "$DATA_DIR"; die "initdb failed (output above)"; }
}

# ---- start / stop / status -------------------------------------------------------------------

is_running() {
  [[ -f $DATA_DIR/PG_VERSION && -n $PG_BIN ]] || return 1
  ( cd "$PG_DIR" && as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1 )
}

server_pid() { head -n1 "$DATA_DIR/postmaster.pid" 2>/dev/null || true; }

# Port the running cluster was started with (line 4 of postmaster.pid).
running_port() { sed -n 4p "$DATA_DIR/postmaster.pid" 2>/dev/null || true; }

cmd_start() {
  find_pg_bin || true
  if is_running; then
    say "already running (pid $(server_pid), 127.0.0.1:$(running_port))"
    [[ $(running_port) == "$PORT" ]] || warn "it runs on port $(running_port), not $PORT: stop and start it to change"
    return 0
  fi
  require_port_free "$PORT" AIDMESH_PG_PORT

  cmd_install
  prepare_dirs
  init_once

  say "starting ($ADDRESS)"
  local t0=$SECONDS
  # Settings passed on the command line rather than edited into postgresql.conf, so a
  # port change via AIDMESH_PG_PORT just works. fsync stays on: crash-safety behaviour of the
  # outbox/inbox should be the same as in production.
  ( cd "$PG_DIR" &&
    as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$START_TIMEOUT" \
      -o "-p $PORT -k $SOCKET_DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" \
      start >/dev/null ) \
    || { tail -n 40 "$LOG_FILE" >&2 2>/dev/null || true; die "pg_ctl start failed (last log lines above, full log: $LOG_FILE)"; }

  # pg_ctl -w waits on the socket; also confirm TCP on loopback accepts connections.
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2; do
    if ((SECONDS >= deadline)); then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "not accepting connections on $ADDRESS after ${START_TIMEOUT}s"
    fi
    sleep 0.5
  done
  say "ready in $((SECONDS - t0))s (pid $(server_pid), postgresql://postgres@$ADDRESS/postgres)"
}

cmd_stop() {
  find_pg_bin || true
  if ! is_running; then
    say "not running"
    return 0
  fi
  say "stopping (pid $(server_pid))"
  # fast = roll back open transactions and disconnect clients, then a clean checkpoint.
  ( cd "$PG_DIR" && as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t 60 stop >/dev/null )
  say "stopped"
}

cmd_status() {
  find_pg_bin || true
  if is_running; then
    say "running (pid $(server_pid), postgresql://postgres@127.0.0.1:$(running_port)/postgres)"
    return 0
  fi
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
