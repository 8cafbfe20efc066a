"""/remind and /timezone: the user's view of their reminders and the choices they make about
them (how often, pause, resume; the zone they are timed in). The plans themselves are the
reminder service's (bot/reminders.py)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

from bot.outcome import Acknowledgement, Outcome, ReplyTo
from bot.reminders import CADENCES, REMIND_CHOICES, Reminders, delays_context, local_time
from bot.storage import CLOSED_STATUSES, AlreadyDone, Case, Followup, PlanChange, Refused, User
from dialogs.followup import answer_reply, apply_answer, nudges_active
from dialogs.model import Button, Reply, TimelineEvent
from dialogs.zones import ZONE_INPUT_MAX, parse_zone


class RemindCommands:
    """/remind and its buttons, /timezone."""

    def __init__(self, reminders: Reminders):
        self.reminders = reminders

    def _remind_reply(self, user: User | None, case: Case, plan: Mapping[str, Any],
                      pending: Sequence[Followup]) -> Reply:
        zone = self.reminders.zone(user, case)
        zone_name, source = self.reminders.zone_name(user, case)
        upcoming = sorted(pending, key=lambda f: f.due_at)
        nxt = None
        if upcoming:
            nxt = {**local_time(upcoming[0].due_at, zone), "kind": upcoming[0].kind,
                   "deadline": upcoming[0].data.get("deadline_id")}
        choice = case.cadence if case.cadence in CADENCES else "default"
        context = {
            "case_id": case.id, "status": plan["status"], "rung_key": f"followup.rung.{plan['rung']}",
            "next": nxt, "cadence": choice, "delays": delays_context(self.reminders.cadence(choice)),
            "zone": zone_name, "zone_source": source,
            "quiet": list(self.reminders.quiet_hours) if self.reminders.quiet_hours else None,
        }
        buttons = [Button(f"remind:{c}", f"btn.remind.{c}", {"current": c == choice}) for c in ("default", *CADENCES)]
        buttons.append(Button("remind:resume", "btn.remind.resume") if plan["status"] == "paused"
                       else Button("remind:pause", "btn.remind.pause"))
        return Reply("remind.show", context, tuple(buttons))

    async def remind(self, user_id: int, locale: str) -> Outcome:
        """/remind: the active case's next nudge, its cadence, and buttons to change them."""
        case = await self.reminders.storage.active_case(user_id)
        if case is None:
            return Outcome(locale, [Reply("no_case", {})])
        if case.status == "intake":
            return Outcome(locale, [Reply("remind.not_yet", {"case_id": case.id})], case.id)
        if case.status in CLOSED_STATUSES:
            return Outcome(locale, [Reply("remind.closed", {"case_id": case.id, "status": case.status})], case.id)
        user = await self.reminders.storage.get_user(user_id)
        if not case.plan:
            # A case advised before follow-ups existed: its plan starts now.
            await self.reminders.start_later(user_id, case.id)
            case = await self.reminders.storage.get_case(user_id, case.id)
            if case is None or not case.plan:
                return Outcome(locale, [Reply("no_case", {})])
        pending = await self.reminders.storage.followups(user_id, case.id, ("pending", "sending", "paused"))
        return Outcome(locale, [self._remind_reply(user, case, case.plan, pending)], case.id)

    async def remind_choice(self, user_id: int, case_id: int, choice: str, locale: str, *,
                            update_id: int | None = None, reply_to: ReplyTo | None = None) -> Outcome | None:
        """A /remind button: a cadence, pause or resume, for one of the user's open cases; with
        `reply_to`, its acknowledgement is written to the outbox in the change's transaction."""
        if choice not in REMIND_CHOICES:
            return None
        now = self.reminders.now()

        def decide(user: User, case: Case) -> tuple[PlanChange, Any] | None:
            if case.status in CLOSED_STATUSES or not case.plan:
                return None
            plan: Mapping[str, Any]
            if choice in ("pause", "resume"):
                plan, events, effects = apply_answer(case.plan, choice, now)
                change = self.reminders.plan_change(user, case, plan, effects, now, events)
            else:
                cadence = None if choice == "default" else choice
                plan = case.plan
                nudges = self.reminders.nudges_for(user, replace(case, cadence=cadence), plan, now) \
                    if nudges_active(plan) else None
                change = PlanChange(events=(TimelineEvent("reminder_cadence", {"cadence": choice}),),
                                    nudges=nudges, cadence=cadence, set_cadence=True)
            return change, (user, case, plan, change)

        def acknowledgement(result: Any) -> Outcome:
            user, case, plan, change = result
            zone = self.reminders.zone(user, case)
            following = change.nudges[0] if change.nudges else None
            if choice in ("pause", "resume"):
                reply = answer_reply({"slots": self.reminders.slots(case), "category": plan["category"]}, plan, choice,
                                     following, now.astimezone(zone).date(), zone)
            else:
                reply = Reply("remind.cadence_set", {
                    "cadence": choice,
                    "delays": delays_context(self.reminders.cadence(None if choice == "default" else choice)),
                    "next": local_time(following.due_at, zone) if following else None, "status": plan["status"]})
            return Outcome(locale, [reply], case_id)

        said = Acknowledgement(user_id, reply_to, acknowledgement)
        try:
            result = await self.reminders.storage.change_case(user_id, case_id, now, decide, update_id=update_id,
                                                              outbox=said.row)
        except AlreadyDone:
            return Outcome.nothing(locale)
        except Refused:
            return None
        self.reminders.scheduled(result[3].nudges)
        return said.outcome(result)

    async def set_timezone(self, user_id: int, text: str, locale: str) -> Outcome:
        """/timezone [Area/City]: show the zone nudges are timed in, or set it (and plan again)."""
        case = await self.reminders.storage.active_case(user_id)
        user = await self.reminders.storage.get_user(user_id)
        now = self.reminders.now()
        if not text.strip():
            shown, source = self.reminders.zone_name(user, case)
            return Outcome(locale, [Reply("timezone.show", {"zone": shown, "source": source,
                                                            "local": local_time(now, self.reminders.zone(user, case))})])
        name = parse_zone(text)
        if name is None:
            given = " ".join(text.split())
            given = given if len(given) <= ZONE_INPUT_MAX else given[:ZONE_INPUT_MAX - 1] + "…"
            return Outcome(locale, [Reply("timezone.bad", {"given": given})])
        await self.reminders.storage.set_user(user_id, now, time_zone=name)
        await self.reminders.replan(user_id)
        return Outcome(locale, [Reply("timezone.set", {"zone": name, "local": local_time(now, ZoneInfo(name)),
                                                       "quiet": list(self.reminders.quiet_hours) if self.reminders.quiet_hours else None})])
