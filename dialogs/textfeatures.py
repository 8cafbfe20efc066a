"""What the learned classifier reads in a text: n-grams of a normalised form.

    model_text(text) -> the normalised form (NFKC, Simplified characters, lower case, digits as 0)
    ngrams(text)     -> {feature: count}

Chinese is read as runs of characters (1- and 2-grams of each run: no word segmenter is needed,
and a typo costs one n-gram, not the word); other scripts as words (1- and 2-grams) and the
4-character pieces of each word, which survive typos and word endings ("refund", "refunded",
"refnd"). Chosen by 5-fold cross-validation on the corpus's training split: Chinese 3-grams and
English 3- and 5-character pieces added nothing to macro-F1 and tripled the features of a long
story (bench/README.md). The same code serves training (`bot/train.py`) and classification
(`dialogs/ngram_model.py`), so the two cannot drift apart.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

from dialogs.script import to_simplified

_REDACTED = re.compile(r"x{2,}|\{\$|\}")      # the complaint databases' XXXX and {$1.00} marks
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
CJK_ORDERS = (1, 2)
CHAR_ORDERS = (4,)


def model_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text).lower().replace("\u2019", "'")
    text = _REDACTED.sub(" ", text)
    return _DIGITS.sub("0", text)


def ngrams(text: str) -> Counter[str]:
    """Every feature of the text with its count (the text is normalised here)."""
    return _ngrams(model_text(text))


@lru_cache(maxsize=256)
def _ngrams(norm: str) -> Counter[str]:
    # Cached: one intake classifies the same story several times. Callers only read the result.
    found: Counter[str] = Counter()
    for run in _CJK_RUN.findall(norm):
        for n in CJK_ORDERS:
            found.update("z:" + run[i:i + n] for i in range(len(run) - n + 1))
    words = _WORD.findall(norm)
    found.update("w:" + w for w in words)
    found.update("b:" + a + " " + b for a, b in zip(words, words[1:]))
    for word, times in Counter(words).items():
        padded = f"<{word}>"
        for n in CHAR_ORDERS:
            for i in range(len(padded) - n + 1):
                found["g:" + padded[i:i + n]] += times
    return found
