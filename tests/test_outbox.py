"""The outbox (issue 15): what a turn sends is written down before it is sent, so a crash with a
reply in flight loses none of it. The storage on SQLite and PostgreSQL; the bot as a process
killed with -9 while Telegram holds its reply."""
from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pytest

from bot.storage import Storage
from telegram_harness import option_data, question_of
from test_telegram_process import ANN, TOKEN, BotProcess, expect

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
async def storage(db_url):
    s = await Storage.open(db_url)
    yield s
    await s.close()


async def test_items_are_kept_in_order_per_chat_until_delivered_with_the_ui_state(storage):
    await storage.ensure_user(7, NOW)
    await storage.outbox.put(7, 7, 100, [("retire", {"message_id": 3, "text": None}),
                                         ("send", {"text": "one"}), ("send", {"text": "two"})],
                             {"done": 100}, NOW)
    await storage.outbox.put(8, 8, 101, [("send", {"text": "other chat"})], None, NOW)
    assert (await storage.ui_state(7))["done"] == 100
    items = await storage.outbox.pending(7)
    assert [i.kind for i in items] == ["retire", "send", "send"] and items[1].payload == {"text": "one"}
    assert await storage.outbox.chats(NOW + timedelta(minutes=5)) == [7, 8]

    await storage.outbox.delivered(items[0], NOW)
    await storage.outbox.delivered(items[1], NOW, {"kb": {"id": 4, "html": "one", "q": True}})
    assert [i.payload["text"] for i in await storage.outbox.pending(7)] == ["two"]
    assert await storage.ui_state(7) == {"done": 100, "kb": {"id": 4, "html": "one", "q": True}}

    assert await storage.outbox.drop(7) == 1 and await storage.outbox.pending(7) == []
    await storage.delete_user(8)
    assert await storage.outbox.count() == 0


async def test_with_several_instances_the_start_up_sweep_leaves_fresh_items_to_their_sender(storage):
    await storage.outbox.put(7, 7, 1, [("send", {"text": "x"})], None, NOW)
    fresh = await storage.outbox.chats(NOW + timedelta(seconds=5))
    old = await storage.outbox.chats(NOW + timedelta(minutes=5))
    assert old == [7]
    assert fresh == ([] if storage.backend.shared else [7])


def test_kill_9_with_a_reply_in_flight_the_restarted_bot_sends_it_once(tmp_path):
    db, log = tmp_path / "bot.db", tmp_path / "bot.log"
    with BotApiEmulator(token=TOKEN) as emu:
        ann = emu.user(ANN, language_code="en")
        bot = BotProcess(emu, db, log).start()
        question = expect(emu, ann.send_command("/start"))[-1]
        assert question_of(question) == "jurisdiction"

        # The answer is stored and the next question is on its way when the process dies.
        release, held = emu.hold_next("sendMessage")
        ann.press(question, option_data(question, "CN"))
        emu.wait_for_sync(lambda: held() == 1, 20)
        assert bot.stop(signal.SIGKILL) == -signal.SIGKILL
        release.set()                    # the request in flight never reached Telegram

        bot.start()
        emu.wait_for_sync(lambda: any(question_of(m) == "purchase_type" for m in emu.messages(ANN)), 20)
        asked = [m for m in emu.messages(ANN) if question_of(m) == "purchase_type"]
        assert len(asked) == 1
        retired = emu.message(ANN, question["message_id"])
        assert "✔️" in retired["text"] and not retired.get("reply_markup")

        # The user goes on from there: their next answer is the answer to that question.
        ann.press(asked[0], option_data(asked[0], "game"))
        emu.wait_for_sync(lambda: any(question_of(m) == "merchant" for m in emu.messages(ANN)), 20)
        assert bot.stop(signal.SIGTERM) == 0
        # Only the press delivered again after the restart has its spinner answered a second time,
        # which Telegram refuses (the user sees nothing of it); every message and edit was accepted.
        refused = [r["method"] for r in emu.calls() if r["error_code"] == 400]
        assert emu.errors == [] and refused in ([], ["answerCallbackQuery"])
    assert "Traceback" not in log.read_text()
