"""Engine and classifier throughput: full intakes through dialogs.engine.step on one core."""
from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


from dialogs import engine
from dialogs.classifier import classify
from dialogs.engine import Press, Text

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=8)))

# Three intakes: buttons only, typing only, and a whole story told at once.
INTAKES = (
    [Press("CN"), Press("software"), Text("某软件公司"), Press("alipay"), Text("299元"), Text("2026-11-10"),
     Press("defect"), Text("2026-11-12"), Press("yes"), Text("2026-11-13"), Press("maintenance"),
     Text("它每次打开都闪退"), Press("_yes")],
    [Text("UK"), Text("physical goods"), Text("Argos"), Text("debit card"), Text("£30"), Text("5 Nov"),
     Text("it is broken"), Text("yesterday"), Text("no"), Text("The kettle leaks from the base."), Text("yes")],
    [Text("我在中国，10月3日在某某理财平台充值了1.2万，用银行转账付的。11月5日开始提现一直说系统维护，"
          "客服说要先交解冻金才能出款。"), Text("2026-11-06"), Text("跳过"), Text("是的")],
)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _forget_stories() -> None:
    """Each intake as if told for the first time: the benchmark replays the same stories, and the
    classifier remembers the last few it read (a real intake repeats its own story, not another
    user's). Caches a revision does not have are skipped (`--at` an older one)."""
    for module, name, how in (("dialogs.classifier", "_CACHE", "clear"), ("dialogs.ngram_model", "_vector", "cache_clear"),
                              ("dialogs.textfeatures", "_ngrams", "cache_clear"),
                              ("dialogs.phrase_rules", "_phrase_matches", "cache_clear")):
        cache = getattr(sys.modules.get(module), name, None)
        if cache is not None:
            getattr(cache, how)()


def bench_steps(seconds: float) -> dict:
    for events in INTAKES:   # warm up: rules and graph are loaded once per process, not per step
        state = engine.start()
        for event in events:
            state = engine.step(state, event, NOW).state
    latencies: list[float] = []
    steps = intakes = 0
    # CPU time as well as wall time: on a shared machine the wall clock also counts other
    # processes' turns, the CPU time only this one's (steadier from run to run).
    cpu0 = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for events in INTAKES:
            _forget_stories()
            state = engine.start()
            for event in events:
                t0 = time.perf_counter()
                state = engine.step(state, event, NOW).state
                latencies.append(time.perf_counter() - t0)
            assert state.node == "done", state.node
            steps += len(events)
            intakes += 1
    cpu = time.process_time() - cpu0
    total = sum(latencies)
    return {"steps": steps, "intakes": intakes, "steps_per_s": steps / total, "cpu_steps_per_s": steps / cpu,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "mean_ms": statistics.fmean(latencies) * 1000}


def bench_classifier(seconds: float) -> dict:
    """The classifier on the corpus's stories (corpus/narratives.jsonl, rules and model combined, as
    the intake uses it), each timed on its own: narratives per second and the per-story p50/p99."""
    root = Path(__file__).parents[1]
    corpus = [json.loads(line)["text"] for line in
              (root / "corpus" / "narratives.jsonl").read_text("utf-8").splitlines() if line.strip()]
    classify({}, corpus[0])
    latencies: list[float] = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for text in corpus:
            start = time.perf_counter()
            classify({}, text + " ")      # a new text each round: the n-gram cache is not what is measured
            latencies.append(time.perf_counter() - start)
    done = len(latencies)
    return {"narratives": done, "narratives_per_s": done / sum(latencies),
            "cpu_narratives_per_s": done / (time.process_time() - cpu0),
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}
