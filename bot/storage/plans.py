"""Writing a reminder plan's change (records.PlanChange) to a case, inside the transaction of the
turn, the button press or the nudge that caused it.

The database is the source of truth for nudges: a plan state per case (cases.plan) and one row
per nudge to send. Every change of a case's plan replaces its live rows in the same
transaction as the turn that caused it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from bot.storage.backend import Backend
from bot.storage.records import (
    CASE_STATUSES, CLOSED_STATUSES, LIVE_FOLLOWUPS, PlanChange, PlannedNudge, dump, iso, iso_ms,
)


async def apply_change(db: Backend, user_id: int, case_id: int, change: PlanChange, now: datetime, *,
                       blocked: bool | None = None) -> None:
    """Inside a transaction: write a PlanChange to one of the user's cases. `blocked`: the
    user's flag, if the caller has just read it."""
    if change.status is not None and change.status not in CASE_STATUSES:
        raise ValueError(f"unknown case status {change.status!r}")
    sets: list[str] = ["updated_at = ?"]
    args: list[Any] = [iso(now)]
    if change.plan is not None:
        sets.append("plan = ?")
        args.append(dump(dict(change.plan)))
    if change.status is not None:
        sets.append("status = ?")
        args.append(change.status)
    if change.category is not None:
        sets.append("category = ?")
        args.append(change.category)
    if change.set_cadence:
        sets.append("cadence = ?")
        args.append(change.cadence)     # None: back to the configured default
    changed = await db.execute(f"UPDATE cases SET {', '.join(sets)} WHERE id = ? AND user_id = ?",
                               (*args, case_id, user_id))
    if changed != 1:
        raise LookupError(f"case {case_id} of user {user_id} does not exist")
    await db.executemany(
        "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
        [(case_id, iso(now), e.kind, dump(dict(e.data))) for e in change.events])
    closed = change.status in CLOSED_STATUSES
    if closed or change.nudges is not None:
        await replace_followups(db, user_id, case_id, () if closed else change.nudges or (), now, blocked=blocked)


async def replace_followups(db: Backend, user_id: int, case_id: int, nudges: Iterable[PlannedNudge],
                            now: datetime, *, blocked: bool | None = None) -> None:
    """Inside a transaction: cancel the case's live follow-ups, insert `nudges` (paused if the
    user has blocked the bot: they are planned again when the user writes). `blocked`: the
    user's flag, if the caller read it in this transaction."""
    await db.execute(
        f"UPDATE followups SET state = 'cancelled', updated_at = ? WHERE case_id = ? "
        f"AND state IN ({','.join('?' * len(LIVE_FOLLOWUPS))})", (iso(now), case_id, *LIVE_FOLLOWUPS))
    rows = list(nudges)
    if not rows:
        return
    if blocked is None:
        row = await db.fetchone("SELECT blocked FROM users WHERE id = ?", (user_id,))
        blocked = bool(row and row[0])
    state = "paused" if blocked else "pending"
    await db.executemany(
        "INSERT INTO followups (case_id, user_id, due_at, kind, state, data, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(case_id, user_id, iso_ms(n.due_at), n.kind, state, dump(dict(n.data)), iso(now)) for n in rows])
