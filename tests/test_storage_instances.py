"""Several instances on one database (PostgreSQL's case; SQLite too, for the same guarantees):
each due nudge is claimed by exactly one of them, two processes included; a redelivered update
is acted on once; two instances changing one user's case at once lose no change; a claim left
by an instance that died is taken over once its lease is over, and not before."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot.storage import AlreadyDone, PlanChange, Storage
from dbs import raw
from dialogs.followup import Nudge
from dialogs.model import TimelineEvent

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
PLAN = {"v": 1, "status": "waiting", "rung": "seller", "category": "defect", "n": 0}
ROOT = Path(__file__).resolve().parent.parent


async def seed(s: Storage, users: int, per_case: int) -> int:
    for uid in range(1, users + 1):
        await s.ensure_user(uid, NOW)
        case = await s.create_case(uid, {"node": "done", "slots": {}}, NOW)
        nudges = [Nudge(NOW + timedelta(milliseconds=i), "regular") for i in range(per_case)]
        await s.save_turn(uid, case.id, {"node": "done", "slots": {}}, [], NOW, status="advised",
                          change=PlanChange(plan=PLAN, nudges=nudges))
    return users * per_case


async def drain(s: Storage, batch: int) -> list[int]:
    """What one dispatcher does, minus Telegram: claim due rows, record them sent, until none."""
    mine: list[int] = []
    while claimed := await s.queue.claim_followups(NOW + timedelta(minutes=1), batch):
        for f in claimed:
            mine.append(f.id)
            await s.queue.followup_sent([f.id], f.id, NOW)
    return mine


async def test_two_instances_claim_every_due_nudge_exactly_once(db_url):
    a, b = await Storage.open(db_url), await Storage.open(db_url)
    try:
        total = await seed(a, 20, 15)
        first, second = await asyncio.gather(drain(a, 7), drain(b, 7))
        assert not set(first) & set(second)
        assert len(first) + len(second) == total
        assert await raw(db_url, "SELECT state, COUNT(*) FROM followups GROUP BY state") == [("sent", total)]
    finally:
        await a.close()
        await b.close()


WORKER = """
import asyncio, json, sys
from datetime import datetime, timedelta, timezone
sys.path.insert(0, sys.argv[2])
from bot.storage import Storage
from test_storage_instances import drain

async def main():
    s = await Storage.open(sys.argv[1])
    try:
        print(json.dumps(await drain(s, 5)))
    finally:
        await s.close()

asyncio.run(main())
"""


async def test_two_processes_claim_every_due_nudge_exactly_once(db_url):
    s = await Storage.open(db_url)
    try:
        total = await seed(s, 30, 10)
    finally:
        await s.close()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER, db_url, str(ROOT / "tests"),
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(2)]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    claimed = [json.loads(out) for out, _ in outputs]
    every = claimed[0] + claimed[1]
    assert len(every) == len(set(every)) == total
    assert await raw(db_url, "SELECT state, COUNT(*) FROM followups GROUP BY state") == [("sent", total)]


async def test_a_redelivered_update_is_acted_on_once_across_instances(db_url):
    a, b = await Storage.open(db_url), await Storage.open(db_url)
    try:
        await a.ensure_user(1, NOW)
        case = await a.create_case(1, {"node": "q1", "slots": {}}, NOW)
        results = await asyncio.gather(*[
            s.save_turn(1, case.id, {"node": "q2", "slots": {"n": i}}, [TimelineEvent("answer", {"i": i})], NOW,
                        update_id=777) for i, s in enumerate([a, b] * 3)], return_exceptions=True)
        assert sum(r is None for r in results) == 1
        assert sum(isinstance(r, AlreadyDone) for r in results) == 5
        assert [e.kind for e in await b.timeline(1, case.id)] == ["opened", "answer"]

        def press(user, case):
            return PlanChange(events=(TimelineEvent("pressed", {}),)), "done"

        results = await asyncio.gather(*[s.change_case(1, case.id, NOW, press, update_id=778) for s in (a, b, a, b)],
                                       return_exceptions=True)
        assert results.count("done") == 1 and sum(isinstance(r, AlreadyDone) for r in results) == 3
        assert [e.kind for e in await a.timeline(1, case.id)].count("pressed") == 1
    finally:
        await a.close()
        await b.close()


async def test_two_instances_changing_one_users_case_lose_no_change(db_url):
    """Each change reads the plan and writes it back one higher: without a lock on the user,
    two instances would read the same value and one increment would be lost."""
    a, b = await Storage.open(db_url), await Storage.open(db_url)
    try:
        await seed(a, 1, 1)
        (case,) = await a.list_cases(1)

        def bump(user, case):
            return PlanChange(plan={**case.plan, "n": case.plan["n"] + 1}), None

        await asyncio.gather(*[s.change_case(1, case.id, NOW, bump) for s in [a, b] * 15])
        assert (await a.get_case(1, case.id)).plan["n"] == 30
    finally:
        await a.close()
        await b.close()


async def test_a_dead_instances_claims_are_taken_over_after_their_lease(db_url, backend):
    dead, live = await Storage.open(db_url), await Storage.open(db_url)
    try:
        await seed(dead, 2, 1)
        claimed = await dead.queue.claim_followups(NOW, 10)
        assert len(claimed) == 2
        await dead.close()                                   # died with both in flight
        assert await live.queue.claim_followups(NOW + timedelta(minutes=1), 10) == []
        if backend == "postgresql":                          # one process per SQLite file: no leases there
            later = NOW + live.queue.claim_lease + timedelta(seconds=1)
            taken = await live.queue.claim_followups(later, 10)
            assert sorted(f.id for f in taken) == sorted(f.id for f in claimed)
            assert all(f.attempts == 2 for f in taken)
    finally:
        await live.close()


async def test_two_instances_answering_one_user_at_once_lose_no_answer(db_url):
    """Two updates of one user reach two instances at the same moment: each turn is computed from
    the case as the other left it, so both answers are kept (none overwritten by a stale turn)."""
    from bot.conversation import Conversation
    from dialogs.engine import Text

    a, b = await Storage.open(db_url), await Storage.open(db_url)
    try:
        first, second = Conversation(a, clock=lambda: NOW), Conversation(b, clock=lambda: NOW)
        for user in range(1, 9):
            await first.start(user, language_code="en")
            await asyncio.gather(first.handle(user, Text("United Kingdom"), update_id=user * 10),
                                 second.handle(user, Text("an online course"), update_id=user * 10 + 1))
            case = await a.active_case(user)
            assert case.slots.get("jurisdiction") == "UK", case.slots
            assert case.slots.get("purchase_type") == "course", case.slots
            said = [e.data["text"] for e in await a.timeline(user, case.id) if e.kind == "said"]
            assert sorted(said) == ["United Kingdom", "an online course"]
    finally:
        await a.close()
        await b.close()
