"""The intake on Telegram: typed answers and the question's buttons, the commands that move
through the questions (/back, /skip, /cancel, /continue), /start, /new, /status, /help, and what
else a user may send during a case (evidence, edits, unsupported messages)."""
from __future__ import annotations

from telegram import Message, Update
from telegram.ext import ContextTypes

from bot.outcome import Outcome
from bot.storage import CLOSED_STATUSES
from bot.telegram import render as tg
from bot.telegram.callback_data import Answer, CallbackData, Timeline
from bot.telegram.delivery import reply_to
from bot.telegram.common import (
    ButtonFn, CommandFn, Services, answer_query, language_of, locale_of, on_active_case, seen, sender_of,
)
from dialogs import engine
from dialogs.engine import Command, DialogState, Press, Text
from dialogs.model import Reply

# Commands the engine itself answers (they move through the questions of the active case).
ENGINE_COMMANDS = {"cancel": "cancel", "back": "back", "skip": "skip", "continue": "resume", "resume": "resume"}
ANSWER_ECHO_MAX = 120           # a typed answer shown under its question is cut to this many characters
EVIDENCE_KINDS = ("photo", "document", "video", "voice", "audio")
FULL_WORDS = ("full", "all", "全部", "完整")     # /status full: the whole timeline


def short(text: str, limit: int = ANSWER_ECHO_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class IntakeHandlers:
    def __init__(self, services: Services):
        self.s = services

    def commands(self) -> dict[str, CommandFn]:
        return {"start": self.start, "new": self.new, "status": self.status, "help": self.help}

    def buttons(self) -> dict[type[CallbackData], ButtonFn]:
        return {Answer: self.press_answer, Timeline: self.press_timeline}

    # ---- messages -----------------------------------------------------------------------

    async def text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user_id, language = sender_of(update).id, language_of(update)
        message = update.message
        if message is None or message.text is None:
            return
        text = message.text
        case = await self.s.storage.active_case(user_id)
        if case is not None and case.status in CLOSED_STATUSES:
            await self.s.delivery.deliver(update, await self.s.conversation.add_note(
                user_id, text, language_code=language, update_id=update.update_id, reply_to=reply_to(update)))
            return
        outcome = await self.s.conversation.handle(user_id, Text(text), language_code=language,
                                                   update_id=update.update_id,
                                                   reply_to=reply_to(update, answer=short(text), typed=True))
        await self.s.delivery.deliver(update, outcome, answer=short(text), typed=True)

    async def engine_command(self, update: Update, name: str) -> None:
        """/back, /skip, /cancel, /continue: a turn of the active case, if there is one."""
        user_id, language = sender_of(update).id, language_of(update)
        conv = self.s.conversation
        if await self.s.storage.active_case(user_id) is None:
            if not await seen(self.s, update):
                await self.s.delivery.deliver(update, Outcome(await conv.locale(user_id, language),
                                                              [Reply("no_case", {})]))
            return
        outcome = await conv.handle(user_id, Command(ENGINE_COMMANDS[name]), language_code=language,
                                    update_id=update.update_id, reply_to=reply_to(update))
        await self.s.delivery.deliver(update, outcome)

    async def evidence(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or await seen(self.s, update):
            return
        file_id = None
        kind = "forward" if message.forward_origin is not None else None
        for name in EVIDENCE_KINDS:
            attachment = getattr(message, name, None)
            if attachment:
                file_id = attachment[-1].file_id if isinstance(attachment, (tuple, list)) else attachment.file_id
                kind = kind or name
                break
        if kind is None:        # a forwarded message with nothing we keep, cannot happen: forward_origin is set
            kind = "forward"
        if file_id is None and kind == "forward":
            attachment = message.effective_attachment
            if attachment is not None and not isinstance(attachment, (tuple, list)):
                file_id = getattr(attachment, "file_id", None)
        text = message.text or message.caption
        if kind == "document" and message.document is not None and message.document.file_name:
            text = f"{message.document.file_name}: {text}" if text else message.document.file_name
        outcome = await self.s.conversation.add_evidence(sender_of(update).id, kind, file_id=file_id, text=text,
                                                         language_code=language_of(update))
        await self.s.delivery.deliver(update, outcome)

    async def unsupported(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or await seen(self.s, update):
            return
        if message.text is None and message.caption is None and not message.effective_attachment \
                and (message.new_chat_members or message.left_chat_member or message.pinned_message):
            return      # service messages
        await self.s.delivery.deliver(update, Outcome(await locale_of(self.s, update), [Reply("unsupported", {})]))

    async def edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_user is None or await seen(self.s, update):
            return
        await self.s.delivery.deliver(update, Outcome(await locale_of(self.s, update), [Reply("edited_ignored", {})]))

    # ---- commands -----------------------------------------------------------------------

    async def start(self, update: Update, args: str) -> None:
        outcome = await self.s.conversation.start(sender_of(update).id, language_code=language_of(update))
        await self.s.delivery.deliver(update, outcome)

    async def new(self, update: Update, args: str) -> None:
        outcome = await self.s.conversation.new_case(sender_of(update).id, language_code=language_of(update))
        await self.s.delivery.deliver(update, outcome)

    async def status(self, update: Update, args: str) -> None:
        """/status: the case on one screen; /status full: the whole timeline and the advice."""
        full = args.strip().lower() in FULL_WORDS
        outcome = await self.s.conversation.status(sender_of(update).id, language_code=language_of(update), full=full)
        await self.s.delivery.deliver(update, outcome)

    async def press_timeline(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """/status's button: the whole timeline and the advice of the case it was shown for."""
        assert isinstance(claim, Timeline)

        async def show(user_id: int) -> None:
            await self.s.delivery.deliver(update, await self.s.conversation.status(
                user_id, language_code=language_of(update), full=True))
        return await on_active_case(self.s, update, claim.case_id, show)

    async def help(self, update: Update, args: str) -> None:
        await self.s.delivery.deliver(update, Outcome(await locale_of(self.s, update), [Reply("help_telegram", {})]))

    # ---- the question's buttons -----------------------------------------------------------

    async def press_answer(self, update: Update, claim: CallbackData, label: str, pressed: Message | None) -> bool:
        """An answer to the question open in the presser's own active case, that question only."""
        assert isinstance(claim, Answer)
        user_id = sender_of(update).id
        case = await self.s.storage.active_case(user_id)
        if case is None or case.id != claim.case_id or tg.question_token(case.dialog) != claim.question:
            return False
        option = claim.option
        if case.status in CLOSED_STATUSES and option != engine.NEW:     # a closed case answers no more questions
            return False
        if option.startswith("#"):
            state = DialogState.from_dict(case.dialog)
            options = [b.id for b in engine.ask(self.s.conversation.graph, state).buttons] + [engine.RESUME, engine.NEW]
            try:
                option = options[int(option[1:])]
            except (ValueError, IndexError):
                return False
        await answer_query(self.s, update, None)
        outcome = await self.s.conversation.handle(user_id, Press(option), language_code=language_of(update),
                                                   update_id=update.update_id,
                                                   reply_to=reply_to(update, answer=label, pressed=pressed))
        await self.s.delivery.deliver(update, outcome, answer=label, pressed=pressed)
        return True
