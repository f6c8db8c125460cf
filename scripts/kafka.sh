#!/usr/bin/env bash
# Run a real, single-node Apache Kafka 4.x broker (KRaft, combined
# broker+controller) from jars fetched from Maven Central. For tests only.
#
# Usage: scripts/kafka.sh fetch|start|stop|restart|status
#
#   fetch    download the broker jars into the cache (idempotent)
#   start    fetch, then start the broker in the background and wait until it
#            serves; prints "KAFKA_BROKERS=127.0.0.1:<port>" on stdout.
#            Wipes and reformats the run dir unless KAFKA_FRESH=0 (and data
#            already exists). No-op if the broker is already running.
#   stop     stop the broker (TERM, then KILL after 30 s); keeps its data
#   restart  stop, then start again keeping the existing data (KAFKA_FRESH=0)
#   status   exit 0 if the broker is running, 1 otherwise
#
# Environment (defaults):
#   KAFKA_VERSION=4.1.1
#   LOG4J_VERSION=2.24.3          slf4j->log4j2 binding added to the fetch
#   IDEMGATE_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/idemgate
#   KAFKA_RUN_DIR=/tmp/idemgate-kafka
#   KAFKA_PORT=19092  KAFKA_CONTROLLER_PORT=19093  KAFKA_PARTITIONS=3
#   KAFKA_FRESH=1                 start: 1 = wipe + reformat, 0 = keep data
#   KAFKA_START_TIMEOUT=120       seconds to wait for the broker to serve
#   KAFKA_ADVERTISED_PORTS=       comma list, one port per node: the PLAINTEXT
#                                 port the broker advertises (default: the port
#                                 it listens on, KAFKA_PORT). Set it to put a
#                                 proxy (toxiproxy) in front: the broker listens
#                                 on KAFKA_PORT, the proxy on the advertised port
#                                 forwards to it, and clients, which follow the
#                                 advertised address after the bootstrap, go
#                                 through the proxy. KAFKA_BROKERS then names the
#                                 advertised ports. Inter-broker traffic uses the
#                                 advertised address too, so the proxy must be up
#                                 before the broker starts.
#   KAFKA_HEAP_OPTS="-Xmx512m -Xms512m"
#
# A SASL_SSL listener beside the PLAINTEXT one (off unless KAFKA_SASL_SSL_PORT
# is set), for tests of TLS and SASL clients; the caller provides the PEM files:
#   KAFKA_SASL_SSL_PORT           port of the listener on 127.0.0.1
#   KAFKA_SSL_KEYSTORE_PEM        the broker's unencrypted PKCS#8 key followed by
#                                 its certificate chain (ssl.keystore.type=PEM);
#                                 the certificate must name 127.0.0.1
#   KAFKA_SSL_TRUSTSTORE_PEM      optional: CA certificates; with it the listener
#                                 requires client certificates signed by them
#   KAFKA_SASL_USERS              "name:password,..." (letters, digits, . _ -):
#                                 PLAIN users, and SCRAM-SHA-256 and -512
#                                 credentials added when the storage is formatted
#   KAFKA_AUTHORIZER=0            1: ACLs (StandardAuthorizer): SASL users may do
#                                 only what ACLs grant them; the PLAINTEXT
#                                 listener's User:ANONYMOUS is a super user, the
#                                 administrator that grants them
#   The listener offers PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. Its settings
#   are read at start; KAFKA_SASL_USERS only when the storage is formatted.
#
# Human-readable messages go to stderr; stdout only carries KAFKA_BROKERS=...
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
LOG4J_VERSION=${LOG4J_VERSION:-2.24.3}
IDEMGATE_CACHE=${IDEMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/idemgate}
KAFKA_RUN_DIR=${KAFKA_RUN_DIR:-/tmp/idemgate-kafka}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
KAFKA_PARTITIONS=${KAFKA_PARTITIONS:-3}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}
KAFKA_SASL_SSL_PORT=${KAFKA_SASL_SSL_PORT:-}
KAFKA_SSL_KEYSTORE_PEM=${KAFKA_SSL_KEYSTORE_PEM:-}
KAFKA_SSL_TRUSTSTORE_PEM=${KAFKA_SSL_TRUSTSTORE_PEM:-}
KAFKA_SASL_USERS=${KAFKA_SASL_USERS:-}
KAFKA_AUTHORIZER=${KAFKA_AUTHORIZER:-0}
KAFKA_ADVERTISED_PORTS=${KAFKA_ADVERTISED_PORTS:-}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM_TEMPLATE=$SCRIPT_DIR/kafka-pom.xml
KAFKA_HOME=$IDEMGATE_CACHE/kafka-$KAFKA_VERSION
LIBS=$KAFKA_HOME/libs
MARKER=$KAFKA_HOME/.fetch-complete
PID_FILE=$KAFKA_RUN_DIR/broker.pid
BROKER_LOG=$KAFKA_RUN_DIR/broker.log
CONFIG=$KAFKA_RUN_DIR/server.properties
DATA_DIR=$KAFKA_RUN_DIR/data
# KafkaRaftServer logs this once the broker and controller are fully up.
STARTED_RE='Kafka Server started'

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 fetch|start|stop|restart|status" >&2
  exit 2
}

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"; }

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# running_pid: print the broker pid and succeed if our broker is alive.
running_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: it must be a kafka.Kafka JVM.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

do_fetch() {
  if [[ -f $MARKER && -d $LIBS ]]; then
    return 0
  fi
  need mvn "needed to fetch Kafka jars from Maven Central"
  [[ -f $POM_TEMPLATE ]] || die "pom template $POM_TEMPLATE is missing"
  mkdir -p "$KAFKA_HOME"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  local tmp=$KAFKA_HOME/libs.tmp.$$
  rm -rf "$tmp"
  sed -e "s/@KAFKA_VERSION@/$KAFKA_VERSION/g" -e "s/@LOG4J_VERSION@/$LOG4J_VERSION/g" \
    "$POM_TEMPLATE" >"$KAFKA_HOME/pom.xml"
  if ! mvn -B -q -Dstyle.color=never -f "$KAFKA_HOME/pom.xml" \
      dependency:copy-dependencies -DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
    rm -rf "$tmp"
    die "mvn failed to fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log: $KAFKA_HOME/mvn.log)"
  fi
  if [[ ! -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]]; then
    rm -rf "$tmp"
    die "mvn succeeded but kafka_2.13-$KAFKA_VERSION.jar is missing (log: $KAFKA_HOME/mvn.log)"
  fi
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  ls "$LIBS" >"$MARKER"
  log "fetched $(wc -l <"$MARKER") jars"
}

# sasl_users: the names and passwords of KAFKA_SASL_USERS, one "name password"
# a line; dies on a malformed entry (the values go into JAAS and tool syntax).
sasl_users() {
  local entry name pass entries
  IFS=, read -ra entries <<<"$KAFKA_SASL_USERS"
  for entry in "${entries[@]}"; do
    [[ -z $entry ]] && continue
    name=${entry%%:*} pass=${entry#*:}
    [[ $entry == *:* && $name =~ ^[A-Za-z0-9._-]+$ && $pass =~ ^[A-Za-z0-9._-]+$ ]] ||
      die "KAFKA_SASL_USERS: '$entry' is not name:password (letters, digits, . _ -)"
    echo "$name $pass"
  done
}

# advertised_port: the PLAINTEXT port the broker advertises (KAFKA_ADVERTISED_PORTS,
# else the one it listens on); dies on a malformed list.
advertised_port() {
  if [[ -z $KAFKA_ADVERTISED_PORTS ]]; then
    echo "$KAFKA_PORT"
    return 0
  fi
  local ports
  IFS=, read -ra ports <<<"$KAFKA_ADVERTISED_PORTS"
  [[ ${#ports[@]} -eq 1 && ${ports[0]} =~ ^[0-9]+$ ]] ||
    die "KAFKA_ADVERTISED_PORTS='$KAFKA_ADVERTISED_PORTS' is not one port per node (1 node)"
  echo "${ports[0]}"
}

check_sasl_ssl() {
  [[ -n $KAFKA_SASL_SSL_PORT ]] || return 0
  [[ $KAFKA_SASL_SSL_PORT =~ ^[0-9]+$ ]] || die "KAFKA_SASL_SSL_PORT='$KAFKA_SASL_SSL_PORT' is not a port"
  [[ -r $KAFKA_SSL_KEYSTORE_PEM ]] ||
    die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE_PEM, a readable PEM file (key and certificate chain)"
  [[ -z $KAFKA_SSL_TRUSTSTORE_PEM || -r $KAFKA_SSL_TRUSTSTORE_PEM ]] ||
    die "KAFKA_SSL_TRUSTSTORE_PEM='$KAFKA_SSL_TRUSTSTORE_PEM' is not readable"
  local users
  users=$(sasl_users) || exit 1
  [[ -n $users ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_SASL_USERS=name:password,..."
}

write_config() {
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  local advertised
  advertised="PLAINTEXT://127.0.0.1:$(advertised_port)" || exit 1
  if [[ -n $KAFKA_SASL_SSL_PORT ]]; then
    listeners+=",SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
    advertised+=",SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh: single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
# Small internal topics: a single node, and fewer partitions = faster start.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# After a kill -9 the new incarnation cannot register until the old broker
# session expires (default 9 s); shorter session = faster chaos restarts.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
EOF
  if [[ -n $KAFKA_SASL_SSL_PORT ]]; then
    local plain_users="" name pass
    while read -r name pass; do plain_users+=" user_$name=\"$pass\""; done < <(sasl_users)
    cat >>"$CONFIG" <<EOF
# The SASL_SSL listener (KAFKA_SASL_SSL_PORT): TLS from PEM files, then SASL.
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$KAFKA_SSL_KEYSTORE_PEM
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
    if [[ $KAFKA_AUTHORIZER == 1 ]]; then
      cat >>"$CONFIG" <<EOF
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
EOF
    fi
    if [[ -n $KAFKA_SSL_TRUSTSTORE_PEM ]]; then
      cat >>"$CONFIG" <<EOF
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$KAFKA_SSL_TRUSTSTORE_PEM
listener.name.sasl_ssl.ssl.client.auth=required
EOF
    fi
  fi

  cat >"$KAFKA_RUN_DIR/log4j2.properties" <<'EOF'
# Generated by scripts/kafka.sh: everything to the console (broker.log).
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# Quieten the chattiest loggers.
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

java_cp() { java -cp "$LIBS/*" "$@"; }

format_storage() {
  local cluster_id
  cluster_id=$(java_cp kafka.tools.StorageTool random-uuid) || die "StorageTool random-uuid failed"
  # SCRAM credentials live in the cluster metadata: added at format time.
  local scram=() name pass mech
  if [[ -n $KAFKA_SASL_SSL_PORT ]]; then
    while read -r name pass; do
      for mech in SCRAM-SHA-256 SCRAM-SHA-512; do scram+=(--add-scram "$mech=[name=$name,password=$pass]"); done
    done < <(sasl_users)
  fi
  # Static quorum (controller.quorum.voters): --standalone must NOT be given.
  java_cp kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" "${scram[@]}" \
    >"$KAFKA_RUN_DIR/format.log" 2>&1 \
    || { cat "$KAFKA_RUN_DIR/format.log" >&2; die "StorageTool format failed"; }
}

do_start() {
  local fresh=${KAFKA_FRESH:-1} pid
  need java "Java 17+ is required"
  check_sasl_ssl
  local advertised
  advertised=$(advertised_port) || exit 1
  do_fetch
  if pid=$(running_pid); then
    log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    echo "KAFKA_BROKERS=127.0.0.1:$advertised"
    return 0
  fi
  # A just-killed broker may hold its ports for a moment: wait up to 15 s.
  local p i
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" $KAFKA_SASL_SSL_PORT; do
    for ((i = 0; i < 30; i++)); do
      port_open "$p" || continue 2
      sleep 0.5
    done
    die "port $p is already in use by another process (not our broker)"
  done

  local reformat=1
  if [[ $fresh == 0 && -f $DATA_DIR/meta.properties ]]; then
    reformat=0
  fi
  if ((reformat)); then
    case $KAFKA_RUN_DIR in
      "" | / | /tmp | /tmp/) die "refusing to wipe KAFKA_RUN_DIR='$KAFKA_RUN_DIR'" ;;
    esac
    rm -rf "$KAFKA_RUN_DIR"
  fi
  mkdir -p "$KAFKA_RUN_DIR/logs"
  write_config
  if ((reformat)); then
    format_storage
  else
    log "keeping existing data in $DATA_DIR"
  fi

  # Keep the previous broker.log around across restarts for debugging.
  if [[ -f $BROKER_LOG ]]; then mv -f "$BROKER_LOG" "$BROKER_LOG.prev"; fi
  rm -f "$PID_FILE"

  local t0=$SECONDS
  # setsid + nohup: the broker survives this script and its session. The
  # inner shell writes its own pid, then execs (same pid) into the JVM.
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is intentionally split
  setsid bash -c 'echo $$ >"$1"; shift; exec nohup "$@"' _ "$PID_FILE" \
    java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_RUN_DIR/log4j2.properties" \
    -Dkafka.logs.dir="$KAFKA_RUN_DIR/logs" \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
    >"$BROKER_LOG" 2>&1 </dev/null &

  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while :; do
    if [[ -f $PID_FILE ]] && ! running_pid >/dev/null; then
      sleep 0.2 # the exec may not have happened yet
      if ! running_pid >/dev/null; then
        log "broker process exited during startup; tail of $BROKER_LOG:"
        tail -n 40 "$BROKER_LOG" >&2 || true
        exit 1
      fi
    fi
    if port_open "$KAFKA_PORT" && grep -q "$STARTED_RE" "$BROKER_LOG" 2>/dev/null; then
      break
    fi
    if ((SECONDS >= deadline)); then
      log "broker did not start within ${KAFKA_START_TIMEOUT}s; tail of $BROKER_LOG:"
      tail -n 40 "$BROKER_LOG" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "started Kafka $KAFKA_VERSION (pid $(<"$PID_FILE")) in $((SECONDS - t0))s; run dir $KAFKA_RUN_DIR"
  if [[ -n $KAFKA_SASL_SSL_PORT ]]; then log "SASL_SSL listener on 127.0.0.1:$KAFKA_SASL_SSL_PORT"; fi
  if [[ $advertised != "$KAFKA_PORT" ]]; then log "listening on 127.0.0.1:$KAFKA_PORT, advertising 127.0.0.1:$advertised"; fi
  echo "KAFKA_BROKERS=127.0.0.1:$advertised"
}

do_stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker did not exit within 30s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

do_status() {
  local pid
  if pid=$(running_pid); then
    log "running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  log "not running"
  return 1
}

[[ $# -eq 1 ]] || usage
case $1 in
  fetch) do_fetch ;;
  start) do_start ;;
  stop) do_stop ;;
  restart)
    do_stop
    KAFKA_FRESH=0 do_start
    ;;
  status) do_status ;;
  *) usage ;;
esac
