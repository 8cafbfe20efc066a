"""Mining a free-text story for the answers it already gives, so they are not asked again."""
from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Any, Iterable, Mapping

from dialogs.amounts import find_amounts
from dialogs.places import place_of_amount
from dialogs.classifier import classify
from dialogs.answers import find_phrases, grams, normalize, unique_option
from dialogs.dates import find_dates
from dialogs.graph import Graph
from dialogs.ngram_model import NgramModel
from dialogs.phrases import PhraseSet

_CLAUSE_END = re.compile(r"[。！？；;!?\n]|[.,，、](?=\s|$)|，")
_MERCHANT_PATTERNS = (
    re.compile(r"在([\u4e00-\u9fffA-Za-z0-9·.&\- ]{2,16}?)(?:上|里)?(?:买|购买|下单|充值|订|报名|注册|开通|投资)"),
    re.compile(r"\b(?:from|at|on|with)\s+([A-Z][\w&.\-]*(?:\s+[A-Z][\w&.\-]*){0,2})"),
)


def _choice_slots(graph: Graph, norm: str, text_grams: frozenset[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in graph.nodes.values():
        if node.type == "choice" and node.slot and node.from_story == "phrases":
            option = unique_option(node, norm, True, text_grams)
            if option is not None:
                found[node.slot] = option
    return found


_DATE_SLOTS = ("contact_date", "problem_date", "purchase_date")


@lru_cache(maxsize=16)
def _date_cues(cues: tuple[tuple[str, ...], ...]) -> tuple[PhraseSet, tuple[str, ...]]:
    """The cues of the three date slots in one set (looked up once per clause, not once per
    slot), and the slot of each."""
    return (PhraseSet(p for slot_cues in cues for p in slot_cues),
            tuple(slot for slot, slot_cues in zip(_DATE_SLOTS, cues) for _ in slot_cues))


def _cue_spans(graph: Graph, text: str, text_grams: frozenset[str]) -> dict[str, list[tuple[int, int]]]:
    cues, owners = _date_cues(tuple(tuple(graph.story_cues.get(s, ())) for s in _DATE_SLOTS))
    spans: dict[str, list[tuple[int, int]]] = {s: [] for s in _DATE_SLOTS}
    for i, span in cues.located(text, text_grams):
        spans[owners[i]].append(span)
    return spans


def _date_slot(graph: Graph, clause: str, at: int, end: int, taken: dict[str, str],
               text_grams: frozenset[str]) -> str | None:
    """The slot a date fills, from the cue nearest to it in its clause: before it first
    ("broke on 5 Nov"), else after it ("11月5日买的"). `text_grams`: of the whole story."""
    free = [s for s in _DATE_SLOTS if s not in taken]
    spans = _cue_spans(graph, clause[:at], text_grams)
    before = {s: max((e for _, e in spans[s]), default=-1) for s in free}
    best = max(free, key=lambda s: before[s], default=None)
    if best is not None and before[best] >= 0:
        return best
    spans = _cue_spans(graph, clause[end:], text_grams)
    after = {s: min((b for b, _ in spans[s]), default=10**9) for s in free}
    best = min(free, key=lambda s: after[s], default=None)
    if best is not None and after[best] < 10**9:
        return best
    # A date with no cue is the purchase date first, then the problem date.
    return next((s for s in ("purchase_date", "problem_date") if s not in taken), None)


def _classify_dates(graph: Graph, text: str, today: date, norm: str, text_grams: frozenset[str]) -> dict[str, str]:
    dates = [(m, d) for m, d in find_dates(text, today) if d <= today]
    found: dict[str, str] = {}
    cursor = 0
    for matched, day in dates:
        needle = normalize(matched)
        at = norm.find(needle, cursor)
        if at < 0:
            continue
        cursor = at + len(needle)
        start = max((m.end() for m in _CLAUSE_END.finditer(norm, 0, at)), default=0)
        stop = _CLAUSE_END.search(norm, cursor)
        clause = norm[start: stop.start() if stop else len(norm)]
        slot = _date_slot(graph, clause, at - start, cursor - start, found, text_grams)
        if slot:
            found[slot] = day.isoformat()
    purchase, problem = found.get("purchase_date"), found.get("problem_date")
    if purchase and problem and problem < purchase:
        found["purchase_date"], found["problem_date"] = problem, purchase
    return found


def _merchant(graph: Graph, text: str, norm: str, text_grams: frozenset[str]) -> str | None:
    known = find_phrases(norm, graph.merchants, True, text_grams)
    if known:
        return max(known, key=len)
    for pattern in _MERCHANT_PATTERNS:
        m = pattern.search(text)
        if m:
            name = m.group(1).strip(" .")
            if name and normalize(name) not in {"the", "a", "my", "一个", "网上", "网站", "平台"}:
                return name[:80]
    return None


def mine(graph: Graph, text: str, today: date) -> dict[str, Any]:
    """Every slot the text answers; the caller decides which of them to keep."""
    text = text[:20000]
    norm = normalize(text)
    text_grams = grams(norm)
    found: dict[str, Any] = _choice_slots(graph, norm, text_grams)
    amounts = find_amounts(text)
    if amounts:
        written, value, currency = amounts[0]
        found["amount"] = {"value": f"{value:.2f}", "currency": currency}
        place = place_of_amount(currency, written)   # not from 元 or $ alone (rules/places.yaml)
        if place and "jurisdiction" not in found:
            found["jurisdiction"] = place
    found.update(_classify_dates(graph, text, today, norm, text_grams))
    merchant = _merchant(graph, text, norm, text_grams)
    if merchant:
        found["merchant"] = merchant
    if "seller_answer" in found or "contact_date" in found or find_phrases(norm, graph.story_cues.get("contacted", ()), True, text_grams):
        found["contacted"] = True
    return found


def story_choice(graph: Graph, slot: str, slots: Mapping[str, Any], story: str,
                 ignore: Iterable[str] = (), model: NgramModel | None = None) -> str | None:
    """The option of a question read by the classifier (`from_story: classifier`) that the story
    answers: the one whose category the classifier is at least `sure_above` sure of, else None
    (the question is then asked). "Something else" is never filled in this way."""
    node = graph.by_slot(slot)
    if node is None or node.from_story != "classifier" or not story.strip():
        return None
    result = classify({k: v for k, v in slots.items() if k != slot}, story, ignore, model=model)
    option = node.option_for(result.category)
    if option is None or result.category == "other" or result.confidence < node.sure_above:
        return None
    return option.id


def merge(slots: Mapping[str, Any], found: Mapping[str, Any], skipped: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Slots with the mined answers added where nothing was answered (or skipped) yet."""
    merged = dict(slots)
    for slot, value in found.items():
        if slot not in merged and slot not in skipped:
            merged[slot] = value
    return merged
