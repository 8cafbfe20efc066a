"""How well the classifier reads stories: the figures `refund-advisor eval` prints.

    evaluate(records, mode, model=None) -> Report
    Report.format() -> the printed table

For labelled records (dialogs.corpus.Record): per-category precision, recall and F1, the
confusion matrix, accuracy and macro-F1, the withdrawal-scam recall and precision (missing a
scam costs the most; calling a bank a scam is a harm of its own), and the story-prefill
precision: of the stories that answer the intake's problem question on their own (the engine
does that only when the classifier is sure), how many answer it right.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from dialogs.classifier import classify
from dialogs.corpus import Record
from dialogs.extract import story_choice
from dialogs.graph import Graph, load
from dialogs.model import CATEGORIES
from dialogs.ngram_model import NgramModel

SCAM = "withdrawal_scam"


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Report:
    mode: str
    gold: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    prefilled: int = 0           # stories that answered the problem question on their own
    prefilled_right: int = 0

    @property
    def per_category(self) -> dict[str, Scores]:
        out = {}
        for c in CATEGORIES:
            tp = sum(1 for g, p in zip(self.gold, self.predicted) if g == c and p == c)
            predicted = sum(1 for p in self.predicted if p == c)
            support = sum(1 for g in self.gold if g == c)
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out[c] = Scores(precision, recall, f1, support)
        return out

    @property
    def macro_f1(self) -> float:
        """The mean F1 over the categories that occur in the gold labels."""
        scores = [s.f1 for s in self.per_category.values() if s.support]
        return sum(scores) / len(scores) if scores else 0.0

    @property
    def accuracy(self) -> float:
        return sum(g == p for g, p in zip(self.gold, self.predicted)) / len(self.gold) if self.gold else 0.0

    @property
    def prefill_precision(self) -> float | None:
        return self.prefilled_right / self.prefilled if self.prefilled else None

    @property
    def prefill_coverage(self) -> float:
        return self.prefilled / len(self.gold) if self.gold else 0.0

    def confusion(self) -> dict[str, dict[str, int]]:
        table = {g: {p: 0 for p in CATEGORIES} for g in CATEGORIES}
        for g, p in zip(self.gold, self.predicted):
            table[g][p] += 1
        return table

    def figures(self) -> dict[str, float | int | None]:
        """The headline figures, as recorded in the repository and compared by CI."""
        scam = self.per_category[SCAM]
        prefill = self.prefill_precision
        return {
            "texts": len(self.gold),
            "macro_f1": round(self.macro_f1, 4),
            "accuracy": round(self.accuracy, 4),
            "scam_recall": round(scam.recall, 4),
            "scam_precision": round(scam.precision, 4),
            "prefill_precision": None if prefill is None else round(prefill, 4),
            "prefill_coverage": round(self.prefill_coverage, 4),
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            **self.figures(),
            "per_category": {c: vars(s) for c, s in self.per_category.items()},
            "confusion": self.confusion(),
        }

    def format(self) -> str:
        short = {c: c[:6] for c in CATEGORIES}
        short.update({"withdrawal_scam": "scam", "maintenance_stalling": "stall", "non_delivery": "nondel",
                      "unauthorized_or_subscription": "unauth", "changed_mind": "mind"})
        lines = [f"mode: {self.mode}   texts: {len(self.gold)}",
                 f"{'category':<30}{'precision':>10}{'recall':>8}{'F1':>8}{'texts':>7}"]
        for c, s in self.per_category.items():
            lines.append(f"{c:<30}{s.precision:>10.3f}{s.recall:>8.3f}{s.f1:>8.3f}{s.support:>7}")
        f = self.figures()
        prefill = "n/a" if f["prefill_precision"] is None else f"{f['prefill_precision']:.3f}"
        lines += [
            f"macro-F1 {self.macro_f1:.3f}   accuracy {self.accuracy:.3f}   "
            f"withdrawal-scam recall {f['scam_recall']:.3f} precision {f['scam_precision']:.3f}",
            f"story prefill: precision {prefill}, answered {self.prefilled} of {len(self.gold)} "
            f"({self.prefill_coverage:.0%})",
            "confusion (rows: label, columns: classified as):",
            " " * 8 + "".join(f"{short[c]:>7}" for c in CATEGORIES),
        ]
        for g, row in self.confusion().items():
            lines.append(f"{short[g]:<8}" + "".join(f"{row[p]:>7}" for p in CATEGORIES))
        return "\n".join(lines)


def evaluate(records: Iterable[Record], mode: str = "both", model: NgramModel | None = None,
             graph: Graph | None = None) -> Report:
    """Classify each record's text alone (no answers), as a story told in one message."""
    graph = graph or load()
    report = Report(mode)
    for record in records:
        result = classify({}, record.text, mode=mode, model=model)
        report.gold.append(record.label)
        report.predicted.append(result.category)
        if mode == "both":
            option = story_choice(graph, "problem", {}, record.text, model=model)
            if option is not None:
                report.prefilled += 1
                chosen = graph["problem"].option(option)
                report.prefilled_right += chosen is not None and chosen.category == record.label
    return report


def mean_figures(reports: Sequence[Report]) -> Mapping[str, float]:
    """The mean of each headline figure over several reports (cross-validation folds)."""
    keys = ("macro_f1", "accuracy", "scam_recall", "scam_precision", "prefill_precision")
    out = {}
    for key in keys:
        values = [value for r in reports if (value := r.figures()[key]) is not None]
        out[key] = round(sum(values) / len(values), 4) if values else 0.0
    return out
