"""One handler per kind of Telegram update; every turn goes through `bot.conversation`.

Private chats only: in groups and channels the bot answers once with a pointer to a private
chat and stores nothing. Button data is never trusted: a press is checked against the
presser's own active case and the question open now (see `render`).
"""
from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InlineQueryResultsButton, InputFile, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application, ApplicationHandlerStop, CallbackQueryHandler, ChatMemberHandler, ContextTypes,
    InlineQueryHandler, MessageHandler, TypeHandler, filters,
)

from bot.conversation import Conversation, Outcome
from bot.followups import Followups
from bot.storage import DUPLICATE, Case, PlanChange, Refused, Storage
from bot.telegram import render as tg
from bot.telegram.acks import transient
from bot.telegram.delivery import Delivery
from bot.telegram.sender import Sender, UserBlocked
from dialogs import engine
from dialogs.complaint import draft as complaint_draft, needed, recipients, render_draft
from dialogs.followup import apply_answer
from dialogs.engine import Command, DialogState, Press, Text
from dialogs.model import LOCALES, Button, Reply, TimelineEvent
from messages import locale_from, plain, render

log = logging.getLogger(__name__)

COMMANDS = ("start", "new", "cases", "status", "resolved", "remind", "timezone", "language", "help", "cancel",
            "delete", "export", "escalate", "calendar")
ENGINE_COMMANDS = {"cancel": "cancel", "back": "back", "skip": "skip", "continue": "resume", "resume": "resume"}
CLOSED = ("resolved", "abandoned")
ANSWER_ECHO_MAX = 120           # a typed answer shown under its question is cut to this many characters
EVIDENCE_KINDS = ("photo", "document", "video", "voice", "audio")
POINTED_MAX = 10_000            # groups remembered (in memory only) as already given the pointer


def _short(text: str, limit: int = ANSWER_ECHO_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class TelegramShell(Delivery):
    """The handlers: one per kind of update, registered on the Application by `register`."""

    def __init__(self, storage: Storage, conversation: Conversation, sender: Sender,
                 clock: Callable[[], datetime] | None = None, followups: Followups | None = None):
        super().__init__(storage, conversation, sender, clock)
        self.followups = followups
        self.username = ""
        self._pointed: set[int] = set()     # groups given the pointer (memory only: nothing stored)

    def bind(self, application: Application) -> None:
        super().bind(application)
        self.username = application.bot.username or ""

    # ---- wiring -------------------------------------------------------------------------

    def register(self, app: Application) -> None:
        message = filters.UpdateType.MESSAGE
        app.add_handler(TypeHandler(Update, self.guard), group=-1)
        app.add_handler(MessageHandler(filters.UpdateType.EDITED, self.edited))
        app.add_handler(MessageHandler(message & filters.FORWARDED, self.evidence))
        app.add_handler(MessageHandler(message & filters.COMMAND, self.command))
        app.add_handler(MessageHandler(message & (filters.PHOTO | filters.Document.ALL | filters.VIDEO
                                                  | filters.VOICE | filters.AUDIO), self.evidence))
        app.add_handler(MessageHandler(message & filters.TEXT, self.text))
        app.add_handler(MessageHandler(message, self.unsupported))
        app.add_handler(CallbackQueryHandler(self.press))
        app.add_handler(ChatMemberHandler(self.membership, ChatMemberHandler.MY_CHAT_MEMBER))
        app.add_handler(InlineQueryHandler(self.inline))
        app.add_error_handler(self.error)

    # ---- helpers ------------------------------------------------------------------------

    @staticmethod
    def _language(update: Update) -> str | None:
        user = update.effective_user
        return user.language_code if user else None

    async def _seen(self, update: Update) -> bool:
        """Record an update that is not a dialog turn; True if it was already acted on and its
        replies went out (a redelivery of an update whose replies were lost is acted on again)."""
        return await self._mark(update) == "done"

    async def _mark(self, update: Update) -> str:
        """"new": first time; "again": acted on, but its replies never went out; "done"."""
        user = update.effective_user
        if await self.storage.mark_update(update.update_id, user.id if user else None, self.clock()):
            return "new"
        if user is None or update.update_id <= (await self.storage.ui_state(user.id)).get("done", 0):
            return "done"
        return "again"

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

    async def _unblocked(self, user_id: int) -> None:
        """The user is back: messaged again, and their paused nudges planned again."""
        if self.followups is not None:
            await self.followups.user_returned(user_id)
        else:
            await self.storage.set_user(user_id, self.clock(), blocked=False)

    async def group(self, update: Update) -> None:
        chat = update.effective_chat
        if update.callback_query:
            await self._answer_query(update, None)
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
        locale = locale_from(self._language(update))
        markup = None
        if self.username:
            markup = InlineKeyboardMarkup([[InlineKeyboardButton(
                plain(render(locale, "btn.open_private")), url=f"https://t.me/{self.username}?start=group")]])
        try:
            await self.sender.call(None, "sendMessage", self._bot.send_message, chat_id=chat.id,
                                   text=render(locale, "group_pointer", username=self.username),
                                   parse_mode=ParseMode.HTML, reply_markup=markup)
        except (UserBlocked, BadRequest) as exc:
            log.info("could not post the private-chat pointer in a group: %s", exc)

    # ---- messages -----------------------------------------------------------------------

    async def text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user_id, language = update.effective_user.id, self._language(update)
        text = update.message.text
        case = await self.storage.active_case(user_id)
        if case is not None and case.status in CLOSED:
            await self.deliver(update, await self.conversation.add_note(
                user_id, text, language_code=language, update_id=update.update_id))
            return
        outcome = await self.conversation.handle(user_id, Text(text), language_code=language,
                                                 update_id=update.update_id)
        await self.deliver(update, outcome, answer=_short(text) if outcome.answered else None)

    async def command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        word, _, args = update.message.text.partition(" ")
        name, _, addressee = word[1:].partition("@")
        if addressee and self.username and addressee.lower() != self.username.lower():
            return
        name = name.lower()
        user_id, language = update.effective_user.id, self._language(update)
        conv = self.conversation
        if name in ENGINE_COMMANDS:
            if await self.storage.active_case(user_id) is None:
                if not await self._seen(update):
                    await self.deliver(update, Outcome(await conv.locale(user_id, language), [Reply("no_case", {})]))
                return
            outcome = await conv.handle(user_id, Command(ENGINE_COMMANDS[name]), language_code=language,
                                        update_id=update.update_id)
            await self.deliver(update, outcome)
            return
        seen = await self._mark(update)
        if seen == "done":
            return
        if seen == "again" and name in ("start", "new"):
            # Acted on, its replies lost: the welcome (for /start) and the open question, not a second case.
            replies = [Reply("welcome", {})] if name == "start" else []
            await self.deliver(update, Outcome(await conv.locale(user_id, language),
                                               replies + await conv.open_question(user_id)))
            return
        if name == "start":
            await self.deliver(update, await conv.start(user_id, language_code=language))
        elif name == "new":
            await self.deliver(update, await conv.new_case(user_id, language_code=language))
        elif name == "cases":
            await self.deliver(update, await conv.cases(user_id, language_code=language))
        elif name == "status":
            full = args.strip().lower() in ("full", "all", "全部", "完整")
            await self.deliver(update, await conv.status(user_id, language_code=language, full=full))
        elif name == "calendar":
            await self._send_calendar(update)
        elif name == "resolved":
            await self.deliver(update, await conv.resolve_prompt(user_id, language_code=language))
        elif name in ("remind", "timezone") and self.followups is not None:
            locale = await conv.locale(user_id, language)
            if name == "remind":
                outcome = await self.followups.remind(user_id, locale)
            else:
                outcome = await self.followups.set_timezone(user_id, args, locale)
            await self.deliver(update, outcome)
        elif name == "language":
            await conv.locale(user_id, language)
            outcome = await conv.set_language(user_id, args)
            if outcome.replies and outcome.replies[0].key == "language_set":
                outcome.replies += await conv.open_question(user_id)
            await self.deliver(update, outcome)
        elif name == "delete":
            await self._ask_delete(update)
        elif name == "export":
            await self._export(update)
        elif name == "escalate":
            await self._escalate(update, await self.storage.active_case(user_id), "c")
        elif name == "help":
            locale = await conv.locale(user_id, language)
            await self.deliver(update, Outcome(locale, [Reply("help_telegram", {})]))
        else:
            locale = await conv.locale(user_id, language)
            await self.deliver(update, Outcome(locale, [Reply("err.unknown_command", {})]))

    async def _ask_delete(self, update: Update) -> None:
        user_id = update.effective_user.id
        locale = await self.conversation.locale(user_id, self._language(update))
        nonce = secrets.token_hex(6)
        reply = Reply("delete_confirm", {}, (Button("delete:yes", "btn.delete_yes"), Button("delete:no", "btn.delete_no")))
        await self.deliver(update, Outcome(locale, [reply]), extra={"nonce": nonce}, remember={"delete": nonce})

    async def _export(self, update: Update) -> None:
        user_id, chat_id = update.effective_user.id, update.effective_chat.id
        conv = self.conversation
        locale = await conv.locale(user_id, self._language(update))
        data = await conv.export(user_id, language_code=self._language(update))
        stamp = self.clock().strftime("%Y%m%d-%H%M%S")
        documents = [
            (conv.export_json(data), f"refund-advisor-{stamp}.json", "export_json_caption"),
            (conv.export_markdown(data, locale), f"refund-advisor-{stamp}.md", "export_md_caption"),
        ]
        ics = await conv.export_calendar(user_id, locale)
        if ics is not None:
            documents.append((ics, f"refund-advisor-{stamp}.ics", "export_ics_caption"))
        try:
            for content, name, caption in documents:
                await self.sender.call(user_id, "sendDocument", self._bot.send_document, chat_id=chat_id,
                                       document=InputFile(content, filename=name), caption=render(locale, caption),
                                       parse_mode=ParseMode.HTML)
        except UserBlocked:
            pass

    async def evidence(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if await self._seen(update):
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
        if kind == "document" and message.document.file_name:
            text = f"{message.document.file_name}: {text}" if text else message.document.file_name
        outcome = await self.conversation.add_evidence(update.effective_user.id, kind, file_id=file_id, text=text,
                                                       language_code=self._language(update))
        await self.deliver(update, outcome)

    async def unsupported(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.message is None or await self._seen(update):
            return
        if update.message.text is None and update.message.caption is None and not update.message.effective_attachment \
                and (update.message.new_chat_members or update.message.left_chat_member or update.message.pinned_message):
            return      # service messages
        locale = await self.conversation.locale(update.effective_user.id, self._language(update))
        await self.deliver(update, Outcome(locale, [Reply("unsupported", {})]))

    async def edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_user is None or await self._seen(update):
            return
        locale = await self.conversation.locale(update.effective_user.id, self._language(update))
        await self.deliver(update, Outcome(locale, [Reply("edited_ignored", {})]))

    # ---- buttons ------------------------------------------------------------------------

    async def _answer_query(self, update: Update, notice: str | None) -> None:
        query = update.callback_query
        try:
            await self.sender.call(None, "answerCallbackQuery", query.answer, text=notice)
        except (TelegramError, UserBlocked) as exc:
            # A query older than about 15 minutes, or answered already (a redelivered update).
            log.debug("answerCallbackQuery failed: %s", exc)

    async def press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        user_id, language = query.from_user.id, self._language(update)
        claim = tg.parse_data(query.data)
        pressed = query.message if isinstance(query.message, Message) else None
        label = tg.label_of(pressed.reply_markup if pressed else None, query.data) or (claim.option if claim else "")
        handler = {"q": self._press_question, "c": self._press_case, "l": self._press_language,
                   "r": self._press_outcome, "x": self._press_delete, "n": self._press_nudge,
                   "m": self._press_remind, "e": self._press_escalate, "s": self._press_status,
                   "k": self._press_calendar}.get(claim.kind) if claim else None
        if claim and claim.kind in ("n", "m") and self.followups is None:
            handler = None
        if update.effective_chat is None:       # a button of a message sent in inline mode: none are ours
            handler = None
        if handler is None or not await handler(update, claim, label, pressed):
            locale = await self.conversation.locale(user_id, language)
            await self._answer_query(update, plain(render(locale, "stale_press")))

    async def _press_question(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        user_id = update.effective_user.id
        case = await self.storage.active_case(user_id)
        if case is None or case.id != claim.case_id or tg.question_token(case.dialog) != claim.token:
            return False
        option = claim.option
        if case.status in CLOSED and option != engine.NEW:     # a closed case answers no more questions
            return False
        if option.startswith("#"):
            state = DialogState.from_dict(case.dialog)
            options = [b.id for b in engine.ask(self.conversation.graph, state).buttons] + [engine.RESUME, engine.NEW]
            try:
                option = options[int(option[1:])]
            except (ValueError, IndexError):
                return False
        await self._answer_query(update, None)
        outcome = await self.conversation.handle(user_id, Press(option), language_code=self._language(update),
                                                 update_id=update.update_id)
        await self.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    async def _press_status(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        """/status's button: the whole timeline and the advice of the case it was shown for."""
        user_id = update.effective_user.id
        case = await self.storage.active_case(user_id)
        if case is None or case.id != claim.case_id:
            return False
        await self._answer_query(update, None)
        if not await self._seen(update):
            await self.deliver(update, await self.conversation.status(user_id, language_code=self._language(update),
                                                                      full=True))
        return True

    async def _press_calendar(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        user_id = update.effective_user.id
        case = await self.storage.active_case(user_id)
        if case is None or case.id != claim.case_id:
            return False
        await self._answer_query(update, None)
        if not await self._seen(update):
            await self._send_calendar(update)
        return True

    async def _send_calendar(self, update: Update) -> None:
        """The active case's deadlines as an .ics document, with a line saying what it is."""
        outcome = await self.conversation.calendar(update.effective_user.id, language_code=self._language(update))
        if not outcome.documents:
            await self.deliver(update, outcome)
            return
        caption = render(outcome.locale, outcome.replies[0].key, **outcome.replies[0].context)
        try:
            for name, content in outcome.documents:
                await self.sender.call(update.effective_user.id, "sendDocument", self._bot.send_document,
                                       chat_id=update.effective_chat.id, document=InputFile(content, filename=name),
                                       caption=caption, parse_mode=ParseMode.HTML)
        except UserBlocked:
            pass

    async def _press_case(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        user_id = update.effective_user.id
        if await self.storage.get_case(user_id, claim.case_id) is None:
            return False
        await self._answer_query(update, None)
        if await self._seen(update):
            return True
        outcome = await self.conversation.switch_case(user_id, claim.case_id, language_code=self._language(update))
        if outcome is not None:
            await self.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    async def _press_language(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        if claim.option not in LOCALES:
            return False
        await self._answer_query(update, None)
        if await self._seen(update):
            return True
        user_id = update.effective_user.id
        await self.conversation.locale(user_id, self._language(update))
        outcome = await self.conversation.set_language(user_id, claim.option)
        outcome.replies += await self.conversation.open_question(user_id)
        await self.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    async def _press_outcome(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        user_id = update.effective_user.id
        case = await self.storage.active_case(user_id)
        if case is None or case.id != claim.case_id or case.status in CLOSED:
            return False
        await self._answer_query(update, None)
        if await self._seen(update):
            return True
        outcome = await self.conversation.resolve(user_id, case.id, claim.option, language_code=self._language(update))
        if outcome is not None:
            await self.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    async def _press_nudge(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        """An answer to a nudge: for the presser's own open case, on its latest nudge only."""
        user_id, chat_id = update.effective_user.id, update.effective_chat.id
        locale = await self.conversation.locale(user_id, self._language(update))
        outcome = await self.followups.answer(user_id, claim.case_id, int(claim.token), claim.option, locale,
                                              update_id=update.update_id)
        if outcome is None:
            return False
        await self._answer_query(update, None)
        if outcome.duplicate:
            return True
        try:
            if pressed is not None:
                await self._retire(user_id, chat_id, pressed.message_id, pressed.text_html if pressed.text else None,
                                   label, locale)
            if claim.option == "escalate":      # whom the complaint is for comes next, not a pointer to /escalate
                outcome.replies = [r for r in outcome.replies if r.key != "remind.escalate_hint"]
            # The acknowledgement goes under the nudge; a question open in the chat keeps its keyboard.
            for text, _ in await self._messages(user_id, outcome, {}):
                await self._send(user_id, chat_id, text)
        except UserBlocked:
            log.info("user blocked the bot; the acknowledgement of a nudge answer is not sent")
            return True
        if claim.option == "escalate":
            await self._escalate(update, await self.storage.get_case(user_id, claim.case_id), "n")
        return True

    async def _press_remind(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        """A /remind button (cadence, pause, resume) for one of the presser's open cases."""
        user_id = update.effective_user.id
        locale = await self.conversation.locale(user_id, self._language(update))
        outcome = await self.followups.remind_choice(user_id, claim.case_id, claim.option, locale,
                                                     update_id=update.update_id)
        if outcome is None:
            return False
        await self._answer_query(update, None)
        await self.deliver(update, outcome, answer=label, pressed=pressed)
        return True

    # ---- /escalate ----------------------------------------------------------------------

    def _stage(self, case: Case) -> tuple[dict, str, str | None]:
        """The case's slots, and the category and rung complaints are chosen for: the plan's when
        the case has one, else the case's category."""
        slots = engine.active_slots(self.conversation.graph, case.slots)
        plan = case.plan or {}
        return slots, str(plan.get("category") or case.category or "other"), plan.get("rung")

    async def _escalate(self, update: Update, case: Case | None, origin: str) -> None:
        """Whom the complaint is for (only the recipients that fit, the recommended one first); or
        what is missing first. `origin`: "c" (/escalate) or "n" (a nudge's Escalate button)."""
        user_id = update.effective_user.id
        locale = await self.conversation.locale(user_id, self._language(update))
        if case is None:
            replies = [Reply("escalate.no_case", {})]
        elif case.status in CLOSED:
            replies = [Reply("escalate.closed", {})]
        else:
            slots, category, rung = self._stage(case)
            missing = needed(slots)
            if case.status == "intake" or missing:
                question = await self.conversation.open_question(user_id) if case.status == "intake" else []
                resume = (Button(engine.RESUME, "btn.resume"),) if case.status == "intake" and not question else ()
                replies = [Reply("escalate.missing", {"missing": list(missing)}, resume), *question]
            else:
                buttons = tuple(Button(f"esc:{r}", f"complaint.recipient.{r}")
                                for r in recipients(slots, category, rung))
                replies = [Reply("escalate.choose", {}, buttons)]
        await self.deliver(update, Outcome(locale, replies, case.id if case else None), extra={"origin": origin})

    async def _press_escalate(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        """e:<case>:<recipient>:_:<origin> (then the letter's language) and e:<case>:<recipient>:<zh|en>:<origin>
        (then the draft): for one of the presser's own open, advised cases, a recipient that fits it."""
        user_id, chat_id = update.effective_user.id, update.effective_chat.id
        letter, _, origin = claim.option.partition(":")
        if origin not in ("c", "n") or (letter != "_" and letter not in LOCALES):
            return False
        case = await self.storage.get_case(user_id, claim.case_id)
        if case is None or case.status in CLOSED or case.status == "intake":
            return False
        slots, category, rung = self._stage(case)
        if needed(slots) or claim.token not in recipients(slots, category, rung):
            return False
        live = (await self.storage.ui_state(user_id)).get("kb") or {}
        if pressed is None or live.get("id") != pressed.message_id:     # only the keyboard sent last
            return False
        locale = await self.conversation.locale(user_id, self._language(update))
        if letter == "_":
            await self._answer_query(update, None)
            if await self._seen(update):
                return True
            reply = Reply("escalate.language", {"recipient": claim.token},
                          (Button("esclang:en", "btn.letter.en"), Button("esclang:zh", "btn.letter.zh"),
                           Button("esclang:zh-Hant", "btn.letter.zh_hant")))
            await self.deliver(update, Outcome(locale, [reply], case.id), answer=label, pressed=pressed,
                               extra={"origin": origin, "recipient": claim.token})
            return True

        user = await self.storage.get_user(user_id)
        now = self.clock()
        if self.followups is not None:
            zone = self.followups.zone(user, case)
        else:
            zone = self.conversation._zone(user.time_zone if user else None, case)
        timeline = await self.storage.timeline(user_id, case.id)
        evidence = await self.storage.evidence(user_id, case.id)
        try:
            made = complaint_draft(slots, category, claim.token, letter, timeline, evidence,
                                   now.astimezone(zone).date(), rung=rung)
        except ValueError:
            return False
        message, text, markdown = render_draft(made)
        await self._answer_query(update, None)
        if not await self._record_escalation(user_id, case.id, claim.token, letter, origin, now, update.update_id):
            return True         # acted on already (a redelivered press), or the case went away
        try:
            if pressed is not None:
                await self._retire(user_id, chat_id, pressed.message_id, pressed.text_html if pressed.text else None,
                                   label, locale)
                ui = await self.storage.ui_state(user_id)
                if (ui.get("kb") or {}).get("id") == pressed.message_id:
                    await self.storage.set_ui_state(user_id, {**ui, "kb": None}, self.clock())
            await self._send(user_id, chat_id, message)
            stem = f"complaint-{case.id}-{claim.token}-{letter}"
            for content, ext, caption in ((text, "txt", "escalate.caption_txt"), (markdown, "md", "escalate.caption_md")):
                await self.sender.call(user_id, "sendDocument", self._bot.send_document, chat_id=chat_id,
                                       document=InputFile(content.encode("utf-8"), filename=f"{stem}.{ext}"),
                                       caption=render(locale, caption), parse_mode=ParseMode.HTML)
            await self._send(user_id, chat_id, render(locale, "escalate.recorded"))
        except UserBlocked:
            log.info("user blocked the bot; the complaint draft is not sent")
        return True

    async def _record_escalation(self, user_id: int, case_id: int, recipient: str, letter: str, origin: str,
                                 now: datetime, update_id: int) -> bool:
        """The escalation on the timeline, written once per press. From /escalate, the plan records
        it too (dialogs.followup.apply_answer "escalate": status escalated, cadence restarted, the
        rung kept); from a nudge's Escalate button the plan has recorded it already, so the draft
        is noted as `complaint_draft`."""
        extra = {"recipient": recipient, "letter_locale": letter}
        followups = self.followups

        def decide(user, case: Case) -> tuple[PlanChange, PlanChange] | None:
            if case.status in CLOSED:
                return None
            plan = case.plan
            if origin == "c" and plan and followups is not None:
                plan, events, effects = apply_answer(plan, "escalate", now)
                events = tuple(TimelineEvent(e.kind, {**e.data, **extra}) for e in events if e.kind == "escalation")
                effects = tuple(e for e in effects if e.kind != "draft_complaint")
                change = followups._effects(user, case, plan, effects, now, events)
                return change, change
            data = {**extra, **({"rung": plan.get("rung"), "path": plan.get("path")} if plan else {})}
            if origin == "n":
                change = PlanChange(events=(TimelineEvent("complaint_draft", data),))
            else:
                change = PlanChange(events=(TimelineEvent("escalation", data),),
                                    status="escalated" if case.status == "advised" else None)
            return change, change

        try:
            result = await self.storage.change_case(user_id, case_id, now, decide, update_id=update_id)
        except Refused:
            return False
        if result is DUPLICATE:
            return False
        if followups is not None:
            followups.scheduled(result.nudges)
        return True

    async def _press_delete(self, update: Update, claim: tg.Press, label: str, pressed: Message | None) -> bool:
        user_id, chat_id = update.effective_user.id, update.effective_chat.id
        ui = await self.storage.ui_state(user_id)
        if not ui.get("delete") or (claim.option != "no" and claim.option != ui["delete"]):
            return False
        locale = await self.conversation.locale(user_id, self._language(update))
        await self._answer_query(update, None)
        if claim.option == "no":
            replies = [Reply("delete_kept", {}), *await self.conversation.open_question(user_id)]
            await self.deliver(update, Outcome(locale, replies), answer=label, pressed=pressed)
            return True
        await self.storage.delete_user(user_id)
        # Nothing is written from here on: the user has no row left.
        try:
            if pressed is not None:
                await self.sender.call(None, "editMessageText", self._bot.edit_message_text, chat_id=chat_id,
                                       message_id=pressed.message_id, text=render(locale, "deleted"),
                                       parse_mode=ParseMode.HTML)
            else:
                await self.sender.call(None, "sendMessage", self._bot.send_message, chat_id=chat_id,
                                       text=render(locale, "deleted"), parse_mode=ParseMode.HTML)
        except (BadRequest, UserBlocked) as exc:
            log.info("could not confirm the erasure: %s", exc)
        return True

    # ---- other updates ------------------------------------------------------------------

    async def membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A private chat's user blocked (kicked) or unblocked the bot."""
        member = update.my_chat_member
        status = member.new_chat_member.status
        if status == "kicked":
            await self.storage.block_user(member.from_user.id, self.clock())
        elif status == "member":
            known = await self.storage.get_user(member.from_user.id)
            if known and known.blocked:
                await self._unblocked(member.from_user.id)

    async def inline(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Inline mode is not offered: an empty answer with a button to a private chat."""
        locale = locale_from(self._language(update))
        button = InlineQueryResultsButton(plain(render(locale, "inline_button")), start_parameter="inline")
        try:
            await self.sender.call(None, "answerInlineQuery", update.inline_query.answer, results=[],
                                   button=button, cache_time=300, is_personal=True)
        except (TelegramError, UserBlocked) as exc:
            log.info("answerInlineQuery failed: %s", exc)

    async def error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if transient(context.error):
            # The Bot API or the database failing: the update is delivered again (bot.telegram.acks).
            log.warning("could not finish an update: %s", type(context.error).__name__)
            return
        log.error("error while handling an update", exc_info=context.error)
        if not isinstance(update, Update) or update.effective_chat is None \
                or update.effective_chat.type != ChatType.PRIVATE:
            return
        if update.callback_query:
            await self._answer_query(update, None)
        try:
            locale = locale_from(self._language(update))
            await self.sender.call(update.effective_user.id if update.effective_user else None, "sendMessage",
                                   self._bot.send_message, chat_id=update.effective_chat.id,
                                   text=render(locale, "error_generic"), parse_mode=ParseMode.HTML)
        except Exception as exc:     # the error handler must not fail in its turn
            log.info("could not tell the user about the error: %s", exc)
