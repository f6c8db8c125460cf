#!/usr/bin/env bash
# Contract test: runs Schemathesis against a live `idemgate dev` and fails on
# any 5xx and on any response (status, Content-Type, headers, body) that
# command/openapi.json (served at /openapi.json) does not describe.
#
# Usage: scripts/schemathesis.sh [extra schemathesis run options]
#
# - builds bin/idemgate, starts `bin/idemgate dev` on a fresh data folder
#   under /tmp (private PostgreSQL + in-process Kafka) on $ST_ADDR, waits for
#   /readyz;
# - installs the Schemathesis version (and openapi-spec-validator, which
#   checks the document first) pinned in
#   scripts/requirements-schemathesis.txt into
#   ${IDEMGATE_CACHE:-$HOME/.cache/idemgate}/venv-schemathesis (once);
# - runs it with a fixed seed and a bounded number of examples; all traffic
#   goes to 127.0.0.1 only (proxies disabled, no redirects followed);
# - always stops the dev process (SIGTERM: it stops its PostgreSQL) and
#   removes the data folder.
#
# Environment (defaults):
#   ST_ADDR=127.0.0.1:18089   listen address of the dev server (loopback only)
#   ST_MAX_EXAMPLES=500       test cases per API operation and phase
#   ST_SEED=20250601          Hypothesis seed (same seed, same test cases)
#   ST_KEEP=0                 1: keep the data folder and logs for debugging
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/devlib.sh

say() { echo "schemathesis.sh: $*" >&2; }
fail() { echo "schemathesis.sh: FAIL: $*" >&2; exit 1; }

ST_ADDR=${ST_ADDR:-127.0.0.1:18089}
ST_MAX_EXAMPLES=${ST_MAX_EXAMPLES:-500}
ST_SEED=${ST_SEED:-20250601}
ST_KEEP=${ST_KEEP:-0}
dev_loopback ST_ADDR # sets BASE; no proxies; go and curl present

# --- Schemathesis, pinned, in its own venv ----------------------------------
CACHE=${IDEMGATE_CACHE:-$HOME/.cache/idemgate}
VENV=$CACHE/venv-schemathesis
venv_ensure "$VENV" "$ROOT/scripts/requirements-schemathesis.txt" schemathesis Schemathesis
ST="$VENV/bin/schemathesis"

say "openapi-spec-validator command/openapi.json"
"$VENV/bin/openapi-spec-validator" command/openapi.json >&2 ||
  fail "command/openapi.json is not a valid OpenAPI 3.1 document (see above)"

# --- the server ---------------------------------------------------------------
dev_prepare schemathesis "$BASE" ST_ADDR "$ST_KEEP"

say "starting bin/idemgate dev --data-dir $WORK/data --addr $ST_ADDR"
# Private backends and the dev keys, whatever this shell has configured.
dev_start "$WORK/dev.out" "$WORK/dev.log" env -u DATABASE_URL -u KAFKA_BROKERS -u IDEMGATE_API_KEYS \
  bin/idemgate dev --data-dir "$WORK/data" --addr "$ST_ADDR"
dev_wait_ready "$WORK/dev.out" "$WORK/dev.log" "$BASE"
say "idemgate dev ready on $BASE"
curl -sf --noproxy '*' --max-time 10 -o "$WORK/openapi.json" "$BASE/openapi.json" || fail "GET $BASE/openapi.json failed"
say "openapi-spec-validator: the served document (core and modules merged)"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json" >&2 ||
  fail "the served /openapi.json is not a valid OpenAPI 3.1 document (see above)"

# --- the run ------------------------------------------------------------------
CHECKS=${ST_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,allow_header_conformance,ignored_auth,use_after_free,ensure_resource_availability}
# One worker: the same order of requests on every run; and Hypothesis can
# hit CPython's "AST constructor recursion depth mismatch" across threads
# (python/cpython#106905, fixed in 3.11.8 / 3.12.1).
args=(
  run "$BASE/openapi.json"
  --url "$BASE"
  --header "Authorization: Bearer dev-key-a"
  --checks "$CHECKS"
  --phases examples,coverage,fuzzing,stateful
  --max-examples "$ST_MAX_EXAMPLES"
  --seed "$ST_SEED"
  --workers 1
  --max-redirects 0
  --request-timeout 40
  --no-color
  --report junit,ndjson --report-dir "$WORK/report"
)
say "running: schemathesis ${args[*]} $*"
start=$(date +%s)
set +e
# Run from the work folder so that no schemathesis.toml or .hypothesis/ of
# the caller's is read or written.
(cd "$WORK" && "$ST" "${args[@]}" "$@")
rc=$?
set -e
took=$(($(date +%s) - start))
rm -rf "$ROOT/.tmp/schemathesis"
if [ -d "$WORK/report" ]; then
  mkdir -p "$ROOT/.tmp/schemathesis"
  cp -r "$WORK/report/." "$ROOT/.tmp/schemathesis/"
  cp "$WORK/dev.log" "$ROOT/.tmp/schemathesis/dev.log"
fi
if grep -q 'panic' "$WORK/dev.log"; then
  grep -m5 'panic' "$WORK/dev.log" >&2
  fail "the dev server logged a panic during the run (see above; log in .tmp/schemathesis/dev.log)"
fi
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
  fail "schemathesis could not run (exit $rc, ${took}s; see its message above)"
fi
if [ "$rc" -ne 0 ]; then
  fail "schemathesis found a 5xx or a response that breaks command/openapi.json, or hit an error (exit $rc, ${took}s; details above, report in .tmp/schemathesis/)"
fi
say "OK: no 5xx and every response matches command/openapi.json (${took}s)"
