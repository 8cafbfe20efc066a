"""A case's deadlines as an iCalendar file (RFC 5545) the user imports into their own calendar.

Each deadline still ahead is an all-day event on its date, titled with the deadline's name, what
to do in its description, and an alarm at the bot's own deadline reminder (`ladder.yaml`
`deadline_nudges`: the same days before, at the same hour). The UID is the case's and the
deadline's (`case-12-chargeback@refund-advisor`), and SEQUENCE grows with the time the file is
made, so importing a newer file updates the events instead of adding them twice.

Pure: the texts are rendered by the caller, `now` is given; `icalendar` writes the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from icalendar import Alarm, Calendar, Event

from dialogs.conditions import parse_date
from dialogs.followup import deadline_alarm

PRODID = "-//refund-advisor//case deadlines//EN"
UID_DOMAIN = "refund-advisor"


@dataclass(frozen=True)
class Item:
    """One deadline of one case, with its texts rendered in the user's language."""
    case_id: int
    deadline_id: str
    day: date
    summary: str
    description: str
    alarm: timedelta          # from the start of the day (negative: before)
    alarm_text: str


def uid(case_id: int, deadline_id: str) -> str:
    return f"case-{int(case_id)}-{deadline_id}@{UID_DOMAIN}"


def upcoming(deadlines: Iterable[Mapping[str, Any]], slots: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], timedelta]]:
    """The advice's deadlines (`Advice.context()["deadlines"]`) a calendar shows, each with its
    alarm offset: those still ahead and not met already, by date."""
    out = []
    for d in deadlines:
        if d.get("days_left", -1) < 0 or d.get("met"):
            continue
        day = date.fromisoformat(d["date"])
        start = parse_date((slots or {}).get(d.get("basis") or ""))
        out.append((d, deadline_alarm(day, start)))
    out.sort(key=lambda pair: (pair[0]["date"], pair[0]["id"]))
    return out


def ics(items: Iterable[Item], *, zone_name: str, calendar_name: str, now: datetime) -> bytes:
    """The items as one VCALENDAR (all-day events in the user's zone, one alarm each)."""
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    stamp = now.astimezone(timezone.utc).replace(microsecond=0)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", calendar_name)
    cal.add("x-wr-timezone", zone_name)
    for item in items:
        event = Event()
        event.add("uid", uid(item.case_id, item.deadline_id))
        event.add("dtstamp", stamp)
        event.add("last-modified", stamp)
        event.add("sequence", int(stamp.timestamp()) // 60)
        event.add("dtstart", item.day)
        event.add("dtend", item.day + timedelta(days=1))
        event.add("summary", item.summary)
        event.add("description", item.description)
        event.add("transp", "TRANSPARENT")
        event.add("categories", [UID_DOMAIN])
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", item.alarm_text)
        alarm.add("trigger", item.alarm)
        event.add_component(alarm)
        cal.add_component(event)
    ical: bytes = cal.to_ical()     # icalendar types it loosely
    return ical
