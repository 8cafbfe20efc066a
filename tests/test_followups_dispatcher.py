"""The dispatcher with a stand-in bot: one APScheduler job whatever the number of pending nudges,
armed at the earliest and moved earlier by a new nudge; a clean stop releases the nudges in hand;
a nudge Telegram refuses fails after a few attempts and the plan goes on; on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from telegram.error import BadRequest

from bot.config import parse_delays
from bot.dispatcher import JOB_ID, Dispatcher
from bot.reminders import Reminders
from bot.storage import PlanChange, Storage
from bot.telegram.sender import Sender
from dialogs.followup import Nudge
from dialogs.graph import load as load_graph

UTC = timezone.utc
# No dates: no deadline nudges, so that the day the tests run changes nothing.
SLOTS = {"jurisdiction": "UK", "purchase_type": "goods", "merchant": "Some Shop", "payment_method": "debit_card",
         "problem": "non_delivery", "contacted": False}


@dataclass
class Sent:
    message_id: int


class FakeBot:
    def __init__(self, behaviour=None):
        self.sent: list[dict] = []
        self.ids = itertools.count(100)
        self.behaviour = behaviour

    async def send_message(self, **kwargs):
        if self.behaviour is not None:
            await self.behaviour(kwargs)
        self.sent.append(kwargs)
        return Sent(next(self.ids))

    async def edit_message_reply_markup(self, **kwargs):
        return True


class FakeApp:
    def __init__(self, bot):
        self.bot = bot


@pytest.fixture
async def parts(db_url):
    storage = await Storage.open(db_url)
    followups = Reminders(storage, load_graph(), cadence=parse_delays("1h"), quiet_hours=None)
    dispatchers: list[Dispatcher] = []

    def make(**kwargs) -> Dispatcher:
        d = Dispatcher(storage, followups, Sender(storage, attempts=1, backoff=0.01), **kwargs)
        dispatchers.append(d)
        return d

    yield storage, followups, make
    for d in dispatchers:
        await d.stop()
    await storage.close()


async def seed(storage: Storage, followups: Reminders, user_id: int, due: datetime) -> int:
    now = datetime.now(UTC)
    user = await storage.ensure_user(user_id, now, seen_locale="en")
    case = await storage.create_case(user_id, {"node": "done", "slots": SLOTS}, now)
    change = followups.start(user, case, "non_delivery", now)
    await storage.save_turn(user_id, case.id, {"node": "done", "slots": SLOTS}, [], now, status="advised",
                            category="non_delivery",
                            change=PlanChange(plan=change.plan, events=change.events,
                                              nudges=[Nudge(due, "regular", {"rung": "seller", "n": 0})]))
    return case.id


async def test_one_job_whatever_the_number_of_pending_nudges(parts):
    storage, followups, make = parts
    start = datetime.now(UTC).replace(microsecond=0)
    # Due within the minute after which a dispatcher on PostgreSQL looks again anyway.
    for i in range(300):
        await seed(storage, followups, 5000 + i, start + timedelta(seconds=40, milliseconds=i))
    dispatcher = make()
    await dispatcher.start(FakeApp(FakeBot()))
    jobs = dispatcher.scheduler.get_jobs()
    assert [j.id for j in jobs] == [JOB_ID]
    assert dispatcher._armed == start + timedelta(seconds=40)
    # A nudge scheduled earlier moves the one job; a later one does not.
    followups.scheduled([Nudge(start + timedelta(seconds=20), "regular")])
    followups.scheduled([Nudge(start + timedelta(hours=3), "regular")])
    jobs = dispatcher.scheduler.get_jobs()
    assert len(jobs) == 1 and dispatcher._armed == start + timedelta(seconds=20)
    assert abs(jobs[0].next_run_time - (start + timedelta(seconds=20))) < timedelta(seconds=2)
    await dispatcher.stop()


async def test_far_nudges_wait_for_their_time_alone_on_sqlite_and_a_minute_at_most_on_postgresql(parts):
    """Several instances share a PostgreSQL database and each pokes only itself: a nudge another
    instance scheduled and did not live to send is found within a minute."""
    storage, followups, make = parts
    start = datetime.now(UTC)
    await seed(storage, followups, 1, start + timedelta(hours=2))
    dispatcher = make()
    await dispatcher.start(FakeApp(FakeBot()))
    (job,) = dispatcher.scheduler.get_jobs()
    wait = job.next_run_time - start
    if storage.backend.shared:
        assert timedelta(seconds=50) < wait <= timedelta(minutes=1, seconds=2)
    else:
        assert timedelta(hours=1, minutes=59) < wait <= timedelta(hours=2, seconds=2)
    await dispatcher.stop()


async def test_a_clean_stop_releases_the_nudges_in_hand(parts):
    storage, followups, make = parts
    hang = asyncio.Event()

    async def never(kwargs):
        await hang.wait()

    case_id = await seed(storage, followups, 1, datetime.now(UTC))
    dispatcher = make(stop_grace=0.2)
    await dispatcher.start(FakeApp(FakeBot(never)))
    for _ in range(200):
        if [f.state for f in await storage.followups(1, case_id)] == ["sending"]:
            break
        await asyncio.sleep(0.01)
    assert [f.state for f in await storage.followups(1, case_id)] == ["sending"]
    await dispatcher.stop()
    assert [f.state for f in await storage.followups(1, case_id)] == ["pending"]


async def test_a_nudge_telegram_refuses_fails_after_three_attempts_and_the_plan_goes_on(parts):
    storage, followups, make = parts

    async def refuse(kwargs):
        raise BadRequest("Chat not found")

    case_id = await seed(storage, followups, 1, datetime.now(UTC))
    dispatcher = make(retry_base=0.05)
    await dispatcher.start(FakeApp(FakeBot(refuse)))
    for _ in range(300):
        if any(f.state == "failed" for f in await storage.followups(1, case_id)):
            break
        await asyncio.sleep(0.01)
    rows = await storage.followups(1, case_id)
    failed = [f for f in rows if f.state == "failed"]
    assert len(failed) == 1, rows
    assert failed[0].attempts == 3 and failed[0].data["error"] == "Chat not found"
    pending = [f for f in rows if f.state == "pending" and f.kind == "regular"]
    assert len(pending) == 1 and pending[0].due_at > datetime.now(UTC) + timedelta(minutes=59), rows
    events = [e.kind for e in await storage.timeline(1, case_id)]
    assert "nudge_failed" in events and "nudge" not in events


async def test_nudges_are_planned_in_the_users_zone_out_of_quiet_hours(db_url):
    from zoneinfo import ZoneInfo
    shanghai = ZoneInfo("Asia/Shanghai")
    storage = await Storage.open(db_url)
    try:
        followups = Reminders(storage, load_graph(), cadence=parse_delays("2h"), quiet_hours=(22, 8))
        now = datetime(2026, 11, 10, 21, 30, tzinfo=shanghai)
        slots = {**SLOTS, "jurisdiction": "CN", "purchase_date": "2026-11-09"}
        user = await storage.ensure_user(1, now)
        case = await storage.create_case(1, {"node": "done", "slots": slots}, now)
        case = await storage.get_case(1, case.id)
        due = [n.due_at for n in followups.start(user, case, "non_delivery", now).nudges if n.kind == "regular"]
        assert due == [datetime(2026, 11, 11, 8, 0, tzinfo=shanghai)], "23:30 in Shanghai is quiet: the morning"
        # The user's own zone wins over the jurisdiction's: 15:30 in London is not quiet.
        await storage.set_user(1, now, time_zone="Europe/London")
        user = await storage.get_user(1)
        due = [n.due_at for n in followups.start(user, case, "non_delivery", now).nudges if n.kind == "regular"]
        assert due == [now + timedelta(hours=2)]
    finally:
        await storage.close()


async def test_a_case_advised_before_follow_ups_existed_gets_its_plan_and_nudges_after_a_start(parts):
    storage, followups, make = parts
    now = datetime.now(UTC)
    await storage.ensure_user(7, now, seen_locale="en")
    case = await storage.create_case(7, {"node": "done", "slots": SLOTS}, now)
    await storage.save_turn(7, case.id, {"node": "done", "slots": SLOTS}, [], now, status="advised",
                            category="non_delivery")
    assert (await storage.get_case(7, case.id)).plan is None
    dispatcher = make()
    await dispatcher.start(FakeApp(FakeBot()))
    for _ in range(200):
        if await storage.followups(7, case.id, ("pending",)):
            break
        await asyncio.sleep(0.01)
    assert (await storage.get_case(7, case.id)).plan is not None
    assert await storage.followups(7, case.id, ("pending",))
    assert dispatcher.scheduler.get_job(JOB_ID) is not None
