"""Reminders on Telegram: /remind and its buttons, and the answers to a nudge's buttons (the
nudges themselves are sent by bot/dispatcher.py)."""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from telegram import Message, Update

from bot.telegram.callback_data import CallbackData, NudgeAnswer, RemindChoice
from bot.telegram.delivery import reply_to
from bot.telegram.common import (
    ButtonFn, CommandFn, Services, answer_query, locale_of, sender_of,
)
from bot.telegram.sender import UserBlocked
from bot.storage import Case

log = logging.getLogger(__name__)

# What a nudge's Escalate button leads to: whom the complaint is for (bot/telegram/escalation.py).
OfferEscalation = Callable[[Update, "Case | None", str], Awaitable[None]]


class ReminderHandlers:
    def __init__(self, services: Services, offer_escalation: OfferEscalation):
        self.s = services
        self.offer_escalation = offer_escalation

    def commands(self) -> dict[str, CommandFn]:
        return {"remind": self.remind} if self.s.remind_commands is not None else {}

    def buttons(self) -> dict[type[CallbackData], ButtonFn]:
        if self.s.reminders is None:        # no reminders: their buttons answer "stale"
            return {}
        return {NudgeAnswer: self.press_nudge, RemindChoice: self.press_remind}

    async def remind(self, update: Update, args: str) -> None:
        assert self.s.remind_commands is not None
        locale = await locale_of(self.s, update)
        await self.s.delivery.deliver(update, await self.s.remind_commands.remind(sender_of(update).id, locale))

    async def press_remind(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """A /remind button (cadence, pause, resume) for one of the presser's open cases."""
        assert isinstance(claim, RemindChoice) and self.s.remind_commands is not None
        user_id = sender_of(update).id
        locale = await locale_of(self.s, update)
        outcome = await self.s.remind_commands.remind_choice(user_id, claim.case_id, claim.choice, locale,
                                                             update_id=update.update_id,
                                                             reply_to=reply_to(update, answer=label, pressed=pressed))
        if outcome is None:
            return False
        await answer_query(self.s, update, None)
        await self.s.delivery.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    async def press_nudge(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """An answer to a nudge: for the presser's own open case, on its latest nudge only."""
        assert isinstance(claim, NudgeAnswer) and self.s.reminders is not None
        user_id = sender_of(update).id
        locale = await locale_of(self.s, update)
        # The acknowledgement goes under the nudge (its keyboard retired, the answer shown); a
        # question open in the chat keeps its keyboard.
        outcome = await self.s.reminders.answer(user_id, claim.case_id, claim.followup_id, claim.answer, locale,
                                                update_id=update.update_id,
                                                reply_to=reply_to(update, answer=label, pressed=pressed, aside=True))
        if outcome is None:
            return False
        await answer_query(self.s, update, None)
        try:
            await self.s.delivery.deliver(update, outcome, answer=label, pressed=pressed, aside=True)
        except UserBlocked:
            log.info("user blocked the bot; the acknowledgement of a nudge answer is not sent")
            return True
        if not outcome.done:
            return True
        if claim.answer == "escalate":
            await self.offer_escalation(update, await self.s.storage.get_case(user_id, claim.case_id), "n")
        return True
