"""The fact sheet for a reviewer: every fact of `rules/facts.yaml`, its official citation and
address, what was read to check it and when, where the product uses it, and why it needs
re-checking. Pure: the day to judge "older than a year" by is an argument.

    entries(as_of)            -> [FactEntry], in the order of facts.yaml
    render_text(entries)      -> the listing `refund-advisor facts` prints

A fact is flagged when
  - it was last checked more than a year before `as_of` (`stale`);
  - it is a rule that changes without a new law: a platform policy, a card scheme's rules, the
    name of an authority (`changes: true` in facts.yaml);
  - what it says could not be verified against its official source here (`unverified:` in
    facts.yaml says what is missing; the texts that rely on it are softened and say so).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

from dialogs.advice import advice_rules
from dialogs.rulefiles import as_tuple, rules_file

STALE_DAYS = 365


@dataclass(frozen=True)
class FactEntry:
    id: str
    jurisdiction: str
    fact: str
    cite_en: str
    cite_zh: str
    url: str
    via: str
    checked: str
    used_by: tuple[str, ...]
    flags: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "jurisdiction": self.jurisdiction, "fact": self.fact,
                "cite": {"en": self.cite_en, "zh": self.cite_zh}, "url": self.url, "via": self.via,
                "checked": self.checked, "used_by": list(self.used_by), "flags": list(self.flags)}


def uses() -> dict[str, list[str]]:
    """Fact id -> where the product uses it: advice texts, deadlines, letter channels and bases."""
    found: dict[str, list[str]] = {}

    def note(fid: str, where: str) -> None:
        places = found.setdefault(fid, [])
        if where not in places:
            places.append(where)

    rules = advice_rules()
    for entry in rules.entries:
        for fid in entry.facts:
            note(fid, entry.key)
    for rule in rules.deadlines:
        for fid in rule.facts:
            note(fid, f"deadline.{rule.id}")
    recipients = rules_file("recipients.yaml")
    for channel, spec in (recipients.get("channels") or {}).items():
        for fid in as_tuple((spec or {}).get("facts")):
            note(fid, f"letter channel {channel}")
    for basis in recipients.get("basis") or []:
        for fid in as_tuple(basis.get("facts")):
            note(fid, f"letter basis {basis.get('id')}")
    for item in recipients.get("demand") or []:
        if item.get("fact"):
            note(str(item["fact"]), "letter demand period")
    return found


def _flags(fact: Mapping[str, Any], as_of: date) -> tuple[str, ...]:
    flags: list[str] = []
    checked = fact.get("checked")
    try:
        day = checked if isinstance(checked, date) else date.fromisoformat(str(checked))
    except ValueError:
        flags.append("no valid checked date")
    else:
        age = (as_of - day).days
        if age > STALE_DAYS:
            flags.append(f"checked {age} days before {as_of.isoformat()} (over a year)")
    if fact.get("changes"):
        flags.append("changes without a new law (platform policy, scheme rule or authority name)")
    if fact.get("unverified"):
        flags.append(f"unverified: {fact['unverified']}")
    return tuple(flags)


def entries(as_of: date) -> list[FactEntry]:
    used = uses()
    out: list[FactEntry] = []
    for fid, fact in advice_rules().facts.items():
        cite = fact.get("cite") or {}
        out.append(FactEntry(
            id=fid, jurisdiction=str(fact.get("jurisdiction") or ""), fact=str(fact.get("fact") or ""),
            cite_en=str(cite.get("en") or ""), cite_zh=str(cite.get("zh") or ""),
            url=str(fact.get("url") or ""), via=str(fact.get("via") or ""),
            checked=str(fact.get("checked") or ""), used_by=tuple(used.get(fid, ())) or ("(not shown)",),
            flags=_flags(fact, as_of)))
    return out


def render_text(items: list[FactEntry]) -> str:
    lines: list[str] = []
    for e in items:
        lines.append(f"{e.id}  [{e.jurisdiction}]{'  FLAGGED' if e.flags else ''}")
        lines.append(f"  says:    {e.fact}")
        lines.append(f"  cite:    {e.cite_en}")
        lines.append(f"           {e.cite_zh}")
        lines.append(f"  source:  {e.url}")
        lines.append(f"  checked: {e.checked}, via {e.via}")
        lines.append(f"  used by: {', '.join(e.used_by)}")
        for flag in e.flags:
            lines.append(f"  ! {flag}")
        lines.append("")
    flagged = sum(1 for e in items if e.flags)
    lines.append(f"{len(items)} facts, {flagged} flagged for re-checking")
    return "\n".join(lines) + "\n"
