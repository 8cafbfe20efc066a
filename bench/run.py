"""Benchmarks: `python -m bench.run [--quick] [--out FILE]` prints a table and writes JSON.

Targets from the benchmark issue are shown beside each number; missing one fails nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench import engine

TARGETS = {"steps_per_s": 20000}


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "system": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute), for CI smoke checks")
    parser.add_argument("--out", default="bench/results/latest.json", help="where to write the JSON results")
    args = parser.parse_args(argv)
    seconds = 1.0 if args.quick else 10.0
    results = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "engine": engine.bench_steps(seconds),
        "classifier": engine.bench_classifier(seconds),
    }
    rows = [
        ("engine steps/s (one core)", f"{results['engine']['steps_per_s']:,.0f}", ">= 20,000"),
        ("engine step p50 / p99", f"{results['engine']['p50_ms']:.3f} / {results['engine']['p99_ms']:.3f} ms", ""),
        ("classifier narratives/s", f"{results['classifier']['narratives_per_s']:,.0f}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>22}  {target}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
