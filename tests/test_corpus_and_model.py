"""The narratives corpus, the shipped weights and the recorded figures (issue 11): the corpus is
what its README promises, the weights are the ones `refund-advisor train` makes from it, and the
held-out figures are no lower than those recorded in corpus/figures.json (a drop fails CI)."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.corpus_file import CORPUS_PATH, FIGURES_PATH, MODES, digest, held_out_figures, load_corpus
from bot.train import fit
from dialogs.model import CATEGORIES
from dialogs.ngram_model import MODEL, MODEL_PATH, NgramModel

ROOT = Path(__file__).resolve().parent.parent
RECORDS = load_corpus(CORPUS_PATH)
# Figures are floats rounded to 4 places; a retrain on another platform's BLAS may move the
# last digits, never more.
TOLERANCE = 0.002


def test_the_corpus_is_what_its_readme_promises():
    assert len(RECORDS) >= 1000
    by_label = Counter(r.label for r in RECORDS)
    assert set(by_label) == set(CATEGORIES) and min(by_label.values()) >= 80, by_label
    assert sum(r.script == "hant" for r in RECORDS) >= 100
    assert {r.lang for r in RECORDS} == {"zh", "en"}
    public = [r for r in RECORDS if r.origin == "public"]
    assert len(public) * 2 >= len(RECORDS), "at least half from real public sources"
    assert all(r.source and r.licence for r in RECORDS), "every record says where it comes from and under what terms"
    assert all(r.source == "refund-advisor" for r in RECORDS if r.origin == "written")
    held = sum(r.held_out for r in RECORDS)
    assert 0.15 < held / len(RECORDS) < 0.25


def test_the_shipped_weights_are_what_train_makes_from_the_corpus():
    assert MODEL is not None, "dialogs/ngram_model.json is missing: run refund-advisor train"
    training = [r for r in RECORDS if not r.held_out]
    assert MODEL.meta and MODEL.meta["trained_on"]["digest"] == digest(training), \
        "the corpus changed since the weights were made: run refund-advisor train and commit both"
    fresh = NgramModel.from_dict(fit(training))
    assert fresh.temperature == MODEL.temperature
    assert set(fresh.features) == set(MODEL.features)
    for record in [r for r in RECORDS if r.held_out][:150]:
        shipped, made = MODEL.probabilities(record.text), fresh.probabilities(record.text)
        assert max(abs(shipped[c] - made[c]) for c in CATEGORIES) < 0.01, record.id


def test_held_out_figures_are_no_lower_than_recorded():
    recorded = json.loads(FIGURES_PATH.read_text("utf-8"))
    assert recorded["corpus"]["records"] == len(RECORDS), "figures recorded for another corpus: run train"
    now = held_out_figures(RECORDS, MODEL)
    for mode in MODES:
        for key, value in recorded["held_out"][mode].items():
            if isinstance(value, float):
                assert now[mode][key] >= value - TOLERANCE, f"{mode} {key}: {now[mode][key]} < recorded {value}"


def test_the_weights_file_stays_small():
    assert MODEL_PATH.stat().st_size < 4_000_000


# --------------------------------------------------------------------------- the commands

def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_eval_prints_the_figures_of_a_users_own_file(tmp_path):
    mine = tmp_path / "mine.jsonl"
    mine.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"text": "客服让我先交20%的解冻金才能提现", "label": "withdrawal_scam"},
        {"text": "The headphones arrived broken, the left side has no sound.", "label": "defect"},
        {"text": "I was charged again after I cancelled my subscription.", "label": "unauthorized_or_subscription"},
    ]) + "\n", encoding="utf-8")
    done = cli("eval", str(mine), "--mode", "all")
    assert done.returncode == 0, done.stderr
    assert "3 stories (all)" in done.stdout
    for mode in MODES:
        assert f"mode: {mode}" in done.stdout
    assert "withdrawal-scam recall" in done.stdout and "confusion" in done.stdout
    as_json = json.loads(cli("eval", str(mine), "--json").stdout)
    assert as_json["both"]["texts"] == 3 and as_json["both"]["per_category"]["withdrawal_scam"]["recall"] == 1.0


def test_eval_on_the_corpus_uses_its_held_out_split():
    done = cli("eval", "corpus/narratives.jsonl", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)["both"]
    assert figures["texts"] == sum(r.held_out for r in RECORDS)
    recorded = json.loads(FIGURES_PATH.read_text("utf-8"))["held_out"]["both"]
    assert abs(figures["macro_f1"] - recorded["macro_f1"]) <= TOLERANCE


@pytest.mark.parametrize("content, message", [
    ("not json\n", "line 1: not JSON"),
    ('{"text": "hello", "label": "weather"}\n', "line 1: 'label' must be one of"),
    ('{"label": "defect"}\n', "line 1: 'text' must be a non-empty string"),
    ("", "holds no records"),
])
def test_eval_of_a_bad_file_says_which_line_and_why(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    done = cli("eval", str(bad))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_eval_of_a_missing_file_is_one_line():
    done = cli("eval", "no/such/file.jsonl")
    assert done.returncode == 2 and "cannot read" in done.stderr and "Traceback" not in done.stderr


def test_train_writes_weights_elsewhere_without_touching_the_recorded_figures(tmp_path):
    small = tmp_path / "small.jsonl"
    lines = [json.dumps({"text": r.text, "label": r.label}, ensure_ascii=False) for r in RECORDS[::6]]
    small.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = FIGURES_PATH.read_bytes()
    out = tmp_path / "model.json"
    done = cli("train", "--corpus", str(small), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "trained on" in done.stdout
    model = NgramModel.from_dict(json.loads(out.read_text("utf-8")))
    assert model.categories == CATEGORIES
    assert FIGURES_PATH.read_bytes() == before
