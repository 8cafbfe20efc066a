"""Benchmarks: `python -m bench.run [--quick] [--out FILE] [--only SECTIONS] [--at REV]`.

Prints a table (ours, the baseline of bench/baseline, their ratio, the target) and writes JSON.
Targets from the benchmark issue are shown beside each number; missing one fails nothing. A
section that crashes is reported and makes the exit code 1 (the smoke check must complete).

Sections: engine (dialogs step and classifier throughput, in this process), e2e (simulated users
through the bot as a process and the Bot API emulator), followups (a store of pending follow-ups,
dispatch, kill -9). See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import procs

SECTIONS = ("engine", "e2e", "followups")
TARGETS = {"steps_per_s": 20000, "e2e_updates_per_s": 300, "p99_at_100_ms": 50, "startup_s": 2.0,
           "rss_mb": 150, "limited_rate": 28.5, "lost": 0}

# What each mode runs. quick: well under a minute on 2 shared cores, for CI.
SETTINGS = {
    "quick": {"engine_s": 0.5, "e2e_users": 8, "paced_s": 1.5, "shipped": False, "shipped_users": 0,
              "fu_users": 300, "fu_per_user": 10, "fu_baseline_reduced": None, "fu_window": 2.0, "fu_raw": False,
              "fu_kill_after": 1.0, "fu_timeout": 60, "fu_stop_grace": 3.0},
    # 100,000 users x 10 = 1,000,000 pending follow-ups, 100,000 due. The baseline's raw rate and
    # kill -9 test run on 100,000 pending (10,000 due): at a million, each of its start-ups takes minutes.
    "full": {"engine_s": 10.0, "e2e_users": 1000, "paced_s": 30.0, "shipped": True, "shipped_users": 50,
             "fu_users": 100_000, "fu_per_user": 10, "fu_baseline_reduced": 10_000, "fu_window": 30.0,
             "fu_raw": True, "fu_kill_after": 10.0, "fu_timeout": 300, "fu_stop_grace": 30.0},
}
PACED_RATE = 100.0          # the target's offered load (capacity mode)
SHIPPED_RATE = 10.0         # as shipped, the limiter allows about 15 turns/s: a load it can carry


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict:
    def load() -> list[float] | None:
        try:
            return list(os.getloadavg())
        except OSError:
            return None

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(procs.ROOT), *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "cpu": cpu, "machine": platform.machine(),
            "system": platform.platform(), "load_avg_at_start": load(),
            "revision": git("describe", "--always", "--dirty"), "product_root": str(procs.PRODUCT_ROOT)}


# ---- sections ----------------------------------------------------------------------------------------

def run_engine(s: dict) -> dict:
    if procs.PRODUCT_ROOT != procs.ROOT:
        sys.path.insert(0, str(procs.PRODUCT_ROOT))
    from bench import engine
    return {"engine": engine.bench_steps(s["engine_s"]), "classifier": engine.bench_classifier(s["engine_s"])}


_TEMPLATE: dict[str, Path] = {}     # our bot's database from the e2e section, reused by followups


def run_e2e(s: dict) -> dict:
    from bench import e2e
    out: dict = {}
    kept = Path(tempfile.mkdtemp(prefix="bench-template-")) / "e2e.db"
    for kind in ("ours", "baseline"):
        out[kind] = {"capacity": e2e.run(kind, s["e2e_users"], PACED_RATE, s["paced_s"], no_limiter=True, log=log,
                                         keep_db=kept)}
        if s["shipped"]:
            out[kind]["shipped"] = e2e.run(kind, s["shipped_users"], SHIPPED_RATE, s["paced_s"], no_limiter=False,
                                           log=log)
    if kept.exists():
        _TEMPLATE["db"] = kept
    return out


def run_followups(s: dict) -> dict:
    from bench import followups
    out: dict = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-template-"))
    try:
        template = followups.check_template(_TEMPLATE["db"]) if "db" in _TEMPLATE else \
            followups.make_template(workdir, log)
    except followups.NoDispatcher as exc:
        out["ours"] = {"skipped": str(exc)}
        log(f"  ours: skipped: {exc}")
        template = None
    common = dict(window=s["fu_window"], kill_after=s["fu_kill_after"], startup_timeout=s["fu_timeout"],
                  raw=s["fu_raw"], stop_grace=s["fu_stop_grace"], log=log)
    try:
        if template is not None:
            out["ours"] = followups.run("ours", s["fu_users"], s["fu_per_user"], template=template, **common)
        out["baseline"] = followups.run("baseline", s["fu_users"], s["fu_per_user"],
                                        reduced_users=s["fu_baseline_reduced"], **common)
    finally:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
        if "db" in _TEMPLATE:
            shutil.rmtree(_TEMPLATE.pop("db").parent, ignore_errors=True)
    return out


RUNNERS = {"engine": run_engine, "e2e": run_e2e, "followups": run_followups}


# ---- the table -----------------------------------------------------------------------------------------

def _get(d: dict | None, *path: str):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _num(value, fmt: str = ",.0f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{fmt}}{unit}"


def _ratio(ours, base) -> str:
    if not ours or not base or any(isinstance(v, float) and math.isnan(v) for v in (ours, base)):
        return "-"
    return f"{ours / base:.2f}"


def rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(measure, ours, baseline, ours/baseline, target)."""
    out: list[tuple[str, str, str, str, str]] = []
    eng = results.get("engine")
    if isinstance(eng, dict) and "steps_per_s" in eng:
        out.append(("engine steps/s (one core)", _num(eng["steps_per_s"]), "", "", ">= 20,000"))
        out.append(("engine step p50 / p99", f"{eng['p50_ms']:.3f} / {eng['p99_ms']:.3f} ms", "", "", ""))
        out.append(("classifier narratives/s", _num(_get(results, "classifier", "narratives_per_s")),
                    "", "", ""))
        p99 = _get(results, "classifier", "p99_ms")
        if p99 is not None:
            out.append(("classifier per story p50 / p99", f"{_get(results, 'classifier', 'p50_ms'):.3f} / {p99:.3f} ms",
                        "", "", "p99 <= 2 ms"))
    e2e = results.get("e2e")
    if isinstance(e2e, dict) and "ours" in e2e:
        for mode, title in (("capacity", "bot's own limiter off"), ("shipped", "as shipped, 30 requests/s limiter")):
            o, b = _get(e2e, "ours", mode), _get(e2e, "baseline", mode)
            if o is None:
                continue
            users = _get(o, "closed", "users")
            closed = lambda d, k: _get(d, "closed", k)     # noqa: E731
            paced = lambda d, k: _get(d, "paced", k)       # noqa: E731
            out.append((f"e2e, {title}: {users:,} users", "", "", "", ""))
            out.append(("  updates/s, all users at once", _num(closed(o, "updates_per_s"), ",.1f"),
                        _num(closed(b, "updates_per_s"), ",.1f"),
                        _ratio(closed(o, "updates_per_s"), closed(b, "updates_per_s")),
                        ">= 300" if mode == "capacity" else ""))
            out.append(("  latency p50 / p99 / max (at once)",
                        f"{_num(closed(o, 'p50_ms'))} / {_num(closed(o, 'p99_ms'))} / {_num(closed(o, 'max_ms'))} ms",
                        f"{_num(closed(b, 'p50_ms'))} / {_num(closed(b, 'p99_ms'))} / {_num(closed(b, 'max_ms'))} ms",
                        _ratio(closed(o, "p99_ms"), closed(b, "p99_ms")), ""))
            rate = PACED_RATE if mode == "capacity" else SHIPPED_RATE
            out.append((f"  p50 / p99 at {rate:.0f}/s offered (got {_num(paced(o, 'offered_per_s'), '.0f')}"
                        f" / {_num(paced(b, 'offered_per_s'), '.0f')})",
                        f"{_num(paced(o, 'p50_ms'), ',.1f')} / {_num(paced(o, 'p99_ms'), ',.1f')} ms",
                        f"{_num(paced(b, 'p50_ms'), ',.1f')} / {_num(paced(b, 'p99_ms'), ',.1f')} ms",
                        _ratio(paced(o, "p99_ms"), paced(b, "p99_ms")), "p99 < 50 ms" if mode == "capacity" else ""))
            cpu_o = _cpu_ms(o)
            cpu_b = _cpu_ms(b)
            out.append(("  bot CPU per update", _num(cpu_o, ".1f", " ms"), _num(cpu_b, ".1f", " ms"),
                        _ratio(cpu_o, cpu_b), ""))
            out.append(("  peak RSS", _num(_get(o, "peak_rss_mb"), ".0f", " MB"),
                        _num(_get(b, "peak_rss_mb"), ".0f", " MB"),
                        _ratio(_get(o, "peak_rss_mb"), _get(b, "peak_rss_mb")), ""))
            if mode == "capacity":
                out.append(("  storage per case", _num(_get(o, "storage", "bytes_per_case"), ",.0f", " B"),
                            _num(_get(b, "storage", "bytes_per_case"), ",.0f", " B"),
                            _ratio(_get(o, "storage", "bytes_per_case"), _get(b, "storage", "bytes_per_case")), ""))
    fu = results.get("followups")
    if isinstance(fu, dict) and ("ours" in fu or "baseline" in fu):
        o, b = fu.get("ours") or {}, fu.get("baseline") or {}
        store = _get(o, "store") or _get(b, "store") or {}
        out.append((f"follow-ups: {store.get('pending', 0):,} pending, {store.get('due', 0):,} due", "", "", "", ""))
        if "skipped" in o:
            out.append(("  ours: skipped (no follow-ups in this version)", "", "", "", ""))
        for key, title in (("armed_s", "  start-up until armed"), ("first_nudge_s", "  start-up until 1st nudge")):
            vo, vb = _get(o, "limited", key), _get(b, "limited", key)
            out.append((title, _num(vo, ".2f", " s"), _num(vb, ".2f", " s"), _ratio(vo, vb),
                        "< 2 s" if key == "armed_s" else ""))
        peak_o, peak_b = _get(o, "limited", "peak_rss_mb"), _get(b, "limited", "peak_rss_mb")
        out.append(("  peak RSS", _num(peak_o, ".0f", " MB"), _num(peak_b, ".0f", " MB"), _ratio(peak_o, peak_b),
                    "< 150 MB"))
        out.append(("  dispatch, emulator at 30/s (429s)",
                    f"{_num(_get(o, 'limited', 'rate'), '.1f')}/s ({_num(_get(o, 'limited', 'too_many_requests'))})",
                    f"{_num(_get(b, 'limited', 'rate'), '.1f')}/s ({_num(_get(b, 'limited', 'too_many_requests'))})",
                    _ratio(_get(o, "limited", "rate"), _get(b, "limited", "rate")), ">= 28.5/s, 0 x 429"))
        out.append(("  stop (SIGTERM) during dispatch", _stop(_get(o, "limited")), _stop(_get(b, "limited")), "", ""))
        reduced = _get(b, "reduced_store")
        note = f" (baseline: {reduced['pending']:,} pending)" if reduced else ""
        out.append((f"  dispatch, no limit anywhere{note}", f"{_num(_get(o, 'raw', 'rate'), '.1f')}/s",
                    f"{_num(_get(b, 'raw', 'rate'), '.1f')}/s", _ratio(_get(o, "raw", "rate"), _get(b, "raw", "rate")),
                    ""))
        out.append((f"  kill -9, restart: lost / duplicated{' (same)' if reduced else ''}",
                    f"{_num(_get(o, 'kill', 'lost'))} / {_num(_get(o, 'kill', 'duplicated'))}",
                    f"{_num(_get(b, 'kill', 'lost'))} / {_num(_get(b, 'kill', 'duplicated'))}", "", "0 lost"))
    for section in SECTIONS:
        if isinstance(results.get(section), dict) and "error" in results[section]:
            out.append((f"{section}: ERROR {results[section]['error'].strip().splitlines()[-1][:70]}", "", "", "", ""))
    return out


def _stop(d: dict | None) -> str:
    if not d or d.get("stop_s") is None:
        return "-"
    return f"killed at {d['stop_s']:.0f} s" if d.get("exit_code") == -9 else f"{d['stop_s']:.1f} s"


def _cpu_ms(d: dict | None) -> float | None:
    cpu, n = _get(d, "closed", "bot_cpu_s"), _get(d, "closed", "replies")
    return cpu / n * 1000 if cpu and n else None


def table(results: dict) -> str:
    header = ("measure", "ours", "baseline", "ours/base", "target")
    body = rows(results)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(5)]
    lines = []
    for i, r in enumerate([header, *body]):
        lines.append("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (well under a minute), for CI smoke checks")
    parser.add_argument("--out", default="bench/results/latest.json", help="where to write the JSON results")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({', '.join(SECTIONS)})")
    parser.add_argument("--at", metavar="REV", help="run the bot processes on the product as committed at REV "
                        "(git archive of bot/, dialogs/, messages/), not on the working tree")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    snapshot = None
    if args.at:
        args.at = subprocess.run(["git", "-C", str(procs.ROOT), "rev-parse", "--short", args.at], check=True,
                                 capture_output=True, text=True).stdout.strip()
        snapshot = Path(tempfile.mkdtemp(prefix="bench-product-"))
        procs.PRODUCT_ROOT = procs.export_revision(args.at, snapshot)
    mode = "quick" if args.quick else "full"
    settings = SETTINGS[mode]
    results: dict = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "mode": mode,
                     "machine": machine(), "settings": settings, "at": args.at}
    failed = False
    t_all = time.monotonic()
    for section in sections:
        t0 = time.monotonic()
        log(f"[{section}]")
        try:
            got = RUNNERS[section](settings)
            results.update(got) if section == "engine" else results.__setitem__(section, got)
        except Exception:
            failed = True
            results[section] = {"error": traceback.format_exc()}
            log(traceback.format_exc())
        results.setdefault("seconds", {})[section] = round(time.monotonic() - t0, 1)
    results["seconds"]["total"] = round(time.monotonic() - t_all, 1)
    print(table(results))
    print(f"({mode} run, {results['seconds']['total']:.0f} s; {results['machine']['cpus']} CPUs, load average at "
          f"start {', '.join(f'{x:.2f}' for x in results['machine']['load_avg_at_start'] or [])})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"results written to {out}")
    if snapshot is not None:
        import shutil
        shutil.rmtree(snapshot, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
