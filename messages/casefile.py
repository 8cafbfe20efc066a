"""How the case file reads outside a chat message: the deadlines of cases as an iCalendar file in
the user's language (the events themselves: dialogs/calendar.py)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable, Mapping

from dialogs import calendar
from messages import plain, render


def calendar_file(locale: str, cases: Iterable[tuple[int, Mapping[str, Any] | None]], *, zone_name: str,
                  now: datetime) -> tuple[bytes | None, int]:
    """The deadlines still ahead of these cases ((case id, verdict with `advice` and `case`), the
    verdict None during the intake) as one .ics, and how many; (None, 0) when there is none."""
    items = []
    for case_id, result in cases:
        if not result:
            continue
        case = result["case"]
        for d, alarm in calendar.upcoming(result["advice"]["deadlines"], case):
            context = {"d": d, "case_id": case_id, "case": case}
            items.append(calendar.Item(case_id, d["id"], date.fromisoformat(d["date"]),
                                       plain(render(locale, "calendar.summary", **context)),
                                       plain(render(locale, "calendar.description", **context)),
                                       alarm, plain(render(locale, "calendar.alarm", **context))))
    if not items:
        return None, 0
    return calendar.ics(items, zone_name=zone_name, calendar_name=plain(render(locale, "calendar.name")),
                        now=now), len(items)
