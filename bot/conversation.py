"""One turn of the conversation, shared by every shell (terminal, Telegram).

load case + dialog state -> dialogs.engine.step(state, event, now) -> save state + timeline
-> replies (data) for the shell to render. The save is committed before any reply leaves.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable

from bot.outcome import Document, Outcome, ReplyTo, outbox_row
from bot.reminders import Reminders, with_slots
from bot.storage import AlreadyDone, Case, OutboxRow, StaleTurn, Storage, User
from dialogs import engine, timeline
from dialogs.advice import advise, case_context
from dialogs.engine import Command, DialogState, Event, Press, Text
from dialogs.graph import load as load_graph
from dialogs.model import LOCALES, Button, Reply, TimelineEvent
from dialogs.zones import resolve_zone
from messages import locale_from, locale_named
from messages import casefile
from messages.export import deadline_rows, export_markdown, timeline_sentences

RESUME, NEW = engine.RESUME, engine.NEW

# A turn that lost a race with another instance is computed again from the case as it is now.
_TURN_ATTEMPTS = 3


def _event_record(event: Event) -> TimelineEvent:
    if isinstance(event, Text):
        return TimelineEvent("said", {"text": event.text})
    if isinstance(event, Press):
        return TimelineEvent("pressed", {"option": event.option})
    return TimelineEvent("command", {"name": event.name})


class Conversation:
    def __init__(self, storage: Storage, clock: Callable[[], datetime] | None = None,
                 default_zone: tzinfo = timezone.utc, reminders: Reminders | None = None):
        self.storage = storage
        self.graph = load_graph()
        self.graph_types = {n.slot: n.type for n in self.graph.nodes.values() if n.slot}
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.default_zone = default_zone
        # Reminders (Telegram): a case's plan starts with its advice. None: no reminders
        # (the terminal chat cannot deliver them).
        self.reminders = reminders

    # ---- helpers ------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must give time-zone aware datetimes")
        return now

    def zone(self, user: User | None, case: Case | None) -> tzinfo:
        """The zone the user's "today" is in (dialogs.zones.resolve_zone)."""
        return resolve_zone(user.time_zone if user else None, case.slots.get("jurisdiction") if case else None,
                            self.default_zone)[0]

    async def locale(self, user_id: int, language_code: str | None = None) -> str:
        seen = locale_from(language_code) if language_code else None
        user = await self.storage.ensure_user(user_id, self._now(), language=None, seen_locale=seen)
        if user.language in LOCALES:
            return user.language
        return locale_from(language_code)

    async def _new_case(self, user_id: int) -> Case:
        return await self.storage.create_case(user_id, engine.start(self.graph).to_dict(), self._now())

    # ---- turns --------------------------------------------------------------------------

    async def handle(self, user_id: int, event: Event, *, language_code: str | None = None,
                     update_id: int | None = None, reply_to: ReplyTo | None = None) -> Outcome:
        """Feed one event to the user's active case (made if there is none). `reply_to`: the
        turn's replies are written to the outbox in the turn's own transaction (`queued`)."""
        locale = await self.locale(user_id, language_code)
        case = await self.storage.active_case(user_id)
        if case is None:
            if update_id is not None and await self.storage.seen_update(update_id):
                return Outcome.nothing(locale)
            case = await self._new_case(user_id)
            if isinstance(event, (Press, Command)) or (isinstance(event, Text) and not event.text.strip()):
                # Nothing to answer yet: open the first question.
                return Outcome(locale, [engine.ask(self.graph, DialogState.from_dict(case.dialog))], case.id)
        for _ in range(_TURN_ATTEMPTS - 1):
            try:
                return await self._step(user_id, case, event, locale, update_id, reply_to)
            except StaleTurn:
                # Another instance answered this user meanwhile: the turn again, from where it left the case.
                case = await self.storage.get_case(user_id, case.id) or case
        return await self._step(user_id, case, event, locale, update_id, reply_to)

    async def _step(self, user_id: int, case: Case, event: Event, locale: str, update_id: int | None,
                    reply_to: ReplyTo | None) -> Outcome:
        user = await self.storage.get_user(user_id)
        now = self._now().astimezone(self.zone(user, case))
        state = DialogState.from_dict(case.dialog)
        result = engine.step(state, event, now, self.graph)
        status = category = confidence = None
        for effect in result.effects:
            if effect.kind == "advised":
                status, category, confidence = "advised", effect.data["category"], effect.data["confidence"]
        change = None
        if status == "advised" and self.reminders is not None:
            # The end of the intake: the case's reminders start, written with this turn.
            change = self.reminders.start(user, with_slots(case, result.state.slots, category), str(category), now)
        # A typed answer was taken when the case moved on from the question it answered.
        outcome = Outcome(locale, list(result.replies), case.id,
                          answered=result.state.node != state.node or result.state.pending != state.pending)
        fresh = engine.start(self.graph).to_dict() if any(e.kind == "new_case" for e in result.effects) else None

        def replies(opened: int | None) -> OutboxRow | None:
            """Called inside the turn's transaction: the new case's first question added, and the
            replies written down with the turn."""
            if opened is not None and fresh is not None:
                outcome.case_id = opened
                outcome.replies += [Reply("case_opened", {"case_id": opened}),
                                    engine.ask(self.graph, DialogState.from_dict(fresh))]
            if reply_to is None:
                return None
            outcome.queued = True
            return outbox_row(user_id, outcome, reply_to)
        try:
            await self.storage.save_turn(
                user_id, case.id, result.state.to_dict(), (_event_record(event), *result.events), now,
                status=status, category=category, confidence=confidence, update_id=update_id, change=change,
                read=case.dialog, fresh=fresh, outbox=replies)
        except AlreadyDone:
            return Outcome.nothing(locale)
        if change is not None and self.reminders is not None:
            self.reminders.scheduled(change.nudges)
        return outcome

    # ---- commands -----------------------------------------------------------------------

    async def start(self, user_id: int, *, language_code: str | None = None) -> Outcome:
        """Welcome; then the open question of the active case, or a first case."""
        locale = await self.locale(user_id, language_code)
        case = await self.storage.active_case(user_id)
        if case is None:
            case = await self._new_case(user_id)
            return Outcome(locale, [Reply("welcome", {}), engine.ask(self.graph, DialogState.from_dict(case.dialog))],
                           case.id)
        state = DialogState.from_dict(case.dialog)
        if case.status == "intake":
            return Outcome(locale, [Reply("resume_offer", {"case_id": case.id, "facts": engine.facts(self.graph, state.slots)},
                                          (Button(RESUME, "btn.resume"), Button(NEW, "btn.new")))], case.id)
        return Outcome(locale, [Reply("welcome_back", {"case_id": case.id, "category": case.category or "other",
                                                       "status": case.status},
                                      (Button(NEW, "btn.new"),))], case.id)

    async def new_case(self, user_id: int, *, language_code: str | None = None) -> Outcome:
        locale = await self.locale(user_id, language_code)
        case = await self._new_case(user_id)
        return Outcome(locale, [Reply("case_opened", {"case_id": case.id}),
                                engine.ask(self.graph, DialogState.from_dict(case.dialog))], case.id)

    STATUS_ENTRIES = 5      # the last entries /status shows; its button shows them all

    async def status(self, user_id: int, *, language_code: str | None = None, full: bool = False) -> Outcome:
        """The active case on one screen (facts, last entries, next deadline and reminder, a button
        for the rest); `full`: the whole timeline and the advice."""
        locale = await self.locale(user_id, language_code)
        case = await self.storage.active_case(user_id)
        if case is None:
            return Outcome(locale, [Reply("no_case", {})])
        view = await self.case_view(user_id, case)
        base = {"case_id": case.id, "status": case.status, "facts": view["facts"], "zone": view["zone_name"]}
        entries = view["timeline"]
        result = view["result"]
        if full:
            replies = [Reply("status_full", {**base, "timeline": entries})]
        else:
            context = {**base, "timeline": entries[-self.STATUS_ENTRIES:],
                       "earlier": max(0, len(entries) - self.STATUS_ENTRIES),
                       "next_deadline": timeline.next_deadline(result["advice"]["deadlines"]) if result else None,
                       "next_reminder": await self._next_reminder(user_id, case, view["zone"]),
                       "paused": (case.plan or {}).get("status") == "paused",
                       # In the questions the open question keeps the one live keyboard: /status full is said.
                       "button": result is not None}
            buttons = (Button(f"status:{case.id}", "btn.status_full"),) if result is not None else ()
            replies = [Reply("status", context, buttons)]
        if result is None:
            replies.append(engine.ask(self.graph, DialogState.from_dict(case.dialog)))
        elif full:
            replies.append(engine.advice_reply(result))
        return Outcome(locale, replies, case.id)

    async def case_view(self, user_id: int, case: Case) -> dict[str, Any]:
        """What the status, the export and the calendar show of a case: its facts, its timeline in
        the user's zone, and (after the intake) the verdict with the advice it follows now."""
        user = await self.storage.get_user(user_id)
        zone = self.zone(user, case)
        today = self._now().astimezone(zone).date()
        state = DialogState.from_dict(case.dialog)
        events = await self.storage.timeline(user_id, case.id)
        result = None
        if case.status != "intake":
            result = engine.verdict_of(self.graph, state, today)
            plan_category = (case.plan or {}).get("category")
            if plan_category and plan_category != result["classification"]["category"]:
                # The follow-ups moved the case to another path (asked to pay more: fraud): its advice.
                slots = engine.active_slots(self.graph, state.slots)
                result = {**result, "advice": advise(slots, plan_category, today).context(),
                          "case": case_context(slots, plan_category, today)}
        return {"zone": zone, "zone_name": timeline.zone_label(zone), "today": today,
                "facts": engine.facts(self.graph, state.slots), "result": result,
                "timeline": timeline.entries(events, zone, self.graph_types)}

    async def calendar(self, user_id: int, *, language_code: str | None = None) -> Outcome:
        """The active case's deadlines as an iCalendar file (in `Outcome.documents`)."""
        locale = await self.locale(user_id, language_code)
        case = await self.storage.active_case(user_id)
        if case is None:
            return Outcome(locale, [Reply("no_case", {})])
        if case.status == "intake":
            return Outcome(locale, [Reply("calendar.intake", {"case_id": case.id})], case.id)
        view = await self.case_view(user_id, case)
        content, count = self.calendar_file(locale, [(case.id, view)])
        if content is None:
            return Outcome(locale, [Reply("calendar.none", {"case_id": case.id})], case.id)
        said = Reply("calendar.sent", {"case_id": case.id, "count": count, "zone": view["zone_name"]})
        return Outcome(locale, [said], case.id, documents=[Document(f"refund-advisor-case-{case.id}.ics", content, said)])

    def calendar_file(self, locale: str, views: list[tuple[int, dict[str, Any]]]) -> tuple[bytes | None, int]:
        """The deadlines ahead of these cases (id, case_view) as one .ics, and how many; None if none."""
        if not views:
            return None, 0
        return casefile.calendar_file(locale, [(case_id, view["result"]) for case_id, view in views],
                             zone_name=views[0][1]["zone_name"], now=self._now())

    async def _next_reminder(self, user_id: int, case: Case, zone: tzinfo) -> dict[str, str] | None:
        if not case.plan or case.status in ("resolved", "abandoned"):
            return None
        pending = await self.storage.followups(user_id, case.id, ("pending",))
        if not pending:
            return None
        at = pending[0].due_at.astimezone(zone)
        return {"date": at.date().isoformat(), "time": at.strftime("%H:%M")}

    async def set_language(self, user_id: int, name: str) -> Outcome:
        language = locale_named(name)
        if language is None or language not in LOCALES:
            locale = await self.locale(user_id)
            return Outcome(locale, [Reply("language_choose", {}, (Button("lang:en", "btn.lang_en"),
                                                                   Button("lang:zh", "btn.lang_zh"),
                                                                   Button("lang:zh-Hant", "btn.lang_zh_hant")))])
        await self.storage.ensure_user(user_id, self._now())
        await self.storage.set_user(user_id, self._now(), language=language)
        return Outcome(language, [Reply("language_set", {})])

    async def export(self, user_id: int, *, language_code: str | None = None) -> dict[str, Any]:
        """Every case of the user with its timeline (each entry also as the sentence /status shows,
        at the user's local time) and evidence, as plain data."""
        locale = await self.locale(user_id, language_code)
        cases = []
        for case in await self.storage.list_cases(user_id):
            view = await self.case_view(user_id, case)
            events = await self.storage.timeline(user_id, case.id)
            cases.append({
                "id": case.id, "status": case.status, "category": case.category, "confidence": case.confidence,
                "created_at": case.created_at, "updated_at": case.updated_at, "facts": dict(case.slots),
                "time_zone": view["zone_name"],
                "timeline": [{"at": e.at, "kind": e.kind, "data": e.data} for e in events],
                "timeline_text": timeline_sentences(locale, view["timeline"]),
                "deadlines": deadline_rows(locale, view["result"]["advice"]["deadlines"] if view["result"] else []),
                "evidence": [{"kind": v.kind, "file_id": v.file_id, "text": v.text, "at": v.at}
                             for v in await self.storage.evidence(user_id, case.id)],
            })
        return {"user_id": user_id, "exported_at": self._now().isoformat(timespec="seconds"), "cases": cases}

    async def export_calendar(self, user_id: int, locale: str) -> bytes | None:
        """The deadlines ahead of the user's open cases, as one .ics (None: none)."""
        views = [(case.id, await self.case_view(user_id, case)) for case in await self.storage.list_cases(user_id)
                 if case.status in ("advised", "escalated")]
        return self.calendar_file(locale, views)[0] if views else None

    @staticmethod
    def export_json(data: dict[str, Any]) -> bytes:
        return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")

    # ---- more commands (used by the Telegram shell) ---------------------------------------

    CASE_LIST_MAX = 20
    OUTCOMES = ("refunded", "partial", "none")

    async def cases(self, user_id: int, *, language_code: str | None = None) -> Outcome:
        """The user's cases (the latest ones), with their status, and a button to switch to each other one."""
        locale = await self.locale(user_id, language_code)
        cases = (await self.storage.list_cases(user_id))[-self.CASE_LIST_MAX:]
        if not cases:
            return Outcome(locale, [Reply("no_case", {})])
        active = await self.storage.active_case(user_id)
        active_id = active.id if active else None
        items = [{"id": c.id, "status": c.status, "category": c.category, "merchant": c.slots.get("merchant"),
                  "problem": c.slots.get("problem"), "created": c.created_at[:10], "active": c.id == active_id}
                 for c in reversed(cases)]
        buttons = tuple(Button(f"case:{c['id']}", "btn.case", c) for c in items if not c["active"])
        return Outcome(locale, [Reply("cases_list", {"cases": items}, buttons)], active_id)

    async def switch_case(self, user_id: int, case_id: int, *, language_code: str | None = None) -> Outcome | None:
        """Make one of the user's own cases the active one and show it; None if it is not theirs."""
        if not await self.storage.set_active_case(user_id, case_id, self._now()):
            return None
        shown = await self.status(user_id, language_code=language_code)
        shown.replies.insert(0, Reply("case_switched", {"case_id": case_id}))
        return shown

    async def resolve_prompt(self, user_id: int, *, language_code: str | None = None) -> Outcome:
        """Ask how the active case ended."""
        locale = await self.locale(user_id, language_code)
        case = await self.storage.active_case(user_id)
        if case is None:
            return Outcome(locale, [Reply("no_case", {})])
        buttons = tuple(Button(f"outcome:{o}", f"opt.outcome.{o}") for o in self.OUTCOMES)
        return Outcome(locale, [Reply("resolved_ask", {"case_id": case.id, "status": case.status}, buttons)], case.id)

    async def resolve(self, user_id: int, case_id: int, outcome: str, *, language_code: str | None = None) -> Outcome | None:
        """Close one of the user's cases with its outcome; None if the case is not theirs."""
        if outcome not in self.OUTCOMES:
            return None
        locale = await self.locale(user_id, language_code)
        status = "abandoned" if outcome == "none" else "resolved"
        now = self._now()
        case = await self.storage.get_case(user_id, case_id)
        if case is None:
            return None
        plan = None
        if case.plan and self.reminders is not None:
            plan = self.reminders.close_plan(case.plan, status, now)
        # Its nudges are cancelled in the same transaction.
        done = await self.storage.set_status(user_id, case_id, status, now,
                                             TimelineEvent("resolved", {"outcome": outcome}), plan=plan)
        if not done:
            return None
        return Outcome(locale, [Reply("resolved_done", {"case_id": case_id, "outcome": outcome})], case_id)

    async def add_evidence(self, user_id: int, kind: str, *, file_id: str | None = None, text: str | None = None,
                           language_code: str | None = None) -> Outcome:
        """A photo, document or forwarded message, recorded on the active case's timeline."""
        locale = await self.locale(user_id, language_code)
        case = await self.storage.active_case(user_id)
        if case is None:
            return Outcome(locale, [Reply("evidence_no_case", {})])
        await self.storage.add_evidence(user_id, case.id, kind, self._now(), file_id=file_id, text=text)
        return Outcome(locale, [Reply("evidence_saved", {"case_id": case.id, "kind": kind})], case.id)

    async def add_note(self, user_id: int, text: str, *, language_code: str | None = None,
                       update_id: int | None = None, reply_to: ReplyTo | None = None) -> Outcome:
        """Text for a closed case: kept on its timeline as a note, nothing asked; the note, the
        update and (`reply_to`) the reply in one transaction."""
        locale = await self.locale(user_id, language_code)
        case = await self.storage.active_case(user_id)
        if case is None:
            return Outcome(locale, [Reply("no_case", {})])
        outcome = Outcome(locale, [Reply("case_closed_note", {"case_id": case.id, "status": case.status})], case.id,
                          queued=reply_to is not None)
        try:
            await self.storage.add_event(user_id, case.id, TimelineEvent("note", {"text": text}), self._now(),
                                         update_id=update_id,
                                         outbox=outbox_row(user_id, outcome, reply_to) if reply_to else None)
        except AlreadyDone:
            return Outcome.nothing(locale)
        return outcome

    def export_markdown(self, data: dict[str, Any], locale: str) -> bytes:
        """The export as a readable Markdown document in the user's language (messages.export)."""
        return export_markdown(data, locale, self.graph)

    async def open_question(self, user_id: int) -> list[Reply]:
        """The question open in the active case, to ask again after an aside (language, /delete kept)."""
        case = await self.storage.active_case(user_id)
        if case is None or case.status != "intake":
            return []
        state = DialogState.from_dict(case.dialog)
        return [] if state.paused else [engine.ask(self.graph, state)]
