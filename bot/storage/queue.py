"""The follow-up queue: the rows of nudges to send, as the dispatcher (bot/dispatcher.py) uses them.

pending -> sending (claimed) -> sent | pending again (retry later) | failed. A claim is atomic;
on PostgreSQL it skips rows another instance holds and is a lease (bot/storage/postgres.py).
Recording a nudge sent (or given up on) writes the plan's record of it and the next nudges in
the same transaction (`decide`, from the reminder service).
"""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence

from bot.storage.backend import Backend
from bot.storage.plans import apply_change
from bot.storage.records import (
    CASE_COLUMNS, CLOSED_STATUSES, FOLLOWUP_COLUMNS, USER_AND_CASE, Case, Followup, PlanChange, User, case_of,
    followup_of, iso, iso_ms, plan_active, user_and_case_of,
)

# Longer than any batch takes to send (100 nudges at 20 a second), far shorter than a nudge's cadence.
CLAIM_LEASE = timedelta(minutes=10)
_SENDABLE = ("FROM followups f JOIN cases c ON c.id = f.case_id AND c.user_id = f.user_id "
             "JOIN users u ON u.id = f.user_id WHERE f.id = ? AND f.state = 'sending' AND u.blocked = 0 "
             f"AND c.status NOT IN ({','.join('?' * len(CLOSED_STATUSES))})")

Decide = Callable[[User, Case], PlanChange | None]


class FollowupQueue:
    def __init__(self, db: Backend):
        self._db = db
        self.claim_lease = CLAIM_LEASE

    @property
    def shared(self) -> bool:
        """Other processes claim from the same rows (PostgreSQL): their nudges are not announced here."""
        return self._db.shared

    async def earliest_followup(self) -> datetime | None:
        """The earliest due time of a pending follow-up (from the index, whatever the table's size);
        where claims can outlive their process (PostgreSQL) also the earliest end of a claim's lease."""
        return await self._db.earliest_due(self.claim_lease)

    async def claim_followups(self, now: datetime, limit: int) -> list[Followup]:
        """Up to `limit` pending follow-ups due by `now`, earliest first, claimed atomically
        (pending -> sending, attempts + 1). Due rows that must not be sent are settled on the
        way: a closed or deleted case or a plan without nudges -> cancelled; a user who blocked
        the bot -> paused."""
        claimed: list[Followup] = []
        async with self._db.transaction():
            await self._db.release_claims(now, self.claim_lease, at_start=False)
            rows = await self._db.fetchall(
                f"SELECT {', '.join('f.' + c.strip() for c in FOLLOWUP_COLUMNS.split(','))}, "
                "c.id, c.status, c.plan, u.id, u.blocked FROM followups f "
                "LEFT JOIN cases c ON c.id = f.case_id AND c.user_id = f.user_id "
                "LEFT JOIN users u ON u.id = f.user_id "
                "WHERE f.state = 'pending' AND f.due_at <= ? ORDER BY f.due_at, f.id LIMIT ?" + self._db.for_claim,
                (iso_ms(now), limit))
            cancel, pause = [], []
            for row in rows:
                followup = followup_of(row[:10])
                case_id, status, plan, user_id, blocked = row[10:]
                if case_id is None or user_id is None or status in CLOSED_STATUSES \
                        or not plan_active(json.loads(plan) if plan else None):
                    cancel.append(followup.id)
                elif blocked:
                    pause.append(followup.id)
                else:
                    claimed.append(replace(followup, state="sending", attempts=followup.attempts + 1))
            for state, ids in (("cancelled", cancel), ("paused", pause)):
                await self._db.executemany("UPDATE followups SET state = ?, updated_at = ? WHERE id = ?",
                                           [(state, iso(now), i) for i in ids])
            await self._db.executemany(
                "UPDATE followups SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                [(iso(now), f.id) for f in claimed])
        return claimed

    async def followup_sendable(self, followup_id: int) -> bool:
        """Still claimed, its case open, its user there and not blocked: checked just before sending."""
        async with self._db.reading():
            row = await self._db.fetchone(f"SELECT 1 {_SENDABLE}", (followup_id, *CLOSED_STATUSES))
        return row is not None

    async def followup_to_send(self, followup_id: int) -> tuple[User, Case] | None:
        """followup_sendable's check and the user and case the nudge is rendered from, in one
        statement (each statement is a round trip to the database thread, and a nudge has ~33 ms)."""
        async with self._db.reading():
            row = await self._db.fetchone(f"SELECT {USER_AND_CASE} {_SENDABLE}", (followup_id, *CLOSED_STATUSES))
        return user_and_case_of(row) if row else None

    async def followup_sent(self, followup_ids: Sequence[int], message_id: int | None, now: datetime,
                            decide: Decide | None = None, *, owner: tuple[int, int] | None = None) -> list[int]:
        """Nudges of one case went out (as one message): recorded sent (whatever happened to them
        meanwhile: they did go out), the keyboards of the case's earlier unanswered nudges marked
        replaced, and `decide(user, case)`'s change (the plan's record of the nudges, the next
        ones) written, in one transaction. Returns the message ids whose keyboards are no longer live."""
        if not followup_ids:
            return []
        # One nudge is recorded per message sent, one at a time: every statement here is paid for
        # each nudge (one round trip to the database thread each).
        async with self._db.transaction():
            if owner is None:
                row = await self._db.fetchone("SELECT case_id, user_id FROM followups WHERE id = ?", (followup_ids[0],))
                if row is None:           # the user deleted their data meanwhile
                    return []
                owner = row[0], row[1]
            case_id, user_id = owner
            await self._db.lock_user(user_id)
            # In one statement: these rows sent (the first one's keyboard live, the others' not),
            # and the case's earlier nudges whose keyboards were live marked replaced.
            marks = ",".join("?" * len(followup_ids))
            ids = tuple(followup_ids)
            touched = await self._db.fetchall(
                f"UPDATE followups SET answer = CASE WHEN id = ? THEN NULL ELSE '-' END, "
                f"state = CASE WHEN id IN ({marks}) THEN 'sent' ELSE state END, "
                f"message_id = CASE WHEN id IN ({marks}) THEN ? ELSE message_id END, "
                f"sent_at = CASE WHEN id IN ({marks}) THEN ? ELSE sent_at END, updated_at = ? "
                f"WHERE case_id = ? AND (id IN ({marks}) OR (state = 'sent' AND answer IS NULL)) RETURNING id, message_id",
                (ids[0], *ids, *ids, message_id, *ids, iso(now), iso(now), case_id, *ids))
            if not any(r[0] in ids for r in touched):     # the user deleted their data meanwhile
                return []
            replaced = sorted({r[1] for r in touched if r[0] not in ids and r[1] is not None and r[1] != message_id})
            await self._decide_and_apply(user_id, case_id, now, decide)
        return replaced

    async def _decide_and_apply(self, user_id: int, case_id: int, now: datetime, decide: Decide | None) -> None:
        if decide is None:
            return
        row = await self._db.fetchone(
            f"SELECT {USER_AND_CASE} FROM cases c JOIN users u ON u.id = c.user_id WHERE c.id = ? AND c.user_id = ?",
            (case_id, user_id))
        if row is None:
            return
        user, case = user_and_case_of(row)
        change = decide(user, case)
        if change is not None:
            await apply_change(self._db, user_id, case_id, change, now, blocked=user.blocked)

    async def followup_retry(self, followup_id: int, due_at: datetime, now: datetime) -> None:
        """Not sent for a passing reason (flood control, network): pending again, due at `due_at`."""
        async with self._db.transaction():
            await self._db.execute(
                "UPDATE followups SET state = 'pending', due_at = ?, updated_at = ? WHERE id = ? AND state = 'sending'",
                (iso_ms(due_at), iso(now), followup_id))

    async def followup_failed(self, followup_ids: Sequence[int], now: datetime, error: str,
                              decide: Decide | None = None) -> None:
        """Nudges given up on (Telegram refuses them): failed, with the error, and `decide`'s change
        (the plan goes on from now) in one transaction."""
        if not followup_ids:
            return
        async with self._db.transaction():
            row = await self._db.fetchone("SELECT case_id, user_id FROM followups WHERE id = ?", (followup_ids[0],))
            if row is None:
                return
            await self._db.lock_user(row[1])
            await self._db.executemany(
                f"UPDATE followups SET state = 'failed', data = {self._db.json_set('data', 'error')}, updated_at = ? "
                "WHERE id = ? AND state = 'sending'", [(error[:500], iso(now), i) for i in followup_ids])
            await self._decide_and_apply(row[1], row[0], now, decide)

    async def release_followups(self, ids: Iterable[int], now: datetime) -> None:
        """Claimed but not sent (a clean stop): pending again, due as they were."""
        async with self._db.transaction():
            await self._db.executemany(
                "UPDATE followups SET state = 'pending', updated_at = ? WHERE id = ? AND state = 'sending'",
                [(iso(now), i) for i in ids])

    async def rearm_followups(self, now: datetime) -> int:
        """At start-up: rows left `sending` by a crash are pending again. A nudge that went out just
        before the crash may so go out once more: at most that one. With one process per database
        (SQLite) every such row; where instances share it (PostgreSQL) only those whose lease is
        over: the others may be in the hands of a live instance."""
        async with self._db.transaction():
            return await self._db.release_claims(now, self.claim_lease, at_start=True)

    async def unplanned_cases(self, after_id: int, limit: int) -> list[Case]:
        """Open advised cases without a reminder plan (advised before reminders existed), of
        Telegram users (positive ids; the terminal chat's user is 0), by id after `after_id`."""
        async with self._db.reading():
            rows = await self._db.fetchall(
                f"SELECT {CASE_COLUMNS} FROM cases WHERE id > ? AND plan IS NULL "
                "AND status IN ('advised', 'escalated') AND user_id > 0 ORDER BY id LIMIT ?",
                (after_id, limit))
        return [case_of(r) for r in rows]
