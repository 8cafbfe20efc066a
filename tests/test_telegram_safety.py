"""End to end on Telegram: forged and stale buttons, double presses and redelivered updates,
groups, blocked users, flood control and network errors, evidence, and updates of every other kind."""
from __future__ import annotations

import json
import time

import pytest

from telegram_harness import buttons_of, h, live_keyboards, option_data, question_of  # noqa: F401

# python-telegram-bot's own notice about RetryAfter.retry_after's future type, raised on every 429
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

ANN, BOB = 1001, 1002
GROUP = -1001234567890


def timeline(h, case_id: int) -> list[str]:
    return [r[0] for r in h.rows("SELECT kind FROM case_events WHERE case_id = ? ORDER BY id", case_id)]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_forged_press_naming_another_users_case_changes_nothing(h, lang):
    ann, bob = h.emu.user(ANN, language_code=lang), h.emu.user(BOB, language_code=lang)
    first = await h.command(ann, "/start")
    _, asked = await h.press(ann, first[-1], option_data(first[-1], "CN"))      # Ann's case 1: purchase_type
    bob_first = await h.command(bob, "/start")                                    # Bob's case 2: jurisdiction
    ann_before = h.active_case(ANN)
    bob_before = h.active_case(BOB)
    events_before = h.rows("SELECT COUNT(*) FROM case_events")[0][0]
    forged = ["q:1:purchase_type:software",        # Ann's case, Ann's open question
              "q:1:purchase_type:#0",
              "q:2:purchase_type:software",        # Bob's case, but not the question open there
              "q:2:jurisdiction~p:US",
              "c:1",                               # switch to Ann's case
              "r:1:refunded",                      # close Ann's case
              "x:0123456789ab",                    # erase, with no confirmation asked
              "l:fr", "zzz", "q:x:y:z", ""]
    for data in forged:
        notice, messages = await h.press(bob, bob_first[-1], data, force=True)
        assert notice is not None and notice["text"], f"{data!r} is refused with a notice"
        assert messages == []
    assert h.active_case(ANN) == ann_before and h.active_case(BOB) == bob_before
    assert h.rows("SELECT COUNT(*) FROM case_events")[0][0] == events_before
    assert h.rows("SELECT status FROM cases WHERE id = 1") == [("intake",)]
    assert await h.bot.storage.count_rows(BOB) > 0
    # Ann's own keyboard still works.
    _, messages = await h.press(ann, asked[-1], option_data(asked[-1], "software"))
    assert question_of(messages[-1]) == "merchant"


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_stale_button_gets_a_notice_and_changes_nothing(h, lang):
    ann = h.emu.user(ANN, language_code=lang)
    first = await h.command(ann, "/start")
    old = first[-1]
    await h.press(ann, old, option_data(old, "CN"))
    notice, messages = await h.press(ann, old, option_data(old, "UK"), force=True)
    assert notice["text"] and messages == []
    assert ("no longer active" in notice["text"]) if lang == "en" else ("失效" in notice["text"])
    assert h.active_case(ANN)["dialog"]["slots"] == {"jurisdiction": "CN"}
    assert h.active_case(ANN)["dialog"]["node"] == "purchase_type"


async def test_a_double_press_and_a_redelivered_update_act_once(h):
    ann = h.emu.user(ANN, language_code="en")
    first = await h.command(ann, "/start")
    question = first[-1]
    data = option_data(question, "EU")
    one = ann.press(question, data)
    two = ann.press(question, data)               # pressed twice before the bot answered
    await h.done(one)
    await h.done(two)
    answers = [h.emu.callback_answer(u["callback_query"]["id"]) for u in (one, two)]
    assert not answers[0].get("text") and answers[1]["text"], "the second press gets a notice"
    assert timeline(h, 1).count("answer") == 1
    sent = len(h.emu.messages(ANN))
    # Telegram delivers an update again (the bot crashed before confirming it): acted on once.
    update = ann.send("goods")
    await h.done(update)
    assert h.active_case(ANN)["dialog"]["node"] == "merchant"
    sent = len(h.emu.messages(ANN))
    h.emu.redeliver(update)
    redelivered = ann.send_command("/status")     # updates are handled in order: once this one is done, so is the redelivery
    await h.done(redelivered)
    assert timeline(h, 1).count("answer") == 2
    assert h.active_case(ANN)["dialog"]["node"] == "merchant"
    assert len(h.emu.messages(ANN)) == sent + 1        # only the /status answer
    # A redelivered command acts once too.
    h.emu.redeliver(redelivered)
    later = ann.send_command("/help")
    await h.done(later)
    assert len(h.emu.messages(ANN)) == sent + 2


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_in_a_group_one_pointer_to_a_private_chat_and_nothing_stored(h, lang):
    h.emu.group(GROUP, "Refund tips")
    ann = h.emu.user(ANN, language_code=lang)
    await h.done(ann.send("hello bot", chat=GROUP))
    await h.done(ann.send("I want a refund for my phone", chat=GROUP))
    await h.done(ann.send_photo(caption="receipt", chat=GROUP))
    pointers = h.emu.messages(GROUP)
    assert len(pointers) == 1
    assert "@test_refund_bot" in pointers[0]["text"]
    assert list(buttons_of(pointers[0]).values()) == ["https://t.me/test_refund_bot?start=group"]
    await h.done(ann.send_command("/start@test_refund_bot", chat=GROUP))   # asked for explicitly: again
    assert len(h.emu.messages(GROUP)) == 2
    await h.done(ann.send_command("/start@some_other_bot", chat=GROUP))
    assert len(h.emu.messages(GROUP)) == 2
    assert h.total_rows() == 0, "nothing is stored for a group"
    assert h.emu.messages(ANN) == []


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_a_blocked_user_is_marked_and_messaged_again_once_they_write(h, lang):
    ann = h.emu.user(ANN, language_code=lang)
    await h.command(ann, "/start")
    ann.block(notify=False)                  # the bot learns of it from a 403
    update = ann.send("CN")
    await h.done(update)
    assert h.emu.stats.errors.get(403, 0) >= 1
    assert h.rows("SELECT blocked FROM users WHERE id = ?", ANN) == [(1,)]
    assert h.active_case(ANN)["dialog"]["node"] == "purchase_type", "the answer was saved before sending"
    ann.unblock(notify=False)
    messages = await h.say(ann, "software")
    assert h.rows("SELECT blocked FROM users WHERE id = ?", ANN) == [(0,)]
    assert question_of(messages[-1]) == "merchant"
    # The my_chat_member update of a block (and of an unblock) is recorded too.
    ann.block()
    await h.emu.wait_for(lambda: h.rows("SELECT blocked FROM users WHERE id = ?", ANN) == [(1,)], 5)
    ann.unblock()
    await h.emu.wait_for(lambda: h.rows("SELECT blocked FROM users WHERE id = ?", ANN) == [(0,)], 5)


async def test_flood_control_and_network_errors_are_retried(h):
    ann = h.emu.user(ANN, language_code="en")
    h.emu.fail_next("sendMessage", 429, retry_after=1)
    started = time.monotonic()
    messages = await h.command(ann, "/start")
    assert time.monotonic() - started >= 0.9
    assert question_of(messages[-1]) == "jurisdiction"
    assert h.emu.stats.too_many_requests == 1
    h.emu.drop_next("editMessageText")
    h.emu.drop_next("sendMessage")
    _, messages = await h.press(ann, messages[-1], option_data(messages[-1], "CN"))
    assert [question_of(m) for m in messages] == ["purchase_type"], "sent once, after the retry"
    assert not h.emu.message(ANN, messages[0]["message_id"] - 1).get("reply_markup")
    h.emu.fail_next("sendMessage", 502, description="Bad Gateway")
    messages = await h.say(ann, "games")
    assert [question_of(m) for m in messages] == ["merchant"]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_photos_documents_and_forwards_are_kept_as_evidence(h, lang):
    ann = h.emu.user(ANN, language_code=lang)
    early = await h.send(ann, ann.send_photo(caption="before any case"))
    assert "/start" in early[0]["text"] and h.rows("SELECT COUNT(*) FROM evidence")[0][0] == 0
    first = await h.command(ann, "/start")
    acks = []
    acks += await h.send(ann, ann.send_photo(caption="screenshot of the error"))
    acks += await h.send(ann, ann.send_document("invoice.pdf", caption="the invoice"))
    acks += await h.send(ann, ann.forward("We will not refund you. <Support> & co"))
    assert len(acks) == 3 and all("#1" in m["text"] and not m.get("reply_markup") for m in acks)
    rows = h.rows("SELECT kind, file_id IS NOT NULL, text FROM evidence WHERE case_id = 1 ORDER BY id")
    assert rows == [("photo", 1, "screenshot of the error"), ("document", 1, "invoice.pdf: the invoice"),
                    ("forward", 0, "We will not refund you. <Support> & co")]
    assert timeline(h, 1).count("evidence") == 3
    # The open question is untouched and its keyboard still live.
    assert [m["message_id"] for m in live_keyboards(h.emu, ANN)] == [first[-1]["message_id"]]
    _, messages = await h.press(ann, first[-1], option_data(first[-1], "US"))
    assert question_of(messages[-1]) == "purchase_type"


async def test_other_updates_are_handled_without_errors(h):
    ann = h.emu.user(ANN, language_code="en")
    first = await h.command(ann, "/start")
    sticker = {"file_id": "sticker-1", "file_unique_id": "s1", "type": "regular", "width": 512, "height": 512,
               "is_animated": False, "is_video": False}
    replies = await h.send(ann, h.emu.queue_update({"message": {
        "from": ann.info, "chat": {"id": ANN, "type": "private", "first_name": "Ann"}, "sticker": sticker}}))
    assert "not this kind of message" in replies[0]["text"]
    await h.send(ann, ann.send_location(52.52, 13.40))
    said = ann.send("hello")
    await h.done(said)
    edited = ann.edit(said["message"], "hello again")
    await h.done(edited)
    inline = h.emu.queue_update({"inline_query": {"id": "77", "from": ann.info, "query": "refund", "offset": ""}})
    await h.done(inline)
    channel = h.emu.queue_update({"channel_post": {
        "chat": {"id": -1009876, "type": "channel", "title": "News"}, "text": "a post"}})
    await h.done(channel)
    member = h.emu.queue_update({"my_chat_member": {
        "chat": {"id": GROUP, "type": "supergroup", "title": "G"}, "from": ann.info, "date": int(time.time()),
        "old_chat_member": {"user": h.emu.bot, "status": "left"},
        "new_chat_member": {"user": h.emu.bot, "status": "member"}}})
    await h.done(member)
    reaction = h.emu.queue_update({"message_reaction": {
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"}, "message_id": first[-1]["message_id"],
        "user": ann.info, "date": int(time.time()), "old_reaction": [],
        "new_reaction": [{"type": "emoji", "emoji": "👍"}]}})
    await h.done(reaction)
    texts = [m["text"] for m in h.emu.messages(ANN)]
    assert not any("went wrong" in t for t in texts), texts
    assert h.emu.settings("answerInlineQuery")["results"] in ("[]", [])
    # (emu.messages() of a channel trips over the post's missing "from": count the sends instead)
    sent_to = [str(c["params"].get("chat_id")) for c in h.emu.calls("sendMessage") if c["ok"]]
    assert sent_to.count("-1009876") == 1 and sent_to.count(str(GROUP)) == 1
    assert h.active_case(ANN)["dialog"]["node"] == "jurisdiction"
    assert json.loads(h.rows("SELECT slots FROM cases WHERE id = 1")[0][0]).get("jurisdiction") is None
    # A press on a message sent in inline mode (no chat): not ours, refused.
    inline_press = h.emu.queue_update({"callback_query": {
        "id": "4299", "from": ann.info, "chat_instance": "c1", "inline_message_id": "im1",
        "data": option_data(first[-1], "CN")}})
    await h.done(inline_press)
    # The emulator does not know that query (it was queued raw), so the answer to it is its only 400.
    failed = [(c["method"], c["params"]["callback_query_id"]) for c in h.emu.calls() if not c["ok"]]
    assert failed == [("answerCallbackQuery", "4299")]
    h.emu.reset_stats()
    assert h.active_case(ANN)["dialog"]["node"] == "jurisdiction"


async def test_an_update_redelivered_after_a_crash_before_the_reply_gets_the_open_question(h):
    ann = h.emu.user(ANN, language_code="en")
    await h.command(ann, "/start")
    update = ann.send("United States")
    await h.done(update)
    assert h.active_case(ANN)["dialog"]["node"] == "purchase_type"
    # As if the bot had died after saving the answer and before its reply went out.
    ui = json.loads(h.rows("SELECT data FROM dialog_state WHERE user_id = ?", ANN)[0][0])
    ui["done"] = update["update_id"] - 1
    with h.db() as db:
        db.execute("UPDATE dialog_state SET data = ? WHERE user_id = ?", (json.dumps(ui), ANN))
    sent = len(h.emu.messages(ANN))
    h.emu.redeliver(update)
    after = ann.send_command("/help")
    await h.done(after)
    messages = h.emu.messages(ANN)[sent:]
    assert [question_of(m) for m in messages][:1] == ["purchase_type"], "the open question, asked again"
    assert timeline(h, 1).count("answer") == 1, "the answer is not recorded twice"
    assert len(live_keyboards(h.emu, ANN)) == 1


async def test_a_burst_over_the_flood_limit_reaches_everyone(h):
    h.emu.enforce_rate_limit(per_second=8)
    users = [h.emu.user(5000 + i, language_code="zh" if i % 2 else "en") for i in range(12)]
    updates = [u.send_command("/start") for u in users]
    for update in updates:
        await h.done(update)
    for user in users:
        assert [question_of(m) for m in h.emu.messages(user.id)] == ["jurisdiction"]
    assert h.emu.stats.rate_limited >= 1, "the emulator's limit was hit, and the sends were retried"
