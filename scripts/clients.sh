#!/usr/bin/env bash
# Client generation test (issue 12): generates the Go, TypeScript and
# Python clients from the OpenAPI document a live `idemgate dev` serves with
# a routes file (so the gateway's routes are in it) and proves each one
# types the API: the status fields as enums or literal unions, the
# operation's response body as the union of the recorded bodies, and each
# gateway route's body after its schema.
#
# Usage: scripts/clients.sh
#
# - installs, pinned, into ${IDEMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/idemgate}/clients
#   (once): oapi-codegen (go install, Go module proxy), openapi-typescript
#   and typescript (npm, when node is on PATH), and
#   scripts/requirements-clients.txt (PyPI: openapi-python-client, mypy,
#   openapi-spec-validator) in a venv;
# - builds bin/idemgate, starts `bin/idemgate dev --routes
#   examples/orders/routes.yaml` (the check programs use its orders.create
#   schema) on a fresh data folder under /tmp, fetches /openapi.json and
#   validates it (openapi-spec-validator);
# - Go: oapi-codegen generates package api into a throwaway module that
#   requires github.com/oapi-codegen/runtime; scripts/clients/main.go is
#   built against it (go vet, go build) and run against the live server
#   (a payment and a declined one, each recorded body decoded once);
# - TypeScript (when node is on PATH; CL_NODE=1 makes node required):
#   openapi-typescript generates api.d.ts; tsc --noEmit --strict checks
#   scripts/clients/check.ts against it;
# - Python: openapi-python-client generates package idemgate_client;
#   mypy --strict checks it with scripts/clients/check.py, which then runs
#   against the live server like the Go program;
# - always stops the dev process and removes the work folder.
#
# Environment (defaults):
#   CL_ADDR=127.0.0.1:18092              listen address of the dev server (loopback only)
#   CL_NODE=auto                         auto: TypeScript when node is on PATH; 1: required
#   CL_KEEP=0                            1: keep the work folder (generated clients, logs)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/devlib.sh

say() { echo "clients.sh: $*" >&2; }
fail() {
  echo "clients.sh: FAIL: $*" >&2
  exit 1
}

# Pinned generator versions (newest on the registries when pinned).
OAPI_CODEGEN_VERSION=v2.8.2   # github.com/oapi-codegen/oapi-codegen/v2
OAPI_RUNTIME_VERSION=v1.9.0   # github.com/oapi-codegen/runtime, which its clients import
OPENAPI_TYPESCRIPT_VERSION=7.13.0
TYPESCRIPT_VERSION=5.9.3      # openapi-typescript 7 asks for typescript ^5
REQS=$ROOT/scripts/requirements-clients.txt

CL_ADDR=${CL_ADDR:-127.0.0.1:18092}
ROUTES=examples/orders/routes.yaml
CL_NODE=${CL_NODE:-auto}
CL_KEEP=${CL_KEEP:-0}
dev_loopback CL_ADDR # sets BASE; no proxies; go and curl present

export GOTOOLCHAIN=local GOWORK=off

NODE=0
if command -v node >/dev/null; then
  NODE=1
  command -v npm >/dev/null || fail "node is on PATH but npm is not (needed to install openapi-typescript)"
elif [ "$CL_NODE" = 1 ]; then
  fail "node is not on PATH and CL_NODE=1 requires the TypeScript check"
fi

CACHE=${IDEMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/idemgate}/clients
mkdir -p "$CACHE"
t0=$(date +%s)
since() { echo "$(($(date +%s) - $1))s"; }

# --- the generators, pinned, in the cache ------------------------------------
OAPI_CODEGEN=$CACHE/bin/oapi-codegen-$OAPI_CODEGEN_VERSION
if [ ! -x "$OAPI_CODEGEN" ]; then
  say "installing oapi-codegen $OAPI_CODEGEN_VERSION (go install)"
  tmpbin=$(mktemp -d "$CACHE/gobin.XXXXXX")
  GOBIN=$tmpbin GOFLAGS= go install "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@$OAPI_CODEGEN_VERSION" ||
    { rm -rf "$tmpbin"; fail "go install of oapi-codegen $OAPI_CODEGEN_VERSION failed (see above)"; }
  mkdir -p "$CACHE/bin"
  mv "$tmpbin/oapi-codegen" "$OAPI_CODEGEN"
  rm -rf "$tmpbin"
fi

NPM_DIR=$CACHE/npm-openapi-typescript-$OPENAPI_TYPESCRIPT_VERSION-typescript-$TYPESCRIPT_VERSION
if [ "$NODE" = 1 ] && [ ! -x "$NPM_DIR/node_modules/.bin/tsc" ]; then
  say "installing openapi-typescript $OPENAPI_TYPESCRIPT_VERSION and typescript $TYPESCRIPT_VERSION (npm)"
  rm -rf "$NPM_DIR" && mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && echo '{"private": true}' >package.json &&
    npm install --no-audit --no-fund --loglevel=error --save-exact \
      "openapi-typescript@$OPENAPI_TYPESCRIPT_VERSION" "typescript@$TYPESCRIPT_VERSION" >&2) ||
    { rm -rf "$NPM_DIR"; fail "npm could not install openapi-typescript and typescript into $NPM_DIR"; }
fi

VENV=$CACHE/venv
venv_ensure "$VENV" "$REQS" openapi-python-client openapi-python-client
say "tools ready ($(since "$t0"))"

# --- the server ----------------------------------------------------------------
dev_prepare clients "$BASE" CL_ADDR "$CL_KEEP"

t=$(date +%s)
say "starting bin/idemgate dev --routes $ROUTES on $CL_ADDR"
dev_start "$WORK/dev.out" "$WORK/dev.log" env -u DATABASE_URL -u KAFKA_BROKERS -u IDEMGATE_API_KEYS \
  bin/idemgate dev --data-dir "$WORK/data" --addr "$CL_ADDR" --routes "$ROUTES"
dev_wait_ready "$WORK/dev.out" "$WORK/dev.log" "$BASE"
DOC=$WORK/openapi.json
curl -sf --noproxy '*' --max-time 10 -o "$DOC" "$BASE/openapi.json" || fail "GET $BASE/openapi.json failed"
say "dev server ready, document fetched ($(since "$t"))"
"$VENV/bin/openapi-spec-validator" "$DOC" >&2 ||
  fail "the document served with $ROUTES is not a valid OpenAPI 3.1 document (see above)"
grep -q '"GatewayOrdersCreateRequest"' "$DOC" ||
  fail "the served document lacks the routes file's orders.create schema (GatewayOrdersCreateRequest)"
TAG=$(date +%s)-$$

# --- Go ----------------------------------------------------------------------------
t=$(date +%s)
GODIR=$WORK/go
mkdir -p "$GODIR/api"
"$OAPI_CODEGEN" -generate types,client -package api -o "$GODIR/api/api.go" "$DOC" ||
  fail "oapi-codegen $OAPI_CODEGEN_VERSION could not generate the Go client (see above)"
cp scripts/clients/main.go "$GODIR/main.go"
cat >"$GODIR/go.mod" <<EOF
module idemgate.invalid/clientcheck

go 1.22

require github.com/oapi-codegen/runtime $OAPI_RUNTIME_VERSION
EOF
(cd "$GODIR" && GOFLAGS=-mod=mod go mod tidy >&2) || fail "go mod tidy of the Go client's module failed (see above)"
(cd "$GODIR" && go vet ./api && go build -o check main.go) >&2 ||
  fail "the Go client generated by oapi-codegen $OAPI_CODEGEN_VERSION does not compile with scripts/clients/main.go (see above)"
"$GODIR/check" "$BASE" dev-key-a "$TAG" >&2 || fail "the Go client's round trip against $BASE failed (see above)"
say "Go: oapi-codegen $OAPI_CODEGEN_VERSION client compiles and works ($(since "$t"))"

# --- TypeScript --------------------------------------------------------------------
if [ "$NODE" = 1 ]; then
  t=$(date +%s)
  TSDIR=$WORK/ts
  mkdir -p "$TSDIR"
  "$NPM_DIR/node_modules/.bin/openapi-typescript" "$DOC" -o "$TSDIR/api.d.ts" >"$TSDIR/gen.log" 2>&1 ||
    { cat "$TSDIR/gen.log" >&2; fail "openapi-typescript $OPENAPI_TYPESCRIPT_VERSION could not generate the types (see above)"; }
  cp scripts/clients/check.ts "$TSDIR/check.ts"
  (cd "$TSDIR" && "$NPM_DIR/node_modules/.bin/tsc" --noEmit --strict --noUncheckedIndexedAccess --exactOptionalPropertyTypes \
    --target es2022 --module es2022 --moduleResolution bundler check.ts api.d.ts) >&2 ||
    fail "tsc --strict: the types generated by openapi-typescript $OPENAPI_TYPESCRIPT_VERSION do not type scripts/clients/check.ts (errors above)"
  say "TypeScript: openapi-typescript $OPENAPI_TYPESCRIPT_VERSION types pass tsc $TYPESCRIPT_VERSION --strict ($(since "$t"))"
else
  say "WARNING: node is not on PATH: the TypeScript client is NOT checked (CL_NODE=1 makes this an error)"
fi

# --- Python ------------------------------------------------------------------------
t=$(date +%s)
PYDIR=$WORK/py
mkdir -p "$PYDIR"
echo '{"post_hooks": [], "package_name_override": "idemgate_client", "project_name_override": "idemgate-client"}' >"$PYDIR/config.json"
"$VENV/bin/openapi-python-client" generate --path "$DOC" --output-path "$PYDIR/idemgate_client" --meta none \
  --config "$PYDIR/config.json" >"$PYDIR/gen.log" 2>&1 ||
  { cat "$PYDIR/gen.log" >&2; fail "openapi-python-client could not generate the Python client (see above)"; }
if grep -q -i 'warning' "$PYDIR/gen.log"; then
  cat "$PYDIR/gen.log" >&2
  fail "openapi-python-client left parts of the document out of the Python client (warnings above)"
fi
cp scripts/clients/check.py "$PYDIR/check.py"
# redundant-cast: the generator's own style, no typing gap.
(cd "$PYDIR" && "$VENV/bin/mypy" --strict --disable-error-code redundant-cast --cache-dir "$PYDIR/.mypy_cache" \
  idemgate_client check.py) >&2 ||
  fail "mypy --strict: the Python client generated by openapi-python-client does not type scripts/clients/check.py (errors above)"
(cd "$PYDIR" && "$VENV/bin/python" check.py "$BASE" dev-key-a "$TAG") >&2 ||
  fail "the Python client's round trip against $BASE failed (see above)"
say "Python: openapi-python-client client passes mypy --strict and works ($(since "$t"))"

say "OK: the clients generated from the served document compile and type the API ($(since "$t0"))"
