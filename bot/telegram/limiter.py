"""One budget of Bot API requests a second for replies and nudges, replies first.

python-telegram-bot's AIORateLimiter limits the overall rate with a leaky bucket, which lets a full
second's worth through at once after a quiet spell: up to twice the rate within one second, which
Telegram answers with 429s. Here the overall limit is a sliding window (never more than
`per_second` requests in any second), counted from each request's answer (a request that arrived
later than it left still falls in the right second), and with two lanes: a nudge (a request made
while `LOW_PRIORITY` is set, as the follow-up dispatcher does) takes a place only when no reply is
waiting and `reserve` places are left, so the nudges use what the replies leave. Groups keep
AIORateLimiter's own limit (20 a minute).
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import warnings
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter

LOW_PRIORITY: contextvars.ContextVar[bool] = contextvars.ContextVar("low_priority", default=False)
_POLL = 0.01        # how often a nudge waiting behind replies looks again (seconds)


def retry_after_seconds(error: RetryAfter) -> float:
    """How long Telegram asked to wait, in seconds, whichever type python-telegram-bot gives it
    (an int now, a timedelta in its next major version; reading it warns until then)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class Window:
    """At most `limit` places taken in any `period` seconds; a place counts from when it is taken
    until `period` after it is given back."""

    def __init__(self, limit: int, period: float = 1.0, reserve: int = 1):
        self.limit = limit
        self.period = period
        self.reserve = reserve
        self._taken: list[list[float]] = []      # [time given back]; inf while the request runs
        self._replies_waiting = 0
        self._held_until = 0.0

    def _free(self, now: float) -> int:
        cutoff = now - self.period
        self._taken = [t for t in self._taken if t[0] > cutoff]
        return self.limit - len(self._taken)

    def _next_change(self, now: float) -> float:
        """Seconds until a place may come free (a request still running: look again soon)."""
        done = [t[0] + self.period for t in self._taken if t[0] != float("inf")]
        return max(min(done, default=now + _POLL) - now, 0.001)

    async def take(self, low: bool) -> list[float]:
        loop = asyncio.get_running_loop()
        if not low:
            self._replies_waiting += 1
        try:
            while True:
                now = loop.time()
                if now < self._held_until:
                    await asyncio.sleep(self._held_until - now)
                    continue
                free = self._free(now)
                needed = self.reserve + 1 if low else 1
                if free >= needed and not (low and self._replies_waiting):
                    place = [float("inf")]
                    self._taken.append(place)
                    return place
                await asyncio.sleep(self._next_change(now) if free < needed else _POLL)
        finally:
            if not low:
                self._replies_waiting -= 1

    def give_back(self, place: list[float]) -> None:
        place[0] = asyncio.get_running_loop().time()

    def hold(self, seconds: float) -> None:
        """Telegram asked to wait (429): no request goes out before then."""
        self._held_until = max(self._held_until, asyncio.get_running_loop().time() + seconds)


class _RetryAfterIsNotAnError(logging.Filter):
    """With max_retries=0, AIORateLimiter logs every 429 as an ERROR with a traceback before raising
    it; the Sender waits it out and logs it as what it is (flood control, retried)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Rate limit hit after maximum"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info = record.exc_text = None
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class SharedLimiter(AIORateLimiter):
    """AIORateLimiter with the overall limit replaced by `Window` (see the module's docstring).
    `per_second=0`: no overall limit."""

    def __init__(self, per_second: int = 30, *, reserve: int = 1, max_retries: int = 0, **kwargs: Any):
        super().__init__(overall_max_rate=0, max_retries=max_retries, **kwargs)
        ptb_log = logging.getLogger("telegram.ext.AIORateLimiter")
        if not any(isinstance(f, _RetryAfterIsNotAnError) for f in ptb_log.filters):
            ptb_log.addFilter(_RetryAfterIsNotAnError())
        self.window = Window(per_second, reserve=reserve) if per_second else None

    async def _run_request(self, chat, group, allow_paid_broadcast, callback, args, kwargs):
        if not chat or self.window is None or allow_paid_broadcast:
            return await super()._run_request(chat, group, allow_paid_broadcast, callback, args, kwargs)
        place = await self.window.take(LOW_PRIORITY.get())
        try:
            return await super()._run_request(chat, group, allow_paid_broadcast, callback, args, kwargs)
        except RetryAfter as exc:
            self.window.hold(retry_after_seconds(exc))
            raise
        finally:
            self.window.give_back(place)
