"""What a turn or a command leaves for a shell to send: replies (data, rendered by the shell) and
documents, in the user's language. Every service of bot/ (the conversation, the reminders, the
escalation) answers with one."""
from __future__ import annotations

from dataclasses import dataclass, field

from dialogs.model import Reply


@dataclass(frozen=True)
class Document:
    """A file to send: its name, its bytes, and the message key of its caption."""
    filename: str
    content: bytes
    caption: str


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

    @classmethod
    def nothing(cls, locale: str) -> "Outcome":
        """The one way to say "nothing was done": the update was acted on already."""
        return cls(locale, done=False)
