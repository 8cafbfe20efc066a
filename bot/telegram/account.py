"""The user's own settings and data on Telegram: /language, /timezone, /export, /delete."""
from __future__ import annotations

import logging
import secrets

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.outcome import Document, Outcome
from bot.telegram.callback_data import CallbackData, Erase, Language
from bot.telegram.common import (
    ButtonFn, CommandFn, Services, answer_query, chat_id_of, language_of, locale_of, seen, sender_of,
)
from bot.telegram.sender import UserBlocked
from dialogs.model import LOCALES, Button, Reply
from messages import render

log = logging.getLogger(__name__)


class AccountHandlers:
    def __init__(self, services: Services):
        self.s = services

    def commands(self) -> dict[str, CommandFn]:
        table: dict[str, CommandFn] = {"language": self.language, "delete": self.delete, "export": self.export}
        if self.s.remind_commands is not None:      # the zone reminders are timed in
            table["timezone"] = self.timezone
        return table

    def buttons(self) -> dict[type[CallbackData], ButtonFn]:
        return {Language: self.press_language, Erase: self.press_erase}

    # ---- /language ----------------------------------------------------------------------

    async def language(self, update: Update, args: str) -> None:
        user_id = sender_of(update).id
        conv = self.s.conversation
        await conv.locale(user_id, language_of(update))
        outcome = await conv.set_language(user_id, args)
        if outcome.replies and outcome.replies[0].key == "language_set":
            outcome.replies += await conv.open_question(user_id)
        await self.s.delivery.deliver(update, outcome)

    async def press_language(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        assert isinstance(claim, Language)
        if claim.locale not in LOCALES:
            return False
        await answer_query(self.s, update, None)
        if await seen(self.s, update):
            return True
        user_id = sender_of(update).id
        await self.s.conversation.locale(user_id, language_of(update))
        outcome = await self.s.conversation.set_language(user_id, claim.locale)
        outcome.replies += await self.s.conversation.open_question(user_id)
        await self.s.delivery.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    # ---- /timezone ----------------------------------------------------------------------

    async def timezone(self, update: Update, args: str) -> None:
        assert self.s.remind_commands is not None
        locale = await locale_of(self.s, update)
        await self.s.delivery.deliver(update, await self.s.remind_commands.set_timezone(sender_of(update).id, args,
                                                                                        locale))

    # ---- /export ------------------------------------------------------------------------

    async def export(self, update: Update, args: str) -> None:
        user_id = sender_of(update).id
        conv = self.s.conversation
        locale = await conv.locale(user_id, language_of(update))
        data = await conv.export(user_id, language_code=language_of(update))
        stamp = self.s.clock().strftime("%Y%m%d-%H%M%S")
        documents = [
            (conv.export_json(data), f"refund-advisor-{stamp}.json", "export_json_caption"),
            (conv.export_markdown(data, locale), f"refund-advisor-{stamp}.md", "export_md_caption"),
        ]
        ics = await conv.export_calendar(user_id, locale)
        if ics is not None:         # the deadlines ahead of the open cases
            documents.append((ics, f"refund-advisor-{stamp}.ics", "export_ics_caption"))
        await self.s.delivery.deliver(update, Outcome(locale, [], documents=[
            Document(name, content, caption) for content, name, caption in documents]))

    # ---- /delete ------------------------------------------------------------------------

    async def delete(self, update: Update, args: str) -> None:
        locale = await locale_of(self.s, update)
        nonce = secrets.token_hex(6)
        reply = Reply("delete_confirm", {}, (Button("delete:yes", "btn.delete_yes"), Button("delete:no", "btn.delete_no")))
        await self.s.delivery.deliver(update, Outcome(locale, [reply]), extra={"nonce": nonce},
                                      remember={"delete": nonce})

    async def press_erase(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """The confirmation of /delete asked last (its nonce), or "no"."""
        assert isinstance(claim, Erase)
        user_id = sender_of(update).id
        ui = await self.s.storage.ui_state(user_id)
        if not ui.get("delete") or (claim.nonce != "no" and claim.nonce != ui["delete"]):
            return False
        locale = await locale_of(self.s, update)
        await answer_query(self.s, update, None)
        if claim.nonce == "no":
            replies = [Reply("delete_kept", {}), *await self.s.conversation.open_question(user_id)]
            await self.s.delivery.deliver(update, Outcome(locale, replies), answer=label, pressed=pressed)
            return True
        await self.s.storage.delete_user(user_id)
        # Nothing is written from here on: the user has no row left (nor outbox rows).
        chat_id, bot = chat_id_of(update), self.s.delivery.bot
        try:
            if pressed is not None:
                await self.s.sender.call(None, "editMessageText", bot.edit_message_text, chat_id=chat_id,
                                         message_id=pressed.message_id, text=render(locale, "deleted"),
                                         parse_mode=ParseMode.HTML)
            else:
                await self.s.sender.call(None, "sendMessage", bot.send_message, chat_id=chat_id,
                                         text=render(locale, "deleted"), parse_mode=ParseMode.HTML)
        except (BadRequest, UserBlocked) as exc:
            log.info("could not confirm the erasure: %s", exc)
        return True
