"""Polling mode (issue 18): the getUpdates offset moves past an update only once it is made good.
An update whose replies could not be sent is fetched again and answered once the Bot API recovers;
one the library cannot read, or whose date is out of range, is acknowledged once and never keeps
the updates after it waiting; a failed keyboard removal does not lose the turn."""
from __future__ import annotations

import pytest

from telegram_harness import Harness, option_data, question_of, started

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

ANN = 1001


@pytest.fixture
async def h(tmp_path):
    with BotApiEmulator() as emu:
        async with started(Harness(emu, tmp_path / "bot.db")) as harness:
            yield harness


async def test_a_command_whose_reply_cannot_be_sent_is_fetched_again_and_answered_once(h):
    ann = h.emu.user(ANN, language_code="en")
    h.emu.fail_next("sendMessage", 502, count=4)           # every attempt of the first try fails
    update = ann.send_command("/help")
    (reply,) = await h.emu.wait_for_messages_async(ANN, 1, timeout=20, after=update)
    assert "/start" in reply["text"], reply
    await h.emu.wait_for(lambda: not h.emu.pending_updates(), timeout=10)
    assert len(h.emu.messages(ANN)) == 1, "answered once"
    assert h.bot.acks.poisoned == 0


async def test_a_turn_whose_reply_cannot_be_sent_asks_the_next_question_once_the_api_recovers(h):
    ann = h.emu.user(ANN, language_code="en")
    first = await h.command(ann, "/start")
    h.emu.fail_next("sendMessage", 502, count=4)
    answer = ann.send("United States")
    (question,) = await h.emu.wait_for_messages_async(ANN, 1, timeout=20, after=answer)
    assert question_of(question) == "purchase_type"
    assert h.active_case(ANN)["dialog"]["node"] == "purchase_type", "the answer stored once"
    await h.emu.wait_for(lambda: not h.emu.pending_updates(), timeout=10)
    assert [question_of(m) for m in h.emu.messages(ANN)].count("purchase_type") == 1
    assert question_of(first[-1]) == "jurisdiction"


async def test_updates_the_library_cannot_read_are_acknowledged_once_and_the_next_is_answered(h):
    ann = h.emu.user(ANN, language_code="en")
    h.emu.queue_update({"callback_query": {"id": "q-1", "chat_instance": "1", "data": "q:1:x:y"}})   # no sender
    h.emu.queue_update({"message": {"message_id": 50, "date": 1e20, "text": "from the far future",
                                    "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
                                    "from": {"id": ANN, "is_bot": False, "first_name": "Ann"}}})
    messages = await h.command(ann, "/start")
    assert messages and messages[0]["text"].startswith("Hello")
    await h.emu.wait_for(lambda: not h.emu.pending_updates(), timeout=10)
    assert h.bot.acks.poisoned == 2


async def test_a_keyboard_that_cannot_be_removed_does_not_lose_the_turn(h):
    ann = h.emu.user(ANN, language_code="en")
    first = await h.command(ann, "/start")
    h.emu.fail_next("editMessageText", 502, count=4)
    h.emu.fail_next("editMessageReplyMarkup", 502, count=4)
    _, messages = await h.press(ann, first[-1], option_data(first[-1], "CN"))
    assert [question_of(m) for m in messages] == ["purchase_type"], "the next question comes all the same"
    assert h.active_case(ANN)["dialog"]["node"] == "purchase_type"


async def test_a_passing_bad_gateway_reads_in_the_log_as_a_warning_not_a_crash(h, caplog):
    """Issue 15: an operator reading the log sees one WARNING line for a 502 or a dropped
    connection, the method named, and no traceback; ERROR is kept for our own faults."""
    ann = h.emu.user(ANN, language_code="en")
    caplog.clear()
    h.emu.fail_next("getUpdates", 502, count=2)
    h.emu.drop_next("getUpdates")
    h.emu.fail_next("sendMessage", 502, count=4)           # the reply's first try fails outright
    update = ann.send_command("/help")
    (reply,) = await h.emu.wait_for_messages_async(ANN, 1, timeout=30, after=update)
    assert "/start" in reply["text"]
    records = [r for r in caplog.records if r.name.startswith("bot")]
    assert not [r for r in records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info], \
        [(r.levelname, r.getMessage()) for r in records]
    warnings = [r.getMessage() for r in records if r.levelname == "WARNING"]
    assert any("getUpdates" in w or "polling again" in w for w in warnings), warnings
    assert any("sendMessage" in w for w in warnings), warnings
