#!/usr/bin/env bash
# Run a throwaway PostgreSQL cluster for tests and benchmarks: the server
# dev mode and the tests start too (package pgserver), with the same
# settings (every transaction SERIALIZABLE, ...: pgserver.Config).
#
# Usage: scripts/pg.sh start|stop|restart|status
#
# start prints DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/idemgate?sslmode=disable
# on stdout (nothing else goes there) and leaves the server running.
# Environment: PG_RUN_DIR (/tmp/idemgate-pg), PG_PORT (15432), PG_FRESH (1),
# PG_FSYNC (off; on for benchmarks), PG_SYNC_COMMIT (on), PG_BIN.
# All of it is done, and documented, in pgserver/cmd/pgserver.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./pgserver/cmd/pgserver "$@"
