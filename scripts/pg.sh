#!/usr/bin/env bash
# Run a throwaway PostgreSQL cluster for tests and benchmarks: the one
# that dev mode and the tests start too (package pgserver), with the same
# settings (every transaction SERIALIZABLE, ...; see pgserver.Config).
#
# Usage: scripts/pg.sh start|stop|restart|status
#
#   start    start a fresh cluster (PG_FRESH=0: reuse its data) and print
#            on stdout:
#              DATABASE_URL=postgres://postgres@127.0.0.1:<port>/idemgate?sslmode=disable
#            Prints the URL if the server is already running. The server
#            runs on, detached, after the script returns.
#   stop     stop the server (fast shutdown); keeps the data
#   restart  restart the server (fast shutdown), keeping the data; prints the URL
#   status   exit 0 if the server is running, 1 otherwise
#
# Environment (defaults):
#   PG_RUN_DIR=/tmp/idemgate-pg    the cluster is $PG_RUN_DIR/data (socket and
#                                  server.log in it). Keep it under /tmp: as
#                                  root, the server runs as "postgres", which
#                                  cannot traverse e.g. /root.
#   PG_PORT=15432
#   PG_BIN=$(pg_config --bindir), else the newest /usr/lib/postgresql/*/bin
#   PG_FRESH=1                     start: 1 = wipe + initdb, 0 = reuse existing data
#   PG_SYNC_COMMIT=on              synchronous_commit
#   PG_FSYNC=off                   fsync and full_page_writes; "on" for
#                                  benchmarks (scripts/bench.sh)
#
# Human-readable messages go to stderr; stdout only carries DATABASE_URL=...
# It runs pgserver/cmd/pgserver, where all of this is done and documented.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./pgserver/cmd/pgserver "$@"
