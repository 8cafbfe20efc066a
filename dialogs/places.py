"""The places a user can live in, as data (rules/places.yaml): currency, time zone, and how
an amount with a shared sign ("元", "$") is read there. Pure: no I/O after import."""
from __future__ import annotations

from typing import Any, Mapping

from dialogs.rulefiles import rules_file

_DATA = rules_file("places.yaml")
_PLACES: Mapping[str, Mapping[str, Any]] = _DATA["places"]
_EXPLICIT: Mapping[str, tuple[str, ...]] = {k: tuple(v) for k, v in _DATA.get("explicit", {}).items()}

CURRENCY_OF: dict[str, str] = {p: str(v["currency"]) for p, v in _PLACES.items()}
ZONE_OF: dict[str, str] = {p: str(v["zone"]) for p, v in _PLACES.items()}
PLACE_OF_CURRENCY: dict[str, str] = {c: p for p, c in CURRENCY_OF.items()}


def local_currency(currency: str | None, text: str, jurisdiction: str | None) -> str | None:
    """The currency an amount is in for a user of `jurisdiction`: the place's own when the
    amount was read as a currency its sign shares elsewhere (元 as CNY, $ as USD) and `text`
    does not name that currency itself; otherwise `currency` unchanged."""
    place = _PLACES.get(jurisdiction or "")
    if not place or jurisdiction is None:
        return currency
    if currency is None:
        return CURRENCY_OF[jurisdiction]
    if currency not in place.get("shared", ()):
        return currency
    lowered = (text or "").lower()
    if any(word in lowered for word in _EXPLICIT.get(currency, ())):
        return currency
    return CURRENCY_OF[jurisdiction]


def place_of_amount(currency: str | None, written: str) -> str | None:
    """The place an amount in a story says the user lives in: the place of its currency, unless
    that currency was read from a sign several places share (元, $) and the text does not name it."""
    place = PLACE_OF_CURRENCY.get(currency or "")
    if place is None or currency is None:
        return None
    shared = any(currency in p.get("shared", ()) for p in _PLACES.values())
    lowered = (written or "").lower()
    if shared and not any(word in lowered for word in _EXPLICIT.get(currency, ())):
        return None
    return place


def localised_amount(amount: Mapping[str, Any] | None, story: str, jurisdiction: str | None) -> Mapping[str, Any] | None:
    """An amount slot with its currency read for where the user lives (see local_currency)."""
    if not amount:
        return amount
    currency = local_currency(amount.get("currency"), story, jurisdiction)
    return amount if currency == amount.get("currency") else {**amount, "currency": currency}
