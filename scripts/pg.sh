#!/usr/bin/env bash
# Run a throwaway PostgreSQL 15 cluster for tests, with every transaction at
# SERIALIZABLE isolation by default.
#
# Usage: scripts/pg.sh start|stop|restart|status
#
#   start    initdb a fresh cluster (unless PG_FRESH=0 and one exists), start
#            it, create database "idemgate" and print on stdout:
#              DATABASE_URL=postgres://postgres@127.0.0.1:<port>/idemgate?sslmode=disable
#            No-op (prints the URL) if the server is already running.
#   stop     stop the server (fast shutdown); keeps the data
#   restart  restart the server (fast shutdown), keeping the data; prints the URL
#   status   exit 0 if the server is running, 1 otherwise
#
# Environment (defaults):
#   PG_RUN_DIR=/tmp/idemgate-pg    data dir ($PG_RUN_DIR/data), socket, server.log.
#                                  Keep it under /tmp: as root, the server runs
#                                  as "postgres", which cannot traverse e.g. /root.
#   PG_PORT=15432
#   PG_BIN=$(pg_config --bindir), else /usr/lib/postgresql/15/bin
#   PG_FRESH=1                     start: 1 = wipe + initdb, 0 = reuse existing data
#   PG_SYNC_COMMIT=on              synchronous_commit at initdb time. "off" would
#                                  lose the last ~0.6 s of acknowledged commits
#                                  when the server is SIGKILLed, which the chaos
#                                  tests do; with fsync=off "on" is still cheap.
#   PG_FSYNC=off                   fsync and full_page_writes at initdb time.
#                                  "on" for benchmarks (scripts/bench.sh): a
#                                  202 promises a durable claim, so its cost
#                                  must include the flush to disk.
#
# Human-readable messages go to stderr; stdout only carries DATABASE_URL=...
set -euo pipefail

PG_RUN_DIR=${PG_RUN_DIR:-/tmp/idemgate-pg}
PG_PORT=${PG_PORT:-15432}
PG_DB=idemgate
PGDATA_DIR=$PG_RUN_DIR/data
SERVER_LOG=$PG_RUN_DIR/server.log
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"

log() { echo "pg.sh: $*" >&2; }
die() { echo "pg.sh: error: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 start|stop|restart|status" >&2
  exit 2
}

# --- locate the server binaries -------------------------------------------
find_pg_bin() {
  local cand
  if [[ -n ${PG_BIN:-} ]]; then
    [[ -x $PG_BIN/initdb ]] || die "PG_BIN=$PG_BIN does not contain an executable initdb"
    return 0
  fi
  for cand in \
    "$(pg_config --bindir 2>/dev/null || true)" \
    /usr/lib/postgresql/15/bin \
    $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) \
    "$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || echo /nonexistent)")")"; do
    if [[ -n $cand && -x $cand/initdb && -x $cand/pg_ctl ]]; then
      PG_BIN=$cand
      return 0
    fi
  done
  die "PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BIN"
}

# --- run server commands as an unprivileged user ---------------------------
AS_ROOT=0
if [[ $(id -u) -eq 0 ]]; then AS_ROOT=1; fi

# as_pg CMD...: run CMD as "postgres" when we are root (PostgreSQL refuses to
# run as root), else as the current user. Runs from / so the server user
# never needs access to the caller's working directory.
as_pg() {
  if ((AS_ROOT)); then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u postgres -- "$@")
    else
      (cd / && setpriv --reuid=postgres --regid=postgres --init-groups -- "$@")
    fi
  else
    (cd / && "$@")
  fi
}

pg_ctl_() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" "$@"; }

is_running() {
  [[ -f $PGDATA_DIR/PG_VERSION ]] || return 1
  pg_ctl_ status >/dev/null 2>&1
}

psql_() {
  local psql=psql
  [[ -x $PG_BIN/psql ]] && psql=$PG_BIN/psql
  "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

init_cluster() {
  case ${PG_FSYNC:-off} in
    on | off) ;;
    *) die "PG_FSYNC='$PG_FSYNC' is not on or off" ;;
  esac
  case $PG_RUN_DIR in
    "" | / | /tmp | /tmp/) die "refusing to wipe PG_RUN_DIR='$PG_RUN_DIR'" ;;
  esac
  rm -rf "$PG_RUN_DIR"
  mkdir -p "$PG_RUN_DIR"
  chmod 700 "$PG_RUN_DIR"
  if ((AS_ROOT)); then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server as"
    chown postgres: "$PG_RUN_DIR"
  fi
  as_pg test -w "$PG_RUN_DIR" ||
    die "the server user cannot write $PG_RUN_DIR (are its parent directories traversable?)"

  as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C \
    >"$PG_RUN_DIR/initdb.log" 2>&1 ||
    { cat "$PG_RUN_DIR/initdb.log" >&2; die "initdb failed (log: $PG_RUN_DIR/initdb.log)"; }

  cat >>"$PGDATA_DIR/postgresql.conf" <<EOF

# ---- added by scripts/pg.sh (throwaway test cluster) ----
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN_DIR'
default_transaction_isolation = 'serializable'
max_connections = 300
shared_buffers = 128MB
# Durability is switched off for speed by default (PG_FSYNC=off). TESTS ONLY,
# never use in production: fsync/full_page_writes=off mean a machine crash can
# corrupt the cluster; synchronous_commit=off means a killed server can lose
# recent commits. Benchmarks set PG_FSYNC=on.
fsync = ${PG_FSYNC:-off}
synchronous_commit = ${PG_SYNC_COMMIT:-on}
full_page_writes = ${PG_FSYNC:-off}
EOF
}

start_server() {
  # Retried: after a crash (kill -9) the old server's children may still hold
  # the shared memory block / port for a moment.
  local attempt
  for attempt in 1 2 3 4 5; do
    if pg_ctl_ start -w -t 60 -l "$SERVER_LOG" >&2; then
      return 0
    fi
    is_running && die "pg_ctl start failed but a server is running (log: $SERVER_LOG)"
    log "pg_ctl start failed (attempt $attempt/5); retrying in 1s"
    sleep 1
  done
  tail -n 30 "$SERVER_LOG" >&2 || true
  die "pg_ctl start failed (log: $SERVER_LOG)"
}

ensure_db() {
  local exists
  exists=$(psql_ -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ||
    die "cannot connect to the server on 127.0.0.1:$PG_PORT"
  if [[ $exists != 1 ]]; then
    psql_ -d postgres -c "CREATE DATABASE $PG_DB" || die "CREATE DATABASE $PG_DB failed"
  fi
}

say_user() {
  if ((AS_ROOT)); then
    log "started the server as the unprivileged 'postgres' user, because PostgreSQL refuses to run as root."
  fi
}

do_start() {
  local fresh=${PG_FRESH:-1}
  find_pg_bin
  if is_running; then
    log "already running on 127.0.0.1:$PG_PORT (data: $PGDATA_DIR)"
    echo "DATABASE_URL=$DATABASE_URL"
    return 0
  fi
  # Checked before wiping anything: someone else owns this port.
  if port_open "$PG_PORT"; then
    die "port $PG_PORT is already in use by another process (not this cluster)"
  fi
  if [[ $fresh == 0 && -f $PGDATA_DIR/PG_VERSION ]]; then
    log "reusing existing cluster in $PGDATA_DIR"
  else
    init_cluster
  fi
  start_server
  say_user
  ensure_db
  log "PostgreSQL ready on 127.0.0.1:$PG_PORT (data: $PGDATA_DIR, log: $SERVER_LOG)"
  echo "DATABASE_URL=$DATABASE_URL"
}

do_stop() {
  find_pg_bin
  if ! is_running; then
    log "not running"
    return 0
  fi
  if ! pg_ctl_ stop -w -t 60 -m fast >&2; then
    is_running && die "pg_ctl stop failed (log: $SERVER_LOG)"
    log "the server was already gone (it had crashed or been killed)"
  fi
}

do_restart() {
  find_pg_bin
  if is_running; then
    if pg_ctl_ restart -w -t 60 -m fast -l "$SERVER_LOG" >&2; then
      say_user
      ensure_db
      echo "DATABASE_URL=$DATABASE_URL"
      return 0
    fi
    if is_running; then
      tail -n 30 "$SERVER_LOG" >&2 || true
      die "pg_ctl restart failed (log: $SERVER_LOG)"
    fi
    log "pg_ctl restart failed because the server was already gone; starting it keeping existing data"
  else
    log "not running; starting it keeping existing data"
  fi
  PG_FRESH=0 do_start
}

do_status() {
  find_pg_bin
  if is_running; then
    log "running on 127.0.0.1:$PG_PORT (data: $PGDATA_DIR)"
    return 0
  fi
  log "not running"
  return 1
}

[[ $# -eq 1 ]] || usage
case $1 in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_restart ;;
  status) do_status ;;
  *) usage ;;
esac
