"""Finding declared phrases (option words, story cues, sellers) in a `normalize`d text.

A phrase matches where its normalized form occurs; a phrase with a Chinese character matches
anywhere, any other phrase as whole words only ("us" is not in "business").

The intake declares about a thousand phrases, and a story used to be searched once for each
of them. A `PhraseSet` files its phrases under their first two characters, so a text is only
checked for the phrases whose opening pair it contains (`grams`): a handful, not a thousand.
"""
from __future__ import annotations

import re
from functools import lru_cache
from itertools import chain
from typing import Any, Iterable

from dialogs.text import normalize

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=4096)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    norm = normalize(phrase)
    body = re.escape(norm).replace(r"\ ", r"\s+")
    if _CJK.search(norm):
        return re.compile(body)
    return re.compile(rf"(?<![\w]){body}(?![\w])")


def grams(norm: str) -> frozenset[str]:
    """The characters and the pairs of neighbouring characters of a normalized text."""
    return frozenset(chain(norm, map(str.__add__, norm, norm[1:])))


class PhraseSet:
    """A tuple of phrases, filed for look-ups in many texts. Answers are indices into `phrases`,
    in declaration order, as the phrases were searched one by one."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases = tuple(phrases)
        self.norms = tuple(normalize(p) if p else "" for p in self.phrases)
        # In normalized text white space is always one plain space, so for a phrase without word
        # edges to check, "occurs as a substring" is the whole test and no regex is needed.
        self._literal = tuple(bool(_CJK.search(n)) for n in self.norms)
        filed: dict[str, list[int]] = {}
        always: list[int] = []
        for i, (phrase, norm) in enumerate(zip(self.phrases, self.norms)):
            if phrase and norm:
                filed.setdefault(norm[:2], []).append(i)
            elif phrase:   # nothing left after normalizing: only its pattern can say
                always.append(i)
        self._filed = {key: tuple(ids) for key, ids in filed.items()}
        self._keys = frozenset(filed)
        self._always = tuple(always)

    def _candidates(self, norm: str, text_grams: frozenset[str] | None) -> list[int]:
        keys = self._keys & (grams(norm) if text_grams is None else text_grams)
        if not keys:
            return list(self._always)
        return sorted(chain(self._always, *(self._filed[k] for k in keys)))

    def find(self, norm: str, text_grams: frozenset[str] | None = None) -> list[int]:
        """The phrases that occur in `norm`. `text_grams`: `grams` of `norm` or of a text it is part of."""
        hits = []
        for i in self._candidates(norm, text_grams):
            if self.norms[i] in norm and (self._literal[i] or phrase_pattern(self.phrases[i]).search(norm)):
                hits.append(i)
        return hits

    def spans(self, norm: str, text_grams: frozenset[str] | None = None) -> list[tuple[int, int]]:
        """Where the phrases occur in `norm`: phrase by phrase, then left to right."""
        return [span for _, span in self.located(norm, text_grams)]

    def located(self, norm: str, text_grams: frozenset[str] | None = None) -> list[tuple[int, tuple[int, int]]]:
        """(phrase index, span) of every occurrence in `norm`: phrase by phrase, then left to right."""
        return [(i, m.span()) for i in self._candidates(norm, text_grams) if self.norms[i] in norm
                for m in phrase_pattern(self.phrases[i]).finditer(norm)]


@lru_cache(maxsize=256)
def phrase_set(phrases: tuple[str, ...]) -> PhraseSet:
    return PhraseSet(phrases)


class OptionIndex:
    """A choice question's options, compiled once: their words by normalized form (the first
    option naming a word has it), and the story phrases and words of all of them in one set."""

    def __init__(self, options: Iterable[Any]) -> None:
        options = tuple(options)
        self.ids = tuple(o.id for o in options)
        self.owners = tuple(o.id for o in options for _ in o.story + o.words)
        self.phrases = PhraseSet(p for o in options for p in o.story + o.words)
        norms = self.phrases.norms
        # For each phrase, the other phrases it is part of ("card" of "debit card"): a hit inside
        # a longer hit does not count, and this is asked of every hit of every story.
        self.within = tuple(frozenset(j for j, longer in enumerate(norms) if norm != longer and norm in longer)
                            for norm in norms)
        self.words: dict[str, str] = {}
        for option in options:
            for word in option.words:
                self.words.setdefault(normalize(word), option.id)
            self.words.setdefault(normalize(option.id), option.id)
