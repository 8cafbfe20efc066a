"""Sending a turn's outcome to the user's private chat: replies merged into messages, split at
paragraphs when too long, buttons turned into callback data for the case and question open now;
the keyboard sent before retired (its question shows the answer); ui_state kept in step."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from telegram import Bot, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application

from bot.conversation import Conversation
from bot.outcome import Outcome
from bot.storage import OutboxItem, Storage
from bot.telegram import callback_data, render as tg
from bot.telegram.sender import Sender, UserBlocked
from bot.telegram.updates import chat_id_of, sender_of
from messages import render, render_reply

log = logging.getLogger(__name__)


def _not_modified(exc: BadRequest) -> bool:
    return "not modified" in exc.message.lower()


@dataclass
class _Sent:
    message_id: int
    html: str


class Delivery:
    """Sending a turn's outcome to a private chat, and retiring the keyboard it replaces."""

    def __init__(self, storage: Storage, conversation: Conversation, sender: Sender,
                 clock: Callable[[], datetime] | None = None):
        self.storage = storage
        self.conversation = conversation
        self.sender = sender
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._application: Application | None = None
        self._locks: dict[int, asyncio.Lock] = {}

    async def messages(self, user_id: int, outcome: Outcome, extra: dict[str, Any]
                        ) -> list[tuple[str, list[tuple[str, str, str]]]]:
        """The outcome's replies as messages: texts merged up to and including each reply that has
        buttons; buttons mapped to callback data for the case and question open now."""
        active = await self.storage.active_case(user_id)
        case_id = active.id if active else None
        token = tg.question_token(active.dialog) if active else ""
        extra = {"outcome_case": outcome.case_id, **extra}
        messages, texts = [], []
        for reply in outcome.replies:
            rendered = render_reply(outcome.locale, reply)
            texts.append(rendered.text)
            if rendered.buttons:
                buttons = [(option, label, callback_data.for_option(option, i, case_id, token, extra))
                           for i, (option, label) in enumerate(rendered.buttons)]
                messages.append((tg.merge_texts(texts), buttons))
                texts = []
        if texts:
            messages.append((tg.merge_texts(texts), []))
        return [(text, buttons) for text, buttons in messages if text or buttons]

    async def send(self, user_id: int | None, chat_id: int, html: str,
                    markup: InlineKeyboardMarkup | None = None) -> _Sent | None:
        """One message, split at paragraph boundaries if too long; the keyboard goes on the last part."""
        parts = tg.split_html(html, tg.MAX_TEXT)
        last = None
        for i, part in enumerate(parts):
            is_last = i == len(parts) - 1
            sent: Message = await self.sender.call(
                user_id, "sendMessage", self.bot.send_message, chat_id=chat_id, text=part,
                parse_mode=ParseMode.HTML, disable_web_page_preview=True,
                reply_markup=markup if is_last else None)
            last = _Sent(sent.message_id, part)
        return last

    async def retire(self, user_id: int, chat_id: int, message_id: int, html: str | None, answer: str | None,
                     locale: str) -> None:
        """A keyboard that is no longer live, retired at once (not through the outbox)."""
        _, payload = self._retirement(message_id, html, answer, locale)
        await self._edit_off(user_id, chat_id, message_id, payload["text"])

    async def _edit_off(self, user_id: int | None, chat_id: int, message_id: int, edited: str | None) -> None:
        """A keyboard that is no longer live: its question shows the answer (`edited`, when there is
        one to show), without buttons. Cosmetic (a press on old buttons is checked and refused), so
        it never fails the turn; "message is not modified" (done before a crash) counts as done."""
        if edited is not None:
            try:
                await self.sender.call(user_id, "editMessageText", self.bot.edit_message_text,
                                       chat_id=chat_id, message_id=message_id, text=edited,
                                       parse_mode=ParseMode.HTML, disable_web_page_preview=True)
                return
            except BadRequest as exc:
                if _not_modified(exc):
                    return
                log.info("editMessageText of a past question failed: %s", exc.message)
            except TelegramError as exc:
                log.warning("could not show the answer under a past question: %s", exc.message)
                return
        try:
            await self.sender.call(user_id, "editMessageReplyMarkup", self.bot.edit_message_reply_markup,
                                   chat_id=chat_id, message_id=message_id, reply_markup=None)
        except BadRequest as exc:
            # "message is not modified" (no keyboard left) or "message to edit not found": nothing live.
            log.debug("editMessageReplyMarkup of a past question failed: %s", exc.message)
        except TelegramError as exc:
            log.warning("could not retire a past question's buttons: %s", exc.message)

    @staticmethod
    def _retirement(message_id: int, html: str | None, answer: str | None, locale: str) -> tuple[str, dict[str, Any]]:
        edited = None
        if html and answer:
            edited = html + "\n\n" + render(locale, "answered", answer=answer)
            if tg.visible_len(edited) > tg.MAX_TEXT:
                edited = None
        return "retire", {"message_id": message_id, "text": edited}

    async def deliver(self, update: Update, outcome: Outcome, *, answer: str | None = None,
                      pressed: Message | None = None, extra: dict[str, Any] | None = None,
                      remember: dict[str, Any] | None = None) -> None:
        """Send an outcome to the user's private chat. The keyboard sent before is retired when the
        user answered (`answer`: what they typed or pressed) or when a new keyboard replaces it;
        a pending /delete confirmation goes with it. `remember` is stored in ui_state.

        Everything to send is first written to the outbox, with the ui_state that marks the update
        answered, in one transaction; then sent (`flush`). Whatever a crash leaves there is sent
        before anything newer for the chat."""
        user_id = sender_of(update).id
        chat_id = chat_id_of(update)
        await self.flush(chat_id)
        ui = await self.storage.ui_state(user_id)
        original = dict(ui)
        if not outcome.done:
            # Acted on already. If its replies never left (the bot died before they were written
            # down: Telegram then delivers the update again), ask the open question again.
            if update.update_id <= ui.get("done", 0):
                return
            outcome = Outcome(outcome.locale, await self.conversation.open_question(user_id))
            answer = pressed = None
        messages = await self.messages(user_id, outcome, extra or {})
        new_keyboard = any(buttons for _, buttons in messages)
        live = ui.get("kb")
        retire = answer is not None or new_keyboard
        items: list[tuple[str, dict[str, Any]]] = []
        if pressed is not None:
            html = live["html"] if live and live.get("id") == pressed.message_id else \
                (pressed.text_html if pressed.text else None)
            items.append(self._retirement(pressed.message_id, html, answer, outcome.locale))
            if live and live.get("id") == pressed.message_id:
                live = None
        if retire and live:
            # A typed answer is shown under the question it answers, not under a list or a menu.
            shown = answer if pressed is None and live.get("q") else None
            items.append(self._retirement(live["id"], live.get("html"), shown, outcome.locale))
            live = None
        for text, buttons in messages:
            parts = tg.split_html(text, tg.MAX_TEXT)
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                items.append(("send", {
                    "text": part, "buttons": [list(b) for b in buttons] if last and buttons else None,
                    "live": {"q": any(isinstance(callback_data.unpack(data), callback_data.Answer)
                                      for _, _, data in buttons)} if last and buttons else None}))
        ui["done"] = max(ui.get("done", 0), update.update_id)     # this update's replies are written down
        ui["kb"] = live
        if retire or pressed is not None:
            ui.pop("delete", None)
        ui.update(remember or {})
        if items or ui != original:
            await self.storage.outbox.put(user_id, chat_id, update.update_id, items,
                                          ui if ui != original else None, self.clock())
        await self.flush(chat_id)

    async def flush(self, chat_id: int) -> None:
        """Send the chat's undelivered outbox items, oldest first, each deleted once Telegram has it.
        A network failure leaves the rest for later (raised: the update is delivered again); a user
        who blocked the bot has the rest dropped; a message Telegram refuses is dropped and raised."""
        async with self._lock(chat_id):
            for item in await self.storage.outbox.pending(chat_id):
                try:
                    ui = await self._send_item(item)
                except UserBlocked:
                    dropped = await self.storage.outbox.drop(chat_id)
                    log.info("user blocked the bot; %d undelivered message(s) dropped", dropped)
                    return
                except BadRequest as exc:
                    await self.storage.outbox.delivered(item, self.clock())
                    log.error("Telegram refused an outbox %s (%s); dropped", item.kind, exc.message)
                    raise
                await self.storage.outbox.delivered(item, self.clock(), ui)

    async def _send_item(self, item: OutboxItem) -> dict[str, Any] | None:
        """One outbox item to Telegram; the ui_state keys its sending sets."""
        p = item.payload
        if item.kind == "retire":
            await self._edit_off(item.user_id, item.chat_id, int(p["message_id"]), p.get("text"))
            return None
        if item.kind == "send":
            buttons = [tuple(b) for b in p.get("buttons") or []]
            sent: Message = await self.sender.call(
                item.user_id, "sendMessage", self.bot.send_message, chat_id=item.chat_id, text=p["text"],
                parse_mode=ParseMode.HTML, disable_web_page_preview=True,
                reply_markup=tg.keyboard(buttons) if buttons else None)
            if p.get("live") is not None:
                return {"kb": {"id": sent.message_id, "html": p["text"], "q": bool(p["live"].get("q"))}}
            return None
        log.error("unknown outbox item kind %r; dropped", item.kind)
        return None

    async def sweep(self) -> int:
        """At start: what a crash left in the outbox, sent first, chat by chat; how many chats."""
        chats = await self.storage.outbox.chats(self.clock())
        for chat_id in chats:
            try:
                await self.flush(chat_id)
            except TelegramError as exc:
                log.warning("could not yet send what a chat was owed from before the restart (%s); "
                            "it goes before the chat's next reply", exc.message)
        if chats:
            log.info("sent what %d chat(s) were owed from before the restart", len(chats))
        return len(chats)

    def _lock(self, chat_id: int) -> asyncio.Lock:
        lock = self._locks.get(chat_id)
        if lock is None:
            if len(self._locks) > 10_000:
                for key in [k for k, v in self._locks.items() if not v.locked()]:
                    del self._locks[key]
            lock = self._locks[chat_id] = asyncio.Lock()
        return lock

    @property
    def bot(self) -> Bot:
        if self._application is None:
            raise RuntimeError("Delivery.bind(application) first")
        return self._application.bot

    def bind(self, application: Application) -> None:
        self._application = application
