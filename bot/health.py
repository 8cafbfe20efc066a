"""Does the database answer? For `refund-advisor health` (the container's HEALTHCHECK: polling mode
has no HTTP port) and for `/healthz` in webhook mode."""
from __future__ import annotations

import asyncio
import os

from bot.storage.pgsession import is_postgres, redact
from bot.storage import Storage, StorageError

EXIT_HEALTHY, EXIT_UNHEALTHY = 0, 1     # Docker reserves 2 for HEALTHCHECK commands: never used here
PROBE_TIMEOUT = 5.0                     # seconds; a database slower than this is not healthy
async def probe(storage: Storage | None) -> str | None:
    """None when the open database answers a query in time, else why not."""
    if storage is None:
        return "the database is closed"
    try:
        await asyncio.wait_for(storage.schema_version(), PROBE_TIMEOUT)
    except asyncio.TimeoutError:
        return f"the database did not answer within {PROBE_TIMEOUT:g} s"
    except Exception as exc:        # whatever the driver raises, the answer is "unhealthy"
        return redact(f"the database does not answer: {exc}") if str(exc) else "the database does not answer"
    return None


async def check(db: str) -> tuple[int, str]:
    """(exit code, one line) for `refund-advisor health`: opens the configured database and asks it."""
    # Opening a missing SQLite file would create an empty one and call that healthy.
    if not is_postgres(db) and db != ":memory:" and not os.path.isfile(db):
        return EXIT_UNHEALTHY, f"unhealthy: database {db} does not exist"
    try:
        storage = await asyncio.wait_for(Storage.open(db), PROBE_TIMEOUT)
    except asyncio.TimeoutError:
        return EXIT_UNHEALTHY, redact(f"unhealthy: database {db} could not be opened within {PROBE_TIMEOUT:g} s")
    except StorageError as exc:
        return EXIT_UNHEALTHY, redact(f"unhealthy: {exc}")
    try:
        problem = await probe(storage)
    finally:
        await storage.close()
    if problem:
        return EXIT_UNHEALTHY, f"unhealthy: {problem}"
    return EXIT_HEALTHY, redact(f"healthy: database {db} answers")
