"""Finding the intake's phrases in what users type: the filed look-up must find exactly what
searching every phrase one by one finds."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dialogs.answers import find_phrases, normalize, phrase_spans
from dialogs.graph import load
from dialogs.phrases import phrase_pattern

GRAPH = load()
LISTS = [o.story + o.words for n in GRAPH.nodes.values() for o in n.options]
LISTS += list(GRAPH.story_cues.values()) + [GRAPH.merchants]
TEXTS = [n["text"] for n in yaml.safe_load((Path(__file__).parent / "narratives.yaml").read_text("utf-8"))]
TEXTS += ["I paid with my debit card on Amazon", "business", "Paid by PayPal\n\nthen   nothing", "在淘宝 买的"]


def test_every_phrase_list_finds_what_a_search_per_phrase_finds():
    for text in TEXTS:
        norm = normalize(text)
        for phrases in LISTS:
            one_by_one = [p for p in phrases if p and phrase_pattern(p).search(norm)]
            assert find_phrases(text, phrases) == one_by_one, (text, phrases)
            spans = [m.span() for p in phrases if p for m in phrase_pattern(p).finditer(norm)]
            assert phrase_spans(norm, phrases) == spans


@pytest.mark.parametrize("text, phrases, found", [
    ("I live in the US", ("us",), ["us"]),
    ("my business account", ("us",), []),                  # latin phrases are whole words
    ("在淘宝上买的", ("淘宝",), ["淘宝"]),                     # Chinese phrases match inside text
    ("Debit\n  Card payment", ("debit card", "card"), ["debit card", "card"]),
    ("", ("card",), []),
])
def test_phrase_examples(text, phrases, found):
    assert find_phrases(text, phrases) == found
