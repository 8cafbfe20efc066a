"""Advice and deadlines for a case: pure functions over rules kept as data.

The rules live in `dialogs/rules/`:

- `facts.yaml`      sourced legal facts (ids shared with `../shared/facts/refund-facts.yaml`),
                    each with its official citation (`cite`), `url`, `via` and `checked` date;
- `advice.yaml`     warnings, next steps and evidence items, each with a `when` condition,
                    an `order` (the escalation ladder) and the fact ids it relies on;
- `deadlines.yaml`  deadlines counted from the user's own dates, each with its facts.

`advise(slots, category, today)` filters the entries by `when`, sorts them by `order`
and computes the deadlines. It reads no clock: `today` is an argument.

A `when` map (used by advice and deadline entries alike)
--------------------------------------------------------
Every field is optional; a missing field means "any". All fields given must match.

    category, jurisdiction, payment_method, purchase_type, problem, seller_answer:
        a list of allowed values; `null` in the list matches a missing slot.
    contacted:      [true] or [false]. Unknown counts as false unless a contact_date is given.
    fraud, digital, gambling:
                    [true] or [false]: flags derived from the `derived:` conditions
                    at the top of advice.yaml (so a rule says `fraud: [false]` once,
                    not the whole fraud condition again).
    merchant_any:   words looked for in the merchant name and the user's story
                    (case-insensitive; latin words must stand alone: "jd" matches
                    "JD.com" but not "jdsports").
    missing:        slot names that must be absent or empty.
    amount_over:    {CURRENCY: N}: holds unless the amount is known, in that currency, and is
                    N or less (`amount_over: {GBP: 100}`: section 75 is not offered for a known
                    £100 purchase, but is for an unknown amount).
    present:        slot names that must be given.
    any:            a list of `when` maps; at least one must match.
    not:            a map of the same fields; if ANY one of its fields matches,
                    the entry is excluded (`not: {category: [changed_mind], fraud: [true]}`
                    excludes change-of-mind cases and fraud cases).

The jurisdiction of a case without one is "OTHER".

A deadline rule
---------------
    {id, facts, when, from: purchase_date|problem_date|contact_date|statement_date|expected_date,
     add: {days: N} | {months: N} | {working_days: N} | {hours: N},
     start: same_day|day_after, action: message key, estimate: true (optional),
     met_by: contact_date (optional), safe: true (optional)}

`met_by: contact_date`: a first contact on or before the deadline met it (a return or withdrawal
asked for in time): the deadline is shown as met, with the message `deadline.<id>.met`, and never
as passed. `safe: true`: the law counts from a later day we were not told (a statement date), so
the date shown is the earliest the period can end: act by it and you are in time.

`start: day_after` means the period begins the day after the user's date (the usual
way a "7 days from receipt" period is counted): 7 days from 10 Nov end on 17 Nov.
`same_day` counts the user's date as day 1: 7 days from 10 Nov end on 16 Nov.
Months land on the same day number (day_after) or the day before it (same_day).
Working days skip Saturdays and Sundays only (no public-holiday calendar).
Hours are counted from the start of the user's date (dates carry no time).
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Iterable, Mapping

from dialogs.conditions import FLAGS, VALUES, Test, check_when, compile_when, matches, parse_date
from dialogs.model import JURISDICTIONS
from dialogs.rulefiles import as_tuple, rules_file

DISCLAIMER_KEY = "disclaimer"
BASES = ("purchase_date", "problem_date", "contact_date", "statement_date", "expected_date")
STARTS = ("same_day", "day_after")
ADD_UNITS = ("days", "months", "working_days", "hours")
_KINDS = ("warnings", "steps", "evidence")


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Deadline:
    id: str                   # rule id from deadlines.yaml
    date: date                # computed from the user's own dates
    basis: str                # "purchase_date" | "problem_date" | "contact_date"
    facts: tuple[str, ...]    # fact ids from facts.yaml
    days_left: int            # (date - today).days; negative = passed
    met: bool = False         # the user's first contact (contact_date) fell within the period


@dataclass(frozen=True)
class Advice:
    category: str
    steps: tuple[str, ...]           # message keys of next steps, in order
    evidence: tuple[str, ...]        # message keys of the evidence checklist
    deadlines: tuple[Deadline, ...]  # sorted by date
    warnings: tuple[str, ...]        # message keys of warnings shown first
    facts: tuple[str, ...]           # all fact ids used

    def context(self) -> dict[str, Any]:
        """A JSON-friendly dict for `advice_body.j2` (dates as ISO strings).

        Each deadline carries its message keys, its rule's `estimate` flag and the
        `source` text of its facts, so the template needs no look-up.
        """
        rules = advice_rules()
        deadlines = []
        for d in self.deadlines:
            rule = rules.deadlines_by_id.get(d.id)
            deadlines.append({
                "id": d.id,
                "name": f"deadline.{d.id}",
                "action": rule.action if rule else f"deadline.{d.id}.action",
                "date": d.date.isoformat(),
                "basis": d.basis,
                "days_left": d.days_left,
                "passed": d.days_left < 0 and not d.met,
                "met": d.met,
                "met_key": f"deadline.{d.id}.met" if d.met else None,
                "estimate": bool(rule and rule.estimate),
                "safe": bool(rule and rule.safe),
                "facts": list(d.facts),
                "sources": _sources(d.facts),
            })
        return {
            "category": self.category,
            "warnings": list(self.warnings),
            "steps": list(self.steps),
            "deadlines": deadlines,
            "evidence": list(self.evidence),
            "facts": list(self.facts),
            "sources": {f: citation(f) for f in self.facts if f in rules.facts},
            "disclaimer": DISCLAIMER_KEY,
        }


# --------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class _Entry:
    kind: str
    key: str
    order: int
    when: Mapping[str, Any]
    facts: tuple[str, ...]
    test: Test = field(compare=False, repr=False)   # `when`, compiled


@dataclass(frozen=True)
class _DeadlineRule:
    id: str
    facts: tuple[str, ...]
    when: Mapping[str, Any]
    basis: str
    add: Mapping[str, int]
    start: str
    action: str
    estimate: bool
    test: Test = field(compare=False, repr=False)   # `when`, compiled
    met_by: str | None = None
    safe: bool = False


@dataclass(frozen=True)
class _Rules:
    facts: Mapping[str, Mapping[str, Any]]
    derived: Mapping[str, Any]
    entries: tuple[_Entry, ...]
    deadlines: tuple[_DeadlineRule, ...]
    deadlines_by_id: Mapping[str, _DeadlineRule]
    problems: tuple[str, ...]
    derived_tests: Mapping[str, tuple[Test, ...] | None]   # flag -> compiled conditions (None: as read)
    gates: EntryGates


@lru_cache(maxsize=None)
def advice_rules() -> _Rules:
    """The advice, deadline and fact rules, read and checked once (`problems` says what is wrong)."""
    problems: list[str] = []

    facts_doc = rules_file("facts.yaml")
    facts: dict[str, Mapping[str, Any]] = {}
    for i, fact in enumerate(facts_doc.get("facts") or []):
        fid = fact.get("id") if isinstance(fact, Mapping) else None
        if not fid:
            problems.append(f"facts.yaml: entry #{i} has no id")
            continue
        if fid in facts:
            problems.append(f"facts.yaml: fact {fid!r} defined twice")
        if not str(fact.get("source") or "").strip():
            problems.append(f"facts.yaml: fact {fid!r} has no source")
        cite = fact.get("cite")
        if not (isinstance(cite, Mapping) and all(str(cite.get(loc) or "").strip() for loc in ("en", "zh"))):
            problems.append(f"facts.yaml: fact {fid!r} has no official citation (cite: {{en, zh}})")
        if not str(fact.get("url") or "").startswith("https://"):
            problems.append(f"facts.yaml: fact {fid!r} has no official https url")
        if not _is_date(fact.get("checked")):
            problems.append(f"facts.yaml: fact {fid!r} has no checked date")
        if not str(fact.get("via") or "").strip():
            problems.append(f"facts.yaml: fact {fid!r} does not say what was read (via)")
        facts[fid] = fact

    advice_doc = rules_file("advice.yaml")
    for top in advice_doc:
        if top not in _KINDS and top != "derived":
            problems.append(f"advice.yaml: unknown top-level key {top!r}")
    derived = advice_doc.get("derived") or {}
    for flag in FLAGS:
        if flag not in derived:
            problems.append(f"advice.yaml: derived flag {flag!r} is not defined")
    for flag, conds in derived.items():
        if flag not in FLAGS:
            problems.append(f"advice.yaml: unknown derived flag {flag!r}")
        if not isinstance(conds, list):
            problems.append(f"advice.yaml: derived.{flag} must be a list of when maps")
            continue
        for cond in conds:
            problems.extend(check_when(cond, f"advice.yaml: derived.{flag}", allow_flags=False))

    entries: list[_Entry] = []
    for kind in _KINDS:
        for i, raw in enumerate(advice_doc.get(kind) or []):
            where = f"advice.yaml: {kind}[{i}]"
            if not isinstance(raw, Mapping) or not raw.get("key"):
                problems.append(f"{where}: entry without a key")
                continue
            where = f"advice.yaml: {kind} {raw['key']!r}"
            for name in raw:
                if name not in ("key", "order", "when", "facts"):
                    problems.append(f"{where}: unknown field {name!r}")
            if not isinstance(raw.get("order"), int):
                problems.append(f"{where}: order must be an integer")
            when = raw.get("when") or {}
            problems.extend(check_when(when, where))
            entry_facts = as_tuple(raw.get("facts"))
            problems.extend(f"{where}: unknown fact id {f!r}" for f in entry_facts if f not in facts)
            entries.append(_Entry(kind, str(raw["key"]), int(raw.get("order") or 0), when, entry_facts,
                                  compile_when(when)))
    for kind in _KINDS:
        if not any(e.kind == kind for e in entries):
            problems.append(f"advice.yaml: no {kind} entries")

    deadline_doc = rules_file("deadlines.yaml")
    deadlines: list[_DeadlineRule] = []
    by_id: dict[str, _DeadlineRule] = {}
    for i, raw in enumerate(deadline_doc.get("deadlines") or []):
        if not isinstance(raw, Mapping) or not raw.get("id"):
            problems.append(f"deadlines.yaml: entry #{i} has no id")
            continue
        rid = str(raw["id"])
        where = f"deadlines.yaml: {rid!r}"
        for name in raw:
            if name not in ("id", "facts", "when", "from", "add", "start", "action", "estimate", "met_by", "safe"):
                problems.append(f"{where}: unknown field {name!r}")
        if rid in by_id:
            problems.append(f"{where}: id defined twice")
        rule_facts = as_tuple(raw.get("facts"))
        if not rule_facts:
            problems.append(f"{where}: a deadline needs at least one fact (its source)")
        problems.extend(f"{where}: unknown fact id {f!r}" for f in rule_facts if f not in facts)
        when = raw.get("when") or {}
        problems.extend(check_when(when, where))
        basis = raw.get("from")
        if basis not in BASES:
            problems.append(f"{where}: from must be one of {BASES}, not {basis!r}")
        add = raw.get("add")
        if not (isinstance(add, Mapping) and len(add) == 1 and next(iter(add)) in ADD_UNITS
                and isinstance(next(iter(add.values())), int) and next(iter(add.values())) > 0):
            problems.append(f"{where}: add must be one of {ADD_UNITS} with a positive integer, not {add!r}")
            add = {"days": 0}
        start = raw.get("start")
        if start not in STARTS:
            problems.append(f"{where}: start must be one of {STARTS}, not {start!r}")
        action = str(raw.get("action") or "")
        if action != f"deadline.{rid}.action":
            problems.append(f"{where}: action must be the message key 'deadline.{rid}.action'")
        met_by = raw.get("met_by")
        if met_by not in (None, "contact_date"):
            problems.append(f"{where}: met_by must be contact_date, not {met_by!r}")
        rule = _DeadlineRule(rid, rule_facts, when, str(basis), dict(add), str(start), action,
                             bool(raw.get("estimate", False)), compile_when(when),
                             met_by, bool(raw.get("safe", False)))
        deadlines.append(rule)
        by_id[rid] = rule

    return _Rules(facts, derived, tuple(entries), tuple(deadlines), by_id, tuple(problems),
                  {flag: _compiled_list(conds) for flag, conds in derived.items()}, EntryGates(entries))


# The fields an entry can be filed by, with how many values each can take.
_GATE_FIELDS = {**{name: len(values) for name, values in VALUES.items()}, **{flag: 2 for flag in FLAGS}}


class EntryGates:
    """The advice entries filed by one value list of their `when` (the one that lets the fewest
    cases through: jurisdiction [CN] rather than fraud [false]), so a case's `when` tests run only
    for the entries whose filing value it has."""

    def __init__(self, entries: Iterable[_Entry]) -> None:
        self.count = 0
        filed: dict[str, dict[Any, list[int]]] = {}
        always: list[int] = []
        for i, entry in enumerate(entries):
            self.count += 1
            gate = self._gate(entry.when)
            if gate is None:
                always.append(i)
                continue
            field_name, values = gate
            for value in dict.fromkeys(values):
                filed.setdefault(field_name, {}).setdefault(value, []).append(i)
        self.filed = {f: {v: tuple(ids) for v, ids in table.items()} for f, table in filed.items()}
        self.always = tuple(always)

    @staticmethod
    def _gate(when: Any) -> tuple[str, list[Any]] | None:
        if not isinstance(when, Mapping):
            return None
        best: tuple[float, str, list[Any]] | None = None
        for name, size in _GATE_FIELDS.items():
            values = when.get(name)
            if isinstance(values, list) and values:
                try:
                    {v: None for v in values}
                except TypeError:
                    continue
                share = len(values) / size
                if best is None or share < best[0]:
                    best = (share, name, values)
        return None if best is None else (best[1], best[2])

    def candidates(self, case: Mapping[str, Any]) -> Iterable[int]:
        """The entries (indices, in order) whose gate the case passes; the others cannot match."""
        found = set(self.always)
        try:
            for name, table in self.filed.items():
                ids = table.get(case.get(name))
                if ids:
                    found.update(ids)
        except TypeError:   # an unhashable slot value: no filing to go by
            return range(self.count)
        return sorted(found)


def _compiled_list(conds: Any) -> tuple[Test, ...] | None:
    try:
        return tuple(compile_when(cond) for cond in conds or [])
    except TypeError:   # not a list (reported as a problem): read as written when used
        return None


def rules_problems() -> list[str]:
    """Problems in the data files (empty list = fine).

    Checks: facts have unique ids and a source; every fact id used exists; every `when`
    field and value is known; deadline rules have facts, a valid `from`, `add`, `start`
    and the action key `deadline.<id>.action`. Message keys live in `messages/` and are
    checked by the tests against `message_keys()`.
    """
    advice_rules.cache_clear()
    return list(advice_rules().problems)


def message_keys() -> set[str]:
    """Every message key the rules can produce (for the catalog tests)."""
    rules = advice_rules()
    keys = {e.key for e in rules.entries} | {DISCLAIMER_KEY}
    for d in rules.deadlines:
        keys |= {f"deadline.{d.id}", d.action}
        if d.met_by:
            keys.add(f"deadline.{d.id}.met")
    return keys


def fact_ids_used() -> set[str]:
    rules = advice_rules()
    used = {f for e in rules.entries for f in e.facts}
    used |= {f for d in rules.deadlines for f in d.facts}
    return used


def facts() -> Mapping[str, Mapping[str, Any]]:
    """The fact sheet by id (read-only use)."""
    return advice_rules().facts


def _is_date(value: Any) -> bool:
    if isinstance(value, date):
        return True
    try:
        date.fromisoformat(str(value))
        return True
    except ValueError:
        return False


def citation(fact_id: str) -> dict[str, str]:
    """How a fact's source is shown to users: its official citation in each locale and the
    official address ({"en", "zh", "url"}). Research notes (`source`, `via`) are never shown."""
    fact = advice_rules().facts.get(fact_id, {})
    cite = fact.get("cite") or {}
    return {"en": str(cite.get("en") or ""), "zh": str(cite.get("zh") or ""), "url": str(fact.get("url") or "")}


def source_text(fact_id: str, locale: str = "en") -> str:
    """A fact's citation as one line of text: the citation, then the official address."""
    c = citation(fact_id)
    return " ".join(part for part in (c.get(locale) or c["en"], c["url"]) if part)


def _sources(fact_ids: Iterable[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for f in fact_ids:
        c = citation(f)
        if (c["en"] or c["url"]) and c not in out:
            out.append(c)
    return out


# --------------------------------------------------------------------------- matching

def normalise_case(slots: Mapping[str, Any], category: str) -> dict[str, Any]:
    """The case as `when` conditions see it: the slots, the category, a jurisdiction (OTHER when
    unknown), `contacted` decided, and the derived flags of advice.yaml (fraud, digital)."""
    case = dict(slots)
    case["category"] = category
    if case.get("jurisdiction") not in JURISDICTIONS:
        case["jurisdiction"] = "OTHER"
    contacted = case.get("contacted")
    case["contacted"] = bool(contacted) if contacted is not None else bool(case.get("contact_date"))
    rules = advice_rules()
    for flag in FLAGS:
        tests = rules.derived_tests.get(flag, ())
        if tests is None:
            case[flag] = any(matches(cond, case) for cond in rules.derived.get(flag) or [])
        else:
            case[flag] = any(test(case) for test in tests)
    return case


# --------------------------------------------------------------------------- the reply-by date

DEFAULT_DEMAND_DAYS = 7


@lru_cache(maxsize=1)
def _demand_rules() -> tuple[Mapping[str, Any], ...]:
    return tuple(r for r in rules_file("recipients.yaml").get("demand") or [] if isinstance(r, Mapping))


def demand_period(case: Mapping[str, Any]) -> tuple[int, str | None]:
    """Days the seller is given to refund (recipients.yaml `demand`, the first rule matching the
    normalised case), and the fact the number comes from (None: a plain "reasonable" period)."""
    for rule in _demand_rules():
        if matches(rule.get("when") or {}, case):
            if "days" in rule:
                return int(rule["days"]), None
            return int(facts()[rule["fact"]]["numbers"][rule["number"]]), str(rule["fact"])
    return DEFAULT_DEMAND_DAYS, None


def reply_by(slots: Mapping[str, Any], category: str, today: date) -> date:
    """The date a written demand sent today asks the refund by: the date the advice, the
    reminders and the complaint letters all name."""
    days, _ = demand_period(normalise_case(slots or {}, category))
    return today + timedelta(days=days)


def case_context(slots: Mapping[str, Any], category: str, today: date) -> dict[str, Any]:
    """The slots as the advice texts see them (`case`), with the dates the bot computes for the
    user's sentences: `reply_by` (ISO)."""
    return {**dict(slots or {}), "reply_by": reply_by(slots, category, today).isoformat()}


# --------------------------------------------------------------------------- dates

def _add_months(day: date, months: int) -> date:
    """`day` moved by whole months, on the same day number or the month's last day if it has
    fewer (31 Jan + 1 month = 28 or 29 Feb), as dateutil's relativedelta does, at a fraction
    of its cost."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def deadline_date(start_date: date, add: Mapping[str, int], start: str) -> date:
    """The last day of a period of `add` counted from `start_date` (see module docs)."""
    (unit, n), = add.items()
    day_after = start == "day_after"
    if unit == "days":
        return start_date + timedelta(days=n if day_after else n - 1)
    if unit == "months":
        end = _add_months(start_date, n)
        return end if day_after else end - timedelta(days=1)
    if unit == "working_days":
        d = start_date if not day_after else start_date + timedelta(days=1)
        counted = 0
        while True:
            if d.weekday() < 5:
                counted += 1
                if counted == n:
                    return d
            d += timedelta(days=1)
    if unit == "hours":
        return start_date + timedelta(hours=n)
    raise ValueError(f"unknown unit {unit!r}")


# --------------------------------------------------------------------------- advise

def advise(slots: Mapping[str, Any], category: str, today: date) -> Advice:
    """Warnings, steps, evidence and deadlines for a case. Pure: `today` is given."""
    rules = advice_rules()
    case = normalise_case(slots or {}, category)

    picked: dict[str, dict[str, tuple[int, str, list[str]]]] = {k: {} for k in _KINDS}
    for index in rules.gates.candidates(case):
        entry = rules.entries[index]
        if not entry.test(case):
            continue
        seen = picked[entry.kind].get(entry.key)
        if seen is None:
            picked[entry.kind][entry.key] = (entry.order, entry.key, list(entry.facts))
        else:  # the same key from several entries (e.g. per jurisdiction facts): merge
            order, key, fs = seen
            fs.extend(f for f in entry.facts if f not in fs)
            picked[entry.kind][entry.key] = (min(order, entry.order), key, fs)

    ordered = {kind: sorted(picked[kind].values(), key=lambda item: (item[0], item[1])) for kind in _KINDS}

    deadlines: list[Deadline] = []
    for rule in rules.deadlines:
        if not rule.test(case):
            continue
        basis_date = parse_date(case.get(rule.basis))
        if basis_date is None:
            continue
        end = deadline_date(basis_date, rule.add, rule.start)
        met = False
        if rule.met_by:
            asked = parse_date(case.get(rule.met_by))
            met = asked is not None and basis_date <= asked <= end
        deadlines.append(Deadline(rule.id, end, rule.basis, rule.facts, (end - today).days, met))
    deadlines.sort(key=lambda d: (d.date, d.id))

    all_facts: dict[str, None] = {}   # in order of first use
    for kind in ("warnings", "steps", "evidence"):
        for _, _, fs in ordered[kind]:
            all_facts.update(dict.fromkeys(fs))
    for d in deadlines:
        all_facts.update(dict.fromkeys(d.facts))

    return Advice(
        category=category,
        steps=tuple(key for _, key, _ in ordered["steps"]),
        evidence=tuple(key for _, key, _ in ordered["evidence"]),
        deadlines=tuple(deadlines),
        warnings=tuple(key for _, key, _ in ordered["warnings"]),
        facts=tuple(all_facts),
    )
