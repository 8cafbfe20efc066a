"""The learned half of the classifier: a linear model over the n-grams of a story.

    MODEL.probabilities(text) -> {category: probability}, summing to 1
    MODEL.evidence(text, category, n) -> the n features that speak most for the category

The weights are `ngram_model.json`, made by `refund-advisor train` from corpus/narratives.jsonl
(see bot/train.py): for each feature its idf and one weight per category, an intercept per
category and a temperature that calibrates the probabilities. A text becomes the tf-idf vector
of its known features (1 + log count, times idf, unit length), each category's score is the
dot product with its weights plus its intercept, and the probabilities are the softmax of the
scores divided by the temperature. The weights are read into numpy arrays (a gather and a dot
product per story), the only numerical library the bot needs.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from dialogs.textfeatures import ngrams

MODEL_PATH = Path(__file__).with_name("ngram_model.json")
FORMAT = 1


@dataclass(frozen=True, eq=False)      # hashed by identity: one model, one cache key
class NgramModel:
    categories: tuple[str, ...]
    intercept: tuple[float, ...]
    features: tuple[str, ...]                    # the n-grams it knows, in the order of the table's rows
    table: Any                                   # numpy array, a row per feature: its idf, one weight per category
    temperature: float = 1.0
    meta: Mapping[str, Any] | None = None        # how it was made: corpus digest, settings

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NgramModel":
        """The model from its JSON form. The weights go straight into one array: kept as Python
        floats they took some 20 MB of the bot's memory."""
        if data.get("format") != FORMAT:
            raise ValueError(f"model format {data.get('format')!r}, expected {FORMAT}")
        categories = tuple(str(c) for c in data["categories"])
        width = len(categories) + 1
        rows = data["features"]
        odd = [f for f, row in rows.items() if len(row) != width]
        if odd:
            raise ValueError(f"model: features with a wrong number of weights: {odd[:3]}")
        table = np.array(list(rows.values()), dtype=float).reshape(len(rows), width)
        intercept = tuple(float(x) for x in data["intercept"])
        if len(intercept) != len(categories):
            raise ValueError("model: one intercept per category expected")
        return cls(categories, intercept, tuple(str(f) for f in rows), table, float(data.get("temperature", 1.0)),
                   {k: v for k, v in data.items() if k not in ("features", "intercept", "categories")})

    @cached_property
    def _arrays(self) -> tuple[dict[str, int], Any, Any, Any]:
        """The row of each feature by name, the idf, the weights, and the weights less their mean
        over the categories (what `evidence` ranks by)."""
        index = {f: i for i, f in enumerate(self.features)}
        weights = self.table[:, 1:]
        return index, self.table[:, 0], weights, weights - weights.mean(axis=1, keepdims=True)

    def scores(self, text: str) -> list[float]:
        rows, values = _vector(self, text)
        weights = self._arrays[2]
        return [float(x) for x in np.asarray(self.intercept) + values @ weights[rows]]

    def probabilities(self, text: str) -> dict[str, float]:
        return dict(zip(self.categories, softmax([s / self.temperature for s in self.scores(text)])))

    def evidence(self, text: str, category: str, n: int = 5) -> list[tuple[str, float]]:
        """The features of the text that raise `category` most against the average category."""
        rows, values = _vector(self, text)
        if not len(rows):
            return []
        lifts = values * self._arrays[3][rows, self.categories.index(category)]
        names = self.features
        # The strongest few, then ties broken by name (a few more taken so a tie is not cut).
        order = np.argsort(-lifts, kind="stable")[: n * 4]
        found = [(names[int(rows[i])], float(lifts[i])) for i in order if lifts[i] > 0]
        found.sort(key=lambda fl: (-fl[1], fl[0]))
        return found[:n]


@lru_cache(maxsize=64)
def _vector(model: NgramModel, text: str) -> tuple[Any, Any]:
    """The rows of the text's known features and their tf-idf values, of unit length. Cached: the
    intake classifies the same story several times a turn (the probabilities, then the quotes);
    callers only read the arrays."""
    index, idf = model._arrays[0], model._arrays[1]
    rows: list[int] = []
    counts: list[int] = []
    for feature, count in ngrams(text).items():
        row = index.get(feature)
        if row is not None:
            rows.append(row)
            counts.append(count)
    if not rows:
        return np.zeros(0, dtype=np.intp), np.zeros(0)
    at = np.asarray(rows, dtype=np.intp)
    values = (1.0 + np.log(np.asarray(counts, dtype=float))) * idf[at]
    return at, values / np.sqrt(values @ values)


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def load_model(path: Path = MODEL_PATH) -> NgramModel | None:
    """The shipped model, or None when there is none yet (the rules then work alone)."""
    if not path.exists():
        return None
    with path.open(encoding="utf-8") as file:
        return NgramModel.from_dict(json.load(file))


MODEL = load_model()
