"""The phrase rules of the situation classifier: what the user's words and answers say, and why.

    rule_tally(slots, text, ignore=()) -> RuleTally: each category's score, the quotes and
                                          answers behind it, and a red flag if one was raised
    scores(slots, text="") -> every category's raw score (for tuning the rules)

All knowledge (phrases, weights, answer signals, combination rules) lives in
`rules/categories.yaml`; this module compiles it once at import (a mistake in it is a
ValueError then) and scores. A cheap prefilter (the literal parts of each phrase, "needles",
filed under their first two characters) picks the few phrases that can match, so only those
run their patterns; every pattern is linear (bounded gaps, no nested repetition).

Scoring, in order:
1. every phrase found in the text (first occurrence that is not negated) adds its weight
   to its category; within a category, overlapping matches count once (the heavier one);
2. every slot answer listed under a category adds its weight (answers in `ignore`, those the
   story itself gave, are not counted twice);
3. the combination rules run in file order: `add` weight, `scale` a category, or make a
   category `dominate` (it ends at least `dominate_margin` above every other: a red flag,
   such as a fee demanded before a payout, which must never be missed).
How these scores join the learned model's probabilities is `dialogs/classifier.py`'s job.
"""
from __future__ import annotations

import math
from functools import lru_cache
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from dialogs.model import CATEGORIES
from dialogs.phrases import grams
from dialogs.rulefiles import RULES_DIR, rules_file

RULES_PATH = RULES_DIR / "categories.yaml"
LANGS = ("zh", "en")


@dataclass(frozen=True)
class Signal:
    """Why a category was chosen: the user's own words (`text`) or one of their answers."""
    category: str
    weight: float
    source: str                  # "text" | "answer" | "choice" (the user picked the category)
    phrase: str | None = None    # text: the user's own words, as written
    slot: str | None = None      # answer: slot name
    value: str | None = None     # answer: slot value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"category": self.category, "weight": self.weight, "source": self.source}
        for key in ("phrase", "slot", "value"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


# --------------------------------------------------------------------------- phrase syntax

_WORD_EDGE_BEFORE = r"(?<![A-Za-z0-9])"
_WORD_EDGE_AFTER = r"(?![A-Za-z0-9])"


def _gap(lang: str, size: int) -> str:
    # A short stretch inside one sentence; bounded, so matching stays linear.
    stop = r"\n。！？；!?;" if lang == "zh" else r"\n.!?;。！？；"
    gap = f"[^{stop}]{{0,{size}}}?"
    # In English the words on both sides of a gap stay whole words ("pay ... fee" is not "PayPal ... fee").
    return gap if lang == "zh" else _WORD_EDGE_AFTER + gap + _WORD_EDGE_BEFORE


def _char(c: str, variants: Mapping[str, str]) -> str:
    alts = variants.get(c)
    if not alts:
        return re.escape(c)
    return "[" + "".join(re.escape(x) for x in c + alts) + "]"


def _parse(src: str, lang: str) -> list[list[tuple[Any, ...]]]:
    """A phrase as alternatives of sequences of items: ("lit", c), ("group", alts), ("opt",),
    ("gap",), ("star",), ("space",), ("hyphen",), ("apos",)."""
    if not isinstance(src, str) or not src.strip():
        raise ValueError(f"empty phrase {src!r}")
    stack: list[list[list[tuple[Any, ...]]]] = [[[]]]
    i = 0
    while i < len(src):
        c = src[i]
        seq = stack[-1][-1]
        if src.startswith("...", i):
            seq.append(("gap",))
            i += 3
            continue
        if c == "(":
            stack.append([[]])
        elif c == ")":
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' in phrase {src!r}")
            alts = stack.pop()
            stack[-1][-1].append(("group", alts))
        elif c == "|":
            stack[-1].append([])
        elif c == "?":
            if not seq or seq[-1][0] not in ("lit", "group", "apos"):
                raise ValueError(f"'?' with nothing before it in phrase {src!r}")
            seq.append(("opt",))
        elif c == "*" and lang == "en":
            seq.append(("star",))
        elif c == " ":
            seq.append(("space",))
        elif c == "-" and lang == "en":
            seq.append(("hyphen",))
        elif c in "'’" and lang == "en":
            seq.append(("apos",))
        else:
            seq.append(("lit", c))
        i += 1
    if len(stack) != 1:
        raise ValueError(f"unbalanced '(' in phrase {src!r}")
    return stack[0]


def _emit(alts: list[list[tuple[Any, ...]]], lang: str, variants: Mapping[str, str], gap: int) -> str:
    parts = []
    for seq in alts:
        out = []
        for item in seq:
            kind = item[0]
            if kind == "lit":
                out.append(_char(item[1], variants))
            elif kind == "group":
                out.append("(?:" + _emit(item[1], lang, variants, gap) + ")")
            elif kind == "opt":
                out.append("?")
            elif kind == "gap":
                out.append(_gap(lang, gap))
            elif kind == "star":
                out.append("[A-Za-z]*")
            elif kind == "space":
                out.append(r"[\s\-]+" if lang == "en" else r"\s*")
            elif kind == "hyphen":
                out.append(r"[\s\-]*")
            elif kind == "apos":
                out.append("['’]")
        parts.append("".join(out))
    return "|".join(parts)


def _needles(alts: list[list[tuple[Any, ...]]]) -> frozenset[str] | None:
    """Literal strings of which every match contains at least one (lower case, simplified
    characters), or None when that cannot be said. Used to skip phrases cheaply."""
    found: set[str] = set()
    for seq in alts:
        best: frozenset[str] | None = None
        run = ""
        candidates: list[frozenset[str]] = []
        for k, item in enumerate(seq):
            optional = k + 1 < len(seq) and seq[k + 1][0] == "opt"
            if item[0] == "lit" and not optional:
                run += item[1].lower()
                continue
            if run:
                candidates.append(frozenset([run]))
            run = ""
            if item[0] == "group" and not optional:
                inner = _needles(item[1])
                if inner:
                    candidates.append(inner)
        if run:
            candidates.append(frozenset([run]))
        for cand in candidates:
            if best is None or (min(map(len, cand)), -len(cand)) > (min(map(len, best)), -len(best)):
                best = cand
        if not best:
            return None
        found |= best
    return frozenset(found)


def compile_phrase(src: str, lang: str, variants: Mapping[str, str], gap: int) -> re.Pattern[str]:
    """Translate one regex-light phrase (syntax in categories.yaml) into a compiled pattern."""
    body = "(?:" + _emit(_parse(src, lang), lang, variants, gap) + ")"
    if lang == "en":
        body = _WORD_EDGE_BEFORE + body + _WORD_EDGE_AFTER
    return re.compile(body, re.IGNORECASE)


def phrase_needles(src: str, lang: str) -> frozenset[str] | None:
    return _needles(_parse(src, lang))


# --------------------------------------------------------------------------- compiled rules

@dataclass(frozen=True)
class _Phrase:
    category: str | None     # None for a cue (tags only)
    weight: float
    pattern: re.Pattern[str]
    tags: frozenset[str]
    negatable: bool
    lang: str
    order: int
    needles: frozenset[str] | None    # the text must contain one of these, or the phrase cannot match


@dataclass(frozen=True)
class _Rule:
    id: str
    when: tuple[tuple[str, ...], ...]     # all clauses hold; a clause holds if any atom holds
    unless: tuple[str, ...]
    add: tuple[tuple[str, float], ...]
    scale: tuple[tuple[str, float], ...]
    dominate: str | None


@dataclass(frozen=True)
class _Rules:
    phrases: tuple[_Phrase, ...]
    answers: Mapping[str, Mapping[str, tuple[tuple[str, float], ...]]]   # slot -> value -> ((cat, w), ...)
    rules: tuple[_Rule, ...]
    negation: Mapping[str, re.Pattern[str]]
    negation_window: Mapping[str, int]
    max_text: int
    max_signals: int
    strength_scale: float
    max_confidence: float
    fallback_category: str
    fallback_confidence: float
    dominate_margin: float
    combine: Mapping[str, Any]         # settings.combine: read by dialogs/classifier.py
    simplify: Mapping[int, str]        # str.translate table: traditional -> simplified (for needles)
    needles: Mapping[str, tuple[str, ...]]  # first two characters (one, if that is all) -> the needles
    needle_starts: frozenset[str]              # the keys of `needles`
    by_needle: Mapping[str, tuple[int, ...]]   # needle -> the phrases (indices) it lets through
    unfiltered: tuple[int, ...]                # phrases without needles: always tried


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: not a number: {value!r}")
    return float(value)


def _variants(data: Any) -> dict[str, str]:
    table: dict[str, str] = {}
    for pair in data or ():
        pair = str(pair)
        if len(pair) < 2:
            raise ValueError(f"variants: bad entry {pair!r}")
        table[pair[0]] = table.get(pair[0], "") + pair[1:]
    return table


def _entries(raw: Any, where: str) -> Iterator[tuple[str, float, list[str], bool | None]]:
    for item in raw or ():
        if isinstance(item, Mapping):
            src = item.get("p")
            weight = _number(item.get("w", 0), f"{where} {src!r}")
            tags = list(item.get("tags") or ())
            neg = item.get("neg")
        elif isinstance(item, str):
            src, weight, tags, neg = item, 0.0, [], None
        else:
            raise ValueError(f"{where}: bad entry {item!r}")
        if weight < 0:
            raise ValueError(f"{where}: negative weight for {src!r}")
        yield str(src), weight, [str(t) for t in tags], neg


def _negation(data: Mapping[str, Any], variants: Mapping[str, str]) -> tuple[dict[str, re.Pattern[str]], dict[str, int]]:
    patterns, windows = {}, {}
    for lang in LANGS:
        spec = data.get(lang) or {}
        negators = [str(x) for x in spec.get("negators") or ()]
        fillers = [str(x) for x in spec.get("fillers") or ()]
        max_fillers = int(spec.get("max_fillers", 1))
        windows[lang] = int(spec.get("window", 24))
        if not negators:
            continue

        def alt(words: list[str]) -> str:
            return "(?:" + "|".join(
                "".join("['’]" if c in "'’" else _char(c, variants) for c in w)
                for w in sorted(words, key=len, reverse=True)) + ")"
        if lang == "en":
            filler = rf"(?:\s+{alt(fillers)})" if fillers else ""
            body = rf"{_WORD_EDGE_BEFORE}{alt(negators)}{filler}{{0,{max_fillers}}}\s+$"
        else:
            filler = alt(fillers) if fillers else ""
            body = rf"{alt(negators)}(?:{filler}){{0,{max_fillers}}}\s*$" if fillers else rf"{alt(negators)}\s*$"
        patterns[lang] = re.compile(body, re.IGNORECASE)
    return patterns, windows


def load_rules(path: Path = RULES_PATH) -> _Rules:
    """Read and check categories.yaml; every mistake in it is a ValueError naming the place."""
    data = rules_file(path.name, path.parent)
    settings = data.get("settings") or {}
    gaps = settings.get("gap") or {}
    variants = _variants(data.get("variants"))
    simplify = {ord(t): simple for simple, trad in variants.items() for t in trad}
    categories = data.get("categories") or {}
    unknown = set(categories) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"categories.yaml: unknown categories {sorted(unknown)}")

    phrases: list[_Phrase] = []
    tags_known: set[str] = set()
    answers: dict[str, dict[str, list[tuple[str, float]]]] = {}

    def add_phrases(category: str | None, block: Mapping[str, Any], default_tags: list[str], where: str) -> None:
        for lang in LANGS:
            for src, weight, tags, neg in _entries(block.get(lang), f"{where}.{lang}"):
                try:
                    pattern = compile_phrase(src, lang, variants, int(gaps.get(lang, 12 if lang == "zh" else 40)))
                except re.error as exc:
                    raise ValueError(f"{where}.{lang}: phrase {src!r}: {exc}") from None
                needles = phrase_needles(src, lang)
                if needles is not None:
                    needles = frozenset(n.translate(simplify) for n in needles)
                all_tags = frozenset(default_tags + tags)
                tags_known.update(all_tags)
                negatable = (neg if neg is not None else block.get("neg", True)) and category is not None
                phrases.append(_Phrase(category, weight, pattern, all_tags, bool(negatable), lang, len(phrases), needles))

    for category in CATEGORIES:
        spec = categories.get(category) or {}
        add_phrases(category, spec.get("phrases") or {}, [str(t) for t in spec.get("tags") or ()],
                    f"categories.{category}.phrases")
        for slot, table in (spec.get("answers") or {}).items():
            for value, weight in (table or {}).items():
                w = _number(weight, f"categories.{category}.answers.{slot}.{value}")
                answers.setdefault(str(slot), {}).setdefault(str(value), []).append((category, w))

    for tag, block in (data.get("cues") or {}).items():
        block = dict(block or {})
        add_phrases(None, block, [str(tag)], f"cues.{tag}")

    rules: list[_Rule] = []
    for spec in data.get("rules") or ():
        rid = str(spec.get("id", f"rule{len(rules) + 1}"))
        when = tuple(tuple(str(a) for a in (clause if isinstance(clause, list) else [clause]))
                     for clause in spec.get("when") or ())
        unless = tuple(str(a) for a in spec.get("unless") or ())
        if not when:
            raise ValueError(f"rule {rid}: 'when' is required")
        for atom in [a for clause in when for a in clause] + list(unless):
            if atom.startswith("tag:"):
                if atom[4:] not in tags_known:
                    raise ValueError(f"rule {rid}: unknown tag {atom[4:]!r}")
            elif "=" not in atom:
                raise ValueError(f"rule {rid}: atom {atom!r} is neither tag:NAME nor slot=value")
        add = tuple((str(c), _number(w, f"rule {rid} add")) for c, w in (spec.get("add") or {}).items())
        scale = tuple((str(c), _number(f, f"rule {rid} scale")) for c, f in (spec.get("scale") or {}).items())
        if any(w < 0 for _, w in add + scale):
            raise ValueError(f"rule {rid}: negative add or scale")
        dominate = spec.get("dominate")
        for c in [c for c, _ in add + scale] + ([dominate] if dominate else []):
            if c not in CATEGORIES:
                raise ValueError(f"rule {rid}: unknown category {c!r}")
        rules.append(_Rule(rid, when, unless, add, scale, dominate))

    negation, windows = _negation(data.get("negation") or {}, variants)
    confidence = settings.get("confidence") or {}
    fallback = settings.get("fallback") or {}
    fallback_category = str(fallback.get("category", "other"))
    if fallback_category not in CATEGORIES:
        raise ValueError(f"settings.fallback: unknown category {fallback_category!r}")
    return _Rules(
        phrases=tuple(phrases),
        answers={s: {v: tuple(cw) for v, cw in table.items()} for s, table in answers.items()},
        rules=tuple(rules),
        negation=negation,
        negation_window=windows,
        max_text=int(settings.get("max_text", 20000)),
        max_signals=int(settings.get("max_signals", 5)),
        strength_scale=_number(confidence.get("strength_scale", 3.0), "settings.confidence.strength_scale"),
        max_confidence=_number(confidence.get("max", 0.99), "settings.confidence.max"),
        fallback_category=fallback_category,
        fallback_confidence=_number(fallback.get("confidence", 0.1), "settings.fallback.confidence"),
        dominate_margin=_number(settings.get("dominate_margin", 1.0), "settings.dominate_margin"),
        combine=dict(settings.get("combine") or {}),
        simplify=simplify,
        needles=_buckets(phrases),
        needle_starts=frozenset(_buckets(phrases)),
        by_needle=_by_needle(phrases),
        unfiltered=tuple(i for i, ph in enumerate(phrases) if ph.needles is None),
    )


def _buckets(phrases: Iterable[_Phrase]) -> dict[str, tuple[str, ...]]:
    by_start: dict[str, set[str]] = {}
    for ph in phrases:
        for needle in ph.needles or ():
            by_start.setdefault(needle[:2], set()).add(needle)
    return {c: tuple(sorted(ns)) for c, ns in by_start.items()}


def _by_needle(phrases: list[_Phrase]) -> dict[str, tuple[int, ...]]:
    found: dict[str, list[int]] = {}
    for i, ph in enumerate(phrases):
        for needle in ph.needles or ():
            found.setdefault(needle, []).append(i)
    return {n: tuple(ids) for n, ids in found.items()}


RULES = load_rules()


# --------------------------------------------------------------------------- scoring

class RuleTally:
    """Scores and the signals behind them, per category; `red_flag`: the category a dominating
    rule forced, if one fired."""

    def __init__(self) -> None:
        self.scores: dict[str, float] = {c: 0.0 for c in CATEGORIES}
        # (source, phrase, slot, value) -> [weight, order, source, phrase, slot, value]
        self.entries: dict[str, dict[tuple[Any, ...], list[Any]]] = {c: {} for c in CATEGORIES}
        self.red_flag: str | None = None

    def add(self, category: str, weight: float, order: float, source: str,
            phrase: str | None = None, slot: str | None = None, value: str | None = None) -> None:
        self.scores[category] += weight
        key = (source, phrase, slot, value)
        entry = self.entries[category].get(key)
        if entry is None:
            self.entries[category][key] = [weight, order, source, phrase, slot, value]
        else:
            entry[0] += weight
            entry[1] = min(entry[1], order)

    def scale(self, category: str, factor: float) -> None:
        self.scores[category] *= factor
        for entry in self.entries[category].values():
            entry[0] *= factor

    def signals(self, category: str, limit: int | None = None) -> tuple[Signal, ...]:
        """The category's signals, strongest first; a quote overlapping a stronger quote would only
        repeat the user's words."""
        limit = RULES.max_signals if limit is None else limit
        found: list[Signal] = []
        quoted: list[tuple[int, int]] = []
        for weight, start, source, phrase, slot, value in sorted(self.entries[category].values(),
                                                                  key=lambda e: (-e[0], e[1])):
            if weight <= 0 or len(found) == limit:
                break
            if source == "text":
                end = int(start) + len(phrase)
                if any(start < e and s < end for s, e in quoted):
                    continue
                quoted.append((int(start), end))
            found.append(Signal(category, round(weight, 2), source, phrase, slot, value))
        return tuple(found)

    def answer_scores(self) -> dict[str, float]:
        """The part of each score that the user's own answers gave (they weigh more than words)."""
        return {c: sum(e[0] for e in entries.values() if e[2] == "answer") for c, entries in self.entries.items()}

    def best(self) -> tuple[str, float] | None:
        """The top category and its confidence by the rules alone (share of all positive scores
        times an absolute strength `1 - exp(-top / strength_scale)`), or None when nothing was found."""
        positive = {c: s for c, s in self.scores.items() if s > 0}
        if not positive:
            return None
        best, top = "", 0.0
        for category in CATEGORIES:   # ties: the first in CATEGORIES
            if positive.get(category, 0.0) > top:
                best, top = category, positive[category]
        share = top / sum(positive.values())
        strength = 1.0 - math.exp(-top / RULES.strength_scale)
        return best, round(min(RULES.max_confidence, max(0.0, share * strength)), 2)


def scores(slots: Mapping[str, Any] | None, text: str = "") -> dict[str, float]:
    """Every category's score (for tuning the rules and for tests), rounded."""
    return {c: round(s, 2) for c, s in rule_tally(slots, text).scores.items()}


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return ""


def _negated(rules: _Rules, lang: str, text: str, start: int) -> bool:
    pattern = rules.negation.get(lang)
    if pattern is None or start == 0:
        return False
    return pattern.search(text, max(0, start - rules.negation_window[lang]), start) is not None


@lru_cache(maxsize=64)
def _phrase_matches(text: str) -> tuple[tuple[int, re.Match[str]], ...]:
    """Each phrase found in the text, not negated: its index and its first match. Cached: an
    intake tallies its story again with other answers (the prefill, the clarifying check, the
    advice); matches are only read."""
    rules = RULES
    # Cheap prefilter: which needles (literal parts of the phrases) occur at all.
    folded = text.lower().translate(rules.simplify)
    candidates = set(rules.unfiltered)
    for start in grams(folded) & rules.needle_starts:
        for needle in rules.needles[start]:
            if needle in folded:
                candidates.update(rules.by_needle[needle])
    found: list[tuple[int, re.Match[str]]] = []
    for i in sorted(candidates):
        ph = rules.phrases[i]
        for m in ph.pattern.finditer(text):
            if m.end() == m.start():
                continue
            if ph.negatable and _negated(rules, ph.lang, text, m.start()):
                continue
            found.append((i, m))
            break
    return tuple(found)


def rule_tally(slots: Mapping[str, Any] | None, text: Any, ignore: Iterable[str] = ()) -> RuleTally:
    """The rules' scores for a case: its answers (but those in `ignore`) and its text (or, without
    text, `slots['story']`)."""
    rules = RULES
    slots = slots if isinstance(slots, Mapping) else {}
    text = text_of(text) or text_of(slots.get("story"))
    text = text[: rules.max_text]
    ignored = frozenset(ignore)
    slots = {k: v for k, v in slots.items() if k not in ignored}
    tally = RuleTally()
    tag_evidence: dict[str, list[tuple[str, int]]] = {}   # tag -> [(phrase, position)]

    # 1. phrases
    found = [(rules.phrases[i], m) for i, m in _phrase_matches(text)] if text else []
    taken: dict[str | None, list[tuple[int, int]]] = {}   # category or "tag:NAME" -> spans used

    def free(key: str | None, m: re.Match[str]) -> bool:
        spans = taken.setdefault(key, [])
        if any(m.start() < end and start < m.end() for start, end in spans):
            return False
        spans.append((m.start(), m.end()))
        return True

    for ph, m in sorted(found, key=lambda f: (-f[0].weight, f[1].start() - f[1].end(), f[1].start(), f[0].order)):
        for tag in ph.tags:
            if free("tag:" + tag, m):
                tag_evidence.setdefault(tag, []).append((m.group(0), m.start()))
        if ph.category is None or ph.weight <= 0 or not free(ph.category, m):
            continue
        tally.add(ph.category, ph.weight, m.start(), "text", phrase=m.group(0))

    # 2. answers
    for slot, table in rules.answers.items():
        value = slots.get(slot)
        if not isinstance(value, str):
            continue
        for category, weight in table.get(value, ()):
            tally.add(category, weight, -1, "answer", slot=slot, value=value)
    answered = {f"{slot}={value}" for slot, value in slots.items() if isinstance(slot, str) and isinstance(value, str)}

    # 3. combination rules
    def holds(atom: str) -> list[tuple[str, Any]] | None:
        if atom.startswith("tag:"):
            ev = tag_evidence.get(atom[4:])
            return [("text", e) for e in ev] if ev else None
        if atom in answered:
            slot, value = atom.split("=", 1)
            return [("answer", (slot, value))]
        return None

    # The atoms that hold, to pass over the rules that do not apply without gathering evidence.
    holding = {"tag:" + tag for tag in tag_evidence}
    holding.update(a for a in answered if not a.startswith("tag:"))
    for rule in rules.rules:
        if not holding.isdisjoint(rule.unless):
            continue
        if any(holding.isdisjoint(clause) for clause in rule.when):
            continue
        evidence: list[tuple[str, Any]] = []
        for clause in rule.when:
            met = [ev for ev in (holds(a) for a in clause) if ev]
            if not met:
                break
            for ev in met:
                evidence.extend(ev)
        else:
            unique = list(dict.fromkeys(evidence))
            for category, weight in rule.add:
                share = weight / len(unique)
                for kind, item in unique:
                    if kind == "text":
                        tally.add(category, share, item[1], "text", phrase=item[0])
                    else:
                        tally.add(category, share, -1, "answer", slot=item[0], value=item[1])
            for category, factor in rule.scale:
                tally.scale(category, factor)
            if rule.dominate:
                others = max(s for c, s in tally.scores.items() if c != rule.dominate)
                floor = others + rules.dominate_margin
                if tally.scores[rule.dominate] < floor:
                    tally.scores[rule.dominate] = floor
                tally.red_flag = rule.dominate

    return tally
