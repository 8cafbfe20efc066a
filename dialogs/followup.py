"""The follow-up life of a case after the advice: pure, data-driven (`rules/ladder.yaml`).

Nothing here reads a clock or does I/O: `now` (an aware datetime) and `today` are arguments.
The shell (bot/) stores the plan state with the case, stores the nudges as rows, sends them,
and calls back here with the user's answers.

The plan state (a JSON-friendly dict, stored as is):

    {
      "v": 1,
      "status": "waiting" | "escalated" | "resolved" | "abandoned" | "paused",
      "paused_from": None | the status before pausing,
      "path": "consumer" | "fraud",
      "category": the category the advice is computed with (the fraud path's own),
      "ladders": {path: {"rungs": [rung ids that apply to this case], "category": str}},
      "rung": the current rung id (an element of ladders[path]["rungs"]),
      "n": regular nudges sent since the cadence last restarted (nudge n waits cadence[n]),
      "anchor": ISO UTC time the next regular delay counts from (start, last nudge, last answer),
      "snoozed_until": None | ISO UTC: the next regular nudge is due then instead,
      "deadlines_nudged": [deadline ids already announced by a deadline nudge],
      "escalations": [{"rung": id, "at": ISO UTC}],
      "started_at": ISO UTC,
    }

Functions
---------
    start_plan(slots, category, now)            -> (plan_state, events, effects)
    apply_answer(plan_state, answer, now)       -> (plan_state, events, effects)
    record_nudge(plan_state, nudge, now)        -> (plan_state, events)      after a nudge is sent
    next_nudges(slots, category, plan_state, deadlines, cadence, quiet_hours, zone, now) -> [Nudge]
    nudge_reply(case, plan_state, nudge, today, deadlines=None)           -> Reply
    answer_reply(case, plan_state, answer, next_nudge, today, zone)       -> Reply
    shift_out_of_quiet(moment, quiet_hours, zone)                          -> datetime (UTC)

Effects (Effect.kind): `replan_followups` (cancel the case's pending nudges and store
`next_nudges(...)` again), `cancel_followups` (no more nudges), `set_case_status`
({"status"}: the plan status), `set_category` ({"category"}), `draft_complaint`
({"rung", "path", "category"}: start the complaint draft for that rung).
Timeline events: `followup_started`, `nudge_answer`, `escalation`, `nudge`, `nudge_answer_ignored`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, Iterable, Literal, Mapping, Sequence, TypedDict, cast


from dialogs.advice import Advice, Deadline, advise, case_context, normalise_case
from dialogs.rulefiles import as_tuple, rules_file
from dialogs.conditions import check_when, matches, parse_date
from dialogs.model import Button, Effect, EffectKind, Reply, TimelineEvent

UTC = timezone.utc
VERSION = 1
PlanStatus = Literal["waiting", "escalated", "resolved", "abandoned", "paused"]
STATUSES: tuple[PlanStatus, ...] = ("waiting", "escalated", "resolved", "abandoned", "paused")
KINDS = ("regular", "deadline")
NUDGE_KEY = "followup.nudge"
_RUNG_FIELDS = {"when", "steps", "fallback", "deadlines"}
_ANSWER_FIELDS = {"button", "status", "rung", "path", "cadence", "snooze", "effect"}
_SNOOZE_UNITS = ("days", "hours", "minutes")


class PathLadder(TypedDict):
    """A path's ladder for one case: the rungs that apply to it and the category used on it."""
    rungs: list[str]
    category: str


class Escalation(TypedDict):
    rung: str
    at: str     # ISO UTC


class PlanState(TypedDict):
    """The plan state, as the module docstring describes it (JSON, stored with the case)."""
    v: int
    status: PlanStatus
    paused_from: PlanStatus | None
    path: str
    category: str
    ladders: dict[str, PathLadder]
    rung: str
    n: int
    anchor: str
    snoozed_until: str | None
    deadlines_nudged: list[str]
    escalations: list[Escalation]
    started_at: str


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Nudge:
    """A follow-up message to send at `due_at` (aware, UTC)."""
    due_at: datetime
    kind: str                                   # "regular" | "deadline"
    data: Mapping[str, Any] = field(default_factory=dict)   # {"rung", "n"} | {"rung", "deadline_id", "deadline_date"}

    def to_dict(self) -> dict[str, Any]:
        return {"due_at": _iso(self.due_at), "kind": self.kind, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Nudge":
        return cls(_parse_time(raw["due_at"]), str(raw["kind"]), dict(raw.get("data") or {}))


@dataclass(frozen=True)
class _Rung:
    id: str
    when: Mapping[str, Any]
    steps: tuple[str, ...]
    fallback: str
    deadlines: tuple[str, ...]


@dataclass(frozen=True)
class _Path:
    id: str
    when: Mapping[str, Any]
    category: str | None
    rungs: tuple[str, ...]


@dataclass(frozen=True)
class Ladder:
    rungs: Mapping[str, _Rung]
    paths: tuple[_Path, ...]
    statuses: Mapping[str, Mapping[str, Any]]
    answers: Mapping[str, Mapping[str, Any]]
    at_hour: int
    lead: tuple[Mapping[str, int], ...]
    problems: tuple[str, ...]

    def path(self, pid: str) -> _Path:
        return next(p for p in self.paths if p.id == pid)



@lru_cache(maxsize=None)
def load_ladder() -> Ladder:
    """The escalation ladder (rules/ladder.yaml), checked; shared with dialogs.complaint."""
    problems: list[str] = []
    doc = rules_file("ladder.yaml")
    deadline_doc = rules_file("deadlines.yaml")
    known_deadlines = {str(d.get("id")) for d in deadline_doc.get("deadlines") or [] if isinstance(d, Mapping)}

    for top in doc:
        if top not in ("rungs", "paths", "statuses", "answers", "deadline_nudges"):
            problems.append(f"ladder.yaml: unknown top-level key {top!r}")

    rungs: dict[str, _Rung] = {}
    for rid, raw in (doc.get("rungs") or {}).items():
        where = f"ladder.yaml: rung {rid!r}"
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: must be a map")
            continue
        problems.extend(f"{where}: unknown field {f!r}" for f in raw if f not in _RUNG_FIELDS)
        when = raw.get("when") or {}
        problems.extend(check_when(when, where))
        steps = as_tuple(raw.get("steps"))
        if not steps:
            problems.append(f"{where}: no step prefixes")
        fallback = str(raw.get("fallback") or "")
        if fallback != f"followup.step.{rid}":
            problems.append(f"{where}: fallback must be the message key 'followup.step.{rid}'")
        dls = as_tuple(raw.get("deadlines"))
        problems.extend(f"{where}: unknown deadline id {d!r}" for d in dls if d not in known_deadlines)
        rungs[str(rid)] = _Rung(str(rid), when, steps, fallback, dls)
    for d in sorted(known_deadlines - {d for r in rungs.values() for d in r.deadlines}):
        problems.append(f"ladder.yaml: deadline {d!r} (deadlines.yaml) belongs to no rung")

    paths: list[_Path] = []
    for pid, raw in (doc.get("paths") or {}).items():
        where = f"ladder.yaml: path {pid!r}"
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: must be a map")
            continue
        problems.extend(f"{where}: unknown field {f!r}" for f in raw if f not in ("when", "category", "rungs"))
        when = raw.get("when") or {}
        problems.extend(check_when(when, where))
        prungs = as_tuple(raw.get("rungs"))
        if not prungs:
            problems.append(f"{where}: no rungs")
        problems.extend(f"{where}: unknown rung {r!r}" for r in prungs if r not in rungs)
        if prungs and all(r in rungs and rungs[r].when for r in prungs):
            problems.append(f"{where}: every rung is conditional; one must always apply")
        cat = raw.get("category")
        paths.append(_Path(str(pid), when, str(cat) if cat else None, prungs))
    if not paths:
        problems.append("ladder.yaml: no paths")
    elif paths[-1].when:
        problems.append("ladder.yaml: the last path must have no condition (it is the default)")

    statuses = {str(k): dict(v or {}) for k, v in (doc.get("statuses") or {}).items()}
    problems.extend(f"ladder.yaml: status {s!r} missing" for s in STATUSES if s not in statuses)
    problems.extend(f"ladder.yaml: unknown status {s!r}" for s in statuses if s not in STATUSES)

    answers = {str(k): dict(v or {}) for k, v in (doc.get("answers") or {}).items()}
    path_ids = {p.id for p in paths}
    for aid, rule in answers.items():
        where = f"ladder.yaml: answer {aid!r}"
        problems.extend(f"{where}: unknown field {f!r}" for f in rule if f not in _ANSWER_FIELDS)
        if len(aid.encode()) > 16:
            problems.append(f"{where}: id too long for callback data")
        if not isinstance(rule.get("button"), bool):
            problems.append(f"{where}: button must be true or false")
        status = rule.get("status", "keep")
        if status not in STATUSES + ("keep", "resume"):
            problems.append(f"{where}: unknown status {status!r}")
        if rule.get("rung", "stay") not in ("stay", "next", "first"):
            problems.append(f"{where}: rung must be stay, next or first")
        if rule.get("cadence", "continue") not in ("continue", "restart"):
            problems.append(f"{where}: cadence must be continue or restart")
        if "path" in rule and rule["path"] not in path_ids:
            problems.append(f"{where}: unknown path {rule['path']!r}")
        snooze = rule.get("snooze")
        if snooze is not None and not (isinstance(snooze, Mapping) and len(snooze) == 1
                                       and next(iter(snooze)) in _SNOOZE_UNITS
                                       and isinstance(next(iter(snooze.values())), int)
                                       and next(iter(snooze.values())) > 0):
            problems.append(f"{where}: snooze must be one of {_SNOOZE_UNITS} with a positive integer")

    dn = doc.get("deadline_nudges") or {}
    at_hour = dn.get("at_hour", 10)
    if not (isinstance(at_hour, int) and 0 <= at_hour <= 23):
        problems.append("ladder.yaml: deadline_nudges.at_hour must be an hour 0-23")
        at_hour = 10
    lead = tuple(dict(r) for r in dn.get("lead") or [] if isinstance(r, Mapping))
    if not lead or "window_days_max" in lead[-1]:
        problems.append("ladder.yaml: deadline_nudges.lead must end with a rule without window_days_max")
    for r in lead:
        if not (isinstance(r.get("days_before"), int) and r["days_before"] >= 0):
            problems.append(f"ladder.yaml: deadline_nudges.lead {r!r}: days_before must be an integer >= 0")
    return Ladder(rungs, tuple(paths), statuses, answers, int(at_hour), lead, tuple(problems))


def ladder_problems() -> list[str]:
    """Problems in `rules/ladder.yaml` (empty list = fine)."""
    load_ladder.cache_clear()
    return list(load_ladder().problems)


def answer_ids() -> tuple[str, ...]:
    """The nudge buttons' ids, in the order they are shown."""
    return tuple(a for a, rule in load_ladder().answers.items() if rule.get("button"))


def command_ids() -> tuple[str, ...]:
    """Answers that are not buttons: /remind's pause, resume, stop."""
    return tuple(a for a, rule in load_ladder().answers.items() if not rule.get("button"))


def message_keys() -> set[str]:
    """Every catalog key this module can use (for the catalog tests)."""
    ladder = load_ladder()
    keys = {NUDGE_KEY}
    keys |= {f"followup.rung.{r}" for r in ladder.rungs}
    keys |= {r.fallback for r in ladder.rungs.values()}
    keys |= {f"btn.nudge.{a}" for a in answer_ids()}
    keys |= {f"followup.answered.{a}" for a in ladder.answers} | {"followup.next_time"}
    return keys


# --------------------------------------------------------------------------- helpers

def _aware(moment: datetime, name: str = "now") -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone aware datetime")
    return moment


def _iso(moment: datetime) -> str:
    return _aware(moment, "time").astimezone(UTC).isoformat()


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return _aware(value, "time").astimezone(UTC)
    return _aware(datetime.fromisoformat(str(value)), "time").astimezone(UTC)


def _plan(plan_state: Mapping[str, Any]) -> PlanState:
    """A copy of a stored plan state, its version and status checked."""
    plan = copy.deepcopy(dict(plan_state))
    if plan.get("v") != VERSION or plan.get("status") not in STATUSES:
        raise ValueError("not a follow-up plan state (see dialogs/followup.py)")
    return cast(PlanState, plan)


def _headline(plan: PlanState) -> dict[str, str]:
    """What an answer's timeline entry compares before and after, in this order."""
    return {"status": plan["status"], "path": plan["path"], "rung": plan["rung"], "category": plan["category"]}


def _rungs(plan: PlanState) -> list[str]:
    return list(plan["ladders"][plan["path"]]["rungs"])


def _case_parts(case: Any) -> tuple[dict[str, Any], str | None]:
    """(slots, category) from a case: a Mapping with "slots"/"category" or an object with them."""
    if isinstance(case, Mapping):
        if "slots" in case:
            return dict(case.get("slots") or {}), case.get("category")
        return dict(case), None
    return dict(getattr(case, "slots", None) or {}), getattr(case, "category", None)


def _is_fraud(slots: Mapping[str, Any], category: str) -> bool:
    return bool(normalise_case(slots, category)["fraud"])


# --------------------------------------------------------------------------- the plan

def ladders_for(slots: Mapping[str, Any], category: str) -> dict[str, PathLadder]:
    """For each path: the rungs that apply to this case and the category used on it."""
    ladder = load_ladder()
    out: dict[str, PathLadder] = {}
    for path in ladder.paths:
        cat = category
        if path.category and not _is_fraud(slots, category):
            cat = path.category
        case = normalise_case(slots or {}, cat)
        rungs = [r for r in path.rungs if matches(ladder.rungs[r].when, case)]
        out[path.id] = {"rungs": rungs or list(path.rungs[-1:]), "category": cat}
    return out


def start_plan(slots: Mapping[str, Any], category: str, now: datetime
               ) -> tuple[PlanState, tuple[TimelineEvent, ...], tuple[Effect, ...]]:
    """The plan of a case that has just been advised: its path, ladder and first rung."""
    _aware(now)
    ladder = load_ladder()
    case = normalise_case(slots or {}, category)
    path = next((p for p in ladder.paths if matches(p.when, case)), ladder.paths[-1])
    ladders = ladders_for(slots, category)
    plan: PlanState = {
        "v": VERSION,
        "status": "waiting",
        "paused_from": None,
        "path": path.id,
        "category": ladders[path.id]["category"],
        "ladders": ladders,
        "rung": ladders[path.id]["rungs"][0],
        "n": 0,
        "anchor": _iso(now),
        "snoozed_until": None,
        "deadlines_nudged": [],
        "escalations": [],
        "started_at": _iso(now),
    }
    events = (TimelineEvent("followup_started", {"path": plan["path"], "rung": plan["rung"],
                                                 "rungs": _rungs(plan), "category": plan["category"]}),)
    effects: list[Effect] = [Effect("replan_followups")]
    if plan["category"] != category:
        effects.append(Effect("set_category", {"category": plan["category"]}))
    return plan, events, tuple(effects)


def nudges_active(plan_state: Mapping[str, Any]) -> bool:
    """Whether nudges are scheduled in this status (waiting, escalated)."""
    return bool(load_ladder().statuses.get(plan_state.get("status") or "", {}).get("nudges"))


def apply_answer(plan_state: Mapping[str, Any], answer: str, now: datetime
                 ) -> tuple[PlanState, tuple[TimelineEvent, ...], tuple[Effect, ...]]:
    """The user's answer to a nudge (a button id) or a /remind command (pause, resume, stop).

    Unknown answers raise ValueError (callback data is checked by the shell first).
    An answer to a resolved or abandoned case changes nothing; a button answer to a
    paused case resumes it.
    """
    _aware(now)
    ladder = load_ladder()
    if answer not in ladder.answers:
        raise ValueError(f"unknown follow-up answer {answer!r}")
    plan = _plan(plan_state)
    old = _headline(plan)
    if ladder.statuses[plan["status"]].get("final"):
        return plan, (TimelineEvent("nudge_answer_ignored", {"answer": answer, "status": plan["status"]}),), ()
    rule = ladder.answers[answer]
    effects: list[Effect] = []
    extra: list[TimelineEvent] = []
    data: dict[str, Any] = {"answer": answer}

    # path and rung
    new_path = rule.get("path")
    if new_path and new_path != plan["path"]:
        plan["path"] = new_path
        plan["category"] = plan["ladders"][new_path]["category"]
    rungs = _rungs(plan)
    move = rule.get("rung", "stay")
    if move == "first" or plan["rung"] not in rungs:
        plan["rung"] = rungs[0]
    elif move == "next":
        i = rungs.index(plan["rung"])
        if i + 1 < len(rungs):
            plan["rung"] = rungs[i + 1]
        else:
            data["ladder_end"] = True

    # status
    status = rule.get("status", "keep")
    if status in ("keep", "resume"):   # a button pressed on a paused case resumes it too
        status = (plan["paused_from"] or "waiting") if plan["status"] == "paused" else plan["status"]
    if status == "paused":
        if plan["status"] != "paused":
            plan["paused_from"] = plan["status"]
    else:
        plan["paused_from"] = None
    plan["status"] = status

    # timing
    plan["anchor"] = _iso(now)
    if rule.get("cadence") == "restart":
        plan["n"] = 0
    snooze = rule.get("snooze")
    if snooze:
        until = now + timedelta(**{k: int(v) for k, v in snooze.items()})
        plan["snoozed_until"] = _iso(until)
        data["snoozed_until"] = plan["snoozed_until"]
    else:
        plan["snoozed_until"] = None

    # escalation
    if rule.get("effect"):
        # An effect kind ladder.yaml names (draft_complaint); a shell logs and ignores one it does not know.
        effects.append(Effect(cast(EffectKind, str(rule["effect"])), {"rung": plan["rung"], "path": plan["path"],
                                                   "category": plan["category"]}))
    if answer == "escalate" or rule.get("effect") == "draft_complaint":
        plan["escalations"].append({"rung": plan["rung"], "at": _iso(now)})
        extra.append(TimelineEvent("escalation", {"rung": plan["rung"], "path": plan["path"]}))

    new = _headline(plan)
    for k in old:
        if new[k] != old[k]:
            data[k] = [old[k], new[k]]      # [before, after]
        elif k in ("status", "rung"):
            data[k] = new[k]
    if plan["category"] != old["category"]:
        effects.append(Effect("set_category", {"category": plan["category"]}))
    if plan["status"] != old["status"]:
        effects.append(Effect("set_case_status", {"status": plan["status"]}))
    effects.append(Effect("replan_followups") if nudges_active(plan) else Effect("cancel_followups"))
    return plan, (TimelineEvent("nudge_answer", data), *extra), tuple(effects)


def record_nudge(plan_state: Mapping[str, Any], nudge: Nudge, now: datetime
                 ) -> tuple[PlanState, tuple[TimelineEvent, ...]]:
    """After a nudge was sent: the next regular delay counts from now; a deadline is not announced twice."""
    _aware(now)
    plan = _plan(plan_state)
    data: dict[str, Any] = {"kind": nudge.kind, "rung": plan["rung"]}
    if nudge.kind == "regular":
        data["n"] = plan["n"]
        plan["n"] += 1
        plan["anchor"] = _iso(now)
        plan["snoozed_until"] = None
    else:
        did = str(nudge.data.get("deadline_id"))
        data["deadline_id"] = did
        if did not in plan["deadlines_nudged"]:
            plan["deadlines_nudged"].append(did)
    return plan, (TimelineEvent("nudge", data),)


# --------------------------------------------------------------------------- timing

def shift_out_of_quiet(moment: datetime, quiet_hours: tuple[int, int] | None, zone: tzinfo) -> datetime:
    """`moment` (UTC) moved to the end of the quiet hours (local, in `zone`) when it falls in them.

    (22, 8): 23:30 -> 08:00 the next day, 03:00 -> 08:00 the same day. (1, 6): 03:00 -> 06:00.
    The start hour is quiet, the end hour is not. The morning time is the wall-clock hour on
    that local date, whatever the DST offset that day.
    """
    moment = _aware(moment, "moment").astimezone(UTC)
    if not quiet_hours:
        return moment
    start, end = quiet_hours
    local = moment.astimezone(zone)
    hour = local.hour
    if start > end:                     # wraps around midnight
        if hour >= start:
            day = local.date() + timedelta(days=1)
        elif hour < end:
            day = local.date()
        else:
            return moment
    elif start <= hour < end:
        day = local.date()
    else:
        return moment
    target = datetime.combine(day, time(end), tzinfo=zone).astimezone(UTC)
    return max(target, moment)


def _deadline_parts(d: Any) -> tuple[str, date, str | None]:
    if isinstance(d, Deadline):
        return d.id, d.date, d.basis
    if isinstance(d, Mapping):
        dd = parse_date(d.get("date"))
        if dd is None:
            raise ValueError(f"deadline without a date: {d!r}")
        return str(d["id"]), dd, d.get("basis")
    raise TypeError(f"not a deadline: {d!r}")


def _days_before(window: int | None) -> int:
    for rule in load_ladder().lead:
        limit = rule.get("window_days_max")
        if limit is None or (window is not None and window <= limit):
            return int(rule["days_before"])
    return 0


def deadline_alarm(day: date, start: date | None) -> timedelta:
    """When the bot's own reminder of a deadline on `day` comes, from the start of that day: the
    same days before (by the deadline's window from `start`) at the same hour, as a calendar
    alarm's offset."""
    return timedelta(days=-_days_before((day - start).days if start else None), hours=load_ladder().at_hour)


def next_nudges(case_slots: Mapping[str, Any], category: str, plan_state: Mapping[str, Any],
                deadlines: Iterable[Deadline | Mapping[str, Any]], cadence: Sequence[timedelta],
                quiet_hours: tuple[int, int] | None, zone: tzinfo, now: datetime) -> list[Nudge]:
    """The nudges to schedule now, sorted by time: the next regular one and one per upcoming deadline.

    `category` is the case's; the plan's own (the fraud path's) wins when set. Nothing is
    scheduled for a paused, resolved or abandoned case. Every due time is >= now, aware UTC,
    and out of the quiet hours in `zone`.
    """
    _aware(now)
    now = now.astimezone(UTC)
    if not cadence:
        raise ValueError("cadence must have at least one delay")
    if any(d <= timedelta(0) for d in cadence):
        raise ValueError("cadence delays must be positive")
    plan = _plan(plan_state)
    if not nudges_active(plan):
        return []
    rung = plan["rung"]
    out: list[Nudge] = []

    # the regular nudge
    n = int(plan["n"])
    if plan.get("snoozed_until"):
        due = _parse_time(plan["snoozed_until"])
    else:
        due = _parse_time(plan["anchor"]) + cadence[min(n, len(cadence) - 1)]
    due = shift_out_of_quiet(max(due, now), quiet_hours, zone)
    out.append(Nudge(due, "regular", {"rung": rung, "n": n}))

    # deadline nudges
    ladder = load_ladder()
    slots = dict(case_slots or {})
    for d in deadlines:
        did, ddate, basis = _deadline_parts(d)
        if did in plan["deadlines_nudged"]:
            continue
        end = datetime.combine(ddate + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
        if now >= end:
            continue
        start = parse_date(slots.get(basis)) if basis else None
        window = (ddate - start).days if start else None
        planned = datetime.combine(ddate - timedelta(days=_days_before(window)), time(ladder.at_hour),
                                   tzinfo=zone).astimezone(UTC)
        due = shift_out_of_quiet(max(planned, now), quiet_hours, zone)
        if due >= end:
            continue
        out.append(Nudge(due, "deadline", {"rung": rung, "deadline_id": did,
                                           "deadline_date": ddate.isoformat()}))
    out.sort(key=lambda nudge: (nudge.due_at, KINDS.index(nudge.kind), str(nudge.data.get("deadline_id", ""))))
    return out


# --------------------------------------------------------------------------- replies

def _deadline_views(deadlines: Iterable[Any], today: date) -> list[dict[str, Any]]:
    ds = []
    for d in deadlines:
        did, ddate, basis = _deadline_parts(d)
        facts = tuple(d.facts) if isinstance(d, Deadline) else tuple(d.get("facts") or ())
        ds.append(Deadline(did, ddate, str(basis or ""), facts, (ddate - today).days))
    views: list[dict[str, Any]] = Advice("", (), (), tuple(ds), (), ()).context()["deadlines"]
    return views


def _rung_context(slots: Mapping[str, Any], plan: PlanState, today: date,
                  deadlines: Iterable[Any] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ladder = load_ladder()
    advice = advise(slots, plan["category"], today)
    views = _deadline_views(advice.deadlines if deadlines is None else deadlines, today)
    rung = ladder.rungs[plan["rung"]]
    step = next((s for s in advice.steps if s.startswith(rung.steps)), rung.fallback)
    upcoming = [v for v in views if v["id"] in rung.deadlines and not v["passed"]]
    upcoming.sort(key=lambda v: (v["date"], v["id"]))
    rungs = _rungs(plan)
    index = rungs.index(plan["rung"]) if plan["rung"] in rungs else 0
    return {
        "case": case_context(slots, plan["category"], today),
        "path": plan["path"],
        "status": plan["status"],
        "rung": plan["rung"],
        "rung_key": f"followup.rung.{plan['rung']}",
        "rung_number": index + 1,
        "rung_count": len(rungs),
        "last_rung": index + 1 == len(rungs),
        "step": step,
        "rung_deadline": upcoming[0] if upcoming else None,
    }, views


def nudge_reply(case: Any, plan_state: Mapping[str, Any], nudge: Nudge, today: date,
                deadlines: Iterable[Deadline | Mapping[str, Any]] | None = None) -> Reply:
    """The nudge message: what happened since? the current rung, its next step and deadline,
    the near deadline (deadline nudges), and the answer buttons.

    `case`: a Mapping with "slots" (and "category") or an object with `.slots`; the advice is
    computed with the plan's category. `deadlines` default to advise()'s for the case.
    """
    slots, _ = _case_parts(case)
    plan = _plan(plan_state)
    context, views = _rung_context(slots, plan, today, deadlines)
    near = None
    if nudge.kind == "deadline":
        did = nudge.data.get("deadline_id")
        near = next((v for v in views if v["id"] == did), None)
        if near is None and nudge.data.get("deadline_date"):
            near = _deadline_views([{"id": did, "date": nudge.data["deadline_date"]}], today)[0]
    context.update({"kind": nudge.kind, "near": near})
    buttons = tuple(Button(a, f"btn.nudge.{a}") for a in answer_ids())
    return Reply(NUDGE_KEY, context, buttons)


def answer_reply(case: Any, plan_state: Mapping[str, Any], answer: str, next_nudge: Nudge | None,
                 today: date, zone: tzinfo, deadlines: Iterable[Any] | None = None) -> Reply:
    """The acknowledgement of an answer (after apply_answer): what changed, the next step,
    and when the next nudge comes (local date and time in `zone`), if any."""
    if answer not in load_ladder().answers:
        raise ValueError(f"unknown follow-up answer {answer!r}")
    slots, _ = _case_parts(case)
    plan = _plan(plan_state)
    context, _ = _rung_context(slots, plan, today, deadlines)
    nxt = None
    if next_nudge is not None:
        local = _aware(next_nudge.due_at, "due_at").astimezone(zone)
        nxt = {"date": local.date().isoformat(), "time": local.strftime("%H:%M")}
    context.update({"answer": answer, "next": nxt})
    return Reply(f"followup.answered.{answer}", context)
