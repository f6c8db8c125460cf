#!/usr/bin/env bash
# Run a real Apache Kafka 4.x cluster (KRaft) from jars fetched from Maven
# Central: one node by default, or KAFKA_NODES of them on loopback, each a
# combined broker+controller and a voter of the quorum. For tests only.
#
# Usage: scripts/kafka.sh fetch|start|stop|restart|status
#        scripts/kafka.sh kill N|start-node N          (N = 1..KAFKA_NODES)
#
#   fetch    download the broker jars into the cache (idempotent)
#   start    fetch, then start every node in the background and wait until
#            the cluster serves; prints "KAFKA_BROKERS=127.0.0.1:<port>,..."
#            (one address a node) on stdout. With several nodes it also waits
#            until every broker is registered and a topic with replication
#            factor min(3, KAFKA_NODES) can be created. Wipes and reformats the
#            run dir unless KAFKA_FRESH=0 (and data already exists). No-op if
#            every node is already running.
#   stop     stop every node (TERM, then KILL after 30 s); keeps their data
#   restart  stop, then start again keeping the existing data (KAFKA_FRESH=0)
#   status   exit 0 if every node is running, 1 otherwise (one line a node)
#   kill N   kill -9 node N (a crash: no controlled shutdown), and wait until
#            the process is gone
#   start-node N
#            start node N again with its data and wait until it is back in the
#            cluster (registered and unfenced: the others see it)
#
# Environment (defaults):
#   KAFKA_VERSION=4.1.1
#   LOG4J_VERSION=2.24.3          slf4j->log4j2 binding added to the fetch
#   IDEMGATE_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/idemgate
#   KAFKA_RUN_DIR=/tmp/idemgate-kafka
#   KAFKA_NODES=1                 nodes in the cluster
#   KAFKA_PORT=19092  KAFKA_CONTROLLER_PORT=KAFKA_PORT+1  KAFKA_PARTITIONS=3
#   KAFKA_FRESH=1                 start: 1 = wipe + reformat, 0 = keep data
#   KAFKA_START_TIMEOUT=120       seconds to wait for the cluster to serve
#   KAFKA_HEAP_OPTS="-Xmx512m -Xms512m"   per node
#   KAFKA_JVM_OPTS=               more JVM options for each node (tests on a
#                                 busy machine: -XX:TieredStopAtLevel=1)
#   KAFKA_ADVERTISED_PORTS=       comma list, one port per node: the PLAINTEXT
#                                 port the broker advertises (default: the port
#                                 it listens on). Set it to put a proxy
#                                 (toxiproxy) in front: the broker listens on its
#                                 port, the proxy on the advertised port forwards
#                                 to it, and clients, which follow the advertised
#                                 address after the bootstrap, go through the
#                                 proxy. KAFKA_BROKERS then names the advertised
#                                 ports. Inter-broker traffic (replication) uses
#                                 the advertised address too, so the proxies must
#                                 be up before the nodes start.
#
# Layout. Node N (1-based) listens on
#   broker (PLAINTEXT)   KAFKA_PORT + 2(N-1)             19092, 19094, 19096
#   controller           KAFKA_CONTROLLER_PORT + 2(N-1)  19093, 19095, 19097
# so each node keeps today's pair (port, port+1) and node 1 is the single node
# of KAFKA_NODES=1. Its files: with one node, KAFKA_RUN_DIR itself (as always:
# server.properties, broker.log, broker.pid, data/); with several,
# KAFKA_RUN_DIR/nodeN/ (the same files), all formatted with one cluster id.
#
# Cluster defaults with several nodes (R = min(3, KAFKA_NODES), I = 2 with three
# nodes or more, else 1): default.replication.factor=R, min.insync.replicas=I,
# offsets.topic.replication.factor=R, transaction.state.log.replication.factor=R,
# transaction.state.log.min.isr=I, unclean.leader.election.enable=false. One
# node keeps replication factor 1 everywhere.
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
#   One node only (KAFKA_NODES=1).
#
# Human-readable messages go to stderr; stdout only carries KAFKA_BROKERS=...
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
LOG4J_VERSION=${LOG4J_VERSION:-2.24.3}
IDEMGATE_CACHE=${IDEMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/idemgate}
KAFKA_RUN_DIR=${KAFKA_RUN_DIR:-/tmp/idemgate-kafka}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_NODES=${KAFKA_NODES:-1}
KAFKA_PARTITIONS=${KAFKA_PARTITIONS:-3}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:-}
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
# The node the functions below act on: set by use_node.
NODE=1 NODE_DIR= NODE_PORT= NODE_CONTROLLER_PORT= NODE_ADVERTISED_PORT=
PID_FILE= BROKER_LOG= CONFIG= DATA_DIR=
# KafkaRaftServer logs this once the broker and controller are fully up.
STARTED_RE='Kafka Server started'

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 fetch|start|stop|restart|status|kill N|start-node N" >&2
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

# check_layout: dies unless KAFKA_NODES, the ports and KAFKA_ADVERTISED_PORTS
# make a cluster (see Layout in the header).
check_layout() {
  [[ $KAFKA_NODES =~ ^[1-9][0-9]*$ ]] || die "KAFKA_NODES='$KAFKA_NODES' is not a number of nodes"
  [[ $KAFKA_PORT =~ ^[0-9]+$ && $KAFKA_CONTROLLER_PORT =~ ^[0-9]+$ ]] ||
    die "KAFKA_PORT='$KAFKA_PORT' and KAFKA_CONTROLLER_PORT='$KAFKA_CONTROLLER_PORT' must be ports"
  if [[ -n $KAFKA_ADVERTISED_PORTS ]]; then
    local ports p
    IFS=, read -ra ports <<<"$KAFKA_ADVERTISED_PORTS"
    [[ ${#ports[@]} -eq $KAFKA_NODES ]] ||
      die "KAFKA_ADVERTISED_PORTS='$KAFKA_ADVERTISED_PORTS' is not one port per node ($KAFKA_NODES)"
    for p in "${ports[@]}"; do [[ $p =~ ^[0-9]+$ ]] || die "KAFKA_ADVERTISED_PORTS: '$p' is not a port"; done
  fi
  if ((KAFKA_NODES > 1)); then
    [[ -z $KAFKA_SASL_SSL_PORT ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_NODES=1"
    local -A seen=()
    local n port
    for ((n = 1; n <= KAFKA_NODES; n++)); do
      for port in $((KAFKA_PORT + 2 * (n - 1))) $((KAFKA_CONTROLLER_PORT + 2 * (n - 1))); do
        [[ -z ${seen[$port]:-} ]] ||
          die "port $port serves twice: with KAFKA_NODES=$KAFKA_NODES, node N listens on KAFKA_PORT+2(N-1) and KAFKA_CONTROLLER_PORT+2(N-1)"
        seen[$port]=1
      done
    done
  fi
}

# use_node N: point PID_FILE, BROKER_LOG, CONFIG, DATA_DIR and the NODE_*
# ports at node N (see Layout in the header).
use_node() {
  NODE=$1
  [[ $NODE =~ ^[0-9]+$ ]] && ((NODE >= 1 && NODE <= KAFKA_NODES)) ||
    die "node '$NODE' is not one of 1..$KAFKA_NODES"
  if ((KAFKA_NODES == 1)); then NODE_DIR=$KAFKA_RUN_DIR; else NODE_DIR=$KAFKA_RUN_DIR/node$NODE; fi
  PID_FILE=$NODE_DIR/broker.pid
  BROKER_LOG=$NODE_DIR/broker.log
  CONFIG=$NODE_DIR/server.properties
  DATA_DIR=$NODE_DIR/data
  NODE_PORT=$((KAFKA_PORT + 2 * (NODE - 1)))
  NODE_CONTROLLER_PORT=$((KAFKA_CONTROLLER_PORT + 2 * (NODE - 1)))
  NODE_ADVERTISED_PORT=$NODE_PORT
  if [[ -n $KAFKA_ADVERTISED_PORTS ]]; then
    local ports
    IFS=, read -ra ports <<<"$KAFKA_ADVERTISED_PORTS"
    NODE_ADVERTISED_PORT=${ports[NODE - 1]}
  fi
}

# brokers_line: the KAFKA_BROKERS=... line (the advertised addresses).
brokers_line() {
  local n addrs=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    use_node "$n"
    addrs+=("127.0.0.1:$NODE_ADVERTISED_PORT")
  done
  local IFS=,
  echo "KAFKA_BROKERS=${addrs[*]}"
}

# voters: controller.quorum.voters, every node a voter.
voters() {
  local n v=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    v+=("$n@127.0.0.1:$((KAFKA_CONTROLLER_PORT + 2 * (n - 1)))")
  done
  local IFS=,
  echo "${v[*]}"
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

# write_config: the current node's server.properties and log4j2.properties.
write_config() {
  local listeners="PLAINTEXT://127.0.0.1:$NODE_PORT" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  local advertised="PLAINTEXT://127.0.0.1:$NODE_ADVERTISED_PORT"
  if [[ -n $KAFKA_SASL_SSL_PORT ]]; then
    listeners+=",SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
    advertised+=",SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  local what="single-node KRaft broker for tests" rf=1 isr=1
  local small="# Small internal topics: a single node, and fewer partitions = faster start."
  if ((KAFKA_NODES > 1)); then
    what="node $NODE of a $KAFKA_NODES-node KRaft cluster for tests"
    rf=$((KAFKA_NODES < 3 ? KAFKA_NODES : 3)) isr=$((KAFKA_NODES >= 3 ? 2 : 1))
    small="# Internal topics replicated as a platform team would (fewer partitions = faster start)."
  fi
  cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh: $what.
process.roles=broker,controller
node.id=$NODE
controller.quorum.voters=$(voters)
listeners=$listeners,CONTROLLER://127.0.0.1:$NODE_CONTROLLER_PORT
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
$small
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# After a kill -9 the new incarnation cannot register until the old broker
# session expires (default 9 s); shorter session = faster chaos restarts.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
EOF
  if ((KAFKA_NODES > 1)); then
    cat >>"$CONFIG" <<EOF
# A cluster as a platform team runs it: topics replicated $rf times, and with
# three nodes an acks=all write is on two of them before it is acknowledged;
# a replica that fell behind never becomes leader (no acknowledged write lost).
default.replication.factor=$rf
min.insync.replicas=$isr
unclean.leader.election.enable=false
EOF
  fi
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

  cat >"$NODE_DIR/log4j2.properties" <<'EOF'
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

# format_storage CLUSTER_ID: format the current node's log dir.
format_storage() {
  local cluster_id=$1
  # SCRAM credentials live in the cluster metadata: added at format time.
  local scram=() name pass mech
  if [[ -n $KAFKA_SASL_SSL_PORT ]]; then
    while read -r name pass; do
      for mech in SCRAM-SHA-256 SCRAM-SHA-512; do scram+=(--add-scram "$mech=[name=$name,password=$pass]"); done
    done < <(sasl_users)
  fi
  # Static quorum (controller.quorum.voters): --standalone must NOT be given.
  java_cp kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" "${scram[@]}" \
    >"$NODE_DIR/format.log" 2>&1 \
    || { cat "$NODE_DIR/format.log" >&2; die "StorageTool format failed (node $NODE)"; }
}

# wait_ports_free: a just-killed node may hold its ports for a moment: wait
# up to 15 s for the current node's.
wait_ports_free() {
  local p i
  for p in "$NODE_PORT" "$NODE_CONTROLLER_PORT" $KAFKA_SASL_SSL_PORT; do
    for ((i = 0; i < 30; i++)); do
      port_open "$p" || continue 2
      sleep 0.5
    done
    die "port $p is already in use by another process (not our broker)"
  done
}

# launch_node: start the current node's JVM in the background.
launch_node() {
  # Keep the previous broker.log around across restarts for debugging.
  if [[ -f $BROKER_LOG ]]; then mv -f "$BROKER_LOG" "$BROKER_LOG.prev"; fi
  rm -f "$PID_FILE"
  mkdir -p "$NODE_DIR/logs"
  # setsid + nohup: the broker survives this script and its session. The
  # inner shell writes its own pid, then execs (same pid) into the JVM.
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS and KAFKA_JVM_OPTS are intentionally split
  setsid bash -c 'echo $$ >"$1"; shift; exec nohup "$@"' _ "$PID_FILE" \
    java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$NODE_DIR/log4j2.properties" \
    -Dkafka.logs.dir="$NODE_DIR/logs" \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
    >"$BROKER_LOG" 2>&1 </dev/null &
}

# wait_started DEADLINE N...: wait until each node N logs that it started
# (KafkaRaftServer logs it once the broker is registered and unfenced);
# dies if one exits or DEADLINE (in $SECONDS) passes.
wait_started() {
  local deadline=$1 n
  shift
  for n in "$@"; do
    use_node "$n"
    while :; do
      if [[ -f $PID_FILE ]] && ! running_pid >/dev/null; then
        sleep 0.2 # the exec may not have happened yet
        if ! running_pid >/dev/null; then
          log "node $n exited during startup; tail of $BROKER_LOG:"
          tail -n 40 "$BROKER_LOG" >&2 || true
          exit 1
        fi
      fi
      if port_open "$NODE_PORT" && grep -q "$STARTED_RE" "$BROKER_LOG" 2>/dev/null; then
        break
      fi
      if ((SECONDS >= deadline)); then
        log "node $n did not start within ${KAFKA_START_TIMEOUT}s; tail of $BROKER_LOG:"
        tail -n 40 "$BROKER_LOG" >&2 || true
        exit 1
      fi
      sleep 0.5
    done
  done
}

# cluster_ready DEADLINE RF: with several nodes, wait (scripts/kafka-ready.java,
# the Kafka admin client) until every broker is registered and, if RF > 0, a
# probe topic with that replication factor can be created (it is deleted).
cluster_ready() {
  ((KAFKA_NODES > 1)) || return 0
  local deadline=$1 rf=$2 n bootstrap=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do bootstrap+=("127.0.0.1:$((KAFKA_PORT + 2 * (n - 1)))"); done
  # Compiled once into the cache (keyed by the source's checksum): the
  # source launcher takes seconds longer on every call on a busy machine.
  local src=$SCRIPT_DIR/kafka-ready.java sum classes
  sum=$(cksum <"$src" | cut -d' ' -f1)
  classes=$KAFKA_HOME/kafka-ready-$sum
  if [[ ! -f $classes/KafkaReady.class ]]; then
    need javac "the JDK's compiler builds scripts/kafka-ready.java"
    rm -rf "$classes.tmp.$$"
    javac -nowarn -cp "$LIBS/*" -d "$classes.tmp.$$" "$src" >&2 || die "javac $src failed"
    mv -T "$classes.tmp.$$" "$classes" 2>/dev/null || rm -rf "$classes.tmp.$$" # another start won
  fi
  local IFS=,
  java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$classes:$LIBS/*" KafkaReady \
    "${bootstrap[*]}" "$KAFKA_NODES" "$rf" "$((deadline > SECONDS ? deadline - SECONDS : 1))" >&2 ||
    die "the cluster is not ready (registered brokers, or a topic with replication factor $rf)"
}

do_start() {
  local fresh=${KAFKA_FRESH:-1} pid n running=0
  need java "Java 17+ is required"
  check_layout
  check_sasl_ssl
  do_fetch
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    use_node "$n"
    if pid=$(running_pid); then running=$((running + 1)); fi
  done
  if ((running == KAFKA_NODES)); then
    log "already running on 127.0.0.1:$KAFKA_PORT ($KAFKA_NODES node(s))"
    brokers_line
    return 0
  elif ((running > 0)); then
    die "$running of $KAFKA_NODES nodes are running: start the others with start-node N, or stop first"
  fi
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    use_node "$n"
    wait_ports_free
  done

  local reformat=0
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    use_node "$n"
    if [[ $fresh != 0 || ! -f $DATA_DIR/meta.properties ]]; then reformat=1; fi
  done
  if ((reformat)); then
    case $KAFKA_RUN_DIR in
      "" | / | /tmp | /tmp/) die "refusing to wipe KAFKA_RUN_DIR='$KAFKA_RUN_DIR'" ;;
    esac
    rm -rf "$KAFKA_RUN_DIR"
  fi
  mkdir -p "$KAFKA_RUN_DIR"
  local cluster_id=
  if ((reformat)); then
    cluster_id=$(java_cp kafka.tools.StorageTool random-uuid) || die "StorageTool random-uuid failed"
  fi
  local formats=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    use_node "$n"
    mkdir -p "$NODE_DIR/logs"
    write_config
    if ((reformat)); then
      format_storage "$cluster_id" & # one JVM a node: side by side
      formats+=($!)
    else
      log "keeping existing data in $DATA_DIR"
    fi
  done
  for pid in "${formats[@]}"; do wait "$pid" || exit 1; done

  local t0=$SECONDS deadline=$((SECONDS + KAFKA_START_TIMEOUT)) nodes=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    use_node "$n"
    launch_node
    nodes+=("$n")
  done
  wait_started "$deadline" "${nodes[@]}"
  cluster_ready "$deadline" "$((KAFKA_NODES < 3 ? KAFKA_NODES : 3))"
  if ((KAFKA_NODES == 1)); then
    log "started Kafka $KAFKA_VERSION (pid $(<"$PID_FILE")) in $((SECONDS - t0))s; run dir $KAFKA_RUN_DIR"
  else
    log "started a $KAFKA_NODES-node Kafka $KAFKA_VERSION cluster in $((SECONDS - t0))s; run dir $KAFKA_RUN_DIR"
  fi
  if [[ -n $KAFKA_SASL_SSL_PORT ]]; then log "SASL_SSL listener on 127.0.0.1:$KAFKA_SASL_SSL_PORT"; fi
  if [[ -n $KAFKA_ADVERTISED_PORTS ]]; then log "advertising ports $KAFKA_ADVERTISED_PORTS"; fi
  brokers_line
}

# do_start_node N: start node N again with its data; wait until it is back.
do_start_node() {
  local pid
  need java "Java 17+ is required"
  check_layout
  check_sasl_ssl
  use_node "$1"
  if pid=$(running_pid); then
    log "node $NODE is already running (pid $pid)"
    return 0
  fi
  [[ -f $DATA_DIR/meta.properties && -f $CONFIG ]] || die "node $NODE has no data in $NODE_DIR: start the cluster first"
  wait_ports_free
  write_config # the same settings as when the cluster started (same environment)
  local t0=$SECONDS deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  launch_node
  wait_started "$deadline" "$NODE"
  use_node "$1"
  cluster_ready "$deadline" 0
  log "node $NODE (pid $(<"$PID_FILE")) is back in $((SECONDS - t0))s on 127.0.0.1:$NODE_PORT"
}

# do_kill N: kill -9 node N and wait until its process is gone.
do_kill() {
  local pid i
  check_layout
  use_node "$1"
  if ! pid=$(running_pid); then
    die "node $NODE is not running"
  fi
  kill -KILL "$pid"
  for ((i = 0; i < 100; i++)); do
    [[ -e /proc/$pid ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || break
    sleep 0.1
  done
  log "killed node $NODE (pid $pid, kill -9)"
}

do_stop() {
  local n pid pids=() nodes=()
  check_layout
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    use_node "$n"
    if pid=$(running_pid); then
      pids+=("$pid")
      nodes+=("$n")
    else
      rm -f "$PID_FILE"
    fi
  done
  if ((${#pids[@]} == 0)); then
    log "not running"
    return 0
  fi
  # All at once: a node that stops while the others wait would lose the
  # controller quorum under the last ones.
  log "stopping node(s) ${nodes[*]} (pid ${pids[*]})"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local i alive
  for ((i = 0; i < 60; i++)); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]} > 0)) || break
    sleep 0.5
  done
  alive=()
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
  if ((${#alive[@]} > 0)); then
    log "pid ${alive[*]} did not exit within 30s; sending KILL"
    kill -KILL "${alive[@]}" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
      alive=()
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
      ((${#alive[@]} > 0)) || break
      sleep 0.25
    done
  fi
  for n in "${nodes[@]}"; do
    use_node "$n"
    rm -f "$PID_FILE"
  done
  log "stopped"
}

do_status() {
  local n pid down=0
  check_layout
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    use_node "$n"
    if pid=$(running_pid); then
      if ((KAFKA_NODES == 1)); then
        log "running (pid $pid) on 127.0.0.1:$NODE_PORT"
      else
        log "node $n: running (pid $pid) on 127.0.0.1:$NODE_PORT"
      fi
    else
      down=$((down + 1))
      if ((KAFKA_NODES == 1)); then log "not running"; else log "node $n: not running"; fi
    fi
  done
  ((down == 0))
}

case ${1:-} in
  fetch | start | stop | restart | status) [[ $# -eq 1 ]] || usage ;;
  kill | start-node) [[ $# -eq 2 ]] || usage ;;
  *) usage ;;
esac
case $1 in
  fetch) do_fetch ;;
  start) do_start ;;
  stop) do_stop ;;
  restart)
    do_stop
    KAFKA_FRESH=0 do_start
    ;;
  status) do_status ;;
  kill) do_kill "$2" ;;
  start-node) do_start_node "$2" ;;
esac
