"""What the storage says when it will not, or cannot, do something."""
from __future__ import annotations


class StorageError(Exception):
    """The database cannot be used (unreadable, not a database, newer schema)."""


class Refused(Exception):
    """A change the storage will not make (not the user's case, a stale nudge button)."""


class AlreadyDone(Exception):
    """save_turn, change_case: the update was acted on already; nothing was written."""


class StaleTurn(Exception):
    """save_turn: the case moved on since it was read (another instance took a turn meanwhile)."""
