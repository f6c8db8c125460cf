#!/usr/bin/env python3
"""The reproduction of issue 17, as a new user would run it: `idemgate dev` with
the demo orders service behind a routes file, the fault
projector.after-upstream-call at the given odds, and a supervisor that starts dev
again whenever it dies. 150 orders are sent (retried through dev's restarts),
then each is retried until it has a final answer. It prints the answers' statuses,
dev's deaths and how many orders the orders service recorded. Any 502 is a lie:
the orders service never fails, so every order was applied.

    go build -o /tmp/repro/idemgate ./cmd/idemgate
    go build -o /tmp/repro/orders ./examples/orders
    python3 scripts/dev-crash-check.py 0.25 /tmp/repro/idemgate /tmp/repro/orders

It uses 127.0.0.1:18080 (dev) and 127.0.0.1:19500 (orders) and a work folder in
/tmp; it is a manual check, not part of `make test` (TestGatewayCrashesAreNotFailures
is the test).
"""
import json, os, shutil, subprocess, sys, tempfile, threading, time, urllib.request, urllib.error, signal
odds = sys.argv[1] if len(sys.argv) > 1 else "0.2"
binary = sys.argv[2] if len(sys.argv) > 2 else "bin/idemgate"
orders_bin = sys.argv[3] if len(sys.argv) > 3 else "/tmp/repro/orders"
here = os.path.dirname(os.path.abspath(__file__))
D = tempfile.mkdtemp(prefix="idemgate-dev-crash-")
shutil.copy(os.path.join(here, "..", "examples", "orders", "order.schema.json"), D)
with open(os.path.join(here, "..", "examples", "orders", "routes.yaml")) as f:
    open(D + "/routes.yaml", "w").write(f.read().replace("127.0.0.1:9000", "127.0.0.1:19500"))
N = 150
data = D + "/orders.jsonl"
orders = subprocess.Popen([orders_bin, "--addr", "127.0.0.1:19500", "--data", data], stderr=open(D + "/orders.log", "w"))
stop = False; deaths = 0
env = dict(os.environ, IDEMGATE_FAULTS="projector.after-upstream-call=" + odds)
env.pop("DATABASE_URL", None); env.pop("KAFKA_BROKERS", None)
log = open(D + "/dev.log", "w")
def supervise():
    global deaths
    while not stop:
        p = subprocess.Popen([binary, "dev", "--routes", D + "/routes.yaml", "--data-dir", D + "/dev", "--addr", "127.0.0.1:18080"], env=env, stdout=log, stderr=log)
        while p.poll() is None:
            if stop: p.send_signal(signal.SIGTERM); p.wait(); return
            time.sleep(0.05)
        if p.returncode == -9: deaths += 1
        time.sleep(0.2)
threading.Thread(target=supervise, daemon=True).start()
def req(method, path, body=None, key=None):
    h = {"Authorization": "Bearer dev-key-a", "Content-Type": "application/json"}
    if key: h["Idempotency-Key"] = key
    r = urllib.request.Request("http://127.0.0.1:18080" + path, data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp: return resp.status, resp.read()
    except urllib.error.HTTPError as e: return e.code, e.read()
def retry(method, path, body=None, key=None):
    while True:
        try:
            s, b = req(method, path, body, key)
            if s in (502, 503) and b'upstream-failed' not in b: time.sleep(0.2); continue
            return s, b
        except Exception: time.sleep(0.2)
ops = {}
def client(c):
    for i in range(c, N, 5):
        key = "repro-%d" % i
        body = json.dumps({"sku": "sku-%d" % i, "quantity": 1}).encode()
        s, b = retry("POST", "/v1/orders", body, key)
        ops[key] = (s, json.loads(b).get("operation_id") if s == 202 else None, body)
ts = [threading.Thread(target=client, args=(c,)) for c in range(5)]
[t.start() for t in ts]; [t.join() for t in ts]
final = {}
deadline = time.time() + 600
for key, (s, op, body) in ops.items():
    while time.time() < deadline:
        s2, b2 = retry("POST", "/v1/orders", body, key)
        if s2 != 202: final[key] = (s2, b2); break
        if b'outcome_unknown' in b2: final[key] = ("outcome_unknown", b2); break
        time.sleep(0.3)
stop = True; time.sleep(1)
orders.terminate()
lines = [json.loads(l) for l in open(data) if l.strip()]
statuses = {}
for k, (s, b) in final.items(): statuses[s] = statuses.get(s, 0) + 1
print("odds", odds, "orders", len(ops), "dev deaths", deaths, "final statuses", statuses, "upstream records", len(lines), "work folder", D)
sys.exit(1 if set(statuses) != {201} or len(lines) != N else 0)
