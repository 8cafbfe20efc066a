"""What every group of Telegram handlers shares: the services they call, the delivery of
outcomes, and the small steps every handler takes (who wrote, in which language, was this update
acted on already, answer the button's spinner)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Awaitable, Callable, Literal

from telegram import Message, Update
from telegram.error import TelegramError

from bot.conversation import Conversation
from bot.escalation import Escalation
from bot.remind_commands import RemindCommands
from bot.reminders import Reminders
from bot.storage import Storage
from bot.telegram.callback_data import CallbackData
from bot.telegram.delivery import Delivery
from bot.telegram.sender import Sender, UserBlocked
from bot.telegram.updates import chat_id_of, language_of, sender_of

log = logging.getLogger(__name__)
__all__ = ["Services", "CommandFn", "ButtonFn", "seen", "mark", "answer_query", "locale_of", "sender_of", "chat_id_of",
           "language_of"]

# A command's handler: the update and the text after the command.
CommandFn = Callable[[Update, str], Awaitable[None]]
# A button's handler: the update, what its data claims, the label pressed, the message it is on.
# False: the claim does not hold (not the presser's, stale): the presser is told so.
ButtonFn = Callable[[Update, CallbackData, str, "Message | None"], Awaitable[bool]]


@dataclass
class Services:
    storage: Storage
    conversation: Conversation
    sender: Sender
    delivery: Delivery
    clock: Callable[[], datetime]
    reminders: Reminders | None           # None: no reminders (the /remind and nudge buttons answer stale)
    remind_commands: RemindCommands | None
    escalation: Escalation
    answered: set[str] = field(default_factory=set)     # callback queries answered (one answer each)


async def seen(services: Services, update: Update) -> bool:
    """Record an update that is not a dialog turn; True if it was already acted on and its
    replies went out (a redelivery of an update whose replies were lost is acted on again)."""
    return await mark(services, update) == "done"


async def mark(services: Services, update: Update) -> Literal["new", "again", "done"]:
    """"new": first time; "again": acted on, but its replies never went out; "done"."""
    user = update.effective_user
    if await services.storage.mark_update(update.update_id, user.id if user else None, services.clock()):
        return "new"
    if user is None or update.update_id <= (await services.storage.ui_state(user.id)).get("done", 0):
        return "done"
    return "again"


async def on_active_case(services: Services, update: Update, case_id: int,
                         act: Callable[[int], Awaitable[None]]) -> bool:
    """A button shown for one case (the timeline, the calendar file): False when that case is
    not the presser's active one (the press is refused); else the spinner stops and `act` runs
    with the presser's id, unless this press was acted on already."""
    user_id = sender_of(update).id
    case = await services.storage.active_case(user_id)
    if case is None or case.id != case_id:
        return False
    await answer_query(services, update, None)
    if not await seen(services, update):
        await act(user_id)
    return True


async def answer_query(services: Services, update: Update, notice: str | None) -> None:
    """Stop the button's spinner (with a notice, if any)."""
    query = update.callback_query
    if query is None or query.id in services.answered:
        return      # answered already, when a busy database failed its first attempt (bot.telegram_app)
    if len(services.answered) >= 10_000:
        services.answered.clear()
    services.answered.add(query.id)
    try:
        await services.sender.call(None, "answerCallbackQuery", query.answer, text=notice)
    except (TelegramError, UserBlocked) as exc:
        # A query older than about 15 minutes, or answered already (a redelivered update).
        log.debug("answerCallbackQuery failed: %s", exc)


async def locale_of(services: Services, update: Update) -> str:
    return await services.conversation.locale(sender_of(update).id, language_of(update))
