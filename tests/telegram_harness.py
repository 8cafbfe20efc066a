"""Shared by tests/test_telegram_*.py: the real bot (bot.telegram_app.serve, the code path of
`refund-advisor run`) in this event loop, against the Bot API emulator of tests/botapi.

`Harness.say / command / press` act as a user and return once the bot has finished that
update (the application reports each finished update), with the bot messages sent after it.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ may or may not be a package
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

from bot.config import Config
from bot.telegram_app import TelegramBot, serve

STEP_TIMEOUT = 10.0


def config_for(emu: BotApiEmulator, db_path: Path, token: str | None = None, **overrides: Any) -> Config:
    settings = {"followup": (timedelta(days=2),), "quiet_hours": None, **overrides}
    return Config(token=token or emu.token, api_base_url=emu.base_url, db_path=str(db_path), **settings)


ADVICE_NODE = "done"     # the advice's own buttons ("That's not my situation") answer no question


def question_of(message: dict) -> str | None:
    """The node a message's keyboard answers (from its callback data q:<case>:<node>:<option>);
    None for the advice, whose button stays live after the intake."""
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data", "")
            if data.startswith("ask:"):
                node = data.split(":", 3)[2]
                return None if node == ADVICE_NODE else node
    return None


def is_advice_keyboard(message: dict) -> bool:
    datas = [b.get("callback_data", "") for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
             for b in row]
    return bool(datas) and all((d.startswith("ask:") and d.split(":", 3)[2] == ADVICE_NODE) or d.startswith("ics:")
                               for d in datas)       # ics: the dates as a calendar file


def buttons_of(message: dict) -> dict[str, str]:
    """label -> callback data of a message's inline keyboard."""
    return {b["text"]: b.get("callback_data", b.get("url", ""))
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row}


def option_data(message: dict, option: str) -> str:
    """The callback data of the button carrying engine option `option`."""
    for data in buttons_of(message).values():
        if data.startswith("ask:") and data.split(":", 3)[3] == option:
            return data
    raise AssertionError(f"no button for option {option!r} in {buttons_of(message)}")



async def answer_intake(h: "Harness", user, story: str, answers: dict[str, str]) -> dict:
    """Tell `story`, then answer whatever is still asked from `answers` (question -> option id, or
    "type:<text>"); the case must end advised. Returns the case's row."""
    messages = await h.say(user, story)
    for _ in range(30):
        questions = [m for m in messages if question_of(m)]
        if not questions:
            break
        message = questions[-1]
        action = answers[question_of(message)]
        if action.startswith("type:"):
            messages = await h.say(user, action.removeprefix("type:"))
        else:
            _, messages = await h.press(user, message, option_data(message, action))
    case = h.active_case(user.id)
    assert case["status"] == "advised"
    return case

class Harness:
    def __init__(self, emu: BotApiEmulator, db_path: Path, *, clock: Any = None, nudges: bool = False,
                 **config: Any):
        """`clock` and `config` (followup=, quiet_hours=) go to the bot as they would from the CLI.
        Follow-up nudges are sent only with `nudges=True` (tests/test_followups_*.py): elsewhere a
        deadline near the day the tests run must not add a message to a chat."""
        self.emu = emu
        self.db_path = db_path
        self.clock = clock
        self.nudges = nudges
        self.config = config
        self.bot: TelegramBot | None = None
        self._done: dict[int, asyncio.Event] = {}
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._mark: dict[int, int] = {}

    # ---- lifecycle ----------------------------------------------------------------------

    def _finished(self, update: Any) -> None:
        self._done.setdefault(update.update_id, asyncio.Event()).set()

    async def start(self) -> None:
        self._stop = asyncio.Event()
        started = asyncio.Event()

        def ready(bot: TelegramBot) -> None:
            self.bot = bot
            started.set()

        self._task = asyncio.create_task(self.serve(config_for(self.emu, self.db_path, **self.config), self._stop,
                                                    ready=ready, on_update_done=self._finished, clock=self.clock,
                                                    dispatch_followups=self.nudges))
        waiter = asyncio.create_task(started.wait())
        done, _ = await asyncio.wait({self._task, waiter}, timeout=STEP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            raise RuntimeError(f"the bot stopped at start-up with exit code {self._task.result()}")
        if waiter not in done:
            raise TimeoutError("the bot did not start")

    def serve(self, config: Config, stop: asyncio.Event, **kwargs: Any):
        """How the bot runs (polling here; tests/test_webhook.py's harness serves a webhook)."""
        return serve(config, stop, **kwargs)

    async def stop(self) -> int:
        assert self._stop is not None and self._task is not None
        self._stop.set()
        code = await asyncio.wait_for(self._task, STEP_TIMEOUT)
        self.bot = None
        return code

    async def restart(self) -> None:
        assert await self.stop() == 0
        await self.start()

    # ---- acting as users ----------------------------------------------------------------

    async def done(self, update: dict) -> None:
        event = self._done.setdefault(update["update_id"], asyncio.Event())
        await asyncio.wait_for(event.wait(), STEP_TIMEOUT)

    def after(self, chat_id: int, update: dict) -> list[dict]:
        """The bot's messages in the chat sent after `update`'s message."""
        message = update.get("message") or update.get("edited_message") or {}
        after_id = message.get("message_id") or self._mark.get(chat_id, 0)
        return [m for m in self.emu.messages(chat_id) if m["message_id"] > after_id]

    def _remember(self, chat_id: int) -> None:
        messages = self.emu.messages(chat_id, include_user=True)
        self._mark[chat_id] = messages[-1]["message_id"] if messages else 0

    async def say(self, user, text: str, **kwargs) -> list[dict]:
        update = user.send(text, **kwargs)
        await self.done(update)
        return self.after(update["message"]["chat"]["id"], update)

    async def command(self, user, command: str, args: str | None = None, **kwargs) -> list[dict]:
        update = user.send_command(command, args, **kwargs)
        await self.done(update)
        return self.after(update["message"]["chat"]["id"], update)

    async def press(self, user, message: dict, data: str | None = None, *, text: str | None = None,
                    force: bool = False) -> tuple[dict, list[dict]]:
        """Press a button; (the callback answer, the new bot messages)."""
        chat_id = message["chat"]["id"]
        self._remember(chat_id)
        update = user.press(message, data, text=text, force=force)
        await self.done(update)
        answer = self.emu.callback_answer(update["callback_query"]["id"])
        return answer, self.after(chat_id, update)

    async def send(self, user, update: dict) -> list[dict]:
        """Wait for an update already queued (photo, forward, ...) and return the new messages."""
        await self.done(update)
        return self.after(update["message"]["chat"]["id"], update)

    # ---- looking into the database ------------------------------------------------------

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path)

    def rows(self, sql: str, *args: Any) -> list[tuple]:
        with self.db() as db:
            return db.execute(sql, args).fetchall()

    def active_case(self, user_id: int) -> dict | None:
        rows = self.rows("SELECT c.id, c.status, c.dialog, c.category FROM dialog_state d JOIN cases c "
                         "ON c.id = d.case_id WHERE d.user_id = ?", user_id)
        if not rows:
            return None
        case_id, status, dialog, category = rows[0]
        return {"id": case_id, "status": status, "dialog": json.loads(dialog), "category": category}

    def count_rows(self, user_id: int) -> int:
        total = 0
        for sql in ("SELECT COUNT(*) FROM users WHERE id = ?", "SELECT COUNT(*) FROM cases WHERE user_id = ?",
                    "SELECT COUNT(*) FROM dialog_state WHERE user_id = ?",
                    "SELECT COUNT(*) FROM followups WHERE user_id = ?",
                    "SELECT COUNT(*) FROM processed_updates WHERE user_id = ?"):
            total += self.rows(sql, user_id)[0][0]
        return total

    def total_rows(self) -> int:
        return sum(self.rows(f"SELECT COUNT(*) FROM {t}")[0][0] for t in (
            "users", "cases", "case_events", "dialog_state", "followups", "evidence", "processed_updates"))


def live_keyboards(emu: BotApiEmulator, chat_id: int) -> list[dict]:
    """The bot's messages in a chat that still carry inline buttons, the advice's own button apart
    (it stays usable: the user may find out later that the situation was read wrong)."""
    return [m for m in emu.messages(chat_id)
            if (m.get("reply_markup") or {}).get("inline_keyboard") and not is_advice_keyboard(m)]


@contextlib.asynccontextmanager
async def started(harness: Harness):
    """The harness's bot running; then stopped, and checked that nothing went wrong."""
    await harness.start()
    try:
        yield harness
    finally:
        if harness.bot is not None:
            assert await harness.stop() == 0
    emu = harness.emu
    assert emu.errors == [], "the emulator hit an internal error"
    assert emu.warnings == [], "the bot used an unknown parameter or an unemulated method"
    assert emu.stats.errors.get(400, 0) == 0, "the bot sent a request Telegram rejects"


@pytest.fixture
async def h(tmp_path):
    """A started bot against a fresh emulator and database; checks that nothing went wrong."""
    with BotApiEmulator() as emu:
        async with started(Harness(emu, tmp_path / "bot.db")) as harness:
            yield harness


def clean(h: Harness, chat_id: int) -> None:
    """No keyboard is live except the one of the question open now, and nothing went wrong."""
    assert len(live_keyboards(h.emu, chat_id)) <= 1
    assert h.emu.errors == []
