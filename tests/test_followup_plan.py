"""The pure follow-up plan: ladder, answers, cadence, deadline nudges, quiet hours, replies.

Every time here comes from a controlled clock (fixed aware datetimes); nothing reads the real one.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import messages
from bot.config import parse_delays, parse_quiet_hours
from dialogs import followup as fu
from dialogs.advice import advise
from dialogs.followup import (
    Nudge, answer_ids, answer_reply, apply_answer, ladder_problems, next_nudges, nudge_reply,
    record_nudge, shift_out_of_quiet, start_plan,
)
from dialogs.model import LOCALES

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")
DEFAULT = parse_delays("2d,3d,5d,7d")
BUTTONS = ("refunded", "waiting", "refused", "asked_more", "escalate", "snooze_1d", "snooze_3d", "snooze_1w")
HOSTILE = '<b>&"'

# A Taobao purchase paid with Alipay: every consumer rung applies.
TAOBAO = {
    "jurisdiction": "CN", "purchase_type": "goods", "merchant": "淘宝 小米旗舰店",
    "payment_method": "alipay", "amount": {"value": "1299.00", "currency": "CNY"},
    "purchase_date": "2026-11-01", "problem": "defect", "problem_date": "2026-11-03",
    "contacted": True, "contact_date": "2026-11-04", "seller_answer": "refused",
}
# Bought in person, paid in cash: no platform and no payment-provider rung.
CASH_DIRECT = {
    "jurisdiction": "UK", "purchase_type": "goods", "merchant": "Corner Hardware",
    "payment_method": "cash_other", "purchase_date": "2026-11-01", "problem": "defect",
}


def local(zone, *args) -> datetime:
    return datetime(*args, tzinfo=zone)


def clock(start: datetime):
    """A controlled clock: call it for the time, .advance(delta) to move it."""
    class Clock:
        now = start

        def __call__(self):
            return self.now

        def advance(self, delta):
            self.now = self.now + delta
            return self.now
    return Clock()


def regular(nudges):
    found = [n for n in nudges if n.kind == "regular"]
    assert len(found) <= 1
    return found[0] if found else None


def deadline_nudges(nudges):
    return {n.data["deadline_id"]: n for n in nudges if n.kind == "deadline"}


def plan_for(slots, category, now):
    plan, events, effects = start_plan(slots, category, now)
    json.dumps(plan)  # the plan state is stored as JSON
    return plan


_ALLOWED_TAG = re.compile(r"</?(b|i|code)>")
_BAD_ENTITY = re.compile(r"&(?!(?:amp|lt|gt|quot|#\d+);)")


def assert_telegram_html(text: str) -> None:
    stack: list[str] = []
    for m in _ALLOWED_TAG.finditer(text):
        tag = m.group(1)
        if m.group(0).startswith("</"):
            assert stack and stack[-1] == tag, f"unbalanced </{tag}> in {text!r}"
            stack.pop()
        else:
            stack.append(tag)
    assert not stack, f"unclosed {stack} in {text!r}"
    stripped = _ALLOWED_TAG.sub("", text)
    assert "<" not in stripped and ">" not in stripped, stripped
    assert not _BAD_ENTITY.search(stripped), stripped


# --------------------------------------------------------------------------- data, purity

def test_ladder_has_no_problems():
    assert ladder_problems() == []


def test_buttons_are_the_eight_answers_with_short_ids():
    assert answer_ids() == BUTTONS
    assert all(len(a.encode()) <= 16 for a in answer_ids())


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_key_exists(locale):
    keys = messages.keys(locale)
    missing = fu.message_keys() - keys
    assert not missing, sorted(missing)


def test_the_module_is_pure():
    source = Path(fu.__file__).read_text("utf-8")
    for banned in ("datetime.now", "date.today", "utcnow", "time.time", "import telegram",
                   "aiosqlite", "apscheduler", "open("):
        assert banned not in source, banned


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        start_plan(TAOBAO, "defect", datetime(2026, 11, 10, 9, 0))
    plan = plan_for(TAOBAO, "defect", local(UTC, 2026, 11, 10, 9))
    with pytest.raises(ValueError):
        apply_answer(plan, "waiting", datetime(2026, 11, 10, 9, 0))
    with pytest.raises(ValueError):
        apply_answer(plan, "no_such_answer", local(UTC, 2026, 11, 10, 9))


# --------------------------------------------------------------------------- the ladder

def test_rungs_depend_on_the_case():
    now = local(UTC, 2026, 11, 10, 9)
    plan = plan_for(TAOBAO, "defect", now)
    assert plan["path"] == "consumer" and plan["status"] == "waiting" and plan["rung"] == "seller"
    assert plan["ladders"]["consumer"]["rungs"] == ["seller", "platform", "payment", "regulator", "court"]
    # Mainland China (TAOBAO): the police order stop-payments, so 110 comes first (issue 12).
    assert plan["ladders"]["fraud"]["rungs"] == ["police_first", "bank", "regulator"]

    cash = plan_for(CASH_DIRECT, "defect", now)
    assert cash["ladders"]["consumer"]["rungs"] == ["seller", "regulator", "court"]
    assert cash["ladders"]["fraud"]["rungs"] == ["police", "regulator"]

    direct_card = plan_for({**CASH_DIRECT, "payment_method": "credit_card"}, "defect", now)
    assert direct_card["ladders"]["consumer"]["rungs"] == ["seller", "payment", "regulator", "court"]

    app = plan_for({"jurisdiction": "US", "purchase_type": "game", "merchant": "some game",
                    "payment_method": "app_store"}, "defect", now)
    assert app["ladders"]["consumer"]["rungs"] == ["seller", "platform", "regulator", "court"]


@pytest.mark.parametrize("slots, category", [
    ({"purchase_type": "platform_funds", "payment_method": "bank_transfer"}, "withdrawal_scam"),
    ({**TAOBAO, "seller_answer": "asked_fees"}, "defect"),
])
def test_fraud_cases_start_with_bank_and_police(slots, category):
    plan, _, effects = start_plan(slots, category, local(UTC, 2026, 11, 10, 9))
    assert plan["path"] == "fraud" and plan["category"] == "withdrawal_scam"
    if slots.get("jurisdiction") == "CN":   # 110 first, then the bank (反电信网络诈骗法 第二十条)
        assert plan["rung"] == "police_first" and _rungs(plan) == ["police_first", "bank", "regulator"]
    else:
        assert plan["rung"] == "bank" and _rungs(plan) == ["bank", "police", "regulator"]
    if category != "withdrawal_scam":
        assert any(e.kind == "set_category" and e.data["category"] == "withdrawal_scam" for e in effects)


def _rungs(plan):
    return plan["ladders"][plan["path"]]["rungs"]


# --------------------------------------------------------------------------- cadence

def test_default_cadence_then_the_last_delay_repeats_forever():
    c = clock(local(SHANGHAI, 2026, 11, 10, 10, 0))
    plan = plan_for(TAOBAO, "defect", c())
    gaps = []
    for _ in range(8):
        nudge = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, SHANGHAI, c()))
        gaps.append(nudge.due_at - c.now)
        c.now = nudge.due_at                     # the dispatcher sends it on time
        plan, events = record_nudge(plan, nudge, c())
        assert events[0].kind == "nudge" and events[0].data["kind"] == "regular"
    days = [g / timedelta(days=1) for g in gaps]
    assert days == [2, 3, 5, 7, 7, 7, 7, 7]
    assert plan["n"] == 8


def test_seconds_long_cadence():
    cadence = parse_delays("1s,2s")
    c = clock(local(UTC, 2026, 11, 10, 12, 0, 0))
    plan = plan_for(TAOBAO, "defect", c())
    dues = []
    for _ in range(4):
        nudge = regular(next_nudges(TAOBAO, "defect", plan, [], cadence, None, UTC, c()))
        dues.append(nudge.due_at)
        c.now = nudge.due_at
        plan, _ = record_nudge(plan, nudge, c())
    assert [(d - dues[0]).total_seconds() for d in dues] == [0, 2, 4, 6]
    assert dues[0] == local(UTC, 2026, 11, 10, 12, 0, 1)
    assert all(d.tzinfo is not None and d.utcoffset() == timedelta(0) for d in dues)


def test_an_overdue_nudge_is_due_now_not_in_the_past():
    c = clock(local(UTC, 2026, 11, 10, 12))
    plan = plan_for(TAOBAO, "defect", c())
    c.advance(timedelta(days=30))                 # the bot was down
    nudge = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, UTC, c()))
    assert nudge.due_at == c.now


# --------------------------------------------------------------------------- answers

def test_refunded_resolves_and_stops_every_nudge():
    c = clock(local(UTC, 2026, 11, 10, 12))
    plan = plan_for(TAOBAO, "defect", c())
    deadlines = advise(TAOBAO, "defect", c.now.date()).deadlines
    assert next_nudges(TAOBAO, "defect", plan, deadlines, DEFAULT, None, UTC, c())
    plan, events, effects = apply_answer(plan, "refunded", c.advance(timedelta(days=2)))
    assert plan["status"] == "resolved"
    assert events[0].kind == "nudge_answer" and events[0].data["answer"] == "refunded"
    kinds = [e.kind for e in effects]
    assert "cancel_followups" in kinds and "replan_followups" not in kinds
    assert {"status": "resolved"} in [dict(e.data) for e in effects if e.kind == "set_case_status"]
    assert next_nudges(TAOBAO, "defect", plan, deadlines, DEFAULT, None, UTC, c()) == []
    # a late press on an old nudge changes nothing
    again, events, effects = apply_answer(plan, "refused", c.advance(timedelta(hours=1)))
    assert again == plan and effects == () and events[0].kind == "nudge_answer_ignored"


def test_waiting_keeps_the_rung_and_continues_the_cadence():
    c = clock(local(UTC, 2026, 11, 10, 12))
    plan = plan_for(TAOBAO, "defect", c())
    for _ in range(2):                            # two nudges sent: 2d, 3d
        nudge = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, UTC, c()))
        c.now = nudge.due_at
        plan, _ = record_nudge(plan, nudge, c())
    answered = c.advance(timedelta(hours=5))
    plan, events, effects = apply_answer(plan, "waiting", answered)
    assert plan["rung"] == "seller" and plan["status"] == "waiting"
    assert [e.kind for e in effects] == ["replan_followups"]
    nudge = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, UTC, c()))
    assert nudge.due_at == answered + timedelta(days=5)      # the third delay, from the answer
    assert nudge.data["rung"] == "seller"


def test_refused_climbs_the_ladder_and_the_next_nudge_advice_follows():
    c = clock(local(SHANGHAI, 2026, 11, 10, 10))
    plan = plan_for(TAOBAO, "defect", c())
    case = {"slots": TAOBAO, "category": "defect"}

    def step_of(p):
        nudge = regular(next_nudges(TAOBAO, "defect", p, [], DEFAULT, None, SHANGHAI, c()))
        return nudge, nudge_reply(case, p, nudge, c.now.date()).context["step"]

    nudge, step = step_of(plan)
    assert nudge.data["rung"] == "seller" and step.startswith("step.seller.")
    for expected, prefix in [("platform", "step.platform."), ("payment", "step.pay.alipay"),
                             ("regulator", "step.reg.cn_12315"), ("court", "step.court.cn")]:
        plan, events, effects = apply_answer(plan, "refused", c.advance(timedelta(days=2)))
        assert plan["rung"] == expected and plan["status"] == "escalated"
        assert events[0].data["rung"][1] == expected
        nudge, step = step_of(plan)
        assert nudge.data["rung"] == expected and step.startswith(prefix), (expected, step)
        assert nudge.due_at == c.now + timedelta(days=2)     # a new rung restarts the cadence
    # the top of the ladder: stays there, says so on the timeline, nudges go on
    plan, events, _ = apply_answer(plan, "refused", c.advance(timedelta(days=2)))
    assert plan["rung"] == "court" and events[0].data.get("ladder_end") is True
    assert next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, SHANGHAI, c())


def test_refused_skips_rungs_that_do_not_apply():
    now = local(LONDON, 2026, 11, 10, 10)
    plan = plan_for(CASH_DIRECT, "defect", now)
    plan, _, _ = apply_answer(plan, "refused", now)
    assert plan["rung"] == "regulator"


def test_asked_more_switches_to_the_fraud_path_at_once():
    c = clock(local(SHANGHAI, 2026, 11, 10, 10))
    plan = plan_for(TAOBAO, "defect", c())
    plan, _, _ = apply_answer(plan, "refused", c.advance(timedelta(days=1)))   # at the platform
    plan, events, effects = apply_answer(plan, "asked_more", c.advance(timedelta(days=1)))
    assert plan["path"] == "fraud" and plan["rung"] == "police_first" and plan["category"] == "withdrawal_scam"
    assert plan["status"] == "escalated" and plan["n"] == 0
    assert events[0].data["path"] == ["consumer", "fraud"]
    assert Effect_kinds(effects) >= {"set_category", "replan_followups"}
    case = {"slots": TAOBAO, "category": "defect"}
    nudge = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, SHANGHAI, c()))
    assert nudge.due_at == c.now + timedelta(days=2)
    reply = nudge_reply(case, plan, nudge, c.now.date())
    assert reply.context["step"] == "step.scam.police_cn"
    assert reply.context["rung_count"] == 3
    plan, _, _ = apply_answer(plan, "refused", c.advance(timedelta(days=2)))
    nudge = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, SHANGHAI, c()))
    assert nudge_reply(case, plan, nudge, c.now.date()).context["step"] == "step.scam.call_bank_cn"


def Effect_kinds(effects):
    return {e.kind for e in effects}


def test_escalate_asks_for_the_complaint_draft_and_is_recorded():
    now = local(UTC, 2026, 11, 12, 9)
    plan = plan_for(TAOBAO, "defect", now)
    plan, _, _ = apply_answer(plan, "refused", now)
    plan, events, effects = apply_answer(plan, "escalate", now + timedelta(hours=1))
    assert plan["rung"] == "platform" and plan["status"] == "escalated"
    drafts = [e for e in effects if e.kind == "draft_complaint"]
    assert len(drafts) == 1 and drafts[0].data["rung"] == "platform"
    assert plan["escalations"] == [{"rung": "platform", "at": (now + timedelta(hours=1)).isoformat()}]
    assert [e.kind for e in events] == ["nudge_answer", "escalation"]


@pytest.mark.parametrize("answer, delta", [
    ("snooze_1d", timedelta(days=1)), ("snooze_3d", timedelta(days=3)), ("snooze_1w", timedelta(weeks=1)),
])
def test_snoozes(answer, delta):
    c = clock(local(UTC, 2026, 11, 10, 12))
    plan = plan_for(TAOBAO, "defect", c())
    nudge = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, UTC, c()))
    c.now = nudge.due_at
    plan, _ = record_nudge(plan, nudge, c())
    pressed = c.advance(timedelta(minutes=10))
    plan, events, effects = apply_answer(plan, answer, pressed)
    assert plan["rung"] == "seller" and plan["status"] == "waiting" and plan["n"] == 1
    assert events[0].data["snoozed_until"] == (pressed + delta).isoformat()
    nudge = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, UTC, c()))
    assert nudge.due_at == pressed + delta
    # once the snoozed nudge is sent (the second), the cadence goes on: the third waits 5 days
    c.now = nudge.due_at
    plan, _ = record_nudge(plan, nudge, c())
    nxt = regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, UTC, c()))
    assert nxt.due_at == c.now + timedelta(days=5)


def test_pause_and_resume():
    c = clock(local(UTC, 2026, 11, 10, 12))
    plan = plan_for(TAOBAO, "defect", c())
    plan, _, _ = apply_answer(plan, "refused", c())
    plan, _, effects = apply_answer(plan, "pause", c.advance(timedelta(hours=1)))
    assert plan["status"] == "paused" and "cancel_followups" in Effect_kinds(effects)
    deadlines = advise(TAOBAO, "defect", c.now.date()).deadlines
    assert next_nudges(TAOBAO, "defect", plan, deadlines, DEFAULT, None, UTC, c()) == []
    plan, _, effects = apply_answer(plan, "resume", c.advance(timedelta(days=3)))
    assert plan["status"] == "escalated" and plan["rung"] == "platform"
    assert regular(next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, UTC, c())).due_at \
        == c.now + timedelta(days=2)
    # a nudge button pressed on a paused case resumes it
    plan, _, _ = apply_answer(plan, "pause", c())
    plan, _, _ = apply_answer(plan, "waiting", c())
    assert plan["status"] == "escalated"
    plan, _, _ = apply_answer(plan, "stop", c())
    assert plan["status"] == "abandoned"
    assert next_nudges(TAOBAO, "defect", plan, [], DEFAULT, None, UTC, c()) == []


# --------------------------------------------------------------------------- deadline nudges

def test_a_deadline_nudge_lands_before_a_deadline_within_the_window():
    # CN 7-day no-reason return, goods received on 10 Nov: the last day is 17 Nov.
    slots = {"jurisdiction": "CN", "purchase_type": "goods", "merchant": "拼多多 某店",
             "payment_method": "wechat_pay", "purchase_date": "2026-11-10", "problem": "changed_mind"}
    c = clock(local(SHANGHAI, 2026, 11, 11, 9, 30))
    plan = plan_for(slots, "changed_mind", c())
    deadlines = advise(slots, "changed_mind", c.now.date()).deadlines
    assert {d.id: d.date for d in deadlines}["cn_7day_no_reason_return"] == date(2026, 11, 17)
    nudges = next_nudges(slots, "changed_mind", plan, deadlines, DEFAULT, (22, 8), SHANGHAI, c())
    near = deadline_nudges(nudges)["cn_7day_no_reason_return"]
    # a short window: one day before, at 10:00 local
    assert near.due_at == local(SHANGHAI, 2026, 11, 16, 10).astimezone(UTC)
    assert near.data == {"rung": "seller", "deadline_id": "cn_7day_no_reason_return",
                         "deadline_date": "2026-11-17"}
    assert nudges == sorted(nudges, key=lambda n: n.due_at)
    # whatever the regular schedule: snoozing a week does not hold it back
    plan2, _, _ = apply_answer(plan, "snooze_1w", c())
    near2 = deadline_nudges(next_nudges(slots, "changed_mind", plan2, deadlines, DEFAULT, (22, 8),
                                        SHANGHAI, c()))["cn_7day_no_reason_return"]
    assert near2.due_at == near.due_at
    # sent once, not again
    c.now = near.due_at
    plan, events = record_nudge(plan, near, c())
    assert events[0].data["deadline_id"] == "cn_7day_no_reason_return"
    assert "cn_7day_no_reason_return" not in deadline_nudges(
        next_nudges(slots, "changed_mind", plan, deadlines, DEFAULT, (22, 8), SHANGHAI, c()))

    reply = nudge_reply({"slots": slots}, plan, near, c.now.date(), deadlines)
    assert reply.context["kind"] == "deadline"
    assert reply.context["near"]["id"] == "cn_7day_no_reason_return"
    assert reply.context["near"]["days_left"] == 1
    for locale in LOCALES:
        text = messages.render_reply(locale, reply).text
        assert_telegram_html(text)
        assert messages.render(locale, "deadline.cn_7day_no_reason_return") in text
    assert "17 Nov 2026" in messages.render_reply("en", reply).text
    assert "2026年11月17日" in messages.render_reply("zh", reply).text


def test_long_windows_get_three_days_and_late_ones_come_now():
    slots = {"jurisdiction": "UK", "purchase_type": "goods", "merchant": "Some Shop",
             "payment_method": "cash_other", "purchase_date": "2026-11-01", "problem": "defect"}
    c = clock(local(LONDON, 2026, 11, 2, 12))
    plan = plan_for(slots, "defect", c())
    deadlines = advise(slots, "defect", c.now.date()).deadlines
    assert {d.id: d.date for d in deadlines}["uk_30day_reject"] == date(2026, 12, 1)
    nudge = deadline_nudges(next_nudges(slots, "defect", plan, deadlines, DEFAULT, None, LONDON, c()))
    assert nudge["uk_30day_reject"].due_at == local(LONDON, 2026, 11, 28, 10).astimezone(UTC)
    # already within the lead time: now, never in the past
    c.now = local(LONDON, 2026, 11, 30, 15)
    late = deadline_nudges(next_nudges(slots, "defect", plan, deadlines, DEFAULT, None, LONDON, c()))
    assert late["uk_30day_reject"].due_at == c.now
    # within the lead time but at night: the morning, still before the day ends
    c.now = local(LONDON, 2026, 11, 30, 23, 30)
    night = deadline_nudges(next_nudges(slots, "defect", plan, deadlines, DEFAULT, (22, 8), LONDON, c()))
    assert night["uk_30day_reject"].due_at == local(LONDON, 2026, 12, 1, 8).astimezone(UTC)
    # the last evening: the morning would be too late, so nothing
    c.now = local(LONDON, 2026, 12, 1, 22, 30)
    assert "uk_30day_reject" not in deadline_nudges(
        next_nudges(slots, "defect", plan, deadlines, DEFAULT, (22, 8), LONDON, c()))
    # passed
    c.now = local(LONDON, 2026, 12, 2, 9)
    assert "uk_30day_reject" not in deadline_nudges(
        next_nudges(slots, "defect", plan, deadlines, DEFAULT, None, LONDON, c()))


def test_deadlines_as_plain_dicts():
    now = local(UTC, 2026, 11, 10, 12)
    plan = plan_for(TAOBAO, "defect", now)
    nudges = next_nudges(TAOBAO, "defect", plan, [{"id": "card_chargeback", "date": "2026-11-20",
                                                   "basis": "purchase_date"}], DEFAULT, None, UTC, now)
    assert deadline_nudges(nudges)["card_chargeback"].due_at == local(UTC, 2026, 11, 17, 10)


# --------------------------------------------------------------------------- quiet hours

@pytest.mark.parametrize("zone, quiet, at, expected", [
    # wrap-around 22-8, Shanghai
    (SHANGHAI, (22, 8), (2026, 11, 10, 23, 30), (2026, 11, 11, 8, 0)),   # late evening: next morning
    (SHANGHAI, (22, 8), (2026, 11, 10, 3, 0), (2026, 11, 10, 8, 0)),     # early morning: same morning
    (SHANGHAI, (22, 8), (2026, 11, 10, 22, 0), (2026, 11, 11, 8, 0)),    # the start hour is quiet
    (SHANGHAI, (22, 8), (2026, 11, 10, 7, 59), (2026, 11, 10, 8, 0)),
    (SHANGHAI, (22, 8), (2026, 11, 10, 8, 0), (2026, 11, 10, 8, 0)),     # the end hour is not
    (SHANGHAI, (22, 8), (2026, 11, 10, 14, 15), (2026, 11, 10, 14, 15)),
    (SHANGHAI, (22, 8), (2026, 12, 31, 23, 0), (2027, 1, 1, 8, 0)),      # over the year's end
    # not wrapping 1-6
    (LONDON, (1, 6), (2026, 11, 10, 3, 0), (2026, 11, 10, 6, 0)),
    (LONDON, (1, 6), (2026, 11, 10, 0, 30), (2026, 11, 10, 0, 30)),
    (LONDON, (1, 6), (2026, 11, 10, 23, 30), (2026, 11, 10, 23, 30)),
    (LONDON, (1, 6), (2026, 11, 10, 6, 0), (2026, 11, 10, 6, 0)),
    # London DST: clocks go forward on 29 Mar 2026 and back on 25 Oct 2026
    (LONDON, (22, 8), (2026, 3, 28, 23, 30), (2026, 3, 29, 8, 0)),       # 08:00 BST = 07:00 UTC
    (LONDON, (22, 8), (2026, 3, 29, 3, 0), (2026, 3, 29, 8, 0)),
    (LONDON, (22, 8), (2026, 10, 24, 23, 30), (2026, 10, 25, 8, 0)),     # 08:00 GMT = 08:00 UTC
    (LONDON, (1, 6), (2026, 10, 25, 1, 30), (2026, 10, 25, 6, 0)),       # inside the repeated hour
])
def test_quiet_hours_push_to_the_morning(zone, quiet, at, expected):
    moment = local(zone, *at).astimezone(UTC)
    shifted = shift_out_of_quiet(moment, quiet, zone)
    assert shifted.tzinfo is not None and shifted.utcoffset() == timedelta(0)
    assert shifted.astimezone(zone).replace(tzinfo=None) == datetime(*expected)
    assert shifted >= moment


def test_dst_morning_is_the_wall_clock_hour():
    spring = shift_out_of_quiet(local(LONDON, 2026, 3, 28, 23, 30), (22, 8), LONDON)
    assert spring == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    autumn = shift_out_of_quiet(local(LONDON, 2026, 10, 24, 23, 30), (22, 8), LONDON)
    assert autumn == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
    # an end hour that does not exist that night (01:00 on 29 Mar) lands just after the gap
    gap = shift_out_of_quiet(local(LONDON, 2026, 3, 28, 23, 30), (22, 1), LONDON)
    assert gap == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert gap.astimezone(LONDON).hour == 2


def test_next_nudges_respect_quiet_hours_and_off_disables_them():
    # started at 21:30 Shanghai with a 2-hour cadence: due 23:30, sent at 08:00
    cadence = parse_delays("2h")
    now = local(SHANGHAI, 2026, 11, 10, 21, 30)
    plan = plan_for(TAOBAO, "defect", now)
    quiet = parse_quiet_hours("22-8")
    nudge = regular(next_nudges(TAOBAO, "defect", plan, [], cadence, quiet, SHANGHAI, now))
    assert nudge.due_at == local(SHANGHAI, 2026, 11, 11, 8).astimezone(UTC)
    off = parse_quiet_hours("off")
    assert off is None
    nudge = regular(next_nudges(TAOBAO, "defect", plan, [], cadence, off, SHANGHAI, now))
    assert nudge.due_at == local(SHANGHAI, 2026, 11, 10, 23, 30).astimezone(UTC)
    # early morning in London, a non-wrapping range
    now = local(LONDON, 2026, 11, 10, 0, 30)
    plan = plan_for(CASH_DIRECT, "defect", now)
    nudge = regular(next_nudges(CASH_DIRECT, "defect", plan, [], cadence, parse_quiet_hours("1-6"), LONDON, now))
    assert nudge.due_at == local(LONDON, 2026, 11, 10, 6).astimezone(UTC)


# --------------------------------------------------------------------------- replies

@pytest.mark.parametrize("locale", LOCALES)
def test_nudge_reply_renders_and_escapes_a_hostile_merchant(locale):
    slots = {**TAOBAO, "merchant": HOSTILE}
    now = local(SHANGHAI, 2026, 11, 10, 10)
    plan = plan_for(slots, "defect", now)
    case = {"slots": slots, "category": "defect"}
    deadlines = advise(slots, "defect", now.date()).deadlines
    for answer in (None, "refused", "refused", "asked_more"):
        if answer:
            plan, _, _ = apply_answer(plan, answer, now)
        for nudge in next_nudges(slots, "defect", plan, deadlines, DEFAULT, (22, 8), SHANGHAI, now):
            reply = nudge_reply(case, plan, nudge, now.date(), deadlines)
            assert [b.id for b in reply.buttons] == list(BUTTONS)
            assert {b.label for b in reply.buttons} <= messages.keys(locale)
            rendered = messages.render_reply(locale, reply)
            assert_telegram_html(rendered.text)
            assert HOSTILE not in rendered.text
            assert "&lt;b&gt;&amp;" in rendered.text
            assert len(rendered.text.encode("utf-16-le")) // 2 <= 4096
            assert len(rendered.buttons) == 8 and all(label for _, label in rendered.buttons)
            assert messages.plain(messages.render(locale, reply.context["rung_key"])) \
                in messages.plain(rendered.text)
            if locale == "zh":
                assert re.search(r"[\u4e00-\u9fff]", rendered.text)


@pytest.mark.parametrize("locale", LOCALES)
def test_answer_replies_render(locale):
    slots = {**TAOBAO, "merchant": HOSTILE}
    now = local(SHANGHAI, 2026, 11, 10, 10)
    case = {"slots": slots, "category": "defect"}
    for answer in fu.answer_ids() + fu.command_ids():
        plan = plan_for(slots, "defect", now)
        plan, _, _ = apply_answer(plan, answer, now)
        nxt = next_nudges(slots, "defect", plan, [], DEFAULT, (22, 8), SHANGHAI, now)
        reply = answer_reply(case, plan, answer, nxt[0] if nxt else None, now.date(), SHANGHAI)
        assert reply.key in messages.keys(locale)
        text = messages.render_reply(locale, reply).text
        assert_telegram_html(text)
        assert HOSTILE not in text
        if answer in ("waiting", "snooze_1d"):
            assert reply.context["next"] is not None
            expected = nxt[0].due_at.astimezone(SHANGHAI)
            assert expected.strftime("%H:%M") in text


def test_nudge_reply_names_the_rung_deadline():
    slots = {"jurisdiction": "UK", "purchase_type": "goods", "merchant": "Some Shop",
             "payment_method": "credit_card", "purchase_date": "2026-11-01", "problem": "defect",
             "contacted": True, "contact_date": "2026-11-04", "seller_answer": "refused"}
    today = date(2026, 11, 10)
    now = local(LONDON, 2026, 11, 10, 10)
    plan = plan_for(slots, "defect", now)
    nudge = Nudge(now.astimezone(UTC), "regular", {"rung": "seller", "n": 0})
    reply = nudge_reply({"slots": slots}, plan, nudge, today)
    assert reply.context["rung_deadline"]["id"] == "uk_30day_reject"
    plan, _, _ = apply_answer(plan, "refused", now)
    reply = nudge_reply({"slots": slots}, plan, nudge, today)
    assert reply.context["rung"] == "payment"
    assert reply.context["step"] == "step.pay.card_chargeback"
    assert reply.context["rung_deadline"]["id"] == "card_chargeback"
    assert "1 Mar 2027" in messages.render_reply("en", reply).text


def test_nudge_round_trips_as_json():
    nudge = Nudge(local(UTC, 2026, 11, 10, 12), "deadline", {"rung": "seller", "deadline_id": "x"})
    assert Nudge.from_dict(json.loads(json.dumps(nudge.to_dict()))) == nudge
