"""/escalate: a complaint draft for a case. Whom it is for (only the recipients that fit, the
recommended one first), then the letter's language, then the draft (dialogs.complaint, rendered
by messages.complaint) as a message and as .txt and .md documents, recorded on the timeline.

Each step answers with an Outcome, as the reminder answers do; the Telegram side
(bot/telegram/escalation.py) checks the button and sends it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Mapping

from bot.conversation import Conversation
from bot.outcome import Document, Outcome, ReplyTo, outbox_row
from bot.reminders import Reminders
from bot.storage import CLOSED_STATUSES, AlreadyDone, Case, OutboxRow, PlanChange, Refused, Storage, User
from dialogs import engine
from dialogs.complaint import draft as complaint_draft, needed, recipients
from dialogs.followup import apply_answer
from dialogs.model import LOCALES, Button, Reply, Slots, TimelineEvent
from messages.complaint import render_draft

ORIGINS = ("c", "n")    # c: the /escalate command, n: a nudge's Escalate button


class Escalation:
    def __init__(self, storage: Storage, conversation: Conversation, reminders: Reminders | None,
                 clock: Callable[[], datetime]):
        self.storage = storage
        self.conversation = conversation
        self.reminders = reminders
        self.clock = clock

    def stage(self, case: Case) -> tuple[Slots, str, str | None]:
        """The case's slots, and the category and rung complaints are chosen for: the reminder
        plan's when the case has one, else the case's category."""
        slots = engine.active_slots(self.conversation.graph, case.slots)
        plan: Mapping[str, Any] = case.plan or {}
        return slots, str(plan.get("category") or case.category or "other"), plan.get("rung")

    async def choose(self, user_id: int, locale: str, case: Case | None) -> Outcome:
        """Whom the complaint is for; or what is missing first."""
        if case is None:
            replies = [Reply("escalate.no_case", {})]
        elif case.status in CLOSED_STATUSES:
            replies = [Reply("escalate.closed", {})]
        else:
            slots, category, rung = self.stage(case)
            missing = needed(slots)
            if case.status == "intake" or missing:
                question = await self.conversation.open_question(user_id) if case.status == "intake" else []
                resume = (Button(engine.RESUME, "btn.resume"),) if case.status == "intake" and not question else ()
                replies = [Reply("escalate.missing", {"missing": list(missing)}, resume), *question]
            else:
                buttons = tuple(Button(f"esc:{r}", f"complaint.recipient.{r}")
                                for r in recipients(slots, category, rung))
                replies = [Reply("escalate.choose", {}, buttons)]
        return Outcome(locale, replies, case.id if case else None)

    async def fits(self, user_id: int, case_id: int, recipient: str, letter: str | None, origin: str) -> Case | None:
        """The case, if a press for it is acceptable: the presser's own open, advised case, a
        recipient that fits it, a letter language we write in."""
        if origin not in ORIGINS or (letter is not None and letter not in LOCALES):
            return None
        case = await self.storage.get_case(user_id, case_id)
        if case is None or case.status in CLOSED_STATUSES or case.status == "intake":
            return None
        slots, category, rung = self.stage(case)
        if needed(slots) or recipient not in recipients(slots, category, rung):
            return None
        return case

    @staticmethod
    def ask_language(locale: str, case: Case, recipient: str) -> Outcome:
        reply = Reply("escalate.language", {"recipient": recipient},
                      (Button("esclang:en", "btn.letter.en"), Button("esclang:zh", "btn.letter.zh"),
                       Button("esclang:zh-Hant", "btn.letter.zh_hant")))
        return Outcome(locale, [reply], case.id)

    async def draft(self, user_id: int, locale: str, case: Case, recipient: str, letter: str, origin: str,
                    update_id: int, reply_to: ReplyTo | None = None) -> Outcome | None:
        """The draft, recorded on the timeline once (a redelivered press: Outcome.nothing). None if
        no draft can be made for this recipient. `reply_to`: the draft is written to the outbox with
        the record (`queued`)."""
        user = await self.storage.get_user(user_id)
        now = self.clock()
        slots, category, rung = self.stage(case)
        timeline = await self.storage.timeline(user_id, case.id)
        evidence = await self.storage.evidence(user_id, case.id)
        today = now.astimezone(self.conversation.zone(user, case)).date()
        try:
            made = complaint_draft(slots, category, recipient, letter, timeline, evidence, today, rung=rung)
        except ValueError:
            return None
        message, text, markdown = render_draft(made)
        stem = f"complaint-{case.id}-{recipient}-{letter}"
        documents = [Document(f"{stem}.txt", text.encode("utf-8"), "escalate.caption_txt"),
                     Document(f"{stem}.md", markdown.encode("utf-8"), "escalate.caption_md")]
        outcome = Outcome(locale, [Reply("escalate.recorded", {})], case.id, letter=message, documents=documents,
                          queued=reply_to is not None)
        row = outbox_row(user_id, outcome, reply_to) if reply_to is not None else None
        recorded = await self._record(user_id, case.id, recipient, letter, origin, now, update_id, row)
        if recorded is None:
            return None         # the case was closed meanwhile: the press is stale
        return outcome if recorded else Outcome.nothing(locale)

    async def _record(self, user_id: int, case_id: int, recipient: str, letter: str, origin: str,
                      now: datetime, update_id: int, row: OutboxRow | None) -> bool | None:
        """The escalation on the timeline, written once per press (with `row`, its replies); False
        if it was already (a redelivered press), None if the case was closed meanwhile. From /escalate, the plan records it too
        (dialogs.followup.apply_answer "escalate": status escalated, cadence restarted, the rung
        kept); from a nudge's Escalate button the plan has recorded it already, so the draft is
        noted as `complaint_draft`."""
        extra = {"recipient": recipient, "letter_locale": letter}
        reminders = self.reminders

        def decide(user: User, case: Case) -> tuple[PlanChange, PlanChange] | None:
            if case.status in CLOSED_STATUSES:
                return None
            plan = case.plan
            if origin == "c" and plan and reminders is not None:
                plan, events, effects = apply_answer(plan, "escalate", now)
                events = tuple(TimelineEvent(e.kind, {**e.data, **extra}) for e in events if e.kind == "escalation")
                effects = tuple(e for e in effects if e.kind != "draft_complaint")
                change = reminders.plan_change(user, case, plan, effects, now, events)
                return change, change
            data = {**extra, **({"rung": plan.get("rung"), "path": plan.get("path")} if plan else {})}
            if origin == "n":
                change = PlanChange(events=(TimelineEvent("complaint_draft", data),))
            else:
                change = PlanChange(events=(TimelineEvent("escalation", data),),
                                    status="escalated" if case.status == "advised" else None)
            return change, change

        try:
            result = await self.storage.change_case(user_id, case_id, now, decide, update_id=update_id,
                                                    outbox=lambda _: row)
        except AlreadyDone:
            return False
        except Refused:
            return None
        if reminders is not None:
            reminders.scheduled(result.nudges)
        return True
