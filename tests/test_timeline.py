"""The timeline read back (dialogs/timeline.py + messages timeline.entry): every kind of event says
what happened, in the user's zone and language; the calendar file (dialogs/calendar.py)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import icalendar
import pytest

from dialogs import calendar, timeline
from dialogs.graph import load
from messages import plain, render

TYPES = {n.slot: n.type for n in load().nodes.values() if n.slot}
AT = "2026-12-05T14:09:30+00:00"

# One event of every kind the bot records, with the data it records.
EVENTS = [
    ("opened", {}),
    ("pressed", {"option": "CN"}),
    ("answer", {"slot": "jurisdiction", "value": "CN", "text": None}),
    ("said", {"text": "1299"}),
    ("answer", {"slot": "amount", "value": {"value": "1299.00", "currency": "CNY"}, "text": "1299"}),
    ("said", {"text": "it never arrived"}),
    ("answer", {"slot": "problem", "value": "non_delivery", "text": "it never arrived"}),
    ("said", {"text": "skip"}),
    ("skipped", {"slot": "statement_date"}),
    ("command", {"name": "back"}),
    ("back", {"to": "problem"}),
    ("story", {"text": "我在淘宝买的 <b>耳机</b> 一直没发货", "found": {"merchant": "淘宝"}}),
    ("advice", {"category": "maintenance_stalling", "confidence": 0.93, "signals": []}),
    ("followup_started", {"path": "consumer", "rung": "seller", "rungs": ["seller"], "category": "non_delivery"}),
    ("nudge", {"kind": "regular", "rung": "seller", "n": 0}),
    ("nudge", {"kind": "deadline", "rung": "seller", "deadline_id": "card_chargeback"}),
    ("nudge_answer", {"answer": "refused", "rung": ["seller", "platform"], "status": ["waiting", "escalated"]}),
    ("nudge_answer", {"answer": "snooze_3d", "rung": "platform", "status": "escalated",
                      "snoozed_until": "2026-12-08T14:09:30+00:00"}),
    ("escalation", {"rung": "platform", "path": "consumer", "recipient": "platform", "letter_locale": "en"}),
    ("draft_complaint", {"rung": "platform", "path": "consumer", "category": "non_delivery"}),
    ("complaint_draft", {"recipient": "seller", "letter_locale": "zh", "rung": "platform"}),
    ("complaint_draft", {"recipient": "regulator", "letter_locale": "zh-Hant", "rung": "regulator"}),
    ("evidence", {"kind": "document", "file_id": "F1", "text": "receipt.pdf"}),
    ("category_changed", {"before": "defect", "after": "mismatch"}),
    ("reminder_cadence", {"cadence": "3d"}),
    ("note", {"text": "I called them again & they hung up"}),
    ("resolved", {"outcome": "partial"}),
    ("said", {"text": "hello?"}),
]


def rendered(locale: str, zone: str = "Asia/Shanghai") -> list[str]:
    events = [{"at": AT, "kind": k, "data": d} for k, d in EVENTS]
    return [plain(render(locale, "timeline.entry", e=e)) for e in timeline.entries(events, ZoneInfo(zone), TYPES)]


@pytest.mark.parametrize("locale", ["en", "zh", "zh-Hant"])
def test_every_kind_says_what_happened(locale):
    lines = rendered(locale)
    assert all(" · " in line for line in lines)
    whats = [line.split(" · ", 1)[1] for line in lines]
    kinds = {k for k, _ in EVENTS}
    for what in whats:
        assert what not in kinds and "event." not in what and "timeline." not in what, what


def test_the_english_entries():
    lines = rendered("en")
    assert lines[0] == "5 Dec 2026 22:09 · Case opened"                  # Shanghai time, UTC+8
    whats = [line.split(" · ", 1)[1] for line in lines]
    assert whats[1:4] == ["Where you live: Mainland China", "Amount: ¥1,299.00", "What went wrong: "
                          + plain(render("en", "opt.problem.non_delivery"))]
    assert "Skipped the question “Statement date”" in whats
    assert "Went back to the previous question" in whats
    assert "You told more: “我在淘宝买的 <b>耳机</b> 一直没发货” (noted: Seller 淘宝)" in whats
    assert "Advice given: Refund stalled with excuses (93% sure)" in whats
    assert "Reminders started; first step: the seller" in whats
    assert "Reminder sent (stage: the seller)" in whats
    assert any(w.startswith("Reminder sent: Card chargeback window") and w.endswith("is near") for w in whats)
    assert "Under the reminder you pressed “They refused” → next stage: the platform or app store" in whats
    assert "Under the reminder you pressed “In 3 days” → reminder on 8 Dec 2026" in whats
    assert ("Escalated to the platform or app store: Request to the platform or app store drafted (in English)"
            in whats)
    assert "Letter to the seller drafted (in Chinese)" in whats
    assert "Evidence added: document “receipt.pdf”" in whats
    assert "Situation changed by you: Defective or broken → Not as described" in whats
    assert "Reminder schedule: every 3 days" in whats
    assert "Note added: “I called them again & they hung up”" in whats
    assert "Case closed: part of the money back" in whats
    # the input of a turn that did something is said once, by what it did; alone, it is kept
    assert whats.count("You wrote “hello?” (not taken as an answer)") == 1
    assert not any(w.startswith("You wrote “1299”") or w.startswith("You pressed") for w in whats)


def test_the_chinese_entries_use_the_chinese_date_format():
    lines = rendered("zh")
    assert lines[0] == "2026年12月5日 22:09 · 创建案件"
    assert "2026年12月5日 22:09 · 金额：¥1,299.00" in lines


def test_entries_are_in_the_zone_given():
    (line,) = [plain(render("en", "timeline.entry", e=e)) for e in timeline.entries(
        [{"at": "2026-07-01T03:30:00+00:00", "kind": "opened", "data": {}}], ZoneInfo("America/New_York"))]
    assert line == "30 Jun 2026 23:30 · Case opened"


def test_quotes_are_shortened_to_one_line():
    assert timeline.shorten("a  b\n c") == "a b c"
    long = "word " * 40
    short = timeline.shorten(long)
    assert short.endswith("…") and len(short) <= timeline.QUOTE_MAX
    chinese = timeline.shorten("一直没发货" * 20)
    assert chinese.endswith("…") and len(chinese) <= timeline.QUOTE_MAX // 2


def test_the_next_deadline_is_the_first_ahead_and_not_met():
    deadlines = [{"id": "a", "date": "2026-12-01", "days_left": -4, "met": False},
                 {"id": "b", "date": "2026-12-09", "days_left": 4, "met": True},
                 {"id": "c", "date": "2026-12-20", "days_left": 15, "met": False},
                 {"id": "d", "date": "2026-12-10", "days_left": 5, "met": False}]
    assert timeline.next_deadline(deadlines)["id"] == "d"
    assert timeline.next_deadline(deadlines[:2]) is None


def test_calendar_events_are_all_day_with_one_alarm_and_a_stable_uid():
    items = [calendar.Item(7, "card_chargeback", date(2027, 1, 31), "Card chargeback window – case #7",
                           "Ask your card issuer; before this date.", timedelta(days=-3, hours=10), "Chargeback: 31 Jan")]
    now = datetime(2026, 12, 5, 14, 9, 30, tzinfo=timezone.utc)
    first = icalendar.Calendar.from_ical(calendar.ics(items, zone_name="Asia/Shanghai", calendar_name="x", now=now))
    later = icalendar.Calendar.from_ical(calendar.ics(items, zone_name="Asia/Shanghai", calendar_name="x",
                                                      now=now + timedelta(hours=1)))
    (event,) = first.walk("VEVENT")
    (again,) = later.walk("VEVENT")
    assert str(first["VERSION"]) == "2.0" and first["PRODID"]
    assert event.decoded("DTSTART") == date(2027, 1, 31) and event.decoded("DTEND") == date(2027, 2, 1)
    assert str(event["UID"]) == str(again["UID"]) == "case-7-card_chargeback@refund-advisor"
    assert int(again["SEQUENCE"]) > int(event["SEQUENCE"])
    (alarm,) = event.walk("VALARM")
    assert alarm.decoded("TRIGGER") == timedelta(days=-3, hours=10) and str(alarm["ACTION"]) == "DISPLAY"
    with pytest.raises(ValueError):
        calendar.ics(items, zone_name="UTC", calendar_name="x", now=now.replace(tzinfo=None))
