#!/usr/bin/env bash
# Runs idemgate's benchmarks on the real backends (PostgreSQL 15 from
# scripts/pg.sh, the Kafka broker from scripts/kafka.sh) and prints the
# median of each over COUNT runs. Raw output: bench.out.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-2s}

cleanup() { scripts/kafka.sh stop >/dev/null 2>&1 || true; scripts/pg.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
export "$(scripts/pg.sh start)"
export "$(scripts/kafka.sh start)"

go test -run '^$' -bench . -benchtime "$BENCHTIME" -count "$COUNT" ./cmd/idemgate/ | tee bench.out
echo
echo "median of $COUNT runs (ns/op; lower is better), $(nproc) cores, $(uname -m):"
awk '/^Benchmark/ { sub(/-[0-9]+$/, "", $1); print $1, $3 }' bench.out | sort -k1,1 -k2,2n |
  awk '{ v[$1] = v[$1] " " $2 }
  END {
    for (k in v) {
      n = split(substr(v[k], 2), a, " ")
      m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      printf "%-32s %12.0f ns/op  %10.0f ops/s\n", k, m, 1e9 / m
    }
  }' | sort
