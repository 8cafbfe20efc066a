"""The PostgreSQL backend: a pool of asyncpg connections (bot.storage.pgsession), shared by
several processes (instances behind a load balancer):

- a transaction that writes a user's rows first takes a lock on that user (an advisory
  transaction lock keyed by the user id: it exists before the user's row does), so two
  instances handling the same user take turns, as coroutines do on SQLite's one connection;
- due follow-ups are claimed with FOR UPDATE SKIP LOCKED: two claimers never get the same row
  and never wait for each other;
- a claim is a lease: a row left `sending` longer than the lease (its instance died) is pending
  again, claimed by whichever instance looks next. A live instance's rows in flight are never
  taken from it within the lease.
"""
from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Iterable, Sequence
from urllib.parse import urlsplit

import asyncpg

from bot.storage.pgsession import PgSession, redact
from bot.storage.errors import StorageError
from bot.storage.records import Row, iso, parse_time
from bot.storage.schema import MIGRATIONS, postgres_ddl

_SCHEMA_TABLE = "refund_advisor_schema"
_MIGRATION_LOCK = -0x7265_6675_6E64    # not a user id: instances starting together migrate in turn


# The server unreachable, or a transaction that lost a race: the same work may succeed later.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    # A full disk, too many connections, out of memory, a server starting up or shutting down.
    asyncpg.exceptions.InsufficientResourcesError, asyncpg.exceptions.CannotConnectNowError)


def driver_reason(exc: BaseException, url: str) -> str:
    """The first line of a driver's error, without the password should the driver quote it."""
    text = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    password = urlsplit(url).password if "@" in url else None
    return text.replace(password, "***") if password else text


class PostgresBackend:
    shared = True
    for_claim = " FOR UPDATE OF f SKIP LOCKED"

    def __init__(self, session: PgSession, path: str):
        self._db = session
        self.path = path

    @classmethod
    async def open(cls, url: str) -> "PostgresBackend":
        shown = redact(url)
        try:
            session = await PgSession.connect(url)
        except ValueError as exc:
            raise StorageError(f"cannot open database {shown}: malformed URL ({driver_reason(exc, url)})") from None
        except Exception as exc:     # asyncpg, OSError, timeouts
            raise StorageError(f"cannot open database {shown}: {driver_reason(exc, url)}") from None
        backend = cls(session, shown)
        try:
            await backend.migrate()
        except StorageError:
            await session.close()
            raise
        except Exception as exc:
            await session.close()
            raise StorageError(f"cannot use database {shown}: {driver_reason(exc, url)}") from None
        return backend

    async def execute(self, sql: str, args: Iterable[Any] = ()) -> int:
        return (await self._db.execute(sql, args)).rowcount

    async def fetchall(self, sql: str, args: Iterable[Any] = ()) -> Sequence[Row]:
        return await self._db.execute_fetchall(sql, args)

    async def fetchone(self, sql: str, args: Iterable[Any] = ()) -> Row | None:
        rows = await self._db.execute_fetchall(sql, args)
        return rows[0] if rows else None

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._db.executemany(sql, rows)

    @contextlib.asynccontextmanager
    async def transaction(self, user_id: int | None = None) -> AsyncIterator[None]:
        async with self._db.transaction():
            if user_id is not None:
                await self.lock_user(user_id)
            yield

    def reading(self) -> contextlib.nullcontext[None]:
        # A pool gives each transaction its own connection: a read never sees half of one.
        return contextlib.nullcontext()

    async def lock_user(self, user_id: int) -> None:
        await self._db.execute("SELECT pg_advisory_xact_lock(?)", (user_id,))

    def json_set(self, column: str, key: str) -> str:
        return f"jsonb_set({column}::jsonb, '{{{key}}}', to_jsonb(?::text))::text"

    async def release_claims(self, now: datetime, lease: timedelta, *, at_start: bool) -> int:
        """Claims older than the lease, whatever `at_start`: the others may be in the hands of a
        live instance. A row's updated_at is its claim time while it is `sending` (every other
        change leaves that state). SKIP LOCKED: rows another transaction is changing are its
        business, and no waiting."""
        return await self.execute(
            "UPDATE followups SET state = 'pending', updated_at = ? WHERE id IN (SELECT id FROM followups "
            "WHERE state = 'sending' AND updated_at < ? FOR UPDATE SKIP LOCKED)",
            (iso(now), iso(now - lease)))

    async def earliest_due(self, lease: timedelta) -> datetime | None:
        row = await self.fetchone(
            "SELECT (SELECT MIN(due_at) FROM followups WHERE state = 'pending'), "
            "(SELECT MIN(updated_at) FROM followups WHERE state = 'sending')")
        if row is None:
            return None
        times = [parse_time(row[0])] if row[0] else []
        if row[1]:
            times.append(parse_time(row[1]) + lease)    # another instance may have died
        return min(times, default=None)

    async def schema_version(self) -> int:
        row = await self.fetchone(f"SELECT MAX(version) FROM {_SCHEMA_TABLE}")
        return int(row[0] or 0) if row else 0

    async def migrate(self) -> None:
        async with self._db.transaction():
            await self._db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            await self._db.execute(f"CREATE TABLE IF NOT EXISTS {_SCHEMA_TABLE} (version INTEGER NOT NULL)")
            version = await self.schema_version()
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"database {self.path} has schema version {version}, newer than this program knows "
                    f"({len(MIGRATIONS)}): upgrade refund-advisor")
            for script in MIGRATIONS[version:]:
                await self._db.script(postgres_ddl(script))
            if version < len(MIGRATIONS):
                await self._db.execute(f"DELETE FROM {_SCHEMA_TABLE}")
                await self._db.execute(f"INSERT INTO {_SCHEMA_TABLE} (version) VALUES (?)", (len(MIGRATIONS),))

    async def columns(self, table: str) -> list[str]:
        rows = await self.fetchall(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position", (table,))
        return [r[0] for r in rows]

    async def after_copy(self, tables: Sequence[tuple[str, str]]) -> None:
        for table, key in tables:
            if key == "id" and table != "users":     # users' ids are Telegram's, not a sequence's
                await self.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1), "
                    f"MAX(id) IS NOT NULL) FROM {table}")

    async def close(self) -> None:
        await self._db.close()
