"""Sending outcomes to the user's private chat, through the outbox (bot/storage/outbox.py).

An outcome is written to the outbox (by the turn's own transaction, or here), then `flush` expands
it, with the user's ui_state, into what Telegram is sent: replies merged into messages, split at
paragraphs when too long, buttons turned into callback data for the case and question open now,
the keyboard sent before retired (its question shows the answer), the letter and documents; and
sends those parts in order, each marked delivered once Telegram has it."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable

from telegram import Bot, InputFile, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application

from bot.conversation import Conversation
from bot.outcome import Outcome, ReplyTo, Sealed, outbox_row
from bot.storage import OutboxItem, Storage
from bot.storage.outbox import OUTCOME, PARTS
from bot.telegram import callback_data, render as tg
from bot.telegram.sender import Sender, UserBlocked
from bot.telegram.updates import chat_id_of, sender_of
from dialogs.model import Reply
from messages import render

log = logging.getLogger(__name__)

Part = tuple[str, dict[str, Any]]


def _not_modified(exc: BadRequest) -> bool:
    return "not modified" in exc.message.lower()


def reply_to(update: Update, *, answer: str | None = None, typed: bool = False, pressed: Message | None = None,
             extra: dict[str, Any] | None = None, remember: dict[str, Any] | None = None,
             aside: bool = False) -> ReplyTo:
    """Where an update's outcome goes, and what it answers."""
    return ReplyTo(chat_id_of(update), update.update_id, answer, typed,
                   pressed.message_id if pressed is not None else None,
                   (pressed.text_html if pressed.text else None) if pressed is not None else None,
                   dict(extra or {}), dict(remember or {}), aside)


class Delivery:
    """Outcomes to a private chat through the outbox; the keyboards they replace retired."""

    def __init__(self, storage: Storage, conversation: Conversation, sender: Sender,
                 clock: Callable[[], datetime] | None = None):
        self.storage = storage
        self.conversation = conversation
        self.sender = sender
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._application: Application | None = None
        self._locks: dict[int, asyncio.Lock] = {}

    async def deliver(self, update: Update, outcome: Outcome, *, answer: str | None = None,
                      pressed: Message | None = None, extra: dict[str, Any] | None = None,
                      remember: dict[str, Any] | None = None, typed: bool = False, aside: bool = False) -> None:
        """Send an outcome to the user's private chat. The keyboard sent before is retired when the
        user answered (`answer`: what they typed or pressed; `typed`: shown only if the question took
        it) or when a new keyboard replaces it; a pending /delete confirmation goes with it.
        `remember` is stored in ui_state; `aside`: an acknowledgement that sends no buttons and
        leaves the open question's keyboard as it is.

        An outcome the turn wrote to the outbox itself (`queued`) is only flushed; any other is
        written there first. Whatever a crash leaves there is sent before anything newer."""
        user_id = sender_of(update).id
        chat_id = chat_id_of(update)
        await self.flush(chat_id)
        if outcome.queued:
            return
        if not outcome.done:
            # Acted on already. If its replies never left (the bot died before they were written
            # down: Telegram then delivers the update again), say that it was kept, and ask the open
            # question again.
            if update.update_id <= (await self.storage.ui_state(user_id)).get("done", 0):
                return
            outcome = Outcome(outcome.locale, [Reply("kept_after_restart", {}),
                                               *await self.conversation.open_question(user_id)])
            answer = pressed = None
        to = reply_to(update, answer=answer, typed=typed, pressed=pressed, extra=extra, remember=remember, aside=aside)
        await self.storage.outbox.put(outbox_row(user_id, outcome, to), self.clock())
        await self.flush(chat_id)

    # ---- an outcome row into parts ---------------------------------------------------------

    async def _messages(self, user_id: int, sealed: Sealed, extra: dict[str, Any]) -> list[tuple[str, list[tuple[str, str, str]]]]:
        """The replies as messages: texts merged up to and including each reply that has buttons;
        buttons mapped to callback data for the case and question open now."""
        active = await self.storage.active_case(user_id)
        case_id = active.id if active else None
        token = tg.question_token(active.dialog) if active else ""
        extra = {"outcome_case": sealed["case"], **extra}
        messages, texts = [], []
        for reply in sealed["replies"]:
            texts.append(reply["text"])
            if reply["buttons"]:
                buttons = [(option, label, callback_data.for_option(option, i, case_id, token, extra))
                           for i, (option, label) in enumerate(reply["buttons"])]
                messages.append((tg.merge_texts(texts), buttons))
                texts = []
        if texts:
            messages.append((tg.merge_texts(texts), []))
        return [(text, buttons) for text, buttons in messages if text or buttons]

    async def _expand(self, item: OutboxItem) -> tuple[OutboxItem, dict[str, Any], bool]:
        """An outcome row made the parts Telegram is sent, the user's ui_state they leave, and
        whether that changed. Not written here: with the first part sent (Outbox.advance)."""
        sealed: Sealed = item.payload["outcome"]
        to = ReplyTo.from_dict(item.payload["to"])
        locale = sealed["locale"]
        user_id = item.user_id
        ui = await self.storage.ui_state(user_id) if user_id is not None else {}
        original = dict(ui)
        answer = to.answer if not to.typed or sealed["answered"] else None
        messages = await self._messages(user_id, sealed, to.extra) if user_id is not None else []
        if to.aside:
            messages = [(text, []) for text, _ in messages]
        new_keyboard = any(buttons for _, buttons in messages)
        live = ui.get("kb")
        retire = not to.aside and (answer is not None or new_keyboard)
        parts: list[Part] = []
        if to.pressed_id is not None:
            is_live = bool(live and live.get("id") == to.pressed_id)
            html = live["html"] if live and is_live else to.pressed_html
            parts.append(self._retirement(to.pressed_id, html, answer, locale))
            if is_live:
                live = None
        if retire and live:
            # A typed answer is shown under the question it answers, not under a list or a menu.
            shown = answer if to.pressed_id is None and live.get("q") else None
            parts.append(self._retirement(live["id"], live.get("html"), shown, locale))
            live = None
        if sealed["letter"]:
            parts += [("send", {"text": part}) for part in tg.split_html(sealed["letter"], tg.MAX_TEXT)]
        parts += [("document", dict(document)) for document in sealed["documents"]]
        for text, buttons in messages:
            pieces = tg.split_html(text, tg.MAX_TEXT)
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                parts.append(("send", {
                    "text": piece, "buttons": [list(b) for b in buttons] if last and buttons else None,
                    "live": {"q": any(isinstance(callback_data.unpack(data), callback_data.Answer)
                                      for _, _, data in buttons)} if last and buttons else None}))
        if item.update_id is not None:
            ui["done"] = max(ui.get("done", 0), item.update_id)     # this update's replies are written down
        ui["kb"] = live         # aside, it changes only when the pressed message was the live one
        if retire or to.pressed_id is not None:
            ui.pop("delete", None)
        ui.update(to.remember)
        expanded = OutboxItem(item.id, user_id, item.chat_id, item.update_id, PARTS,
                              {"parts": [[kind, p] for kind, p in parts], "next": 0})
        return expanded, ui, ui != original

    @staticmethod
    def _retirement(message_id: int, html: str | None, answer: str | None, locale: str) -> Part:
        edited = None
        if html and answer:
            edited = html + "\n\n" + render(locale, "answered", answer=answer)
            if tg.visible_len(edited) > tg.MAX_TEXT:
                edited = None
        return "retire", {"message_id": message_id, "text": edited}

    # ---- sending ------------------------------------------------------------------------

    async def flush(self, chat_id: int) -> None:
        """Send the chat's undelivered outbox rows, oldest first, each part marked delivered once
        Telegram has it. A network failure leaves the rest for later (raised: the update is
        delivered again); a user who blocked the bot has the rest dropped; a part Telegram refuses
        is dropped and raised."""
        async with self._lock(chat_id):
            await self._flush(chat_id)

    @contextlib.asynccontextmanager
    async def turn_of(self, chat_id: int) -> AsyncIterator[None]:
        """The chat to one sender (the reminder dispatcher): what the chat is owed goes first (a
        crash's leftovers), and no reply's parts come in between."""
        async with self._lock(chat_id):
            try:
                await self._flush(chat_id)
            except BadRequest:
                pass            # logged and dropped by _flush: not the sender's fault
            yield

    async def _flush(self, chat_id: int) -> None:
        """flush, with the chat's lock held. Part by part: sent, then the outbox told, with the
        user's ui_state as it now stands (the first time with the expansion itself: a crash before
        that expands the row again and repeats only that part)."""
        for row in await self.storage.outbox.pending(chat_id):
            if row.kind == OUTCOME:
                expanded, ui, changed = await self._expand(row)
            else:       # what is left of a row a crash cut short
                expanded, changed = row, False
                ui = await self.storage.ui_state(row.user_id) if row.user_id is not None else {}
            item: OutboxItem | None = expanded
            while item is not None:
                sent, keys = item.parts[:1], None
                try:
                    for kind, payload in sent:
                        keys = await self._send_part(item, kind, payload)
                except UserBlocked:
                    dropped = await self.storage.outbox.drop(chat_id)
                    log.info("user blocked the bot; %d undelivered outcome(s) dropped", dropped)
                    return
                except BadRequest as exc:
                    await self.storage.outbox.advance(item, len(sent), self.clock(), ui=ui if changed else None)
                    log.error("Telegram refused an outbox %s (%s); dropped", sent[0][0], exc.message)
                    raise
                if keys:
                    ui.update(keys)
                item = await self.storage.outbox.advance(item, len(sent), self.clock(),
                                                         ui=ui if changed or keys else None)
                changed = False

    async def _send_part(self, item: OutboxItem, kind: str, p: dict[str, Any]) -> dict[str, Any] | None:
        """One part to Telegram; the ui_state keys its sending sets."""
        if kind == "retire":
            await self._edit_off(item.user_id, item.chat_id, int(p["message_id"]), p.get("text"))
            return None
        if kind == "send":
            buttons = [tuple(b) for b in p.get("buttons") or []]
            sent: Message = await self.sender.call(
                item.user_id, "sendMessage", self.bot.send_message, chat_id=item.chat_id, text=p["text"],
                parse_mode=ParseMode.HTML, disable_web_page_preview=True,
                reply_markup=tg.keyboard(buttons) if buttons else None)
            if p.get("live") is not None:
                return {"kb": {"id": sent.message_id, "html": p["text"], "q": bool(p["live"].get("q"))}}
            return None
        if kind == "document":
            await self.sender.call(item.user_id, "sendDocument", self.bot.send_document, chat_id=item.chat_id,
                                   document=InputFile(base64.b64decode(p["content"]), filename=p["name"]),
                                   caption=p["caption"], parse_mode=ParseMode.HTML)
            return None
        log.error("unknown outbox part %r; dropped", kind)
        return None

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


