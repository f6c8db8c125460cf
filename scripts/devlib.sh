# Shared by the scripts that check idemgate against third-party tools
# (schemathesis.sh, clients.sh, interop.sh): a pinned Python venv, a
# loopback-only setting, and an `idemgate dev` process that is started, waited for and always stopped.
#
# Sourced, not run. The caller defines say() and fail().

# venv_ensure VENV REQS PROGRAM WHY: installs REQS (a pinned requirements
# file) into VENV unless VENV/bin/PROGRAM exists and was installed from the
# same REQS (a sha256 stamp). WHY completes "python3 is not on PATH (needed
# for ...)".
venv_ensure() {
  local venv=$1 reqs=$2 program=$3 why=$4 stamp=$1/.requirements.sha256 want py
  want=$(sha256sum "$reqs" | cut -d' ' -f1)
  if [ -x "$venv/bin/$program" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  py=${PYTHON:-$(command -v python3 || true)}
  [ -n "$py" ] || fail "python3 is not on PATH (needed for $why)"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    fail "$py is older than Python 3.10, which $why needs"
  say "installing $(grep -v '^#' "$reqs" | xargs) into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv" || fail "could not create the venv $venv (python3 -m venv; on Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" ||
    fail "pip could not install $reqs into $venv"
  echo "$want" >"$stamp"
}

# dev_loopback ADDR_VAR: checks that the setting ADDR_VAR names holds
# 127.0.0.1:<port> and sets BASE to its URL; unsets every proxy so that no
# client started here talks to anything but loopback (the package
# registries' own clients aside); checks that go and curl are on PATH.
dev_loopback() {
  local addr_var=$1
  case "${!addr_var}" in
    127.0.0.1:[0-9]*) ;;
    *) fail "$addr_var must be 127.0.0.1:<port>, not '${!addr_var}'" ;;
  esac
  BASE="http://${!addr_var}"
  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
  export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
  command -v go >/dev/null || fail "go is not on PATH"
  command -v curl >/dev/null || fail "curl is not on PATH"
}

DEV_PID=

# dev_start OUT LOG COMMAND...: runs COMMAND (an `idemgate dev`) in the
# background with its stdout in OUT and its stderr in LOG; sets DEV_PID.
dev_start() {
  local out=$1 log=$2
  shift 2
  "$@" >"$out" 2>"$log" &
  DEV_PID=$!
}

# dev_wait_ready OUT LOG BASE: waits up to 60 s for the dev process to print
# its API line and for BASE/readyz to answer 2xx; fails with the log's tail
# if it exits first or is not ready in time.
dev_wait_ready() {
  local out=$1 log=$2 base=$3
  for _ in $(seq 1 600); do
    kill -0 "$DEV_PID" 2>/dev/null || { tail -20 "$log" >&2; fail "idemgate dev exited before it was ready (log above)"; }
    if grep -q "idemgate dev: API on" "$out" 2>/dev/null &&
      curl -sf --noproxy '*' -o /dev/null --max-time 2 "$base/readyz"; then
      return 0
    fi
    sleep 0.1
  done
  tail -20 "$log" >&2
  fail "idemgate dev was not ready on $base/readyz within 60 s"
}

# dev_stop: SIGTERM to the dev process (it stops its own PostgreSQL), then
# SIGKILL after 30 s.
dev_stop() {
  if [ -n "$DEV_PID" ] && kill -0 "$DEV_PID" 2>/dev/null; then
    kill -TERM "$DEV_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$DEV_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$DEV_PID" 2>/dev/null; then
      say "dev server did not stop within 30 s; killing it"
      kill -KILL "$DEV_PID" 2>/dev/null || true
    fi
    wait "$DEV_PID" 2>/dev/null || true
  fi
  DEV_PID=
}

# dev_pg_stop DATA: stops the PostgreSQL cluster a dev process left running
# in DATA/pg, should that process have died without stopping it.
dev_pg_stop() {
  local pgdata=$1/pg pgctl
  [ -f "$pgdata/postmaster.pid" ] || return 0
  pgctl=$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1)
  [ -n "${PG_BIN:-}" ] && pgctl=$PG_BIN/pg_ctl
  [ -n "$pgctl" ] || return 0
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "'$pgctl' stop -D '$pgdata' -m immediate -w" >/dev/null 2>&1 || true
  else
    "$pgctl" stop -D "$pgdata" -m immediate -w >/dev/null 2>&1 || true
  fi
}

# dev_prepare NAME BASE ADDR_VAR KEEP: builds bin/idemgate, checks that
# nothing listens on BASE yet (ADDR_VAR names the setting that moves it),
# and sets WORK to a fresh /tmp/idemgate-NAME.* folder. On exit the dev
# process and its PostgreSQL are stopped, and WORK is removed unless KEEP
# is 1.
dev_prepare() {
  local name=$1 base=$2 addr_var=$3
  DEV_KEEP=$4
  say "go build -o bin/idemgate ./cmd/idemgate"
  go build -o bin/idemgate ./cmd/idemgate || fail "go build ./cmd/idemgate failed"
  if curl -s --noproxy '*' -o /dev/null --max-time 2 "$base/healthz"; then
    fail "something already listens on ${!addr_var}; stop it or set $addr_var"
  fi
  WORK=$(mktemp -d "/tmp/idemgate-$name.XXXXXX")
  chmod 755 "$WORK" # the postgres account must reach the cluster below it
  trap dev_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

dev_cleanup() {
  local rc=$?
  dev_stop
  dev_pg_stop "$WORK/data"
  if [ "$DEV_KEEP" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
