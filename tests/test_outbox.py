"""The outbox (issue 15): what a turn sends is written down before it is sent, so a crash with a
reply in flight loses none of it. The storage on SQLite and PostgreSQL; the bot as a process
killed with -9 while Telegram holds its reply."""
from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pytest

from bot.conversation import Conversation
from bot.outcome import ReplyTo
from bot.storage import AlreadyDone, OutboxItem, OutboxRow
from dialogs.engine import Text
from telegram_harness import option_data, question_of
from test_telegram_process import ANN, TOKEN, BotProcess, expect

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


def _row(user: int, update: int, text: str) -> OutboxRow:
    return OutboxRow(user, user, update, {"outcome": {"replies": [{"text": text, "buttons": []}]}, "to": {"chat": user}})


async def test_outcomes_are_kept_in_order_per_chat_and_their_parts_until_each_is_delivered(storage):
    await storage.ensure_user(7, NOW)
    await storage.outbox.put(_row(7, 100, "first turn"), NOW)
    await storage.outbox.put(_row(7, 101, "second turn"), NOW)
    await storage.outbox.put(_row(8, 102, "other chat"), NOW)
    first, second = await storage.outbox.pending(7)
    assert (first.kind, first.update_id, second.update_id) == ("outcome", 100, 101)
    assert await storage.outbox.chats(NOW + timedelta(minutes=5)) == [7, 8]

    # Sent in runs, each advanced in one transaction with the ui_state; the row keeps its place.
    parts = [("retire", {"message_id": 3, "text": None}), ("send", {"text": "one"}), ("send", {"text": "two"})]
    first = OutboxItem(first.id, 7, 7, 100, "parts", {"parts": [list(p) for p in parts], "next": 0})
    left = await storage.outbox.advance(first, 2, NOW, ui={"done": 100, "kb": {"id": 4, "html": "one", "q": True}})
    assert await storage.ui_state(7) == {"done": 100, "kb": {"id": 4, "html": "one", "q": True}}
    again, _ = await storage.outbox.pending(7)
    assert again.id < second.id and [p for _, p in again.parts] == [{"text": "two"}]
    assert await storage.outbox.advance(left, 1, NOW) is None
    assert await storage.ui_state(7) == {"done": 100, "kb": {"id": 4, "html": "one", "q": True}}
    assert [i.update_id for i in await storage.outbox.pending(7)] == [101]

    # An outcome with nothing to send is simply done.
    nothing = OutboxItem(second.id, 7, 7, 101, "parts", {"parts": [], "next": 0})
    assert await storage.outbox.advance(nothing, 0, NOW) is None
    assert await storage.outbox.pending(7) == []
    assert await storage.outbox.drop(8) == 1 and await storage.outbox.count() == 0


async def test_a_turn_writes_its_replies_in_its_own_transaction_or_not_at_all(storage):
    await storage.ensure_user(7, NOW)
    case = await storage.create_case(7, {"node": "jurisdiction", "slots": {}}, NOW)
    await storage.save_turn(7, case.id, {"node": "purchase_type", "slots": {"jurisdiction": "CN"}}, [], NOW,
                            update_id=500, outbox=lambda _: _row(7, 500, "next question"))
    (row,) = await storage.outbox.pending(7)
    assert row.update_id == 500 and row.payload["outcome"]["replies"][0]["text"] == "next question"

    # The same update again: AlreadyDone, and no second row.
    with pytest.raises(AlreadyDone):
        await storage.save_turn(7, case.id, {"node": "merchant", "slots": {}}, [], NOW,
                                update_id=500, outbox=lambda _: _row(7, 500, "twice"))
    assert len(await storage.outbox.pending(7)) == 1

    # A turn that fails writes neither its state nor its replies.
    def broken(_: int | None) -> OutboxRow:
        raise RuntimeError("rendering failed")
    with pytest.raises(RuntimeError):
        await storage.save_turn(7, case.id, {"node": "merchant", "slots": {}}, [], NOW, update_id=501, outbox=broken)
    assert (await storage.get_case(7, case.id)).dialog["node"] == "purchase_type"
    assert not await storage.seen_update(501) and len(await storage.outbox.pending(7)) == 1

    # A turn that opens a new case: the row is made knowing the new case's id.
    opened = await storage.save_turn(7, case.id, {"node": "purchase_type", "slots": {}}, [], NOW, update_id=502,
                                     fresh={"node": "jurisdiction", "slots": {}},
                                     outbox=lambda fresh: _row(7, 502, f"case {fresh}"))
    assert (await storage.active_case(7)).id == opened != case.id
    assert (await storage.outbox.pending(7))[-1].payload["outcome"]["replies"][0]["text"] == f"case {opened}"


async def test_with_several_instances_the_start_up_sweep_leaves_fresh_items_to_their_sender(storage):
    await storage.outbox.put(_row(7, 1, "x"), NOW)
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
        # Only what a restart may repeat: the press's spinner answered again, and the past question's
        # edit made again ("message is not modified": done). Every message was accepted.
        refused = [(r["method"], r["description"]) for r in emu.calls() if r["error_code"] == 400]
        assert emu.errors == [] and all(
            method == "answerCallbackQuery" or "not modified" in why for method, why in refused), refused
    assert "Traceback" not in log.read_text()


async def test_a_turns_replies_are_in_the_outbox_when_the_turn_returns_before_anything_is_sent(storage):
    """What a process killed right after the turn's commit leaves: its replies, written down."""
    conversation = Conversation(storage, clock=lambda: NOW)
    first = await conversation.start(7, language_code="en")
    case_id = first.case_id
    to = ReplyTo(chat_id=7, update_id=900, answer="China", typed=True)
    outcome = await conversation.handle(7, Text("China"), language_code="en", update_id=900, reply_to=to)
    assert outcome.queued
    (row,) = await storage.outbox.pending(7)
    assert row.update_id == 900 and row.payload["to"]["answer"] == "China"
    sealed = row.payload["outcome"]
    assert sealed["case"] == case_id and sealed["answered"] and "What did you pay for?" in sealed["replies"][-1]["text"]
    assert [option for option, _ in sealed["replies"][-1]["buttons"]][:2] == ["software", "subscription"]
    assert (await storage.get_case(7, case_id)).dialog["node"] == "purchase_type"

    # The same update delivered again (Telegram, after the crash): nothing done twice, nothing added.
    again = await conversation.handle(7, Text("China"), language_code="en", update_id=900, reply_to=to)
    assert not again.done and len(await storage.outbox.pending(7)) == 1


async def test_a_note_on_a_closed_case_is_kept_with_its_update_and_reply_or_not_at_all(storage):
    """A crash can no longer mark the update done and lose the note (they were two transactions)."""
    conversation = Conversation(storage, clock=lambda: NOW)
    case_id = (await conversation.start(7, language_code="en")).case_id
    await storage.set_status(7, case_id, "resolved", NOW)
    to = ReplyTo(chat_id=7, update_id=950)
    outcome = await conversation.add_note(7, "they paid in the end", language_code="en", update_id=950, reply_to=to)
    assert outcome.queued
    assert [e.data.get("text") for e in await storage.timeline(7, case_id) if e.kind == "note"] == \
        ["they paid in the end"]
    (row,) = await storage.outbox.pending(7)
    assert row.update_id == 950 and "added your message" in row.payload["outcome"]["replies"][0]["text"]
    again = await conversation.add_note(7, "they paid in the end", language_code="en", update_id=950, reply_to=to)
    assert not again.done
    assert len([e for e in await storage.timeline(7, case_id) if e.kind == "note"]) == 1
    assert len(await storage.outbox.pending(7)) == 1
