"""The situation classifier: which pattern a case follows, from the user's answers and words.

    classify(slots, text="", ignore=(), mode="both") -> Classification(category, confidence,
                                                        signals, probabilities)
    classify_lines(lines) -> one dict per non-empty line (the `refund-advisor classify` command)

`text` is the user's free text; when it is empty, `slots["story"]` is used. `ignore` names
answers that the story itself gave (the text already speaks for them). Pure and deterministic,
never raises on odd input.

Two halves, combined as written here and in `rules/categories.yaml` (settings.combine):
- the learned model (`dialogs/ngram_model.py`) reads the text and gives each category a
  probability p(c); it knows how real people word things;
- the phrase rules (`dialogs/phrase_rules.py`) score the text's known phrases and the user's
  answers, R(c) >= 0, and raise red flags.
Mode "both" (what the advisor uses): the probabilities are softmax(log p(c) + w * Rtext(c) +
a * Ranswers(c)), with w = `combine.rule_weight` for what the rules found in the words and
a = `combine.answer_weight` for the answers the user gave (a pressed button weighs more than a
guess from words); without text the model has nothing to say and R alone decides. A red flag (a
fee demanded before a payout, and the like) puts its category on top with at least
`combine.red_flag_floor`; no category is ever more than `confidence.max` sure; the model alone
(no rule or answer for it) calls a story a withdrawal scam only at `combine.scam_alone` or more,
else the next reading is given. Nothing found at all: `fallback` (category "other", low
confidence). The confidence is the top probability. Signals quote the rules' evidence for the
chosen category, or, when the rules found none, the user's words behind the model's strongest
features.
Modes "rules" (the rules alone, as before the model) and "model" (the model alone, answers
ignored) exist to measure each half (`refund-advisor eval`).
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from dialogs.model import CATEGORIES
from dialogs.ngram_model import MODEL, NgramModel, softmax
from dialogs.phrase_rules import RULES, RuleTally, Signal, rule_tally, text_of
from dialogs.script import same_length_simplified

__all__ = ["MODES", "Classification", "Signal", "classify", "classify_lines"]

MODES = ("both", "rules", "model")
SCAM = "withdrawal_scam"


@dataclass(frozen=True)
class _Combine:
    rule_weight: float
    answer_weight: float
    scam_alone: float
    red_flag_floor: float
    model_quotes: int


def _combine_settings() -> _Combine:
    spec = RULES.combine
    combine = _Combine(float(spec.get("rule_weight", 0.5)), float(spec.get("answer_weight", 1.5)),
                       float(spec.get("scam_alone", 0.6)),
                       float(spec.get("red_flag_floor", 0.95)),
                       int(spec.get("model_quotes", 3)))
    if not (combine.rule_weight >= 0 and combine.answer_weight >= 0 and 0.5 < combine.red_flag_floor < 1):
        raise ValueError("categories.yaml: settings.combine: rule_weight, answer_weight >= 0 and "
                         "0.5 < red_flag_floor < 1")
    return combine


COMBINE = _combine_settings()


@dataclass(frozen=True)
class Classification:
    category: str
    confidence: float
    signals: tuple[Signal, ...] = ()
    probabilities: Mapping[str, float] = field(default_factory=dict)   # every category, summing to ~1

    def ranked(self) -> list[tuple[str, float]]:
        """Categories from the most to the least likely (ties: the order of CATEGORIES)."""
        order = {c: i for i, c in enumerate(CATEGORIES)}
        return sorted(self.probabilities.items(), key=lambda cp: (-cp[1], order.get(cp[0], 99)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "confidence": self.confidence,
            "signals": [s.to_dict() for s in self.signals],
            "probabilities": dict(self.probabilities),
        }


_CACHE: dict[tuple[Any, ...], Classification] = {}
_CACHE_SIZE = 256


def classify(slots: Mapping[str, Any] | None, text: str = "", ignore: Iterable[str] = (),
             mode: str = "both", model: NgramModel | None = None) -> Classification:
    """Classify a case from its slots and the user's free text (or, without text, `slots['story']`).
    `model`: another model than the shipped one (cross-validation). Remembered for the last few
    cases: an intake asks again with the same answers (the clarifying question, then the advice);
    a Classification is immutable, and its probabilities are only read."""
    slots = slots if isinstance(slots, Mapping) else {}
    ignore = tuple(sorted(set(ignore)))
    # The same answers in another order: only a miss. A text that is not a string: by its repr.
    key = (repr(slots), text if isinstance(text, str) else repr(text), ignore, mode, model)
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        found = _CACHE[key] = _classify(slots, text, ignore, mode, model)
    return found


def _classify(slots: Mapping[str, Any], text: str, ignore: Iterable[str], mode: str,
              model: NgramModel | None) -> Classification:
    text = text_of(text) or text_of(slots.get("story"))
    text = text[: RULES.max_text]
    model = model or MODEL
    if mode == "rules" or (model is None and mode == "both"):
        return _rules_only(rule_tally(slots, text, ignore))
    if mode == "model":
        if model is None or not text.strip():
            return _fallback()
        probs = _capped(model.probabilities(text), RULES.max_confidence)
        category = _top(probs)
        return Classification(category, round(probs[category], 2), _model_signals(model, text, category),
                              _rounded(probs))
    if mode != "both":
        raise ValueError(f"unknown mode {mode!r}")
    assert model is not None   # "both" without a model was answered by the rules above

    tally = rule_tally(slots, text, ignore)
    has_text = bool(text.strip())
    if not has_text and not any(s > 0 for s in tally.scores.values()):
        return _fallback()
    logp = {c: math.log(max(p, 1e-12)) for c, p in model.probabilities(text).items()} if has_text else {}
    answered = tally.answer_scores()
    z = [logp.get(c, 0.0) + COMBINE.rule_weight * (tally.scores[c] - answered[c]) + COMBINE.answer_weight * answered[c]
         for c in CATEGORIES]
    probs = dict(zip(CATEGORIES, softmax(z)))
    if tally.red_flag:
        probs = _raised(probs, tally.red_flag, COMBINE.red_flag_floor)
    probs = _capped(probs, RULES.max_confidence)
    category = _top(probs)
    if category == SCAM and tally.scores[SCAM] <= 0 and probs[SCAM] < COMBINE.scam_alone:
        # The fraud advice (stop paying, police first) on the model's word alone, unsure: the
        # next reading is given instead (the scam still shows in the probabilities).
        category = _top({**probs, SCAM: -1.0})
    signals = tally.signals(category)
    if has_text and not any(s.source == "text" for s in signals):
        signals = signals + _model_signals(model, text, category)
    return Classification(category, round(probs[category], 2), signals, _rounded(probs))


def _rules_only(tally: RuleTally) -> Classification:
    best = tally.best()
    if best is None:
        return _fallback()
    category, confidence = best
    total = sum(s for s in tally.scores.values() if s > 0)
    probs = {c: (s / total if s > 0 else 0.0) for c, s in tally.scores.items()}
    return Classification(category, confidence, tally.signals(category), _rounded(probs))


def _fallback() -> Classification:
    other = RULES.fallback_category
    rest = (1 - RULES.fallback_confidence) / (len(CATEGORIES) - 1)
    probs = {c: (RULES.fallback_confidence if c == other else rest) for c in CATEGORIES}
    return Classification(other, RULES.fallback_confidence, (), _rounded(probs))


def _top(probs: Mapping[str, float]) -> str:
    best, top = CATEGORIES[-1], -1.0
    for category in CATEGORIES:     # ties: the first in CATEGORIES
        if probs.get(category, 0.0) > top:
            best, top = category, probs[category]
    return best


def _raised(probs: Mapping[str, float], category: str, floor: float) -> dict[str, float]:
    """`category` at `floor` at least, the others shrunk in proportion."""
    if probs[category] >= floor:
        return dict(probs)
    rest = 1.0 - probs[category]
    shrink = (1.0 - floor) / rest if rest > 0 else 0.0
    return {c: (floor if c == category else p * shrink) for c, p in probs.items()}


def _capped(probs: Mapping[str, float], cap: float) -> dict[str, float]:
    """Never quite certain: a story can always be read another way (the user may still say so)."""
    top = _top(probs)
    if probs[top] <= cap:
        return dict(probs)
    rest = 1.0 - probs[top]
    share = (1.0 - cap) / rest if rest > 0 else 0.0
    others = len(probs) - 1
    return {c: (cap if c == top else (p * share if rest > 0 else (1.0 - cap) / others)) for c, p in probs.items()}


def _rounded(probs: Mapping[str, float]) -> dict[str, float]:
    return {c: round(float(probs.get(c, 0.0)), 3) for c in CATEGORIES}


# --------------------------------------------------------------------------- quoting the model

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CLAUSE_STOP = re.compile(r"[\n。！？；，、,.!?;:：()（）\"“”]")
_CJK_CONTEXT = 6          # characters of context each side of a Chinese n-gram
_WORD_CONTEXT = 2         # words of context each side of an English feature


def _model_signals(model: NgramModel, text: str, category: str) -> tuple[Signal, ...]:
    """The user's words behind the model's strongest features for `category`, as text signals:
    each found in a form of the text that keeps every character's place, and quoted from the text
    itself (Traditional characters, capitals and digits as the user wrote them)."""
    norm, origin = _aligned(text)
    spans: list[tuple[int, int, float]] = []
    for feature, lift in model.evidence(text, category, n=12):
        if "0" in feature:          # the model reads every number as 0: not a phrase to quote
            continue
        span = _span_of(norm, feature)
        if span is None:
            continue
        start, end = _widen(norm, *span)
        start, end = origin[start], origin[end - 1] + 1
        if any(start < e and s < end for s, e, _ in spans):
            continue
        spans.append((start, end, lift))
        if len(spans) == COMBINE.model_quotes:
            break
    return tuple(Signal(category, round(lift, 2), "text", text[s:e].strip())
                 for s, e, lift in sorted(spans, key=lambda x: -x[2]) if text[s:e].strip())


def _aligned(text: str) -> tuple[str, list[int]]:
    """The text as the model reads it, character by character (NFKC, Simplified, lower case),
    and for each character of that form the position of the one it came from."""
    simplified = same_length_simplified(text)
    whole = unicodedata.normalize("NFKC", simplified).lower().replace("\u2019", "'")
    if len(whole) == len(simplified):       # nearly always: every character stays one character
        return whole, list(range(len(whole)))
    out: list[str] = []
    origin: list[int] = []
    for i, c in enumerate(simplified):
        n = unicodedata.normalize("NFKC", c).lower().replace("\u2019", "'")
        out.append(n)
        origin.extend([i] * len(n))
    return "".join(out), origin


def _span_of(norm: str, feature: str) -> tuple[int, int] | None:
    """Where a feature of the model occurs in the normalised text (plain searches: a regular
    expression per feature would be compiled anew for most stories)."""
    kind, _, body = feature.partition(":")
    if kind == "z":
        at = norm.find(body)
        return (at, at + len(body)) if at >= 0 else None
    if kind == "g":                 # a piece of a word: the whole word
        piece = body.strip("<>")
        at = norm.find(piece) if piece else -1
        if at < 0:
            return None
        lo, hi = at, at + len(piece)
        while lo > 0 and _word_char(norm[lo - 1]):
            lo -= 1
        while hi < len(norm) and _word_char(norm[hi]):
            hi += 1
        return lo, hi
    words = body.split()            # a word or two, whole, with any spaces between
    at = 0
    while True:
        at = norm.find(words[0], at)
        if at < 0:
            return None
        end = at + len(words[0])
        for word in words[1:]:
            gap = end
            while gap < len(norm) and norm[gap].isspace():
                gap += 1
            end = gap + len(word) if gap > end and norm.startswith(word, gap) else -1
            if end < 0:
                break
        if end >= 0 and (at == 0 or not _word_char(norm[at - 1])) and \
                (end == len(norm) or not _word_char(norm[end])):
            return at, end
        at += 1


def _word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "'")


def _widen(norm: str, start: int, end: int) -> tuple[int, int]:
    """A short phrase around a feature, inside its clause."""
    if _CJK.match(norm, start):
        lo, hi = start, end          # widened over Chinese characters only
        while lo > 0 and start - lo < _CJK_CONTEXT and _CJK.match(norm, lo - 1):
            lo -= 1
        while hi < len(norm) and hi - end < _CJK_CONTEXT and _CJK.match(norm, hi):
            hi += 1
    else:
        lo, hi = start, end
        for _ in range(_WORD_CONTEXT):
            m = re.search(r"\S+\s*$", norm[:lo])
            if m and not _CLAUSE_STOP.search(m.group(0).strip()):
                lo = m.start()
            m = re.match(r"\s*\S+", norm[hi:])
            if m and not _CLAUSE_STOP.search(m.group(0).strip()[:-1] or " "):
                hi += m.end()
    stops_before = [m.end() for m in _CLAUSE_STOP.finditer(norm, lo, start)]
    lo = max([lo] + stops_before)
    stop_after = _CLAUSE_STOP.search(norm, end, hi)
    hi = stop_after.start() if stop_after else hi
    return lo, max(hi, end)


# --------------------------------------------------------------------------- batch (CLI)

def _parse_line(line: str) -> tuple[Mapping[str, Any], str, list[str]]:
    if not line.startswith("{"):
        return {}, line, []
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return {}, line, []          # not JSON after all: a narrative that starts with "{"
    if not isinstance(obj, dict):
        return {}, line, []
    errors = []
    text = obj.get("text")
    slots = obj.get("slots")
    if text is None:
        text = ""
    elif not isinstance(text, str):
        errors.append("'text' must be a string")
        text = ""
    if slots is None:
        slots = {}
    elif not isinstance(slots, dict):
        errors.append("'slots' must be an object")
        slots = {}
    if "text" not in obj and "slots" not in obj:
        errors.append("a JSON line needs 'text' and/or 'slots'")
    return slots, text, errors


def classify_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One result per non-empty line: a plain narrative, or a JSON object {"text": ..., "slots": {...}}.

    Each result is {"category", "confidence", "signals", "probabilities", "line"} (line numbers
    count every input line, from 1), plus "error" when a JSON object had fields of the wrong kind.
    """
    for number, raw in enumerate(lines, 1):
        try:
            line = text_of(raw) if isinstance(raw, (str, bytes, bytearray)) else str(raw)
            line = line.strip()
            if not line:
                continue
            slots, text, errors = _parse_line(line)
            result = classify(slots, text).to_dict()
            result["line"] = number
            if errors:
                result["error"] = "; ".join(errors)
        except Exception as exc:  # pragma: no cover - a batch must never stop on one line
            result = {"category": RULES.fallback_category, "confidence": 0.0, "signals": [],
                      "line": number, "error": f"internal error: {type(exc).__name__}"}
        yield result
