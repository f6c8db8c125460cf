#!/usr/bin/env bash
# `make bench`: idemgate's throughput and latency measured against baselines
# in one run, on a durable PostgreSQL (fsync=on, synchronous_commit=on: a 202
# promises a durable claim) and the real Kafka broker, with serve, project
# and relay as separate processes.
#
# Baselines, measured in the same run, interleaved with idemgate's figures:
#   R  pgbench runs idemgate's claim INSERT (bench/pgbench/claim1.sql: one
#      per transaction; the same claim 16 times per transaction, generated).
#   S  bench/syncclaim: a minimal synchronous claim middleware (net/http +
#      pgx, one SERIALIZABLE INSERT ... ON CONFLICT per request, 201).
#   SO bench/syncoutbox: a synchronous claim with a transactional outbox
#      (one SERIALIZABLE transaction: claim, payments row, outbox row; 201)
#      and a relay polling the outbox every 50 ms, 500 rows a batch, to
#      Kafka (acks=all, idempotent). Each system has its own database.
# Each round runs: R1, R16; S / SO closed loop and idemgate end-to-end (up
# to the event on Kafka for SO and idemgate); S / idemgate replays; S / SO /
# idemgate open loop at OPEN_RATE; the projector's drain of a backlog. The
# systems run in the order S, SO, idemgate in odd rounds and the reverse in
# even ones. With HOG=1 one more round runs beside a background job burning
# half a core (bench/loadgen -mode hog), reported apart. The table reports
# medians over the quiet rounds (bench/report).
#
# Environment (defaults):
#   ROUNDS=3          interleaved rounds
#   DURATION=10       seconds per measure
#   CONNS=32          connections of the closed-loop measures and pgbench clients
#   OPEN_CONNS=128    most requests in flight in the open loop
#   OPEN_RATE=500     requests per second of the open loop
#   HOG=1             1: one more round beside a background CPU hog of half a core; 0: none
#   BACKLOG=20000     commands accepted with project stopped, then drained
#   REPLAY_KEYS=2000  keys created, completed, then retried at random
#   BENCH_MICRO=0     1: also the old Go microbenchmarks (go test -bench ./cmd/idemgate)
#   BENCH_OUT=bench/out   logs, results.jsonl, results.md (gitignored)
#   BENCH_PORT=28080  serve; +1 syncclaim, +2 and +3 the metrics of project and relay, +4 syncoutbox
#   BENCH_PG_PORT=26432  BENCH_PG_RUN_DIR=/tmp/idemgate-bench-pg
#   BENCH_KAFKA_PORT=26092  BENCH_KAFKA_CONTROLLER_PORT=26093  BENCH_KAFKA_RUN_DIR=/tmp/idemgate-bench-kafka
# The servers are the bench's own (own ports and run dirs), wiped at start and
# stopped at exit with every process the script started. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
OPEN_CONNS=${OPEN_CONNS:-128}
OPEN_RATE=${OPEN_RATE:-500}
HOG=${HOG:-1}
BACKLOG=${BACKLOG:-20000}
REPLAY_KEYS=${REPLAY_KEYS:-2000}
BENCH_MICRO=${BENCH_MICRO:-0}
BENCH_OUT=${BENCH_OUT:-bench/out}
BENCH_PORT=${BENCH_PORT:-28080}

export PG_RUN_DIR=${BENCH_PG_RUN_DIR:-/tmp/idemgate-bench-pg} PG_PORT=${BENCH_PG_PORT:-26432}
export PG_FSYNC=on PG_SYNC_COMMIT=on PG_FRESH=1
export KAFKA_RUN_DIR=${BENCH_KAFKA_RUN_DIR:-/tmp/idemgate-bench-kafka} KAFKA_PORT=${BENCH_KAFKA_PORT:-26092}
export KAFKA_CONTROLLER_PORT=${BENCH_KAFKA_CONTROLLER_PORT:-26093} KAFKA_FRESH=1

SERVE_ADDR=127.0.0.1:$BENCH_PORT
SYNC_ADDR=127.0.0.1:$((BENCH_PORT + 1))
PROJECT_METRICS=127.0.0.1:$((BENCH_PORT + 2))
RELAY_METRICS=127.0.0.1:$((BENCH_PORT + 3))
SO_ADDR=127.0.0.1:$((BENCH_PORT + 4))
API_KEY=bench-key
TENANT=tenant-bench
RUN_ID=$(date +%s)
LOGS=$BENCH_OUT/logs
RESULTS=$BENCH_OUT/results.jsonl

log() { echo "bench.sh: $*" >&2; }
die() { echo "bench.sh: error: $*" >&2; exit 1; }
# shellcheck source=scripts/benchlib.sh
source scripts/benchlib.sh
for v in ROUNDS DURATION CONNS OPEN_CONNS OPEN_RATE BACKLOG REPLAY_KEYS BENCH_PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v='${!v}' is not a positive integer"
done
[[ $HOG == 0 || $HOG == 1 ]] || die "HOG='$HOG' is not 0 or 1"

# --- tools -------------------------------------------------------------------
need_tools
PGBENCH=$PG_BIN/pgbench
[[ -x $PGBENCH ]] || die "pgbench not found in $PG_BIN (it ships with the PostgreSQL server binaries)"
for p in "$BENCH_PORT" $((BENCH_PORT + 1)) $((BENCH_PORT + 2)) $((BENCH_PORT + 3)) $((BENCH_PORT + 4)); do
  port_open "$p" && die "port $p is in use (set BENCH_PORT to use 5 other ports)"
done

log "building bin/idemgate, bin/loadgen, bin/syncclaim, bin/syncoutbox, bin/report"
go build -o bin/idemgate ./cmd/idemgate
go build -o bin/ ./bench/loadgen ./bench/syncclaim ./bench/syncoutbox ./bench/report
mkdir -p "$LOGS"
: >"$RESULTS"
stop_at_exit

# --- servers -----------------------------------------------------------------
start_servers
PG_BASE=postgres://postgres@127.0.0.1:$PG_PORT
IDB="$PG_BASE/idemgate?sslmode=disable"
SDB="$PG_BASE/bench_sync?sslmode=disable"
ODB="$PG_BASE/bench_so?sslmode=disable"
RDB="$PG_BASE/bench_pgbench?sslmode=disable"
psql_ -d postgres -c 'CREATE DATABASE bench_sync' -c 'CREATE DATABASE bench_pgbench' -c 'CREATE DATABASE bench_so'

DATABASE_URL=$IDB bin/idemgate migrate >&2
DATABASE_URL=$RDB bin/idemgate migrate >&2

role_env "$IDB" "$SERVE_ADDR"
start_project() {
  start project env "${ROLE_ENV[@]}" IDEMGATE_METRICS_ADDR="$PROJECT_METRICS" bin/idemgate project
  PROJECT_PID=$STARTED
  ready project "$PROJECT_PID" "http://$PROJECT_METRICS/healthz"
}
start serve env "${ROLE_ENV[@]}" bin/idemgate serve
SERVE_PID=$STARTED
start relay env "${ROLE_ENV[@]}" IDEMGATE_METRICS_ADDR="$RELAY_METRICS" bin/idemgate relay
RELAY_PID=$STARTED
start syncclaim env DATABASE_URL="$SDB" bin/syncclaim -addr "$SYNC_ADDR" -keys "$API_KEY=$TENANT"
SYNCCLAIM_PID=$STARTED
start syncoutbox env DATABASE_URL="$ODB" bin/syncoutbox -addr "$SO_ADDR" -brokers "$BROKERS" -keys "$API_KEY=$TENANT"
SYNCOUTBOX_PID=$STARTED
ready serve "$SERVE_PID" "http://$SERVE_ADDR/readyz"
ready relay "$RELAY_PID" "http://$RELAY_METRICS/healthz"
ready syncclaim "$SYNCCLAIM_PID" "http://$SYNC_ADDR/healthz"
ready syncoutbox "$SYNCOUTBOX_PID" "http://$SO_ADDR/healthz"
start_project

I_URL=http://$SERVE_ADDR
S_URL=http://$SYNC_ADDR
SO_URL=http://$SO_ADDR
I_METRICS="serve=http://$SERVE_ADDR/metrics,project=http://$PROJECT_METRICS/metrics,relay=http://$RELAY_METRICS/metrics"
i_watch() { echo "serve=$SERVE_PID,project=$PROJECT_PID,relay=$RELAY_PID,kafka=$KAFKA_PID,postgres=$PM_PID+"; }

# --- measures ----------------------------------------------------------------
round=0
# pgb LABEL SCRIPT ROWS_PER_TX: baseline R.
# claims_script N: claim1.sql with its claim repeated N times in its one
# transaction, written into BENCH_OUT; prints its path.
claims_script() {
  local out=$BENCH_OUT/claim$1.sql
  awk -v n="$1" '/^-- This script:/ { print "-- This script: " n " claims per transaction (generated by scripts/bench.sh)."; next }
    /^BEGIN/ { print; body = 1; next }
    /^COMMIT/ { for (i = 0; i < n; i++) printf "%s", claim; print; body = 0; next }
    body { claim = claim $0 "\n"; next }
    { print }' bench/pgbench/claim1.sql >"$out"
  echo "$out"
}

# pgb LABEL SCRIPT PER: pgbench on SCRIPT, which makes PER claims per
# transaction.
pgb() {
  local label=$1 script=$2 per=$3 prefix="$1-r$round-$RUN_ID" out tps n failed retried rows
  settle
  out=$("$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c "$CONNS" -j "$((CONNS > 1 ? 2 : 1))" -T "$DURATION" \
    --max-tries=30 -D prefix="$prefix" -D n=0 -f "$script" bench_pgbench 2>&1) ||
    { echo "$out" >&2; die "pgbench $script failed"; }
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  retried=$(sed -n 's/^number of transactions retried: \([0-9]*\).*/\1/p' <<<"$out")
  [[ -n $tps && -n $n && -n $failed && -n $retried ]] || { echo "$out" >&2; die "cannot read pgbench's output"; }
  rows=$(psql_ -d bench_pgbench -tAc "SELECT count(*) FROM idempotency_claims WHERE tenant_id = 'tenant-pgbench' AND idem_key LIKE '$prefix-%'")
  ((rows == n * per)) || die "pgbench $script: $n transactions of $per claims but $rows rows: keys collided"
  printf '{"label":"%s","round":%d,"mode":"pgbench","clients":%d,"tps":%s,"claims_per_s":%s,"transactions":%d,"failed":%d,"retried":%d}\n' \
    "$label" "$round" "$CONNS" "$tps" "$(awk -v t="$tps" -v p="$per" 'BEGIN { printf "%.1f", t * p }')" "$n" "$failed" "$retried" >>"$RESULTS"
  log "pgbench $label: $tps tps x $per = $(awk -v t="$tps" -v p="$per" 'BEGIN { printf "%.0f", t * p }') claims/s ($failed failed, $retried retried)"
}

# pair A B: run A then B in odd rounds, B then A in even ones; trio A B C
# likewise.
pair() {
  if ((round % 2)); then "$1"; "$2"; else "$2"; "$1"; fi
}
trio() {
  if ((round % 2)); then "$1"; "$2"; "$3"; else "$3"; "$2"; "$1"; fi
}

S_METRICS="syncclaim=http://$SYNC_ADDR/metrics"
SO_METRICS="syncoutbox=http://$SO_ADDR/metrics"
so_watch() { echo "syncoutbox=$SYNCOUTBOX_PID,kafka=$KAFKA_PID,postgres=$PM_PID+"; }
s_closed() { lg S.closed -mode closed -url "$S_URL" -conns "$CONNS" -duration "${DURATION}s" -db "$SDB" -watch "syncclaim=$SYNCCLAIM_PID,postgres=$PM_PID+" -metrics "$S_METRICS"; }
so_closed() { lg SO.closed -mode closed -url "$SO_URL" -conns "$CONNS" -duration "${DURATION}s" -db "$ODB" -schema syncoutbox -wait-complete -watch "$(so_watch)" -metrics "$SO_METRICS"; }
so_open() { lg SO.open -mode open -url "$SO_URL" -conns "$OPEN_CONNS" -rate "$OPEN_RATE" -duration "${DURATION}s" -db "$ODB" -schema syncoutbox -wait-complete -watch "$(so_watch)" -metrics "$SO_METRICS"; }
i_e2e() { lg idemgate.e2e -mode closed -url "$I_URL" -conns "$CONNS" -duration "${DURATION}s" -db "$IDB" -wait-complete -watch "$(i_watch)" -metrics "$I_METRICS"; }
s_replay() { lg S.replay -mode replay -url "$S_URL" -conns "$CONNS" -duration "${DURATION}s" -keys "$REPLAY_KEYS" -db "$SDB" -metrics "$S_METRICS"; }
i_replay() { lg idemgate.replay -mode replay -url "$I_URL" -conns "$CONNS" -duration "${DURATION}s" -keys "$REPLAY_KEYS" -db "$IDB" -wait-complete -watch "$(i_watch)" -metrics "$I_METRICS"; }
s_open() { lg S.open -mode open -url "$S_URL" -conns "$OPEN_CONNS" -rate "$OPEN_RATE" -duration "${DURATION}s" -db "$SDB" -metrics "$S_METRICS"; }
i_open() { lg idemgate.open -mode open -url "$I_URL" -conns "$OPEN_CONNS" -rate "$OPEN_RATE" -duration "${DURATION}s" -db "$IDB" -wait-complete -watch "$(i_watch)" -metrics "$I_METRICS"; }

# drain: accept BACKLOG commands with project stopped, then start it and
# time until every one is COMPLETED.
drain() {
  stop_pid "$PROJECT_PID"
  SKIP_PROJECT=1
  lg idemgate.backlog -mode closed -url "$I_URL" -conns "$CONNS" -requests "$BACKLOG" -db "$IDB"
  start_project
  SKIP_PROJECT=0
  bin/loadgen -label idemgate.drain -round "$round" -mode wait -prefix "idemgate.backlog-r$round-$RUN_ID" -tenant "$TENANT" \
    -db "$IDB" -watch "$(i_watch)" -metrics "$I_METRICS" >>"$RESULTS" || die "loadgen idemgate.drain (round $round) failed"
}
SKIP_PROJECT=0
alive() {
  if ((SKIP_PROJECT)); then alive_all serve relay syncclaim syncoutbox; else alive_all serve project relay syncclaim syncoutbox; fi
}

log "warm-up: 5 s on each of S, SO and idemgate (not recorded; the broker's JIT and the pools)"
bin/loadgen -mode closed -url "$S_URL" -conns "$CONNS" -duration 5s -prefix "warmup-s-$RUN_ID" -key "$API_KEY" >/dev/null 2>&1
bin/loadgen -mode closed -url "$SO_URL" -conns "$CONNS" -duration 5s -prefix "warmup-so-$RUN_ID" -key "$API_KEY" >/dev/null 2>&1
bin/loadgen -mode closed -url "$I_URL" -conns "$CONNS" -duration 5s -prefix "warmup-i-$RUN_ID" -key "$API_KEY" -tenant "$TENANT" \
  -db "$IDB" -wait-complete >/dev/null 2>&1

CLAIM16_SQL=$(claims_script 16)
T0=$SECONDS
HOG_PID=
for ((round = 1; round <= ROUNDS + HOG; round++)); do
  if ((round > ROUNDS)); then
    log "round $round: contended, beside a background job burning half a core"
    start hog bin/loadgen -mode hog -share 0.5 -duration 24h
    HOG_PID=$STARTED
    printf '{"label":"hog","round":%d,"share":0.5}\n' "$round" >>"$RESULTS"
  else
    log "round $round of $ROUNDS"
  fi
  pgb R1 bench/pgbench/claim1.sql 1
  pgb R16 "$CLAIM16_SQL" 16
  trio s_closed so_closed i_e2e
  pair s_replay i_replay
  log "open loop at $OPEN_RATE requests/s"
  trio s_open so_open i_open
  drain
  printf '{"label":"rss","round":%d,"serve_kb":%d,"syncclaim_kb":%d,"syncoutbox_kb":%d}\n' "$round" \
    "$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVE_PID/status")" "$(awk '/^VmHWM/ { print $2 }' "/proc/$SYNCCLAIM_PID/status")" \
    "$(awk '/^VmHWM/ { print $2 }' "/proc/$SYNCOUTBOX_PID/status")" >>"$RESULTS"
done
[[ -z $HOG_PID ]] || stop_pid "$HOG_PID"
ELAPSED=$((SECONDS - T0))

# --- report ------------------------------------------------------------------
{
  echo "## Results: $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with local changes)')"
  echo
  echo "Command: \`ROUNDS=$ROUNDS HOG=$HOG DURATION=$DURATION CONNS=$CONNS OPEN_CONNS=$OPEN_CONNS OPEN_RATE=$OPEN_RATE BACKLOG=$BACKLOG REPLAY_KEYS=$REPLAY_KEYS make bench\`" \
    "($((ELAPSED / 60)) min $((ELAPSED % 60)) s for the rounds)."
  echo
  echo "Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
    "Linux $(uname -r), $(go version | cut -d' ' -f3), PostgreSQL $(psql_ -d postgres -tAc 'SHOW server_version'), Kafka ${KAFKA_VERSION:-4.1.1}." \
    "PostgreSQL: fsync=on, synchronous_commit=on, full_page_writes=on, SERIALIZABLE."
  echo
  bin/report "$RESULTS"
} >"$BENCH_OUT/results.md"
cp "$BENCH_OUT/results.md" bench.out
echo
cat "$BENCH_OUT/results.md"
log "results: $BENCH_OUT/results.md (also bench.out), raw: $RESULTS, logs: $LOGS"

if [[ $BENCH_MICRO == 1 ]]; then
  log "Go microbenchmarks (BENCH_MICRO=1)"
  DATABASE_URL=$IDB KAFKA_BROKERS=$BROKERS go test -run '^$' -bench . -benchtime 2s -count 5 ./cmd/idemgate/ | tee "$BENCH_OUT/micro.out"
  awk '/^Benchmark/ { sub(/-[0-9]+$/, "", $1); print $1, $3 }' "$BENCH_OUT/micro.out" | sort -k1,1 -k2,2n |
    awk '{ v[$1] = v[$1] " " $2 }
    END {
      for (k in v) {
        n = split(substr(v[k], 2), a, " ")
        m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        printf "%-32s %12.0f ns/op  %10.0f ops/s\n", k, m, 1e9 / m
      }
    }' | sort
fi
