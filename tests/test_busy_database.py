"""A busy database is waited out, not reported (issue 15): while another process holds the SQLite
file's write lock, a button pressed has its spinner stopped, and its turn goes through once the
lock is released; held past the wait, the user is told once that their answer is kept, and it is
applied when the database can be written. Never "something went wrong", never a lost answer."""
from __future__ import annotations

import json
import sqlite3

from telegram_harness import Harness, option_data, question_of, started

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

ANN = 1001
SORRY = "something went wrong"


def slots(h: Harness) -> dict:
    return json.loads(h.rows("SELECT slots FROM cases WHERE user_id = ?", ANN)[0][0])


async def test_a_press_while_the_database_is_locked_is_applied_once_the_lock_goes(tmp_path):
    with BotApiEmulator() as emu:
        async with started(Harness(emu, tmp_path / "bot.db")) as h:
            ann = emu.user(ANN, language_code="en")
            question = (await h.command(ann, "/start"))[-1]
            assert question_of(question) == "jurisdiction"

            other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")             # another process writing, for a long while
            update = ann.press(question, option_data(question, "CN"))
            query = update["callback_query"]["id"]
            await emu.wait_for(lambda: emu.callback_answer(query), 30)   # the spinner stops meanwhile
            assert not any(question_of(m) == "purchase_type" for m in emu.messages(ANN))
            other.execute("ROLLBACK")
            other.close()

            await emu.wait_for(lambda: any(question_of(m) == "purchase_type" for m in emu.messages(ANN)), 30)
            assert slots(h)["jurisdiction"] == "CN"
            texts = " ".join(m.get("text", "") for m in emu.messages(ANN))
            assert SORRY not in texts and "One moment" not in texts


async def test_a_lock_held_past_the_wait_tells_the_user_once_and_keeps_their_answer(tmp_path):
    with BotApiEmulator() as emu:
        async with started(Harness(emu, tmp_path / "bot.db")) as h:
            ann = emu.user(ANN, language_code="en")
            assert question_of((await h.command(ann, "/start"))[-1]) == "jurisdiction"
            assert h.bot is not None
            h.bot.busy_wait = 0.0                         # the user is told at the first failure

            other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            update = ann.send("China")                    # typed, not pressed
            told = await emu.wait_for_messages_async(ANN, 1, 30, after=update)
            assert told[-1]["text"].startswith("One moment") and "kept" in told[-1]["text"]
            other.execute("ROLLBACK")
            other.close()

            await emu.wait_for(lambda: any(question_of(m) == "purchase_type" for m in emu.messages(ANN)), 60)
            assert slots(h)["jurisdiction"] == "CN"
            texts = [m.get("text", "") for m in emu.messages(ANN)]
            assert sum(t.startswith("One moment") for t in texts) == 1
            assert not any(SORRY in t for t in texts)
