"""The SQLite backend: one file, one process, one aiosqlite connection shared by the coroutines.

One connection, many coroutines: a transaction must not interleave with another's statements,
so transactions (BEGIN IMMEDIATE) and the dispatcher's reads take one asyncio lock. A claim of a
follow-up belongs to this process alone: the rows it left `sending` are pending again at the
next start.
"""
from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Sequence

import aiosqlite

from bot.storage.errors import StorageError
from bot.storage.records import Row, iso, parse_time
from bot.storage.schema import MIGRATIONS


# The database busy or unreachable: the same statement may succeed later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)


class SqliteBackend:
    shared = False
    for_claim = ""

    def __init__(self, db: aiosqlite.Connection, path: str):
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> "SqliteBackend":
        if path != ":memory:":
            try:
                parent = Path(path).expanduser().resolve().parent
                exists = parent.is_dir()
            except OSError as exc:      # a folder on the way that this user may not enter
                raise StorageError(f"cannot open database {path}: {exc.strerror or exc}") from exc
            if not exists:
                raise StorageError(f"cannot open database {path}: folder {parent} does not exist")
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open database {path}: {exc}") from exc
        backend = cls(db, path)
        try:
            await backend.migrate()
        except (sqlite3.Error, OSError) as exc:
            await db.close()
            raise StorageError(f"cannot use database {path}: {exc}") from exc
        except StorageError:
            await db.close()
            raise
        return backend

    async def execute(self, sql: str, args: Iterable[Any] = ()) -> int:
        cursor = await self._db.execute(sql, tuple(args))
        return cursor.rowcount

    async def fetchall(self, sql: str, args: Iterable[Any] = ()) -> Sequence[Row]:
        # execute_fetchall: one round trip to the database thread, not two.
        return list(await self._db.execute_fetchall(sql, tuple(args)))

    async def fetchone(self, sql: str, args: Iterable[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._db.executemany(sql, rows)

    def transaction(self, user_id: int | None = None) -> "_Transaction":
        # BEGIN IMMEDIATE serialises every writer of the file: no lock per user is needed.
        return _Transaction(self._db, self._lock)

    def reading(self) -> asyncio.Lock:
        return self._lock

    async def lock_user(self, user_id: int) -> None:
        """Nothing to do: BEGIN IMMEDIATE has already serialised everything."""

    def json_set(self, column: str, key: str) -> str:
        return f"json_set({column}, '$.{key}', ?)"

    async def release_claims(self, now: datetime, lease: timedelta, *, at_start: bool) -> int:
        if not at_start:
            return 0            # every claim is this running process's own
        return await self.execute(
            "UPDATE followups SET state = 'pending', updated_at = ? WHERE state = 'sending'", (iso(now),))

    async def earliest_due(self, lease: timedelta) -> datetime | None:
        async with self._lock:
            row = await self.fetchone("SELECT MIN(due_at) FROM followups WHERE state = 'pending'")
        return parse_time(row[0]) if row and row[0] else None

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def migrate(self) -> None:
        await self._db.execute("PRAGMA busy_timeout = 5000")
        await self._db.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            await self._db.execute("PRAGMA journal_mode = WAL")
        await self._db.execute("PRAGMA synchronous = NORMAL")
        version = await self.schema_version()
        if version > len(MIGRATIONS):
            raise StorageError(
                f"database {self.path} has schema version {version}, newer than this program knows "
                f"({len(MIGRATIONS)}): upgrade refund-advisor")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump is part of the same script.
            await self._db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        # A file that can be read but not written (a read-only file or folder, a full disk) fails
        # here, at start, with its cause, not at the first user's turn.
        await self._db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    async def columns(self, table: str) -> list[str]:
        return [r[1] for r in await self.fetchall(f"PRAGMA table_info({table})")]

    async def after_copy(self, tables: Sequence[tuple[str, str]]) -> None:
        """Nothing to do: AUTOINCREMENT continues after the highest id present."""

    async def close(self) -> None:
        await self._db.close()


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

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                await self._db.execute("COMMIT")
            elif self._db.in_transaction:
                # Some errors (a full disk, SQLITE_FULL) roll the transaction back themselves: a
                # ROLLBACK then would fail and hide the cause from the log.
                await self._db.execute("ROLLBACK")
        finally:
            self._lock.release()
