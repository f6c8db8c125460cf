#!/usr/bin/env bash
# Interoperability test: a consumer not written in Go reads idemgate's topics.
#
# Usage: KAFKA_BROKERS=127.0.0.1:<port> scripts/interop.sh
#
# On the real broker at KAFKA_BROKERS (scripts/kafka.sh start prints it), for
# each producer codec below:
# - starts `bin/idemgate dev` (its private PostgreSQL, the real broker) with
#   topics of its own (IDEMGATE_TOPIC_PREFIX) and that IDEMGATE_KAFKA_COMPRESSION;
# - posts a payment and waits until its outcome is recorded;
# - runs scripts/interop_consumer.py: kafka-python and the CloudEvents Python
#   SDK read <prefix>.commands and <prefix>.results from the start, parse every
#   record as a CloudEvent (binary mode) and check the operation's command and
#   result events.
# Codecs: the default (gzip) and none must be read; snappy, franz-go's own
# default, must NOT be (kafka-python needs python-snappy for it): that both
# shows the setting reaches the producer and why the default is not snappy.
# lz4 and zstd also need extra libraries in kafka-python and are not run.
#
# kafka-python and cloudevents, pinned in scripts/requirements-interop.txt, are
# installed into ${IDEMGATE_CACHE:-$HOME/.cache/idemgate}/venv-interop (once).
#
# Environment (defaults):
#   KAFKA_BROKERS               required: the real broker
#   INTEROP_ADDR=127.0.0.1:18091  the dev server's listen address (loopback)
#   INTEROP_CODECS="default none snappy"
#   INTEROP_KEEP=0              1: keep the work folder and logs
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/devlib.sh

say() { echo "interop.sh: $*" >&2; }
fail() { echo "interop.sh: FAIL: $*" >&2; exit 1; }

INTEROP_ADDR=${INTEROP_ADDR:-127.0.0.1:18091}
INTEROP_CODECS=${INTEROP_CODECS:-default none snappy}
INTEROP_KEEP=${INTEROP_KEEP:-0}
[ -n "${KAFKA_BROKERS:-}" ] || fail "KAFKA_BROKERS is not set (start a broker: scripts/kafka.sh start)"
dev_loopback INTEROP_ADDR # sets BASE; no proxies; go and curl present

# --- the Python consumer's libraries, pinned, in their own venv --------------
CACHE=${IDEMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/idemgate}
VENV=$CACHE/venv-interop
venv_ensure "$VENV" "$ROOT/scripts/requirements-interop.txt" python "the Python consumer"

dev_prepare interop "$BASE" INTEROP_ADDR "$INTEROP_KEEP"

# start_dev CODEC PREFIX: idemgate dev on the real broker, ready to serve.
start_dev() {
  local codec=$1 prefix=$2 log=$WORK/dev-$1.log
  local vars=(IDEMGATE_TOPIC_PREFIX="$prefix" IDEMGATE_GROUP="$prefix-projector" KAFKA_BROKERS="$KAFKA_BROKERS")
  [ "$codec" = default ] || vars+=(IDEMGATE_KAFKA_COMPRESSION="$codec")
  # A private PostgreSQL and the dev keys, whatever this shell has configured.
  dev_start "$WORK/dev-$codec.out" "$log" env -u DATABASE_URL -u IDEMGATE_API_KEYS -u IDEMGATE_KAFKA_COMPRESSION "${vars[@]}" \
    bin/idemgate dev --data-dir "$WORK/data" --addr "$INTEROP_ADDR"
  dev_wait_ready "$WORK/dev-$codec.out" "$log" "$BASE"
}

# pay_and_wait CODEC: posts a payment, waits for its outcome, prints its id.
pay_and_wait() {
  local codec=$1 headers=$WORK/post-$1.headers loc status
  status=$(curl -s --noproxy '*' --max-time 10 -o "$WORK/post-$codec.body" -D "$headers" -w '%{http_code}' \
    -X POST "$BASE/v1/payments" -H 'Authorization: Bearer dev-key-a' -H "Idempotency-Key: interop-$codec-$RANDOM" \
    -H 'Content-Type: application/json' -d '{"amount":4200,"currency":"EUR","customer":"cus_interop"}') ||
    fail "POST /v1/payments ($codec) failed"
  [ "$status" = 202 ] || fail "POST /v1/payments ($codec) answered $status, not 202: $(cat "$WORK/post-$codec.body")"
  loc=$(tr -d '\r' <"$headers" | sed -n 's/^[Ll]ocation: //p')
  [[ $loc == /v1/operations/* ]] || fail "POST /v1/payments ($codec): no operation Location (got '$loc')"
  for _ in $(seq 1 300); do # 30 s
    if curl -sf --noproxy '*' --max-time 5 -H 'Authorization: Bearer dev-key-a' "$BASE$loc" | grep -q '"status":"completed"'; then
      echo "${loc#/v1/operations/}"
      return 0
    fi
    sleep 0.1
  done
  fail "operation $loc ($codec) was not completed within 30 s"
}

run_id=$(date +%s)-$$
for codec in $INTEROP_CODECS; do
  prefix="interop-$run_id-$codec"
  say "[$codec] idemgate dev on $KAFKA_BROKERS, topics $prefix.*"
  start_dev "$codec" "$prefix"
  op=$(pay_and_wait "$codec")
  say "[$codec] operation $op completed; the Python consumer reads both topics"
  set +e
  line=$("$VENV/bin/python" scripts/interop_consumer.py --brokers "$KAFKA_BROKERS" --prefix "$prefix" --operation-id "$op" 2>"$WORK/consumer-$codec.err")
  rc=$?
  set -e
  dev_stop
  case "$codec:$rc" in
    snappy:3)
      say "[$codec] OK: kafka-python refused the records as expected: $line" ;;
    snappy:*)
      fail "[$codec] kafka-python was expected to fail on snappy records (exit 3), got exit $rc: $line $(tail -3 "$WORK/consumer-$codec.err")" ;;
    *:0)
      say "[$codec] $line" ;;
    *)
      fail "[$codec] ${line:-the consumer exited $rc} $(tail -3 "$WORK/consumer-$codec.err" | tr '\n' ' ')" ;;
  esac
done
say "OK: a Python consumer (kafka-python + cloudevents) reads idemgate's events with codecs: $INTEROP_CODECS"
