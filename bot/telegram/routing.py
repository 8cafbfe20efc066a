"""Which handler gets which Telegram update. Every turn goes through `bot.conversation`; the
handlers themselves are grouped by purpose: intake.py, cases.py, account.py, reminders.py,
escalation.py. Each group names its commands and its kinds of button (callback_data.py) in a
table; this module puts the tables together and registers them on the Application.

Private chats only: in groups and channels the bot answers once with a pointer to a private
chat and stores nothing. Button data is never trusted: a press is checked against the presser's
own case and what is open now, by the handler of its kind.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InlineQueryResultsButton, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application, ApplicationHandlerStop, CallbackQueryHandler, ChatMemberHandler, ContextTypes,
    InlineQueryHandler, MessageHandler, TypeHandler, filters,
)

from bot.conversation import Conversation
from bot.escalation import Escalation
from bot.outcome import Outcome
from bot.remind_commands import RemindCommands
from bot.reminders import Reminders
from bot.storage import TRANSIENT_DATABASE_ERRORS, Storage
from bot.telegram import callback_data, render as tg
from bot.telegram.account import AccountHandlers
from bot.telegram.acks import transient
from bot.telegram.cases import CaseHandlers
from bot.telegram.common import (
    ButtonFn, CommandFn, Services, answer_query, language_of, locale_of, mark, sender_of,
)
from bot.telegram.delivery import Delivery
from bot.telegram.escalation import EscalationHandlers
from bot.telegram.intake import ENGINE_COMMANDS, IntakeHandlers
from bot.telegram.reminders import ReminderHandlers
from bot.telegram.sender import Sender, UserBlocked
from dialogs.model import Reply
from messages import locale_from, plain, render

log = logging.getLogger(__name__)

# The command menu (bot/telegram_app.py sets it), in its order.
COMMANDS = ("start", "new", "cases", "status", "resolved", "remind", "timezone", "language", "help", "cancel",
            "delete", "export", "escalate", "calendar")
POINTED_MAX = 10_000            # groups remembered (in memory only) as already given the pointer


def _value_of(claim: callback_data.CallbackData | None) -> str:
    """What a press chose, shown under its question when its button's label cannot be found."""
    if isinstance(claim, callback_data.Escalate):
        return f"{claim.letter or '_'}:{claim.origin}"
    for name in ("option", "outcome", "locale", "nonce", "answer", "choice"):
        if hasattr(claim, name):
            return str(getattr(claim, name))
    return ""


class TelegramShell:
    """The handlers of every kind of update, registered on the Application by `register`."""

    def __init__(self, storage: Storage, conversation: Conversation, sender: Sender,
                 clock: Callable[[], datetime] | None = None, reminders: Reminders | None = None):
        clock = clock or (lambda: datetime.now(timezone.utc))
        self.delivery = Delivery(storage, conversation, sender, clock)
        self.services = Services(
            storage=storage, conversation=conversation, sender=sender, delivery=self.delivery, clock=clock,
            reminders=reminders, remind_commands=RemindCommands(reminders) if reminders is not None else None,
            escalation=Escalation(storage, conversation, reminders, clock))
        self.intake = IntakeHandlers(self.services)
        escalation = EscalationHandlers(self.services)
        groups = (self.intake, CaseHandlers(self.services), AccountHandlers(self.services),
                  ReminderHandlers(self.services, escalation.offer), escalation)
        self.commands: dict[str, CommandFn] = {}
        self.buttons: dict[type[callback_data.CallbackData], ButtonFn] = {}
        for group in groups:
            self.commands.update(group.commands())
            self.buttons.update(group.buttons())
        self.username = ""
        self._pointed: set[int] = set()     # groups given the pointer (memory only: nothing stored)

    @property
    def storage(self) -> Storage:
        return self.services.storage

    def bind(self, application: Application) -> None:
        self.delivery.bind(application)
        self.username = application.bot.username or ""

    def register(self, app: Application) -> None:
        message = filters.UpdateType.MESSAGE
        intake = self.intake
        app.add_handler(TypeHandler(Update, self.guard), group=-1)
        app.add_handler(MessageHandler(filters.UpdateType.EDITED, intake.edited))
        app.add_handler(MessageHandler(message & filters.FORWARDED, intake.evidence))
        app.add_handler(MessageHandler(message & filters.COMMAND, self.command))
        app.add_handler(MessageHandler(message & (filters.PHOTO | filters.Document.ALL | filters.VIDEO
                                                  | filters.VOICE | filters.AUDIO), intake.evidence))
        app.add_handler(MessageHandler(message & filters.TEXT, intake.text))
        app.add_handler(MessageHandler(message, intake.unsupported))
        app.add_handler(CallbackQueryHandler(self.press))
        app.add_handler(ChatMemberHandler(self.membership, ChatMemberHandler.MY_CHAT_MEMBER))
        app.add_handler(InlineQueryHandler(self.inline))
        app.add_error_handler(self.error)

    # ---- every update first -------------------------------------------------------------

    async def guard(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Groups and channels get a pointer and nothing is stored; a private user who writes
        again after blocking the bot is messaged again."""
        chat = update.effective_chat
        if chat is not None and chat.type != ChatType.PRIVATE:
            await self.group(update)
            raise ApplicationHandlerStop
        user = update.effective_user
        if chat is not None and user is not None and (update.message or update.callback_query):
            known = await self.storage.get_user(user.id)
            if known and known.blocked:
                await self._unblocked(user.id)
        if chat is not None:
            await self.delivery.flush(chat.id)     # what a crash or a failed send left, first

    async def _unblocked(self, user_id: int) -> None:
        """The user is back: messaged again, and their paused nudges planned again."""
        if self.services.reminders is not None:
            await self.services.reminders.user_returned(user_id)
        else:
            await self.storage.set_user(user_id, self.services.clock(), blocked=False)

    async def group(self, update: Update) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        if update.callback_query:
            await answer_query(self.services, update, None)
            return
        member = update.my_chat_member
        if member is not None:
            if member.new_chat_member.status not in ("member", "administrator"):
                return
        elif update.effective_message is None:
            return
        text = update.effective_message.text if update.effective_message else None
        addressed = bool(text and text.startswith("/") and (
            "@" not in text.split()[0] or text.split()[0].lower().endswith("@" + self.username.lower())))
        if chat.id in self._pointed and not addressed:
            return
        if len(self._pointed) >= POINTED_MAX:
            self._pointed.clear()
        self._pointed.add(chat.id)
        locale = locale_from(language_of(update))
        markup = None
        if self.username:
            markup = InlineKeyboardMarkup([[InlineKeyboardButton(
                plain(render(locale, "btn.open_private")), url=f"https://t.me/{self.username}?start=group")]])
        try:
            await self.services.sender.call(None, "sendMessage", self.delivery.bot.send_message, chat_id=chat.id,
                                            text=render(locale, "group_pointer", username=self.username),
                                            parse_mode=ParseMode.HTML, reply_markup=markup)
        except (UserBlocked, BadRequest) as exc:
            log.info("could not post the private-chat pointer in a group: %s", exc)

    # ---- commands and buttons -------------------------------------------------------------

    async def command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message is None or update.message.text is None:
            return
        word, _, args = update.message.text.partition(" ")
        name, _, addressee = word[1:].partition("@")
        if addressee and self.username and addressee.lower() != self.username.lower():
            return
        name = name.lower()
        if name in ENGINE_COMMANDS:
            await self.intake.engine_command(update, name)
            return
        marked = await mark(self.services, update)
        if marked == "done":
            return
        if marked == "again" and name in ("start", "new"):
            # Acted on, its replies lost: the welcome (for /start) and the open question, not a second case.
            user_id = sender_of(update).id
            replies = [Reply("welcome", {})] if name == "start" else []
            await self.delivery.deliver(update, Outcome(await locale_of(self.services, update),
                                                        replies + await self.services.conversation.open_question(user_id)))
            return
        handler = self.commands.get(name)
        if handler is not None:
            await handler(update, args)
            return
        await self.delivery.deliver(update, Outcome(await locale_of(self.services, update),
                                                    [Reply("err.unknown_command", {})]))

    async def press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button: the handler of its kind checks the claim; a claim that does not hold (or data
        that is not ours) gets a "this button is no longer live" notice."""
        query = update.callback_query
        if query is None:
            return
        claim = callback_data.unpack(query.data)
        pressed = query.message if isinstance(query.message, Message) else None
        label = tg.label_of(pressed.reply_markup if pressed else None, query.data) or _value_of(claim)
        handler = self.buttons.get(type(claim)) if claim is not None else None
        if update.effective_chat is None:       # a button of a message sent in inline mode: none are ours
            handler = None
        if claim is None or handler is None or not await handler(update, claim, label, pressed):
            locale = await self.services.conversation.locale(sender_of(update).id, language_of(update))
            await answer_query(self.services, update, plain(render(locale, "stale_press")))

    # ---- other updates ------------------------------------------------------------------

    async def membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A private chat's user blocked (kicked) or unblocked the bot."""
        member = update.my_chat_member
        if member is None:
            return
        status = member.new_chat_member.status
        if status == "kicked":
            await self.storage.block_user(member.from_user.id, self.services.clock())
        elif status == "member":
            known = await self.storage.get_user(member.from_user.id)
            if known and known.blocked:
                await self._unblocked(member.from_user.id)

    async def inline(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Inline mode is not offered: an empty answer with a button to a private chat."""
        if update.inline_query is None:
            return
        locale = locale_from(language_of(update))
        button = InlineQueryResultsButton(plain(render(locale, "inline_button")), start_parameter="inline")
        try:
            await self.services.sender.call(None, "answerInlineQuery", update.inline_query.answer, results=[],
                                            button=button, cache_time=300, is_personal=True)
        except (TelegramError, UserBlocked) as exc:
            log.info("answerInlineQuery failed: %s", exc)

    async def error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if transient(context.error):
            # The Bot API or the database failing: the update is tried again (bot.telegram_app) or
            # delivered again (bot.telegram.acks). A button's spinner stops meanwhile.
            if isinstance(context.error, TRANSIENT_DATABASE_ERRORS):
                log.info("could not finish an update yet, the database is busy: %s", context.error)
            else:
                log.warning("could not finish an update: %s", type(context.error).__name__)
            if isinstance(update, Update) and update.callback_query:
                await answer_query(self.services, update, None)
            return
        log.error("error while handling an update", exc_info=context.error)
        if not isinstance(update, Update) or update.effective_chat is None \
                or update.effective_chat.type != ChatType.PRIVATE:
            return
        if update.callback_query:
            await answer_query(self.services, update, None)
        try:
            locale = locale_from(language_of(update))
            await self.services.sender.call(update.effective_user.id if update.effective_user else None, "sendMessage",
                                            self.delivery.bot.send_message, chat_id=update.effective_chat.id,
                                            text=render(locale, "error_generic"), parse_mode=ParseMode.HTML)
        except Exception as exc:     # the error handler must not fail in its turn
            log.info("could not tell the user about the error: %s", exc)
