"""Long polling in which no update is lost and none can jam the others (issue 18).

python-telegram-bot's Updater moves the getUpdates offset past a batch as soon as it is queued, so
an update whose replies could not be sent is gone; and when one update of a batch cannot be parsed
the whole batch is fetched again, forever. Here each update is parsed on its own and processed
(as the webhook does: bot.telegram.acks says what it is worth), and the offset moves past an update
only once it is made good or poisoned. An update left for later (RETRY: the Bot API or the database
failing) is fetched again after a pause, with the ones after it; those are not acted on twice
(processed-update ids), only the failed one's replies are sent.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine

from telegram import Update
from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot.telegram.acks import POISON, RETRY, Acks
from bot.telegram.limiter import retry_after_seconds

log = logging.getLogger("bot.telegram")
PAUSE_FIRST, PAUSE_MAX = 1.0, 30.0      # seconds before fetching again after a failure, doubling
BOOTSTRAP_ATTEMPTS = 5


class Poller:
    def __init__(self, app: Application, acks: Acks, process: Callable[[Update], Coroutine[Any, Any, str]], *,
                 timeout: float, allowed_updates: list[str] | None = None):
        self.app = app
        self.acks = acks
        self.process = process
        self.timeout = timeout
        self.allowed_updates = allowed_updates
        self.offset: int | None = None
        self._stopping = False
        self._fetching = False
        self._task: asyncio.Task | None = None
        self._pause = PAUSE_FIRST

    async def start(self) -> None:
        """deleteWebhook (getUpdates is refused while one is set), then poll in the background."""
        for attempt in range(1, BOOTSTRAP_ATTEMPTS + 1):
            try:
                await self.app.bot.delete_webhook(drop_pending_updates=False)
                break
            except RetryAfter as exc:
                if attempt == BOOTSTRAP_ATTEMPTS:
                    raise
                await asyncio.sleep(retry_after_seconds(exc))
            except NetworkError as exc:
                if attempt == BOOTSTRAP_ATTEMPTS or isinstance(exc, InvalidToken):
                    raise
                await asyncio.sleep(min(PAUSE_FIRST * 2 ** (attempt - 1), PAUSE_MAX))
        self._task = asyncio.create_task(self._run(), name="refund-advisor:polling")

    async def stop(self) -> None:
        """The batch in hand finished, then one last getUpdates confirms what was made good."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        if self._fetching:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        if self.offset is not None:
            try:
                await self._fetch(0)
            except TelegramError as exc:
                log.warning("could not confirm the last updates to Telegram (they may come again, and are "
                            "not acted on twice): %s", exc.message)

    async def _fetch(self, timeout: float) -> list:
        data = {"timeout": timeout, "offset": self.offset, "allowed_updates": self.allowed_updates}
        return await self.app.bot._post("getUpdates", {k: v for k, v in data.items() if v is not None},
                                        read_timeout=timeout + 10)

    async def _run(self) -> None:
        while not self._stopping:
            self._fetching = True
            try:
                raw = await self._fetch(self.timeout)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await self._wait(retry_after_seconds(exc), f"getUpdates: flood control ({exc.message})")
                continue
            except TelegramError as exc:
                await self._wait(self._pause, f"getUpdates failed: {exc.message}")
                self._pause = min(self._pause * 2, PAUSE_MAX)
                continue
            finally:
                self._fetching = False
            if not isinstance(raw, list):
                raw = []
            retry_from = await self._handle(raw)
            if retry_from is not None:
                self.offset = retry_from
                await self._wait(self._pause, None)
                self._pause = min(self._pause * 2, PAUSE_MAX)
            else:
                self._pause = PAUSE_FIRST

    async def _wait(self, seconds: float, why: str | None) -> None:
        if why:
            log.warning("%s; polling again in %.0f s", why, seconds)
        self._fetching = True           # a stop may cut the pause short
        try:
            await asyncio.sleep(seconds)
        finally:
            self._fetching = False

    async def _handle(self, batch: list) -> int | None:
        """Process a batch, each update on its own; the id to fetch from again, or None when the
        whole batch is made good (the offset then moves past it)."""
        work: list[tuple[int, asyncio.Task | None]] = []
        for raw in batch:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            if not isinstance(update_id, int):
                log.error("getUpdates gave something that is not an update; skipped")
                continue
            try:
                update = Update.de_json(raw, self.app.bot)
            except Exception as exc:    # whatever the library cannot read
                self.acks.poison(update_id, f"cannot be read ({type(exc).__name__})")
                work.append((update_id, None))
                continue
            work.append((update_id, asyncio.create_task(self.process(update))))
        retry_from = None
        for update_id, task in work:
            verdict = await task if task is not None else POISON
            if verdict == RETRY and retry_from is None:
                retry_from = update_id
            self.offset = max(self.offset or 0, update_id + 1) if retry_from is None else retry_from
        return retry_from
