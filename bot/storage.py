"""All SQL lives here: SQLite through aiosqlite, or PostgreSQL through asyncpg (bot.pgsession),
one set of queries for both; schema versioned and migrated at open.

A user's data is reached only through that user's id: every query that touches a
case names its owner. Every write that answers a user is committed before the reply.

Several processes may share one PostgreSQL database (one SQLite file has one process):
- a transaction that writes a user's rows first takes a lock on that user (an advisory
  transaction lock keyed by the user id: it exists before the user's row does), so two
  instances handling the same user take turns, as coroutines do on SQLite's one connection;
- due follow-ups are claimed with FOR UPDATE SKIP LOCKED: two claimers never get the same row
  and never wait for each other;
- a claim is a lease: a row left `sending` longer than `claim_lease` (its instance died) is
  pending again, claimed by whichever instance looks next. A live instance's rows in flight
  are never taken from it within the lease.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import aiosqlite

from bot import pgsession
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
    # 2: follow-up nudges (issue 4). cases.plan is the follow-up plan state of dialogs/followup.py
    # (JSON, NULL until the advice); cases.cadence the user's /remind choice (NULL = the default).
    # users.seen_locale is the language Telegram last reported (nudges are sent unprompted).
    # A follow-up row, once sent, keeps its message id; `answer` is the button pressed on it
    # ('-' once a newer nudge of the case replaced its keyboard).
    """
    ALTER TABLE cases ADD COLUMN plan TEXT;
    ALTER TABLE cases ADD COLUMN cadence TEXT;
    ALTER TABLE users ADD COLUMN seen_locale TEXT;
    ALTER TABLE followups ADD COLUMN message_id INTEGER;
    ALTER TABLE followups ADD COLUMN answer TEXT;
    ALTER TABLE followups ADD COLUMN sent_at TEXT;
    CREATE INDEX followups_user ON followups(user_id, state);
    CREATE INDEX followups_case_state ON followups(case_id, state);
    """,
    # 3: follow-ups at scale (issue 6). The dispatcher reads only pending rows by due time and
    # claimed rows by claim time: partial indexes hold just those, so that every nudge sent, or
    # replanned away, leaves them instead of moving to another place of a million-row index (the
    # writes of each nudge, and so the WAL and its checkpoints, shrink). followups_case was the
    # prefix of followups_case_state. Start-up finds the cases advised before follow-ups existed
    # in an index of those alone, not by reading every case's JSON.
    """
    CREATE INDEX followups_pending ON followups(due_at, id) WHERE state = 'pending';
    CREATE INDEX followups_sending ON followups(updated_at) WHERE state = 'sending';
    DROP INDEX followups_due;
    DROP INDEX followups_case;
    CREATE INDEX cases_unplanned ON cases(id) WHERE plan IS NULL AND status IN ('advised', 'escalated');
    """,
)

CASE_STATUSES = ("intake", "advised", "escalated", "resolved", "abandoned")
CLOSED_STATUSES = ("resolved", "abandoned")
# pending -> sending (claimed) -> sent | pending again (retry later) | failed; pending, sending or
# paused -> cancelled (replaced by a new plan, case closed); pending or sending -> paused (the user
# blocked the bot; replanned when they write again).
FOLLOWUP_STATES = ("pending", "sending", "sent", "cancelled", "failed", "paused")
_LIVE_FOLLOWUPS = ("pending", "sending", "paused")
_ACTIVE_PLAN = ("waiting", "escalated")     # plan statuses with nudges (dialogs/rules/ladder.yaml)
# Every table, in an order their foreign keys accept, with the column that orders its rows (copy-db).
TABLES = (("users", "id"), ("cases", "id"), ("case_events", "id"), ("dialog_state", "user_id"),
          ("followups", "id"), ("evidence", "id"), ("processed_updates", "update_id"))
# Longer than any batch takes to send (100 nudges at 20 a second), far shorter than a nudge's cadence.
CLAIM_LEASE = timedelta(minutes=10)
_PG_SCHEMA_TABLE = "refund_advisor_schema"
_PG_MIGRATION_LOCK = -0x7265_6675_6E64    # not a user id: instances starting together migrate in turn


def _postgres_ddl(script: str) -> str:
    """A migration as PostgreSQL reads it: 64-bit integers (Telegram ids do not fit in 32 bits),
    identity columns for AUTOINCREMENT (ids still given explicitly by copy-db), double precision
    for REAL, and byte-order text like SQLite's, so that stored ISO times sort as times whatever
    the database's locale."""
    script = script.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    script = re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', script)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time stored is time-zone aware")
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _iso_ms(moment: datetime) -> str:
    """Due times: UTC, to the millisecond, one fixed format (so that text order is time order)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time stored is time-zone aware")
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class User:
    id: int
    language: str | None
    time_zone: str | None
    blocked: bool
    seen_locale: str | None = None


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
    plan: Mapping[str, Any] | None = None     # the follow-up plan state (dialogs/followup.py)
    cadence: str | None = None                # /remind's choice; None = the configured default


@dataclass(frozen=True)
class Followup:
    """One row of `followups`: a nudge to send at `due_at`."""
    id: int
    case_id: int
    user_id: int
    due_at: datetime
    kind: str
    state: str
    attempts: int
    data: Mapping[str, Any]
    message_id: int | None = None
    answer: str | None = None


@dataclass(frozen=True)
class PlanChange:
    """What a follow-up transition writes to a case, with the turn that caused it.

    `nudges`: None leaves the case's follow-ups as they are; a sequence (of objects with
    `due_at`, `kind` and `data`, like dialogs.followup.Nudge) replaces every live one
    (pending, sending, paused): they are cancelled and these are inserted, paused if the
    user has blocked the bot. An empty sequence cancels them all."""
    plan: Mapping[str, Any] | None = None
    events: Sequence[TimelineEvent] = ()
    status: str | None = None
    category: str | None = None
    nudges: Sequence[Any] | None = None
    cadence: str | None = None
    set_cadence: bool = False


class Refused(Exception):
    """A change the storage will not make (not the user's case, a stale nudge button)."""


class StaleTurn(Exception):
    """save_turn: the case moved on since it was read (another instance took a turn meanwhile)."""


class AlreadyDone(Exception):
    """save_turn, change_case: the update was acted on already; nothing was written."""


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


_CASE_COLUMNS = "id, user_id, status, slots, dialog, category, confidence, created_at, updated_at, plan, cadence"
_USER_COLUMNS = "id, language, time_zone, blocked, seen_locale"
_ACTIVE_CASE = (f"SELECT {', '.join('c.' + c.strip() for c in _CASE_COLUMNS.split(','))} FROM dialog_state d "
                "JOIN cases c ON c.id = d.case_id AND c.user_id = d.user_id WHERE d.user_id = ?")
_FOLLOWUP_COLUMNS = "id, case_id, user_id, due_at, kind, state, attempts, data, message_id, answer"
_USER_AND_CASE = ", ".join([*("u." + c.strip() for c in _USER_COLUMNS.split(",")),
                            *("c." + c.strip() for c in _CASE_COLUMNS.split(","))])
_USER_WIDTH = len(_USER_COLUMNS.split(","))


def _case(row: Sequence[Any]) -> Case:
    return Case(id=row[0], user_id=row[1], status=row[2], slots=json.loads(row[3]), dialog=json.loads(row[4]),
                category=row[5], confidence=row[6], created_at=row[7], updated_at=row[8],
                plan=json.loads(row[9]) if row[9] else None, cadence=row[10])


def _user(row: Sequence[Any]) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), row[4])


def _user_and_case(row: Sequence[Any]) -> tuple[User, Case]:
    return _user(row[:_USER_WIDTH]), _case(row[_USER_WIDTH:])


def _followup(row: Sequence[Any]) -> Followup:
    return Followup(id=row[0], case_id=row[1], user_id=row[2], due_at=_time(row[3]), kind=row[4], state=row[5],
                    attempts=row[6], data=json.loads(row[7]), message_id=row[8], answer=row[9])


def _pg_reason(exc: BaseException, url: str) -> str:
    """The first line of a driver's error, without the password should the driver quote it."""
    text = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    password = urlsplit(url).password if "@" in url else None
    return text.replace(password, "***") if password else text


def _plan_active(plan: Mapping[str, Any] | None) -> bool:
    return bool(plan) and plan.get("status") in _ACTIVE_PLAN


class Storage:
    def __init__(self, db: aiosqlite.Connection | pgsession.PgSession, path: str):
        self._db = db
        self.path = path      # the SQLite file, or the PostgreSQL URL without its password
        self.postgres = isinstance(db, pgsession.PgSession)
        self.claim_lease = CLAIM_LEASE
        # One connection, many coroutines: a transaction must not interleave with another's statements.
        # A pool of connections (PostgreSQL) gives each transaction its own.
        self._lock: Any = contextlib.nullcontext() if self.postgres else asyncio.Lock()
        if self.postgres:
            self._skip_locked = " FOR UPDATE OF f SKIP LOCKED"
            self._json_set_error = "jsonb_set(data::jsonb, '{error}', to_jsonb(?::text))::text"
        else:
            self._skip_locked = ""
            self._json_set_error = "json_set(data, '$.error', ?)"

    # ---- opening ----------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path) -> "Storage":
        """A SQLite file, or a postgresql:// URL; migrated to the current schema."""
        path = str(path)
        if pgsession.is_postgres(path):
            return await cls._open_postgres(path)
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

    @classmethod
    async def _open_postgres(cls, url: str) -> "Storage":
        shown = pgsession.redact(url)
        try:
            session = await pgsession.PgSession.connect(url)
        except ValueError as exc:
            raise StorageError(f"cannot open database {shown}: malformed URL ({_pg_reason(exc, url)})") from None
        except Exception as exc:     # asyncpg, OSError, timeouts
            raise StorageError(f"cannot open database {shown}: {_pg_reason(exc, url)}") from None
        storage = cls(session, shown)
        try:
            await storage._migrate_postgres()
        except StorageError:
            await session.close()
            raise
        except Exception as exc:
            await session.close()
            raise StorageError(f"cannot use database {shown}: {_pg_reason(exc, url)}") from None
        return storage

    async def _migrate_postgres(self) -> None:
        async with self._db.transaction():
            await self._db.execute("SELECT pg_advisory_xact_lock(?)", (_PG_MIGRATION_LOCK,))
            await self._db.execute(f"CREATE TABLE IF NOT EXISTS {_PG_SCHEMA_TABLE} (version INTEGER NOT NULL)")
            version = await self.schema_version()
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"database {self.path} has schema version {version}, newer than this program knows "
                    f"({len(MIGRATIONS)}): upgrade refund-advisor")
            for script in MIGRATIONS[version:]:
                await self._db.script(_postgres_ddl(script))
            if version < len(MIGRATIONS):
                await self._db.execute(f"DELETE FROM {_PG_SCHEMA_TABLE}")
                await self._db.execute(f"INSERT INTO {_PG_SCHEMA_TABLE} (version) VALUES (?)", (len(MIGRATIONS),))

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
        if self.postgres:
            row = await (await self._db.execute(f"SELECT MAX(version) FROM {_PG_SCHEMA_TABLE}")).fetchone()
            return row[0] or 0
        return (await (await self._db.execute("PRAGMA user_version")).fetchone())[0]

    # ---- users ------------------------------------------------------------------------

    async def ensure_user(self, user_id: int, now: datetime, language: str | None = None,
                          seen_locale: str | None = None) -> User:
        """The user's row, made if missing. `seen_locale`: the language their Telegram app reports,
        kept for messages sent unprompted (written only when it changes)."""
        # Nearly every turn finds the row as it should be: a read, not a write transaction.
        known = await self.get_user(user_id)
        if known is not None and (seen_locale is None or known.seen_locale == seen_locale):
            return known
        async with self._transaction():
            await self._db.execute(
                "INSERT INTO users (id, language, seen_locale, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET seen_locale = excluded.seen_locale "
                "WHERE excluded.seen_locale IS NOT NULL AND users.seen_locale IS DISTINCT FROM excluded.seen_locale",
                (user_id, language, seen_locale, _iso(now), _iso(now)))
        return await self.get_user(user_id)  # type: ignore[return-value]

    async def get_user(self, user_id: int) -> User | None:
        rows = await self._db.execute_fetchall(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return _user(rows[0]) if rows else None

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
        async with self._transaction(user_id):
            case_id = (await (await self._db.execute(
                "INSERT INTO cases (user_id, status, slots, dialog, created_at, updated_at) "
                "VALUES (?, 'intake', ?, ?, ?, ?) RETURNING id",
                (user_id, _dump(dialog.get("slots") or {}), _dump(dialog), _iso(now), _iso(now)))).fetchone())[0]
            await self._db.execute(
                "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, 'opened', '{}')", (case_id, _iso(now)))
            await self._set_active(user_id, case_id, now)
        return await self.get_case(user_id, case_id)  # type: ignore[return-value]

    async def get_case(self, user_id: int, case_id: int) -> Case | None:
        rows = await self._db.execute_fetchall(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))
        return _case(rows[0]) if rows else None

    async def list_cases(self, user_id: int) -> list[Case]:
        rows = await (await self._db.execute(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE user_id = ? ORDER BY id", (user_id,))).fetchall()
        return [_case(r) for r in rows]

    async def active_case(self, user_id: int) -> Case | None:
        rows = await self._db.execute_fetchall(_ACTIVE_CASE, (user_id,))
        return _case(rows[0]) if rows else None

    async def set_active_case(self, user_id: int, case_id: int | None, now: datetime) -> bool:
        """Make one of the user's own cases the active one; False if it is not theirs."""
        if case_id is not None and await self.get_case(user_id, case_id) is None:
            return False
        async with self._transaction(user_id):
            await self._set_active(user_id, case_id, now)
        return True

    async def _set_active(self, user_id: int, case_id: int | None, now: datetime) -> None:
        await self._db.execute(
            "INSERT INTO dialog_state (user_id, case_id, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET case_id = excluded.case_id, updated_at = excluded.updated_at",
            (user_id, case_id, _iso(now)))

    async def ui_state(self, user_id: int) -> dict[str, Any]:
        """Per-user shell state beside the active case (e.g. the message whose buttons are live)."""
        rows = await self._db.execute_fetchall("SELECT data FROM dialog_state WHERE user_id = ?", (user_id,))
        return json.loads(rows[0][0]) if rows else {}

    async def set_ui_state(self, user_id: int, data: Mapping[str, Any], now: datetime) -> None:
        async with self._transaction():
            await self._db.execute(
                "INSERT INTO dialog_state (user_id, data, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (user_id, _dump(dict(data)), _iso(now)))

    async def save_turn(self, user_id: int, case_id: int, dialog: Mapping[str, Any], events: Iterable[TimelineEvent],
                        now: datetime, *, status: str | None = None, category: str | None = None,
                        confidence: float | None = None, update_id: int | None = None,
                        change: PlanChange | None = None, read: Mapping[str, Any] | None = None) -> None:
        """The outcome of one turn, in one transaction: the dialog position, the slots, the timeline,
        (for Telegram) the update id, and the follow-up plan and nudges it starts (`change`, written
        after the rest). AlreadyDone, and nothing written, if the update was already done. `read`: the
        dialog the turn was computed from; if the case holds another one now (a turn of the same
        user on another instance came first), nothing is written and StaleTurn is raised."""
        if status is not None and status not in CASE_STATUSES:
            raise ValueError(f"unknown case status {status!r}")
        async with self._transaction(user_id):
            if update_id is not None:
                cursor = await self._db.execute(
                    "INSERT INTO processed_updates (update_id, user_id, at) VALUES (?, ?, ?) "
                    "ON CONFLICT(update_id) DO NOTHING", (update_id, user_id, _iso(now)))
                if cursor.rowcount == 0:
                    raise AlreadyDone(f"update {update_id}")
            cursor = await self._db.execute(
                "UPDATE cases SET dialog = ?, slots = ?, status = COALESCE(?, status), "
                "category = COALESCE(?, category), confidence = COALESCE(?, confidence), updated_at = ? "
                "WHERE id = ? AND user_id = ?" + (" AND dialog = ?" if read is not None else ""),
                (_dump(dict(dialog)), _dump(dict(dialog.get("slots") or {})), status, category, confidence,
                 _iso(now), case_id, user_id, *([_dump(dict(read))] if read is not None else [])))
            if cursor.rowcount != 1:
                if read is not None and await self.get_case(user_id, case_id) is not None:
                    raise StaleTurn(f"case {case_id} changed since it was read")
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            await self._db.executemany(
                "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
                [(case_id, _iso(now), e.kind, _dump(dict(e.data))) for e in events])
            if change is not None:
                await self._apply_change(user_id, case_id, change, now)

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
        async with self._transaction(user_id):
            owned = await (await self._db.execute(
                "SELECT 1 FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))).fetchone()
            if not owned:
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            await self._db.execute("INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
                                   (case_id, _iso(now), event.kind, _dump(dict(event.data))))

    async def set_status(self, user_id: int, case_id: int, status: str, now: datetime,
                         event: TimelineEvent | None = None, *, plan: Mapping[str, Any] | None = None) -> bool:
        """A new status (and plan state) for one of the user's cases. A closed case (resolved,
        abandoned) has every live follow-up cancelled in the same transaction."""
        if status not in CASE_STATUSES:
            raise ValueError(f"unknown case status {status!r}")
        async with self._transaction(user_id):
            cursor = await self._db.execute(
                "UPDATE cases SET status = ?, plan = COALESCE(?, plan), updated_at = ? WHERE id = ? AND user_id = ?",
                (status, _dump(dict(plan)) if plan is not None else None, _iso(now), case_id, user_id))
            if cursor.rowcount != 1:
                return False
            if status in CLOSED_STATUSES:
                await self._replace_followups(user_id, case_id, (), now)
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
        async with self._transaction(user_id):
            owned = await (await self._db.execute(
                "SELECT 1 FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))).fetchone()
            if not owned:
                raise LookupError(f"case {case_id} of user {user_id} does not exist")
            evidence_id = (await (await self._db.execute(
                "INSERT INTO evidence (case_id, kind, file_id, text, at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (case_id, kind, file_id, text, _iso(now)))).fetchone())[0]
            await self._db.execute(
                "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, 'evidence', ?)",
                (case_id, _iso(now), _dump({"kind": kind, "file_id": file_id, "text": text})))
            return evidence_id

    async def evidence(self, user_id: int, case_id: int) -> list[Evidence]:
        rows = await (await self._db.execute(
            "SELECT v.id, v.case_id, v.kind, v.file_id, v.text, v.at FROM evidence v JOIN cases c ON c.id = v.case_id "
            "WHERE v.case_id = ? AND c.user_id = ? ORDER BY v.id", (case_id, user_id))).fetchall()
        return [Evidence(*r) for r in rows]

    # ---- follow-ups -------------------------------------------------------------------
    #
    # The database is the source of truth for nudges: a plan state per case (cases.plan) and one
    # row per nudge to send. Every change of a case's plan replaces its live rows in the same
    # transaction as the turn that caused it.

    async def _apply_change(self, user_id: int, case_id: int, change: PlanChange, now: datetime, *,
                            blocked: bool | None = None) -> None:
        """Inside a transaction: write a PlanChange to one of the user's cases. `blocked`: the
        user's flag, if the caller has just read it."""
        if change.status is not None and change.status not in CASE_STATUSES:
            raise ValueError(f"unknown case status {change.status!r}")
        sets, args = ["updated_at = ?"], [_iso(now)]
        if change.plan is not None:
            sets.append("plan = ?")
            args.append(_dump(dict(change.plan)))
        if change.status is not None:
            sets.append("status = ?")
            args.append(change.status)
        if change.category is not None:
            sets.append("category = ?")
            args.append(change.category)
        if change.set_cadence:
            sets.append("cadence = ?")
            args.append(change.cadence)
        cursor = await self._db.execute(f"UPDATE cases SET {', '.join(sets)} WHERE id = ? AND user_id = ?",
                                        (*args, case_id, user_id))
        if cursor.rowcount != 1:
            raise LookupError(f"case {case_id} of user {user_id} does not exist")
        await self._db.executemany(
            "INSERT INTO case_events (case_id, at, kind, data) VALUES (?, ?, ?, ?)",
            [(case_id, _iso(now), e.kind, _dump(dict(e.data))) for e in change.events])
        closed = change.status in CLOSED_STATUSES
        if closed or change.nudges is not None:
            await self._replace_followups(user_id, case_id, () if closed else change.nudges, now, blocked=blocked)

    async def _replace_followups(self, user_id: int, case_id: int, nudges: Iterable[Any], now: datetime, *,
                                 blocked: bool | None = None) -> None:
        """Inside a transaction: cancel the case's live follow-ups, insert `nudges` (paused if the
        user has blocked the bot: they are planned again when the user writes). `blocked`: the
        user's flag, if the caller read it in this transaction."""
        await self._db.execute(
            f"UPDATE followups SET state = 'cancelled', updated_at = ? WHERE case_id = ? "
            f"AND state IN ({','.join('?' * len(_LIVE_FOLLOWUPS))})", (_iso(now), case_id, *_LIVE_FOLLOWUPS))
        rows = list(nudges)
        if not rows:
            return
        if blocked is None:
            row = await self._db.execute_fetchall("SELECT blocked FROM users WHERE id = ?", (user_id,))
            blocked = bool(row and row[0][0])
        state = "paused" if blocked else "pending"
        await self._db.executemany(
            "INSERT INTO followups (case_id, user_id, due_at, kind, state, data, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(case_id, user_id, _iso_ms(n.due_at), n.kind, state, _dump(dict(n.data)), _iso(now)) for n in rows])

    async def change_case(self, user_id: int, case_id: int, now: datetime,
                          decide: Callable[[User, Case], tuple[PlanChange, Any] | None], *,
                          update_id: int | None = None, answered: tuple[int, str] | None = None) -> Any:
        """Read one of the user's cases, decide, write: one transaction, so that no other write
        (another press, the dispatcher recording a nudge) comes in between.

        `decide(user, case)` is pure and quick (no storage calls: the connection is held); it
        returns (the change, a result for the caller), or None to change nothing. `answered`
        (followup id, answer): the press of a nudge button, accepted only while that nudge's
        keyboard is live (sent, not answered, not replaced by a newer nudge); it is then marked
        answered. Returns the result; raises AlreadyDone if `update_id` was acted on already, or
        Refused (nothing written) if the case is not the user's, the nudge is stale, or `decide`
        said no."""
        async with self._transaction(user_id):
            if update_id is not None and await (await self._db.execute(
                    "SELECT 1 FROM processed_updates WHERE update_id = ?", (update_id,))).fetchone():
                raise AlreadyDone(f"update {update_id}")
            user_row = await (await self._db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))).fetchone()
            case_row = await (await self._db.execute(
                f"SELECT {_CASE_COLUMNS} FROM cases WHERE id = ? AND user_id = ?", (case_id, user_id))).fetchone()
            if user_row is None or case_row is None:
                raise Refused("not the user's case")
            if answered is not None:
                live = await (await self._db.execute(
                    "SELECT 1 FROM followups WHERE id = ? AND case_id = ? AND user_id = ? AND state = 'sent' "
                    "AND answer IS NULL", (answered[0], case_id, user_id))).fetchone()
                if not live:
                    raise Refused("not a live nudge")
            decided = decide(_user(user_row), _case(case_row))
            if decided is None:
                raise Refused("nothing to change")
            change, result = decided
            if update_id is not None:
                await self._db.execute("INSERT INTO processed_updates (update_id, user_id, at) VALUES (?, ?, ?)",
                                       (update_id, user_id, _iso(now)))
            if answered is not None:
                await self._db.execute("UPDATE followups SET answer = ?, updated_at = ? WHERE id = ?",
                                       (answered[1], _iso(now), answered[0]))
            await self._apply_change(user_id, case_id, change, now, blocked=bool(user_row[3]))
            return result

    async def planned_cases(self, user_id: int) -> list[Case]:
        """The user's open cases that have a follow-up plan."""
        async with self._lock:     # never half of another coroutine's transaction
            rows = await (await self._db.execute(
                f"SELECT {_CASE_COLUMNS} FROM cases WHERE user_id = ? AND plan IS NOT NULL "
                f"AND status NOT IN ({','.join('?' * len(CLOSED_STATUSES))}) ORDER BY id",
                (user_id, *CLOSED_STATUSES))).fetchall()
        return [_case(r) for r in rows]

    async def unplanned_cases(self, after_id: int, limit: int) -> list[Case]:
        """Open advised cases without a follow-up plan (advised before follow-ups existed), of
        Telegram users (positive ids; the terminal chat's user is 0), by id after `after_id`."""
        async with self._lock:
            rows = await (await self._db.execute(
                f"SELECT {_CASE_COLUMNS} FROM cases WHERE id > ? AND plan IS NULL "
                "AND status IN ('advised', 'escalated') AND user_id > 0 ORDER BY id LIMIT ?",
                (after_id, limit))).fetchall()
        return [_case(r) for r in rows]

    async def followups(self, user_id: int, case_id: int | None = None,
                        states: Sequence[str] | None = None) -> list[Followup]:
        """The user's follow-up rows (of one case, in some states), by due time."""
        sql, args = f"SELECT {_FOLLOWUP_COLUMNS} FROM followups WHERE user_id = ?", [user_id]
        if case_id is not None:
            sql += " AND case_id = ?"
            args.append(case_id)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        async with self._lock:
            rows = await (await self._db.execute(sql + " ORDER BY due_at, id", args)).fetchall()
        return [_followup(r) for r in rows]

    async def earliest_followup(self) -> datetime | None:
        """The earliest due time of a pending follow-up (from the index, whatever the table's size);
        on PostgreSQL also the earliest end of a claim's lease (another instance may have died)."""
        if self.postgres:
            row = await (await self._db.execute(
                "SELECT (SELECT MIN(due_at) FROM followups WHERE state = 'pending'), "
                "(SELECT MIN(updated_at) FROM followups WHERE state = 'sending')")).fetchone()
            times = [_time(row[0])] if row[0] else []
            if row[1]:
                times.append(_time(row[1]) + self.claim_lease)
            return min(times, default=None)
        async with self._lock:
            row = await (await self._db.execute(
                "SELECT MIN(due_at) FROM followups WHERE state = 'pending'")).fetchone()
        return _time(row[0]) if row and row[0] else None

    async def claim_followups(self, now: datetime, limit: int) -> list[Followup]:
        """Up to `limit` pending follow-ups due by `now`, earliest first, claimed atomically
        (pending -> sending, attempts + 1). Due rows that must not be sent are settled on the
        way: a closed or deleted case or a plan without nudges -> cancelled; a user who blocked
        the bot -> paused."""
        claimed: list[Followup] = []
        async with self._transaction():
            if self.postgres:
                await self._expire_claims(now)
            rows = await (await self._db.execute(
                f"SELECT {', '.join('f.' + c.strip() for c in _FOLLOWUP_COLUMNS.split(','))}, "
                "c.id, c.status, c.plan, u.id, u.blocked FROM followups f "
                "LEFT JOIN cases c ON c.id = f.case_id AND c.user_id = f.user_id "
                "LEFT JOIN users u ON u.id = f.user_id "
                "WHERE f.state = 'pending' AND f.due_at <= ? ORDER BY f.due_at, f.id LIMIT ?" + self._skip_locked,
                (_iso_ms(now), limit))).fetchall()
            cancel, pause = [], []
            for row in rows:
                followup = _followup(row[:10])
                case_id, status, plan, user_id, blocked = row[10:]
                if case_id is None or user_id is None or status in CLOSED_STATUSES \
                        or not _plan_active(json.loads(plan) if plan else None):
                    cancel.append(followup.id)
                elif blocked:
                    pause.append(followup.id)
                else:
                    claimed.append(replace(followup, state="sending", attempts=followup.attempts + 1))
            for state, ids in (("cancelled", cancel), ("paused", pause)):
                await self._db.executemany("UPDATE followups SET state = ?, updated_at = ? WHERE id = ?",
                                           [(state, _iso(now), i) for i in ids])
            await self._db.executemany(
                "UPDATE followups SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                [(_iso(now), f.id) for f in claimed])
        return claimed

    async def followup_sendable(self, followup_id: int) -> bool:
        """Still claimed, its case open, its user there and not blocked: checked just before sending."""
        async with self._lock:
            row = await (await self._db.execute(
                "SELECT 1 FROM followups f JOIN cases c ON c.id = f.case_id AND c.user_id = f.user_id "
                "JOIN users u ON u.id = f.user_id WHERE f.id = ? AND f.state = 'sending' AND u.blocked = 0 "
                f"AND c.status NOT IN ({','.join('?' * len(CLOSED_STATUSES))})",
                (followup_id, *CLOSED_STATUSES))).fetchone()
        return row is not None

    async def followup_to_send(self, followup_id: int) -> tuple[User, Case] | None:
        """followup_sendable's check and the user and case the nudge is rendered from, in one
        statement (each statement is a round trip to the database thread, and a nudge has ~33 ms)."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT {_USER_AND_CASE} FROM followups f JOIN cases c ON c.id = f.case_id AND c.user_id = f.user_id "
                "JOIN users u ON u.id = f.user_id WHERE f.id = ? AND f.state = 'sending' AND u.blocked = 0 "
                f"AND c.status NOT IN ({','.join('?' * len(CLOSED_STATUSES))})",
                (followup_id, *CLOSED_STATUSES))
        return _user_and_case(rows[0]) if rows else None

    async def followup_sent(self, followup_ids: Sequence[int], message_id: int | None, now: datetime,
                            decide: Callable[[User, Case], PlanChange | None] | None = None, *,
                            owner: tuple[int, int] | None = None) -> list[int]:
        """Nudges of one case went out (as one message): recorded sent (whatever happened to them
        meanwhile: they did go out), the keyboards of the case's earlier unanswered nudges marked
        replaced, and `decide(user, case)`'s change (the plan's record of the nudges, the next
        ones) written, in one transaction. Returns the message ids whose keyboards are no longer live."""
        if not followup_ids:
            return []
        # One nudge is recorded per message sent, one at a time: every statement here is paid for
        # each nudge (execute_fetchall: one round trip to the database thread, not two).
        async with self._transaction():
            if owner is None:
                rows = await self._db.execute_fetchall(
                    "SELECT case_id, user_id FROM followups WHERE id = ?", (followup_ids[0],))
                if not rows:           # the user deleted their data meanwhile
                    return []
                owner = rows[0][0], rows[0][1]
            case_id, user_id = owner
            await self._lock_user(user_id)
            # In one statement: these rows sent (the first one's keyboard live, the others' not),
            # and the case's earlier nudges whose keyboards were live marked replaced.
            marks = ",".join("?" * len(followup_ids))
            ids = tuple(followup_ids)
            touched = await self._db.execute_fetchall(
                f"UPDATE followups SET answer = CASE WHEN id = ? THEN NULL ELSE '-' END, "
                f"state = CASE WHEN id IN ({marks}) THEN 'sent' ELSE state END, "
                f"message_id = CASE WHEN id IN ({marks}) THEN ? ELSE message_id END, "
                f"sent_at = CASE WHEN id IN ({marks}) THEN ? ELSE sent_at END, updated_at = ? "
                f"WHERE case_id = ? AND (id IN ({marks}) OR (state = 'sent' AND answer IS NULL)) RETURNING id, message_id",
                (ids[0], *ids, *ids, message_id, *ids, _iso(now), _iso(now), case_id, *ids))
            if not any(r[0] in ids for r in touched):     # the user deleted their data meanwhile
                return []
            replaced = sorted({r[1] for r in touched if r[0] not in ids and r[1] is not None and r[1] != message_id})
            await self._decide_and_apply(user_id, case_id, now, decide)
        return replaced

    async def _decide_and_apply(self, user_id: int, case_id: int, now: datetime,
                                decide: Callable[[User, Case], PlanChange | None] | None) -> None:
        if decide is None:
            return
        rows = await self._db.execute_fetchall(
            f"SELECT {_USER_AND_CASE} FROM cases c JOIN users u ON u.id = c.user_id WHERE c.id = ? AND c.user_id = ?",
            (case_id, user_id))
        if not rows:
            return
        user, case = _user_and_case(rows[0])
        change = decide(user, case)
        if change is not None:
            await self._apply_change(user_id, case_id, change, now, blocked=user.blocked)

    async def followup_retry(self, followup_id: int, due_at: datetime, now: datetime) -> None:
        """Not sent for a passing reason (flood control, network): pending again, due at `due_at`."""
        async with self._transaction():
            await self._db.execute(
                "UPDATE followups SET state = 'pending', due_at = ?, updated_at = ? WHERE id = ? AND state = 'sending'",
                (_iso_ms(due_at), _iso(now), followup_id))

    async def followup_failed(self, followup_ids: Sequence[int], now: datetime, error: str,
                              decide: Callable[[User, Case], PlanChange | None] | None = None) -> None:
        """Nudges given up on (Telegram refuses them): failed, with the error, and `decide`'s change
        (the plan goes on from now) in one transaction."""
        if not followup_ids:
            return
        async with self._transaction():
            row = await (await self._db.execute(
                "SELECT case_id, user_id FROM followups WHERE id = ?", (followup_ids[0],))).fetchone()
            if row is None:
                return
            await self._lock_user(row[1])
            await self._db.executemany(
                f"UPDATE followups SET state = 'failed', data = {self._json_set_error}, updated_at = ? "
                "WHERE id = ? AND state = 'sending'", [(error[:500], _iso(now), i) for i in followup_ids])
            await self._decide_and_apply(row[1], row[0], now, decide)

    async def release_followups(self, ids: Iterable[int], now: datetime) -> None:
        """Claimed but not sent (a clean stop): pending again, due as they were."""
        async with self._transaction():
            await self._db.executemany(
                "UPDATE followups SET state = 'pending', updated_at = ? WHERE id = ? AND state = 'sending'",
                [(_iso(now), i) for i in ids])

    async def rearm_followups(self, now: datetime) -> int:
        """At start-up: rows left `sending` by a crash are pending again. A nudge that went out just
        before the crash may so go out once more: at most that one. On SQLite (one process per
        file) every such row; on PostgreSQL only those whose lease is over: the others may be in
        the hands of a live instance."""
        async with self._transaction():
            if self.postgres:
                return await self._expire_claims(now)
            cursor = await self._db.execute(
                "UPDATE followups SET state = 'pending', updated_at = ? WHERE state = 'sending'", (_iso(now),))
        return cursor.rowcount

    async def _expire_claims(self, now: datetime) -> int:
        """Inside a transaction (PostgreSQL): claims older than the lease are pending again. A row's
        updated_at is its claim time while it is `sending` (every other change leaves that state).
        SKIP LOCKED: rows another transaction is changing are its business, and no waiting."""
        cursor = await self._db.execute(
            "UPDATE followups SET state = 'pending', updated_at = ? WHERE id IN (SELECT id FROM followups "
            "WHERE state = 'sending' AND updated_at < ? FOR UPDATE SKIP LOCKED)",
            (_iso(now), _iso(now - self.claim_lease)))
        return cursor.rowcount

    async def block_user(self, user_id: int, now: datetime) -> None:
        """The user blocked the bot: marked, and their live nudges paused, in one transaction."""
        async with self._transaction(user_id):
            await self._db.execute("UPDATE users SET blocked = 1, updated_at = ? WHERE id = ?", (_iso(now), user_id))
            await self._db.execute(
                "UPDATE followups SET state = 'paused', updated_at = ? WHERE user_id = ? "
                "AND state IN ('pending', 'sending')", (_iso(now), user_id))

    async def unblock_user(self, user_id: int, now: datetime) -> bool:
        """The user wrote again (or unblocked the bot): True if they were marked blocked. Their paused
        nudges stay paused until the caller plans them again (stale deadlines are dropped so)."""
        async with self._transaction():
            cursor = await self._db.execute(
                "UPDATE users SET blocked = 0, updated_at = ? WHERE id = ? AND blocked = 1", (_iso(now), user_id))
        return cursor.rowcount == 1

    # ---- erasure ----------------------------------------------------------------------

    async def delete_user(self, user_id: int) -> None:
        """Every row of this user, in every table."""
        async with self._transaction(user_id):
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

    # ---- whole tables (copy-db) ---------------------------------------------------------

    async def row_counts(self) -> dict[str, int]:
        """Rows per table, every table."""
        counts = {}
        for table, _ in TABLES:
            counts[table] = (await (await self._db.execute(f"SELECT COUNT(*) FROM {table}")).fetchone())[0]
        return counts

    async def _columns(self, table: str) -> list[str]:
        if self.postgres:
            rows = await (await self._db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ? ORDER BY ordinal_position", (table,))).fetchall()
            return [r[0] for r in rows]
        return [r[1] for r in await (await self._db.execute(f"PRAGMA table_info({table})")).fetchall()]

    async def copy_from(self, source: "Storage", batch: int = 1000,
                        progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
        """Every row of every table of `source`, ids kept, into this (empty) database, in one
        transaction: all of it or none. On PostgreSQL the id sequences then continue after the
        highest id copied. Returns the rows copied per table."""
        copied: dict[str, int] = {}
        async with self._transaction():
            for table, key in TABLES:
                columns = await source._columns(table)
                listed = ", ".join(columns)
                insert = f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(columns))})"
                at = columns.index(key)
                copied[table], last = 0, None
                while True:
                    sql = f"SELECT {listed} FROM {table}" + (f" WHERE {key} > ?" if last is not None else "")
                    rows = await (await source._db.execute(
                        f"{sql} ORDER BY {key} LIMIT ?", (last, batch) if last is not None else (batch,))).fetchall()
                    if not rows:
                        break
                    try:
                        await self._db.executemany(insert, [tuple(r) for r in rows])
                    except (sqlite3.Error, ValueError, TypeError) as exc:
                        raise StorageError(f"copying {table} from {key} {rows[0][at]}: {exc}") from None
                    except Exception as exc:     # asyncpg's errors (a foreign key, a type) have no common base
                        raise StorageError(f"copying {table} from {key} {rows[0][at]}: "
                                           f"{_pg_reason(exc, '')}") from None
                    copied[table] += len(rows)
                    last = rows[-1][at]
                    if progress:
                        progress(table, copied[table])
            if self.postgres:
                for table, key in TABLES:
                    if key == "id" and table != "users":     # users' ids are Telegram's, not a sequence's
                        await self._db.execute(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1), "
                            f"MAX(id) IS NOT NULL) FROM {table}")
        return copied

    # ---- plumbing ---------------------------------------------------------------------

    def _transaction(self, user_id: int | None = None) -> Any:
        """All of a turn or none of it. `user_id`: the user whose rows it reads then writes; on
        PostgreSQL no other instance's transaction for that user runs meanwhile."""
        if self.postgres:
            return self._pg_transaction(user_id)
        return _Transaction(self._db, self._lock)

    @contextlib.asynccontextmanager
    async def _pg_transaction(self, user_id: int | None):
        async with self._db.transaction():
            if user_id is not None:
                await self._lock_user(user_id)
            yield

    async def _lock_user(self, user_id: int) -> None:
        """Inside a transaction: on PostgreSQL, wait for other transactions on this user (SQLite's
        BEGIN IMMEDIATE has already serialised everything)."""
        if self.postgres:
            await self._db.execute("SELECT pg_advisory_xact_lock(?)", (user_id,))


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
