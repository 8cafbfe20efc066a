"""The follow-up dispatcher: sends the nudges that are due.

The database is the source of truth (ARCHITECTURE.md; the rows are bot/storage/queue.py's). One
APScheduler date job is armed at the earliest pending due time; it is moved earlier when a turn
schedules an earlier nudge (`poke`) and re-armed from the database after each run. A run claims
due rows in batches (pending -> sending, atomically), sends them one at a time through the
application's bot (the same limiter as the replies, in its low-priority lane: the nudges take what
the replies leave of the 30 requests a second) and records each one before the next goes: a crash
between a send and its record repeats that one nudge, and no other. A million pending nudges are a
million rows and one job.

- RetryAfter (429) is waited out by the Sender when short, else the row is retried after it.
- 5xx and network errors: retried by the Sender, then the row is retried later with a growing
  delay. A 400 is retried a few times, then the row fails (the plan's cadence goes on).
- 403 (blocked): the Sender marks the user blocked and pauses their rows; they are planned
  again when the user writes.
- A row is checked just before it is sent: a case resolved or deleted meanwhile sends nothing.
- Start-up re-arms rows left `sending` by a crash: at most the nudge in flight then is repeated.
  One process per SQLite file; on PostgreSQL several instances share the rows (claims skip each
  other's locked rows, and a claim is a lease: only a dead instance's rows are re-armed, once
  the lease is over; see bot/storage/postgres.py).
- A stop lets the nudge in flight finish and be recorded; the rest of the batch goes back to
  pending at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
from contextlib import AbstractAsyncContextManager
import logging
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from telegram.constants import ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter

from bot.reminders import Reminders
from bot.storage import Followup, Storage
from bot.telegram import render as tg
from bot.telegram.callback_data import NudgeAnswer
from bot.telegram.limiter import LOW_PRIORITY, retry_after_seconds
from bot.telegram.sender import Sender, UserBlocked
from messages import render_reply

log = logging.getLogger(__name__)
UTC = timezone.utc
JOB_ID = "followups"
SHARED_LOOK_AGAIN = timedelta(minutes=1)


def _button_group(option: str) -> str:
    """The answers in rows of their own, the snoozes in theirs."""
    return "snooze" if option.startswith("snooze") else "answer"


class Dispatcher:
    def __init__(self, storage: Storage, reminders: Reminders, sender: Sender, *,
                 clock: Callable[[], datetime] | None = None, batch_size: int = 100, concurrency: int = 1,
                 retry_base: float = 5.0, retry_max: float = 600.0, max_bad_requests: int = 3,
                 stop_grace: float = 5.0):
        self.storage = storage
        self.queue = storage.queue
        self.reminders = reminders
        self.sender = sender
        self.clock = clock or (lambda: datetime.now(UTC))
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.max_bad_requests = max_bad_requests
        self.stop_grace = stop_grace
        self.scheduler: AsyncIOScheduler | None = None
        self._bot: Any = None
        self._armed: datetime | None = None     # the due time the job is armed for (the clock's time)
        self._worker: asyncio.Task | None = None
        self._again = False
        self._stopping = False
        self._in_flight: set[int] = set()
        self._catch_up: asyncio.Task | None = None
        # The chat to the dispatcher while a nudge goes out (Delivery.turn_of): what the chat is
        # owed is sent first, and a nudge never lands between the parts of a reply.
        self.chat_turn: Callable[[int], AbstractAsyncContextManager[None]] = lambda chat_id: contextlib.nullcontext()
        reminders.listeners.append(self.poke)

    # ---- lifecycle (the Application's post_init and post_stop) ------------------------

    async def start(self, application: Any) -> None:
        self._bot = application.bot
        self._stopping = False
        rearmed = await self.queue.rearm_followups(self.clock())
        if rearmed:
            log.info("%d follow-up(s) left in flight by the last run are pending again", rearmed)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.start()
        await self._arm_from_db()
        log.info("follow-up dispatcher started%s",
                 f"; next nudge due {self._armed.isoformat(timespec='seconds')}" if self._armed else "")
        # A one-off catch-up (cases advised before follow-ups existed), after arming: the nudges
        # already due need not wait for it, and the plans it starts wake the dispatcher (poke).
        self._catch_up = asyncio.get_running_loop().create_task(self._start_unplanned(), name="followups-catch-up")

    async def _start_unplanned(self) -> None:
        try:
            started = await self.reminders.start_unplanned()
        except Exception:
            log.exception("could not start the follow-ups of cases advised before follow-ups existed")
            return
        if started:
            log.info("follow-ups started for %d case(s) advised before follow-ups existed", started)

    def halt(self) -> None:
        """No nudge starts from now on (the one in flight finishes); `stop` does the rest."""
        self._stopping = True

    async def stop(self, application: Any = None) -> None:
        """No new run; the nudge in hand gets a few seconds to finish, then is cancelled; the
        unsent rows are released (pending again)."""
        self._stopping = True
        catch_up, self._catch_up = self._catch_up, None
        if catch_up is not None and not catch_up.done():
            # Each case's plan is one transaction: cancelled, the rest start at the next start-up.
            catch_up.cancel()
            with contextlib.suppress(BaseException):
                await catch_up
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        self._armed = None
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            try:
                await asyncio.wait_for(asyncio.shield(worker), self.stop_grace)
            except (asyncio.TimeoutError, Exception):
                worker.cancel()
                with contextlib.suppress(BaseException):
                    await worker
        if self._in_flight:
            await self.queue.release_followups(sorted(self._in_flight), self.clock())
            self._in_flight.clear()

    # ---- the timer ----------------------------------------------------------------------

    def poke(self, due: datetime) -> None:
        """A nudge was scheduled at `due`: wake up then if that is earlier than planned."""
        if self.scheduler is None or self._stopping:
            return
        if self._armed is None or due < self._armed:
            self._arm(due)

    def _arm(self, due: datetime) -> None:
        # The scheduler runs on the real clock; `due` is on ours (the same, except in tests).
        delay = max((due - self.clock()).total_seconds(), 0.0)
        self._armed = due
        if self.scheduler is None:
            return
        self.scheduler.add_job(self._wake, DateTrigger(datetime.now(UTC) + timedelta(seconds=delay)), id=JOB_ID,
                               replace_existing=True, misfire_grace_time=None, coalesce=True, max_instances=1)

    async def rearm(self) -> None:
        """Arm again from the database (the clock moved, or rows were changed by hand)."""
        self._armed = None
        await self._arm_from_db()

    async def _arm_from_db(self) -> None:
        earliest = await self.queue.earliest_followup()
        if self.scheduler is None or self._stopping:
            return
        if self.queue.shared:
            # Other instances poke only themselves: nudges one of them scheduled and did not live to
            # send (or leases it left) are found by looking again at least this often.
            latest = self.clock() + SHARED_LOOK_AGAIN
            earliest = latest if earliest is None else min(earliest, latest)
        if earliest is not None and (self._armed is None or earliest < self._armed):
            self._arm(earliest)

    async def _wake(self) -> None:
        self._armed = None
        self.kick()

    def kick(self) -> None:
        """Run now (or once more after the run in hand)."""
        if self._stopping:
            return
        if self._worker is None or self._worker.done():
            # Every request of the run goes in the limiter's low-priority lane (the task's context).
            context = contextvars.copy_context()
            context.run(LOW_PRIORITY.set, True)
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="followups", context=context)
        else:
            self._again = True

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                while not self._stopping:
                    batch = await self.queue.claim_followups(self.clock(), self.batch_size)
                    if not batch:
                        break
                    await self._send_batch(batch)
            except Exception:
                log.exception("follow-up run failed; re-arming")
            if self._stopping:
                return
            try:
                await self._arm_from_db()
            except Exception:
                log.exception("could not re-arm the follow-up dispatcher; trying again in a minute")
                if self.scheduler is not None and not self._stopping:
                    self._arm(self.clock() + timedelta(minutes=1))
            if not self._again:
                return

    # ---- sending ------------------------------------------------------------------------

    async def _send_batch(self, batch: list[Followup]) -> None:
        """The batch's cases, `concurrency` at a time (the rate limiter paces the requests; each one
        in flight is one a crash may repeat); the rows of one case together, as one message."""
        by_case: OrderedDict[int, list[Followup]] = OrderedDict()
        for row in batch:
            by_case.setdefault(row.case_id, []).append(row)
            self._in_flight.add(row.id)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(rows: list[Followup]) -> None:
            async with gate:
                if self._stopping:
                    return           # left in flight: released (pending again) by stop()
                try:
                    await self._deliver(rows)
                except asyncio.CancelledError:
                    raise            # a stop: left in flight, released (pending again) by stop()
                except Exception:
                    log.exception("follow-up %s: unexpected error", [r.id for r in rows])
                    await self._retry(rows, self.retry_base)
            self._in_flight.difference_update(r.id for r in rows)

        await asyncio.gather(*(one(rows) for rows in by_case.values()))

    async def _retry(self, rows: list[Followup], delay: float) -> None:
        due = self.clock() + timedelta(seconds=delay)
        for row in rows:
            await self.queue.followup_retry(row.id, due, self.clock())

    def _backoff(self, attempts: int) -> float:
        return min(self.retry_base * 2 ** max(attempts - 1, 0), self.retry_max)

    async def _deliver(self, rows: list[Followup]) -> None:
        """Nudges of one case due together go out as one message: a deadline nudge if there is
        one (it says everything a regular one says, and the deadline)."""
        primary = next((r for r in rows if r.kind == "deadline"), rows[0])
        found = await self.queue.followup_to_send(primary.id)
        if found is None:
            # Resolved, deleted, blocked or replanned since the claim. Rows still claimed go back to
            # pending: the next claim sends them, or settles them (cancelled, paused) if it must not.
            await self.queue.release_followups([r.id for r in rows], self.clock())
            return
        user, case = found
        sendable = [primary] + [r for r in rows if r is not primary and await self.queue.followup_sendable(r.id)]
        if not case.plan:
            return
        now = self.clock()
        locale = self.reminders.locale(user)
        rendered = render_reply(locale, self.reminders.nudge_message(user, case, primary, now))
        buttons = [(option, label, NudgeAnswer(case.id, primary.id, option).pack()) for option, label in rendered.buttons]
        try:
            async with self.chat_turn(user.id):
                message = await self._send(user.id, rendered.text, tg.flowing_keyboard(buttons, group=_button_group))
        except UserBlocked:
            log.info("follow-up %d: the user blocked the bot; their nudges are paused", primary.id)
            return
        except RetryAfter as exc:
            log.info("follow-up %d: flood control, retrying in %.0f s", primary.id, retry_after_seconds(exc))
            await self._retry(sendable, retry_after_seconds(exc))
            return
        except BadRequest as exc:
            if primary.attempts >= self.max_bad_requests:
                log.warning("follow-up %d failed for good: %s", primary.id, exc.message)
                # The plan goes on from now, so that nudges never stop silently.
                await self.queue.followup_failed(
                    [r.id for r in sendable], self.clock(), exc.message,
                    self.reminders.recorder(sendable, self.clock(), failed=exc.message))
                return
            log.info("follow-up %d: %s; retrying", primary.id, exc.message)
            await self._retry(sendable, self._backoff(primary.attempts))
            return
        except NetworkError as exc:
            log.info("follow-up %d: network error (%s); retrying later", primary.id, exc.message)
            await self._retry(sendable, self._backoff(primary.attempts))
            return
        replaced = await self.queue.followup_sent(
            [primary.id] + [r.id for r in sendable if r is not primary], message.message_id, self.clock(),
            self.reminders.recorder(sendable, self.clock()), owner=(primary.case_id, primary.user_id))
        for message_id in replaced:
            await self._retire(user.id, message_id)

    async def _send(self, user_id: int, html: str, markup: Any) -> Any:
        parts = tg.split_html(html, tg.MAX_TEXT)
        sent = None
        for i, part in enumerate(parts):
            sent = await self.sender.call(
                user_id, "sendMessage (nudge)", self._bot.send_message, chat_id=user_id, text=part,
                parse_mode=ParseMode.HTML, disable_web_page_preview=True,
                reply_markup=markup if i == len(parts) - 1 else None)
        return sent

    async def _retire(self, user_id: int, message_id: int) -> None:
        """An earlier nudge's keyboard, replaced by a newer nudge of the same case: removed."""
        try:
            await self.sender.call(user_id, "editMessageReplyMarkup (old nudge)",
                                   self._bot.edit_message_reply_markup,
                                   chat_id=user_id, message_id=message_id, reply_markup=None)
        except (BadRequest, UserBlocked, NetworkError, RetryAfter) as exc:
            log.debug("could not retire the keyboard of an old nudge: %s", exc)
