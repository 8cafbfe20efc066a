"""Storage of follow-ups: the plan written with its turn, replacing a case's nudges, claiming due
rows atomically, settling rows that must not be sent, re-arming after a crash, blocked users,
closed and deleted cases, the migration from schema 1; on SQLite and on PostgreSQL."""
from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import pytest

from bot.storage import MIGRATIONS, AlreadyDone, PlanChange, Refused, Storage
from dbs import raw
from dialogs.model import TimelineEvent

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
PLAN = {"v": 1, "status": "waiting", "rung": "seller", "category": "defect"}


@dataclass(frozen=True)
class N:
    due_at: datetime
    kind: str = "regular"
    data: Mapping[str, Any] = field(default_factory=dict)


async def advised_case(s: Storage, user_id: int, *nudges: N, plan: dict | None = None) -> int:
    await s.ensure_user(user_id, NOW)
    case = await s.create_case(user_id, {"node": "done", "slots": {}}, NOW)
    await s.save_turn(user_id, case.id, {"node": "done", "slots": {}}, [TimelineEvent("advice", {})], NOW,
                              status="advised", category="defect",
                              change=PlanChange(plan=plan or PLAN, events=(TimelineEvent("followup_started", {}),),
                                                nudges=nudges))
    return case.id


def states(rows) -> list[tuple[str, str]]:
    return [(f.kind, f.state) for f in rows]


async def test_the_plan_and_its_nudges_are_written_with_the_turn(storage):
    case_id = await advised_case(storage, 1, N(NOW + timedelta(days=2)), N(NOW + timedelta(days=1), "deadline"))
    case = await storage.get_case(1, case_id)
    assert case.status == "advised" and case.plan == PLAN
    assert [e.kind for e in await storage.timeline(1, case_id)][-2:] == ["advice", "followup_started"]
    rows = await storage.followups(1, case_id)
    assert states(rows) == [("deadline", "pending"), ("regular", "pending")]
    assert await storage.queue.earliest_followup() == NOW + timedelta(days=1)
    # A turn that fails writes none of it.
    with pytest.raises(LookupError):
        await storage.save_turn(2, case_id, {"node": "x"}, [], NOW, change=PlanChange(plan={"x": 1}, nudges=[N(NOW)]))
    assert (await storage.get_case(1, case_id)).plan == PLAN and len(await storage.followups(1, case_id)) == 2


async def test_replacing_cancels_the_live_nudges_in_the_same_transaction(storage):
    case_id = await advised_case(storage, 1, N(NOW + timedelta(days=2)), N(NOW + timedelta(days=1), "deadline"))
    claimed = await storage.queue.claim_followups(NOW + timedelta(days=1), 10)       # the deadline one is in flight

    def decide(user, case):
        return PlanChange(plan={**case.plan, "rung": "platform"}, events=(TimelineEvent("nudge_answer", {}),),
                          status="escalated", nudges=[N(NOW + timedelta(days=3))]), "ok"

    assert await storage.change_case(1, case_id, NOW, decide, update_id=55) == "ok"
    rows = await storage.followups(1, case_id)
    assert sorted(states(rows)) == [("deadline", "cancelled"), ("regular", "cancelled"), ("regular", "pending")]
    assert claimed[0].id in [f.id for f in rows if f.state == "cancelled"], "a claimed row is cancelled too"
    assert not await storage.queue.followup_sendable(claimed[0].id)
    case = await storage.get_case(1, case_id)
    assert case.status == "escalated" and case.plan["rung"] == "platform"
    # The same update again: nothing.
    with pytest.raises(AlreadyDone):
        await storage.change_case(1, case_id, NOW, decide, update_id=55)
    assert len(await storage.followups(1, case_id, ["pending"])) == 1
    # Someone else's case, or a decision not to change: refused, nothing written.
    await storage.ensure_user(2, NOW)
    with pytest.raises(Refused):
        await storage.change_case(2, case_id, NOW, decide)
    with pytest.raises(Refused):
        await storage.change_case(1, case_id, NOW, lambda user, case: None, update_id=56)
    assert not await storage.seen_update(56)


async def test_claiming_is_atomic_earliest_first_and_in_batches(storage):
    ids = [await advised_case(storage, uid, N(NOW + timedelta(seconds=uid))) for uid in range(1, 8)]
    assert await storage.queue.claim_followups(NOW, 10) == []
    # Two claimers at once never get the same row.
    first, second = await asyncio.gather(storage.queue.claim_followups(NOW + timedelta(minutes=1), 4),
                                         storage.queue.claim_followups(NOW + timedelta(minutes=1), 4))
    assert len(first) + len(second) == 7
    assert not {f.id for f in first} & {f.id for f in second}
    # Whichever claimed first took the earliest four (on PostgreSQL either may be first).
    assert sorted([[f.case_id for f in first], [f.case_id for f in second]], key=len) == [ids[4:], ids[:4]]
    assert all(f.state == "sending" and f.attempts == 1 for f in first + second)
    assert await storage.queue.claim_followups(NOW + timedelta(minutes=1), 4) == []
    # Nothing pending; on PostgreSQL the claims' leases end (should their instance die) is next.
    lease_end = NOW + timedelta(minutes=1) + storage.queue.claim_lease if storage.backend.shared else None
    assert await storage.queue.earliest_followup() == lease_end


async def test_rows_that_must_not_be_sent_are_settled_at_claim_time(storage, db_url):
    open_case = await advised_case(storage, 1, N(NOW))
    closed = await advised_case(storage, 2, N(NOW))
    paused_plan = await advised_case(storage, 3, N(NOW), plan={**PLAN, "status": "paused"})
    blocked = await advised_case(storage, 4, N(NOW))
    # Closed behind the plan's back (a write that forgot the rows): still never claimed.
    await raw(db_url, "UPDATE cases SET status = 'resolved' WHERE id = ?", closed)
    await raw(db_url, "UPDATE users SET blocked = 1 WHERE id = 4")
    claimed = await storage.queue.claim_followups(NOW, 10)
    assert [f.case_id for f in claimed] == [open_case]
    assert states(await storage.followups(2, closed)) == [("regular", "cancelled")]
    assert states(await storage.followups(3, paused_plan)) == [("regular", "cancelled")]
    assert states(await storage.followups(4, blocked)) == [("regular", "paused")]


async def test_sent_retried_failed_and_released(storage):
    case_id = await advised_case(storage, 1, N(NOW), N(NOW, "deadline"))
    regular, deadline = sorted(await storage.queue.claim_followups(NOW, 10), key=lambda f: f.kind, reverse=True)
    # Sent as one message: the first is the live one, the second is recorded with it.
    calls = []

    def decide(user, case):
        calls.append(case.id)
        return PlanChange(plan={**case.plan, "n": 1}, events=(TimelineEvent("nudge", {}),), nudges=[N(NOW + timedelta(days=2))])

    assert await storage.queue.followup_sent([regular.id, deadline.id], 500, NOW, decide) == []
    rows = {f.id: f for f in await storage.followups(1, case_id)}
    assert rows[regular.id].state == rows[deadline.id].state == "sent"
    assert rows[regular.id].message_id == 500 and rows[regular.id].answer is None
    assert rows[deadline.id].answer == "-"
    assert calls == [case_id] and (await storage.get_case(1, case_id)).plan["n"] == 1
    # The next one: the earlier keyboard is replaced.
    (nxt,) = await storage.queue.claim_followups(NOW + timedelta(days=2), 10)
    assert await storage.queue.followup_sent([nxt.id], 501, NOW) == [500]
    with pytest.raises(Refused):       # a press on the replaced nudge is stale
        await storage.change_case(1, case_id, NOW, lambda u, c: (PlanChange(), 1), answered=(regular.id, "waiting"))
    assert await storage.change_case(1, case_id, NOW, lambda u, c: (PlanChange(), 1), answered=(nxt.id, "waiting")) == 1
    with pytest.raises(Refused):       # answered once
        await storage.change_case(1, case_id, NOW, lambda u, c: (PlanChange(), 1), answered=(nxt.id, "refused"))
    # Retry later, fail, release.
    await storage.change_case(1, case_id, NOW, lambda u, c: (PlanChange(nudges=[N(NOW), N(NOW), N(NOW)]), 0))
    a, b, c = await storage.queue.claim_followups(NOW, 10)
    await storage.queue.followup_retry(a.id, NOW + timedelta(seconds=30), NOW)
    await storage.queue.followup_failed([b.id], NOW, "Bad Request: chat not found")
    await storage.queue.release_followups([c.id], NOW)
    rows = {f.id: f for f in await storage.followups(1, case_id)}
    assert (rows[a.id].state, rows[a.id].due_at, rows[a.id].attempts) == ("pending", NOW + timedelta(seconds=30), 1)
    assert rows[b.id].state == "failed" and rows[b.id].data["error"] == "Bad Request: chat not found"
    assert (rows[c.id].state, rows[c.id].due_at) == ("pending", NOW)


async def test_rows_in_flight_at_a_crash_are_pending_again_after_a_restart(db_url, backend):
    path = db_url
    s = await Storage.open(path)
    case_id = await advised_case(s, 1, N(NOW), N(NOW + timedelta(hours=1)))
    (claimed,) = await s.queue.claim_followups(NOW, 10)
    await s.close()                        # the process dies here: the row stays `sending`
    s = await Storage.open(path)
    try:
        if backend == "postgresql":
            # Another instance may be sending it: left alone until the claim's lease is over.
            assert await s.queue.rearm_followups(NOW) == 0
            assert await s.queue.claim_followups(NOW, 10) == []
            assert await s.queue.earliest_followup() == NOW + s.queue.claim_lease
            later = NOW + s.queue.claim_lease + timedelta(seconds=1)
        else:
            assert await s.queue.earliest_followup() == NOW + timedelta(hours=1)
            later = NOW
        assert await s.queue.rearm_followups(later) == 1
        assert await s.queue.earliest_followup() == NOW
        (again,) = await s.queue.claim_followups(later, 10)
        assert again.id == claimed.id and again.attempts == 2
        assert states(await s.followups(1, case_id)) == [("regular", "sending"), ("regular", "pending")]
    finally:
        await s.close()


async def test_blocked_users_nudges_are_paused_until_planned_again(storage):
    case_id = await advised_case(storage, 1, N(NOW), N(NOW + timedelta(days=1), "deadline"))
    (claimed,) = await storage.queue.claim_followups(NOW, 1)
    await storage.block_user(1, NOW)
    assert states(await storage.followups(1, case_id)) == [("regular", "paused"), ("deadline", "paused")]
    assert not await storage.queue.followup_sendable(claimed.id)
    assert await storage.queue.earliest_followup() is None
    # Planned again while still blocked: paused.
    await storage.change_case(1, case_id, NOW, lambda u, c: (PlanChange(nudges=[N(NOW)]), 0))
    assert [f.state for f in await storage.followups(1, case_id, ["paused", "pending"])] == ["paused"]
    assert await storage.unblock_user(1, NOW) and not await storage.unblock_user(1, NOW)
    await storage.change_case(1, case_id, NOW, lambda u, c: (PlanChange(nudges=[N(NOW)]), 0))
    assert [f.state for f in await storage.followups(1, case_id, ["paused", "pending"])] == ["pending"]
    assert [c.id for c in await storage.planned_cases(1)] == [case_id]


async def test_closing_or_deleting_leaves_nothing_to_send(storage):
    resolved = await advised_case(storage, 1, N(NOW))
    deleted = await advised_case(storage, 2, N(NOW))
    (claimed,) = [f for f in await storage.queue.claim_followups(NOW, 10) if f.case_id == deleted]
    await storage.set_status(1, resolved, "resolved", NOW, TimelineEvent("resolved", {}), plan={**PLAN, "status": "resolved"})
    assert states(await storage.followups(1, resolved)) == [("regular", "cancelled")]
    assert (await storage.get_case(1, resolved)).plan["status"] == "resolved"
    assert await storage.planned_cases(1) == []
    await storage.delete_user(2)
    assert not await storage.queue.followup_sendable(claimed.id)
    assert await storage.queue.followup_sent([claimed.id], 9, NOW) == []
    assert await storage.count_rows(2) == 0


async def test_a_schema_1_database_is_migrated_with_its_data(tmp_path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as raw:
        raw.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
        raw.execute("INSERT INTO users (id, created_at, updated_at) VALUES (7, 'x', 'x')")
        raw.execute("INSERT INTO cases (user_id, status, slots, dialog, created_at, updated_at) "
                    "VALUES (7, 'advised', '{}', '{\"node\": \"done\"}', 'x', 'x')")
    s = await Storage.open(path)
    try:
        assert await s.schema_version() == len(MIGRATIONS) >= 2
        (case,) = await s.list_cases(7)
        assert case.status == "advised" and case.plan is None and case.cadence is None
        assert (await s.get_user(7)).seen_locale is None
    finally:
        await s.close()
