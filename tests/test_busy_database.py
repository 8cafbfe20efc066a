"""A busy database is waited out, not reported (issue 15): while another process holds the SQLite
file's write lock, a button pressed has its spinner stopped, and its turn goes through once the
lock is released; held past the wait, the user is told once that their answer is kept, and it is
applied when the database can be written. Never "something went wrong", never a lost answer."""
from __future__ import annotations

import asyncio
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


async def test_a_lock_of_twelve_seconds_only_delays_the_reply(tmp_path):
    """The issue's measure: another process holds the write lock for 12 s while a user answers."""
    with BotApiEmulator() as emu:
        async with started(Harness(emu, tmp_path / "bot.db")) as h:
            ann = emu.user(ANN, language_code="en")
            question = (await h.command(ann, "/start"))[-1]
            other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            update = ann.press(question, option_data(question, "CN"))
            await emu.wait_for(lambda: emu.callback_answer(update["callback_query"]["id"]), 10)
            await asyncio.sleep(12)
            assert not any(question_of(m) == "purchase_type" for m in emu.messages(ANN))
            other.execute("ROLLBACK")
            other.close()
            await emu.wait_for(lambda: any(question_of(m) == "purchase_type" for m in emu.messages(ANN)), 30)
            texts = " ".join(m.get("text", "") for m in emu.messages(ANN))
            assert SORRY not in texts and "One moment" not in texts
            assert slots(h)["jurisdiction"] == "CN"


async def test_a_full_disk_keeps_the_answer_tells_the_user_once_and_the_operator_in_one_line(tmp_path, caplog):
    with BotApiEmulator() as emu:
        async with started(Harness(emu, tmp_path / "bot.db")) as h:
            ann = emu.user(ANN, language_code="en")
            await h.command(ann, "/start")
            await h.say(ann, "China")
            assert h.bot is not None and h.bot.storage is not None
            h.bot.busy_wait = 0.0
            # The disk full for the bot's own connection: no page beyond those the file has now.
            # (SQLite's max_page_count fails a write exactly as a full disk does: SQLITE_FULL.)
            connection = h.bot.storage.backend._db     # noqa: SLF001 - the fault goes where a full disk would
            (pages,) = await (await connection.execute("PRAGMA page_count")).fetchone()
            await connection.execute(f"PRAGMA max_page_count = {pages}")
            story = "I bought a game key and it never worked, the seller keeps saying the system is under maintenance. " * 40
            update = ann.send(story[:4000])
            told = await emu.wait_for_messages_async(ANN, 1, 30, after=update)
            assert told[-1]["text"].startswith("One moment") and "kept" in told[-1]["text"]
            full = [r for r in caplog.records if "disk is full" in r.getMessage()]
            assert full and all(r.levelname == "WARNING" and not r.exc_info for r in full)

            await connection.execute("PRAGMA max_page_count = 1073741823")      # space again
            await emu.wait_for_messages_async(ANN, 1, 60, after=told[-1])     # the answer to the story
            (dialog,) = h.rows("SELECT dialog FROM cases WHERE user_id = ?", ANN)[0]
            assert "system is under maintenance" in dialog       # the story was applied, not lost
            texts = [m.get("text", "") for m in emu.messages(ANN)]
            assert sum(t.startswith("One moment") for t in texts) == 1 and not any(SORRY in t for t in texts)
