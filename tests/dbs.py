"""Databases for the tests: a fresh SQLite file, or a fresh schema on the PostgreSQL server named
by REFUND_ADVISOR_TEST_PG (.ci/run starts one). Without it the PostgreSQL cases skip, loudly."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bot.storage.pgsession import is_postgres, redact, translate  # noqa: F401 (used by the tests through dbs)

PG_URL = os.environ.get("REFUND_ADVISOR_TEST_PG", "").strip()
BACKENDS = ("sqlite", "postgresql")


@lru_cache(maxsize=1)
def pg_unavailable() -> str | None:
    """Why the PostgreSQL cases cannot run, or None."""
    if not PG_URL:
        return "REFUND_ADVISOR_TEST_PG is not set (.ci/run starts a PostgreSQL and sets it)"

    async def ping() -> None:
        conn = await asyncpg.connect(PG_URL, timeout=5)
        await conn.close()

    try:
        asyncio.run(ping())
    except Exception as exc:  # any reason at all is a reason to skip, shown in the summary
        return f"cannot reach {redact(PG_URL)}: {type(exc).__name__}: {exc}"
    return None


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}search_path={schema}"


async def new_pg_database() -> tuple[str, Any]:
    """A URL whose tables live in a schema of their own, and a coroutine function dropping it."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await conn.close()
    return with_schema(PG_URL, schema), drop


async def raw(url: str, sql: str, *args: Any) -> list[tuple]:
    """A statement run behind the storage's back, on its own connection (`?` placeholders)."""
    if is_postgres(url):
        conn = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(translate(sql)[0], *args)]
        finally:
            await conn.close()
    with sqlite3.connect(url) as conn:
        return conn.execute(sql, args).fetchall()
