"""asyncpg behind the small part of aiosqlite's surface that bot.storage uses.

bot.storage keeps one set of queries, written for SQLite (`?` placeholders, a cursor with
`fetchone`, `fetchall` and `rowcount`); this makes them run on a pool of PostgreSQL connections.
Why not SQLAlchemy Core: the queries are already plain SQL that both databases understand,
and on SQLite every statement would pay SQLAlchemy's compile-and-wrap step (measurable in the
benchmarks) for a portability the few dialect differences do not need.

A transaction (`transaction()`) holds one pooled connection for the current task; statements
issued in that task meanwhile run on it. Outside a transaction each statement takes a pooled
connection of its own (autocommit).
"""
from __future__ import annotations

import contextvars
import re
from typing import Any, Iterable, Sequence

import asyncpg

_PLACEHOLDER = re.compile(r"'[^']*'|\?")
_translated: dict[str, tuple[str, bool]] = {}


def translate(sql: str) -> tuple[str, bool]:
    """`?` placeholders to `$1`, `$2`...; and whether the statement returns rows."""
    found = _translated.get(sql)
    if found is None:
        counter = iter(range(1, 10_000))
        text = _PLACEHOLDER.sub(lambda m: m.group(0) if m.group(0) != "?" else f"${next(counter)}", sql)
        head = sql.lstrip().split(None, 1)[0].upper()
        found = _translated[sql] = (text, head in ("SELECT", "WITH") or " RETURNING " in sql.upper())
    return found


_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]*@")


def redact(text: str) -> str:
    """Any database URL in `text` without its password (postgresql://user:secret@host -> user:***@host),
    for messages and logs."""
    return _CREDENTIALS.sub(r"\1:***@", text)


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


class Cursor:
    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int):
        self._rows = rows
        self.rowcount = rowcount

    async def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> Sequence[Any]:
        return self._rows


def _count(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else -1


class PgSession:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self._held: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
            f"pg_connection_{id(self)}", default=None)

    @classmethod
    async def connect(cls, url: str, *, max_size: int = 10) -> "PgSession":
        # A host that drops packets: a clear error after 10 s rather than a long hang at start-up.
        pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, command_timeout=60, timeout=10)
        return cls(pool)

    async def execute(self, sql: str, args: Iterable[Any] = ()) -> Cursor:
        text, returns_rows = translate(sql)
        conn = self._held.get() or self.pool
        if returns_rows:
            rows = await conn.fetch(text, *args)
            return Cursor(rows, len(rows))
        return Cursor((), _count(await conn.execute(text, *args)))

    async def execute_fetchall(self, sql: str, args: Iterable[Any] = ()) -> Sequence[Any]:
        return await (self._held.get() or self.pool).fetch(translate(sql)[0], *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            conn = self._held.get() or self.pool
            await conn.executemany(translate(sql)[0], rows)

    async def script(self, sql: str) -> None:
        """Several statements, no parameters (a migration), in the current transaction."""
        conn = self._held.get() or self.pool
        await conn.execute(sql)

    def transaction(self) -> "_PgTransaction":
        return _PgTransaction(self)

    async def close(self) -> None:
        await self.pool.close()


class _PgTransaction:
    """BEGIN ... COMMIT on one pooled connection, or ROLLBACK on error."""

    def __init__(self, session: PgSession):
        self._session = session

    async def __aenter__(self) -> None:
        if self._session._held.get() is not None:
            raise RuntimeError("nested transaction")
        self._conn = await self._session.pool.acquire()
        try:
            self._tx = self._conn.transaction()
            await self._tx.start()
        except BaseException:
            await self._session.pool.release(self._conn)
            raise
        self._token = self._session._held.set(self._conn)

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self._session._held.reset(self._token)
        try:
            if exc_type is None:
                await self._tx.commit()
            else:
                await self._tx.rollback()
        finally:
            await self._session.pool.release(self._conn)
