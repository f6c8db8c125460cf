"""Offline checks of idemgate's deployment files, run by scripts/check-deploy.sh.

Each subcommand prints one line per problem, "check.py: <file>: <problem>",
and exits 1 if there was any (2 for a usage error):

  dashboard DASHBOARD.json RULES_OUT   the dashboard's structure (datasource
      variable, unique ids, non-overlapping grid, known variables); writes
      every panel expression, Grafana variables replaced by sample values, as
      one recording rule each into RULES_OUT for `promtool check rules`.
  names METRICS.txt FILE...            every idemgate_* metric named in FILEs
      is one idemgate exports (METRICS.txt), so no alert or panel watches a
      misspelt series that never exists.
  runbooks ALERTS.yml README.md        every alert has severity, summary,
      description and a runbook_url whose #anchor is a heading of README.md.
  manifests RENDERED.yaml [--complete] invariants of rendered Kubernetes
      manifests that a schema cannot see (see check_manifests).

Needs PyYAML (installed with kubernetes-validate in the same venv).
"""

import json
import re
import sys

import yaml

PROBLEMS = []


def problem(path, msg):
    PROBLEMS.append(f"check.py: {path}: {msg}")


# --- dashboard ----------------------------------------------------------------

# Sample values for Grafana's variables: enough for PromQL to parse.
GRAFANA_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "namespace": ".*",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def substitute(expr, path, where):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in GRAFANA_VARIABLES:
            problem(path, f"{where}: unknown variable ${name}")
            return m.group(0)
        return GRAFANA_VARIABLES[name]

    return VARIABLE.sub(repl, expr)


def check_dashboard(path, rules_out):
    try:
        with open(path) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        problem(path, f"not valid JSON: {e}")
        return
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(path, 'no templating variable "datasource" of type datasource (prometheus)')
    for name in variables:
        if name not in GRAFANA_VARIABLES and name != "datasource":
            problem(path, f"variable ${name} has no sample value in check.py")

    rules, ids, cells = [], set(), {}
    for p in all_panels(dash.get("panels", [])):
        pid, title = p.get("id"), p.get("title", "?")
        where = f"panel {pid} ({title})"
        if pid in ids:
            problem(path, f"{where}: duplicate panel id")
        ids.add(pid)
        g = p.get("gridPos", {})
        if g.get("x", 0) + g.get("w", 0) > 24:
            problem(path, f"{where}: wider than the 24-column grid")
        for dx in range(g.get("w", 0)):
            for dy in range(g.get("h", 0)):
                cell = (g.get("x", 0) + dx, g.get("y", 0) + dy)
                if cell in cells:
                    problem(path, f"{where}: overlaps panel {cells[cell]}")
                    break
                cells[cell] = pid
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            problem(path, f"{where}: no query")
        for owner in [p] + targets:
            uid = (owner.get("datasource") or {}).get("uid")
            if uid != "${datasource}":
                problem(path, f"{where}: datasource {uid!r} is not the $datasource variable")
        for t in targets:
            expr = (t.get("expr") or "").strip()
            ref = t.get("refId", "?")
            if not expr:
                problem(path, f"{where} {ref}: empty expression")
                continue
            rules.append({
                "record": f"dashboard:panel_{pid}_{ref}",
                "expr": substitute(expr, path, f"{where} {ref}"),
                "labels": {"panel": title},
            })
    # JSON is YAML: promtool reads this as a rules file.
    with open(rules_out, "w") as f:
        json.dump({"groups": [{"name": "dashboard-expressions", "rules": rules}]}, f, indent=1)
    print(f"check.py: {path}: {len(rules)} expressions in {len(ids)} panels", file=sys.stderr)


# --- metric names ---------------------------------------------------------------

METRIC = re.compile(r"\bidemgate_[a-z0-9_]+")


def check_names(metrics_path, files):
    known = {}
    with open(metrics_path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                known[line[0]] = line[1]
    allowed = set(known)
    for name, kind in known.items():
        if kind == "histogram":
            allowed |= {name + "_bucket", name + "_sum", name + "_count"}
    for path in files:
        with open(path) as f:
            text = f.read()
        for name in sorted(set(METRIC.findall(text))):
            if name not in allowed:
                problem(path, f"{name} is not a metric idemgate exports ({metrics_path})")
            elif known.get(name) == "histogram":
                problem(path, f"{name} is a histogram: use {name}_bucket, _sum or _count")


# --- runbooks ---------------------------------------------------------------------


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def check_runbooks(alerts_path, readme_path):
    with open(readme_path) as f:
        anchors = {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", f.read(), re.M)}
    with open(alerts_path) as f:
        doc = yaml.safe_load(f)
    n = 0
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "alert" not in rule:
                continue
            n += 1
            name = rule["alert"]
            if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                problem(alerts_path, f"{name}: no severity label critical, warning or info")
            ann = rule.get("annotations", {})
            for key in ("summary", "description", "runbook_url"):
                if not ann.get(key):
                    problem(alerts_path, f"{name}: no {key} annotation")
            url = ann.get("runbook_url", "")
            target, _, anchor = url.partition("#")
            if target != "deploy/README.md" or anchor not in anchors:
                problem(alerts_path, f"{name}: runbook_url {url!r} is not a heading of {readme_path}")
            elif anchor != name.lower():
                problem(alerts_path, f"{name}: runbook_url should point to the section named after the alert")
    print(f"check.py: {alerts_path}: {n} alerts, each with a runbook in {readme_path}", file=sys.stderr)


# --- rendered manifests -------------------------------------------------------------

ROLES = {"serve", "project", "relay", "migrate"}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}


def env_value(container, name):
    for e in container.get("env") or []:
        if e.get("name") == name:
            return e
    return None


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def check_manifests(path, complete):
    """Checks a `kustomize build` output for what breaks only at run time.

    - each workload's selector selects its own pod template, each Service and
      PodDisruptionBudget selects some pod template;
    - each container runs an idemgate role, non-root, read-only, without
      capabilities, with CPU and memory requests and limits; long-running
      ones have startup, liveness and readiness probes on a declared port,
      and that port is the one IDEMGATE_ADDR / IDEMGATE_METRICS_ADDR opens;
    - the projectors have a stable IDEMGATE_INSTANCE_ID (the pod name) and
      are no more than the partitions; there is one relay;
    - with --complete, every ConfigMap and Secret referenced is in the output.
    """
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    templates = []
    configmaps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})

    def ref(kind, name, where, optional=False):
        pool = configmaps if kind == "ConfigMap" else secrets
        if complete and not optional and name not in pool:
            problem(path, f"{where}: {kind} {name} is not in the output")

    for kind in WORKLOADS:
        for name, w in by_kind.get(kind, {}).items():
            where = f"{kind}/{name}"
            spec = w["spec"]
            tpl = spec["template"]
            labels = tpl["metadata"].get("labels", {})
            templates.append(labels)
            if kind != "Job":
                sel = spec["selector"]["matchLabels"]
                if any(labels.get(k) != v for k, v in sel.items()):
                    problem(path, f"{where}: selector {sel} does not select its pod template")
            pod = tpl["spec"]
            psc = pod.get("securityContext", {})
            if not psc.get("runAsNonRoot"):
                problem(path, f"{where}: pod securityContext.runAsNonRoot is not true")
            if pod.get("automountServiceAccountToken") is not False:
                problem(path, f"{where}: automountServiceAccountToken is not false")
            for v in pod.get("volumes") or []:
                if "configMap" in v:
                    ref("ConfigMap", v["configMap"]["name"], where, v["configMap"].get("optional", False))
                if "secret" in v:
                    ref("Secret", v["secret"]["secretName"], where, v["secret"].get("optional", False))
            for c in pod["containers"]:
                check_container(path, where, kind, spec, c, ref, configmaps)

    for kind in ("Service", "PodDisruptionBudget"):
        for name, o in by_kind.get(kind, {}).items():
            spec = o["spec"]
            sel = spec.get("selector", {})
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            if not any(all(t.get(k) == v for k, v in sel.items()) for t in templates):
                problem(path, f"{kind}/{name}: selector {sel} selects no pod template")
    print(f"check.py: {path}: {len(docs)} objects, {len(templates)} workloads checked", file=sys.stderr)


def check_container(path, where, kind, spec, c, ref, configmaps):
    where = f"{where} container {c['name']}"
    args = c.get("args") or []
    role = args[0] if args else None
    if role not in ROLES:
        problem(path, f"{where}: args {args} do not start with an idemgate role {sorted(ROLES)}")
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True:
        problem(path, f"{where}: root filesystem is not read-only")
    if sc.get("allowPrivilegeEscalation") is not False:
        problem(path, f"{where}: allowPrivilegeEscalation is not false")
    if "ALL" not in (sc.get("capabilities", {}).get("drop") or []):
        problem(path, f"{where}: capabilities are not all dropped")
    res = c.get("resources", {})
    for k in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(k, {}):
                problem(path, f"{where}: no {r} {k[:-1]}")
    env = {}
    for src in c.get("envFrom") or []:
        if "configMapRef" in src:
            name = src["configMapRef"]["name"]
            ref("ConfigMap", name, where, src["configMapRef"].get("optional", False))
            env.update((configmaps.get(name) or {}).get("data", {}))
    for e in c.get("env") or []:
        vf = e.get("valueFrom", {})
        if "secretKeyRef" in vf:
            ref("Secret", vf["secretKeyRef"]["name"], where, vf["secretKeyRef"].get("optional", False))
        if "configMapKeyRef" in vf:
            ref("ConfigMap", vf["configMapKeyRef"]["name"], where, vf["configMapKeyRef"].get("optional", False))
        if "value" in e:
            env[e["name"]] = e["value"]
    if not env_value(c, "DATABASE_URL"):
        problem(path, f"{where}: no DATABASE_URL")
    if kind == "Job":
        return

    ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
    addr_var = "IDEMGATE_ADDR" if role == "serve" else "IDEMGATE_METRICS_ADDR"
    addr = env.get(addr_var, "")
    if not addr.startswith("0.0.0.0:"):
        problem(path, f"{where}: {addr_var}={addr!r} does not listen on all interfaces (0.0.0.0:PORT)")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        p = c.get(probe)
        if not p or "httpGet" not in p:
            problem(path, f"{where}: no HTTP {probe}")
            continue
        port = p["httpGet"]["port"]
        number = ports.get(port) if isinstance(port, str) else port
        if number is None:
            problem(path, f"{where}: {probe} port {port!r} is not a declared container port")
        elif addr.startswith("0.0.0.0:") and number != port_of(addr):
            problem(path, f"{where}: {probe} probes port {number}, but {addr_var} opens {port_of(addr)}")
        want = "/healthz" if probe != "readinessProbe" else "/readyz"
        if p["httpGet"].get("path") != want:
            problem(path, f"{where}: {probe} path is not {want}")

    if role == "project":
        iid = env_value(c, "IDEMGATE_INSTANCE_ID") or {}
        if iid.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
            problem(path, f"{where}: IDEMGATE_INSTANCE_ID is not the pod name (metadata.name)")
        if kind != "StatefulSet":
            problem(path, f"{where}: projectors need stable pod names (a StatefulSet)")
        partitions = int(env.get("IDEMGATE_PARTITIONS", "6"))
        if spec.get("replicas", 1) > partitions:
            problem(path, f"{where}: {spec.get('replicas')} projectors for {partitions} partitions")
    if role == "relay" and spec.get("replicas", 1) != 1:
        problem(path, f"{where}: {spec.get('replicas')} relays; one is enough")


def main(argv):
    usage = "usage: check.py dashboard|names|runbooks|manifests ARGS (see the module doc)"
    if len(argv) < 3:
        print(usage, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    try:
        if cmd == "dashboard" and len(args) == 2:
            check_dashboard(*args)
        elif cmd == "names" and len(args) >= 2:
            check_names(args[0], args[1:])
        elif cmd == "runbooks" and len(args) == 2:
            check_runbooks(*args)
        elif cmd == "manifests" and len(args) in (1, 2) and args[1:] in ([], ["--complete"]):
            check_manifests(args[0], complete=args[1:] == ["--complete"])
        else:
            print(usage, file=sys.stderr)
            return 2
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        # A file that is missing or not shaped as expected: one line, no trace.
        problem(" ".join(args), f"cannot check: {type(e).__name__}: {e}")
    for p in PROBLEMS:
        print(p, file=sys.stderr)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
