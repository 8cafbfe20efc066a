"""`refund-advisor run` as a process with nudges pending: killed with SIGKILL and started again,
then stopped with SIGTERM and started again, it delivers each pending nudge exactly once; on
SQLite and on PostgreSQL."""
from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime, timezone

from bot.config import parse_delays
from bot.reminders import Reminders
from bot.storage import Storage
from dbs import raw
from dialogs.graph import load as load_graph
from test_telegram_process import TOKEN, BotProcess

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

USERS = (1001, 1002, 1003)
CADENCE = "1s,2s"           # the first nudge 1 s after the advice, then every 2 s
# No dates: no deadline nudges, so that the day the tests run changes nothing.
SLOTS = {"jurisdiction": "UK", "purchase_type": "goods", "merchant": "Some Shop", "payment_method": "debit_card",
         "problem": "non_delivery", "contacted": False}


async def seed(db: str) -> None:
    """Three advised cases, their plans started now (as the intake's last turn does)."""
    storage = await Storage.open(db)
    try:
        followups = Reminders(storage, load_graph(), cadence=parse_delays(CADENCE), quiet_hours=None)
        now = datetime.now(timezone.utc)
        for user_id in USERS:
            user = await storage.ensure_user(user_id, now, seen_locale="en")
            case = await storage.create_case(user_id, {"node": "done", "slots": SLOTS}, now)
            change = followups.start(user, case, "non_delivery", now)
            await storage.save_turn(user_id, case.id, {"node": "done", "slots": SLOTS}, [], now, status="advised",
                                    category="non_delivery", change=change)
    finally:
        await storage.close()


def rows(db: str, sql: str, *args) -> list[tuple]:
    return asyncio.run(raw(db, sql, *args))


def nudges(emu: BotApiEmulator, user_id: int) -> list[dict]:
    return [m for m in emu.messages(user_id) if "What has happened since my last message?" in m["text"]]


def sent_per_case(db: str) -> dict[int, int]:
    return dict(rows(db, "SELECT user_id, COUNT(*) FROM followups WHERE state = 'sent' GROUP BY user_id"))


def wait_all(emu: BotApiEmulator, db: str, count: int, timeout: float = 15) -> None:
    """Every user has `count` nudges, and the database has recorded them."""
    emu.wait_for_sync(lambda: all(len(nudges(emu, u)) >= count for u in USERS)
                      and all(sent_per_case(db).get(u, 0) >= count for u in USERS), timeout)


def latest_due(db: str) -> float:
    (due,) = rows(db, "SELECT MAX(due_at) FROM followups WHERE state = 'pending' AND kind = 'regular'")[0]
    return datetime.fromisoformat(due).timestamp()


def nudging_bot(emu: BotApiEmulator, db: str, log) -> BotProcess:
    """The bot started on the seeded database, its users known to the emulator, nudges seconds apart."""
    for user_id in USERS:
        emu.user(user_id, language_code="en")
    bot = BotProcess(emu, db, log)
    bot.env.update({"REFUND_ADVISOR_FOLLOWUP": CADENCE, "REFUND_ADVISOR_QUIET_HOURS": "off"})
    return bot.start()


def test_pending_nudges_survive_kill_9_and_sigterm_and_go_out_exactly_once(db_url, tmp_path):
    db, log = db_url, tmp_path / "bot.log"
    asyncio.run(seed(db))
    with BotApiEmulator(token=TOKEN) as emu:
        bot = nudging_bot(emu, db, log)
        wait_all(emu, db, 1)
        # Killed with the second nudges pending.
        assert bot.stop(signal.SIGKILL) == -signal.SIGKILL
        assert rows(db, "SELECT COUNT(*) FROM followups WHERE state = 'pending' AND kind = 'regular'") == [(3,)]
        time.sleep(max(0.0, latest_due(db) - time.time()) + 0.3)     # they fall due while the bot is down
        bot.start()
        wait_all(emu, db, 2)
        time.sleep(0.8)                      # well before the third ones (2 s later): nothing twice
        assert [len(nudges(emu, u)) for u in USERS] == [2, 2, 2]
        assert sent_per_case(db) == {u: 2 for u in USERS}

        # Stopped cleanly with the third nudges pending; started again: each comes once.
        assert bot.stop(signal.SIGTERM) == 0
        assert rows(db, "SELECT COUNT(*) FROM followups WHERE state = 'sending'") == [(0,)]
        bot.start()
        wait_all(emu, db, 3)
        time.sleep(0.5)
        assert [len(nudges(emu, u)) for u in USERS] == [3, 3, 3]
        assert sent_per_case(db) == {u: 3 for u in USERS}
        assert bot.stop(signal.SIGTERM) == 0
        assert emu.errors == [] and emu.stats.errors.get(400, 0) == 0
    # Each nudge on the timeline once, in order.
    for user_id in USERS:
        events = rows(db, "SELECT e.data FROM case_events e JOIN cases c ON c.id = e.case_id "
                          "WHERE c.user_id = ? AND e.kind = 'nudge' ORDER BY e.id", user_id)
        assert [e[0] for e in events] == ['{"kind": "regular", "n": %d, "rung": "seller"}' % n for n in range(3)]
    output = log.read_text()
    assert "Traceback" not in output and output.count("follow-up dispatcher started") == 3
