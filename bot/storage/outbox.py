"""The outbox (issue 15): what is sent to a chat, written down before any of it is sent.

A row is first an `outcome`: a sealed outcome (bot/outcome.py: the replies rendered, the letter,
the documents) and where it goes (`ReplyTo`). A turn writes it in the turn's own transaction
(`write`, called by Storage.save_turn and change_case); a command that changes nothing writes it
alone (`put`). The sender then expands it, with the user's ui_state, into the parts Telegram is sent
(a keyboard retired, a message, a document), sends them in order, and `advance`s past each one
sent, writing the expansion (with the first part) and the ui_state it and the sending leave in the
same transaction; the row is deleted after its last part. A crash anywhere leaves the row, or what is left of it: it is
sent first at the next start, or before the chat's next update, rows in id order and a row's parts
in their order (an outcome not yet advanced is expanded again, the same way). So a crash repeats
at most the one message in flight, and loses none.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from bot.storage.backend import Backend
from bot.storage.records import dump, iso

# Where several instances share the database, rows younger than this may be in another instance's
# hands right now: the start-up sweep leaves them to it (or to the chat's next update).
IN_FLIGHT = timedelta(minutes=2)

OUTCOME, PARTS = "outcome", "parts"

_UI_UPSERT = ("INSERT INTO dialog_state (user_id, data, updated_at) VALUES (?, ?, ?) "
              "ON CONFLICT(user_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at")
_INSERT = "INSERT INTO outbox (user_id, chat_id, update_id, kind, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class OutboxRow:
    """A row to write: an outcome for a chat (payload: {"outcome": Sealed, "to": ReplyTo.to_dict()})."""
    user_id: int
    chat_id: int
    update_id: int | None
    payload: dict[str, Any]
    kind: str = OUTCOME


@dataclass(frozen=True)
class OutboxItem:
    id: int
    user_id: int | None
    chat_id: int
    update_id: int | None
    kind: str
    payload: dict[str, Any]

    @property
    def parts(self) -> list[tuple[str, dict[str, Any]]]:
        """An expanded row's parts still to send, in order (a row of migration 4: its one part)."""
        if self.kind == PARTS:
            return [(k, p) for k, p in self.payload["parts"][int(self.payload.get("next", 0)):]]
        return [(self.kind, self.payload)]


async def write(db: Backend, row: OutboxRow, now: datetime) -> None:
    """The row, inside the caller's transaction."""
    await db.execute(_INSERT, (row.user_id, row.chat_id, row.update_id, row.kind, dump(row.payload), iso(now)))


class Outbox:
    def __init__(self, backend: Backend):
        self._db = backend

    async def put(self, row: OutboxRow, now: datetime) -> None:
        """A row written on its own (an outcome no state change goes with)."""
        async with self._db.transaction(row.user_id):
            await write(self._db, row, now)

    async def pending(self, chat_id: int) -> list[OutboxItem]:
        """The chat's rows not yet delivered, oldest first."""
        async with self._db.reading():
            rows = await self._db.fetchall(
                "SELECT id, user_id, chat_id, update_id, kind, payload FROM outbox WHERE chat_id = ? ORDER BY id",
                (chat_id,))
        return [OutboxItem(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    async def advance(self, item: OutboxItem, sent: int, now: datetime, *,
                      ui: Mapping[str, Any] | None = None) -> OutboxItem | None:
        """`sent` more of the row's parts are Telegram's, in one transaction: the row keeps the
        parts still to send (an outcome expanded just now is written as its parts here), or is
        deleted after its last; `ui`: the user's whole ui_state as the expansion and the sending
        leave it (a new live keyboard's message id), None to leave it. The row as it is now, None
        once done."""
        parts = [[kind, dict(p)] for kind, p in item.payload["parts"]] if item.kind == PARTS else [[item.kind, item.payload]]
        at = int(item.payload.get("next", 0)) + sent if item.kind == PARTS else sent
        left = OutboxItem(item.id, item.user_id, item.chat_id, item.update_id, PARTS, {"parts": parts, "next": at}) \
            if at < len(parts) else None
        async with self._db.transaction(item.user_id):
            if left is not None:
                await self._db.execute("UPDATE outbox SET kind = ?, payload = ? WHERE id = ?",
                                       (PARTS, dump(left.payload), item.id))
            else:
                await self._db.execute("DELETE FROM outbox WHERE id = ?", (item.id,))
            if item.user_id is not None and ui is not None:
                await self._db.execute(_UI_UPSERT, (item.user_id, dump(dict(ui)), iso(now)))
        return left

    async def chats(self, now: datetime) -> list[int]:
        """Chats with rows left undelivered (by a crash), the oldest first. With several instances
        on one database, only rows old enough that no running instance is still sending them."""
        cutoff = iso(now - IN_FLIGHT) if self._db.shared else iso(now + timedelta(days=1))
        async with self._db.reading():
            rows = await self._db.fetchall(
                "SELECT chat_id, MIN(id) AS first FROM outbox WHERE created_at < ? GROUP BY chat_id ORDER BY first",
                (cutoff,))
        return [int(r[0]) for r in rows]

    async def drop(self, chat_id: int) -> int:
        """The chat's undelivered rows abandoned (the user blocked the bot); how many."""
        async with self._db.transaction():
            return await self._db.execute("DELETE FROM outbox WHERE chat_id = ?", (chat_id,))

    async def count(self) -> int:
        async with self._db.reading():
            row = await self._db.fetchone("SELECT COUNT(*) FROM outbox")
        return int(row[0]) if row else 0
