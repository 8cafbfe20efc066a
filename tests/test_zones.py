"""One time-zone rule for every part of the bot (dialogs/zones.py): the user's own zone, else the
zone of the case's jurisdiction, else the default; and what /timezone understands."""
from __future__ import annotations

from datetime import timezone
from zoneinfo import ZoneInfo

import pytest

from dialogs.zones import parse_zone, resolve_zone, zone_name


def test_the_users_zone_comes_first_then_the_jurisdictions_then_the_default():
    assert resolve_zone("Asia/Tokyo", "UK", timezone.utc) == (ZoneInfo("Asia/Tokyo"), "set")
    assert resolve_zone(None, "UK", timezone.utc) == (ZoneInfo("Europe/London"), "jurisdiction")
    assert resolve_zone(None, "OTHER", timezone.utc) == (timezone.utc, "default")
    assert resolve_zone(None, None, timezone.utc) == (timezone.utc, "default")


def test_a_stored_zone_that_is_not_one_is_passed_over_for_the_jurisdictions():
    """The two copies of the rule disagreed here: one fell back to the default zone."""
    assert resolve_zone("Mars/Olympus_Mons", "CN", timezone.utc) == (ZoneInfo("Asia/Shanghai"), "jurisdiction")


@pytest.mark.parametrize("typed, zone", [
    ("Asia/Shanghai", "Asia/Shanghai"), ("asia/shanghai", "Asia/Shanghai"), ("  Europe/Berlin ", "Europe/Berlin"),
    ("new york", "America/New_York"), ("北京", "Asia/Shanghai"), ("伦敦", "Europe/London"), ("UTC", "UTC"),
    ("Mars", None), ("", None), ("x" * 65, None),
])
def test_what_timezone_understands(typed, zone):
    assert parse_zone(typed) == zone


def test_a_zone_is_named_by_its_tz_database_name():
    assert zone_name(ZoneInfo("Europe/Brussels")) == "Europe/Brussels"
    assert zone_name(timezone.utc) == "UTC"
