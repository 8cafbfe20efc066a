"""Callback data: what a button says when it is pressed, one small class per kind (aiogram's
`CallbackData` is the model). At most 64 bytes (Telegram's limit: `pack` refuses more), never
trusted: a press only claims something, and the handlers check the claim against the database
(the presser's own case, the question open now, the nudge still live).

    ask:<case id>:<question token>:<option id>    Answer: an answer to the open question of a case
    ask:<case id>:<question token>:#<index>       the same, when the option id would not fit
    case:<case id>                                SwitchCase: switch to one of my cases
    lang:<locale>                                 Language: choose the language
    end:<case id>:<outcome>                       CaseOutcome: the outcome of /resolved
    del:<nonce> / del:no                          Erase: confirm or refuse /delete
    nudge:<case id>:<followup id>:<answer>        NudgeAnswer: live while that nudge is the latest
    remind:<case id>:<choice>                     RemindChoice: a /remind button (cadence, pause, resume)
    esc:<case id>:<recipient>:<letter|_>:<c|n>    Escalate: the recipient, then the letter's language;
                                                  c: from /escalate, n: from a nudge's Escalate button
    timeline:<case id>                            Timeline: /status's button, the whole timeline and the advice
    ics:<case id>                                 Ics: the case's deadlines as a calendar file (.ics)

Buttons sent before the kinds had names carry a single letter instead (q, c, l, r, x, n, m, e, s, k):
`unpack` still reads them, so that a keyboard already in a chat keeps working.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self, Union

MAX_BYTES = 64


def fits(data: str) -> bool:
    return len(data.encode("utf-8")) <= MAX_BYTES


def _checked(data: str) -> str:
    if not fits(data):
        raise ValueError(f"callback data {data!r} does not fit in {MAX_BYTES} bytes")
    return data


@dataclass(frozen=True)
class Answer:
    prefix: ClassVar[str] = "ask"
    legacy: ClassVar[str] = "q"
    case_id: int
    question: str       # the question token (render.question_token)
    option: str         # an option id, or "#<index>" into the question's buttons

    def pack(self) -> str:
        return _checked(f"{self.prefix}:{self.case_id}:{self.question}:{self.option}")

    @classmethod
    def for_button(cls, case_id: int, question: str, option: str, index: int) -> str:
        """The button's data: by option id, or by its index when the id would not fit."""
        whole = cls(case_id, question, option)
        if fits(f"{cls.prefix}:{case_id}:{question}:{option}"):
            return whole.pack()
        try:
            return cls(case_id, question, f"#{index}").pack()
        except ValueError:
            raise ValueError(f"callback data for case {case_id}, question {question!r} does not fit "
                             f"in {MAX_BYTES} bytes") from None

    @classmethod
    def parse(cls, rest: str) -> "Answer":
        case, question, option = rest.split(":", 2)
        return cls(int(case), question, option)


@dataclass(frozen=True)
class _OneCase:
    """A button that names one case of the presser's and nothing else: `<prefix>:<case id>`."""
    prefix: ClassVar[str]
    legacy: ClassVar[str]
    case_id: int

    def pack(self) -> str:
        return _checked(f"{self.prefix}:{self.case_id}")

    @classmethod
    def parse(cls, rest: str) -> Self:
        return cls(int(rest))


@dataclass(frozen=True)
class SwitchCase(_OneCase):
    prefix: ClassVar[str] = "case"
    legacy: ClassVar[str] = "c"


@dataclass(frozen=True)
class Language:
    prefix: ClassVar[str] = "lang"
    legacy: ClassVar[str] = "l"
    locale: str

    def pack(self) -> str:
        return _checked(f"{self.prefix}:{self.locale}")

    @classmethod
    def parse(cls, rest: str) -> "Language":
        if not rest:
            raise ValueError("no locale")
        return cls(rest)


@dataclass(frozen=True)
class CaseOutcome:
    prefix: ClassVar[str] = "end"
    legacy: ClassVar[str] = "r"
    case_id: int
    outcome: str        # refunded, partial, none

    def pack(self) -> str:
        return _checked(f"{self.prefix}:{self.case_id}:{self.outcome}")

    @classmethod
    def parse(cls, rest: str) -> "CaseOutcome":
        case, outcome = rest.split(":", 1)
        return cls(int(case), outcome)


@dataclass(frozen=True)
class Erase:
    prefix: ClassVar[str] = "del"
    legacy: ClassVar[str] = "x"
    nonce: str          # the nonce of the confirmation asked, or "no"

    def pack(self) -> str:
        return _checked(f"{self.prefix}:{self.nonce}")

    @classmethod
    def parse(cls, rest: str) -> "Erase":
        if not rest:
            raise ValueError("no nonce")
        return cls(rest)


@dataclass(frozen=True)
class NudgeAnswer:
    prefix: ClassVar[str] = "nudge"
    legacy: ClassVar[str] = "n"
    case_id: int
    followup_id: int
    answer: str

    def pack(self) -> str:
        return _checked(f"{self.prefix}:{self.case_id}:{self.followup_id}:{self.answer}")

    @classmethod
    def parse(cls, rest: str) -> "NudgeAnswer":
        case, followup, answer = rest.split(":", 2)
        return cls(int(case), int(followup), answer)


@dataclass(frozen=True)
class RemindChoice:
    prefix: ClassVar[str] = "remind"
    legacy: ClassVar[str] = "m"
    case_id: int
    choice: str

    def pack(self) -> str:
        return _checked(f"{self.prefix}:{self.case_id}:{self.choice}")

    @classmethod
    def parse(cls, rest: str) -> "RemindChoice":
        case, choice = rest.split(":", 1)
        return cls(int(case), choice)


@dataclass(frozen=True)
class Escalate:
    prefix: ClassVar[str] = "esc"
    legacy: ClassVar[str] = "e"
    case_id: int
    recipient: str
    letter: str | None  # the letter's language once chosen; None while the recipient is chosen
    origin: str         # "c": /escalate, "n": a nudge's Escalate button

    def pack(self) -> str:
        return _checked(f"{self.prefix}:{self.case_id}:{self.recipient}:{self.letter or '_'}:{self.origin}")

    @classmethod
    def parse(cls, rest: str) -> "Escalate":
        case, recipient, letter, origin = rest.split(":", 3)
        return cls(int(case), recipient, None if letter == "_" else letter, origin)


@dataclass(frozen=True)
class Timeline(_OneCase):
    prefix: ClassVar[str] = "timeline"
    legacy: ClassVar[str] = "s"


@dataclass(frozen=True)
class Ics(_OneCase):
    prefix: ClassVar[str] = "ics"
    legacy: ClassVar[str] = "k"


CallbackData = Union[Answer, SwitchCase, Language, CaseOutcome, Erase, NudgeAnswer, RemindChoice, Escalate, Timeline,
                     Ics]
KINDS: tuple[type[CallbackData], ...] = (Answer, SwitchCase, Language, CaseOutcome, Erase, NudgeAnswer,
                                         RemindChoice, Escalate, Timeline, Ics)
_BY_PREFIX = {**{k.prefix: k for k in KINDS}, **{k.legacy: k for k in KINDS}}


def unpack(data: str | None) -> CallbackData | None:
    """What a button's data claims; None if it is not ours (or over 64 bytes). Claims are checked
    by the handlers."""
    if not data or not fits(data):
        return None
    prefix, _, rest = data.partition(":")
    kind = _BY_PREFIX.get(prefix)
    if kind is None:
        return None
    try:
        return kind.parse(rest)
    except ValueError:
        return None


def for_option(option: str, index: int, case_id: int | None, question: str, extra: dict[str, object]) -> str:
    """The data of a reply's button (dialogs' option ids, `kind:value` for the shell's own buttons).
    `case_id`, `question`: the active case and its open question (for answers); `extra`: what the
    delivery knows of the turn (the outcome's case, a /delete nonce, the escalation's origin)."""
    kind, _, value = option.partition(":")
    outcome_case = extra.get("outcome_case")
    if kind == "lang":
        return Language(value).pack()
    if kind == "case":
        return SwitchCase(int(value)).pack()
    if kind == "outcome":
        return CaseOutcome(int(str(outcome_case)), value).pack()
    if kind == "delete":
        return Erase(str(extra["nonce"]) if value == "yes" else "no").pack()
    if kind == "status":      # /status: the whole timeline and the advice
        return Timeline(int(value)).pack()
    if kind == "calendar":    # the deadlines as an .ics file (under the advice: the outcome's case)
        return Ics(int(value or str(outcome_case))).pack()
    if kind == "remind":
        return RemindChoice(int(str(outcome_case)), value).pack()
    if kind == "esc":         # /escalate: the recipient
        return Escalate(int(str(outcome_case)), value, None, str(extra.get("origin", "c"))).pack()
    if kind == "esclang":     # /escalate: the letter's language, for the recipient chosen
        return Escalate(int(str(outcome_case)), str(extra["recipient"]), value, str(extra.get("origin", "c"))).pack()
    if case_id is None:
        raise ValueError(f"a question button {option!r} with no active case")
    return Answer.for_button(case_id, question, option, index)
