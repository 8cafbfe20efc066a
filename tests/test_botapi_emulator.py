"""The Bot API emulator (tests/botapi) driven by a real python-telegram-bot client."""
from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import BadRequest, Conflict, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

try:  # tests/ may or may not be a package, depending on what else lives there
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

ANN = 1001


@pytest.fixture
def emu():
    with BotApiEmulator() as emulator:
        emulator.user(ANN, first_name="Ann", language_code="en")
        yield emulator
        assert emulator.errors == [], "the emulator hit an internal error"


@pytest.fixture
async def bot(emu):
    async with Bot(emu.token, base_url=emu.base_url, base_file_url=emu.base_file_url) as b:
        yield b


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)] for label, data in pairs])


# ---------------------------------------------------------------- basics


async def test_get_me(emu, bot):
    me = await bot.get_me()
    assert me.is_bot and me.username == "test_refund_bot" and me.id == 123456
    assert emu.stats["getMe"] >= 2  # Bot.initialize() asks too
    assert emu.warnings == []


async def test_send_message_html_with_inline_keyboard(emu, bot):
    sent = await bot.send_message(ANN, "<b>Refund</b> &amp; <i>return</i> — 退款 😀", parse_mode="HTML",
                                  reply_markup=keyboard(("Yes", "answer:yes"), ("No", "answer:no")))
    assert sent.text == "Refund & return — 退款 😀"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 6), ("italic", 9, 6)]
    assert sent.reply_markup.inline_keyboard[1][0].callback_data == "answer:no"
    assert sent.from_user.id == 123456 and sent.chat.id == ANN

    stored = emu.last(ANN)
    assert stored["message_id"] == sent.message_id
    assert stored["raw_text"].startswith("<b>Refund</b>") and stored["parse_mode"] == "HTML"
    assert stored["reply_markup"]["inline_keyboard"][0][0] == {"text": "Yes", "callback_data": "answer:yes"}
    assert stored["edited"] is False
    assert emu.warnings == []


async def test_telegram_rejections(emu, bot):
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(ANN, "x" * 4097)
    await bot.send_message(ANN, "x" * 4096)
    # the limit is in UTF-16 code units after entity parsing: tags don't count, emoji count twice
    await bot.send_message(ANN, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    await bot.send_message(ANN, "&lt;" * 4096, parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(ANN, "😀" * 2049)
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(ANN, "   ")
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(ANN, "<b></b>", parse_mode="HTML")

    for bad in ("<b>unclosed", "<foo>x</foo>", "<b><i>x</b></i>", "1 < 2", "AT&T", "x</b>", "<span>x</span>"):
        with pytest.raises(BadRequest, match="(?i)can't parse entities"):
            await bot.send_message(ANN, bad, parse_mode="HTML")
    await bot.send_message(ANN, '<a href="https://example.com/?a=1&amp;b=2">ok</a> <span class="tg-spoiler">s</span>'
                                " <tg-spoiler>t</tg-spoiler> <pre><code class=\"language-python\">x</code></pre>"
                                " <blockquote expandable>q</blockquote> &#39;&#x1F600;", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(ANN, "total: 5.00", parse_mode="MarkdownV2")

    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(ANN, "pick", reply_markup=keyboard(("A", "a" * 65)))
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):  # 22 CJK characters = 66 bytes
        await bot.send_message(ANN, "pick", reply_markup=keyboard(("A", "退" * 22)))
    await bot.send_message(ANN, "pick", reply_markup=keyboard(("A", "a" * 64)))

    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(999_999, "hello stranger")
    assert emu.stats.errors[400] == 15
    assert emu.warnings == []


async def test_edits(emu, bot):
    sent = await bot.send_message(ANN, "Question?", reply_markup=keyboard(("Yes", "y")))
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=ANN, message_id=sent.message_id + 100)
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Question?", chat_id=ANN, message_id=sent.message_id,
                                    reply_markup=keyboard(("Yes", "y")))
    edited = await bot.edit_message_text("<b>Question?</b>", chat_id=ANN, message_id=sent.message_id,
                                         parse_mode="HTML", reply_markup=keyboard(("Yes", "y")))
    assert edited.text == "Question?" and edited.edit_date is not None
    # without reply_markup, Telegram removes the inline keyboard
    await bot.edit_message_text("Answered", chat_id=ANN, message_id=sent.message_id)
    stored = emu.last(ANN)
    assert stored["text"] == "Answered" and stored["edited"] and "reply_markup" not in stored
    await bot.edit_message_reply_markup(chat_id=ANN, message_id=sent.message_id, reply_markup=keyboard(("Undo", "u")))
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(chat_id=ANN, message_id=sent.message_id,
                                            reply_markup=keyboard(("Undo", "u")))
    assert await bot.delete_message(ANN, sent.message_id)
    assert emu.messages(ANN) == [] and emu.messages(ANN, include_deleted=True)[0]["deleted"]
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(ANN, sent.message_id)
    assert await bot.send_chat_action(ANN, "typing")
    assert emu.chat_actions(ANN) == ["typing"]


async def test_blocked_user_is_forbidden(emu, bot):
    ann = emu.user(ANN)
    ann.block()
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(ANN, "hello?")
    updates = await bot.get_updates(timeout=0)
    assert updates[-1].my_chat_member.new_chat_member.status == "kicked"
    ann.unblock()
    await bot.send_message(ANN, "welcome back")


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # RetryAfter.retry_after
async def test_fault_injection_and_rate_limit(emu, bot):
    emu.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(RetryAfter, match="Retry in 3 seconds"):
        await bot.send_message(ANN, "hi")
    await bot.send_message(ANN, "hi")  # only the next call fails
    emu.fail_next("sendMessage", 502)
    with pytest.raises(NetworkError, match="(?i)Bad Gateway"):
        await bot.send_message(ANN, "hi")
    assert len(emu.messages(ANN)) == 1

    emu.enforce_rate_limit(per_second=5)
    for i in range(5):
        await bot.send_message(ANN, f"burst {i}")
    with pytest.raises(RetryAfter):
        await bot.send_message(ANN, "one too many")
    stats = emu.stats
    assert stats["sendMessage"] == 9
    assert stats.too_many_requests == 2 and stats.rate_limited == 1
    emu.enforce_rate_limit(None)
    await bot.send_message(ANN, "fine again")
    emu.drop_next("sendMessage")  # the connection closes without an answer
    with pytest.raises(NetworkError):
        await bot.send_message(ANN, "lost")


async def test_tokens_and_unknown_methods(emu):
    async with Bot(emu.token, base_url=emu.base_url) as good:
        with pytest.raises(EndPointNotFound):
            await good.do_api_request("sendTelepathy")
    with pytest.raises(InvalidToken):
        async with Bot("654321:WRONG-token", base_url=emu.base_url):
            pass
    emu.reject_token = True
    with pytest.raises(InvalidToken):
        async with Bot(emu.token, base_url=emu.base_url):
            pass


def test_raw_requests_are_checked_against_the_spec(emu):
    with httpx.Client(base_url=emu.api_url) as c:
        r = c.post("/sendMessage", data={"chat_id": str(ANN)})
        assert r.status_code == 400 and r.json() == {
            "ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        r = c.post("/sendMessage", json={"chat_id": ANN, "text": "hi", "disable_notification": "maybe"})
        assert r.status_code == 400 and "Boolean" in r.json()["description"]
        r = c.get("/editMessageText", params={"chat_id": ANN, "message_id": "one", "text": "x"})
        assert r.status_code == 400 and "Integer" in r.json()["description"]
        r = c.post("/sendMessage", json={"chat_id": ANN, "text": "hi", "no_such_param": 1})
        assert r.json()["ok"] and emu.warnings == ["sendMessage: unknown parameter 'no_such_param' (Telegram ignores it)"]
        assert c.get("/getMe").json()["result"]["username"] == "test_refund_bot"
        assert c.post("/GETME").json()["ok"]  # method names are case-insensitive
        assert c.post("/noSuchMethod").status_code == 404

        # the synchronous wait, for tests that drive the bot from another thread
        timer = threading.Timer(0.2, c.post, args=("/sendMessage",), kwargs={"data": {"chat_id": ANN, "text": "late"}})
        timer.start()
        (late,) = emu.wait_for_messages(ANN, 1, timeout=3, after=emu.last(ANN))
        assert late["text"] == "late"
        timer.join()
    with pytest.raises(TimeoutError, match="expected 5 bot message"):
        emu.wait_for_messages(ANN, 5, timeout=0.2)


# ---------------------------------------------------------------- updates


async def test_long_polling_messages_and_callback_queries(emu, bot):
    ann = emu.user(ANN)
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, ann.send, "I want my money back")
    started = loop.time()
    updates = await bot.get_updates(timeout=3)
    assert 0.2 < loop.time() - started < 2.5  # it blocked until the message was queued
    assert [u.message.text for u in updates] == ["I want my money back"]
    assert updates[0].message.from_user.language_code == "en"
    offset = updates[-1].update_id + 1

    sent = await bot.send_message(ANN, "Refund or repair?", reply_markup=keyboard(("Refund", "r"), ("Repair", "p")))
    stored = emu.last(ANN)
    press = ann.press(stored, "r")
    with pytest.raises(ValueError):
        ann.press(stored, "not-a-button")
    updates = await bot.get_updates(offset=offset, timeout=1)
    assert len(updates) == 1
    query = updates[0].callback_query
    assert query.data == "r" and query.message.message_id == sent.message_id and query.from_user.id == ANN
    assert query.id == press["callback_query"]["id"]
    assert await bot.answer_callback_query(query.id, text="Noted")
    assert emu.callback_answer(query.id)["text"] == "Noted"
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query.id)
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query("123")

    # confirming with offset empties the queue; a redelivered update comes back once
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()
    assert emu.pending_updates() == []
    emu.redeliver(press)
    again = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert [u.update_id for u in again] == [press["update_id"]]
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()

    command = ann.send_command("/start", "ref42")
    assert command["update_id"] > press["update_id"]
    (update,) = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert update.message.text == "/start ref42"
    assert update.message.entities[0].type == "bot_command" and update.message.entities[0].length == 6

    # raw updates, and allowed_updates filtering as Telegram does it
    emu.queue_update({"message": {"chat": {"id": -100500, "type": "supergroup", "title": "Refunds"},
                                  "from": ann.info, "text": "in a group"}})
    emu.queue_update({"chat_member": {"chat": {"id": -100500, "type": "supergroup", "title": "Refunds"}}})
    (group_update,) = await bot.get_updates(offset=update.update_id + 1, timeout=0)
    assert group_update.message.chat.id == -100500 and group_update.message.message_id == 1
    assert len(emu.dropped_updates) == 1
    await bot.send_message(-100500, "hello group")


async def test_send_document_and_user_files(emu, bot):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    sent = await bot.send_document(ANN, InputFile(pdf, filename="refund-letter.pdf"), caption="<b>Your letter</b>",
                                   parse_mode="HTML")
    assert sent.document.file_name == "refund-letter.pdf" and sent.document.file_size == len(pdf)
    assert sent.caption == "Your letter"
    stored = emu.last(ANN)
    assert stored["file_data"] == pdf and stored["document"]["mime_type"] == "application/pdf"
    # resending by file_id works, an unknown id does not
    again = await bot.send_document(ANN, sent.document.file_id)
    assert again.document.file_id == sent.document.file_id
    with pytest.raises(BadRequest, match="(?i)wrong file identifier"):
        await bot.send_document(ANN, "no-such-file-id")

    # a user's upload can be fetched with getFile and downloaded
    update = emu.user(ANN).send_document("receipt.pdf", b"receipt bytes", caption="my receipt")
    file = await bot.get_file(update["message"]["document"]["file_id"])
    assert bytes(await file.download_as_bytearray()) == b"receipt bytes"
    photo = emu.user(ANN).send_photo(caption="broken screen")
    assert photo["message"]["photo"][-1]["width"] == 1280
    forwarded = Update.de_json(emu.user(ANN).forward("order #1", sender_name="Shop"), bot)
    assert forwarded.message.forward_origin.sender_user_name == "Shop"


async def test_commands_per_language_and_scope(emu, bot):
    from telegram import BotCommand, BotCommandScopeChat

    assert await bot.set_my_commands([BotCommand("start", "开始"), BotCommand("help", "帮助")], language_code="zh")
    assert await bot.set_my_commands([BotCommand("start", "Start")])
    assert await bot.set_my_commands([BotCommand("status", "Your case")], scope=BotCommandScopeChat(ANN))
    assert [c.command for c in await bot.get_my_commands(language_code="zh")] == ["start", "help"]
    assert emu.commands(language_code="zh")[0] == {"command": "start", "description": "开始"}
    assert emu.commands() == [{"command": "start", "description": "Start"}]
    assert emu.commands({"type": "chat", "chat_id": ANN}) == [{"command": "status", "description": "Your case"}]
    assert await bot.delete_my_commands(language_code="zh")
    assert await bot.get_my_commands(language_code="zh") == ()
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start-Now", "x")])
    assert emu.warnings == []


async def test_webhook_delivery(emu, bot):
    received: list[tuple[dict, str | None]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), self.headers.get("X-Telegram-Bot-Api-Secret-Token")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=hook.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/telegram"
        assert await bot.set_webhook(url, secret_token="s3cr3t")
        assert (await bot.get_webhook_info()).url == url
        with pytest.raises(Conflict):
            await bot.get_updates()
        sent = emu.user(ANN).send("via webhook")
        await emu.wait_for(lambda: received, timeout=5)
        assert received[0] == (sent, "s3cr3t")
        await emu.wait_for(lambda: not emu.pending_updates(), timeout=5)
        assert (await bot.get_webhook_info()).pending_update_count == 0
        assert await bot.delete_webhook()
        emu.user(ANN).send("via polling")
        assert [u.message.text for u in await bot.get_updates(timeout=0)] == ["via polling"]
    finally:
        hook.shutdown()
        hook.server_close()


# ---------------------------------------------------------------- a whole Application


async def test_application_echo_end_to_end(emu):
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(f"You said: <b>{update.message.text}</b>", parse_mode="HTML")

    app = ApplicationBuilder().token(emu.token).base_url(emu.base_url).build()
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    ann = emu.user(ANN)
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            update = ann.send("hello bot")
            (reply,) = await emu.wait_for_messages_async(ANN, 1, timeout=5, after=update)
            assert reply["text"] == "You said: hello bot"
            assert reply["entities"] == [{"type": "bold", "offset": 10, "length": 9}]
            second = ann.send("again")
            (reply,) = await emu.wait_for_messages_async(ANN, 1, timeout=5, after=second)
            assert reply["text"] == "You said: again"
        finally:
            await app.updater.stop()
            await app.stop()
    assert emu.pending_updates() == []
    assert emu.warnings == []
