"""`when` conditions of the rules files (advice, deadlines, ladder, recipients): checked, and
matched against a case. The fields are documented at the top of `dialogs/advice.py`.

`matches(when, case)` reads a condition as it is; `compile_when(when)` turns it once into a
function of the case, for the rules matched at every verdict (a hundred conditions each time).
Both give the same answer for every condition, well-formed or not.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from functools import partial
from typing import Any, Callable, Iterable, Mapping

from dialogs.model import CATEGORIES, JURISDICTIONS, PAYMENT_METHODS, PROBLEMS, PURCHASE_TYPES, SELLER_ANSWERS

SLOT_NAMES = (
    "jurisdiction", "purchase_type", "merchant", "payment_method", "amount", "purchase_date",
    "problem", "problem_date", "contacted", "contact_date", "seller_answer", "story",
    "statement_date", "expected_date",
)
VALUES: dict[str, tuple[Any, ...]] = {
    "category": CATEGORIES,
    "jurisdiction": JURISDICTIONS,
    "payment_method": PAYMENT_METHODS,
    "purchase_type": PURCHASE_TYPES,
    "problem": PROBLEMS,
    "seller_answer": SELLER_ANSWERS,
    "contacted": (True, False),
}
FLAGS = ("fraud", "digital", "gambling")
WHEN_FIELDS = set(VALUES) | set(FLAGS) | {"merchant_any", "missing", "present", "any", "not", "amount_over"}
_EMPTY: tuple[object, ...] = (None, "", {}, [])

Test = Callable[[Mapping[str, Any]], bool]


def check_when(when: Any, where: str, allow_flags: bool = True) -> list[str]:
    """Everything wrong with a `when` map, each problem prefixed with `where`."""
    problems: list[str] = []
    if not isinstance(when, Mapping):
        return [f"{where}: when must be a map"]
    for field, allowed in when.items():
        if field not in WHEN_FIELDS or (field in FLAGS and not allow_flags):
            problems.append(f"{where}: unknown when field {field!r}")
            continue
        if field == "not":
            problems.extend(check_when(allowed, f"{where} (not)", allow_flags))
            continue
        if field == "amount_over":
            if not (isinstance(allowed, Mapping) and allowed
                    and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in allowed.items())):
                problems.append(f"{where}: amount_over must map currencies to numbers")
            continue
        if field == "any":
            if not isinstance(allowed, list) or not allowed:
                problems.append(f"{where}: any must be a non-empty list of when maps")
            else:
                for sub in allowed:
                    problems.extend(check_when(sub, f"{where} (any)", allow_flags))
            continue
        if not isinstance(allowed, list) or not allowed:
            problems.append(f"{where}: {field} must be a non-empty list")
            continue
        if field in VALUES:
            for value in allowed:
                if value is not None and value not in VALUES[field]:
                    problems.append(f"{where}: {field} has unknown value {value!r}")
        elif field in FLAGS:
            problems.extend(f"{where}: {field} takes true/false, not {v!r}" for v in allowed
                            if not isinstance(v, bool))
        elif field in ("missing", "present"):
            problems.extend(f"{where}: {field} names unknown slot {v!r}" for v in allowed
                            if v not in SLOT_NAMES)
    return problems


def parse_date(value: Any) -> date | None:
    """A slot's date (ISO text, date or datetime), or None when it holds none."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- matching, as read

_LATIN = re.compile(r"^[\x00-\x7f]+$")


def _mentioned_text(case: Mapping[str, Any]) -> str:
    return " ".join(str(case.get(k) or "") for k in ("merchant", "story")).lower()


def _mentions(case: Mapping[str, Any], words: Iterable[str]) -> bool:
    text = _mentioned_text(case)
    if not text.strip():
        return False
    for word in words:
        w = str(word).lower()
        if _LATIN.match(w):
            if re.search(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])", text):
                return True
        elif w in text:
            return True
    return False


def _amount_over(limits: Mapping[str, Any], case: Mapping[str, Any]) -> bool:
    """False only when the case's amount is known, in a currency of `limits`, and not over it."""
    amount = case.get("amount")
    if not isinstance(amount, Mapping):
        return True
    limit = limits.get(str(amount.get("currency") or ""))
    if limit is None:
        return True
    try:
        return float(str(amount.get("value"))) > float(limit)
    except (TypeError, ValueError):
        return True


def _field_matches(field: str, allowed: Any, case: Mapping[str, Any]) -> bool:
    if field == "amount_over":
        return _amount_over(allowed, case)
    if field == "any":
        return any(matches(sub, case) for sub in allowed)
    if field == "not":
        return not excluded(allowed, case)
    if field == "merchant_any":
        return _mentions(case, allowed)
    if field == "missing":
        return all(case.get(s) in _EMPTY for s in allowed)
    if field == "present":
        return all(case.get(s) not in _EMPTY for s in allowed)
    return case.get(field) in allowed


def matches(when: Mapping[str, Any], case: Mapping[str, Any]) -> bool:
    """Whether every field of `when` holds for the case."""
    return all(_field_matches(field, allowed, case) for field, allowed in when.items())


def excluded(not_map: Mapping[str, Any], case: Mapping[str, Any]) -> bool:
    """Whether any field of a `not` map holds for the case."""
    return any(_field_matches(field, allowed, case) for field, allowed in not_map.items())


# --------------------------------------------------------------------------- matching, compiled

def compile_when(when: Mapping[str, Any]) -> Test:
    """`matches(when, case)` as a function of the case, with its words and lists prepared once."""
    try:
        # Plain value lists are checked in one loop, the other fields by a function each. No
        # compiled test raises, so checking them in another order than written changes nothing.
        plain = tuple((field, tuple(allowed) if isinstance(allowed, list) else allowed)
                      for field, allowed in when.items() if field not in _SPECIAL)
        tests = tuple(_compile_field(field, allowed) for field, allowed in when.items() if field in _SPECIAL)
    except Exception:   # a malformed map (reported by check_when) fails as it would when read
        return partial(_matches_as_read, when)
    if not plain and not tests:
        return _always
    if not plain and len(tests) == 1:
        return tests[0]

    def all_hold(case: Mapping[str, Any]) -> bool:
        for field, values in plain:
            if case.get(field) not in values:
                return False
        for test in tests:
            if not test(case):
                return False
        return True
    return all_hold


_SPECIAL = ("any", "not", "merchant_any", "missing", "present", "amount_over")


def _matches_as_read(when: Mapping[str, Any], case: Mapping[str, Any]) -> bool:
    return matches(when, case)


def _always(case: Mapping[str, Any]) -> bool:
    return True


def _compile_field(field: str, allowed: Any) -> Test:
    if field == "amount_over":
        return partial(_amount_over, dict(allowed))
    if field == "any":
        subs = tuple(compile_when(sub) for sub in allowed)
        return lambda case: any(sub(case) for sub in subs)
    if field == "not":
        parts = tuple(_compile_field(f, a) for f, a in allowed.items())
        return lambda case: not any(part(case) for part in parts)
    if field == "merchant_any":
        return partial(_mentions_any, _word_tests(allowed))
    if field == "missing":
        slots = tuple(allowed)
        return lambda case: all(case.get(s) in _EMPTY for s in slots)
    if field == "present":
        slots = tuple(allowed)
        return lambda case: all(case.get(s) not in _EMPTY for s in slots)
    values = tuple(allowed) if isinstance(allowed, list) else allowed
    return lambda case: case.get(field) in values


def _word_tests(words: Iterable[Any]) -> tuple[tuple[str, re.Pattern[str] | None], ...]:
    out = []
    for word in words:
        w = str(word).lower()
        out.append((w, re.compile(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])") if _LATIN.match(w) else None))
    return tuple(out)


def _mentions_any(words: tuple[tuple[str, re.Pattern[str] | None], ...], case: Mapping[str, Any]) -> bool:
    text = _mentioned_text(case)
    if not text.strip():
        return False
    for word, pattern in words:
        if pattern is None:
            if word in text:
                return True
        elif word in text and pattern.search(text):
            return True
    return False
