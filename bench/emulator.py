"""The Bot API emulator of tests/botapi, with a hook that hears of every message the bot sends.

The hook runs in the emulator's request thread, under its lock: it only records and hands on.
"""
from __future__ import annotations

import queue
import time
from typing import Any

from bench.procs import TOKEN
from tests.botapi import BotApiEmulator
from tests.botapi import server as _server

# socketserver's listen backlog is 5: a bot opening a hundred connections at once (nudges sent
# side by side) would see connect timeouts that api.telegram.org does not give. In this process only.
_server._Server.request_queue_size = 1024


ANSWER_PREFIXES = ("ask:", "q:")     # ours (bot/telegram/callback_data.py), the baseline's
ADVICE_NODE = "done"     # the advice's own buttons ("That's not my situation") answer no question


def question_of(markup: dict | None) -> tuple[str | None, list[str]]:
    """The node a keyboard answers (from callback data ask:<case>:<token>:<option>, or q:... from the
    baseline bot, whose data keeps the single letter) and its buttons' data."""
    node, data = None, []
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            d = button.get("callback_data")
            if d:
                data.append(d)
                if node is None and d.startswith(ANSWER_PREFIXES):
                    node = d.split(":", 3)[2].split("~", 1)[0]
                    node = None if node == ADVICE_NODE else node
    return node, data


class BenchEmulator(BotApiEmulator):
    """`sent` gets (chat_id, monotonic time, message_id, node or None, buttons' callback data, text)
    for every message the bot sends (sendMessage, sendDocument, sendPhoto)."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("token", TOKEN)
        super().__init__(**kwargs)
        self.sent: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()

    def start(self) -> "BenchEmulator":
        super().start()
        # A bot killed with -9 resets its connections: not worth a traceback on stderr.
        self._server.handle_error = lambda request, client_address: None
        return self

    def _store_bot_message(self, chat, content, extras, reply_to):
        rec = super()._store_bot_message(chat, content, extras, reply_to)
        node, data = question_of(rec.get("reply_markup"))
        self.sent.put((chat.info["id"], time.monotonic(), rec["message_id"], node, data, rec.get("text", "")))
        return rec

    def forget_messages(self, chat_ids) -> None:
        """Drop the stored history of finished chats (a long run would otherwise keep it all)."""
        with self._cond:
            for chat_id in chat_ids:
                chat = self._chats.get(chat_id)
                if chat is not None:
                    chat.messages.clear()
