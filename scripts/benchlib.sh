# Shared by scripts/bench.sh, scripts/bench-growth.sh and scripts/bench-ab.sh: the tools they
# need, the processes they start (every one stopped at exit), and their
# own durable PostgreSQL and Kafka broker.
#
# Sourced, not run. The caller defines log() and die(), sets LOGS (the
# processes' logs), exports PG_RUN_DIR, PG_PORT, KAFKA_RUN_DIR and
# KAFKA_PORT, and sets round (settle's and lg's round) and RESULTS, RUN_ID,
# API_KEY and TENANT (lg's).

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# need_tools: go, java, curl; PG_BIN (exported: the PostgreSQL server
# binaries) and PSQL.
need_tools() {
  need go "Go 1.26 builds idemgate and the load generator"
  need java "Java 17+ runs the Kafka broker"
  need curl "the readiness checks use it"
  PG_BIN=${PG_BIN:-}
  local cand
  if [[ -z $PG_BIN ]]; then
    for cand in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/15/bin \
      $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
      if [[ -n $cand && -x $cand/initdb ]]; then PG_BIN=$cand; break; fi
    done
  fi
  [[ -n $PG_BIN && -x $PG_BIN/initdb ]] || die "PostgreSQL server binaries (initdb) not found; set PG_BIN"
  PSQL=$PG_BIN/psql
  [[ -x $PSQL ]] || PSQL=$(command -v psql) || die "psql not found in $PG_BIN nor on PATH"
  export PG_BIN
}

# --- processes: every one started here is stopped on exit --------------------
PIDS=()
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  scripts/kafka.sh stop >/dev/null 2>&1 || log "could not stop the Kafka broker in $KAFKA_RUN_DIR"
  scripts/pg.sh stop >/dev/null 2>&1 || log "could not stop PostgreSQL in $PG_RUN_DIR"
  exit "$rc"
}
# stop_at_exit: from here on, an exit stops every process in PIDS and the
# servers (their run dirs are the caller's own).
stop_at_exit() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

# start NAME CMD...: run CMD in the background, logging to $LOGS/NAME.log;
# sets STARTED to its pid.
start() {
  local name=$1
  shift
  "$@" >>"$LOGS/$name.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

# ready NAME PID URL: wait until URL answers 2xx, or the process dies.
ready() {
  local name=$1 pid=$2 url=$3 i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LOGS/$name.log" >&2; die "$name exited during startup (log: $LOGS/$name.log)"; }
    curl -fsS --noproxy '*' -m 2 -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  die "$name not ready at $url after 60 s (log: $LOGS/$name.log)"
}

# alive_all NAME...: die unless the process of each NAME (${NAME^^}_PID) runs.
alive_all() {
  local name pid
  for name in "$@"; do
    pid=${name^^}_PID
    kill -0 "${!pid}" 2>/dev/null || { tail -n 20 "$LOGS/$name.log" >&2; die "$name died (log: $LOGS/$name.log)"; }
  done
}

# --- servers -----------------------------------------------------------------
psql_() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

# start_servers: PostgreSQL (fsync=on, checked) and the Kafka broker, both
# wiped first; sets PM_PID, BROKERS and KAFKA_PID.
start_servers() {
  log "PostgreSQL with fsync=on, synchronous_commit=on, full_page_writes=on in $PG_RUN_DIR, port $PG_PORT"
  scripts/pg.sh stop >/dev/null 2>&1 || true
  scripts/pg.sh start >/dev/null
  [[ $(psql_ -d postgres -tAc 'SHOW fsync') == on ]] || die "the server does not run with fsync=on"
  PM_PID=$(head -n 1 "$PG_RUN_DIR/data/postmaster.pid")

  log "Kafka broker in $KAFKA_RUN_DIR, port $KAFKA_PORT"
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  local kafka
  kafka=$(scripts/kafka.sh start) || die "the Kafka broker did not start"
  BROKERS=${kafka#KAFKA_BROKERS=}
  KAFKA_PID=$(<"$KAFKA_RUN_DIR/broker.pid")
}

# role_env DATABASE_URL SERVE_ADDR: sets ROLE_ENV, the environment of
# idemgate's serve, project and relay.
role_env() {
  ROLE_ENV=(DATABASE_URL="$1" KAFKA_BROKERS="$BROKERS" IDEMGATE_API_KEYS="$API_KEY=$TENANT" IDEMGATE_ADDR="$2"
    IDEMGATE_TOPIC_PREFIX=bench IDEMGATE_GROUP=bench-projector)
}

# --- measures ----------------------------------------------------------------
# settle: before each measure, the previous one's background work (relay,
# autovacuum) gets a second, and a checkpoint is taken so that no measure
# pays for another's dirty pages. The caller defines alive().
settle() {
  alive
  sleep 1
  psql_ -d postgres -c CHECKPOINT
}

# lg LABEL ARGS...: one loadgen measure, its JSON line appended to RESULTS
# (the key prefix: LABEL with its slashes as dashes). LG_HOOK, when set, is
# run after the checkpoint, just before the load.
lg() {
  local label=$1
  shift
  settle
  [[ -z ${LG_HOOK:-} ]] || "$LG_HOOK"
  bin/loadgen -label "$label" -round "$round" -prefix "${label//\//-}-r$round-$RUN_ID" -key "$API_KEY" -tenant "$TENANT" "$@" >>"$RESULTS" ||
    die "loadgen $label (round $round) failed"
}
