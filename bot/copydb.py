"""`refund-advisor copy-db FROM TO`: move a database (a SQLite file into PostgreSQL, typically)
without losing a row: every table copied with its ids into an empty target, then counted again."""
from __future__ import annotations

from typing import TextIO

from bot.storage import Storage, StorageError


class CopyRefused(StorageError):
    """The target cannot receive the copy (it has rows already, or the counts do not match)."""


async def copy_db(source_url: str, target_url: str, out: TextIO) -> None:
    source = await Storage.open(source_url)
    try:
        target = await Storage.open(target_url)
        try:
            await _copy(source, target, out)
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(source: Storage, target: Storage, out: TextIO) -> None:
    present = {t: n for t, n in (await target.row_counts()).items() if n}
    if present:
        # Merging two databases' ids is not a copy: refuse rather than guess.
        rows = ", ".join(f"{t} {n}" for t, n in present.items())
        raise CopyRefused(f"target {target.path} is not empty ({rows}): copy-db fills an empty database only")
    expected = await source.row_counts()
    print(f"copying {source.path} -> {target.path} (schema version {await source.schema_version()})", file=out)
    copied = await target.copy_from(source)
    found = await target.row_counts()
    width = max(len(t) for t in expected)
    for table, count in expected.items():
        print(f"  {table:<{width}}  {copied[table]:>9} rows", file=out)
    wrong = [t for t in expected if not expected[t] == copied[t] == found[t]]
    if wrong:
        raise CopyRefused("row counts differ after the copy: " + ", ".join(
            f"{t} source {expected[t]}, target {found[t]}" for t in wrong))
    print(f"done: {sum(copied.values())} rows, every table's count checked", file=out)
