"""The reminder service: the shell side of the pure reminder plan (dialogs/followup.py).

The plan state lives with its case (cases.plan), each nudge to send is a row (followups); every
change of a plan and the nudges it implies are written in one transaction with the turn that
caused it. This module turns the pure plan's effects into those writes and answers nudge
buttons; it tells the sender of nudges (bot/dispatcher.py) when one was scheduled, so that it
can wake up earlier. /remind and /timezone are bot/remind_commands.py.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, Iterable, Mapping, Sequence, cast

from bot.outcome import Acknowledgement, Outcome, ReplyTo
from bot.storage import (
    CLOSED_STATUSES, AlreadyDone, Case, CaseStatus, Followup, PlanChange, PlannedNudge, Refused, Storage, User,
)
from dialogs import engine
from dialogs.advice import advise, case_context
from dialogs.followup import (
    Nudge, PlanState, answer_ids, answer_reply, apply_answer, next_nudges, nudge_reply, nudges_active, record_nudge,
    start_plan,
)
from dialogs.graph import Graph
from dialogs.model import Effect, Reply, Slots, TimelineEvent
from dialogs.zones import ZoneSource, resolve_zone, zone_name
from messages import DEFAULT_LOCALE

log = logging.getLogger(__name__)
UTC = timezone.utc

# The plan's statuses as case statuses (a paused plan leaves the case's status as it was).
CASE_STATUS: dict[str, CaseStatus] = {"waiting": "advised", "escalated": "escalated", "resolved": "resolved",
                                      "abandoned": "abandoned"}
# /remind's cadence choices: a fixed delay that repeats; "default" is the configured cadence.
CADENCES: dict[str, tuple[timedelta, ...]] = {
    "1d": (timedelta(days=1),), "3d": (timedelta(days=3),), "7d": (timedelta(days=7),),
}
REMIND_CHOICES = ("default", *CADENCES, "pause", "resume")


def delays_context(cadence: Sequence[timedelta]) -> list[dict[str, Any]]:
    """Delays as {"n", "unit"} for the templates (the largest whole unit)."""
    out = []
    for delay in cadence:
        seconds = delay.total_seconds()
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if seconds >= size and (seconds % size == 0 or unit == "s"):
                out.append({"n": round(seconds / size, 2) if seconds % size else int(seconds // size), "unit": unit})
                break
        else:
            out.append({"n": seconds, "unit": "s"})
    return out


def local_time(moment: datetime, zone: tzinfo) -> dict[str, str]:
    local = moment.astimezone(zone)
    return {"date": local.date().isoformat(), "time": local.strftime("%H:%M")}


class Reminders:
    """Plans and nudges of cases: computed with dialogs.followup, stored by bot.storage."""

    def __init__(self, storage: Storage, graph: Graph, *, cadence: Sequence[timedelta],
                 quiet_hours: tuple[int, int] | None, clock: Callable[[], datetime] | None = None,
                 default_zone: tzinfo = UTC):
        if not cadence:
            raise ValueError("a cadence needs at least one delay")
        self.storage = storage
        self.graph = graph
        self.default_cadence = tuple(cadence)
        self.quiet_hours = quiet_hours
        self.clock = clock or (lambda: datetime.now(UTC))
        self.default_zone = default_zone
        # Called with the earliest due time of nudges just scheduled (the dispatcher's wake-up).
        self.listeners: list[Callable[[datetime], None]] = []

    # ---- the parts of a plan ----------------------------------------------------------

    def now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must give time-zone aware datetimes")
        return now

    def zone(self, user: User | None, case: Case | None) -> tzinfo:
        """The zone the case's dates and nudges are in (dialogs.zones.resolve_zone)."""
        return self.zone_and_source(user, case)[0]

    def zone_and_source(self, user: User | None, case: Case | None) -> tuple[tzinfo, ZoneSource]:
        return resolve_zone(user.time_zone if user else None, case.slots.get("jurisdiction") if case else None,
                            self.default_zone)

    def zone_name(self, user: User | None, case: Case | None) -> tuple[str, ZoneSource]:
        """(the zone's name, where it comes from: "set" | "jurisdiction" | "default")."""
        zone, source = self.zone_and_source(user, case)
        return zone_name(zone), source

    def cadence(self, choice: str | None) -> tuple[timedelta, ...]:
        return CADENCES.get(choice or "", self.default_cadence)

    def slots(self, case: Case) -> Slots:
        return engine.active_slots(self.graph, case.slots)

    def nudges_for(self, user: User | None, case: Case, plan: Mapping[str, Any], now: datetime) -> list[Nudge]:
        """The nudges to schedule for a case with this plan state (none for a closed case), at the
        case's cadence, in the user's time zone, out of the quiet hours."""
        if case.status in CLOSED_STATUSES or not nudges_active(plan):
            return []
        zone = self.zone(user, case)
        slots = self.slots(case)
        deadlines = advise(slots, plan["category"], now.astimezone(zone).date()).deadlines
        return next_nudges(slots, plan["category"], plan, deadlines, self.cadence(case.cadence), self.quiet_hours,
                           zone, now)

    def plan_change(self, user: User | None, case: Case, plan: Mapping[str, Any], effects: Iterable[Effect],
                 now: datetime, events: Sequence[TimelineEvent] = ()) -> PlanChange:
        """The pure plan's effects (and the events of the transition) as one storage write."""
        status = category = None
        nudges: list[Nudge] | None = None
        extra: list[TimelineEvent] = []
        for effect in effects:
            if effect.kind == "set_case_status":
                status = CASE_STATUS.get(str(effect.data["status"]))
            elif effect.kind == "set_category":
                category = str(effect.data["category"])
            elif effect.kind == "replan_followups":
                nudges = self.nudges_for(user, case, plan, now)
            elif effect.kind == "cancel_followups":
                nudges = []
            elif effect.kind == "draft_complaint":
                # The complaint draft itself comes with /escalate: the request is on the timeline.
                extra.append(TimelineEvent("draft_complaint", dict(effect.data)))
            else:
                log.warning("unknown follow-up effect %r ignored", effect.kind)
        return PlanChange(plan=plan, events=(*events, *extra), status=status, category=category, nudges=nudges)

    def start(self, user: User | None, case: Case, category: str, now: datetime) -> PlanChange:
        """The plan of a case the intake has just advised, and its first nudges."""
        plan, events, effects = start_plan(self.slots(case), category, now)
        return self.plan_change(user, case, plan, effects, now, events)

    def scheduled(self, nudges: Iterable[PlannedNudge] | None) -> None:
        """Tell the dispatcher about nudges just written (it wakes up earlier if it must)."""
        dues = [n.due_at for n in nudges or ()]
        if dues:
            for listener in self.listeners:
                listener(min(dues))

    # ---- what the dispatcher needs ----------------------------------------------------

    @staticmethod
    def locale(user: User | None) -> str:
        return (user.language or user.seen_locale or DEFAULT_LOCALE) if user else DEFAULT_LOCALE

    def nudge_message(self, user: User, case: Case, followup: Followup, now: datetime) -> Reply:
        if not case.plan:
            raise ValueError(f"a nudge of case {case.id}, which has no reminder plan")
        zone = self.zone(user, case)
        nudge = Nudge(followup.due_at, followup.kind, dict(followup.data))
        return nudge_reply({"slots": self.slots(case), "category": case.plan["category"]}, case.plan, nudge,
                           now.astimezone(zone).date())

    def recorder(self, followups: Sequence[Followup], now: datetime, *, failed: str | None = None
                 ) -> Callable[[User, Case], PlanChange | None]:
        """For storage.queue.followup_sent: the plan records the nudges sent (or given up on: the cadence
        goes on, so that nudges never stop silently) and the next ones are planned."""
        def decide(user: User, case: Case) -> PlanChange | None:
            if not case.plan:
                return None
            plan: Mapping[str, Any] = dict(case.plan)
            events = []
            for f in followups:
                plan, recorded = record_nudge(plan, Nudge(f.due_at, f.kind, dict(f.data)), now)
                for event in recorded:
                    if failed is not None:
                        event = TimelineEvent("nudge_failed", {**event.data, "error": failed})
                    events.append(event)
            nudges = self.nudges_for(user, case, plan, now) if case.status not in CLOSED_STATUSES else None
            return PlanChange(plan=plan, events=events, nudges=nudges)
        return decide

    # ---- replanning -------------------------------------------------------------------

    async def replan(self, user_id: int, case_ids: Iterable[int] | None = None) -> None:
        """Plan the nudges of the user's planned cases again from now (a new time zone, the user
        back after blocking the bot: paused nudges are replaced, passed deadlines dropped)."""
        cases = await self.storage.planned_cases(user_id)
        wanted = set(case_ids) if case_ids is not None else None
        for case in cases:
            if wanted is not None and case.id not in wanted:
                continue
            now = self.now()

            def decide(user: User, fresh: Case) -> tuple[PlanChange, list[Nudge]] | None:
                if not fresh.plan or fresh.status in CLOSED_STATUSES:
                    return None
                nudges = self.nudges_for(user, fresh, fresh.plan, now)
                return PlanChange(nudges=nudges), nudges

            try:
                nudges = await self.storage.change_case(user_id, case.id, now, decide)
            except Refused:
                continue
            self.scheduled(nudges)

    async def start_unplanned(self, batch: int = 500) -> int:
        """Cases advised before follow-ups existed (no plan): their plans start now. Returns how many."""
        started, after = 0, 0
        while True:
            cases = await self.storage.queue.unplanned_cases(after, batch)
            if not cases:
                return started
            for case in cases:
                started += await self.start_later(case.user_id, case.id) is not None
                after = case.id

    async def start_later(self, user_id: int, case_id: int) -> PlanChange | None:
        now = self.now()

        def decide(user: User, fresh: Case) -> tuple[PlanChange, Any] | None:
            if fresh.plan or fresh.status in CLOSED_STATUSES or fresh.status == "intake":
                return None
            change = self.start(user, fresh, fresh.category or "other", now)
            return change, change

        try:
            change = await self.storage.change_case(user_id, case_id, now, decide)
        except Refused:
            return None
        self.scheduled(change.nudges)
        return change

    async def user_returned(self, user_id: int) -> None:
        """A user who had blocked the bot wrote again: their nudges resume."""
        if await self.storage.unblock_user(user_id, self.now()):
            await self.replan(user_id)

    def close_plan(self, plan: Mapping[str, Any] | None, status: str, now: datetime) -> PlanState | None:
        """The plan state of a case closed by /resolved (resolved or abandoned)."""
        if not plan:
            return None
        closed, _, _ = apply_answer(plan, "refunded" if status == "resolved" else "stop", now)
        return closed

    # ---- nudge buttons ----------------------------------------------------------------

    async def answer(self, user_id: int, case_id: int, followup_id: int, answer: str, locale: str, *,
                     update_id: int | None = None, reply_to: ReplyTo | None = None) -> Outcome | None:
        """A nudge button pressed: the answer recorded on the timeline, the plan moved on, the next
        nudges planned, all in one transaction; the acknowledgement to send (with `reply_to`, written
        to the outbox in that transaction: `queued`). None if the press is not acceptable (not the
        presser's case, a closed case, a nudge no longer live)."""
        if answer not in answer_ids():
            return None
        now = self.now()

        def decide(user: User, case: Case) -> tuple[PlanChange, Any] | None:
            if case.status in CLOSED_STATUSES or not case.plan:
                return None
            plan, events, effects = apply_answer(case.plan, answer, now)
            change = self.plan_change(user, case, plan, effects, now, events)
            return change, (user, case, plan, change)

        def acknowledgement(result: Any) -> Outcome:
            user, case, plan, change = result
            zone = self.zone(user, case)
            today = now.astimezone(zone).date()
            slots = self.slots(case)
            following = change.nudges[0] if change.nudges else None
            replies = [answer_reply({"slots": slots, "category": plan["category"]}, plan, answer, following, today, zone)]
            if answer == "asked_more":
                # The fraud path at once: its whole advice, not only the first step.
                advice = advise(slots, plan["category"], today)
                replies.append(Reply("advice_body", {"advice": advice.context(),
                                                     "case": case_context(slots, plan["category"], today)}))
            return Outcome(locale, replies, case_id)

        said = Acknowledgement(user_id, reply_to, acknowledgement)
        try:
            result = await self.storage.change_case(user_id, case_id, now, decide, update_id=update_id,
                                                    answered=(followup_id, answer), outbox=said.row)
        except AlreadyDone:
            return Outcome.nothing(locale)
        except Refused:
            return None
        self.scheduled(result[3].nudges)
        return said.outcome(result)

def with_slots(case: Case, slots: Mapping[str, Any], category: str | None) -> Case:
    """The case as a turn has just left it (for planning before the row is re-read)."""
    # The engine's slots (named by the graph) are the case's Slots (dialogs/model.py).
    return replace(case, slots=cast(Slots, dict(slots)), category=category or case.category)
