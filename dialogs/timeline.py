"""A case's timeline as a person reads it back: what happened, in their time zone.

`entries(events, zone, types)` turns the stored events (`{"at", "kind", "data"}`, oldest first)
into plain entries for `messages` (`timeline.entry`): the local date and time, the kind, and what
the entry says (the question and its answer, a quote of what was written, the advice by name, the
reminder and the button pressed under it, the letter and to whom, the evidence, ...).

The raw record of a turn's input (`said`, `pressed`, `command`) is folded into what the turn did:
"you wrote 'yes'" followed by "Asked them for a refund: Yes" says the same thing twice. It is kept
when the turn did nothing else (a message the open question did not take).

Pure: no clock, no I/O; the zone and the answer types are passed in.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime, timezone, tzinfo
from typing import Any, Iterable, Mapping

QUOTE_MAX = 80
INPUT_KINDS = frozenset({"said", "pressed", "command"})
# Every entry has every field (None when it does not apply): templates need not guess.
FIELDS = ("story", "quote", "found", "fact", "option", "name", "slot", "category", "percent", "evidence_kind",
          "outcome", "before", "after", "rung", "nudge_kind", "deadline", "answer", "until", "recipient",
          "letter_locale", "cadence")


def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def shorten(text: Any, limit: int = QUOTE_MAX) -> str:
    """One line, at most `limit` columns (a Chinese character takes two), cut at a word where
    there is one, with "…"."""
    flat = " ".join(str(text or "").split())
    if sum(map(_width, flat)) <= limit:
        return flat
    used, cut = 0, []
    for ch in flat:
        used += _width(ch)
        if used > limit - 1:
            break
        cut.append(ch)
    head = "".join(cut)
    space = head.rfind(" ")
    if space >= len(head) // 2:
        head = head[:space]
    return head.rstrip(" ,.;:，。；：、") + "…"


def _get(event: Any, key: str) -> Any:
    return event.get(key) if isinstance(event, Mapping) else getattr(event, key, None)


def _local(at: str, zone: tzinfo) -> datetime:
    moment = datetime.fromisoformat(str(at))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(zone)


def _after(value: Any) -> Any:
    """A plan field recorded as [before, after] when it changed, else as it is."""
    return value[-1] if isinstance(value, (list, tuple)) and value else value


def _fact(slot: str, value: Any, types: Mapping[str, str]) -> dict[str, Any]:
    return {"slot": slot, "type": types.get(slot, "text"), "value": value}


def _detail(kind: str, data: Mapping[str, Any], types: Mapping[str, str]) -> dict[str, Any]:
    if kind == "answer":
        slot = str(data.get("slot") or "")
        if slot == "story":
            return {"story": True, "quote": shorten(data.get("text") or data.get("value"))}
        return {"fact": _fact(slot, data.get("value"), types)}
    if kind in ("said", "note"):
        return {"quote": shorten(data.get("text"))}
    if kind == "story":
        found = data.get("found") or {}
        return {"quote": shorten(data.get("text")),
                "found": [_fact(k, v, types) for k, v in found.items() if k != "story"]}
    if kind == "pressed":
        return {"option": str(data.get("option") or "")}
    if kind == "command":
        return {"name": str(data.get("name") or "")}
    if kind == "skipped":
        return {"slot": str(data.get("slot") or "")}
    if kind == "advice":
        confidence = data.get("confidence")
        return {"category": data.get("category") or "other",
                "percent": round(float(confidence) * 100) if isinstance(confidence, (int, float)) else None}
    if kind == "evidence":
        return {"evidence_kind": data.get("kind") or "document",
                "quote": shorten(data.get("text"), 60) if data.get("text") else None}
    if kind == "resolved":
        return {"outcome": data.get("outcome")}
    if kind == "category_changed":
        return {"before": data.get("before") or "other", "after": data.get("after") or "other"}
    if kind == "followup_started":
        return {"rung": data.get("rung"), "category": data.get("category")}
    if kind == "nudge":
        deadline = data.get("deadline_id")
        return {"nudge_kind": data.get("kind"), "rung": _after(data.get("rung")),
                "deadline": f"deadline.{deadline}" if deadline and data.get("kind") != "regular" else None}
    if kind in ("nudge_answer", "nudge_answer_ignored"):
        rung = data.get("rung")
        moved = isinstance(rung, (list, tuple)) and len(rung) == 2 and rung[0] != rung[1]
        category = data.get("category")
        return {"answer": data.get("answer"), "rung": _after(rung) if moved else None,
                "category": _after(category) if isinstance(category, (list, tuple)) else None,
                "until": data.get("snoozed_until")}
    if kind in ("escalation", "complaint_draft", "draft_complaint"):
        return {"rung": _after(data.get("rung")), "recipient": data.get("recipient"),
                "letter_locale": data.get("letter_locale")}
    if kind == "reminder_cadence":
        return {"cadence": data.get("cadence")}
    return {}


def entries(events: Iterable[Any], zone: tzinfo, types: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The timeline's entries, oldest first, for `timeline.entry` (see the module docstring)."""
    types = types or {}
    rows = [(str(_get(e, "at")), str(_get(e, "kind")), dict(_get(e, "data") or {})) for e in events]
    out: list[dict[str, Any]] = []
    for i, (at, kind, data) in enumerate(rows):
        if kind in INPUT_KINDS and i + 1 < len(rows) and rows[i + 1][0] == at and rows[i + 1][1] not in INPUT_KINDS:
            continue        # the turn's input, said again by what it did
        local = _local(at, zone)
        entry: dict[str, Any] = {"at": local.isoformat(timespec="minutes"), "date": local.date().isoformat(),
                                 "time": local.strftime("%H:%M"), "kind": kind, **dict.fromkeys(FIELDS)}
        entry.update(_detail(kind, data, types))
        out.append(entry)
    return out


def zone_label(zone: tzinfo) -> str:
    """The zone's name as the user set it ("Asia/Shanghai"), for the header of a timeline."""
    return str(getattr(zone, "key", None) or zone)


def next_deadline(deadlines: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first deadline of the advice (`Advice.context()["deadlines"]`) still ahead and not met."""
    ahead = [d for d in deadlines if d.get("days_left", -1) >= 0 and not d.get("met")]
    return min(ahead, key=lambda d: (d["date"], d["id"])) if ahead else None
