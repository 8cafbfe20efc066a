"""All SQL lives here: SQLite through aiosqlite, schema versioned and migrated at open.

A user's data is reached only through that user's id: every query that touches a
case names its owner. Every write that answers a user is committed before the reply.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import aiosqlite

from dialogs.model import TimelineEvent


class StorageError(Exception):
    """The database cannot be used (unreadable, not a database, newer schema)."""


MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        language TEXT,
        time_zone TEXT,
        blocked INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE cases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        slots TEXT NOT NULL DEFAULT '{}',
        dialog TEXT NOT NULL,
        category TEXT,
        confidence REAL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX cases_user ON cases(user_id, id);
    CREATE TABLE case_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX case_events_case ON case_events(case_id, id);
    CREATE TABLE dialog_state (
        user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        case_id INTEGER REFERENCES cases(id) ON DELETE SET NULL,
        data TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL
    );
    CREATE TABLE followups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        due_at TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL
    );
    CREATE INDEX followups_due ON followups(state, due_at);
    CREATE INDEX followups_case ON followups(case_id);
    CREATE TABLE evidence (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        file_id TEXT,
        text TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX evidence_case ON evidence(case_id);
    CREATE TABLE processed_updates (
        update_id INTEGER PRIMARY KEY,
        user_id INTEGER,
        at TEXT NOT NULL
    );
    CREATE INDEX processed_updates_user ON processed_updates(user_id);
    """,
)

CASE_STATUSES = ("intake", "advised", "resolved", "abandoned")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time stored is time-zone aware")
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class User:
    id: int
    language: str | None
    time_zone: str | None
    blocked: bool


@dataclass(frozen=True)
class Case:
    id: int
    user_id: int
    status: str
    slots: Mapping[str, Any]
    dialog: Mapping[str, Any]
    category: str | None
    confidence: float | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Event:
    at: str
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    id: int
    case_id: int
    kind: str
    file_id: str | None
    text: str | None
    at: str


_CASE_COLUMNS = "id, user_id, status, slots, dialog, category, confidence, created_at, updated_at"


def _case(row: Sequence[Any]) -> Case:
    return Case(id=row[0], user_id=row[1], status=row[2], slots=json.loads(row[3]), dialog=json.loads(row[4]),
                category=row[5], confidence=row[6], created_at=row[7], updated_at=row[8])


class Storage:
    def __init__(self, db: aiosqlite.Connection, path: str):
        self._db = db
        self.path = path
        # One connection, many coroutines: a transaction must not interleave with another's statements.
        self._lock = asyncio.Lock()

    # ---- opening ----------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path) -> "Storage":
        path = str(path)
        if path != ":memory:":
            parent = Path(path).expanduser().resolve().parent
            if not parent.is_dir():
                raise StorageError(f"cannot open database {path}: folder {parent} does not exist")
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from exc
        storage = cls(db, path)
        try:
            await storage._prepare()
        except (sqlite3.Error, OSError) as exc:
            await db.close()
            raise StorageError(f"cannot use database {path}: {exc}") from exc
        except StorageError:
            await db.close()
            raise
        return storage

    async def _prepare(self) -> None:
        await self._db.execute("PRAGMA busy_timeout = 5000")
        await self._db.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            await self._db.execute("PRAGMA journal_mode = WAL")
        await self._db.execute("PRAGMA synchronous = NORMAL")
        version = (await (await self._db.execute("PRAGMA user_version")).fetchone())[0]
        if version > len(MIGRATIONS):
            raise StorageError(
                f"database {self.path} has schema version {version}, newer than this program knows "
                f"({len(MIGRATIONS)}): upgrade refund-advisor")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump is part of the same script.
            await self._db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        return (await (await self._db.execute("PRAGMA user_version")).fetchone())[0]

    # ---- users ------------------------------------------------------------------------

    async def ensure_user(self, user_id: int, now: datetime, language: str | None = None) -> User:
        async with self._transaction():
            await self._db.execute(
                "INSERT INTO users (id, language, created_at, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO NOTHING", (user_id, language, _iso(now), _iso(now)))
        return await self.get_user(user_id)  # type: ignore[return-value]

    async def get_user(self, user_id: int) -> User | None:
        row = await (await self._db.execute(
            "SELECT id, language, time_zone, blocked FROM users WHERE id = ?", (user_id,))).fetchone()
        return User(row[0], row[1], row[2], bool(row[3])) if row else None

    async def set_user(self, user_id: int, now: datetime, **fields: Any) -> None:
        allowed = {"language", "time_zone", "blocked"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"unknown user fields: {set(fields) - allowed}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        async with self._transaction():
            await self._db.execute(f"UPDATE users SET {assignments}, updated_at = ? WHERE id = ?",
                                   (*fields.values(), _iso(now), user_id))

    # ---- cases ------------------------------------------------------------------------

    async def create_case(self, user_id: int, dialog: Mapping[str, Any], now: datetime) -> Case:
        """A new case, made the user's active one, in one transaction."""
        async with self._transaction():
            cursor = await self._db.execute(
                "INSERT INTO cases (user_id, status, slots, dialog, created_at, updated_at) "
                "VALUES (?, 'intake', ?, ?, ?, ?)",
                (user_id, _dump(dialog.get("slots") or {}), _dump(dialog), _iso(now), _iso(now)))
            case_id = cursor.lastrowid
            await self._db.execute(
                "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, 'opened', '{}')", (case_id, _iso(now)))
            await self._set_active(user_id, case_id, now)
        return await self.get_case(user_id, case_id)  # type: ignore[return-value]

    async def get_case(self, user_id: int, case_id: int) -> Case | None:
        row = await (await self._db.execute(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))).fetchone()
        return _case(row) if row else None

    async def list_cases(self, user_id: int) -> list[Case]:
        rows = await (await self._db.execute(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE user_id = ? ORDER BY id", (user_id,))).fetchall()
        return [_case(r) for r in rows]

    async def active_case(self, user_id: int) -> Case | None:
        row = await (await self._db.execute(
            f"SELECT {', '.join('c.' + c.strip() for c in _CASE_COLUMNS.split(','))} FROM dialog_state d "
            "JOIN cases c ON c.id = d.case_id AND c.user_id = d.user_id WHERE d.user_id = ?", (user_id,))).fetchone()
        return _case(row) if row else None

    async def set_active_case(self, user_id: int, case_id: int | None, now: datetime) -> bool:
        """Make one of the user's own cases the active one; False if it is not theirs."""
        if case_id is not None and await self.get_case(user_id, case_id) is None:
            return False
        async with self._transaction():
            await self._set_active(user_id, case_id, now)
        return True

    async def _set_active(self, user_id: int, case_id: int | None, now: datetime) -> None:
        await self._db.execute(
            "INSERT INTO dialog_state (user_id, case_id, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET case_id = excluded.case_id, updated_at = excluded.updated_at",
            (user_id, case_id, _iso(now)))

    async def ui_state(self, user_id: int) -> dict[str, Any]:
        """Per-user shell state beside the active case (e.g. the message whose buttons are live)."""
        row = await (await self._db.execute("SELECT data FROM dialog_state WHERE user_id = ?", (user_id,))).fetchone()
        return json.loads(row[0]) if row else {}

    async def set_ui_state(self, user_id: int, data: Mapping[str, Any], now: datetime) -> None:
        async with self._transaction():
            await self._db.execute(
                "INSERT INTO dialog_state (user_id, data, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (user_id, _dump(dict(data)), _iso(now)))

    async def save_turn(self, user_id: int, case_id: int, dialog: Mapping[str, Any], events: Iterable[TimelineEvent],
                        now: datetime, *, status: str | None = None, category: str | None = None,
                        confidence: float | None = None, update_id: int | None = None) -> bool:
        """The outcome of one turn, in one transaction: the dialog position, the slots, the timeline,
        and (for Telegram) the update id. False, and nothing written, if the update was already done."""
        if status is not None and status not in CASE_STATUSES:
            raise ValueError(f"unknown case status {status!r}")
        async with self._transaction():
            if update_id is not None:
                cursor = await self._db.execute(
                    "INSERT INTO processed_updates (update_id, user_id, at) VALUES (?, ?, ?) "
                    "ON CONFLICT(update_id) DO NOTHING", (update_id, user_id, _iso(now)))
                if cursor.rowcount == 0:
                    return False
            cursor = await self._db.execute(
                "UPDATE cases SET dialog = ?, slots = ?, status = COALESCE(?, status), "
                "category = COALESCE(?, category), confidence = COALESCE(?, confidence), updated_at = ? "
                "WHERE id = ? AND user_id = ?",
                (_dump(dict(dialog)), _dump(dict(dialog.get("slots") or {})), status, category, confidence,
                 _iso(now), case_id, user_id))
            if cursor.rowcount != 1:
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            await self._db.executemany(
                "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
                [(case_id, _iso(now), e.kind, _dump(dict(e.data))) for e in events])
        return True

    async def mark_update(self, update_id: int, user_id: int | None, now: datetime) -> bool:
        """Record an update that changes no case; False if it was already processed."""
        async with self._transaction():
            cursor = await self._db.execute(
                "INSERT INTO processed_updates (update_id, user_id, at) VALUES (?, ?, ?) "
                "ON CONFLICT(update_id) DO NOTHING", (update_id, user_id, _iso(now)))
        return cursor.rowcount == 1

    async def seen_update(self, update_id: int) -> bool:
        row = await (await self._db.execute(
            "SELECT 1 FROM processed_updates WHERE update_id = ?", (update_id,))).fetchone()
        return row is not None

    async def add_event(self, user_id: int, case_id: int, event: TimelineEvent, now: datetime) -> None:
        async with self._transaction():
            owned = await (await self._db.execute(
                "SELECT 1 FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))).fetchone()
            if not owned:
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            await self._db.execute("INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
                                   (case_id, _iso(now), event.kind, _dump(dict(event.data))))

    async def set_status(self, user_id: int, case_id: int, status: str, now: datetime,
                         event: TimelineEvent | None = None) -> bool:
        if status not in CASE_STATUSES:
            raise ValueError(f"unknown case status {status!r}")
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE cases SET status = ?, updated_at = ? WHERE id = ? AND user_id = ?",
                (status, _iso(now), case_id, user_id))
            if cursor.rowcount != 1:
                return False
            if event is not None:
                await self._db.execute("INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
                                       (case_id, _iso(now), event.kind, _dump(dict(event.data))))
        return True

    async def timeline(self, user_id: int, case_id: int) -> list[Event]:
        rows = await (await self._db.execute(
            "SELECT e.at, e.kind, e.data FROM case_events e JOIN cases c ON c.id = e.case_id "
            "WHERE e.case_id = ? AND c.user_id = ? ORDER BY e.id", (case_id, user_id))).fetchall()
        return [Event(r[0], r[1], json.loads(r[2])) for r in rows]

    # ---- evidence ---------------------------------------------------------------------

    async def add_evidence(self, user_id: int, case_id: int, kind: str, now: datetime,
                           file_id: str | None = None, text: str | None = None) -> int:
        async with self._transaction():
            owned = await (await self._db.execute(
                "SELECT 1 FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))).fetchone()
            if not owned:
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            cursor = await self._db.execute(
                "INSERT INTO evidence (case_id, kind, file_id, text, at) VALUES (?, ?, ?, ?, ?)",
                (case_id, kind, file_id, text, _iso(now)))
            await self._db.execute(
                "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, 'evidence', ?)",
                (case_id, _iso(now), _dump({"kind": kind, "file_id": file_id, "text": text})))
            return cursor.lastrowid

    async def evidence(self, user_id: int, case_id: int) -> list[Evidence]:
        rows = await (await self._db.execute(
            "SELECT v.id, v.case_id, v.kind, v.file_id, v.text, v.at FROM evidence v JOIN cases c ON c.id = v.case_id "
            "WHERE v.case_id = ? AND c.user_id = ? ORDER BY v.id", (case_id, user_id))).fetchall()
        return [Evidence(*r) for r in rows]

    # ---- erasure ----------------------------------------------------------------------

    async def delete_user(self, user_id: int) -> None:
        """Every row of this user, in every table."""
        async with self._transaction():
            case_ids = [r[0] for r in await (await self._db.execute(
                "SELECT id FROM cases WHERE user_id = ?", (user_id,))).fetchall()]
            for table in ("case_events", "evidence", "followups"):
                await self._db.executemany(f"DELETE FROM {table} WHERE case_id = ?", [(c,) for c in case_ids])
            await self._db.execute("DELETE FROM followups WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM dialog_state WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM cases WHERE user_id = ?", (user_id,))
            await self._db.execute("DELETE FROM processed_updates WHERE user_id = ?", (user_id,))
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
            "SELECT COUNT(*) FROM case_events e JOIN cases c ON c.id = e.case_id WHERE c.user_id = ?",
            "SELECT COUNT(*) FROM evidence e JOIN cases c ON c.id = e.case_id WHERE c.user_id = ?",
        ):
            total += (await (await self._db.execute(sql, (user_id,))).fetchone())[0]
        return total

    # ---- plumbing ---------------------------------------------------------------------

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db, self._lock)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error: all of a turn or none of it."""

    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock):
        self._db = db
        self._lock = lock

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        try:
            await self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            await self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self._lock.release()
