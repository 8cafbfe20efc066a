"""What a turn or a command leaves for a shell to send: replies (data, rendered by the shell), in the user's language. Every service of bot/ (the conversation, the reminders, the
escalation) answers with one."""
from __future__ import annotations

from dataclasses import dataclass, field

from dialogs.model import Reply


@dataclass
class Outcome:
    locale: str
    replies: list[Reply] = field(default_factory=list)
    case_id: int | None = None
    # False: the update was acted on already (a redelivery): nothing was done, nothing is to be sent.
    done: bool = True

    @classmethod
    def nothing(cls, locale: str) -> "Outcome":
        """The one way to say "nothing was done": the update was acted on already."""
        return cls(locale, done=False)
