#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft, combined broker+controller) for development.
#
#   deploy/local/kafka.sh install   # Java 17+, Maven, broker jars (from Maven Central)
#   deploy/local/kafka.sh start     # install if needed, start, wait until ready
#   deploy/local/kafka.sh stop      # SIGTERM, then SIGKILL after 30 s
#   deploy/local/kafka.sh status    # exit 0 if running, 3 if not
#
# No tarball download: the broker's jars come from Maven Central (the only Java registry
# reachable here) via deploy/local/kafka/pom.xml. Listens on 127.0.0.1 only.
#
# Security (issue #12, ADR 0011): clients authenticate with SASL/SCRAM-SHA-512 and the
# StandardAuthorizer enforces ACLs (nothing is allowed without one). This script creates the
# superuser `admin` when it formats the storage, and keeps the passwords it generates in
# var/secrets/kafka/ (0600, never in the repo); `aidmesh infra bootstrap` then creates one
# principal per service and the grants derived from the topic catalogue.
#
# Env: AIDMESH_STATE_DIR (default <repo>/var), AIDMESH_KAFKA_PORT (9092),
#      AIDMESH_KAFKA_CONTROLLER_PORT (9093), AIDMESH_KAFKA_START_TIMEOUT (90 s),
#      AIDMESH_KAFKA_HEAP_OPTS ("-Xms256m -Xmx1g").
set -euo pipefail

AIDMESH_COMPONENT=kafka
# shellcheck source=deploy/local/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

KAFKA_SRC=$AIDMESH_LOCAL_DIR/kafka              # pom.xml + log4j2.xml (checked in)
KAFKA_DIR=$AIDMESH_STATE_ROOT/kafka             # all runtime state (not checked in)
LIBS_DIR=$KAFKA_DIR/libs
LIBS_STAMP=$LIBS_DIR/.pom.sha256                # sha256 of the pom the libs came from
DATA_DIR=$KAFKA_DIR/data
CONFIG=$KAFKA_DIR/server.properties
CLUSTER_ID_FILE=$KAFKA_DIR/cluster.id
PID_FILE=$KAFKA_DIR/kafka.pid
SERVER_LOG=$KAFKA_DIR/server.log
STDOUT_LOG=$KAFKA_DIR/stdout.log
# The broker's own credentials: `admin` (superuser, SCRAM, for operators and bootstrap) and
# `controller` (SASL/PLAIN on the controller listener: SCRAM credentials live in the metadata
# log, which the controller quorum must be able to reach before it can read them).
SECRETS_DIR=$AIDMESH_KAFKA_SECRETS_DIR
# Storage formatted with the admin SCRAM user carries this marker; older local storage (from
# before SASL) is reformatted once.
SECURITY_MARKER=$KAFKA_DIR/security
SECURITY_VERSION=sasl-scram-sha-512/v1

PORT=${AIDMESH_KAFKA_PORT:-9092}
CONTROLLER_PORT=${AIDMESH_KAFKA_CONTROLLER_PORT:-9093}
START_TIMEOUT=${AIDMESH_KAFKA_START_TIMEOUT:-90}
HEAP_OPTS=${AIDMESH_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
BOOTSTRAP=127.0.0.1:$PORT

# Kafka 4 (KafkaRaftServer) logs this once the broker serves requests.
READY_MARKER='Kafka Server started'
MAIN_CLASS=kafka.Kafka

JAVA=""

# ---- Java / Maven ------------------------------------------------------------------------

# Major version of a java binary: "17.0.15" -> 17, "1.8.0_392" -> 8.
java_major() {
  "$1" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}' \
    | awk -F. '{ if ($1 == "1") print $2; else print $1 }' | sed 's/[^0-9].*//'
}

# Picks a Java 17+ binary: $JAVA_HOME, then PATH, then any JVM under /usr/lib/jvm (newest).
find_java() {
  local cand major
  # shellcheck disable=SC2012  # JVM dir names have no spaces; sort -V needs a plain list
  for cand in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" \
              $(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | sort -rV); do
    [[ -n $cand && -x $cand ]] || continue
    major=$(java_major "$cand")
    if [[ -n $major && $major -ge 17 ]]; then JAVA=$cand; return 0; fi
  done
  return 1
}

ensure_java() {
  find_java && return 0
  say "Java 17+ not found (Kafka 4 needs it)"
  # Debian 12 ships openjdk-17; newer releases may only have a newer default JRE.
  apt_update_once
  if is_root && apt_has_candidate openjdk-17-jre-headless; then
    apt_install openjdk-17-jre-headless
  else
    apt_install default-jre-headless
  fi
  find_java || die "installed a JRE but still found no Java 17+; set JAVA_HOME to a Java 17+ installation"
}

ensure_maven() {
  command -v mvn >/dev/null 2>&1 && return 0
  say "Maven not found (needed once, to fetch the broker jars from Maven Central)"
  apt_install maven
}

# ---- install -------------------------------------------------------------------------------

pom_sha() { sha256sum "$KAFKA_SRC/pom.xml" | cut -d' ' -f1; }

libs_complete() {
  [[ -f $LIBS_STAMP && $(cat "$LIBS_STAMP") == "$(pom_sha)" ]]
}

# Copies the broker's runtime classpath into libs/. Skipped when the stamp matches the pom,
# so later starts need neither Maven nor the network. Fetches into a temp dir and swaps it in,
# so an interrupted download never leaves a half-filled libs/ that looks complete.
fetch_libs() {
  if libs_complete; then return 0; fi
  if is_running; then
    warn "pom.xml changed but Kafka is running: stop it first to refresh $LIBS_DIR"
    return 0
  fi
  ensure_maven
  say "fetching broker jars from Maven Central into $LIBS_DIR"
  local tmp=$KAFKA_DIR/libs.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # Output goes to mvn.log (Maven 3.8 prints terminal escape codes even in batch mode).
  if ! mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$KAFKA_SRC/pom.xml" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
      >"$KAFKA_DIR/mvn.log" 2>&1; then
    tail -n 40 "$KAFKA_DIR/mvn.log" >&2
    die "mvn could not fetch the Kafka jars (is Maven Central reachable? output above, full log $KAFKA_DIR/mvn.log)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "mvn finished but kafka_2.13 jar is missing in $tmp"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  pom_sha >"$LIBS_STAMP"
  say "installed $(basename "$LIBS_DIR"/kafka_2.13-*.jar .jar | sed 's/^kafka_2.13-/Kafka /')"
}

cmd_install() {
  mkdir -p "$KAFKA_DIR"
  ensure_java
  fetch_libs
}

# ---- config / storage ------------------------------------------------------------------------

# Regenerated on every start so that port changes via env vars take effect.
# A password file per principal, generated once (0600).
secret() {
  local file=$SECRETS_DIR/$1.password
  if [[ ! -s $file ]]; then
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    (umask 077; head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$file.tmp")
    mv "$file.tmp" "$file"
  fi
  cat "$file"
}

write_config() {
  local admin_password controller_password
  admin_password=$(secret admin)
  controller_password=$(secret controller)
  # It holds the broker's own passwords.
  (umask 077; : >"$CONFIG")
  cat >"$CONFIG" <<EOF
# Generated by deploy/local/kafka.sh on every start: edit the script, not this file.
# One-node KRaft cluster: this process is both broker and (the only) controller.
process.roles=broker,controller
node.id=1
listeners=SASL_PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
log.dirs=$DATA_DIR

# Every client authenticates (SCRAM-SHA-512; plaintext is acceptable on loopback only: a real
# cluster uses SASL_SSL, see deploy/k8s) and is allowed only what an ACL grants it.
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_password";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller_password" user_controller="$controller_password";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller

# Single node: every internal topic has exactly one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Topics are created by our Python tooling from the topic catalogue, never implicitly.
auto.create.topics.enable=false
num.partitions=6

# Accept records up to 16 MiB so oversized "poison" records (we test with 5 MB) reach the
# consumer and can be dead-lettered instead of being refused at produce time.
message.max.bytes=16777216
replica.fetch.max.bytes=16777216

# Consumers join immediately (no 3 s wait for more members) - faster tests.
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
}

# Formats log.dirs once (first start only). The cluster id is kept in cluster.id so a wiped
# data/ is re-formatted with the same id; formatting again over existing data is never done.
format_storage_once() {
  if [[ -f $DATA_DIR/meta.properties && $(cat "$SECURITY_MARKER" 2>/dev/null) != "$SECURITY_VERSION" ]]; then
    warn "the local storage in $DATA_DIR was formatted without SASL users (before issue #12):" \
         "formatting it again (local development data only; make infra-up recreates the topics)"
    rm -rf "$DATA_DIR"
  fi
  if [[ -f $DATA_DIR/meta.properties ]]; then return 0; fi
  if [[ ! -s $CLUSTER_ID_FILE ]]; then
    "$JAVA" -cp "$LIBS_DIR/*" kafka.tools.StorageTool random-uuid >"$CLUSTER_ID_FILE.tmp"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  say "formatting storage (first start, cluster id $(cat "$CLUSTER_ID_FILE"))"
  mkdir -p "$DATA_DIR"
  "$JAVA" -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.xml" -Dkafka.logs.dir="$KAFKA_DIR" \
      -cp "$LIBS_DIR/*" kafka.tools.StorageTool format \
      -t "$(cat "$CLUSTER_ID_FILE")" -c "$CONFIG" --standalone \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$(secret admin)]" >"$KAFKA_DIR/format.log" 2>&1 \
    || { cat "$KAFKA_DIR/format.log" >&2; die "storage format failed"; }
  echo "$SECURITY_VERSION" >"$SECURITY_MARKER"
}

# ---- start / stop / status -------------------------------------------------------------------

read_pid() { cat "$PID_FILE" 2>/dev/null || true; }
is_running() { pid_alive "$(read_pid)" "$MAIN_CLASS"; }

# Bootstrap address of the running broker (from the config it was started with, which may
# differ from the current env vars).
running_bootstrap() {
  sed -n 's#^advertised.listeners=[A-Z_]*://##p' "$CONFIG" 2>/dev/null || true
}

show_logs() {
  echo "---- last 40 lines of $SERVER_LOG ----" >&2
  tail -n 40 "$SERVER_LOG" >&2 2>/dev/null || echo "(no server.log)" >&2
  if [[ -s $STDOUT_LOG ]]; then
    echo "---- last 40 lines of $STDOUT_LOG ----" >&2
    tail -n 40 "$STDOUT_LOG" >&2
  fi
}

cmd_start() {
  if is_running; then
    say "already running (pid $(read_pid), bootstrap $(running_bootstrap))"
    [[ $(running_bootstrap) == "$BOOTSTRAP" ]] \
      || warn "it runs on $(running_bootstrap), not $BOOTSTRAP: stop and start it to change ports"
    return 0
  fi
  rm -f "$PID_FILE"
  # Check the ports before anything slow, so a conflict is reported at once.
  require_port_free "$PORT" AIDMESH_KAFKA_PORT
  require_port_free "$CONTROLLER_PORT" AIDMESH_KAFKA_CONTROLLER_PORT

  cmd_install
  write_config
  format_storage_once

  say "starting ($BOOTSTRAP)"
  local t0=$SECONDS log_offset=0
  # Readiness is judged only on log lines written by this start (server.log is appended to).
  [[ -f $SERVER_LOG ]] && log_offset=$(stat -c %s "$SERVER_LOG")

  # setsid + nohup: the broker gets its own session, so it survives the calling shell
  # (and Ctrl-C in it). The inner shell writes its own pid and execs java, so the pid file
  # holds the JVM's pid whether or not setsid had to fork.
  (
    cd "$KAFKA_DIR"
    # shellcheck disable=SC2086,SC2016  # HEAP_OPTS is a list of flags; $$ is for the inner shell
    nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.xml" -Dkafka.logs.dir="$KAFKA_DIR" \
      -cp "$LIBS_DIR/*" "$MAIN_CLASS" "$CONFIG" \
      >"$STDOUT_LOG" 2>&1 </dev/null &
  )

  local deadline=$((SECONDS + START_TIMEOUT)) pid=""
  while ((SECONDS < deadline)); do
    pid=$(read_pid)
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      show_logs
      rm -f "$PID_FILE"
      die "the broker exited during startup (logs above)"
    fi
    if [[ -n $pid ]] && port_open "$PORT" \
        && tail -c +$((log_offset + 1)) "$SERVER_LOG" 2>/dev/null | grep -qF "$READY_MARKER"; then
      say "ready in $((SECONDS - t0))s (pid $pid, bootstrap $BOOTSTRAP)"
      return 0
    fi
    sleep 0.5
  done
  show_logs
  # Do not leave a half-started broker behind: a later 'start' would report it as running.
  cmd_stop >&2
  die "not ready after ${START_TIMEOUT}s (logs above); a slow machine may need AIDMESH_KAFKA_START_TIMEOUT=180"
}

cmd_stop() {
  # SIGTERM triggers Kafka's controlled shutdown (flushes logs, clean shutdown marker,
  # which makes the next start skip log recovery).
  stop_process "$PID_FILE" "$MAIN_CLASS" 30
}

cmd_status() {
  if is_running; then
    say "running (pid $(read_pid), bootstrap $(running_bootstrap))"
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
