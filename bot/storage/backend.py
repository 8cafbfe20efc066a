"""What the storage needs of a database, whichever it is (the shape of aiogram's
fsm/storage/base.py): statements with `?` placeholders, transactions, and the few things SQLite
and PostgreSQL do differently. bot/storage/sqlite.py and bot/storage/postgres.py are the two.

The queries themselves are written once, in store.py, queue.py, plans.py and copydb.py; what
differs between the databases (locking, claims of several instances, the schema's bookkeeping,
one JSON function) is a method here, not an `if` there.
"""
from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Iterable, Protocol, Sequence

from bot.storage.records import Row


class Backend(Protocol):
    path: str          # the SQLite file, or the PostgreSQL URL without its password (for messages)
    shared: bool       # several processes may use the database at once (PostgreSQL)
    for_claim: str     # appended to the SELECT of due follow-ups being claimed (row locks, if any)

    async def execute(self, sql: str, args: Iterable[Any] = ()) -> int:
        """A statement that returns no rows; the number of rows it changed."""
        ...

    async def fetchall(self, sql: str, args: Iterable[Any] = ()) -> Sequence[Row]:
        """A statement that returns rows (a SELECT, or a change with RETURNING): all of them."""
        ...

    async def fetchone(self, sql: str, args: Iterable[Any] = ()) -> Row | None:
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        ...

    def transaction(self, user_id: int | None = None) -> AbstractAsyncContextManager[None]:
        """All of a turn or none of it. `user_id`: the user whose rows it reads then writes; no
        other transaction for that user (of this process or another) runs meanwhile."""
        ...

    def reading(self) -> AbstractAsyncContextManager[None]:
        """Around reads that must never see half of another coroutine's transaction."""
        ...

    async def lock_user(self, user_id: int) -> None:
        """Inside a transaction: wait for other transactions on this user."""
        ...

    def json_set(self, column: str, key: str) -> str:
        """SQL for `column` (JSON text) with `key` set to the text parameter `?`."""
        ...

    async def release_claims(self, now: datetime, lease: timedelta, *, at_start: bool) -> int:
        """Inside a transaction: follow-ups claimed (`sending`) by a process that will not send them
        are pending again; how many. `at_start`: this process is starting."""
        ...

    async def earliest_due(self, lease: timedelta) -> datetime | None:
        """When the dispatcher has something to do next: the earliest due pending follow-up, or the
        end of a claim's lease where claims can outlive their process."""
        ...

    async def schema_version(self) -> int:
        ...

    async def migrate(self) -> None:
        """Bring the schema up to date (schema.MIGRATIONS), or raise StorageError if it is newer."""
        ...

    async def columns(self, table: str) -> list[str]:
        """A table's columns, in order (copy-db)."""
        ...

    async def after_copy(self, tables: Sequence[tuple[str, str]]) -> None:
        """Inside copy-db's transaction, after the rows: ids generated from now on follow the copied ones."""
        ...

    async def close(self) -> None:
        ...
