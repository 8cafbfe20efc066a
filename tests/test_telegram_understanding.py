"""On Telegram (the real Application against the Bot API emulator, a real SQLite file): the
clarifying question, "That's not my situation" under the advice, and answers that were not
accepted are not shown as answers (issue 11)."""
from __future__ import annotations

import json

from telegram_harness import h, option_data, question_of  # noqa: F401  (h is a fixture)
from test_telegram_intake import BUTTONS, drive, finished
from test_understanding import hesitating_story

ANN = 1001


async def advised(h, user):
    first = await h.command(user, "/start")
    asked, last = await drive(h, user, BUTTONS, first)
    finished(h, ANN, last)
    return last


async def test_not_my_situation_redoes_the_advice_and_the_reminders(h):
    user = h.emu.user(ANN, language_code="en")
    last = await advised(h, user)
    advice = last[-1]
    assert "broken" in advice["text"].lower() or "defective" in advice["text"].lower()
    _, menu = await h.press(user, advice, option_data(advice, "_recat"))
    assert "Which of these is your situation?" in menu[-1]["text"]
    labels = [b["text"] for row in menu[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert "Not as described" in labels and "Keep this one" in labels
    _, changed = await h.press(user, menu[-1], option_data(menu[-1], "cat.mismatch"))
    texts = [m["text"] for m in changed]
    assert any("I now treat your case as Not as described" in t and "Defective or broken" in t for t in texts)
    assert "Not as described (your choice; I had read it as Defective or broken)" in changed[-1]["text"]
    case = h.active_case(ANN)
    assert case["category"] == "mismatch" and case["status"] == "advised"
    plan = json.loads(h.rows("SELECT plan FROM cases WHERE id = ?", case["id"])[0][0])
    assert plan["category"] == "mismatch", "the reminders follow the chosen situation"
    assert h.rows("SELECT COUNT(*) FROM followups WHERE case_id = ? AND state = 'pending'", case["id"])[0][0] > 0
    status = await h.command(user, "/status")
    assert "Situation changed by you: Defective or broken → Not as described" in status[0]["text"]
    _, full = await h.press(user, status[0], f"timeline:{case['id']}")
    shown = "\n".join(m["text"] for m in full)
    assert "Not as described (your choice" in shown, "/status shows the advice for the chosen situation"


async def test_keep_this_one_changes_nothing(h):
    user = h.emu.user(ANN, language_code="zh")
    last = await advised(h, user)
    _, menu = await h.press(user, last[-1], option_data(last[-1], "_recat"))
    _, kept = await h.press(user, menu[-1], option_data(menu[-1], "_cancel"))
    assert "保持原来的判断" in kept[-1]["text"]
    assert h.active_case(ANN)["category"] == "defect"


async def test_a_hesitating_story_brings_the_clarifying_question(h):
    user = h.emu.user(ANN, language_code="zh")
    first = await h.command(user, "/start")
    answers = (("contacted", False), ("jurisdiction", "CN"), ("payment_method", "alipay"), ("problem", "other"),
               ("purchase_type", "software"))
    plan = {**BUTTONS, "problem": "other", "contacted": "no", "holder": "known_firm",
            "story": "type:" + hesitating_story("holder", answers)}
    asked, last = await drive(h, user, plan, first)
    assert asked[-2:] == ["holder", "confirm"], asked
    question = [m for m in h.emu.messages(ANN) if m["text"].startswith("再问一个问题")]
    assert question and question[-1]["text"].splitlines()[-1].startswith("✔️ "), "answered by its button"
    case = finished(h, ANN, last)
    assert case["category"] == "maintenance_stalling", "the bank the user chose holds the money: not a scam"


async def test_an_answer_not_accepted_is_not_shown_as_the_answer(h):
    user = h.emu.user(ANN, language_code="en")
    first = await h.command(user, "/start")
    question = first[-1]
    assert question_of(question) == "jurisdiction"
    await h.say(user, "banana bread")
    shown = h.emu.message(ANN, question["message_id"])
    assert "banana bread" not in shown["text"], "an answer the bot did not take is not marked ✔️ under the question"
    again = [m for m in h.emu.messages(ANN) if question_of(m) == "jurisdiction"]
    assert again, "the question is asked again, with its buttons"
    await h.say(user, "UK")
    answered = h.emu.message(ANN, again[-1]["message_id"])
    assert answered["text"].splitlines()[-1] == "✔️ UK"
