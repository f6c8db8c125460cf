#!/usr/bin/env bash
# `make bench-ab` (issue 21's levers): idemgate against itself with one setting
# changed, so that a lever is measured on its own. On one durable PostgreSQL
# (fsync=on, as scripts/bench.sh) and one Kafka broker, each VARIANT is a set of
# environment variables given to serve, project and relay, which are started
# afresh for each variant and round; the variants' order rotates every round.
# Per variant and round: 500 warm-up commands, then with bench/loadgen
#   open    OPEN_RATE requests/s for DURATION s, up to the events on Kafka
#   closed  CONNS connections for DURATION s, likewise
# each with the CPU of serve, project, relay, the broker and PostgreSQL.
# scripts/bench-ab-summary.py then prints, per measure and variant, the
# median of the per-round ratios against the first variant.
# With PROFILE=1, after the rounds each variant runs the open loop once more
# with Go's CPU profiler on (IDEMGATE_PPROF): DURATION s of serve, project
# and relay, taken from after the measure's checkpoint, into
# $BENCH_OUT/profiles/<variant>-<role>.pprof with a `go tool pprof -top` of
# each beside it. Its figures go to $BENCH_OUT/profile.jsonl, apart from the
# rounds'. ROUNDS=0 with PROFILE=1 takes the profiles alone.
#
#   VARIANTS='NAME:VAR=VALUE,VAR=VALUE NAME:...'  (the first is the baseline;
#     BIN=path in a variant runs another idemgate binary for it; DB=name gives
#     it a database of its own, migrated by its binary, for a schema change)
#   default: 'gzip:IDEMGATE_KAFKA_COMPRESSION=gzip none:IDEMGATE_KAFKA_COMPRESSION=none lz4:IDEMGATE_KAFKA_COMPRESSION=lz4'
#   ROUNDS=6  DURATION=10  CONNS=32  OPEN_CONNS=128  OPEN_RATE=500  PROFILE=0
#   BENCH_OUT=bench/out-ab  BENCH_PORT=28280 (+1, +2, +3: serve's, project's and relay's metrics)
#   BENCH_PG_PORT=26452  BENCH_PG_RUN_DIR=/tmp/idemgate-ab-pg
#   BENCH_KAFKA_PORT=26112  BENCH_KAFKA_CONTROLLER_PORT=26113  BENCH_KAFKA_RUN_DIR=/tmp/idemgate-ab-kafka
# The servers are the script's own, wiped at start and stopped at exit with
# every process it started. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

VARIANTS=${VARIANTS:-gzip:IDEMGATE_KAFKA_COMPRESSION=gzip none:IDEMGATE_KAFKA_COMPRESSION=none lz4:IDEMGATE_KAFKA_COMPRESSION=lz4}
ROUNDS=${ROUNDS:-6}
PROFILE=${PROFILE:-0}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
OPEN_CONNS=${OPEN_CONNS:-128}
OPEN_RATE=${OPEN_RATE:-500}
BENCH_OUT=${BENCH_OUT:-bench/out-ab}
BENCH_PORT=${BENCH_PORT:-28280}

export PG_RUN_DIR=${BENCH_PG_RUN_DIR:-/tmp/idemgate-ab-pg} PG_PORT=${BENCH_PG_PORT:-26452}
export PG_FSYNC=on PG_SYNC_COMMIT=on PG_FRESH=1
export KAFKA_RUN_DIR=${BENCH_KAFKA_RUN_DIR:-/tmp/idemgate-ab-kafka} KAFKA_PORT=${BENCH_KAFKA_PORT:-26112}
export KAFKA_CONTROLLER_PORT=${BENCH_KAFKA_CONTROLLER_PORT:-26113} KAFKA_FRESH=1

SERVE_ADDR=127.0.0.1:$BENCH_PORT
SERVE_METRICS=127.0.0.1:$((BENCH_PORT + 1))
PROJECT_METRICS=127.0.0.1:$((BENCH_PORT + 2))
RELAY_METRICS=127.0.0.1:$((BENCH_PORT + 3))
API_KEY=bench-key
TENANT=tenant-bench
RUN_ID=$(date +%s)
LOGS=$BENCH_OUT/logs
RESULTS=$BENCH_OUT/results.jsonl

log() { echo "bench-ab.sh: $(date -u +%H:%M:%S) $*" >&2; }
die() { echo "bench-ab.sh: error: $*" >&2; exit 1; }
# shellcheck source=scripts/benchlib.sh
source scripts/benchlib.sh
for v in DURATION CONNS OPEN_CONNS OPEN_RATE BENCH_PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v='${!v}' is not a positive integer"
done
[[ $PROFILE == 0 || $PROFILE == 1 ]] || die "PROFILE='$PROFILE' is not 0 or 1"
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS > 0 || PROFILE)) || die "ROUNDS='$ROUNDS' is not a positive integer (0 only with PROFILE=1)"
read -r -a SPECS <<<"$VARIANTS"
((${#SPECS[@]} >= 2 || ROUNDS == 0)) || die "VARIANTS needs a baseline and at least one variant ('$VARIANTS')"
for spec in "${SPECS[@]}"; do
  [[ $spec =~ ^[A-Za-z0-9_-]+:([A-Z_][A-Z0-9_]*=[^,]*)(,[A-Z_][A-Z0-9_]*=[^,]*)*$ ]] ||
    die "variant '$spec' is not NAME:VAR=VALUE[,VAR=VALUE...]"
done

need_tools
need python3 "scripts/bench-ab-summary.py prints the ratios"
for p in "$BENCH_PORT" $((BENCH_PORT + 1)) $((BENCH_PORT + 2)) $((BENCH_PORT + 3)); do
  port_open "$p" && die "port $p is in use (set BENCH_PORT)"
done

log "building bin/idemgate, bin/loadgen"
go build -o bin/idemgate ./cmd/idemgate
go build -o bin/ ./bench/loadgen
mkdir -p "$LOGS"
: >"$RESULTS"
stop_at_exit
start_servers
IDB="postgres://postgres@127.0.0.1:$PG_PORT/idemgate?sslmode=disable"
DATABASE_URL=$IDB bin/idemgate migrate >&2
role_env "$IDB" "$SERVE_ADDR"
# variant_bin_db SPEC: sets bin (BIN=, else bin/idemgate), vdb_name (DB=,
# else empty) and vdb (its URL, else the shared database's).
variant_bin_db() {
  local kv
  IFS=, read -r -a kvs <<<"${1#*:}"
  bin=bin/idemgate vdb_name=
  for kv in "${kvs[@]}"; do
    case $kv in
    BIN=*) bin=${kv#BIN=} ;;
    DB=*) vdb_name=${kv#DB=} ;;
    esac
  done
  [[ -z $vdb_name || $vdb_name =~ ^[a-z][a-z0-9_]*$ ]] || die "variant '$1': DB= takes a lower-case name of letters, digits and _"
  vdb=$IDB
  [[ -z $vdb_name ]] || vdb="postgres://postgres@127.0.0.1:$PG_PORT/$vdb_name?sslmode=disable"
}
for spec in "${SPECS[@]}"; do
  variant_bin_db "$spec"
  [[ -n $vdb_name ]] || continue
  psql_ -d postgres -c "CREATE DATABASE $vdb_name"
  DATABASE_URL=$vdb "$bin" migrate >&2
done
alive() { alive_all serve project relay; }

# roles_up SPEC [VAR=VALUE...]: serve, project and relay of the variant SPEC
# (its environment, then the extra one), ready; sets name and the pids.
roles_up() {
  local spec=$1
  shift
  name=${spec%%:*}
  IFS=, read -r -a venv <<<"${spec#*:}"
  venv+=("$@")
  variant_bin_db "$spec"
  venv+=(DATABASE_URL="$vdb")
  start serve env "${ROLE_ENV[@]}" "${venv[@]}" IDEMGATE_METRICS_ADDR="$SERVE_METRICS" "$bin" serve
  SERVE_PID=$STARTED
  start project env "${ROLE_ENV[@]}" "${venv[@]}" IDEMGATE_METRICS_ADDR="$PROJECT_METRICS" "$bin" project
  PROJECT_PID=$STARTED
  start relay env "${ROLE_ENV[@]}" "${venv[@]}" IDEMGATE_METRICS_ADDR="$RELAY_METRICS" "$bin" relay
  RELAY_PID=$STARTED
  ready serve "$SERVE_PID" "http://$SERVE_ADDR/readyz"
  ready serve "$SERVE_PID" "http://$SERVE_METRICS/healthz"
  ready project "$PROJECT_PID" "http://$PROJECT_METRICS/healthz"
  ready relay "$RELAY_PID" "http://$RELAY_METRICS/healthz"
  watch="serve=$SERVE_PID,project=$PROJECT_PID,relay=$RELAY_PID,kafka=$KAFKA_PID,postgres=$PM_PID+"
  bin/loadgen -mode closed -url "http://$SERVE_ADDR" -conns 8 -requests 500 -prefix "warm-$name-r$round-$RUN_ID" \
    -key "$API_KEY" -tenant "$TENANT" -db "$vdb" -wait-complete >/dev/null
}
roles_down() {
  stop_pid "$SERVE_PID"
  stop_pid "$PROJECT_PID"
  stop_pid "$RELAY_PID"
}
open_loop() {
  lg "$1" -mode open -rate "$OPEN_RATE" -conns "$OPEN_CONNS" -duration "${DURATION}s" \
    -url "http://$SERVE_ADDR" -db "$vdb" -wait-complete -watch "$watch"
}

n=${#SPECS[@]}
for ((round = 1; round <= ROUNDS; round++)); do
  for ((j = 0; j < n; j++)); do
    roles_up "${SPECS[$(((j + round - 1) % n))]}"
    open_loop "ab/open/$name"
    lg "ab/closed/$name" -mode closed -conns "$CONNS" -duration "${DURATION}s" \
      -url "http://$SERVE_ADDR" -db "$vdb" -wait-complete -watch "$watch"
    roles_down
    log "round $round/$ROUNDS: $name done"
  done
done

# profiles: lg runs LG_HOOK after its checkpoint, just before the load.
PROFILES=$BENCH_OUT/profiles
CURLS=()
take_profiles() {
  local role addr
  CURLS=()
  for role in serve project relay; do
    addr=${role^^}_METRICS
    curl -fsS --noproxy '*' -m $((DURATION + 60)) -o "$PROFILES/$name-$role.pprof" \
      "http://${!addr}/debug/pprof/profile?seconds=$DURATION" &
    CURLS+=("$!")
  done
}
if ((PROFILE)); then
  mkdir -p "$PROFILES"
  RESULTS=$BENCH_OUT/profile.jsonl
  : >"$RESULTS"
  round=0
  for spec in "${SPECS[@]}"; do
    roles_up "$spec" IDEMGATE_PPROF=true
    LG_HOOK=take_profiles open_loop "profile/open/$name"
    for c in "${CURLS[@]}"; do wait "$c" || die "a profile of $name was not taken (curl exit $?)"; done
    roles_down
    for role in serve project relay; do
      go tool pprof -top -nodecount=40 "$PROFILES/$name-$role.pprof" >"$PROFILES/$name-$role.top.txt" 2>&1 ||
        die "go tool pprof could not read $PROFILES/$name-$role.pprof"
    done
    log "profiles of $name in $PROFILES"
  done
  RESULTS=$BENCH_OUT/results.jsonl
fi
((ROUNDS > 0)) || exit 0
python3 scripts/bench-ab-summary.py "$RESULTS" "${SPECS[0]%%:*}" | tee "$BENCH_OUT/summary.txt"
