"""The outbox (issue 15): what a turn sends to a chat, written down before any of it is sent.

`put` writes a turn's items (a message part, an edit that retires a keyboard, ...) together with
the user's ui_state (the update marked answered) in one transaction; the sender then sends them in
order and `delivered` deletes each row once Telegram has it, with the ui_state change its sending
makes (the message id of a new live keyboard) in the same transaction. A crash in between leaves
the rows: they are sent first at the next start, or before the chat's next update, in id order.
So a crash repeats at most the one item in flight, and loses none.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from bot.storage.backend import Backend
from bot.storage.records import dump, iso

# Where several instances share the database, rows younger than this may be in another instance's
# hands right now: the start-up sweep leaves them to it (or to the chat's next update).
IN_FLIGHT = timedelta(minutes=2)

_UI_UPSERT = ("INSERT INTO dialog_state (user_id, data, updated_at) VALUES (?, ?, ?) "
              "ON CONFLICT(user_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at")


@dataclass(frozen=True)
class OutboxItem:
    id: int
    user_id: int | None
    chat_id: int
    update_id: int | None
    kind: str
    payload: dict[str, Any]


class Outbox:
    def __init__(self, backend: Backend):
        self._db = backend

    async def put(self, user_id: int, chat_id: int, update_id: int | None,
                  items: Sequence[tuple[str, Mapping[str, Any]]], ui: Mapping[str, Any] | None,
                  now: datetime) -> None:
        """A turn's items, and the user's ui_state as it stands once they are queued, in one transaction."""
        async with self._db.transaction(user_id):
            await self._db.executemany(
                "INSERT INTO outbox (user_id, chat_id, update_id, kind, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(user_id, chat_id, update_id, kind, dump(dict(payload)), iso(now)) for kind, payload in items])
            if ui is not None:
                await self._db.execute(_UI_UPSERT, (user_id, dump(dict(ui)), iso(now)))

    async def pending(self, chat_id: int) -> list[OutboxItem]:
        """The chat's items not yet delivered, oldest first."""
        async with self._db.reading():
            rows = await self._db.fetchall(
                "SELECT id, user_id, chat_id, update_id, kind, payload FROM outbox WHERE chat_id = ? ORDER BY id",
                (chat_id,))
        return [OutboxItem(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    async def chats(self, now: datetime) -> list[int]:
        """Chats with items left undelivered (by a crash), the oldest first. With several instances
        on one database, only items old enough that no running instance is still sending them."""
        cutoff = iso(now - IN_FLIGHT) if self._db.shared else iso(now + timedelta(days=1))
        async with self._db.reading():
            rows = await self._db.fetchall(
                "SELECT chat_id, MIN(id) AS first FROM outbox WHERE created_at < ? GROUP BY chat_id ORDER BY first",
                (cutoff,))
        return [int(r[0]) for r in rows]

    async def delivered(self, item: OutboxItem, now: datetime, ui: Mapping[str, Any] | None = None) -> None:
        """The item is Telegram's: deleted; `ui`: keys its sending sets in the user's ui_state."""
        async with self._db.transaction(item.user_id):
            await self._db.execute("DELETE FROM outbox WHERE id = ?", (item.id,))
            if ui and item.user_id is not None:
                row = await self._db.fetchone("SELECT data FROM dialog_state WHERE user_id = ?", (item.user_id,))
                data = json.loads(row[0]) if row and row[0] else {}
                data.update(ui)
                await self._db.execute(_UI_UPSERT, (item.user_id, dump(data), iso(now)))

    async def drop(self, chat_id: int) -> int:
        """The chat's undelivered items abandoned (the user blocked the bot); how many."""
        async with self._db.transaction():
            return await self._db.execute("DELETE FROM outbox WHERE chat_id = ?", (chat_id,))

    async def count(self) -> int:
        async with self._db.reading():
            row = await self._db.fetchone("SELECT COUNT(*) FROM outbox")
        return int(row[0]) if row else 0
