"""Bot API calls with Telegram's rules applied: RetryAfter and network errors retried (a bounded
number of times, for a bounded wait), a 403 marks the user blocked (their follow-up nudges
paused with it) and stops the turn's sends."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.storage import Storage
from bot.telegram.limiter import retry_after_seconds

log = logging.getLogger(__name__)
T = TypeVar("T")


class UserBlocked(Exception):
    """The user blocked the bot (403): nothing more is sent to them until they write."""


class Sender:
    def __init__(self, storage: Storage, *, attempts: int = 4, max_wait: float = 30.0, backoff: float = 0.5,
                 clock: Callable[[], datetime] | None = None):
        self.storage = storage
        self.attempts = attempts
        self.max_wait = max_wait
        self.backoff = backoff
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    async def call(self, user_id: int | None, what: str, fn: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
        """`fn(**kwargs)`, retried on RetryAfter and network errors. A 400 is raised at once; a
        403 marks the user blocked (when `user_id` is a private chat's user) and raises UserBlocked."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await fn(**kwargs)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if attempt == self.attempts or wait > self.max_wait:
                    log.warning("%s: flood control asks to wait %.0f s; giving up", what, wait)
                    raise
                log.info("%s: flood control, retrying in %.1f s", what, wait)
                await asyncio.sleep(wait)
            except Forbidden as exc:
                log.info("%s: forbidden (%s)", what, exc.message)
                if user_id is not None:
                    await self.storage.block_user(user_id, self.clock())
                raise UserBlocked(str(user_id)) from exc
            except BadRequest:
                raise
            except (TimedOut, NetworkError) as exc:
                if attempt == self.attempts:
                    log.warning("%s: network error, giving up after %d attempts: %s", what, attempt, exc.message)
                    raise
                wait = min(self.backoff * 2 ** (attempt - 1), self.max_wait)
                log.info("%s: network error (%s), retrying in %.1f s", what, exc.message, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")
