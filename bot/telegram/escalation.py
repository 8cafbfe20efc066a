"""/escalate on Telegram: the buttons of the escalation workflow (bot/escalation.py), checked,
and its draft sent as a message and two documents."""
from __future__ import annotations

import logging

from telegram import Message, Update

from bot.storage import Case
from bot.telegram.callback_data import CallbackData, Escalate
from bot.telegram.delivery import reply_to
from bot.telegram.common import (
    ButtonFn, CommandFn, Services, answer_query, locale_of, seen, sender_of,
)

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
                                         update.update_id, reply_to(update, answer=label, pressed=pressed, aside=True))
        if outcome is None:
            return False
        await answer_query(self.s, update, None)
        # The pressed keyboard retired (any other live one, the advice's, kept), the draft as a
        # message, its .txt and .md, then a line that it is on the timeline; written to the outbox
        # with the record (a redelivered press: what a crash left of it is sent, nothing twice).
        await self.s.delivery.deliver(update, outcome, answer=label, pressed=pressed, aside=True)
        return True
