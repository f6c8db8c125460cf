#!/usr/bin/env bash
# Run a throwaway PostgreSQL cluster for tests and benchmarks: the server
# dev mode and the tests start too (package pgserver), with the same
# settings (every transaction SERIALIZABLE, ...: pgserver.Config).
#
# Usage: scripts/pg.sh start|stop|restart|status
#        PG_STANDBY=1 scripts/pg.sh start|stop|restart|status|kill-primary|promote|rejoin
#
# start prints DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/idemgate?sslmode=disable
# on stdout (nothing else goes there) and leaves the server running.
# With PG_STANDBY=1 it starts a primary and its synchronous streaming
# standby and prints both hosts,
# DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT,127.0.0.1:$PG_STANDBY_PORT/idemgate?sslmode=disable&target_session_attrs=read-write;
# kill-primary (kill -9), promote (the standby) and rejoin (the old
# primary as the new standby) fail it over step by step.
# Environment: PG_RUN_DIR (/tmp/idemgate-pg), PG_PORT (15432), PG_FRESH (1),
# PG_FSYNC (off; on for benchmarks), PG_SYNC_COMMIT (on), PG_BIN,
# PG_STANDBY (0), PG_STANDBY_PORT (PG_PORT+1).
# All of it is done, and documented, in pgserver/cmd/pgserver.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./pgserver/cmd/pgserver "$@"
