"""/escalate on Telegram: the buttons of the escalation workflow (bot/escalation.py), checked,
and its draft sent as a message and two documents."""
from __future__ import annotations

import logging

from telegram import InputFile, Message, Update
from telegram.constants import ParseMode

from bot.outcome import Outcome
from bot.storage import Case
from bot.telegram.callback_data import CallbackData, Escalate
from bot.telegram.common import (
    ButtonFn, CommandFn, Services, answer_query, chat_id_of, locale_of, seen, sender_of,
)
from bot.telegram.sender import UserBlocked
from messages import render

log = logging.getLogger(__name__)


class EscalationHandlers:
    def __init__(self, services: Services):
        self.s = services

    def commands(self) -> dict[str, CommandFn]:
        return {"escalate": self.escalate}

    def buttons(self) -> dict[type[CallbackData], ButtonFn]:
        return {Escalate: self.press}

    async def escalate(self, update: Update, args: str) -> None:
        await self.offer(update, await self.s.storage.active_case(sender_of(update).id), "c")

    async def offer(self, update: Update, case: Case | None, origin: str) -> None:
        """Whom the complaint is for, or what is missing first. `origin`: "c" (/escalate) or "n"
        (a nudge's Escalate button)."""
        locale = await locale_of(self.s, update)
        outcome = await self.s.escalation.choose(sender_of(update).id, locale, case)
        await self.s.delivery.deliver(update, outcome, extra={"origin": origin})

    async def press(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """A recipient (then the letter's language is asked), or the letter's language (then the
        draft): for one of the presser's own open, advised cases, a recipient that fits it, on
        the keyboard sent last."""
        assert isinstance(claim, Escalate)
        user_id = sender_of(update).id
        escalation = self.s.escalation
        case = await escalation.fits(user_id, claim.case_id, claim.recipient, claim.letter, claim.origin)
        if case is None:
            return False
        live = (await self.s.storage.ui_state(user_id)).get("kb") or {}
        if pressed is None or live.get("id") != pressed.message_id:     # only the keyboard sent last
            return False
        locale = await locale_of(self.s, update)
        if claim.letter is None:
            await answer_query(self.s, update, None)
            if await seen(self.s, update):
                return True
            await self.s.delivery.deliver(update, escalation.ask_language(locale, case, claim.recipient), answer=label,
                                          pressed=pressed, extra={"origin": claim.origin, "recipient": claim.recipient})
            return True
        outcome = await escalation.draft(user_id, locale, case, claim.recipient, claim.letter, claim.origin,
                                         update.update_id)
        if outcome is None:
            return False
        await answer_query(self.s, update, None)
        if not outcome.done:
            return True         # acted on already (a redelivered press), or the case went away
        await self._send_draft(update, outcome, label, pressed)
        return True

    async def _send_draft(self, update: Update, outcome: Outcome, label: str, pressed: Message) -> None:
        user_id, chat_id = sender_of(update).id, chat_id_of(update)
        delivery, locale = self.s.delivery, outcome.locale
        try:
            await delivery.retire(user_id, chat_id, pressed.message_id, pressed.text_html if pressed.text else None,
                                  label, locale)
            ui = await self.s.storage.ui_state(user_id)
            if (ui.get("kb") or {}).get("id") == pressed.message_id:
                await self.s.storage.set_ui_state(user_id, {**ui, "kb": None}, self.s.clock())
            if outcome.letter:
                await delivery.send(user_id, chat_id, outcome.letter)
            for document in outcome.documents:
                await self.s.sender.call(user_id, "sendDocument", delivery.bot.send_document, chat_id=chat_id,
                                         document=InputFile(document.content, filename=document.filename),
                                         caption=render(locale, document.caption), parse_mode=ParseMode.HTML)
            for text, _ in await delivery.messages(user_id, outcome, {}):
                await delivery.send(user_id, chat_id, text)
        except UserBlocked:
            log.info("user blocked the bot; the complaint draft is not sent")
