#!/usr/bin/env bash
# Runs idemgate's whole test suite on real backends: a throwaway PostgreSQL 15
# server (scripts/pg.sh) and a real Apache Kafka broker in KRaft mode
# (scripts/kafka.sh), then the integration tests once more on kfake, the
# in-process Kafka. Before them, Schemathesis checks every response of a live
# `idemgate dev` against the OpenAPI document, and scripts/clients.sh checks
# that the Go, TypeScript and Python clients generated from it compile and
# type it. Both servers are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test.sh: $*" >&2; }

command -v go >/dev/null || { say "error: go is not on PATH"; exit 1; }

cleanup() {
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  scripts/pg.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "go vet ./..."
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then say "error: gofmt would change: $unformatted"; exit 1; fi
say "go mod tidy -diff: go.mod and go.sum must already be tidy"
if ! tidy_diff=$(go mod tidy -diff 2>&1); then
  echo "$tidy_diff" >&2
  say "error: go mod tidy changes go.mod or go.sum (run it and commit the result)"; exit 1
fi
# staticcheck, pinned, installed once from the Go module proxy into the cache.
STATICCHECK_VERSION=v0.8.2
staticcheck=${XDG_CACHE_HOME:-$HOME/.cache}/idemgate/bin/staticcheck-$STATICCHECK_VERSION
if [ ! -x "$staticcheck" ]; then
  say "installing staticcheck $STATICCHECK_VERSION (once)"
  gobin=$(mktemp -d)
  GOBIN=$gobin go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ||
    { say "error: could not install staticcheck $STATICCHECK_VERSION from the Go module proxy"; exit 1; }
  mkdir -p "$(dirname "$staticcheck")" && mv "$gobin/staticcheck" "$staticcheck" && rm -rf "$gobin"
fi
say "staticcheck $STATICCHECK_VERSION ./..."
"$staticcheck" ./... || { say "error: staticcheck found problems (above)"; exit 1; }
scripts/check-deploy.sh # deploy/, docker-compose.yml, Dockerfile: offline validators

say "schemathesis: the OpenAPI document against a live idemgate dev (scripts/schemathesis.sh)"
scripts/schemathesis.sh
say "clients: Go, TypeScript and Python clients generated from the served document compile and type it (scripts/clients.sh)"
scripts/clients.sh

say "starting PostgreSQL (scripts/pg.sh)"
db_line=$(scripts/pg.sh start) || { say "error: PostgreSQL did not start"; exit 1; }
export "${db_line?}"
say "starting the Kafka broker (scripts/kafka.sh)"
kafka_line=$(scripts/kafka.sh start) || { say "error: the Kafka broker did not start (see above); refusing to test without it"; exit 1; }

say "interop: a Python consumer reads idemgate's CloudEvents on the real broker (scripts/interop.sh)"
env "$kafka_line" scripts/interop.sh

say "1/2: all tests, real PostgreSQL + real Kafka broker ($kafka_line)"
env "$kafka_line" go test -count=1 -timeout 20m ./...

say "2/2: integration tests again on kfake (KAFKA_BROKERS unset)"
# TestKafkaSecurity runs on a SASL_SSL broker of its own whatever KAFKA_BROKERS says, TestKafkaCluster
# on a three-node cluster of its own: once is enough.
# The crash tests of issue 17 restart a projector process dozens of times; kfake has no static
# group membership, so there each restart waits out the dead member's session: they ran above.
env -u KAFKA_BROKERS go test -count=1 -timeout 20m \
  -skip '^(TestKafkaSecurity|TestKafkaCluster|TestGatewayCrashesAreNotFailures|TestGatewayCrashLoopIsQuarantined|TestGatewayUpstreamDownAMinute)$' \
  ./cmd/... ./projector/... ./consumer/...
