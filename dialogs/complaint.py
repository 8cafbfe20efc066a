"""Complaint drafts for `/escalate`: whom to complain to, and the draft itself. Pure, data-driven.

The rules live in `rules/recipients.yaml` (recipients, their variants by payment method or
jurisdiction, how to send, the legal basis and the demand period); the wording in
`messages/<locale>/complaint.yaml` and `complaint_*.j2`. Nothing here reads a clock or does
I/O: `today` is an argument.

    recipients(slots, category, rung)  -> ["seller", "platform", ...], the recommended one first
    needed(slots, recipient=None)      -> slots a draft is not worth making without
    draft(slots, category, recipient, letter_locale, timeline, evidence, today,
          *, rung=None, user_name=None) -> Draft     (ValueError for a recipient that does not fit)
    recipients_problems(), message_keys()             (checks of the data, for the tests)

The draft is rendered (HTML message, .txt and .md documents) by messages/complaint.py.

Recipients: `seller`, `platform`, `payment` (card chargeback, US billing-error notice, UK
section 75 claim, PayPal dispute, Alipay/WeChat Pay complaint, bank recall or fraud report,
crypto exchange report: picked by payment method), `regulator` (per jurisdiction) and
`police` (fraud only).

`category` should be the follow-up plan's (`plan["category"]`: on the fraud path it is the
path's own), `rung` the plan's current rung (`plan["rung"]`) or None before the plan starts.

`timeline`: the case's events as plain data, `{"kind", "data", "at"}` (bot.storage's
TimelineEntry; `at` an ISO time or a datetime: its date is the one shown, so pass local times for
local dates). Used: `answer` (slot seller_answer: when the user reported the answer),
`nudge_answer` (waiting / refused / asked_more at a rung), `escalation` and `note`.
`evidence`: `{"kind", "file_id", "text", "at"}` records.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence, cast


from dialogs.advice import advise, demand_period, facts as _facts, normalise_case
from dialogs.conditions import SLOT_NAMES, check_when, matches, parse_date
from dialogs.advice import message_keys as _advice_keys
from dialogs.rulefiles import as_tuple, rules_file
from dialogs.followup import load_ladder, ladders_for
from dialogs.model import LOCALES, Slots

RECIPIENTS = ("seller", "platform", "payment", "regulator", "police")
HISTORY_EVENTS = ("answer", "nudge_answer", "escalation", "note")
NUDGE_ANSWERS = ("waiting", "refused", "asked_more")   # nudge answers that say what a party did
UNITS = ("article", "section", "regulation", "code", "rules")
CHANNEL_FIELDS = ("phone", "hotline", "web", "menu", "app")
# Slots the letters show, in the order their blanks are listed.
SHOWN_SLOTS = ("merchant", "purchase_date", "amount", "payment_method", "problem", "contact_date")
# The Telegram message keeps user texts short; the documents keep them whole.
SHORT = {"story": 600, "note": 300, "evidence": 160}


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Draft:
    recipient: str                   # one of RECIPIENTS
    locale: str                      # the letter's language ("en" | "zh")
    subject_key: str                 # message key of the subject line
    context: Mapping[str, Any]       # everything the templates need (JSON-friendly)
    missing: tuple[str, ...]         # slot names the draft shows as blanks to fill in
    demand_date: date | None         # the refund is demanded by this date (None: police report)
    how_to_send_key: str             # message key of the sending instructions
    variant: str = ""                # the recipient's variant (card, paypal, cn, ...)
    facts: tuple[str, ...] = field(default=())   # fact ids the draft relies on


# --------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class _Variant:
    id: str
    when: Mapping[str, Any]
    send: tuple[tuple[str, Mapping[str, Any]], ...]     # (channel id, when)
    amount: Mapping[str, Any] | None


@dataclass(frozen=True)
class _Recipient:
    id: str
    when: Mapping[str, Any]
    ladder_rung: str | None
    variants: tuple[_Variant, ...]


@dataclass(frozen=True)
class _Basis:
    id: str
    recipients: tuple[str, ...]
    advice: tuple[str, ...]
    when: Mapping[str, Any]
    deadline: str | None
    deadline_passed: str | None
    facts: tuple[str, ...]
    cite: tuple[Mapping[str, Any], ...]
    withdrawal: bool


@dataclass(frozen=True)
class _Rules:
    rungs: Mapping[str, str]
    needs: Mapping[str, tuple[str, ...]]
    demand: tuple[Mapping[str, Any], ...]
    evidence_kinds: tuple[str, ...]
    recipients: Mapping[str, _Recipient]
    channels: Mapping[str, Mapping[str, Any]]
    laws: Mapping[str, Mapping[str, Any]]
    basis: tuple[_Basis, ...]
    problems: tuple[str, ...]



def _fact_text(fid: str) -> str:
    fact = _facts().get(fid) or {}
    return " ".join(str(fact.get(k) or "") for k in ("fact", "source", "note")).lower()


@lru_cache(maxsize=None)
def _rules() -> _Rules:
    problems: list[str] = []
    doc = rules_file("recipients.yaml")
    known_facts = set(_facts())
    ladder = load_ladder()
    deadline_doc = rules_file("deadlines.yaml")
    known_deadlines = {str(d.get("id")) for d in deadline_doc.get("deadlines") or [] if isinstance(d, Mapping)}
    advice_keys = _advice_keys()
    top_keys = ("rungs", "needs", "demand", "evidence_kinds", "recipients", "channels", "laws", "basis")
    problems.extend(f"recipients.yaml: unknown top-level key {k!r}" for k in doc if k not in top_keys)

    def check_facts(ids: Iterable[str], where: str) -> None:
        problems.extend(f"{where}: unknown fact id {f!r}" for f in ids if f not in known_facts)

    rungs = {str(k): str(v) for k, v in (doc.get("rungs") or {}).items()}
    for rung, rec in rungs.items():
        if rung not in ladder.rungs:
            problems.append(f"recipients.yaml: rungs: unknown ladder rung {rung!r}")
        if rec not in RECIPIENTS:
            problems.append(f"recipients.yaml: rungs: {rung!r} -> unknown recipient {rec!r}")
    problems.extend(f"recipients.yaml: rungs: ladder rung {r!r} has no recipient"
                    for r in ladder.rungs if r not in rungs)

    needs = {str(k): as_tuple(v) for k, v in (doc.get("needs") or {}).items()}
    for key, slots in needs.items():
        if key != "all" and key not in RECIPIENTS:
            problems.append(f"recipients.yaml: needs: unknown recipient {key!r}")
        problems.extend(f"recipients.yaml: needs.{key}: unknown slot {s!r}" for s in slots if s not in SLOT_NAMES)

    demand = tuple(dict(d) for d in doc.get("demand") or [] if isinstance(d, Mapping))
    for i, rule in enumerate(demand):
        where = f"recipients.yaml: demand[{i}]"
        problems.extend(check_when(rule.get("when") or {}, where))
        if "days" in rule:
            if not (isinstance(rule["days"], int) and rule["days"] > 0):
                problems.append(f"{where}: days must be a positive integer")
        else:
            fid, number = rule.get("fact"), rule.get("number")
            value = (((_facts().get(fid) if isinstance(fid, str) else None) or {}).get("numbers") or {}).get(number)
            if not (isinstance(value, int) and value > 0):
                problems.append(f"{where}: fact {fid!r} has no positive number {number!r}")
    if not demand or demand[-1].get("when") or "days" not in demand[-1]:
        problems.append("recipients.yaml: demand must end with a plain {days: N} rule (the default)")

    channels: dict[str, Mapping[str, Any]] = {}
    for cid, raw in (doc.get("channels") or {}).items():
        where = f"recipients.yaml: channel {cid!r}"
        raw = dict(raw or {})
        problems.extend(f"{where}: unknown field {f!r}" for f in raw if f not in ("facts",) + CHANNEL_FIELDS)
        cfacts = as_tuple(raw.get("facts"))
        check_facts(cfacts, where)
        for f in CHANNEL_FIELDS:
            if f in raw and not any(str(raw[f]).lower() in _fact_text(x) for x in cfacts):
                problems.append(f"{where}: {f} {raw[f]!r} is not in the text or source of its facts")
        channels[str(cid)] = {**{f: str(raw[f]) for f in CHANNEL_FIELDS if f in raw}, "facts": cfacts}

    recipients: dict[str, _Recipient] = {}
    for rid, raw in (doc.get("recipients") or {}).items():
        where = f"recipients.yaml: recipient {rid!r}"
        if rid not in RECIPIENTS:
            problems.append(f"{where}: unknown recipient")
        raw = dict(raw or {})
        problems.extend(f"{where}: unknown field {f!r}" for f in raw if f not in ("when", "ladder_rung", "variants"))
        problems.extend(check_when(raw.get("when") or {}, where))
        lr = raw.get("ladder_rung")
        if lr is not None and lr not in ladder.rungs:
            problems.append(f"{where}: unknown ladder rung {lr!r}")
        variants: list[_Variant] = []
        for i, v in enumerate(raw.get("variants") or []):
            vwhere = f"{where} variant {v.get('id', i)!r}"
            problems.extend(f"{vwhere}: unknown field {f!r}" for f in v if f not in ("id", "when", "send", "amount"))
            problems.extend(check_when(v.get("when") or {}, vwhere))
            send: list[tuple[str, Mapping[str, Any]]] = []
            for item in v.get("send") or []:
                cid, cwhen = (item, {}) if isinstance(item, str) else (item.get("channel"), item.get("when") or {})
                if cid not in channels:
                    problems.append(f"{vwhere}: unknown channel {cid!r}")
                problems.extend(check_when(cwhen, vwhere))
                send.append((str(cid), cwhen))
            if not send:
                problems.append(f"{vwhere}: no channels to send to")
            amount = v.get("amount")
            if amount is not None:
                nums = (_facts().get(amount.get("fact")) or {}).get("numbers") or {}
                if not (amount.get("currency") and amount.get("min") in nums and amount.get("max") in nums):
                    problems.append(f"{vwhere}: amount needs a currency and min/max numbers of its fact")
            variants.append(_Variant(str(v.get("id")), v.get("when") or {}, tuple(send), amount))
        if not variants:
            problems.append(f"{where}: no variants")
        elif variants[-1].when and rid in ("seller", "platform", "police"):
            problems.append(f"{where}: the last variant must have no condition (the default)")
        ids = [v.id for v in variants]
        problems.extend(f"{where}: variant {i!r} defined twice" for i in set(ids) if ids.count(i) > 1)
        recipients[str(rid)] = _Recipient(str(rid), raw.get("when") or {}, lr, tuple(variants))
    problems.extend(f"recipients.yaml: recipient {r!r} missing" for r in RECIPIENTS if r not in recipients)

    laws = {str(k): dict(v or {}) for k, v in (doc.get("laws") or {}).items()}
    for lid, law in laws.items():
        if law.get("unit") not in UNITS:
            problems.append(f"recipients.yaml: law {lid!r}: unit must be one of {UNITS}")

    basis: list[_Basis] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.get("basis") or []):
        bid = str(raw.get("id") or f"#{i}")
        where = f"recipients.yaml: basis {bid!r}"
        if bid in seen:
            problems.append(f"{where}: defined twice")
        seen.add(bid)
        fields = ("id", "for", "advice", "when", "deadline", "deadline_passed", "facts", "cite", "withdrawal")
        problems.extend(f"{where}: unknown field {f!r}" for f in raw if f not in fields)
        fors = as_tuple(raw.get("for"))
        problems.extend(f"{where}: unknown recipient {r!r}" for r in fors if r not in RECIPIENTS)
        adv = as_tuple(raw.get("advice"))
        if not adv:
            problems.append(f"{where}: needs the advice keys that say where it applies")
        problems.extend(f"{where}: unknown advice key {k!r}" for k in adv if k not in advice_keys)
        problems.extend(check_when(raw.get("when") or {}, where))
        for f in ("deadline", "deadline_passed"):
            if raw.get(f) is not None and raw[f] not in known_deadlines:
                problems.append(f"{where}: unknown {f} {raw[f]!r}")
        bfacts = as_tuple(raw.get("facts"))
        if not bfacts:
            problems.append(f"{where}: a legal basis needs its facts")
        check_facts(bfacts, where)
        cites = []
        for c in raw.get("cite") or []:
            law, refs = c.get("law"), as_tuple(c.get("refs"))
            if law not in laws:
                problems.append(f"{where}: unknown law {law!r}")
            for ref in refs:
                if not any(ref.lower() in _fact_text(f) for f in bfacts):
                    problems.append(f"{where}: reference {ref!r} of {law} is not in the text or source of its facts")
            cites.append({"law": str(law), "refs": refs})
        if not cites:
            problems.append(f"{where}: nothing to cite")
        basis.append(_Basis(bid, fors, adv, raw.get("when") or {}, raw.get("deadline"), raw.get("deadline_passed"),
                            bfacts, tuple(cites), bool(raw.get("withdrawal"))))

    kinds = as_tuple(doc.get("evidence_kinds"))
    return _Rules(rungs, needs, demand, kinds, recipients, channels, laws, tuple(basis), tuple(problems))


def recipients_problems() -> list[str]:
    """Problems in `rules/recipients.yaml` (empty list = fine)."""
    _rules.cache_clear()
    return list(_rules().problems)


def message_keys() -> set[str]:
    """Catalog keys this module's data names (the templates name the rest; see the tests)."""
    rules = _rules()
    keys = {"complaint_draft", "complaint_letter", "complaint_police", "complaint_macros", "complaint.blank",
            "complaint.cite"}
    keys |= {f"complaint.subject.{r}" for r in RECIPIENTS} | {f"complaint.send.{r}" for r in RECIPIENTS}
    keys |= {f"complaint.recipient.{r}" for r in RECIPIENTS}
    keys |= {f"complaint.channel.{c}" for c in rules.channels}
    keys |= {f"complaint.law.{law}" for law in rules.laws}
    keys |= {f"complaint.basis.{b.id}" for b in rules.basis}
    keys |= {f"complaint.evidence_kind.{k}" for k in rules.evidence_kinds + ("other",)}
    keys |= {f"complaint.party.{r}" for r in load_ladder().rungs}
    keys |= {f"complaint.next.{r}" for r in load_ladder().rungs}
    keys |= {f"complaint.history.{k}" for k in ("asked", "answer", "escalation", "note") + NUDGE_ANSWERS}
    return keys


# --------------------------------------------------------------------------- the stage

def _stage(slots: Mapping[str, Any], category: str, rung: str | None) -> tuple[str, str, list[str], str]:
    """(path id, the category used on it, its rungs for this case, the current rung)."""
    ladder = load_ladder()
    ladders = ladders_for(slots or {}, category)
    paths = [p.id for p in ladder.paths if rung in p.rungs] if rung else []
    if len(paths) == 1:
        path = paths[0]
    else:       # no rung yet, or a rung on several paths: the path the plan starts on
        case = normalise_case(slots or {}, category)
        path = next((p.id for p in ladder.paths if matches(p.when, case)), ladder.paths[-1].id)
    rungs = list(ladders[path]["rungs"])
    current = rung if rung is not None and rung in ladder.rungs else rungs[0]
    return path, ladders[path]["category"], rungs, current


def _amount_fits(cond: Mapping[str, Any] | None, slots: Slots) -> str | None:
    """None: no condition; "ok": within; "unknown": cannot tell; "out": outside."""
    if not cond:
        return None
    amount: Mapping[str, Any] = slots.get("amount") or {}
    if not isinstance(amount, Mapping) or amount.get("currency") != cond["currency"]:
        return "unknown"
    try:
        value = float(str(amount.get("value")))
    except ValueError:
        return "unknown"
    nums = _facts()[cond["fact"]]["numbers"]
    return "ok" if nums[cond["min"]] < value <= nums[cond["max"]] else "out"


def _variant(recipient: str, case: Mapping[str, Any], slots: Slots) -> _Variant | None:
    rules = _rules()
    rec = rules.recipients[recipient]
    if not matches(rec.when, case):
        return None
    if rec.ladder_rung and not matches(load_ladder().rungs[rec.ladder_rung].when, case):
        return None
    for v in rec.variants:
        if matches(v.when, case) and _amount_fits(v.amount, slots) != "out":
            return v
    return None


def recipients(slots: Slots, category: str, rung: str | None = None) -> list[str]:
    """The recipients that fit the case and its stage, the recommended one first.

    Recommended: the recipient of the current ladder rung (`rung`, or the first rung of the
    plan's path when None); then the others in the order of the case's ladder. A recipient
    that does not fit the case is not offered: no police without fraud, no payment provider
    for cash (nor a chargeback for a change of mind), no platform when the case names none.
    When the current rung's recipient does not fit, the first one that does comes first.
    """
    rules = _rules()
    slots = cast(Slots, dict(slots or {}))
    _, cat, rungs, current = _stage(slots, category, rung)
    case = normalise_case(slots, cat)
    order = [rules.rungs.get(current)] + [rules.rungs.get(r) for r in rungs] + list(RECIPIENTS)
    out: list[str] = []
    for rec in order:
        if rec and rec not in out and _variant(rec, case, slots) is not None:
            out.append(rec)
    return out


def needed(slots: Slots, recipient: str | None = None) -> tuple[str, ...]:
    """The slots a draft is not worth making without that the case lacks (finish the intake first)."""
    rules = _rules()
    want = list(rules.needs.get("all", ()))
    if recipient:
        want += [s for s in rules.needs.get(recipient, ()) if s not in want]
    return tuple(s for s in want if (slots or {}).get(s) in (None, "", {}, []))


# --------------------------------------------------------------------------- helpers

def _get(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _day(value: Any) -> str | None:
    """The ISO date of an ISO date/time string, a datetime or a date."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
        except ValueError:
            d = parse_date(text[:10])
            return d.isoformat() if d else None
    return None


def shorten(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters at a word boundary when it has one, with "…"."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,.;:，。；：、\n") + "…"


_URL = re.compile(
    r"(?:https?://[^\s<>\"'，。、）)]+|www\.[^\s<>\"'，。、）)]+"
    r"|(?<![\w@.])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|net|org|cn|io|app|vip|top|xyz|cc|co|me|tv|site"
    r"|online|shop|club|info|biz|live|bet|win|pro|hk|uk|eu|us)(?:/[^\s<>\"'，。、）)]*)?)(?![\w])",
    re.IGNORECASE)


def urls_in(*texts: str | None) -> list[str]:
    """Web addresses written in the user's texts (the police report asks for them)."""
    out: list[str] = []
    for text in texts:
        for m in _URL.finditer(text or ""):
            url = m.group(0).rstrip(".,;:!?")
            if url.lower() not in (u.lower() for u in out):
                out.append(url)
    return out


_ZH_DIGITS = "零一二三四五六七八九"


def zh_number(n: int) -> str:
    """1 -> 一, 10 -> 十, 25 -> 二十五, 105 -> 一百零五 (0 < n < 1000)."""
    if not 0 < n < 1000:
        return str(n)
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    out = ""
    if hundreds:
        out += _ZH_DIGITS[hundreds] + "百"
        if rest and tens == 0:
            out += "零"
    if tens:
        out += ("" if tens == 1 and not hundreds else _ZH_DIGITS[tens]) + "十"
    if ones:
        out += _ZH_DIGITS[ones]
    return out


def _numbers(fact_ids: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fid in fact_ids:
        for k, v in ((_facts().get(fid) or {}).get("numbers") or {}).items():
            out.setdefault(str(k), v)
    return out


# --------------------------------------------------------------------------- the draft parts

def _basis(recipient: str, case: Mapping[str, Any], slots: Slots, advice_keys: set[str],
           deadlines: Mapping[str, date], today: date) -> list[dict[str, Any]]:
    rules = _rules()
    contact = parse_date(slots.get("contact_date"))
    out = []
    for b in rules.basis:
        if recipient not in b.recipients or not advice_keys & set(b.advice) or not matches(b.when, case):
            continue
        if b.deadline and b.deadline in deadlines:
            end = deadlines[b.deadline]
            if end < today and not (contact and contact <= end):
                continue          # the period is over and was not used in time
        if b.deadline_passed and not (b.deadline_passed in deadlines and deadlines[b.deadline_passed] < today):
            continue
        cites = []
        for c in b.cite:
            law = rules.laws[c["law"]]
            cites.append({
                "law": c["law"], "unit": law["unit"], "refs": list(c["refs"]),
                "refs_zh": [zh_number(int(r)) if law.get("cn") and r.isdigit() else r for r in c["refs"]],
            })
        out.append({"id": b.id, "num": _numbers(b.facts), "cites": cites, "facts": list(b.facts),
                    "withdrawal": b.withdrawal})
    return out


def _demand(case: Mapping[str, Any], today: date) -> tuple[int, str | None]:
    # The advice's own reply-by date counts the same days (dialogs.advice.reply_by).
    return demand_period(case)


def _history(slots: Slots, timeline: Sequence[Any]) -> list[dict[str, Any]]:
    """What was asked and what each side answered, with dates, oldest first."""
    events = [e for e in timeline or () if _get(e, "kind") in HISTORY_EVENTS]
    events.sort(key=lambda e: str(_get(e, "at") or ""))
    first: list[dict[str, Any]] = []
    contacted = slots.get("contacted")
    if contacted or (contacted is None and slots.get("contact_date")):
        first.append({"kind": "asked", "who": "seller", "date": _day(slots.get("contact_date"))})
    answer = slots.get("seller_answer")
    if answer:
        reported = None
        for e in events:
            data = _get(e, "data") or {}
            if _get(e, "kind") == "answer" and data.get("slot") == "seller_answer":
                reported = _day(_get(e, "at"))
        first.append({"kind": "answer", "who": "seller", "answer": answer, "date": None, "reported": reported})
    later: list[dict[str, Any]] = []
    for e in events:
        kind, data, at = _get(e, "kind"), dict(_get(e, "data") or {}), _day(_get(e, "at"))
        if kind == "nudge_answer" and data.get("answer") in NUDGE_ANSWERS:
            rung = data.get("rung")            # the rung, or [before, after] when it moved
            who = rung[0] if isinstance(rung, (list, tuple)) and rung else rung
            if data["answer"] == "asked_more":   # "they want me to pay more": the seller or platform
                who = "seller"
            later.append({"kind": data["answer"], "who": str(who or "seller"), "date": at})
        elif kind == "escalation":
            later.append({"kind": "escalation", "who": str(data.get("rung") or "seller"), "date": at})
        elif kind == "note" and str(data.get("text") or "").strip():
            text = str(data["text"]).strip()
            later.append({"kind": "note", "who": "user", "date": at, "text": text,
                          "text_short": shorten(text, SHORT["note"])})
    return first + later


def _evidence(records: Sequence[Any]) -> list[dict[str, Any]]:
    kinds = _rules().evidence_kinds
    out = []
    for r in records or ():
        kind = str(_get(r, "kind") or "other")
        text = str(_get(r, "text") or "").strip()
        out.append({"kind": kind if kind in kinds else "other", "text": text or None,
                    "text_short": shorten(text, SHORT["evidence"]) if text else None,
                    "date": _day(_get(r, "at")), "file": bool(_get(r, "file_id"))})
    return out


def _channels(variant: _Variant, case: Mapping[str, Any]) -> list[dict[str, Any]]:
    rules = _rules()
    return [{"id": cid, **{k: v for k, v in rules.channels[cid].items() if k != "facts"},
             "num": _numbers(rules.channels[cid]["facts"])}
            for cid, cwhen in variant.send if matches(cwhen, case)]


def _missing(recipient: str, slots: Slots) -> tuple[str, ...]:
    shown = list(SHOWN_SLOTS)
    contacted = slots.get("contacted")
    if not (contacted or (contacted is None and slots.get("contact_date"))):
        shown.remove("contact_date")
    return tuple(s for s in shown if slots.get(s) in (None, "", {}, []))


# --------------------------------------------------------------------------- draft

def draft(slots: Slots, category: str, recipient: str, letter_locale: str,
          timeline: Sequence[Any], evidence: Sequence[Any], today: date, *,
          rung: str | None = None, user_name: str | None = None) -> Draft:
    """The complaint draft for `recipient` in `letter_locale` (independent of the chat's language).

    Raises ValueError for an unknown recipient or locale, or a recipient that does not fit the
    case (offer only `recipients(...)`). Facts the case lacks stay blanks (`missing`); nothing
    is invented. `rung`: the plan's current rung, as for `recipients()` (it only matters to tell
    the fraud path of a case whose slots do not show the fraud). `user_name`: the sender's
    name when known (else a blank).
    """
    if recipient not in RECIPIENTS:
        raise ValueError(f"unknown recipient {recipient!r}")
    if letter_locale not in LOCALES:
        raise ValueError(f"unknown letter locale {letter_locale!r}")
    if not isinstance(today, date) or isinstance(today, datetime):
        raise ValueError("today must be a date")
    rules = _rules()
    slots = cast(Slots, dict(slots or {}))
    path, cat, rungs, _ = _stage(slots, category, rung)
    case = normalise_case(slots, cat)
    variant = _variant(recipient, case, slots)
    if variant is None:
        raise ValueError(f"recipient {recipient!r} does not fit this case")

    advice = advise(slots, cat, today)
    advice_keys = set(advice.steps) | set(advice.warnings)
    deadline_dates = {d.id: d.date for d in advice.deadlines}
    basis = _basis(recipient, case, slots, advice_keys, deadline_dates, today)

    # the recipient's rung(s) on this path, its deadlines, and what comes after it
    my_rungs = [r for r in rungs if rules.rungs.get(r) == recipient]
    ladder = load_ladder()
    own_deadlines = {d for r in my_rungs for d in ladder.rungs[r].deadlines}
    deadlines = [{"id": d.id, "name": f"deadline.{d.id}", "date": d.date.isoformat(),
                  "estimate": d.id in _estimates(), "days_left": d.days_left}
                 for d in advice.deadlines if d.id in own_deadlines and d.days_left >= 0]
    after = rungs[rungs.index(my_rungs[0]) + 1:] if my_rungs else []
    fitting = set(recipients(slots, category, rung))
    next_rungs = [r for r in after if r == "court" or rules.rungs.get(r) in fitting]

    story = str(slots.get("story") or "").strip()
    amount = slots.get("amount") if isinstance(slots.get("amount"), Mapping) and slots["amount"].get("value") else None
    contacted = slots.get("contacted")
    days, demand_fact = _demand(case, today)
    demand_date = None if recipient == "police" else date.fromordinal(today.toordinal() + days)
    ev = _evidence(evidence)
    channels = _channels(variant, case)
    missing = _missing(recipient, slots)

    used_facts: list[str] = []
    for b in basis:
        used_facts.extend(f for f in b["facts"] if f not in used_facts)
    for c in channels:
        used_facts.extend(f for f in rules.channels[c["id"]]["facts"] if f not in used_facts)
    if demand_fact and demand_fact not in used_facts:
        used_facts.append(demand_fact)

    context: dict[str, Any] = {
        "recipient": recipient,
        "variant": variant.id,
        "path": path,
        "jurisdiction": case["jurisdiction"],
        "category": cat,
        "fraud": bool(case["fraud"]),
        "digital": bool(case["digital"]),
        "today": today.isoformat(),
        "user_name": (user_name or "").strip() or None,
        "merchant": str(slots.get("merchant") or "").strip() or None,
        "purchase_type": slots.get("purchase_type"),
        "payment_method": slots.get("payment_method"),
        "amount": dict(amount) if amount else None,
        "purchase_date": _day(slots.get("purchase_date")),
        "problem": slots.get("problem"),
        "problem_date": _day(slots.get("problem_date")),
        "contacted": bool(contacted or (contacted is None and slots.get("contact_date"))),
        "contact_date": _day(slots.get("contact_date")),
        "seller_answer": slots.get("seller_answer"),
        "story": story or None,
        "story_short": shorten(story, SHORT["story"]) if story else None,
        "story_cut": len(story) > SHORT["story"],
        "urls": urls_in(slots.get("merchant"), story, *(e["text"] for e in ev)) if recipient == "police" else [],
        "history": _history(slots, timeline),
        "basis": basis,
        # the letter is the notice of a no-reason return / withdrawal / cancellation
        "withdrawal": cat in ("changed_mind", "other") and any(b["withdrawal"] for b in basis),
        "demand": {"days": days, "date": demand_date.isoformat() if demand_date else None, "fact": demand_fact},
        "amount_check": _amount_fits(variant.amount, slots),
        "evidence": ev,
        "checklist": list(advice.evidence),
        "channels": channels,
        "deadlines": deadlines,
        "next": next_rungs,
        "missing": list(missing),
        "facts": used_facts,
    }
    return Draft(
        recipient=recipient,
        locale=letter_locale,
        subject_key=f"complaint.subject.{recipient}",
        context=context,
        missing=missing,
        demand_date=demand_date,
        how_to_send_key=f"complaint.send.{recipient}",
        variant=variant.id,
        facts=tuple(used_facts),
    )


@lru_cache(maxsize=None)
def _estimates() -> frozenset[str]:
    doc = rules_file("deadlines.yaml")
    return frozenset(str(d["id"]) for d in doc.get("deadlines") or [] if isinstance(d, Mapping) and d.get("estimate"))
