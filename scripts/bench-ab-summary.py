#!/usr/bin/env python3
"""Ratios of scripts/bench-ab.sh's variants against its baseline.

Usage: bench-ab-summary.py RESULTS.jsonl BASELINE

For each measure (open, closed) and variant: the medians of each figure over
the rounds, and the median of the per-round ratios variant / baseline (the
two ran a minute apart in the same round, so a ratio cancels most of what a
shared machine does to both), with each round's ratio.
"""
import json
import statistics
import sys


def figures(r):
    cpu = r["cpu"]["ms_per_cmd"]
    ev = r["events"]["accepted_to_event_ms"]
    done = r["completion"]["accepted_to_completed_ms"]
    out = {
        "accepted/s": r["new_per_s"],
        "HTTP p50 ms": r["latency_ms"]["p50"],
        "HTTP p99 ms": r["latency_ms"]["p99"],
        "202->COMPLETED p50 ms": done["p50"],
        "202->COMPLETED p99 ms": done["p99"],
        "202->event on Kafka p50 ms": ev["p50"],
        "202->event on Kafka p99 ms": ev["p99"],
    }
    for k in ("serve", "project", "relay", "kafka", "postgres"):
        out[f"CPU ms/command {k}"] = cpu.get(k, 0)
    out["CPU ms/command, the five"] = sum(cpu.get(k, 0) for k in ("serve", "project", "relay", "kafka", "postgres"))
    out["errors"] = r["errors"]
    return out


def num(x):
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bench-ab-summary.py RESULTS.jsonl BASELINE")
    path, base = sys.argv[1], sys.argv[2]
    by = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            _, measure, variant = r["label"].split("/")
            by.setdefault(measure, {}).setdefault(r["round"], {})[variant] = figures(r)
    for measure, rounds in by.items():
        variants = sorted({v for rr in rounds.values() for v in rr} - {base})
        for v in variants:
            pairs = [(rr[base], rr[v]) for rr in rounds.values() if base in rr and v in rr]
            if not pairs:
                continue
            print(f"\n{measure}: {v} against {base}, {len(pairs)} rounds")
            print(f"| figure | {base} | {v} | ratio | per round |")
            print("|---|---:|---:|---:|---|")
            for k in pairs[0][0]:
                a = [p[0][k] for p in pairs]
                b = [p[1][k] for p in pairs]
                if k == "errors":
                    print(f"| errors | {sum(a)} | {sum(b)} | | |")
                    continue
                ratios = [y / x for x, y in zip(a, b) if x]
                med = statistics.median(ratios) if ratios else float("nan")
                print(f"| {k} | {num(statistics.median(a))} | {num(statistics.median(b))} | {med:.2f}x | "
                      f"{' '.join(f'{x:.2f}' for x in ratios)} |")


if __name__ == "__main__":
    main()
