"""Reading typed answers: clean text, match it to an option, find known phrases in a story."""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Mapping

from dialogs.graph import Node
from dialogs.phrases import grams, phrase_set
from dialogs.text import clean, normalize

__all__ = ["clean", "find_phrases", "grams", "match_choice", "match_words", "match_yesno", "normalize",
           "phrase_spans", "unique_option"]


def find_phrases(text: str, phrases: Iterable[str], normalized: bool = False,
                 text_grams: frozenset[str] | None = None) -> list[str]:
    """The phrases (as declared) that occur in the text (already `normalize`d if `normalized`;
    `text_grams`: its `grams`, when the caller looks up several lists in one text)."""
    norm = text if normalized else normalize(text)
    found = phrase_set(tuple(phrases))
    return [found.phrases[i] for i in found.find(norm, text_grams)]


def phrase_spans(norm_text: str, phrases: Iterable[str], text_grams: frozenset[str] | None = None) -> list[tuple[int, int]]:
    """Where the phrases occur in an already normalized text, as (start, end) pairs."""
    return phrase_set(tuple(phrases)).spans(norm_text, text_grams)


@lru_cache(maxsize=1024)
def _word_set(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize(w) for w in words)


def match_words(text: str, words: Iterable[str], normalized: bool = False) -> bool:
    norm = text if normalized else normalize(text)
    return bool(norm) and norm in _word_set(tuple(words))


def match_choice(node: Node, text: str, normalized: bool = False, order: tuple[str, ...] | None = None) -> str | None:
    """The option a typed answer means: its number (in `order`, the options as shown), one of its
    words, or one unambiguous phrase."""
    norm = text if normalized else normalize(text)
    if not norm:
        return None
    shown = order or node.index.ids
    number = norm.rstrip(".)")
    if number.isdigit() and 1 <= int(number) <= len(shown):
        return shown[int(number) - 1]
    option = node.index.words.get(norm)
    if option is not None:
        return option
    return unique_option(node, norm, normalized=True)


def unique_option(node: Node, text: str, normalized: bool = False,
                  text_grams: frozenset[str] | None = None) -> str | None:
    """The one option whose phrases occur in the text; a phrase inside a longer hit does not count
    ("card" in "debit card"). Several named: the node's `prefer` order decides, else None."""
    norm = text if normalized else normalize(text)
    index = node.index
    hits = index.phrases.find(norm, text_grams)
    kept = {index.owners[i] for i in hits if index.within[i].isdisjoint(hits)}
    if len(kept) > 1:
        kept = {next(o for o in node.prefer if o in kept)} if kept & set(node.prefer) else kept
    return kept.pop() if len(kept) == 1 else None


def match_yesno(words: Mapping[str, Iterable[str]], text: str, normalized: bool = False) -> bool | None:
    norm = text if normalized else normalize(text)
    if match_words(norm, words.get("yes", ()), True):
        return True
    if match_words(norm, words.get("no", ()), True):
        return False
    return None
