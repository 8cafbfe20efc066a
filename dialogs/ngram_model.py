"""The learned half of the classifier: a linear model over the n-grams of a story.

    MODEL.probabilities(text) -> {category: probability}, summing to 1
    MODEL.evidence(text, category, n) -> the n features that speak most for the category

The weights are `ngram_model.json`, made by `refund-advisor train` from corpus/narratives.jsonl
(see bot/train.py): for each feature its idf and one weight per category, an intercept per
category and a temperature that calibrates the probabilities. A text becomes the tf-idf vector
of its known features (1 + log count, times idf, unit length), each category's score is the
dot product with its weights plus its intercept, and the probabilities are the softmax of the
scores divided by the temperature. Plain Python: a story has a few hundred features, so a dict
look-up each is well under a millisecond, and the bot needs no numerical library to run.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from dialogs.textfeatures import ngrams

MODEL_PATH = Path(__file__).with_name("ngram_model.json")
FORMAT = 1


@dataclass(frozen=True, eq=False)      # hashed by identity: one model, one cache key
class NgramModel:
    categories: tuple[str, ...]
    intercept: tuple[float, ...]
    weights: Mapping[str, tuple[float, ...]]     # feature -> (idf, one weight per category)
    temperature: float = 1.0
    meta: Mapping[str, Any] | None = None        # how it was made: corpus digest, settings

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NgramModel":
        if data.get("format") != FORMAT:
            raise ValueError(f"model format {data.get('format')!r}, expected {FORMAT}")
        categories = tuple(str(c) for c in data["categories"])
        width = len(categories) + 1
        weights = {str(f): tuple(float(x) for x in row) for f, row in data["features"].items()}
        odd = [f for f, row in weights.items() if len(row) != width]
        if odd:
            raise ValueError(f"model: features with a wrong number of weights: {odd[:3]}")
        intercept = tuple(float(x) for x in data["intercept"])
        if len(intercept) != len(categories):
            raise ValueError("model: one intercept per category expected")
        return cls(categories, intercept, weights, float(data.get("temperature", 1.0)),
                   {k: v for k, v in data.items() if k not in ("features", "intercept", "categories")})

    def vector(self, text: str) -> dict[str, float]:
        """The text's tf-idf vector over the model's features, of unit length."""
        return _vector(self, text)

    def scores(self, text: str) -> list[float]:
        vec = self.vector(text)
        rows = [self.weights[f] for f in vec]
        values = list(vec.values())
        return [b + sum(v * row[k] for v, row in zip(values, rows))
                for k, b in enumerate(self.intercept, start=1)]

    def probabilities(self, text: str) -> dict[str, float]:
        return dict(zip(self.categories, softmax([s / self.temperature for s in self.scores(text)])))

    def evidence(self, text: str, category: str, n: int = 5) -> list[tuple[str, float]]:
        """The features of the text that raise `category` most against the average category."""
        k = self.categories.index(category)
        size = len(self.categories)
        found = []
        for feature, value in self.vector(text).items():
            row = self.weights[feature]
            lift = value * (row[k + 1] - sum(row[1:]) / size)
            if lift > 0:
                found.append((feature, lift))
        found.sort(key=lambda fl: (-fl[1], fl[0]))
        return found[:n]


@lru_cache(maxsize=64)
def _vector(model: NgramModel, text: str) -> dict[str, float]:
    # Cached: the intake classifies the same story several times a turn (the probabilities, then
    # the quotes). Callers only read the result.
    vec: dict[str, float] = {}
    weights = model.weights
    for feature, count in ngrams(text).items():
        row = weights.get(feature)
        if row is not None:
            vec[feature] = (1.0 + math.log(count)) * row[0]
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {f: v / norm for f, v in vec.items()} if norm else {}


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def load_model(path: Path = MODEL_PATH) -> NgramModel | None:
    """The shipped model, or None when there is none yet (the rules then work alone)."""
    if not path.exists():
        return None
    return NgramModel.from_dict(json.loads(path.read_text(encoding="utf-8")))


MODEL = load_model()
