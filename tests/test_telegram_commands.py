"""End to end on Telegram: the command menu and every command, in en and zh."""
from __future__ import annotations

import json
import re

import pytest

from bot.telegram.routing import COMMANDS
from telegram_harness import buttons_of, h, live_keyboards, option_data, question_of  # noqa: F401

ANN, BOB = 1001, 1002
CJK = re.compile(r"[\u4e00-\u9fff]")


async def answer(h, user, option: str) -> list[dict]:
    message = [m for m in h.emu.messages(user.id) if question_of(m)][-1]
    _, messages = await h.press(user, message, option_data(message, option))
    return messages


async def test_the_command_menu_is_set_in_english_and_chinese(h):
    english = h.emu.commands(None, "")
    chinese = h.emu.commands(None, "zh")
    assert [c["command"] for c in english] == list(COMMANDS) == [c["command"] for c in chinese]
    assert all(not CJK.search(c["description"]) for c in english if c["command"] != "language")
    assert all(CJK.search(c["description"]) for c in chinese)


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_status_shows_facts_timeline_and_the_open_question(h, lang):
    user = h.emu.user(ANN, language_code=lang)
    await h.command(user, "/start")
    await answer(h, user, "CN")
    await answer(h, user, "goods")
    messages = await h.command(user, "/status")
    text = messages[0]["text"]
    assert "#1" in text and ("Mainland China" in text if lang == "en" else "中国大陆" in text)
    assert ("Timeline" if lang == "en" else "时间线") in text
    assert question_of(messages[-1]) == "merchant"
    assert len(live_keyboards(h.emu, ANN)) == 1, "the question asked before /status is retired"
    # After the advice, /status fits one screen; its button shows the timeline and the advice.
    messages = await h.say(user, "Amazon")
    # (the expected delivery date is asked for a card non-delivery: skipped)
    for option in ("credit_card", "_skip", "yesterday", "non_delivery", "_skip", "_skip", "no", "_skip", "_yes"):
        messages = await answer(h, user, option)
    assert h.active_case(ANN)["status"] == "advised"
    status = await h.command(user, "/status")
    assert len(status) == 1 and list(buttons_of(status[0]).values()) == ["timeline:1"]
    text = status[0]["text"]
    assert ("advice given" in text) if lang == "en" else ("已给出建议" in text)
    assert ("What to do next" not in text) if lang == "en" else ("接下来怎么做" not in text)
    assert ("Advice given: Never delivered" in text) if lang == "en" else ("给出建议：付款后没收到货" in text)
    _, full = await h.press(user, status[0], "timeline:1")
    # The advice shown again keeps its way out: "That's not my situation".
    assert [b["callback_data"].split(":")[-1] for m in full for row in (m.get("reply_markup") or {}).get(
        "inline_keyboard", []) for b in row][:1] == ["_recat"]
    text = "\n".join(m["text"] for m in full)     # the timeline and the advice (split if too long)
    assert ("What to do next" in text) if lang == "en" else ("接下来怎么做" in text)
    assert ("Seller: Amazon" in text) if lang == "en" else ("卖家：Amazon" in text)


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_switching_cases(h, lang):
    user = h.emu.user(ANN, language_code=lang)
    await h.command(user, "/start")
    await answer(h, user, "US")                                  # case 1 now asks purchase_type
    opened = await h.command(user, "/new")
    assert "#2" in opened[0]["text"] and question_of(opened[-1]) == "jurisdiction"
    case_two_question = opened[-1]
    await answer(h, user, "UK")                                  # case 2 now asks purchase_type
    listed = await h.command(user, "/cases")
    text = listed[-1]["text"]
    assert "#1" in text and "#2" in text
    labels = buttons_of(listed[-1])
    assert list(labels.values()) == ["case:1"], "one button per other case"
    _, switched = await h.press(user, listed[-1], "case:1")
    assert "#1" in switched[0]["text"] and question_of(switched[-1]) == "purchase_type"
    assert h.active_case(ANN)["id"] == 1
    # A button of case 2 pressed now is stale: case 1 is the active one.
    answer_, _ = await h.press(user, case_two_question, option_data(case_two_question, "EU"), force=True)
    assert answer_["text"]
    await answer(h, user, "software")
    assert h.active_case(ANN)["dialog"]["slots"] == {"jurisdiction": "US", "purchase_type": "software"}
    case_two = json.loads(h.rows("SELECT dialog FROM cases WHERE id = 2")[0][0])
    assert case_two["slots"] == {"jurisdiction": "UK"}
    assert len(live_keyboards(h.emu, ANN)) == 1


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_export_sends_a_json_and_a_markdown_document(h, lang):
    user = h.emu.user(ANN, language_code=lang)
    await h.command(user, "/start")
    await answer(h, user, "CN")
    await h.send(user, user.send_photo(caption="receipt <b>1</b>"))
    documents = await h.command(user, "/export")
    assert [m["document"]["file_name"].rsplit(".", 1)[1] for m in documents] == ["json", "md"]
    data = json.loads(documents[0]["file_data"])
    (case,) = data["cases"]
    assert case["facts"] == {"jurisdiction": "CN"}
    assert case["evidence"][0]["kind"] == "photo" and case["evidence"][0]["text"] == "receipt <b>1</b>"
    assert [e["kind"] for e in case["timeline"]][:1] == ["opened"]
    markdown = documents[1]["file_data"].decode("utf-8")
    assert markdown.startswith("# " + ("Refund advisor" if lang == "en" else "退款助手"))
    assert ("Mainland China" if lang == "en" else "中国大陆") in markdown and "receipt <b>1</b>" in markdown
    assert all(m["caption"] for m in documents)


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_delete_after_confirmation_leaves_no_row(h, lang):
    user, other = h.emu.user(ANN, language_code=lang), h.emu.user(BOB)
    await h.command(other, "/start")
    await h.command(user, "/start")
    await answer(h, user, "CN")
    await h.send(user, user.send_document(caption="invoice"))
    asked = await h.command(user, "/delete")
    erase, keep = buttons_of(asked[-1]).values()
    assert erase.startswith("del:") and keep == "del:no"
    _, kept = await h.press(user, asked[-1], keep)
    assert kept and await h.bot.storage.count_rows(ANN) > 0
    # The first confirmation cannot be used any more.
    notice, _ = await h.press(user, asked[-1], erase, force=True)
    assert notice["text"] and await h.bot.storage.count_rows(ANN) > 0
    asked = await h.command(user, "/delete")
    _, after = await h.press(user, asked[-1], list(buttons_of(asked[-1]).values())[0])
    assert await h.bot.storage.count_rows(ANN) == 0
    assert h.count_rows(ANN) == 0 and h.rows("SELECT COUNT(*) FROM evidence")[0][0] == 0
    confirmation = h.emu.message(ANN, asked[-1]["message_id"])
    assert confirmation["edited"] and not confirmation.get("reply_markup")
    assert await h.bot.storage.count_rows(BOB) > 0, "other users keep their data"
    # Writing again starts from scratch.
    again = await h.command(user, "/start")
    assert question_of(again[-1]) == "jurisdiction" and h.active_case(ANN)["id"] == 3


async def test_a_button_sent_before_callback_kinds_had_names_still_works(h):
    """Keyboards already in chats carry the single-letter data of before (r: for /resolved)."""
    user = h.emu.user(ANN, language_code="en")
    await h.command(user, "/start")
    await answer(h, user, "CN")
    asked = await h.command(user, "/resolved")
    _, done = await h.press(user, asked[-1], "r:1:partial", force=True)
    assert done and h.active_case(ANN)["status"] == "resolved"
    assert h.rows("SELECT data FROM case_events WHERE kind = 'resolved'") == [('{"outcome": "partial"}',)]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_resolved_closes_the_case_with_its_outcome(h, lang):
    user = h.emu.user(ANN, language_code=lang)
    await h.command(user, "/start")
    question = (await answer(h, user, "CN"))[-1]
    asked = await h.command(user, "/resolved")
    assert list(buttons_of(asked[-1]).values()) == ["end:1:refunded", "end:1:partial", "end:1:none"]
    _, done = await h.press(user, asked[-1], "end:1:partial")
    assert h.active_case(ANN)["status"] == "resolved"
    assert h.rows("SELECT data FROM case_events WHERE kind = 'resolved'") == [('{"outcome": "partial"}',)]
    again, _ = await h.press(user, asked[-1], "end:1:none", force=True)
    assert again["text"] and h.active_case(ANN)["status"] == "resolved"
    # The question open when the case was closed answers no more.
    late, _ = await h.press(user, question, option_data(question, "goods"), force=True)
    assert late["text"] and "purchase_type" not in h.active_case(ANN)["dialog"]["slots"]
    noted = await h.say(user, "they paid half")
    assert "#1" in noted[0]["text"] and h.active_case(ANN)["status"] == "resolved"
    assert h.rows("SELECT COUNT(*) FROM case_events WHERE kind = 'note'")[0][0] == 1


async def test_language_cancel_help_escalate_and_unknown_commands(h):
    user = h.emu.user(ANN, language_code="en")
    await h.command(user, "/start")
    chooser = await h.command(user, "/language")
    _, switched = await h.press(user, chooser[-1], "lang:zh")
    assert CJK.search(switched[-1]["text"])
    helped = await h.command(user, "/help")
    assert "/delete" in helped[0]["text"] and CJK.search(helped[0]["text"])
    english = await h.command(user, "/language", "en")
    assert not CJK.search(english[0]["text"])
    escalate = await h.command(user, "/escalate")
    assert "To draft a complaint I still need" in escalate[0]["text"] and "/escalate" in escalate[0]["text"]
    paused = await h.command(user, "/cancel")
    assert "Paused" in paused[0]["text"] and h.active_case(ANN)["dialog"]["paused"]
    offer = await h.say(user, "hello?")
    resume = option_data(offer[-1], "_resume")
    _, resumed = await h.press(user, offer[-1], resume)
    assert question_of(resumed[-1]) == "jurisdiction" and not h.active_case(ANN)["dialog"]["paused"]
    unknown = await h.command(user, "/frobnicate")
    assert "/help" in unknown[0]["text"]
    assert len(live_keyboards(h.emu, ANN)) == 1


async def test_a_long_reply_is_split_with_the_buttons_on_the_last_part(h, monkeypatch):
    from bot.telegram import render as tg
    monkeypatch.setattr(tg, "MAX_TEXT", 120)
    user = h.emu.user(ANN, language_code="en")
    parts = await h.command(user, "/start")
    assert len(parts) >= 3
    assert all(len(m["text"]) <= 120 for m in parts)
    assert [bool(m.get("reply_markup")) for m in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[0]["text"].startswith("Hello!") and parts[-1]["text"].endswith("depend on it.")
    _, asked = await h.press(user, parts[-1], option_data(parts[-1], "UK"))
    assert question_of(asked[-1]) == "purchase_type"
    assert h.emu.message(ANN, parts[-1]["message_id"])["text"].endswith("✔️ United Kingdom")


async def test_after_choosing_a_language_or_keeping_data_the_open_question_is_asked_again(h):
    user = h.emu.user(ANN, language_code="en")
    await h.command(user, "/start")
    await answer(h, user, "CN")
    chooser = await h.command(user, "/language")
    assert [m["message_id"] for m in live_keyboards(h.emu, ANN)] == [chooser[-1]["message_id"]]
    _, switched = await h.press(user, chooser[-1], "lang:zh")
    assert question_of(switched[-1]) == "purchase_type" and CJK.search(switched[-1]["text"])
    asked = await h.command(user, "/delete")
    _, kept = await h.press(user, asked[-1], "del:no")
    assert question_of(kept[-1]) == "purchase_type"
    assert len(live_keyboards(h.emu, ANN)) == 1


async def test_typing_an_answer_retires_a_menu_without_writing_the_answer_under_it(h):
    user = h.emu.user(ANN, language_code="en")
    await h.command(user, "/start")
    await answer(h, user, "CN")
    await h.command(user, "/new")
    listed = await h.command(user, "/cases")
    assert live_keyboards(h.emu, ANN)[0]["message_id"] == listed[-1]["message_id"]
    asked = await h.say(user, "UK")
    assert question_of(asked[-1]) == "purchase_type"
    menu = h.emu.message(ANN, listed[-1]["message_id"])
    assert not menu.get("reply_markup") and "✔️" not in menu["text"]
