"""Sending a turn's outcome to the user's private chat: replies merged into messages, split at
paragraphs when too long, buttons turned into callback data for the case and question open now;
the keyboard sent before retired (its question shows the answer); ui_state kept in step."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application

from bot.conversation import Conversation, Outcome
from bot.storage import Storage
from bot.telegram import render as tg
from bot.telegram.sender import Sender, UserBlocked
from messages import render, render_reply

log = logging.getLogger(__name__)


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

    def _callback_data(self, option: str, index: int, case_id: int | None, token: str,
                       extra: dict[str, Any]) -> str:
        kind, _, value = option.partition(":")
        if kind == "lang":
            return f"l:{value}"
        if kind == "case":
            return f"c:{int(value)}"
        if kind == "outcome":
            return f"r:{extra['outcome_case']}:{value}"
        if kind == "delete":
            return f"x:{extra['nonce']}" if value == "yes" else "x:no"
        if kind == "status":      # /status: the whole timeline and the advice
            return f"s:{int(value)}"
        if kind == "calendar":    # the deadlines as an .ics file
            return f"k:{int(value or extra['outcome_case'])}"
        if kind == "remind":
            return f"m:{int(extra['outcome_case'])}:{value}"
        if kind == "esc":         # /escalate: the recipient
            return tg.escalate_data(int(extra["outcome_case"]), value, None, extra.get("origin", "c"))
        if kind == "esclang":     # /escalate: the letter's language, for the recipient chosen
            return tg.escalate_data(int(extra["outcome_case"]), extra["recipient"], value, extra.get("origin", "c"))
        if case_id is None:
            raise ValueError(f"a question button {option!r} with no active case")
        return tg.press_data(case_id, token, option, index)

    async def _messages(self, user_id: int, outcome: Outcome, extra: dict[str, Any]
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
                buttons = [(option, label, self._callback_data(option, i, case_id, token, extra))
                           for i, (option, label) in enumerate(rendered.buttons)]
                messages.append((tg.merge_texts(texts), buttons))
                texts = []
        if texts:
            messages.append((tg.merge_texts(texts), []))
        return [(text, buttons) for text, buttons in messages if text or buttons]

    async def _send(self, user_id: int | None, chat_id: int, html: str,
                    markup: InlineKeyboardMarkup | None = None) -> _Sent | None:
        """One message, split at paragraph boundaries if too long; the keyboard goes on the last part."""
        parts = tg.split_html(html, tg.MAX_TEXT)
        last = None
        for i, part in enumerate(parts):
            is_last = i == len(parts) - 1
            sent: Message = await self.sender.call(
                user_id, "sendMessage", self._bot.send_message, chat_id=chat_id, text=part,
                parse_mode=ParseMode.HTML, disable_web_page_preview=True,
                reply_markup=markup if is_last else None)
            last = _Sent(sent.message_id, part)
        return last

    async def _retire(self, user_id: int, chat_id: int, message_id: int, html: str | None, answer: str | None,
                      locale: str) -> None:
        """A keyboard that is no longer live: show the answer under its question, without buttons."""
        if html and answer:
            edited = html + "\n\n" + render(locale, "answered", answer=answer)
            if tg.visible_len(edited) <= tg.MAX_TEXT:
                try:
                    await self.sender.call(user_id, "editMessageText", self._bot.edit_message_text,
                                           chat_id=chat_id, message_id=message_id, text=edited,
                                           parse_mode=ParseMode.HTML, disable_web_page_preview=True)
                    return
                except BadRequest as exc:
                    log.info("editMessageText of a past question failed: %s", exc.message)
                except TelegramError as exc:
                    log.warning("could not show the answer under a past question: %s", exc.message)
                    return
        try:
            await self.sender.call(user_id, "editMessageReplyMarkup", self._bot.edit_message_reply_markup,
                                   chat_id=chat_id, message_id=message_id, reply_markup=None)
        except BadRequest as exc:
            # "message is not modified" (no keyboard left) or "message to edit not found": nothing live.
            log.debug("editMessageReplyMarkup of a past question failed: %s", exc.message)
        except TelegramError as exc:
            # Retiring old buttons is cosmetic (a press on them is checked and refused): the turn's
            # own replies still go out.
            log.warning("could not retire a past question's buttons: %s", exc.message)

    async def deliver(self, update: Update, outcome: Outcome, *, answer: str | None = None,
                      pressed: Message | None = None, extra: dict[str, Any] | None = None,
                      remember: dict[str, Any] | None = None) -> None:
        """Send an outcome to the user's private chat. The keyboard sent before is retired when the
        user answered (`answer`: what they typed or pressed) or when a new keyboard replaces it;
        a pending /delete confirmation goes with it. `remember` is stored in ui_state afterwards."""
        user_id = update.effective_user.id
        chat_id = update.effective_chat.id
        ui = await self.storage.ui_state(user_id)
        original = dict(ui)
        if outcome.duplicate:
            # Acted on already. If its replies never left (the bot died in between: Telegram then
            # delivers the update again), ask the open question again so the user can go on.
            if update.update_id <= ui.get("done", 0):
                return
            outcome = Outcome(outcome.locale, await self.conversation.open_question(user_id))
            answer = pressed = None
        messages = await self._messages(user_id, outcome, extra or {})
        new_keyboard = any(buttons for _, buttons in messages)
        live = ui.get("kb")
        retire = answer is not None or new_keyboard
        try:
            if pressed is not None:
                html = live["html"] if live and live.get("id") == pressed.message_id else \
                    (pressed.text_html if pressed.text else None)
                await self._retire(user_id, chat_id, pressed.message_id, html, answer, outcome.locale)
                if live and live.get("id") == pressed.message_id:
                    live = None
            if retire and live:
                # A typed answer is shown under the question it answers, not under a list or a menu.
                shown = answer if pressed is None and live.get("q") else None
                await self._retire(user_id, chat_id, live["id"], live.get("html"), shown, outcome.locale)
                live = None
            for text, buttons in messages:
                sent = await self._send(user_id, chat_id, text, tg.keyboard(buttons))
                if buttons and sent:
                    live = {"id": sent.message_id, "html": sent.html,
                            "q": any(data.startswith("q:") for _, _, data in buttons)}
            ui["done"] = max(ui.get("done", 0), update.update_id)     # this update's replies are out
        except UserBlocked:
            log.info("user blocked the bot; the rest of this turn is not sent")
        finally:
            ui["kb"] = live
            if retire or pressed is not None:
                ui.pop("delete", None)
            ui.update(remember or {})
            if ui != original:
                await self.storage.set_ui_state(user_id, ui, self.clock())

    @property
    def _bot(self):
        return self._application.bot

    def bind(self, application: Application) -> None:
        self._application = application
