"""The schema: its migrations, in order, and the tables copy-db copies. Written once, for SQLite;
PostgreSQL reads each migration through `postgres_ddl`.

A migration is never edited once released: a change of schema is a new one at the end
(ARCHITECTURE.md, "Add a migration").
"""
from __future__ import annotations

import re

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        language TEXT,
        time_zone TEXT,
        blocked INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE cases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        slots TEXT NOT NULL DEFAULT '{}',
        dialog TEXT NOT NULL,
        category TEXT,
        confidence REAL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX cases_user ON cases(user_id, id);
    CREATE TABLE case_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX case_events_case ON case_events(case_id, id);
    CREATE TABLE dialog_state (
        user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        case_id INTEGER REFERENCES cases(id) ON DELETE SET NULL,
        data TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL
    );
    CREATE TABLE followups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        due_at TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL
    );
    CREATE INDEX followups_due ON followups(state, due_at);
    CREATE INDEX followups_case ON followups(case_id);
    CREATE TABLE evidence (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        file_id TEXT,
        text TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX evidence_case ON evidence(case_id);
    CREATE TABLE processed_updates (
        update_id INTEGER PRIMARY KEY,
        user_id INTEGER,
        at TEXT NOT NULL
    );
    CREATE INDEX processed_updates_user ON processed_updates(user_id);
    """,
    # 2: follow-up nudges (issue 4). cases.plan is the follow-up plan state of dialogs/followup.py
    # (JSON, NULL until the advice); cases.cadence the user's /remind choice (NULL = the default).
    # users.seen_locale is the language Telegram last reported (nudges are sent unprompted).
    # A follow-up row, once sent, keeps its message id; `answer` is the button pressed on it
    # ('-' once a newer nudge of the case replaced its keyboard).
    """
    ALTER TABLE cases ADD COLUMN plan TEXT;
    ALTER TABLE cases ADD COLUMN cadence TEXT;
    ALTER TABLE users ADD COLUMN seen_locale TEXT;
    ALTER TABLE followups ADD COLUMN message_id INTEGER;
    ALTER TABLE followups ADD COLUMN answer TEXT;
    ALTER TABLE followups ADD COLUMN sent_at TEXT;
    CREATE INDEX followups_user ON followups(user_id, state);
    CREATE INDEX followups_case_state ON followups(case_id, state);
    """,
    # 3: follow-ups at scale (issue 6). The dispatcher reads only pending rows by due time and
    # claimed rows by claim time: partial indexes hold just those, so that every nudge sent, or
    # replanned away, leaves them instead of moving to another place of a million-row index (the
    # writes of each nudge, and so the WAL and its checkpoints, shrink). followups_case was the
    # prefix of followups_case_state. Start-up finds the cases advised before follow-ups existed
    # in an index of those alone, not by reading every case's JSON.
    """
    CREATE INDEX followups_pending ON followups(due_at, id) WHERE state = 'pending';
    CREATE INDEX followups_sending ON followups(updated_at) WHERE state = 'sending';
    DROP INDEX followups_due;
    DROP INDEX followups_case;
    CREATE INDEX cases_unplanned ON cases(id) WHERE plan IS NULL AND status IN ('advised', 'escalated');
    """,
    # 4: the outbox (issue 15). What a turn sends (a message part, an edit retiring a keyboard) is
    # written here, with the user's ui_state, before any of it is sent; the sender deletes each row
    # once Telegram has it. Rows left by a crash are sent first, in id order, per chat.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER,
        chat_id INTEGER NOT NULL,
        update_id INTEGER,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX outbox_chat ON outbox(chat_id, id);
    """,
)

# Every table, in an order their foreign keys accept, with the column that orders its rows (copy-db).
TABLES = (("users", "id"), ("cases", "id"), ("case_events", "id"), ("dialog_state", "user_id"),
          ("followups", "id"), ("evidence", "id"), ("processed_updates", "update_id"), ("outbox", "id"))


def postgres_ddl(script: str) -> str:
    """A migration as PostgreSQL reads it: 64-bit integers (Telegram ids do not fit in 32 bits),
    identity columns for AUTOINCREMENT (ids still given explicitly by copy-db), double precision
    for REAL, and byte-order text like SQLite's, so that stored ISO times sort as times whatever
    the database's locale."""
    script = script.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    script = re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', script)
