"""A user's cases on Telegram: /cases (list and switch), /resolved (close a case with its outcome),
/calendar and the button under the advice (the case's deadlines as an .ics file)."""
from __future__ import annotations

from telegram import Message, Update

from bot.outcome import Outcome
from bot.storage import CLOSED_STATUSES
from bot.telegram.callback_data import CallbackData, CaseOutcome, Ics, SwitchCase
from bot.telegram.common import (
    ButtonFn, CommandFn, Services, answer_query, language_of, on_active_case, seen, sender_of,
)


class CaseHandlers:
    def __init__(self, services: Services):
        self.s = services

    def commands(self) -> dict[str, CommandFn]:
        return {"cases": self.cases, "resolved": self.resolved, "calendar": self.calendar}

    def buttons(self) -> dict[type[CallbackData], ButtonFn]:
        return {SwitchCase: self.press_switch, CaseOutcome: self.press_outcome, Ics: self.press_calendar}

    async def cases(self, update: Update, args: str) -> None:
        outcome = await self.s.conversation.cases(sender_of(update).id, language_code=language_of(update))
        await self.s.delivery.deliver(update, outcome)

    async def resolved(self, update: Update, args: str) -> None:
        outcome = await self.s.conversation.resolve_prompt(sender_of(update).id, language_code=language_of(update))
        await self.s.delivery.deliver(update, outcome)

    async def press_switch(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """Switch to one of the presser's own cases."""
        assert isinstance(claim, SwitchCase)
        user_id = sender_of(update).id
        if await self.s.storage.get_case(user_id, claim.case_id) is None:
            return False
        await answer_query(self.s, update, None)
        if await seen(self.s, update):
            return True
        outcome = await self.s.conversation.switch_case(user_id, claim.case_id, language_code=language_of(update))
        if outcome is not None:
            await self.s.delivery.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    async def press_outcome(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """How the presser's active open case ended."""
        assert isinstance(claim, CaseOutcome)
        user_id = sender_of(update).id
        case = await self.s.storage.active_case(user_id)
        if case is None or case.id != claim.case_id or case.status in CLOSED_STATUSES:
            return False
        await answer_query(self.s, update, None)
        if await seen(self.s, update):
            return True
        outcome = await self.s.conversation.resolve(user_id, case.id, claim.outcome, language_code=language_of(update))
        if outcome is not None:
            await self.s.delivery.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    # ---- the calendar file ----------------------------------------------------------------

    async def calendar(self, update: Update, args: str) -> None:
        await self.send_calendar(update)

    async def press_calendar(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """The button under the advice: the deadlines of the presser's active case, that case only."""
        assert isinstance(claim, Ics)

        async def send(user_id: int) -> None:
            await self.send_calendar(update)
        return await on_active_case(self.s, update, claim.case_id, send)

    async def send_calendar(self, update: Update) -> None:
        """The active case's deadlines as an .ics document, with a line saying what it is."""
        user_id = sender_of(update).id
        outcome = await self.s.conversation.calendar(user_id, language_code=language_of(update))
        if outcome.documents:       # the line that says what it is goes as the file's caption
            outcome = Outcome(outcome.locale, [], outcome.case_id, documents=outcome.documents)
        await self.s.delivery.deliver(update, outcome)
