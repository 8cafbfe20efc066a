"""Does the database answer? For `refund-advisor health` (the container's HEALTHCHECK: polling mode
has no HTTP port) and for `/healthz` in webhook mode. In webhook mode `health` asks the running
server's `/healthz` (check_server): a server that cannot accept connections is not healthy, whatever
the database says."""
from __future__ import annotations

import asyncio
import http.client
import json
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


def check_server(listen: str, port: int, timeout: float = PROBE_TIMEOUT) -> tuple[int, str]:
    """(exit code, one line) for `refund-advisor health` in webhook mode: GET /healthz of the server
    listening on `listen`:`port` (an any-address listener is asked on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen, listen)
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz", headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read(4096)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else (
            getattr(exc, "strerror", None) or type(exc).__name__)
        return EXIT_UNHEALTHY, f"unhealthy: the webhook server on {where} does not answer ({reason})"
    finally:
        connection.close()
    try:
        state = json.loads(body).get("status", "?")
    except (ValueError, AttributeError):
        state = "?"
    if status != 200:
        return EXIT_UNHEALTHY, f"unhealthy: the webhook server on {where} answers {status} ({state})"
    return EXIT_HEALTHY, f"healthy: the webhook server on {where} answers ({state})"
