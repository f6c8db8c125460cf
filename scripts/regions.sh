#!/usr/bin/env bash
# Run two idemgate regions on one machine (issue 20, docs/MULTI-REGION.md):
# one PostgreSQL shared by both (the one logical database), and for each
# region its own Kafka broker and its own serve, project and relay, which
# reach the database through a latency proxy (scripts/latencyproxy) of
# the region's: region A is near the database (1 ms), region B far (30 ms).
#
# Usage: scripts/regions.sh start|stop|status
#        scripts/regions.sh kill A|B          kill -9 every process of the region, its broker included
#        scripts/regions.sh start-region A|B  start them again on the same ports, keeping the broker's data
#
# start builds bin/idemgate and bin/latencyproxy, starts everything from
# fresh data and prints, on stdout and nothing else:
#   REGION_A_URL=http://127.0.0.1:<port>
#   REGION_B_URL=http://127.0.0.1:<port>
# Both take the dev API keys: Authorization: Bearer dev-key-a (tenant-a)
# or dev-key-b (tenant-b).
#
# Environment (defaults):
#   REGIONS_RUN_DIR=/tmp/idemgate-regions   everything: pg/, A/, B/ (pid files, logs, Kafka data)
#   REGIONS_PG_PORT=24100                    the shared PostgreSQL
#   REGION_A_PORT=24130  REGION_B_PORT=24140  each region's API (serve)
#   REGION_A_DB_PORT=24102  REGION_B_DB_PORT=24103  each region's latency proxy to the database
#   REGION_A_KAFKA_PORT=24110  REGION_B_KAFKA_PORT=24120  each region's broker (controller: port+1)
#   REGION_A_DB_LATENCY=1ms  REGION_B_DB_LATENCY=30ms  added to each round trip to the database
#   IDEMGATE_ROUTES                          a gateway routes file, given to both regions
#   IDEMGATE_*                               any other setting passes to every role (IDEMGATE_LEASE, ...)
# The ports sit below the ephemeral range and apart from CI's (15432,
# 19092-19093, 25432, 29092-29093).
#
# Region A runs with IDEMGATE_REGION=a, B with b (IDEMGATE_REGIONS=a,b;
# the tenants' home region IDEMGATE_HOME_REGION, a unless set). The
# regions share the topic names and the consumer group: each has its own
# broker.
#
# Human-readable messages go to stderr; stdout only carries the URLs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUN_DIR=${REGIONS_RUN_DIR:-/tmp/idemgate-regions}
PG_PORT=${REGIONS_PG_PORT:-24100}
REGION_A_PORT=${REGION_A_PORT:-24130}
REGION_B_PORT=${REGION_B_PORT:-24140}
REGION_A_DB_PORT=${REGION_A_DB_PORT:-24102}
REGION_B_DB_PORT=${REGION_B_DB_PORT:-24103}
REGION_A_KAFKA_PORT=${REGION_A_KAFKA_PORT:-24110}
REGION_B_KAFKA_PORT=${REGION_B_KAFKA_PORT:-24120}
REGION_A_DB_LATENCY=${REGION_A_DB_LATENCY:-1ms}
REGION_B_DB_LATENCY=${REGION_B_DB_LATENCY:-30ms}
START_TIMEOUT=${REGIONS_START_TIMEOUT:-120}
ROLES=(serve project relay)

log() { echo "regions: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case $RUN_DIR in
  "" | / | /tmp | /tmp/) die "refusing REGIONS_RUN_DIR='$RUN_DIR'" ;;
esac
RUN_DIR=$(mkdir -p "$RUN_DIR" && cd "$RUN_DIR" && pwd)
if [[ -n ${IDEMGATE_ROUTES:-} ]]; then
  [[ -r $IDEMGATE_ROUTES ]] || die "IDEMGATE_ROUTES=$IDEMGATE_ROUTES is not readable"
  IDEMGATE_ROUTES=$(cd "$(dirname "$IDEMGATE_ROUTES")" && pwd)/$(basename "$IDEMGATE_ROUTES")
  export IDEMGATE_ROUTES
fi

db_url() { echo "postgres://postgres@127.0.0.1:$1/idemgate?sslmode=disable"; }
API_KEYS=dev-key-a=tenant-a,dev-key-b=tenant-b

# region R: sets the current region's settings.
region() {
  case $1 in
    A | B) R=$1 ;;
    *) die "no region '$1': A or B" ;;
  esac
  API_PORT=$(eval echo "\$REGION_${R}_PORT")
  DB_PROXY_PORT=$(eval echo "\$REGION_${R}_DB_PORT")
  KAFKA_PORT=$(eval echo "\$REGION_${R}_KAFKA_PORT")
  LATENCY=$(eval echo "\$REGION_${R}_DB_LATENCY")
  DIR=$RUN_DIR/$R
  mkdir -p "$DIR"
}

kafka() {
  KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1)) KAFKA_RUN_DIR=$DIR/kafka \
    KAFKA_NODES=1 "$ROOT/scripts/kafka.sh" "$@"
}

pg() { PG_PORT=$PG_PORT PG_RUN_DIR=$RUN_DIR/pg PG_STANDBY=0 "$ROOT/scripts/pg.sh" "$@"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# running NAME: the pid of the region's process NAME if it runs.
running() {
  local pid
  [[ -f $DIR/$1.pid ]] || return 1
  pid=$(<"$DIR/$1.pid")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
  echo "$pid"
}

# launch NAME CMD...: start CMD in the background in a session of its
# own, its pid in NAME.pid, its output appended to NAME.log.
launch() {
  local name=$1
  shift
  rm -f "$DIR/$name.pid"
  echo "=== regions: start at $(date -Is) ===" >>"$DIR/$name.log"
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$DIR/$name.pid" "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $DIR/$name.pid ]] && return 0
    sleep 0.1
  done
  die "region $R: $name did not start"
}

# wait_for NAME WHAT CHECK...: wait until CHECK succeeds; die if NAME exits.
wait_for() {
  local name=$1 what=$2 deadline=$((SECONDS + START_TIMEOUT))
  shift 2
  until "$@"; do
    running "$name" >/dev/null || {
      tail -n 30 "$DIR/$name.log" >&2
      die "region $R: $name exited before $what"
    }
    ((SECONDS < deadline)) || {
      tail -n 30 "$DIR/$name.log" >&2
      die "region $R: $name: not $what within ${START_TIMEOUT}s"
    }
    sleep 0.2
  done
}

ready() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$API_PORT/readyz"; }
# logged NAME RE: NAME's log says RE since its last start.
logged() { awk -v re="$2" '/^=== regions: start at/ { found = 0 } $0 ~ re { found = 1 } END { exit !found }' "$DIR/$1.log"; }

# The environment of region R's roles.
role_env() {
  echo "DATABASE_URL=$(db_url "$DB_PROXY_PORT")" "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT" \
    "IDEMGATE_API_KEYS=$API_KEYS" "IDEMGATE_REGION=${R,,}" "IDEMGATE_REGIONS=a,b" "IDEMGATE_HOME_REGION=${IDEMGATE_HOME_REGION:-a}" "IDEMGATE_ADDR=127.0.0.1:$API_PORT"
}

build() {
  mkdir -p bin
  go build -o bin/idemgate ./cmd/idemgate
  go build -o bin/latencyproxy ./scripts/latencyproxy
}

# start_region R: the region's broker, proxy and roles (each unless it
# runs already), on its ports, keeping the broker's data when it has some.
start_region() {
  region "$1"
  local name t0=$SECONDS
  # A no-op when the broker runs (start); otherwise it starts again on its
  # data (start-region).
  KAFKA_FRESH=0 kafka start >/dev/null 2>>"$DIR/kafka.sh.log" || {
    tail -n 20 "$DIR/kafka.sh.log" >&2
    die "region $R: Kafka did not start"
  }
  if ! running proxy >/dev/null; then
    launch proxy "$ROOT/bin/latencyproxy" --listen "127.0.0.1:$DB_PROXY_PORT" \
      --target "127.0.0.1:$PG_PORT" --latency "$LATENCY"
    wait_for proxy "listening" port_open "$DB_PROXY_PORT"
  fi
  local env
  read -r -a env < <(role_env)
  for name in "${ROLES[@]}"; do
    running "$name" >/dev/null && continue
    launch "$name" env "${env[@]}" "IDEMGATE_INSTANCE_ID=$R-$name" "$ROOT/bin/idemgate" "$name"
  done
  wait_for serve "ready on :$API_PORT" ready
  wait_for project "consuming" logged project "projector consuming"
  wait_for relay "publishing" logged relay "relay publishing"
  log "region $R up in $((SECONDS - t0))s: API http://127.0.0.1:$API_PORT, broker 127.0.0.1:$KAFKA_PORT, database through 127.0.0.1:$DB_PROXY_PORT (+$LATENCY), logs in $DIR"
}

# kill_region R: kill -9 every process of the region, its broker included.
kill_region() {
  region "$1"
  local name pid pids=()
  for name in "${ROLES[@]}" proxy; do
    if pid=$(running "$name"); then pids+=("$pid"); fi
  done
  ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
  if kafka status >/dev/null 2>&1; then kafka kill 1 >/dev/null 2>>"$DIR/kafka.sh.log"; fi
  local i
  for ((i = 0; i < 100; i++)); do
    local alive=0
    for name in "${ROLES[@]}" proxy; do running "$name" >/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  log "region $R killed (kill -9: ${pids[*]:-no role running} and its broker)"
}

# stop_region R: SIGTERM the roles and the proxy, stop the broker.
stop_region() {
  region "$1"
  local name pid i
  for name in "${ROLES[@]}" proxy; do
    if pid=$(running "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 150; i++)); do
        running "$name" >/dev/null || break
        sleep 0.2
      done
      running "$name" >/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$DIR/$name.pid"
  done
  [[ -d $DIR/kafka ]] && kafka stop >/dev/null 2>>"$DIR/kafka.sh.log"
  log "region $R stopped"
}

do_start() {
  local r
  for r in A B; do
    region "$r"
    if running serve >/dev/null || kafka status >/dev/null 2>&1; then
      die "region $r is running: scripts/regions.sh stop first"
    fi
  done
  build
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT ($RUN_DIR/pg)"
  pg start >/dev/null
  DATABASE_URL=$(db_url "$PG_PORT") bin/idemgate migrate >&2
  for r in A B; do
    region "$r"
    rm -rf "$DIR"
    mkdir -p "$DIR"
  done
  # Both brokers start side by side: each takes a JVM start.
  (region A && KAFKA_FRESH=1 kafka start >/dev/null 2>>"$DIR/kafka.sh.log") &
  local ka=$!
  (region B && KAFKA_FRESH=1 kafka start >/dev/null 2>>"$DIR/kafka.sh.log") &
  local kb=$!
  wait "$ka" || die "region A: Kafka did not start (see $RUN_DIR/A/kafka.sh.log)"
  wait "$kb" || die "region B: Kafka did not start (see $RUN_DIR/B/kafka.sh.log)"
  start_region A
  start_region B
  echo "REGION_A_URL=http://127.0.0.1:$REGION_A_PORT"
  echo "REGION_B_URL=http://127.0.0.1:$REGION_B_PORT"
  log "API keys: dev-key-a (tenant-a), dev-key-b (tenant-b); database $(db_url "$PG_PORT")"
}

do_stop() {
  stop_region A
  stop_region B
  pg stop || true
}

do_status() {
  local r name pid down=0
  for r in A B; do
    region "$r"
    for name in proxy "${ROLES[@]}"; do
      if pid=$(running "$name"); then log "region $r: $name running (pid $pid)"; else
        log "region $r: $name not running"
        down=1
      fi
    done
    if kafka status >/dev/null 2>&1; then log "region $r: broker running on 127.0.0.1:$KAFKA_PORT"; else
      log "region $r: broker not running"
      down=1
    fi
  done
  if pg status >/dev/null 2>&1; then log "PostgreSQL running on 127.0.0.1:$PG_PORT"; else
    log "PostgreSQL not running"
    down=1
  fi
  ((down == 0))
}

case ${1:-} in
  start | stop | status) [[ $# -eq 1 ]] || usage ;;
  kill | start-region) [[ $# -eq 2 ]] || usage ;;
  *) usage ;;
esac
case $1 in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  kill) kill_region "$2" ;;
  start-region)
    [[ -x bin/idemgate && -x bin/latencyproxy ]] || build
    start_region "$2"
    ;;
esac
