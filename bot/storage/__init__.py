"""All SQL lives here: SQLite through aiosqlite, or PostgreSQL through asyncpg, one set of queries
for both; the schema versioned and migrated at open. One purpose a file:

- `store.py`       Storage: users, cases, turns, timelines, evidence, erasure (what answers a user)
- `queue.py`       FollowupQueue (`Storage.queue`): the nudge rows the dispatcher claims and records
- `outbox.py`      Outbox (`Storage.outbox`): what a turn sends, written before it is sent (issue 15)
- `plans.py`       writing a reminder plan's change with the turn that caused it
- `records.py`     the rows handed out and the changes taken, and their columns
- `schema.py`      the migrations and the tables
- `backend.py`     what a database must provide; `sqlite.py` and `postgres.py` (with `pgsession.py`) the two
- `copydb.py`      `refund-advisor copy-db`
- `errors.py`      what the storage raises

The names below are the storage's public face: the rest of bot/ imports them from `bot.storage`.
"""
from bot.storage import postgres, sqlite
from bot.storage.errors import AlreadyDone, Refused, StaleTurn, StorageError
from bot.storage.outbox import Outbox, OutboxItem, OutboxRow
from bot.storage.queue import CLAIM_LEASE, FollowupQueue
from bot.storage.records import (
    CASE_STATUSES, CLOSED_STATUSES, FOLLOWUP_STATES, Case, CaseStatus, Evidence, Followup, PlanChange, PlannedNudge,
    TimelineEntry, User,
)
from bot.storage.schema import MIGRATIONS, TABLES
from bot.storage.store import Storage

# Failures of either database that a later attempt may not meet (bot.telegram.acks: deliver the update again).
TRANSIENT_DATABASE_ERRORS = sqlite.TRANSIENT_ERRORS + postgres.TRANSIENT_ERRORS

__all__ = [
    "AlreadyDone", "Refused", "StaleTurn", "StorageError", "CLAIM_LEASE", "FollowupQueue", "CASE_STATUSES",
    "CLOSED_STATUSES", "FOLLOWUP_STATES", "Case", "Evidence", "Followup", "PlanChange", "PlannedNudge", "TimelineEntry",
    "User", "CaseStatus",
    "MIGRATIONS", "TABLES", "Outbox", "OutboxRow", "OutboxItem", "Storage", "TRANSIENT_DATABASE_ERRORS",
]
