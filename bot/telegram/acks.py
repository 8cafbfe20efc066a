"""Which updates the bot has made good, and may acknowledge to Telegram (issue 18).

An update is made good when its turn is committed and its replies are out (or the user blocked
the bot). A handler that fails on the way ends in the Application's error handlers; `Acks.on_error`
keeps that failure for the update, and `verdict(update_id)` says what to tell Telegram:

- OK: acknowledge (webhook 200, polling offset past it);
- RETRY: the failure is the Bot API's or the database's, not the update's: do not acknowledge,
  Telegram delivers it again (a redelivered turn is not acted on twice, only its replies resent);
- POISON: the update itself cannot be handled: acknowledge it anyway, so that it is not delivered
  again and again and the updates after it go on; it is logged once with its id and counted.

An update still failing after `MAX_RETRIES` deliveries is treated as poison too.
"""
from __future__ import annotations

import asyncio
import logging

from telegram import Update
from telegram.error import BadRequest, NetworkError, RetryAfter

from bot.storage import TRANSIENT_DATABASE_ERRORS

log = logging.getLogger("bot.telegram")

OK, RETRY, POISON = "ok", "retry", "poison"
MAX_RETRIES = 20            # deliveries of one failing update before it counts as poison
_REMEMBERED = 10_000        # updates whose retries are counted, at most


def transient(error: BaseException | None) -> bool:
    """A failure that a later delivery of the same update may not meet: the Bot API unreachable,
    failing or asking to wait; the database unreachable or busy."""
    if isinstance(error, RetryAfter):
        return True
    if isinstance(error, NetworkError):         # TimedOut, 5xx from the Bot API, connection errors
        return not isinstance(error, BadRequest)
    return isinstance(error, (ConnectionError, asyncio.TimeoutError, *TRANSIENT_DATABASE_ERRORS))


class Acks:
    def __init__(self) -> None:
        self.poisoned = 0
        self._errors: dict[int, BaseException] = {}
        self._retries: dict[int, int] = {}

    async def on_error(self, update: object, context) -> None:
        """An Application error handler: the failure is kept for the update's verdict."""
        if isinstance(update, Update):
            self._errors[update.update_id] = context.error

    def database_failure(self, update_id: int) -> BaseException | None:
        """The update failed because the database is busy or unreachable (and may succeed if tried
        again in a moment): that failure, forgotten so that the update can be tried again."""
        error = self._errors.get(update_id)
        if error is not None and isinstance(error, TRANSIENT_DATABASE_ERRORS):
            return self._errors.pop(update_id)
        return None

    def verdict(self, update_id: int) -> str:
        error = self._errors.pop(update_id, None)
        if error is None:
            self._retries.pop(update_id, None)
            return OK
        if transient(error):
            tries = self._retries.pop(update_id, 0) + 1
            if tries < MAX_RETRIES:
                if len(self._retries) >= _REMEMBERED:
                    self._retries.pop(next(iter(self._retries)))
                self._retries[update_id] = tries
                log.warning("update %d not made good (%s): left for Telegram to deliver again",
                            update_id, type(error).__name__)
                return RETRY
            self.poison(update_id, f"still failing after {tries} deliveries ({type(error).__name__})")
            return POISON
        self.poison(update_id, f"its handling failed ({type(error).__name__})")
        return POISON

    def poison(self, update_id: int | None, why: str) -> None:
        """An update acknowledged without being made good: logged once, counted."""
        self.poisoned += 1
        log.error("update %s is poisoned: %s; acknowledged so that it is not delivered again "
                  "(%d poisoned since start)", update_id, why, self.poisoned)
