"""The store of users, cases, turns and their timelines: every write that answers a user.

A user's data is reached only through that user's id: every query that touches a case names
its owner. Every write that answers a user is committed before the reply. The queries are
written once for both databases (bot/storage/backend.py); the follow-up rows the dispatcher
works through are `Storage.queue` (bot/storage/queue.py).
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from bot.storage.pgsession import is_postgres
from bot.storage.backend import Backend
from bot.storage.errors import AlreadyDone, Refused, StaleTurn
from bot.storage.outbox import Outbox, OutboxRow, write as write_outbox
from bot.storage.plans import apply_change, replace_followups
from bot.storage.postgres import PostgresBackend
from bot.storage.queue import FollowupQueue
from bot.storage.records import (
    CASE_COLUMNS, CASE_STATUSES, CLOSED_STATUSES, FOLLOWUP_COLUMNS, USER_COLUMNS, Case, Evidence, Followup,
    PlanChange, TimelineEntry, User, case_of, dump, followup_of, iso, user_of,
)
from bot.storage.sqlite import SqliteBackend
from dialogs.model import TimelineEvent

Result = TypeVar("Result")
_ACTIVE_CASE = (f"SELECT {', '.join('c.' + c.strip() for c in CASE_COLUMNS.split(','))} FROM dialog_state d "
                "JOIN cases c ON c.id = d.case_id AND c.user_id = d.user_id WHERE d.user_id = ?")


class Storage:
    def __init__(self, backend: Backend):
        self._db = backend
        self.queue = FollowupQueue(backend)
        self.outbox = Outbox(backend)

    @classmethod
    async def open(cls, path: str | Path) -> "Storage":
        """A SQLite file, or a postgresql:// URL; migrated to the current schema."""
        target = str(path)
        backend: Backend
        if is_postgres(target):
            backend = await PostgresBackend.open(target)
        else:
            backend = await SqliteBackend.open(target)
        return cls(backend)

    @property
    def path(self) -> str:
        """The SQLite file, or the PostgreSQL URL without its password."""
        return self._db.path

    @property
    def backend(self) -> Backend:
        return self._db

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        return await self._db.schema_version()

    async def _inserted_id(self, sql: str, args: Sequence[Any]) -> int:
        """An INSERT ... RETURNING id: the id."""
        row = await self._db.fetchone(sql, args)
        if row is None:
            raise RuntimeError(f"no id returned by {sql.split('(')[0]}")
        return int(row[0])

    # ---- users ------------------------------------------------------------------------

    async def ensure_user(self, user_id: int, now: datetime, language: str | None = None,
                          seen_locale: str | None = None) -> User:
        """The user's row, made if missing. `seen_locale`: the language their Telegram app reports,
        kept for messages sent unprompted (written only when it changes)."""
        # Nearly every turn finds the row as it should be: a read, not a write transaction.
        known = await self.get_user(user_id)
        if known is not None and (seen_locale is None or known.seen_locale == seen_locale):
            return known
        async with self._db.transaction():
            await self._db.execute(
                "INSERT INTO users (id, language, seen_locale, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET seen_locale = excluded.seen_locale "
                "WHERE excluded.seen_locale IS NOT NULL AND users.seen_locale IS DISTINCT FROM excluded.seen_locale",
                (user_id, language, seen_locale, iso(now), iso(now)))
        return await self.get_user(user_id)  # type: ignore[return-value]

    async def get_user(self, user_id: int) -> User | None:
        rows = await self._db.fetchall(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return user_of(rows[0]) if rows else None

    async def set_user(self, user_id: int, now: datetime, **fields: Any) -> None:
        allowed = {"language", "time_zone", "blocked"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"unknown user fields: {set(fields) - allowed}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        async with self._db.transaction():
            await self._db.execute(f"UPDATE users SET {assignments}, updated_at = ? WHERE id = ?",
                                   (*fields.values(), iso(now), user_id))

    # ---- cases ------------------------------------------------------------------------

    async def create_case(self, user_id: int, dialog: Mapping[str, Any], now: datetime) -> Case:
        """A new case, made the user's active one, in one transaction."""
        async with self._db.transaction(user_id):
            case_id = await self._insert_case(user_id, dialog, now)
        return await self.get_case(user_id, case_id)  # type: ignore[return-value]

    async def _insert_case(self, user_id: int, dialog: Mapping[str, Any], now: datetime) -> int:
        """A new case made the user's active one, inside the caller's transaction; its id."""
        case_id = await self._inserted_id(
            "INSERT INTO cases (user_id, status, slots, dialog, created_at, updated_at) "
            "VALUES (?, 'intake', ?, ?, ?, ?) RETURNING id",
            (user_id, dump(dialog.get("slots") or {}), dump(dialog), iso(now), iso(now)))
        await self._db.execute(
            "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, 'opened', '{}')", (case_id, iso(now)))
        await self._set_active(user_id, case_id, now)
        return case_id

    async def get_case(self, user_id: int, case_id: int) -> Case | None:
        rows = await self._db.fetchall(
            f"SELECT {CASE_COLUMNS} FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))
        return case_of(rows[0]) if rows else None

    async def list_cases(self, user_id: int) -> list[Case]:
        rows = await self._db.fetchall(
            f"SELECT {CASE_COLUMNS} FROM cases WHERE user_id = ? ORDER BY id", (user_id,))
        return [case_of(r) for r in rows]

    async def active_case(self, user_id: int) -> Case | None:
        rows = await self._db.fetchall(_ACTIVE_CASE, (user_id,))
        return case_of(rows[0]) if rows else None

    async def set_active_case(self, user_id: int, case_id: int | None, now: datetime) -> bool:
        """Make one of the user's own cases the active one; False if it is not theirs."""
        if case_id is not None and await self.get_case(user_id, case_id) is None:
            return False
        async with self._db.transaction(user_id):
            await self._set_active(user_id, case_id, now)
        return True

    async def _set_active(self, user_id: int, case_id: int | None, now: datetime) -> None:
        await self._db.execute(
            "INSERT INTO dialog_state (user_id, case_id, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET case_id = excluded.case_id, updated_at = excluded.updated_at",
            (user_id, case_id, iso(now)))

    async def ui_state(self, user_id: int) -> dict[str, Any]:
        """Per-user shell state beside the active case (e.g. the message whose buttons are live)."""
        rows = await self._db.fetchall("SELECT data FROM dialog_state WHERE user_id = ?", (user_id,))
        return json.loads(rows[0][0]) if rows else {}

    async def save_turn(self, user_id: int, case_id: int, dialog: Mapping[str, Any], events: Iterable[TimelineEvent],
                        now: datetime, *, status: str | None = None, category: str | None = None,
                        confidence: float | None = None, update_id: int | None = None,
                        change: PlanChange | None = None, read: Mapping[str, Any] | None = None,
                        fresh: Mapping[str, Any] | None = None,
                        outbox: Callable[[int | None], OutboxRow | None] | None = None) -> int | None:
        """The outcome of one turn, in one transaction: the dialog position, the slots, the timeline,
        (for Telegram) the update id, and the follow-up plan and nudges it starts (`change`, written
        after the rest). AlreadyDone, and nothing written, if the update was already done. `read`: the
        dialog the turn was computed from; if the case holds another one now (a turn of the same
        user on another instance came first), nothing is written and StaleTurn is raised.
        `fresh`: the dialog of a new case the turn opens (made the active one; its id is returned).
        `outbox(fresh case id)`: the turn's replies, written to the outbox with the rest."""
        if status is not None and status not in CASE_STATUSES:
            raise ValueError(f"unknown case status {status!r}")
        async with self._db.transaction(user_id):
            if update_id is not None:
                changed = await self._db.execute(
                    "INSERT INTO processed_updates (update_id, user_id, at) VALUES (?, ?, ?) "
                    "ON CONFLICT(update_id) DO NOTHING", (update_id, user_id, iso(now)))
                if changed == 0:
                    raise AlreadyDone(f"update {update_id}")
            changed = await self._db.execute(
                "UPDATE cases SET dialog = ?, slots = ?, status = COALESCE(?, status), "
                "category = COALESCE(?, category), confidence = COALESCE(?, confidence), updated_at = ? "
                "WHERE id = ? AND user_id = ?" + (" AND dialog = ?" if read is not None else ""),
                (dump(dict(dialog)), dump(dict(dialog.get("slots") or {})), status, category, confidence,
                 iso(now), case_id, user_id, *([dump(dict(read))] if read is not None else [])))
            if changed != 1:
                if read is not None and await self.get_case(user_id, case_id) is not None:
                    raise StaleTurn(f"case {case_id} changed since it was read")
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            await self._db.executemany(
                "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
                [(case_id, iso(now), e.kind, dump(dict(e.data))) for e in events])
            if change is not None:
                await apply_change(self._db, user_id, case_id, change, now)
            opened = await self._insert_case(user_id, fresh, now) if fresh is not None else None
            row = outbox(opened) if outbox is not None else None
            if row is not None:
                await write_outbox(self._db, row, now)
        return opened

    async def mark_update(self, update_id: int, user_id: int | None, now: datetime) -> bool:
        """Record an update that changes no case; False if it was already processed."""
        async with self._db.transaction():
            changed = await self._db.execute(
                "INSERT INTO processed_updates (update_id, user_id, at) VALUES (?, ?, ?) "
                "ON CONFLICT(update_id) DO NOTHING", (update_id, user_id, iso(now)))
        return changed == 1

    async def seen_update(self, update_id: int) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM processed_updates WHERE update_id = ?", (update_id,))
        return row is not None

    async def add_event(self, user_id: int, case_id: int, event: TimelineEvent, now: datetime, *,
                        update_id: int | None = None, outbox: OutboxRow | None = None) -> None:
        """An entry on one of the user's cases' timeline, with (for Telegram) the update that
        brought it and its reply, in one transaction; AlreadyDone if that update was."""
        async with self._db.transaction(user_id):
            owned = await self._db.fetchone(
                "SELECT 1 FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))
            if not owned:
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            if update_id is not None and not await self._db.execute(
                    "INSERT INTO processed_updates (update_id, user_id, at) VALUES (?, ?, ?) "
                    "ON CONFLICT(update_id) DO NOTHING", (update_id, user_id, iso(now))):
                raise AlreadyDone(f"update {update_id}")
            await self._db.execute("INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
                                   (case_id, iso(now), event.kind, dump(dict(event.data))))
            if outbox is not None:
                await write_outbox(self._db, outbox, now)

    async def set_status(self, user_id: int, case_id: int, status: str, now: datetime,
                         event: TimelineEvent | None = None, *, plan: Mapping[str, Any] | None = None) -> bool:
        """A new status (and plan state) for one of the user's cases. A closed case (resolved,
        abandoned) has every live follow-up cancelled in the same transaction."""
        if status not in CASE_STATUSES:
            raise ValueError(f"unknown case status {status!r}")
        async with self._db.transaction(user_id):
            changed = await self._db.execute(
                "UPDATE cases SET status = ?, plan = COALESCE(?, plan), updated_at = ? WHERE id = ? AND user_id = ?",
                (status, dump(dict(plan)) if plan is not None else None, iso(now), case_id, user_id))
            if changed != 1:
                return False
            if status in CLOSED_STATUSES:
                await replace_followups(self._db, user_id, case_id, (), now)
            if event is not None:
                await self._db.execute("INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
                                       (case_id, iso(now), event.kind, dump(dict(event.data))))
        return True

    async def timeline(self, user_id: int, case_id: int) -> list[TimelineEntry]:
        rows = await self._db.fetchall(
            "SELECT e.at, e.kind, e.data FROM case_events e JOIN cases c ON c.id = e.case_id "
            "WHERE e.case_id = ? AND c.user_id = ? ORDER BY e.id", (case_id, user_id))
        return [TimelineEntry(r[0], r[1], json.loads(r[2])) for r in rows]

    # ---- evidence ---------------------------------------------------------------------

    async def add_evidence(self, user_id: int, case_id: int, kind: str, now: datetime,
                           file_id: str | None = None, text: str | None = None) -> int:
        async with self._db.transaction(user_id):
            owned = await self._db.fetchone(
                "SELECT 1 FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))
            if not owned:
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            evidence_id = await self._inserted_id(
                "INSERT INTO evidence (case_id, kind, file_id, text, at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (case_id, kind, file_id, text, iso(now)))
            await self._db.execute(
                "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, 'evidence', ?)",
                (case_id, iso(now), dump({"kind": kind, "file_id": file_id, "text": text})))
            return evidence_id

    async def evidence(self, user_id: int, case_id: int) -> list[Evidence]:
        rows = await self._db.fetchall(
            "SELECT v.id, v.case_id, v.kind, v.file_id, v.text, v.at FROM evidence v JOIN cases c ON c.id = v.case_id "
            "WHERE v.case_id = ? AND c.user_id = ? ORDER BY v.id", (case_id, user_id))
        return [Evidence(*r) for r in rows]

    async def change_case(self, user_id: int, case_id: int, now: datetime,
                          decide: Callable[[User, Case], tuple[PlanChange, Result] | None], *,
                          update_id: int | None = None, answered: tuple[int, str] | None = None,
                          outbox: Callable[[Result], OutboxRow | None] | None = None) -> Result:
        """Read one of the user's cases, decide, write: one transaction, so that no other write
        (another press, the dispatcher recording a nudge) comes in between.

        `decide(user, case)` is pure and quick (no storage calls: the connection is held); it
        returns (the change, a result for the caller), or None to change nothing. `answered`
        (followup id, answer): the press of a nudge button, accepted only while that nudge's
        keyboard is live (sent, not answered, not replaced by a newer nudge); it is then marked
        answered. `outbox(result)`: the replies, written with the change. Returns the result; raises AlreadyDone if `update_id` was acted on already, or
        Refused (nothing written) if the case is not the user's, the nudge is stale, or `decide`
        said no."""
        async with self._db.transaction(user_id):
            if update_id is not None and await self._db.fetchone(
                    "SELECT 1 FROM processed_updates WHERE update_id = ?", (update_id,)):
                raise AlreadyDone(f"update {update_id}")
            user_row = await self._db.fetchone(
                f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
            case_row = await self._db.fetchone(
                f"SELECT {CASE_COLUMNS} FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))
            if user_row is None or case_row is None:
                raise Refused("not the user's case")
            if answered is not None:
                live = await self._db.fetchone(
                    "SELECT 1 FROM followups WHERE id = ? AND case_id = ? AND user_id = ? AND state = 'sent' "
                    "AND answer IS NULL", (answered[0], case_id, user_id))
                if not live:
                    raise Refused("not a live nudge")
            decided = decide(user_of(user_row), case_of(case_row))
            if decided is None:
                raise Refused("nothing to change")
            change, result = decided
            if update_id is not None:
                await self._db.execute("INSERT INTO processed_updates (update_id, user_id, at) VALUES (?, ?, ?)",
                                       (update_id, user_id, iso(now)))
            if answered is not None:
                await self._db.execute("UPDATE followups SET answer = ?, updated_at = ? WHERE id = ?",
                                       (answered[1], iso(now), answered[0]))
            await apply_change(self._db, user_id, case_id, change, now, blocked=bool(user_row[3]))
            row = outbox(result) if outbox is not None else None
            if row is not None:
                await write_outbox(self._db, row, now)
            return result

    async def planned_cases(self, user_id: int) -> list[Case]:
        """The user's open cases that have a follow-up plan."""
        async with self._db.reading():     # never half of another coroutine's transaction
            rows = await self._db.fetchall(
                f"SELECT {CASE_COLUMNS} FROM cases WHERE user_id = ? AND plan IS NOT NULL "
                f"AND status NOT IN ({','.join('?' * len(CLOSED_STATUSES))}) ORDER BY id",
                (user_id, *CLOSED_STATUSES))
        return [case_of(r) for r in rows]

    async def followups(self, user_id: int, case_id: int | None = None,
                        states: Sequence[str] | None = None) -> list[Followup]:
        """The user's follow-up rows (of one case, in some states), by due time."""
        sql = f"SELECT {FOLLOWUP_COLUMNS} FROM followups WHERE user_id = ?"
        args: list[Any] = [user_id]
        if case_id is not None:
            sql += " AND case_id = ?"
            args.append(case_id)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        async with self._db.reading():
            rows = await self._db.fetchall(sql + " ORDER BY due_at, id", args)
        return [followup_of(r) for r in rows]

    async def block_user(self, user_id: int, now: datetime) -> None:
        """The user blocked the bot: marked, and their live nudges paused, in one transaction."""
        async with self._db.transaction(user_id):
            await self._db.execute("UPDATE users SET blocked = 1, updated_at = ? WHERE id = ?", (iso(now), user_id))
            await self._db.execute(
                "UPDATE followups SET state = 'paused', updated_at = ? WHERE user_id = ? "
                "AND state IN ('pending', 'sending')", (iso(now), user_id))

    async def unblock_user(self, user_id: int, now: datetime) -> bool:
        """The user wrote again (or unblocked the bot): True if they were marked blocked. Their paused
        nudges stay paused until the caller plans them again (stale deadlines are dropped so)."""
        async with self._db.transaction():
            changed = await self._db.execute(
                "UPDATE users SET blocked = 0, updated_at = ? WHERE id = ? AND blocked = 1", (iso(now), user_id))
        return changed == 1

    # ---- erasure ----------------------------------------------------------------------

    async def delete_user(self, user_id: int) -> None:
        """Every row of this user, in every table."""
        async with self._db.transaction(user_id):
            case_ids = [r[0] for r in await self._db.fetchall("SELECT id FROM cases WHERE user_id = ?", (user_id,))]
            for table in ("case_events", "evidence", "followups"):
                await self._db.executemany(f"DELETE FROM {table} WHERE case_id = ?", [(c,) for c in case_ids])
            await self._db.execute("DELETE FROM followups WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM dialog_state WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM cases WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM processed_updates WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM outbox WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM users WHERE id = ?", (user_id,))

    async def count_rows(self, user_id: int) -> int:
        """How many rows anywhere still belong to the user (0 after delete_user)."""
        total = 0
        for sql in (
            "SELECT COUNT(*) FROM users WHERE id = ?",
            "SELECT COUNT(*) FROM cases WHERE user_id = ?",
            "SELECT COUNT(*) FROM dialog_state WHERE user_id = ?",
            "SELECT COUNT(*) FROM followups WHERE user_id = ?",
            "SELECT COUNT(*) FROM processed_updates WHERE user_id = ?",
            "SELECT COUNT(*) FROM outbox WHERE user_id = ?",
            "SELECT COUNT(*) FROM case_events e JOIN cases c ON c.id = e.case_id WHERE c.user_id = ?",
            "SELECT COUNT(*) FROM evidence e JOIN cases c ON c.id = e.case_id WHERE c.user_id = ?",
        ):
            row = await self._db.fetchone(sql, (user_id,))
            total += row[0] if row else 0
        return total

    # ---- whole tables (copy-db) ---------------------------------------------------------
