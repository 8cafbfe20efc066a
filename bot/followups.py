"""Follow-up nudges, the shell side of dialogs/followup.py.

The plan state lives with its case (cases.plan), each nudge to send is a row (followups);
every change of a plan and the nudges it implies are written in one transaction with the turn
that caused it. This module turns the pure plan's effects into those writes, answers nudge
buttons and the /remind and /timezone commands, and tells the dispatcher (bot/dispatcher.py)
when a nudge was scheduled, so that it can wake up earlier.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo, available_timezones

from bot.conversation import JURISDICTION_ZONE, Outcome
from bot.storage import CLOSED_STATUSES, DUPLICATE, Case, Followup, PlanChange, Refused, Storage, User
from dialogs import engine
from dialogs.advice import advise, case_context
from dialogs.followup import (
    Nudge, answer_ids, answer_reply, apply_answer, next_nudges, nudge_reply, nudges_active, record_nudge,
    start_plan,
)
from dialogs.graph import Graph
from dialogs.model import Button, Effect, Reply, TimelineEvent
from messages import DEFAULT_LOCALE

log = logging.getLogger(__name__)
UTC = timezone.utc

# The plan's statuses as case statuses (a paused plan leaves the case's status as it was).
CASE_STATUS = {"waiting": "advised", "escalated": "escalated", "resolved": "resolved", "abandoned": "abandoned"}
# /remind's cadence choices: a fixed delay that repeats; "default" is the configured cadence.
CADENCES: dict[str, tuple[timedelta, ...]] = {
    "1d": (timedelta(days=1),), "3d": (timedelta(days=3),), "7d": (timedelta(days=7),),
}
REMIND_CHOICES = ("default", *CADENCES, "pause", "resume")
ZONE_INPUT_MAX = 64
# Place names a Chinese-speaking user may type for /timezone.
ZONE_ALIASES = {
    "北京": "Asia/Shanghai", "上海": "Asia/Shanghai", "中国": "Asia/Shanghai", "北京时间": "Asia/Shanghai",
    "香港": "Asia/Hong_Kong", "澳门": "Asia/Macau", "台北": "Asia/Taipei", "台湾": "Asia/Taipei",
    "新加坡": "Asia/Singapore", "东京": "Asia/Tokyo", "日本": "Asia/Tokyo", "首尔": "Asia/Seoul",
    "伦敦": "Europe/London", "英国": "Europe/London", "巴黎": "Europe/Paris", "柏林": "Europe/Berlin",
    "纽约": "America/New_York", "洛杉矶": "America/Los_Angeles", "温哥华": "America/Vancouver",
    "多伦多": "America/Toronto", "悉尼": "Australia/Sydney",
}


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def parse_zone(text: str) -> str | None:
    """A tz database name (Area/City, or UTC) from what the user typed; None if it is not one.
    Case and spaces do not matter; a city alone works when only one zone has that name."""
    text = " ".join(text.split())
    if not text or len(text) > ZONE_INPUT_MAX:
        return None
    if text in ZONE_ALIASES:
        return ZONE_ALIASES[text]
    names = _zone_names()
    key = text.replace(" ", "_").lower()
    if key in names:
        return names[key]
    cities = [name for lower, name in names.items() if "/" in lower and lower.rsplit("/", 1)[1] == key
              and not lower.startswith(("etc/", "posix/", "right/"))]
    return cities[0] if len(cities) == 1 else None


def _delays(cadence: Sequence[timedelta]) -> list[dict[str, Any]]:
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


def _local(moment: datetime, zone: tzinfo) -> dict[str, str]:
    local = moment.astimezone(zone)
    return {"date": local.date().isoformat(), "time": local.strftime("%H:%M")}


class Followups:
    """Plans and nudges of cases: computed here with dialogs.followup, stored by bot.storage."""

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
        """The user's /timezone, else the zone of the case's jurisdiction, else the default."""
        for name in ((user.time_zone if user else None),
                     JURISDICTION_ZONE.get(str(case.slots.get("jurisdiction", ""))) if case else None):
            if name:
                try:
                    return ZoneInfo(name)
                except (KeyError, ValueError):
                    continue
        return self.default_zone

    def zone_name(self, user: User | None, case: Case | None) -> tuple[str, str]:
        """(the zone's name, where it comes from: "set" | "jurisdiction" | "default")."""
        zone = self.zone(user, case)
        name = getattr(zone, "key", None) or str(zone)
        if user and user.time_zone and name == user.time_zone:
            return name, "set"
        if case and JURISDICTION_ZONE.get(str(case.slots.get("jurisdiction", ""))) == name:
            return name, "jurisdiction"
        return name, "default"

    def cadence(self, choice: str | None) -> tuple[timedelta, ...]:
        return CADENCES.get(choice or "", self.default_cadence)

    def slots(self, case: Case) -> dict[str, Any]:
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

    def _effects(self, user: User | None, case: Case, plan: Mapping[str, Any], effects: Iterable[Effect],
                 now: datetime, events: Sequence[TimelineEvent] = ()) -> PlanChange:
        """The pure plan's effects as one storage write."""
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
        return self._effects(user, case, plan, effects, now, events)

    def scheduled(self, nudges: Iterable[Nudge] | None) -> None:
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
        zone = self.zone(user, case)
        nudge = Nudge(followup.due_at, followup.kind, dict(followup.data))
        return nudge_reply({"slots": self.slots(case), "category": case.plan["category"]}, case.plan, nudge,
                           now.astimezone(zone).date())

    def recorder(self, followups: Sequence[Followup], now: datetime, *, failed: str | None = None
                 ) -> Callable[[User, Case], PlanChange | None]:
        """For storage.followup_sent: the plan records the nudges sent (or given up on: the cadence
        goes on, so that nudges never stop silently) and the next ones are planned."""
        def decide(user: User, case: Case) -> PlanChange | None:
            if not case.plan:
                return None
            plan, events = dict(case.plan), []
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
            cases = await self.storage.unplanned_cases(after, batch)
            if not cases:
                return started
            for case in cases:
                started += await self._start_later(case.user_id, case.id) is not None
                after = case.id

    async def _start_later(self, user_id: int, case_id: int) -> PlanChange | None:
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

    def close_plan(self, plan: Mapping[str, Any] | None, status: str, now: datetime) -> dict[str, Any] | None:
        """The plan state of a case closed by /resolved (resolved or abandoned)."""
        if not plan:
            return None
        closed, _, _ = apply_answer(plan, "refunded" if status == "resolved" else "stop", now)
        return closed

    # ---- nudge buttons ----------------------------------------------------------------

    async def answer(self, user_id: int, case_id: int, followup_id: int, answer: str, locale: str, *,
                     update_id: int | None = None) -> Outcome | None:
        """A nudge button pressed: the answer recorded on the timeline, the plan moved on, the next
        nudges planned, all in one transaction; the acknowledgement to send. None if the press is
        not acceptable (not the presser's case, a closed case, a nudge no longer live)."""
        if answer not in answer_ids():
            return None
        now = self.now()

        def decide(user: User, case: Case) -> tuple[PlanChange, Any] | None:
            if case.status in CLOSED_STATUSES or not case.plan:
                return None
            plan, events, effects = apply_answer(case.plan, answer, now)
            change = self._effects(user, case, plan, effects, now, events)
            return change, (user, case, plan, change)

        try:
            result = await self.storage.change_case(user_id, case_id, now, decide, update_id=update_id,
                                                    answered=(followup_id, answer))
        except Refused:
            return None
        if result is DUPLICATE:
            return Outcome(locale, duplicate=True)
        user, case, plan, change = result
        self.scheduled(change.nudges)
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
        elif answer == "escalate":
            replies.append(Reply("remind.escalate_hint", {}))
        return Outcome(locale, replies, case_id)

    # ---- /remind ----------------------------------------------------------------------

    def _remind_reply(self, user: User | None, case: Case, plan: Mapping[str, Any],
                      pending: Sequence[Followup]) -> Reply:
        zone = self.zone(user, case)
        zone_name, source = self.zone_name(user, case)
        upcoming = sorted(pending, key=lambda f: f.due_at)
        nxt = None
        if upcoming:
            nxt = {**_local(upcoming[0].due_at, zone), "kind": upcoming[0].kind,
                   "deadline": upcoming[0].data.get("deadline_id")}
        choice = case.cadence if case.cadence in CADENCES else "default"
        context = {
            "case_id": case.id, "status": plan["status"], "rung_key": f"followup.rung.{plan['rung']}",
            "next": nxt, "cadence": choice, "delays": _delays(self.cadence(choice)),
            "zone": zone_name, "zone_source": source,
            "quiet": list(self.quiet_hours) if self.quiet_hours else None,
        }
        buttons = [Button(f"remind:{c}", f"btn.remind.{c}", {"current": c == choice}) for c in ("default", *CADENCES)]
        buttons.append(Button("remind:resume", "btn.remind.resume") if plan["status"] == "paused"
                       else Button("remind:pause", "btn.remind.pause"))
        return Reply("remind.show", context, tuple(buttons))

    async def remind(self, user_id: int, locale: str) -> Outcome:
        """/remind: the active case's next nudge, its cadence, and buttons to change them."""
        case = await self.storage.active_case(user_id)
        if case is None:
            return Outcome(locale, [Reply("no_case", {})])
        if case.status == "intake":
            return Outcome(locale, [Reply("remind.not_yet", {"case_id": case.id})], case.id)
        if case.status in CLOSED_STATUSES:
            return Outcome(locale, [Reply("remind.closed", {"case_id": case.id, "status": case.status})], case.id)
        user = await self.storage.get_user(user_id)
        if not case.plan:
            # A case advised before follow-ups existed: its plan starts now.
            await self._start_later(user_id, case.id)
            case = await self.storage.get_case(user_id, case.id)
            if case is None or not case.plan:
                return Outcome(locale, [Reply("no_case", {})])
        pending = await self.storage.followups(user_id, case.id, ("pending", "sending", "paused"))
        return Outcome(locale, [self._remind_reply(user, case, case.plan, pending)], case.id)

    async def remind_choice(self, user_id: int, case_id: int, choice: str, locale: str, *,
                            update_id: int | None = None) -> Outcome | None:
        """A /remind button: a cadence, pause or resume, for one of the user's open cases."""
        if choice not in REMIND_CHOICES:
            return None
        now = self.now()

        def decide(user: User, case: Case) -> tuple[PlanChange, Any] | None:
            if case.status in CLOSED_STATUSES or not case.plan:
                return None
            if choice in ("pause", "resume"):
                plan, events, effects = apply_answer(case.plan, choice, now)
                change = self._effects(user, case, plan, effects, now, events)
            else:
                cadence = None if choice == "default" else choice
                plan = case.plan
                nudges = self.nudges_for(user, replace(case, cadence=cadence), plan, now) \
                    if nudges_active(plan) else None
                change = PlanChange(events=(TimelineEvent("reminder_cadence", {"cadence": choice}),),
                                    nudges=nudges, cadence=cadence, set_cadence=True)
            return change, (user, case, plan, change)

        try:
            result = await self.storage.change_case(user_id, case_id, now, decide, update_id=update_id)
        except Refused:
            return None
        if result is DUPLICATE:
            return Outcome(locale, duplicate=True)
        user, case, plan, change = result
        self.scheduled(change.nudges)
        zone = self.zone(user, case)
        following = change.nudges[0] if change.nudges else None
        if choice in ("pause", "resume"):
            reply = answer_reply({"slots": self.slots(case), "category": plan["category"]}, plan, choice, following,
                                 now.astimezone(zone).date(), zone)
        else:
            reply = Reply("remind.cadence_set", {
                "cadence": choice, "delays": _delays(self.cadence(None if choice == "default" else choice)),
                "next": _local(following.due_at, zone) if following else None, "status": plan["status"]})
        return Outcome(locale, [reply], case_id)

    # ---- /timezone --------------------------------------------------------------------

    async def set_timezone(self, user_id: int, text: str, locale: str) -> Outcome:
        """/timezone [Area/City]: show the zone nudges are timed in, or set it (and plan again)."""
        case = await self.storage.active_case(user_id)
        user = await self.storage.get_user(user_id)
        now = self.now()
        if not text.strip():
            name, source = self.zone_name(user, case)
            return Outcome(locale, [Reply("timezone.show", {"zone": name, "source": source,
                                                            "local": _local(now, self.zone(user, case))})])
        name = parse_zone(text)
        if name is None:
            given = " ".join(text.split())
            given = given if len(given) <= ZONE_INPUT_MAX else given[:ZONE_INPUT_MAX - 1] + "…"
            return Outcome(locale, [Reply("timezone.bad", {"given": given})])
        await self.storage.set_user(user_id, now, time_zone=name)
        await self.replan(user_id)
        return Outcome(locale, [Reply("timezone.set", {"zone": name, "local": _local(now, ZoneInfo(name)),
                                                       "quiet": list(self.quiet_hours) if self.quiet_hours else None})])


def with_slots(case: Case, slots: Mapping[str, Any], category: str | None) -> Case:
    """The case as a turn has just left it (for planning before the row is re-read)."""
    return replace(case, slots=dict(slots), category=category or case.category)
