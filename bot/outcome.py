"""What a turn or a command leaves for a shell to send: replies (data, rendered by the shell) and
documents, in the user's language. Every service of bot/ (the conversation, the reminders, the
escalation) answers with one.

`sealed` is an outcome rendered to JSON, as the outbox keeps it (bot/storage/outbox.py): the texts
and buttons in the user's language, the letter, the documents. A turn writes it in its own
transaction (`ReplyTo` says where it goes), so a crash after the turn commits loses no reply."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypedDict, TypeVar

from bot.storage import OutboxRow
from dialogs.model import Reply
from messages import render, render_reply


@dataclass(frozen=True)
class Document:
    """A file to send: its name, its bytes, and its caption (a message key, or a reply to render)."""
    filename: str
    content: bytes
    caption: str | Reply


@dataclass
class Outcome:
    locale: str
    replies: list[Reply] = field(default_factory=list)
    case_id: int | None = None
    # A text rendered already (a complaint draft, messages/complaint.py), sent before the documents.
    letter: str | None = None
    documents: list[Document] = field(default_factory=list)
    answered: bool = True          # the open question took the user's text (else it is asked again)
    # False: the update was acted on already (a redelivery): nothing was done, nothing is to be sent.
    done: bool = True
    # True: written to the outbox with the turn's own transaction (the shell only has to flush it).
    queued: bool = False

    @classmethod
    def nothing(cls, locale: str) -> "Outcome":
        """The one way to say "nothing was done": the update was acted on already."""
        return cls(locale, done=False)


@dataclass(frozen=True)
class ReplyTo:
    """Where an outcome goes and what it answers, kept with it in the outbox: the chat, the update,
    what the user typed or pressed (shown under the question it answers), the message whose button
    was pressed, and what the shell adds to the buttons' data (`extra`) and to its ui state."""
    chat_id: int
    update_id: int | None
    answer: str | None = None
    typed: bool = False                # `answer` was typed: shown only if the question took it
    pressed_id: int | None = None
    pressed_html: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    remember: dict[str, Any] = field(default_factory=dict)
    aside: bool = False                # an acknowledgement: no buttons, the open question's keyboard kept

    def to_dict(self) -> dict[str, Any]:
        return {"chat": self.chat_id, "update": self.update_id, "answer": self.answer, "typed": self.typed,
                "pressed": [self.pressed_id, self.pressed_html] if self.pressed_id is not None else None,
                "extra": self.extra, "remember": self.remember, "aside": self.aside}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReplyTo":
        pressed = data.get("pressed") or [None, None]
        return cls(int(data["chat"]), data.get("update"), data.get("answer"), bool(data.get("typed")),
                   pressed[0], pressed[1], dict(data.get("extra") or {}), dict(data.get("remember") or {}),
                   bool(data.get("aside")))


class SealedMessage(TypedDict):
    text: str                           # Telegram HTML
    buttons: list[list[str]]            # [option id, label]


class SealedDocument(TypedDict):
    name: str
    content: str                        # base64
    caption: str                        # Telegram HTML


class Sealed(TypedDict):
    locale: str
    case: int | None
    answered: bool
    replies: list[SealedMessage]
    letter: str | None
    documents: list[SealedDocument]


def seal(outcome: Outcome) -> Sealed:
    """The outcome as it will be shown, JSON: every reply rendered in the user's language."""
    locale = outcome.locale
    replies: list[SealedMessage] = []
    for reply in outcome.replies:
        rendered = render_reply(locale, reply)
        replies.append({"text": rendered.text, "buttons": [[option, label] for option, label in rendered.buttons]})
    documents: list[SealedDocument] = [
        {"name": d.filename, "content": base64.b64encode(d.content).decode("ascii"),
         "caption": render_reply(locale, d.caption).text if isinstance(d.caption, Reply) else render(locale, d.caption)}
        for d in outcome.documents]
    return {"locale": locale, "case": outcome.case_id, "answered": outcome.answered, "replies": replies,
            "letter": outcome.letter, "documents": documents}


def outbox_row(user_id: int, outcome: Outcome, to: ReplyTo) -> OutboxRow:
    """The outcome as the outbox keeps it."""
    return OutboxRow(user_id, to.chat_id, to.update_id, {"outcome": seal(outcome), "to": to.to_dict()})


R = TypeVar("R")


class Acknowledgement(Generic[R]):
    """The reply to a change, made from the change's result inside its transaction and written
    to the outbox with it: `row` is what Storage.change_case takes as `outbox`; after the commit
    `outcome(result)` is that reply (made then, when there is no `reply_to`)."""

    def __init__(self, user_id: int, reply_to: ReplyTo | None, make: Callable[[R], Outcome]):
        self.user_id, self.reply_to, self.make = user_id, reply_to, make
        self._made: Outcome | None = None

    def row(self, result: R) -> OutboxRow | None:
        if self.reply_to is None:
            return None
        self._made = self.make(result)
        self._made.queued = True
        return outbox_row(self.user_id, self._made, self.reply_to)

    def outcome(self, result: R) -> Outcome:
        return self._made if self._made is not None else self.make(result)
