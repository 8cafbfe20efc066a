"""Reading typed answers: clean text, match it to an option, find known phrases in a story."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Iterable

from dialogs.graph import Node

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_PUNCT_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def clean(text: str) -> str:
    """What we keep of a user's text: control and invisible characters removed, line breaks kept."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.strip()


def normalize(text: str) -> str:
    """A comparable form: NFKC (full-width to half-width), lower case, no apostrophes, edges trimmed."""
    text = unicodedata.normalize("NFKC", clean(text)).lower().replace("'", "").replace("\u2019", "")
    text = _SPACES.sub(" ", text)
    return _PUNCT_EDGES.sub("", text)


@lru_cache(maxsize=4096)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    norm = normalize(phrase)
    body = re.escape(norm).replace(r"\ ", r"\s+")
    if _CJK.search(norm):
        return re.compile(body)
    # Latin phrases match whole words only: "us" must not match "business".
    return re.compile(rf"(?<![\w]){body}(?![\w])")


@lru_cache(maxsize=1024)
def _any_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    # One search over all phrases first: most texts name none of a list's phrases.
    bodies = [_phrase_pattern(p).pattern for p in phrases if p]
    return re.compile("|".join(f"(?:{b})" for b in bodies)) if bodies else None


def find_phrases(text: str, phrases: Iterable[str], normalized: bool = False) -> list[str]:
    """The phrases (as declared) that occur in the text (already `normalize`d if `normalized`)."""
    norm = text if normalized else normalize(text)
    phrases = tuple(phrases)
    combined = _any_pattern(phrases)
    if combined is None or not combined.search(norm):
        return []
    return [p for p in phrases if p and _phrase_pattern(p).search(norm)]


def phrase_spans(norm_text: str, phrases: Iterable[str]) -> list[tuple[int, int]]:
    """Where the phrases occur in an already normalized text, as (start, end) pairs."""
    return [m.span() for p in phrases if p for m in _phrase_pattern(p).finditer(norm_text)]


@lru_cache(maxsize=1024)
def _word_set(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(normalize(w) for w in words)


def match_words(text: str, words: Iterable[str]) -> bool:
    norm = normalize(text)
    return bool(norm) and norm in _word_set(tuple(words))


def match_choice(node: Node, text: str) -> str | None:
    """The option a typed answer means: its number, one of its words, or one unambiguous phrase."""
    norm = normalize(text)
    if not norm:
        return None
    number = norm.rstrip(".)")
    if number.isdigit() and 1 <= int(number) <= len(node.options):
        return node.options[int(number) - 1].id
    for option in node.options:
        if match_words(norm, option.words) or norm == normalize(option.id):
            return option.id
    return unique_option(node, norm)


def unique_option(node: Node, text: str) -> str | None:
    """The one option whose phrases occur in the text; a phrase inside a longer hit does not count
    ("card" in "debit card"). Several named: the node's `prefer` order decides, else None."""
    norm = normalize(text)
    hits = [(o.id, normalize(p)) for o in node.options for p in find_phrases(norm, o.story + o.words, True)]
    kept = {oid for oid, p in hits if not any(p != q and p in q for _, q in hits)}
    if len(kept) > 1:
        kept = {next(o for o in node.prefer if o in kept)} if kept & set(node.prefer) else kept
    return kept.pop() if len(kept) == 1 else None


def match_yesno(words: dict, text: str) -> bool | None:
    if match_words(text, words.get("yes", ())):
        return True
    if match_words(text, words.get("no", ())):
        return False
    return None
