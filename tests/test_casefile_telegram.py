"""The case file on Telegram (issue 17), end to end against the Bot API emulator: /status on one
screen and its whole timeline, saying what happened at the user's local time; /calendar's .ics read
back with the icalendar library and held to the advice's dates; /export with the timeline as
sentences and the calendar."""
from __future__ import annotations

import json
from datetime import date, timedelta

import icalendar
import pytest

from dialogs.advice import advise
from dialogs.followup import deadline_alarm
from messages import plain, render
from telegram_harness import buttons_of
from test_followups_telegram import ANN, LI, START, RunningClock, advised, answer, make, wait_nudges  # noqa: F401

LONG_STORY_EN = ("I live in the UK. On 3 November I bought a software licence from Adobe for £120 with my credit "
                 "card. It <b>stopped</b> working & I emailed them, they refused.")


def entries_of(text: str) -> list[str]:
    """The timeline lines of a /status text: '<date> <HH:MM> · <what happened>'."""
    return [line for line in text.splitlines() if " · " in line and line[:1].isdigit()]


def calendar_of(message: dict) -> icalendar.Calendar:
    assert message["document"]["file_name"].endswith(".ics")
    return icalendar.Calendar.from_ical(message["file_data"])


def expected_deadlines(case_slots: dict, category: str, today: date) -> dict[str, dict]:
    advice = advise(case_slots, category, today).context()
    return {d["id"]: d for d in advice["deadlines"] if d["days_left"] >= 0 and not d["met"]}


async def test_status_says_what_happened_in_the_users_zone_and_language(make):
    clock = RunningClock(START)                     # 12 Nov 2026 10:00 UTC: 18:00 in Shanghai
    # Nudges 3 s apart: the answer below goes to the latest nudge even on a loaded machine (at 1 s a
    # second nudge could come first, and the answer to the first would be ignored as stale).
    h = await make("3s", clock=clock)
    li = h.emu.user(LI, language_code="zh")
    case = await advised(h, li, "zh")
    nudge = (await wait_nudges(h, LI, 1))[-1]
    await answer(h, li, nudge, "refused")
    await h.send(li, li.send_document(file_name="订单截图.pdf", caption=None))
    chooser = await h.command(li, "/escalate")
    recipient, data = list(buttons_of(chooser[0]).items())[0]
    _, language = await h.press(li, chooser[0], data)
    await h.press(li, language[0], buttons_of(language[0])["简体中文"])

    status = await h.command(li, "/status")
    assert len(status) == 1, "one screen"
    text = status[0]["text"]
    assert list(buttons_of(status[0]).values()) == [f"timeline:{case['id']}"]
    assert "金额：¥1,299.00" in text
    assert "下次提醒：2026年11月" in text
    assert "时间线 （Asia/Shanghai）" in text
    lines = entries_of(text)
    assert len(lines) == 5 and "之前还有" in text
    assert all(line.startswith("2026年11月12日 18:0") for line in lines), lines   # Shanghai time, not UTC
    assert "添加证据：文件“订单截图.pdf”" in text
    assert f"已起草{recipient}（中文）" in text
    assert "event." not in text and "UTC" not in text

    _, full = await h.press(li, status[0], f"timeline:{case['id']}")
    shown = "\n".join(m["text"] for m in full)
    whole = entries_of(shown)
    assert len(whole) > 5
    assert any("你补充了经过：“我在中国，11月3日在淘宝" in line and "…”（已记下：" in line for line in whole), \
        "the story is quoted, shortened"
    assert any(line.endswith("给出建议：商品有质量问题（把握 " + line.split("把握 ")[-1]) for line in whole)
    assert any("开始提醒；第一步：商家" in line for line in whole)
    assert any("发送提醒（阶段：商家）" in line for line in whole)
    assert any("你在提醒下按了“对方拒绝了” → 下一阶段：" in line for line in whole)
    assert "接下来怎么做" in shown, "the advice comes with the whole timeline"


async def test_quotes_are_shortened_and_shown_as_written(make):
    h = await make("1d")
    ann = h.emu.user(ANN, language_code="en")
    await advised(h, ann, "en", story=LONG_STORY_EN)
    await h.say(ann, "They answered <i>nothing</i> & I called twice")      # a note on the advised case
    status = await h.command(ann, "/status")
    text = status[0]["text"]
    assert "Note added: “They answered <i>nothing</i> & I called twice”" in text, "escaped, so shown as typed"
    assert "Timeline (Europe/London)" in text
    assert "12 Nov 2026 10:0" in text                         # London is on UTC in November
    assert "📅 Next deadline:" in text
    _, full = await h.press(ann, status[0], "timeline:1")
    shown = "\n".join(m["text"] for m in full)
    assert "You told more: “I live in the UK. On 3 November I bought a software licence from Adobe for…”" in shown
    assert "It <b>stopped</b>" not in shown.split("You told more")[1].split("\n")[0], "shortened to one line"
    assert "Amount: £120.00" in shown or "Amount £120.00" in shown


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_calendar_file_holds_the_advices_dates_and_reimports_as_an_update(make, lang):
    clock = RunningClock(START)
    h = await make("1d", clock=clock)
    user = h.emu.user(LI if lang == "zh" else ANN, language_code=lang)
    case = await advised(h, user, lang)
    slots = json.loads(h.rows("SELECT slots FROM cases WHERE id = ?", case["id"])[0][0])
    expected = expected_deadlines(slots, case["category"], date(2026, 11, 12))
    assert expected, "the case has dates ahead"

    # the button under the advice and the command give the same file
    advice = [m for m in h.emu.messages(user.id) if f"ics:{case['id']}" in buttons_of(m).values()]
    assert advice, "a calendar button under the advice"
    _, pressed = await h.press(user, advice[-1], f"ics:{case['id']}")
    sent = await h.command(user, "/calendar")
    for message in (pressed[-1], sent[-1]):
        assert message["caption"] and ("calendar" in message["caption"] if lang == "en" else "日历" in message["caption"])
    first = calendar_of(sent[-1])
    events = first.walk("VEVENT")
    assert {str(e["UID"]) for e in events} == {f"case-{case['id']}-{d}@refund-advisor" for d in expected}
    for event in events:
        deadline = expected[str(event["UID"]).split("-", 2)[2].split("@")[0]]
        day = date.fromisoformat(deadline["date"])
        assert event.decoded("DTSTART") == day and event.decoded("DTEND") == day + timedelta(days=1)
        assert plain(render(lang, deadline["name"])) in str(event["SUMMARY"])
        assert plain(render(lang, deadline["action"], case=slots))[:40] in str(event["DESCRIPTION"])
        (alarm,) = event.walk("VALARM")
        start = date.fromisoformat(slots[deadline["basis"]]) if slots.get(deadline["basis"]) else None
        assert alarm.decoded("TRIGGER") == deadline_alarm(day, start)
    assert str(first["X-WR-TIMEZONE"]) == ("Asia/Shanghai" if lang == "zh" else "Europe/London")

    # a day later: the same events (same UIDs), a newer SEQUENCE, so a calendar replaces them
    clock.jump(timedelta(days=1))
    again = calendar_of((await h.command(user, "/calendar"))[-1])
    imported = {str(e["UID"]): e for e in events}
    for event in again.walk("VEVENT"):
        assert str(event["UID"]) in imported
        assert int(event["SEQUENCE"]) > int(imported[str(event["UID"])]["SEQUENCE"])
        imported[str(event["UID"])] = event
    assert len(imported) == len(events)


async def test_calendar_before_the_advice_and_export_with_it(make):
    h = await make("1d")
    ann = h.emu.user(ANN, language_code="en")
    await h.command(ann, "/start")
    early = await h.command(ann, "/calendar")
    assert "answer the questions first" in early[0]["text"] and not early[0].get("document")
    await h.say(ann, LONG_STORY_EN)
    case = h.active_case(ANN)
    # finish the intake as the other tests do
    from test_followups_telegram import ANSWERS
    from telegram_harness import option_data, question_of
    for _ in range(30):
        questions = [m for m in h.emu.messages(ANN) if question_of(m) and m.get("reply_markup")]
        if not questions:
            break
        message = questions[-1]
        action = {**ANSWERS, "jurisdiction": "UK", "payment_method": "credit_card"}[question_of(message)]
        if action.startswith("type:"):
            await h.say(ann, action.removeprefix("type:"))
        else:
            await h.press(ann, message, option_data(message, action))
    assert h.active_case(ANN)["status"] == "advised"
    documents = await h.command(ann, "/export")
    assert [m["document"]["file_name"].rsplit(".", 1)[1] for m in documents] == ["json", "md", "ics"]
    data = json.loads(documents[0]["file_data"])
    (exported,) = data["cases"]
    assert exported["time_zone"] == "Europe/London"
    texts = [e["text"] for e in exported["timeline_text"]]
    assert "Where you live: United Kingdom" in texts and any(t.startswith("Advice given: ") for t in texts)
    assert exported["deadlines"] and all({"id", "date", "name"} <= set(d) for d in exported["deadlines"])
    markdown = documents[1]["file_data"].decode("utf-8")
    assert "### Timeline (Europe/London)" in markdown and "· Where you live: United Kingdom" in markdown
    assert "### Dates that matter" in markdown
    cal = calendar_of(documents[2])
    assert {str(e["UID"]).split("@")[0].split("-")[1] for e in cal.walk("VEVENT")} == {str(case["id"])}
