"""Time zones, pure: which zone a user's dates and reminders are in, and what a typed zone means.

One rule everywhere (the intake's "today", reminders, complaint dates, /timezone): the zone
the user set with /timezone, else the zone of the case's jurisdiction, else the default. A
name that is not a zone (it cannot be stored by /timezone, but a database may hold anything)
is passed over for the next one.
"""
from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, available_timezones

from dialogs.places import ZONE_OF

# The zone of each place the intake offers (dialogs/rules/places.yaml).
JURISDICTION_ZONE = ZONE_OF
ZONE_INPUT_MAX = 64
# Place names a Chinese-speaking user may type for /timezone.
ZONE_ALIASES = {
    "北京": "Asia/Shanghai", "上海": "Asia/Shanghai", "中国": "Asia/Shanghai", "北京时间": "Asia/Shanghai",
    "香港": "Asia/Hong_Kong", "澳门": "Asia/Macau", "台北": "Asia/Taipei", "台湾": "Asia/Taipei",
    "新加坡": "Asia/Singapore", "东京": "Asia/Tokyo", "日本": "Asia/Tokyo", "首尔": "Asia/Seoul",
    "伦敦": "Europe/London", "英国": "Europe/London", "巴黎": "Europe/Paris", "柏林": "Europe/Berlin",
    "纽约": "America/New_York", "洛杉矶": "America/Los_Angeles", "温哥华": "America/Vancouver",
    "多伦多": "America/Toronto", "悉尼": "Australia/Sydney",
}

ZoneSource = Literal["set", "jurisdiction", "default"]


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return None


def resolve_zone(user_zone: str | None, jurisdiction: object, default: tzinfo) -> tuple[tzinfo, ZoneSource]:
    """The zone to use and where it comes from: the user's own, else the jurisdiction's, else `default`."""
    own = _zone(user_zone)
    if own is not None:
        return own, "set"
    local = _zone(JURISDICTION_ZONE.get(str(jurisdiction or "")))
    if local is not None:
        return local, "jurisdiction"
    return default, "default"


def zone_name(zone: tzinfo) -> str:
    """A zone's tz database name (`Asia/Shanghai`), or its description for a fixed offset."""
    return str(getattr(zone, "key", None) or zone)


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def parse_zone(text: str) -> str | None:
    """A tz database name (Area/City, or UTC) from what the user typed; None if it is not one.
    Case and spaces do not matter; a city alone works when only one zone has that name."""
    text = " ".join(text.split())
    if not text or len(text) > ZONE_INPUT_MAX:
        return None
    if text in ZONE_ALIASES:
        return ZONE_ALIASES[text]
    names = _zone_names()
    key = text.replace(" ", "_").lower()
    if key in names:
        return names[key]
    cities = [name for lower, name in names.items() if "/" in lower and lower.rsplit("/", 1)[1] == key
              and not lower.startswith(("etc/", "posix/", "right/"))]
    return cities[0] if len(cities) == 1 else None
