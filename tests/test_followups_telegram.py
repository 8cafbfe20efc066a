"""Follow-up nudges end to end: the real bot (bot.telegram_app.serve, as `refund-advisor run`)
against the Bot API emulator, with seconds-long cadences, quiet hours off, and a clock that
starts at a fixed date and runs at real speed (the dispatcher waits real seconds).

A user receives nudges until pressing Refunded, then none; Still waiting / They refused move the
stage and the next nudge's advice; They asked me to pay more switches to the fraud advice;
snoozing delays; a deadline nudge comes before a deadline; a 429 and 5xx are retried; a 403
stops that user's nudges until they write; /remind, /timezone, /resolved, /delete; a burst of
due nudges stays under the rate limit.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.config import parse_delays
from bot.outcome import Outcome, ReplyTo, outbox_row
from bot.storage import PlanChange
from dialogs.followup import Nudge, answer_ids
from dialogs.model import Reply
from telegram_harness import Harness, answer_intake, buttons_of

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")
ANN, LI, BOB = 1001, 2002, 3003
START = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
CJK = re.compile(r"[\u4e00-\u9fff]")
NUDGE = {"en": "What has happened since my last message?", "zh": "上次提醒之后有什么新情况吗"}

STORY = {
    # UK, software from Adobe by credit card: seller, payment provider, regulator, court.
    "en": "I live in the UK. On 3 November I bought a software licence from Adobe for £120 with my credit card. "
          "It stopped working and I emailed them, they refused.",
    # Mainland China, Taobao, Alipay: seller, platform, payment provider, regulator, court.
    "zh": "我在中国，11月3日在淘宝买了一个软件激活码，用支付宝付了1299元，后来用不了，联系了客服，客服拒绝退款。",
}
ANSWERS = {"jurisdiction": "CN", "purchase_type": "software", "merchant": "_skip", "payment_method": "alipay",
           "amount": "type:1299", "purchase_date": "yesterday", "problem": "defect", "problem_date": "today",
           "contacted": "yes", "contact_date": "today", "seller_answer": "refused", "story": "_skip",
           "confirm": "_yes"}


class RunningClock:
    """Starts at `start` and runs at real speed; `jump` moves it on at once."""

    def __init__(self, start: datetime):
        self.start = start
        self.t0 = time.monotonic()
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self.start + self.offset + timedelta(seconds=time.monotonic() - self.t0)

    def jump(self, delta: timedelta) -> None:
        self.offset += delta


@pytest.fixture
async def make(tmp_path):
    """make(cadence="1s", clock=None) -> a started Harness with its own emulator; all checked at the end."""
    made: list[tuple[Harness, BotApiEmulator]] = []

    async def factory(cadence: str = "1s", clock: RunningClock | None = None, **dispatcher) -> Harness:
        emu = BotApiEmulator().start()
        h = Harness(emu, tmp_path / f"bot{len(made)}.db", followup=parse_delays(cadence), quiet_hours=None,
                    clock=clock or RunningClock(START), nudges=True)
        made.append((h, emu))
        await h.start()
        for name, value in dispatcher.items():
            setattr(h.bot.dispatcher, name, value)
        return h

    yield factory
    for h, emu in made:
        try:
            if h.bot is not None:
                assert await h.stop() == 0
            assert emu.errors == [], "the emulator hit an internal error"
            assert emu.warnings == [], "the bot used an unknown parameter or an unemulated method"
            assert emu.stats.errors.get(400, 0) == 0, "the bot sent a request Telegram rejects"
        finally:
            emu.stop()


# ---- helpers ----------------------------------------------------------------------------------

async def advised(h: Harness, user, lang: str, story: str | None = None, answers: dict | None = None) -> dict:
    """Tell the story, answer what is still asked: the case is advised and its plan started."""
    return await answer_intake(h, user, story or STORY[lang], {**ANSWERS, **(answers or {})})


def nudges(h: Harness, chat_id: int) -> list[dict]:
    """The nudges in a chat, oldest first (as they are now: answered ones show the answer)."""
    return [m for m in h.emu.messages(chat_id) if any(mark in m["text"] for mark in NUDGE.values())]


async def wait_nudges(h: Harness, chat_id: int, count: int, timeout: float = 6.0) -> list[dict]:
    await h.emu.wait_for(lambda: len(nudges(h, chat_id)) >= count, timeout)
    return nudges(h, chat_id)


def nudge_data(message: dict, answer: str) -> str:
    for data in buttons_of(message).values():
        if data.startswith("nudge:") and data.rsplit(":", 1)[1] == answer:
            return data
    raise AssertionError(f"no {answer!r} button in {buttons_of(message)}")


async def answer(h: Harness, user, message: dict, choice: str) -> tuple[dict, list[dict]]:
    return await h.press(user, message, nudge_data(message, choice))


def timeline(h: Harness, case_id: int) -> list[tuple[str, dict]]:
    return [(k, json.loads(d)) for k, d in h.rows("SELECT kind, data FROM case_events WHERE case_id = ? ORDER BY id",
                                                 case_id)]


def followups(h: Harness, case_id: int, *states: str) -> list[tuple]:
    sql = "SELECT id, kind, state, due_at, attempts, data FROM followups WHERE case_id = ?"
    if states:
        sql += f" AND state IN ({','.join('?' * len(states))})"
    return h.rows(sql + " ORDER BY due_at, id", case_id, *states)


def due(row: tuple) -> datetime:
    return datetime.fromisoformat(row[3])


# ---- the life of a case -------------------------------------------------------------------------

async def test_nudges_come_until_refunded_and_then_none(make):
    h = await make("1s")
    ann = h.emu.user(ANN, language_code="en")
    case = await advised(h, ann, "en")
    started = time.monotonic()
    first = (await wait_nudges(h, ANN, 1))[0]
    assert 0.5 <= time.monotonic() - started <= 3.0, "the first nudge comes after the first delay"
    assert "How is your refund from Adobe going?" in first["text"]
    assert "Now: the seller (stage 1 of 4)" in first["text"]
    assert [d.rsplit(":", 1)[1] for d in buttons_of(first).values()] == list(answer_ids())
    assert all(len(d.encode()) <= 64 for d in buttons_of(first).values())
    stale = nudge_data(first, "refused")

    second = (await wait_nudges(h, ANN, 2))[1]
    assert await h.emu.wait_for(lambda: not h.emu.message(ANN, first["message_id"]).get("reply_markup"), 2), \
        "an older nudge's buttons go when a newer one comes"
    notice, acks = await answer(h, ann, second, "refunded")
    assert not notice.get("text")
    assert "Great, you got your money back!" in acks[0]["text"]
    answered = h.emu.message(ANN, second["message_id"])
    assert answered["text"].endswith("✔️ ✅ Refunded") and not answered.get("reply_markup")
    assert h.active_case(ANN)["status"] == "resolved"
    assert followups(h, case["id"], "pending", "sending", "paused") == []

    await asyncio.sleep(2.2)                                    # two more delays: nothing comes
    assert len(nudges(h, ANN)) == 2
    kinds = [k for k, _ in timeline(h, case["id"])]
    assert kinds.count("followup_started") == 1 and kinds.count("nudge") == 2
    assert ("nudge_answer", "refunded") in [(k, d.get("answer")) for k, d in timeline(h, case["id"])]
    # An old nudge pressed again: refused with a notice, nothing changes.
    notice, acks = await h.press(ann, first, stale, force=True)
    assert notice["text"] and acks == []
    assert h.active_case(ANN)["status"] == "resolved"
    remind = await h.command(ann, "/remind")
    assert "no more reminders" in remind[0]["text"]


async def test_still_waiting_and_refused_move_the_stage_and_the_next_nudges_advice(make):
    h = await make("1s")
    ann = h.emu.user(ANN, language_code="en")
    case = await advised(h, ann, "en")
    nudge = (await wait_nudges(h, ANN, 1))[-1]
    _, acks = await answer(h, ann, nudge, "waiting")
    assert "Noted: still waiting on the seller." in acks[0]["text"]
    assert "I'll check in again on 12 Nov 2026 at" in acks[0]["text"]      # London time
    nudge = (await wait_nudges(h, ANN, 2))[-1]
    assert "Now: the seller (stage 1 of 4)" in nudge["text"]

    _, acks = await answer(h, ann, nudge, "refused")
    text = acks[0]["text"]
    assert "Then it's time to go one step up: your payment provider (chargeback or dispute)" in text
    assert "chargeback" in text and "Card chargeback window" in text
    assert h.active_case(ANN)["status"] == "escalated"
    nudge = (await wait_nudges(h, ANN, 3))[-1]
    assert "Now: your payment provider (chargeback or dispute) (stage 2 of 4)" in nudge["text"]
    assert "Ask your card issuer for a chargeback" in nudge["text"]

    _, acks = await answer(h, ann, nudge, "escalate")
    joined = "\n".join(m["text"] for m in acks)
    assert "Let's escalate to your payment provider" in joined and "/escalate" in joined
    events = timeline(h, case["id"])
    answers = [d["answer"] for k, d in events if k == "nudge_answer"]
    assert answers == ["waiting", "refused", "escalate"]
    refused = next(d for k, d in events if k == "nudge_answer" and d["answer"] == "refused")
    assert refused["rung"] == ["seller", "payment"] and refused["status"] == ["waiting", "escalated"]
    drafts = [d for k, d in events if k == "draft_complaint"]
    assert drafts == [{"rung": "payment", "path": "consumer", "category": "defect"}]
    assert ("escalation", {"rung": "payment", "path": "consumer"}) in events
    # /status shows the new status.
    status = await h.command(ann, "/status")
    assert "escalated, waiting for an answer" in status[0]["text"]
    # its button: the whole timeline says which reminder came and what was pressed under it
    _, full = await h.press(ann, status[0], f"timeline:{case['id']}")
    shown = "\n".join(m["text"] for m in full)
    assert "Reminder sent (stage: the seller)" in shown
    assert "Under the reminder you pressed “Still waiting”" in shown
    assert "Under the reminder you pressed “They refused” → next stage: your payment provider" in shown
    assert "Escalated to your payment provider (chargeback or dispute)" in shown


async def test_asked_to_pay_more_switches_to_the_fraud_advice_at_once(make):
    h = await make("1s")
    li = h.emu.user(LI, language_code="zh")
    case = await advised(h, li, "zh")
    nudge = (await wait_nudges(h, LI, 1))[-1]
    assert "当前阶段：<b>" not in nudge["text"] and "当前阶段：商家（第1步，共5步）" in nudge["text"]
    assert "和淘宝的退款进展如何" in nudge["text"]
    _, acks = await answer(h, li, nudge, "asked_more")
    joined = "\n".join(m["text"] for m in acks)
    # Mainland China: the police first, then the bank (issue 12, point 6)
    assert "不要再付任何钱" in joined and "接下来按防诈骗的步骤走，第一步：公安机关（报警）" in joined
    assert "接下来怎么做" in joined, "the fraud path's whole advice comes at once"
    assert "报警" in joined
    assert h.active_case(LI)["category"] == "withdrawal_scam"
    assert h.active_case(LI)["status"] == "escalated"
    nudge = (await wait_nudges(h, LI, 2))[-1]
    assert "当前阶段：公安机关（报警）（第1步，共3步）" in nudge["text"]
    status = await h.command(li, "/status")
    _, full = await h.press(li, status[0], f"timeline:{case['id']}")
    shown = "\n".join(m["text"] for m in full)
    assert "报警" in shown, "/status's whole view shows the fraud advice too"
    assert "你在提醒下按了“对方要我再付钱” → 下一阶段：公安机关" in shown
    answered = [d for k, d in timeline(h, case["id"]) if k == "nudge_answer"]
    assert answered[0]["path"] == ["consumer", "fraud"] and answered[0]["rung"] == ["seller", "police_first"]


async def test_snoozing_delays_the_next_nudge(make):
    clock = RunningClock(START)
    h = await make("1s", clock=clock)
    ann = h.emu.user(ANN, language_code="en")
    case = await advised(h, ann, "en")
    nudge = (await wait_nudges(h, ANN, 1))[-1]
    pressed = clock()
    _, acks = await answer(h, ann, nudge, "snooze_1d")
    local = (pressed + timedelta(days=1)).astimezone(LONDON)
    assert acks[0]["text"].startswith("OK. I'll check in again on 13 Nov 2026 at")
    regular = [r for r in followups(h, case["id"], "pending") if r[1] == "regular"]
    assert len(regular) == 1 and abs(due(regular[0]) - (pressed + timedelta(days=1))) < timedelta(seconds=2)
    assert local.strftime("%H:%M") in acks[0]["text"] or \
        (local + timedelta(seconds=2)).strftime("%H:%M") in acks[0]["text"]
    await asyncio.sleep(2.0)                       # the 1 s cadence would have nudged twice by now
    assert len(nudges(h, ANN)) == 1
    shown = await h.command(ann, "/remind")
    assert "Next reminder: 13 Nov 2026 at" in shown[0]["text"]


async def test_a_deadline_nudge_comes_before_the_deadline_whatever_the_schedule(make):
    # Bought on 10 Nov, changed mind: the 7-day no-reason return ends on 17 Nov. The nudge for it
    # is due the day before at 10:00 Shanghai time; the regular one only at 11:00.
    clock = RunningClock(datetime(2026, 11, 16, 9, 0, tzinfo=SHANGHAI))
    h = await make("2h", clock=clock)
    li = h.emu.user(LI, language_code="zh")
    case = await advised(h, li, "zh", story="我在中国，11月10日在拼多多买了一件外套，用微信支付付了299元，收到后不想要了，想退货。",
                         answers={"purchase_type": "goods", "problem": "changed_mind", "contacted": "no",
                                  "payment_method": "wechat_pay"})
    pending = followups(h, case["id"], "pending")
    deadline = [r for r in pending if r[1] == "deadline" and json.loads(r[5])["deadline_id"] == "cn_7day_no_reason_return"]
    assert len(deadline) == 1 and due(deadline[0]) == datetime(2026, 11, 16, 10, 0, tzinfo=SHANGHAI)
    regular = [r for r in pending if r[1] == "regular"]
    assert due(regular[0]) > datetime(2026, 11, 16, 10, 59, tzinfo=SHANGHAI)
    assert nudges(h, LI) == []
    # Two seconds before 10:00.
    clock.jump(datetime(2026, 11, 16, 9, 59, 58, tzinfo=SHANGHAI) - clock())
    await h.bot.dispatcher.rearm()
    started = time.monotonic()
    nudge = (await wait_nudges(h, LI, 1, timeout=6))[0]
    assert 1.0 <= time.monotonic() - started <= 4.0
    assert "七天无理由退货" in nudge["text"] and "2026年11月17日（明天截止）" in nudge["text"]
    assert clock() < datetime(2026, 11, 17, 0, 0, tzinfo=SHANGHAI)
    await asyncio.sleep(0.5)
    assert len(nudges(h, LI)) == 1, "the regular nudge is not due yet"
    sent = [d for k, d in timeline(h, case["id"]) if k == "nudge"]
    assert sent == [{"kind": "deadline", "rung": "seller", "deadline_id": "cn_7day_no_reason_return"}]


# ---- sending: flood control, server errors, blocked users ----------------------------------------

async def test_flood_control_then_success_sends_the_nudge_once(make):
    h = await make("1s")
    ann = h.emu.user(ANN, language_code="en")
    case = await advised(h, ann, "en")
    h.emu.fail_next("sendMessage", 429, retry_after=1)
    started = time.monotonic()
    await wait_nudges(h, ANN, 1)
    assert time.monotonic() - started >= 1.5, "due after 1 s, then 1 s of flood wait"
    assert h.emu.stats.too_many_requests == 1
    sent = await h.emu.wait_for(lambda: followups(h, case["id"], "sent"), 2)
    assert len(sent) == 1 and sent[0][4] == 1, "claimed once"
    await asyncio.sleep(0.3)
    assert len(nudges(h, ANN)) == 1


async def test_server_errors_are_retried_with_backoff(make):
    h = await make("1s", retry_base=0.3)
    ann = h.emu.user(ANN, language_code="en")
    case = await advised(h, ann, "en")
    # Three 502s exhaust the in-place retries; the row is retried later, and then goes out once.
    h.emu.fail_next("sendMessage", 502, description="Bad Gateway", count=4)
    await wait_nudges(h, ANN, 1, timeout=8)
    sent = await h.emu.wait_for(lambda: followups(h, case["id"], "sent"), 2)
    assert len(sent) == 1 and sent[0][4] == 2, "claimed twice: once failed, once sent"
    await asyncio.sleep(0.3)
    assert len(nudges(h, ANN)) == 1
    assert h.emu.stats.errors.get(502, 0) == 4


async def test_a_user_who_blocked_the_bot_gets_no_nudges_until_they_write_again(make):
    h = await make("1s")
    ann, bob = h.emu.user(ANN, language_code="en"), h.emu.user(BOB, language_code="en")
    case = await advised(h, ann, "en")
    await advised(h, bob, "en")
    ann.block(notify=False)
    await h.emu.wait_for(lambda: h.emu.stats.errors.get(403, 0) >= 1, 5)
    await h.emu.wait_for(lambda: h.rows("SELECT blocked FROM users WHERE id = ?", ANN) == [(1,)], 2)
    assert followups(h, case["id"], "pending", "sending") == []
    assert len(followups(h, case["id"], "paused")) >= 1
    tried = len([c for c in h.emu.calls("sendMessage") if str(c["params"].get("chat_id")) == str(ANN)])
    await wait_nudges(h, BOB, 3)                               # others go on being nudged
    assert len([c for c in h.emu.calls("sendMessage") if str(c["params"].get("chat_id")) == str(ANN)]) == tried
    assert h.emu.stats.errors.get(403, 0) == 1
    # Back: Ann unblocks the bot and writes; her nudges resume.
    ann.unblock(notify=False)
    await h.say(ann, "hello again")
    assert h.rows("SELECT blocked FROM users WHERE id = ?", ANN) == [(0,)]
    assert followups(h, case["id"], "paused") == []
    await wait_nudges(h, ANN, 1, timeout=4)


# ---- commands -------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_remind_shows_the_next_nudge_and_changes_the_cadence_or_pauses(make, lang):
    clock = RunningClock(START)
    h = await make("1h", clock=clock)
    user = h.emu.user(ANN, language_code=lang)
    helped = (await h.command(user, "/help"))[0]["text"]
    assert "/remind" in helped and "/timezone" in helped
    early = await h.command(user, "/remind")
    assert "/start" in early[0]["text"], "no case yet"
    await h.command(user, "/start")
    early = await h.command(user, "/remind")
    assert ("once case #1 has its advice" in early[-1]["text"]) if lang == "en" else ("给出建议之后" in early[-1]["text"])
    case = await advised(h, user, lang)
    shown = (await h.command(user, "/remind"))[-1]
    text = shown["text"]
    next_due = due([r for r in followups(h, case["id"], "pending") if r[1] == "regular"][0])
    local = next_due.astimezone(LONDON if lang == "en" else SHANGHAI)
    assert local.strftime("%H:%M") in text
    if lang == "en":
        assert "Reminders for case #1" in text and "How often: every hour (the default)" in text
        assert "Time zone: Europe/London (from where you live)" in text
    else:
        assert "案件 #1 的提醒" in text and "提醒节奏：每小时一次（默认）" in text and "Asia/Shanghai" in text
    labels = list(buttons_of(shown))
    assert len(labels) == 5 and labels[0].startswith("✓ ")
    data = list(buttons_of(shown).values())
    assert data == [f"remind:{case['id']}:{c}" for c in ("default", "1d", "3d", "7d", "pause")]

    pressed = clock()
    _, acks = await h.press(user, shown, f"remind:{case['id']}:7d")
    assert ("every 7 days" in acks[0]["text"]) if lang == "en" else ("每7天一次" in acks[0]["text"])
    regular = [r for r in followups(h, case["id"], "pending") if r[1] == "regular"]
    assert abs(due(regular[0]) - (pressed + timedelta(days=7))) < timedelta(seconds=2)
    assert not h.emu.message(ANN, shown["message_id"]).get("reply_markup")
    assert h.rows("SELECT cadence FROM cases WHERE id = ?", case["id"]) == [("7d",)]

    shown = (await h.command(user, "/remind"))[-1]
    assert [lbl.startswith("✓ ") for lbl in buttons_of(shown)] == [False, False, False, True, False]
    _, acks = await h.press(user, shown, f"remind:{case['id']}:pause")
    assert ("paused" in acks[0]["text"]) if lang == "en" else ("已暂停" in acks[0]["text"])
    assert followups(h, case["id"], "pending") == []
    shown = (await h.command(user, "/remind"))[-1]
    assert list(buttons_of(shown).values())[-1] == f"remind:{case['id']}:resume"
    _, acks = await h.press(user, shown, f"remind:{case['id']}:resume")
    assert ("Reminders are back on" in acks[0]["text"]) if lang == "en" else ("提醒已恢复" in acks[0]["text"])
    assert len([r for r in followups(h, case["id"], "pending") if r[1] == "regular"]) == 1
    # Somebody else's case: refused.
    bob = h.emu.user(BOB, language_code=lang)
    await h.command(bob, "/start")
    notice, acks = await h.press(bob, shown, f"remind:{case['id']}:pause", force=True)
    assert notice["text"] and acks == []
    assert len(followups(h, case["id"], "pending")) >= 1


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_timezone_sets_the_zone_nudges_are_timed_in(make, lang):
    h = await make("1h")
    user = h.emu.user(ANN, language_code=lang)
    case = await advised(h, user, lang)
    shown = await h.command(user, "/timezone")
    assert ("Europe/London" if lang == "en" else "Asia/Shanghai") in shown[0]["text"]
    bad = await h.command(user, "/timezone Mars/Olympus_Mons <b>")
    assert "Mars/Olympus_Mons &lt;b&gt;" not in bad[0]["text"] and "Mars/Olympus_Mons <b>" in bad[0]["text"]
    assert ("I don't know the time zone" in bad[0]["text"]) if lang == "en" else ("我不认识" in bad[0]["text"])
    assert h.rows("SELECT time_zone FROM users WHERE id = ?", ANN) == [(None,)]
    done = await h.command(user, "/timezone america/new_york")
    assert "America/New_York" in done[0]["text"]
    assert h.rows("SELECT time_zone FROM users WHERE id = ?", ANN) == [("America/New_York",)]
    done = await h.command(user, "/timezone 东京" if lang == "zh" else "/timezone Tokyo")
    assert "Asia/Tokyo" in done[0]["text"]
    shown = (await h.command(user, "/remind"))[-1]
    assert "Asia/Tokyo" in shown["text"]
    next_due = due([r for r in followups(h, case["id"], "pending") if r[1] == "regular"][0])
    assert next_due.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M") in shown["text"]


async def test_resolved_and_delete_stop_every_nudge(make):
    h = await make("1s")
    ann, bob = h.emu.user(ANN, language_code="en"), h.emu.user(BOB, language_code="zh")
    ann_case = await advised(h, ann, "en")
    await advised(h, bob, "zh")
    asked = await h.command(ann, "/resolved")
    await h.press(ann, asked[-1], f"end:{ann_case['id']}:refunded")
    assert h.active_case(ANN)["status"] == "resolved"
    assert followups(h, ann_case["id"], "pending", "sending", "paused") == []
    confirm = await h.command(bob, "/delete")
    await h.press(bob, confirm[-1], buttons_of(confirm[-1])["🗑 确定，全部删除"])
    assert h.count_rows(BOB) == 0 and h.rows("SELECT COUNT(*) FROM followups WHERE user_id = ?", BOB) == [(0,)]
    before = {ANN: len(nudges(h, ANN)), BOB: len(nudges(h, BOB))}
    await asyncio.sleep(2.2)
    assert {ANN: len(nudges(h, ANN)), BOB: len(nudges(h, BOB))} == before
    assert h.count_rows(BOB) == 0


async def test_a_burst_of_due_nudges_stays_under_the_rate_limit(make):
    h = await make("1h")
    h.emu.enforce_rate_limit(per_second=30)
    storage, reminders = h.bot.storage, h.bot.dispatcher.reminders
    now = h.clock()
    users = [h.emu.user(7000 + i, language_code="zh" if i % 2 else "en") for i in range(45)]
    slots = {"jurisdiction": "UK", "purchase_type": "goods", "merchant": "Some Shop", "payment_method": "debit_card",
             "purchase_date": "2026-11-01", "problem": "non_delivery", "contacted": False}
    for user in users:
        await storage.ensure_user(user.id, now)
        case = await storage.create_case(user.id, {"node": "done", "slots": slots}, now)
        change = reminders.start(await storage.get_user(user.id), case, "non_delivery", now)
        first = Nudge(now, "regular", {"rung": "seller", "n": 0})      # all due at once
        await storage.save_turn(user.id, case.id, {"node": "done", "slots": slots}, [], now, status="advised",
                                category="non_delivery", change=PlanChange(plan=change.plan, events=change.events,
                                                                           nudges=[first]))
    await h.bot.dispatcher.rearm()
    await h.emu.wait_for(lambda: all(nudges(h, u.id) for u in users), 10)
    times = sorted(c["time"] for c in h.emu.calls("sendMessage") if c["ok"])
    assert len(times) == 45 and all(len(nudges(h, u.id)) == 1 for u in users)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 30, busiest
    assert h.emu.stats.rate_limited == 0


async def test_cases_advised_before_follow_ups_existed_get_their_plan_at_start_up(make):
    h = await make("1s")
    assert await h.stop() == 0
    slots = {"jurisdiction": "UK", "purchase_type": "goods", "merchant": "Old Shop", "payment_method": "debit_card",
             "purchase_date": "2026-11-01", "problem": "non_delivery", "contacted": False}
    h.emu.user(ANN, language_code="en")
    with h.db() as db:          # as a schema-1 bot left it: advised, no plan
        db.execute("INSERT INTO users (id, created_at, updated_at) VALUES (?, 'x', 'x')", (ANN,))
        db.execute("INSERT INTO cases (user_id, status, slots, dialog, category, created_at, updated_at) "
                   "VALUES (?, 'advised', ?, ?, 'non_delivery', 'x', 'x')",
                   (ANN, json.dumps(slots), json.dumps({"node": "done", "slots": slots})))
        db.execute("INSERT INTO cases (user_id, status, slots, dialog, category, created_at, updated_at) "
                   "VALUES (0, 'advised', '{}', '{}', 'other', 'x', 'x')")     # the terminal's user: never
    await h.start()
    nudge = (await wait_nudges(h, ANN, 1))[0]
    assert "How is your refund from Old Shop going?" in nudge["text"]
    await h.emu.wait_for(lambda: [k for k, _ in timeline(h, 1)] == ["followup_started", "nudge"], 2)
    assert h.rows("SELECT plan IS NULL FROM cases WHERE user_id = 0") == [(1,)]


async def test_a_reply_a_chat_is_owed_goes_out_before_a_nudge_to_that_chat(make):
    """What a crash left in the outbox for a chat is sent first when a nudge goes to it: the chat
    reads in the order things happened (and no nudge lands between the parts of a reply)."""
    h = await make("3s")
    ann = h.emu.user(ANN, language_code="en")
    await advised(h, ann, "en")
    assert nudges(h, ANN) == []
    owed = Outcome("en", [Reply("kept_after_restart", {})])
    assert h.bot is not None and h.bot.storage is not None
    await h.bot.storage.outbox.put(outbox_row(ANN, owed, ReplyTo(ANN, None)), START)
    (nudge,) = await wait_nudges(h, ANN, 1)
    texts = [m["text"] for m in h.emu.messages(ANN)]
    owed_at = next(i for i, t in enumerate(texts) if "restarted before it could answer" in t)
    assert owed_at < texts.index(nudge["text"])
    assert await h.bot.storage.outbox.count() == 0
