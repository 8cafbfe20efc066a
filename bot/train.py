"""`refund-advisor train` and `refund-advisor eval --cv`: fit the story classifier on the corpus,
and cross-validate it.

    fit(records) -> the model as a dict (what dialogs/ngram_model.json holds)
    train(corpus, out, figures) -> fits on the corpus's training split, writes the weights and
                                   the held-out figures of the three modes
    cross_validate(records, k) -> one report per mode, over k folds of the training split

The learned half is a multinomial logistic regression (scikit-learn) over the tf-idf of the
n-grams that dialogs/textfeatures.py reads; classes are weighted by their size, so a rare
situation (a withdrawal scam told in English) counts as much as a common one. Its probabilities
are calibrated by one temperature, chosen on out-of-fold predictions. Everything is
deterministic: the same corpus gives the same file, which CI checks.

numpy, scipy and scikit-learn are needed here only (`pip install -e '.[train]'`; only the
commands import this module); the bot reads the weights as plain JSON.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import sklearn
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

from bot.corpus_file import (CORPUS_PATH, FIGURES_PATH, MODES, CorpusError, digest, held_out_figures, load_corpus,
                             write_json)
from dialogs.corpus import Record, fold
from dialogs.evaluation import Report, evaluate, mean_figures
from dialogs.model import CATEGORIES
from dialogs.ngram_model import FORMAT, MODEL_PATH, NgramModel
from dialogs.textfeatures import ngrams


# Chosen by 5-fold cross-validation on the training split (bench/README.md, "The story classifier").
SETTINGS: Mapping[str, Any] = {"C": 10.0, "min_df": 2, "folds": 5, "digits": 4}


def _design(docs: Sequence[Counter[str]], vocab: Mapping[str, int], idf: Sequence[float]) -> Any:
    rows, cols, vals = [], [], []
    for i, counts in enumerate(docs):
        entries = [(vocab[f], (1.0 + math.log(n)) * idf[vocab[f]]) for f, n in counts.items() if f in vocab]
        norm = math.sqrt(sum(v * v for _, v in entries)) or 1.0
        for j, v in entries:
            rows.append(i)
            cols.append(j)
            vals.append(v / norm)
    return csr_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)))


def _fit_raw(records: Sequence[Record], C: float, min_df: int) -> tuple[list[str], list[float], Any, list[float]]:
    """Vocabulary, idf, the fitted coefficients (categories x features) and intercepts."""
    docs = [ngrams(r.text) for r in records]
    df: Counter[str] = Counter()
    for counts in docs:
        df.update(counts.keys())
    features = sorted(f for f, n in df.items() if n >= min_df)
    vocab = {f: i for i, f in enumerate(features)}
    n = len(docs)
    idf = [math.log((1 + n) / (1 + df[f])) + 1.0 for f in features]
    labels = [CATEGORIES.index(r.label) for r in records]
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, tol=1e-6)
    clf.fit(_design(docs, vocab, idf), labels)
    if len(clf.classes_) != len(CATEGORIES):
        missing = sorted(set(CATEGORIES) - {CATEGORIES[int(c)] for c in clf.classes_})
        raise CorpusError(f"no training records labelled {', '.join(missing)}")
    coef = [list(row) for row in clf.coef_]
    intercept = [float(x) for x in clf.intercept_]
    return features, idf, coef, intercept


def _as_model(features: list[str], idf: list[float], coef: Any, intercept: list[float],
              temperature: float, digits: int, meta: Mapping[str, Any]) -> dict[str, Any]:
    # Every feature stays, weights of zero included: each counts in the length of a text's vector.
    rows = {f: [round(idf[j], digits), *(round(float(coef[k][j]), digits) for k in range(len(CATEGORIES)))]
            for j, f in enumerate(features)}
    return {"format": FORMAT, **meta, "categories": list(CATEGORIES),
            "intercept": [round(x, digits) for x in intercept], "temperature": round(temperature, 3),
            "features": rows}


def _nll(scores: Sequence[Sequence[float]], labels: Sequence[int], t: float) -> float:
    total = 0.0
    for s, y in zip(scores, labels):
        scaled = [x / t for x in s]
        top = max(scaled)
        total -= scaled[y] - top - math.log(sum(math.exp(x - top) for x in scaled))
    return total / len(labels)


def _temperature(records: Sequence[Record], C: float, min_df: int, k: int, digits: int) -> float:
    """The temperature that makes out-of-fold probabilities honest (least negative log-likelihood)."""
    scores: list[list[float]] = []
    labels: list[int] = []
    for held in range(k):
        train = [r for r in records if fold(r.text, k) != held]
        test = [r for r in records if fold(r.text, k) == held]
        if not train or not test:
            continue
        model = NgramModel.from_dict(_as_model(*_fit_raw(train, C, min_df), 1.0, digits, {}))
        scores.extend(model.scores(r.text) for r in test)
        labels.extend(model.categories.index(r.label) for r in test)
    if not labels:
        return 1.0
    grid = [round(0.3 + 0.05 * i, 2) for i in range(55)]      # 0.30 .. 3.00
    return min(grid, key=lambda t: (_nll(scores, labels, t), t))


def fit(records: Sequence[Record], settings: Mapping[str, Any] = SETTINGS) -> dict[str, Any]:
    """The model (as the JSON dict) fitted on `records`."""
    C, min_df, k, digits = settings["C"], settings["min_df"], settings["folds"], settings["digits"]
    temperature = _temperature(records, C, min_df, k, digits)
    meta = {"trained_on": {"records": len(records), "digest": digest(records)},
            "settings": dict(settings), "made_with": f"scikit-learn {sklearn.__version__}"}
    return _as_model(*_fit_raw(records, C, min_df), temperature, digits, meta)


def train(corpus: Path = CORPUS_PATH, out: Path = MODEL_PATH, figures: Path | None = FIGURES_PATH) -> dict[str, Any]:
    """Fit on the corpus's training split, write the weights (and the held-out figures)."""
    # The repository's corpus must carry every field; anyone's own file needs text and label only.
    records = load_corpus(corpus, strict=corpus.resolve() == CORPUS_PATH)
    training = [r for r in records if not r.held_out]
    data = fit(training)
    write_json(out, data)
    result = {"corpus": {"records": len(records), "training": len(training),
                         "held_out": len(records) - len(training)},
              "held_out": held_out_figures(records, NgramModel.from_dict(data))}
    if figures is not None:
        write_json(figures, result)
    return result


def cross_validate(records: Sequence[Record], k: int = 5, modes: Sequence[str] = MODES,
                   settings: Mapping[str, Any] = SETTINGS) -> dict[str, list[Report]]:
    """k-fold cross-validation on the training split: one report per fold and mode."""
    training = [r for r in records if not r.held_out]
    reports: dict[str, list[Report]] = {m: [] for m in modes}
    for held in range(k):
        train_part = [r for r in training if fold(r.text, k) != held]
        test_part = [r for r in training if fold(r.text, k) == held]
        model = NgramModel.from_dict(fit(train_part, {**settings, "folds": 3}))
        for mode in modes:
            reports[mode].append(evaluate(test_part, mode, model))
    return reports


def cv_table(reports: Mapping[str, Sequence[Report]]) -> str:
    lines = [f"{'mode':<8}{'macro-F1':>10}{'accuracy':>10}{'scam R':>8}{'scam P':>8}{'prefill P':>11}"]
    for mode, folds in reports.items():
        m = mean_figures(folds)
        lines.append(f"{mode:<8}{m['macro_f1']:>10.3f}{m['accuracy']:>10.3f}{m['scam_recall']:>8.3f}"
                     f"{m['scam_precision']:>8.3f}{m['prefill_precision']:>11.3f}")
    return "\n".join(lines)
