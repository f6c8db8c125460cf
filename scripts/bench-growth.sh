#!/usr/bin/env bash
# `make bench-growth` (issue 21, part 4): idemgate's cost per command as the
# retained work grows. On one durable PostgreSQL (fsync=on, as scripts/bench.sh)
# and one Kafka broker, with serve, project and relay as separate processes,
# for each size in SIZES the claim tables are filled in SQL (generate_series)
# with that many completed, retained commands: idempotency_claims, their
# outbox rows (sent), processed_events and payments rows, cloned from a
# real command of the warm-up with new keys, ids and times (keys and ids
# spread over the btrees as random UUIDs are); then VACUUM ANALYZE, and
# ROUNDS rounds of the measures of scripts/bench.sh with bench/loadgen:
#   e2e     closed loop, CONNS connections, DURATION s, up to the event on
#           Kafka; CPU per command of serve, project, relay, the broker and
#           PostgreSQL
#   open    OPEN_RATE requests/s for DURATION s: 202 p50/p99, 202->COMPLETED
#   replay  REPLAY_KEYS keys created, then retried at random
# The sizes grow in place (fill to the first, measure, top up to the next),
# so the fill is paid once. At the last size the hot path's statements are
# run under EXPLAIN (ANALYZE, BUFFERS) into $BENCH_OUT/explain-<size>.txt.
# Results: $BENCH_OUT/results.jsonl (labels e2e/<size>, open/<size>,
# replay/<size>, fill lines), the table in $BENCH_OUT/results.md and the
# chart in $BENCH_OUT/bench-growth.svg (bench/growth).
#
# Environment (defaults):
#   SIZES="10000 1000000 10000000"   retained claims to measure at, ascending
#   ROUNDS=2  DURATION=10  CONNS=32  OPEN_CONNS=128  OPEN_RATE=500  REPLAY_KEYS=2000
#   FILL_CHUNK=1000000  rows per fill transaction
#   BULK_FILL=2000000   a top-up of more rows than this stops the roles,
#                       drops the four tables' indexes and builds them after
#   BENCH_OUT=bench/out-growth
#   BENCH_PORT=28180  serve; +2 and +3 the metrics of project and relay
#   BENCH_PG_PORT=26442  BENCH_PG_RUN_DIR=/tmp/idemgate-growth-pg
#   BENCH_KAFKA_PORT=26102  BENCH_KAFKA_CONTROLLER_PORT=26103  BENCH_KAFKA_RUN_DIR=/tmp/idemgate-growth-kafka
# The servers are the script's own (own ports and run dirs), wiped at start
# and stopped at exit with every process it started. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-10000 1000000 10000000}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
OPEN_CONNS=${OPEN_CONNS:-128}
OPEN_RATE=${OPEN_RATE:-500}
REPLAY_KEYS=${REPLAY_KEYS:-2000}
FILL_CHUNK=${FILL_CHUNK:-1000000}
BULK_FILL=${BULK_FILL:-2000000}
BENCH_OUT=${BENCH_OUT:-bench/out-growth}
BENCH_PORT=${BENCH_PORT:-28180}

export PG_RUN_DIR=${BENCH_PG_RUN_DIR:-/tmp/idemgate-growth-pg} PG_PORT=${BENCH_PG_PORT:-26442}
export PG_FSYNC=on PG_SYNC_COMMIT=on PG_FRESH=1
export KAFKA_RUN_DIR=${BENCH_KAFKA_RUN_DIR:-/tmp/idemgate-growth-kafka} KAFKA_PORT=${BENCH_KAFKA_PORT:-26102}
export KAFKA_CONTROLLER_PORT=${BENCH_KAFKA_CONTROLLER_PORT:-26103} KAFKA_FRESH=1

SERVE_ADDR=127.0.0.1:$BENCH_PORT
PROJECT_METRICS=127.0.0.1:$((BENCH_PORT + 2))
RELAY_METRICS=127.0.0.1:$((BENCH_PORT + 3))
API_KEY=bench-key
TENANT=tenant-bench
RUN_ID=$(date +%s)
LOGS=$BENCH_OUT/logs
RESULTS=$BENCH_OUT/results.jsonl

log() { echo "bench-growth.sh: $(date -u +%H:%M:%S) $*" >&2; }
die() { echo "bench-growth.sh: error: $*" >&2; exit 1; }
# shellcheck source=scripts/benchlib.sh
source scripts/benchlib.sh
for v in ROUNDS DURATION CONNS OPEN_CONNS OPEN_RATE REPLAY_KEYS FILL_CHUNK BULK_FILL BENCH_PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v='${!v}' is not a positive integer"
done
prev=0
for s in $SIZES; do
  [[ $s =~ ^[1-9][0-9]*$ ]] || die "SIZES: '$s' is not a positive integer"
  ((s > prev)) || die "SIZES must ascend ('$SIZES')"
  prev=$s
done

need_tools
for p in "$BENCH_PORT" $((BENCH_PORT + 2)) $((BENCH_PORT + 3)); do
  port_open "$p" && die "port $p is in use (set BENCH_PORT)"
done

log "building bin/idemgate, bin/loadgen, bin/growth"
go build -o bin/idemgate ./cmd/idemgate
go build -o bin/ ./bench/loadgen ./bench/growth
mkdir -p "$LOGS"
: >"$RESULTS"

stop_at_exit

start_servers
IDB="postgres://postgres@127.0.0.1:$PG_PORT/idemgate?sslmode=disable"

DATABASE_URL=$IDB bin/idemgate migrate >&2

role_env "$IDB" "$SERVE_ADDR"
# start_roles / stop_roles: serve, project and relay (stopped while a
# large fill runs without the tables' indexes).
start_roles() {
  start serve env "${ROLE_ENV[@]}" bin/idemgate serve
  SERVE_PID=$STARTED
  start relay env "${ROLE_ENV[@]}" IDEMGATE_METRICS_ADDR="$RELAY_METRICS" bin/idemgate relay
  RELAY_PID=$STARTED
  start project env "${ROLE_ENV[@]}" IDEMGATE_METRICS_ADDR="$PROJECT_METRICS" bin/idemgate project
  PROJECT_PID=$STARTED
  ready serve "$SERVE_PID" "http://$SERVE_ADDR/readyz"
  ready relay "$RELAY_PID" "http://$RELAY_METRICS/healthz"
  ready project "$PROJECT_PID" "http://$PROJECT_METRICS/healthz"
  I_WATCH="serve=$SERVE_PID,project=$PROJECT_PID,relay=$RELAY_PID,kafka=$KAFKA_PID,postgres=$PM_PID+"
}
stop_roles() {
  stop_pid "$SERVE_PID"
  stop_pid "$PROJECT_PID"
  stop_pid "$RELAY_PID"
}
start_roles

I_URL=http://$SERVE_ADDR
I_METRICS="serve=http://$SERVE_ADDR/metrics,project=http://$PROJECT_METRICS/metrics,relay=http://$RELAY_METRICS/metrics"
alive() { alive_all serve project relay; }

log "warm-up: 5 s closed loop (not recorded; the broker's JIT, the pools, and the template rows of the fill)"
bin/loadgen -mode closed -url "$I_URL" -conns "$CONNS" -duration 5s -prefix "warmup-$RUN_ID" -key "$API_KEY" -tenant "$TENANT" \
  -db "$IDB" -wait-complete >/dev/null

# The four tables' indexes and their key constraints, saved once to be
# dropped before a large fill and built again after it (a bulk insert
# into random-UUID btrees far larger than shared_buffers slows to a few
# thousand rows a second; a built index is also denser than a grown one).
FILL_TABLES="'idempotency_claims'::regclass, 'outbox'::regclass, 'processed_events'::regclass, 'payments'::regclass"
drop_indexes() {
  psql_ -d idemgate <<SQL
CREATE TABLE IF NOT EXISTS bench_growth_indexes AS
SELECT i.indrelid::regclass::TEXT AS tbl, i.indexrelid::regclass::TEXT AS name, pg_get_indexdef(i.indexrelid) AS def,
       c.conname, c.contype
FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u')
WHERE i.indrelid IN ($FILL_TABLES);
DO \$\$
DECLARE r RECORD;
BEGIN
  FOR r IN SELECT * FROM bench_growth_indexes LOOP
    IF r.conname IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.tbl, r.conname);
    END IF;
    EXECUTE format('DROP INDEX IF EXISTS %s', r.name);
  END LOOP;
END \$\$;
SQL
}
build_indexes() {
  psql_ -d idemgate <<'SQL'
SET maintenance_work_mem = '1GB';
DO $$
DECLARE r RECORD;
BEGIN
  FOR r IN SELECT * FROM bench_growth_indexes LOOP
    EXECUTE r.def;
    IF r.contype = 'p' THEN
      EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY USING INDEX %s', r.tbl, r.conname, r.name);
    ELSIF r.contype = 'u' THEN
      EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I UNIQUE USING INDEX %s', r.tbl, r.conname, r.name);
    END IF;
  END LOOP;
END $$;
SQL
}

# fill FROM TO: commands FROM..TO (1-based, inclusive) as completed,
# retained ones, cloned from one real completed payment of the warm-up:
# tenant one of 64, key and ids random-looking UUIDs (md5 of the number,
# so that each table computes the same ids), created over the last 20
# hours (before the retention ends), completed 40 ms later, its event
# sent 80 ms later.
fill() {
  local from=$1 to=$2
  psql_ -d idemgate -v from="$from" -v to="$to" -v tenant="$TENANT" <<'SQL'
SET synchronous_commit = off;
BEGIN;
CREATE TEMP TABLE tpl ON COMMIT DROP AS
SELECT c.operation, c.target, c.request, c.traceparent, c.expires_at - c.created_at AS retention, c.accepted_region,
       o.status, o.content_type, o.body, p.currency, p.customer, p.description, p.status AS pstatus,
       (SELECT projector FROM processed_events e WHERE e.event_id = c.operation_id::TEXT LIMIT 1) AS projector
FROM idempotency_claims c JOIN outbox o USING (operation_id) JOIN payments p USING (operation_id)
WHERE c.tenant_id = :'tenant' AND o.sent_at IS NOT NULL
LIMIT 1;
SELECT 1 / (count(*) FILTER (WHERE projector IS NOT NULL))::INT AS template_found FROM tpl;
CREATE TEMP TABLE n ON COMMIT DROP AS
SELECT i, md5('op' || i)::UUID AS op, 'tenant-fill-' || (i % 64) AS tenant,
       now() - interval '1 second' * ((i * 7919) % 72000) - interval '1 millisecond' * (i % 1000) AS at
FROM generate_series(:from::INT8, :to::INT8) i;
INSERT INTO idempotency_claims (tenant_id, operation, idem_key, operation_id, fingerprint, target, request,
    created_at, lease_until, expires_at, traceparent, accepted_region, emitted_region)
SELECT n.tenant, t.operation, md5('key' || n.i)::UUID::TEXT, n.op, sha256(int8send(n.i)), t.target, t.request,
       n.at, n.at + interval '30 seconds', n.at + t.retention, t.traceparent, t.accepted_region, t.accepted_region
FROM n, tpl t;
INSERT INTO payments (payment_id, tenant_id, operation_id, amount, currency, customer, description, status, created_at)
SELECT md5('pay' || n.i)::UUID, n.tenant, n.op, 100 + (n.i * 37) % 100000, t.currency, 'cus_' || (n.i % 100000), t.description, t.pstatus,
       n.at + interval '40 milliseconds'
FROM n, tpl t;
INSERT INTO processed_events (projector, event_id, processed_at)
SELECT t.projector, n.op::TEXT, n.at + interval '40 milliseconds' FROM n, tpl t;
INSERT INTO outbox (operation_id, tenant_id, operation, status, content_type, location, body, created_at, sent_at)
SELECT n.op, n.tenant, t.operation, t.status, t.content_type, '/v1/payments/' || md5('pay' || n.i)::UUID, t.body,
       n.at + interval '40 milliseconds', n.at + interval '120 milliseconds'
FROM n, tpl t;
COMMIT;
SQL
}

# explain SIZE: the hot path's statements under EXPLAIN (ANALYZE, BUFFERS),
# each in a transaction rolled back, with ids and keys of the filled rows.
# The claim is store's claimSQL itself; the others are copies adapted to
# psql (the batches as arrays), each \echo naming its source in store/:
# keep them in step with it.
explain() {
  local out=$BENCH_OUT/explain-$1.txt claim
  # The claim is store's own statement (store.HotPathSQL), not a copy.
  claim=$(bin/growth -sql claim) || die "bin/growth -sql claim failed"
  psql_ -d idemgate -v n="$1" -v claim_sql="$claim" >"$out" 2>&1 <<'SQL' || die "EXPLAIN failed (see $out)"
PREPARE claim(TEXT, TEXT, TEXT, UUID, BYTEA, TEXT, BYTEA, INT8, INT8, TEXT, TEXT) AS :claim_sql;
SET plan_cache_mode = force_custom_plan;
\echo '=== serve: claimSQL (store/claims.go), a new key'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim('tenant-fill-7', 'payments.create', gen_random_uuid()::TEXT, gen_random_uuid(), '\x00', '', '\x7b7d', 30000000, 86400000000, '', '');
ROLLBACK;
\echo '=== serve: claimSQL, a replay (the key of filled command 7)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim('tenant-fill-7', 'payments.create', md5('key7')::UUID::TEXT, gen_random_uuid(), '\x00', '', '\x7b7d', 30000000, 86400000000, '', '');
ROLLBACK;
SET plan_cache_mode = force_generic_plan;
BEGIN;
\echo '=== claimSQL, generic plan (as the prepared statement may settle on), a replay of filled command 7'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim('tenant-fill-7', 'payments.create', md5('key7')::UUID::TEXT, gen_random_uuid(), '\x00', '', '\x7b7d', 30000000, 86400000000, '', '');
\echo '=== claimSQL, generic plan, a new key'
EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim('tenant-fill-7', 'payments.create', gen_random_uuid()::TEXT, gen_random_uuid(), '\x00', '', '\x7b7d', 30000000, 86400000000, '', '');
ROLLBACK;
RESET plan_cache_mode;
\echo '=== project: the batch of 100 new commands (store/apply.go ApplyBatch, payments.create): claims first, as serve wrote them'
BEGIN;
CREATE TEMP TABLE b ON COMMIT DROP AS SELECT gen_random_uuid() AS op, 'k' || g AS k FROM generate_series(1, 100) g;
INSERT INTO idempotency_claims (tenant_id, operation, idem_key, operation_id, fingerprint, target, request, created_at, lease_until, expires_at)
SELECT 'tenant-explain', 'payments.create', k, op, '\x00', '', '\x7b7d', now(), now() + interval '30 seconds', now() + interval '1 day' FROM b;
SELECT array_agg(op) AS ids FROM b \gset
EXPLAIN (ANALYZE, BUFFERS) INSERT INTO processed_events (projector, event_id)
SELECT 'payments', c.operation_id::TEXT FROM idempotency_claims c WHERE c.operation_id = ANY(:'ids'::UUID[])
ON CONFLICT (projector, event_id) DO NOTHING RETURNING event_id;
EXPLAIN (ANALYZE, BUFFERS) INSERT INTO payments (payment_id, tenant_id, operation_id, amount, currency, customer, description, status, created_at)
SELECT gen_random_uuid(), 'tenant-explain', op, 100, 'EUR', 'cus_1', NULL, 'succeeded', now() FROM unnest(:'ids'::UUID[]) AS op
ON CONFLICT (payment_id) DO NOTHING;
EXPLAIN (ANALYZE, BUFFERS) INSERT INTO outbox (operation_id, tenant_id, operation, status, content_type, location, body)
SELECT op, 'tenant-explain', 'payments.create', 201, 'application/json', '', '\x7b7d' FROM unnest(:'ids'::UUID[]) AS op
ON CONFLICT (operation_id) DO NOTHING;
\echo '=== relay: the unsent rows (store/outbox.go unsentResponses, limit 500), the 100 just written'
EXPLAIN (ANALYZE, BUFFERS) SELECT o.operation_id::TEXT, o.tenant_id, o.operation, COALESCE(c.idem_key, ''), o.status, o.content_type, o.location, o.body, o.created_at,
       COALESCE(c.traceparent, '')
FROM outbox o
LEFT JOIN idempotency_claims c ON c.operation_id = o.operation_id
WHERE o.sent_at IS NULL
ORDER BY o.created_at
LIMIT 500;
\echo '=== relay: the sent mark (store/outbox.go MarkSent)'
EXPLAIN (ANALYZE, BUFFERS) UPDATE outbox SET sent_at = now() WHERE operation_id = ANY(:'ids'::UUID[]) AND sent_at IS NULL;
\echo '=== serve: the sweeper (store/claims.go ExpiredLeases, limit 100), with the 100 pending rows expired'
INSERT INTO command_pending (operation_id, lease_until) SELECT op, now() - interval '1 minute' FROM b;
EXPLAIN (ANALYZE, BUFFERS) UPDATE command_pending SET lease_until = now() + interval '30 seconds'
WHERE operation_id IN (SELECT operation_id FROM command_pending WHERE lease_until < now() ORDER BY lease_until LIMIT 100)
  AND lease_until < now()
RETURNING operation_id::TEXT, COALESCE(acked_region, '') <> '' AND acked_region = '';
EXPLAIN (ANALYZE, BUFFERS) DELETE FROM command_pending p WHERE p.operation_id = ANY(:'ids'::UUID[])
  AND (EXISTS (SELECT 1 FROM outbox o WHERE o.operation_id = p.operation_id)
       OR NOT EXISTS (SELECT 1 FROM idempotency_claims c WHERE c.operation_id = p.operation_id));
ROLLBACK;
\echo '=== the backlog gauges (store/outbox.go OutboxBacklog, store/claims.go: the pending commands)'
EXPLAIN (ANALYZE, BUFFERS) SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL;
\echo '=== table sizes'
SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT 8;
SQL
  log "EXPLAIN at $1: $out"
}

T0=$SECONDS
filled=0
round=0
for size in $SIZES; do
  log "filling to $size retained commands (from $filled)"
  t=$SECONDS
  psql_ -d postgres -c "ALTER SYSTEM SET max_wal_size = '8GB'" -c 'SELECT pg_reload_conf()' >/dev/null
  bulk=0
  if ((size - filled > BULK_FILL)); then
    bulk=1
    log "  $((size - filled)) rows: roles stopped, indexes dropped, built again after"
    stop_roles
    drop_indexes
  fi
  while ((filled < size)); do
    to=$((filled + FILL_CHUNK < size ? filled + FILL_CHUNK : size))
    fill $((filled + 1)) "$to" >/dev/null
    filled=$to
    log "  $filled"
  done
  if ((bulk)); then
    build_indexes
    log "  indexes built"
    start_roles
    bin/loadgen -mode closed -url "$I_URL" -conns "$CONNS" -duration 5s -prefix "warmup-$size-$RUN_ID" -key "$API_KEY" -tenant "$TENANT" \
      -db "$IDB" -wait-complete >/dev/null
  fi
  psql_ -d idemgate -c 'VACUUM ANALYZE idempotency_claims, outbox, processed_events, payments, command_pending'
  psql_ -d postgres -c 'ALTER SYSTEM RESET max_wal_size' -c 'SELECT pg_reload_conf()' >/dev/null
  bytes=$(psql_ -d idemgate -tAc 'SELECT pg_database_size(current_database())')
  printf '{"label":"fill","size":%d,"seconds":%d,"db_bytes":%d}\n' "$size" $((SECONDS - t)) "$bytes" >>"$RESULTS"
  log "filled to $size in $((SECONDS - t)) s; database $((bytes / 1048576)) MB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for ((round = 1; round <= ROUNDS; round++)); do
    log "size $size, round $round of $ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    printf '{"label":"loadavg","size":%d,"round":%d,"loadavg":"%s"}\n' "$size" "$round" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS"
    lg "e2e/$size" -mode closed -url "$I_URL" -conns "$CONNS" -duration "${DURATION}s" -db "$IDB" -wait-complete -watch "$I_WATCH" -metrics "$I_METRICS"
    lg "open/$size" -mode open -url "$I_URL" -conns "$OPEN_CONNS" -rate "$OPEN_RATE" -duration "${DURATION}s" -db "$IDB" -wait-complete -watch "$I_WATCH" -metrics "$I_METRICS"
    lg "replay/$size" -mode replay -url "$I_URL" -conns "$CONNS" -duration "${DURATION}s" -keys "$REPLAY_KEYS" -db "$IDB" -wait-complete -watch "$I_WATCH" -metrics "$I_METRICS"
  done
  explain "$size"
  if go build -o bin/ ./bench/growth && bin/growth -svg "$BENCH_OUT/bench-growth.svg" "$RESULTS" >"$BENCH_OUT/results.md"; then
    log "table so far: $BENCH_OUT/results.md"
  else
    log "bench/growth could not draw the results (they are in $RESULTS)"
  fi
done
ELAPSED=$((SECONDS - T0))
[[ -s $BENCH_OUT/results.md ]] && cat "$BENCH_OUT/results.md"
log "done in $((ELAPSED / 60)) min $((ELAPSED % 60)) s; chart: $BENCH_OUT/bench-growth.svg, raw: $RESULTS, logs: $LOGS"
