"""The rows the storage hands out (users, cases, follow-ups, timeline entries, evidence), the
changes it is given (PlanChange), and how they are read from and written to columns.

Times are stored as UTC ISO text: to the second, and due times to the millisecond in one fixed
format, so that text order is time order on both databases.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Mapping, Protocol, Sequence

from dialogs.model import Slots, TimelineEvent

CaseStatus = Literal["intake", "advised", "escalated", "resolved", "abandoned"]
CASE_STATUSES: tuple[CaseStatus, ...] = ("intake", "advised", "escalated", "resolved", "abandoned")
# A closed case answers no more questions and gets no more nudges: the one list of them.
CLOSED_STATUSES: tuple[CaseStatus, ...] = ("resolved", "abandoned")
# pending -> sending (claimed) -> sent | pending again (retry later) | failed; pending, sending or
# paused -> cancelled (replaced by a new plan, case closed); pending or sending -> paused (the user
# blocked the bot; replanned when they write again).
FOLLOWUP_STATES = ("pending", "sending", "sent", "cancelled", "failed", "paused")
LIVE_FOLLOWUPS = ("pending", "sending", "paused")
ACTIVE_PLAN = ("waiting", "escalated")     # plan statuses with nudges (dialogs/rules/ladder.yaml)

Row = Sequence[Any]


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time stored is time-zone aware")
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def iso_ms(moment: datetime) -> str:
    """Due times: UTC, to the millisecond, one fixed format (so that text order is time order)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time stored is time-zone aware")
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class User:
    id: int
    language: str | None
    time_zone: str | None
    blocked: bool
    seen_locale: str | None = None


@dataclass(frozen=True)
class Case:
    id: int
    user_id: int
    status: CaseStatus
    slots: Slots
    dialog: Mapping[str, Any]
    category: str | None
    confidence: float | None
    created_at: str
    updated_at: str
    plan: Mapping[str, Any] | None = None     # the reminder plan state (dialogs/followup.py)
    cadence: str | None = None                # /remind's choice; None = the configured default


@dataclass(frozen=True)
class Followup:
    """One row of `followups`: a nudge to send at `due_at`."""
    id: int
    case_id: int
    user_id: int
    due_at: datetime
    kind: str
    state: str
    attempts: int
    data: Mapping[str, Any]
    message_id: int | None = None
    answer: str | None = None


class PlannedNudge(Protocol):
    """A nudge to write (dialogs.followup.Nudge is one)."""
    @property
    def due_at(self) -> datetime: ...
    @property
    def kind(self) -> str: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class PlanChange:
    """What a reminder plan's transition writes to a case, with the turn that caused it.

    `nudges`: None leaves the case's follow-ups as they are; a sequence (of dialogs.followup.Nudge)
    replaces every live one (pending, sending, paused): they are cancelled and these are inserted,
    paused if the user has blocked the bot. An empty sequence cancels them all."""
    plan: Mapping[str, Any] | None = None
    events: Sequence[TimelineEvent] = ()
    status: CaseStatus | None = None
    category: str | None = None
    nudges: Sequence[PlannedNudge] | None = None
    cadence: str | None = None
    set_cadence: bool = False


@dataclass(frozen=True)
class TimelineEntry:
    """One stored event of a case's timeline (a dialogs.model.TimelineEvent, with its time)."""
    at: str
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    id: int
    case_id: int
    kind: str
    file_id: str | None
    text: str | None
    at: str


CASE_COLUMNS = "id, user_id, status, slots, dialog, category, confidence, created_at, updated_at, plan, cadence"
USER_COLUMNS = "id, language, time_zone, blocked, seen_locale"
FOLLOWUP_COLUMNS = "id, case_id, user_id, due_at, kind, state, attempts, data, message_id, answer"
# A user and one of their cases in one row: u.* then c.* (the tables aliased u and c).
USER_AND_CASE = ", ".join([*("u." + c.strip() for c in USER_COLUMNS.split(",")),
                           *("c." + c.strip() for c in CASE_COLUMNS.split(","))])
_USER_WIDTH = len(USER_COLUMNS.split(","))


def case_of(row: Row) -> Case:
    return Case(id=row[0], user_id=row[1], status=row[2], slots=json.loads(row[3]), dialog=json.loads(row[4]),
                category=row[5], confidence=row[6], created_at=row[7], updated_at=row[8],
                plan=json.loads(row[9]) if row[9] else None, cadence=row[10])


def user_of(row: Row) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), row[4])


def user_and_case_of(row: Row) -> tuple[User, Case]:
    return user_of(row[:_USER_WIDTH]), case_of(row[_USER_WIDTH:])


def followup_of(row: Row) -> Followup:
    return Followup(id=row[0], case_id=row[1], user_id=row[2], due_at=parse_time(row[3]), kind=row[4], state=row[5],
                    attempts=row[6], data=json.loads(row[7]), message_id=row[8], answer=row[9])


def plan_active(plan: Mapping[str, Any] | None) -> bool:
    return bool(plan) and plan is not None and plan.get("status") in ACTIVE_PLAN
