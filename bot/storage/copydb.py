"""`refund-advisor copy-db FROM TO`: move a database (a SQLite file into PostgreSQL, typically)
without losing a row: every table copied with its ids into an empty target, in one transaction,
then counted again."""
from __future__ import annotations

import sqlite3
from typing import Callable, TextIO

from bot.storage.backend import Backend
from bot.storage.errors import StorageError
from bot.storage.postgres import driver_reason
from bot.storage.schema import TABLES
from bot.storage.store import Storage


class CopyRefused(StorageError):
    """The target cannot receive the copy (it has rows already, or the counts do not match)."""


async def copy_db(source_url: str, target_url: str, out: TextIO) -> None:
    source = await Storage.open(source_url)
    try:
        target = await Storage.open(target_url)
        try:
            await _copy(source.backend, target.backend, out)
        finally:
            await target.close()
    finally:
        await source.close()


async def row_counts(db: Backend) -> dict[str, int]:
    """Rows per table, every table."""
    counts = {}
    for table, _ in TABLES:
        row = await db.fetchone(f"SELECT COUNT(*) FROM {table}")
        counts[table] = int(row[0]) if row else 0
    return counts


async def copy_rows(source: Backend, target: Backend, batch: int = 1000,
                    progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Every row of every table of `source`, ids kept, into `target` (empty), in one transaction:
    all of it or none. Ids generated in the target then continue after the highest id copied.
    Returns the rows copied per table."""
    copied: dict[str, int] = {}
    async with target.transaction():
        for table, key in TABLES:
            columns = await source.columns(table)
            listed = ", ".join(columns)
            insert = f"INSERT INTO {table} ({listed}) VALUES ({', '.join('?' * len(columns))})"
            at = columns.index(key)
            copied[table], last = 0, None
            while True:
                sql = f"SELECT {listed} FROM {table}" + (f" WHERE {key} > ?" if last is not None else "")
                rows = await source.fetchall(f"{sql} ORDER BY {key} LIMIT ?",
                                             (last, batch) if last is not None else (batch,))
                if not rows:
                    break
                try:
                    await target.executemany(insert, [tuple(r) for r in rows])
                except (sqlite3.Error, ValueError, TypeError) as exc:
                    raise StorageError(f"copying {table} from {key} {rows[0][at]}: {exc}") from None
                except Exception as exc:     # asyncpg's errors (a foreign key, a type) have no common base
                    raise StorageError(f"copying {table} from {key} {rows[0][at]}: "
                                       f"{driver_reason(exc, '')}") from None
                copied[table] += len(rows)
                last = rows[-1][at]
                if progress:
                    progress(table, copied[table])
        await target.after_copy(TABLES)
    return copied


async def _copy(source: Backend, target: Backend, out: TextIO) -> None:
    present = {t: n for t, n in (await row_counts(target)).items() if n}
    if present:
        # Merging two databases' ids is not a copy: refuse rather than guess.
        rows = ", ".join(f"{t} {n}" for t, n in present.items())
        raise CopyRefused(f"target {target.path} is not empty ({rows}): copy-db fills an empty database only")
    expected = await row_counts(source)
    print(f"copying {source.path} -> {target.path} (schema version {await source.schema_version()})", file=out)
    copied = await copy_rows(source, target)
    found = await row_counts(target)
    width = max(len(t) for t in expected)
    for table, count in expected.items():
        print(f"  {table:<{width}}  {copied[table]:>9} rows", file=out)
    wrong = [t for t in expected if not expected[t] == copied[t] == found[t]]
    if wrong:
        raise CopyRefused("row counts differ after the copy: " + ", ".join(
            f"{t} source {expected[t]}, target {found[t]}" for t in wrong))
    print(f"done: {sum(copied.values())} rows, every table's count checked", file=out)
