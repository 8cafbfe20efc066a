"""Webhook mode against a hostile internet (issue 18): the real bot (WebhookBot) and real sockets on
loopback. Stalled connections are closed on their timeouts and cannot keep Telegram out; a request
without the secret is refused from its headers; refusals do not flood the log; poison updates are
acknowledged once and the next update is answered; an update whose replies could not be sent is
not acknowledged, and is answered once the Bot API recovers."""
from __future__ import annotations

import asyncio
import json
import logging
import socket
from functools import partial

import pytest

from bot.config import WebhookConfig
from bot.telegram_app import serve
from bot.webhook import WebhookBot
from telegram_harness import started
from test_webhook import ANN, PUBLIC_URL, SECRET, WebhookHarness, ahttp, start_update

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator


class TightHarness(WebhookHarness):
    """Short timeouts and a small connection cap, so that an attack fits in a test."""

    def __init__(self, *args, max_connections: int = 20, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections

    def serve(self, config, stop, **kwargs):
        webhook = WebhookConfig(url=PUBLIC_URL, secret=SECRET, listen="127.0.0.1", port=0, path="/telegram")
        ready = kwargs.pop("ready")

        def routed(bot: WebhookBot) -> None:
            self.emu.route_webhook([f"http://127.0.0.1:{bot.port}/telegram"])
            ready(bot)

        bot_class = partial(WebhookBot, webhook=webhook, max_connections=self.max_connections,
                            header_timeout=1.0, body_timeout=1.0)
        return serve(config, stop, bot_class=bot_class, ready=routed, **kwargs)


@pytest.fixture
async def tight(tmp_path):
    with BotApiEmulator(webhook_retry_interval=0.1) as emu:
        async with started(TightHarness(emu, tmp_path / "bot.db")) as harness:
            yield harness


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


async def closed_by_server(s: socket.socket, within: float) -> bool:
    """True if the server closes the connection (EOF or reset) within `within` seconds."""
    def wait() -> bool:
        s.settimeout(within)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return await asyncio.get_running_loop().run_in_executor(None, wait)


async def raw_answer(s: socket.socket, timeout: float = 5) -> bytes:
    """The answer's status line and headers (read off the event loop the bot runs on)."""
    return await asyncio.get_running_loop().run_in_executor(None, _read_head, s, timeout)


def _read_head(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


async def test_unfinished_headers_and_a_stalled_body_are_closed_on_their_timeouts(tight):
    port = tight.bot.port
    headers_only = connect(port)
    headers_only.sendall(b"POST /telegram HTTP/1.1\r\nHost: x\r\n")          # never finished
    idle = connect(port)                                                       # says nothing at all
    body = connect(port)
    body.sendall(b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"X-Telegram-Bot-Api-Secret-Token: " + SECRET.encode() + b"\r\nContent-Length: 5000\r\n\r\n{\"upd")
    results = await asyncio.gather(*(closed_by_server(s, 5) for s in (headers_only, idle, body)))
    for s in (headers_only, idle, body):
        s.close()
    assert results == [True, True, True], "each closed by the server on its timeout (1 s in this test)"
    assert tight.bot._server.open_connections == 0


async def test_a_request_without_the_secret_is_refused_before_its_body_is_sent(tight):
    s = connect(tight.bot.port)
    # 200 KB announced, none of it sent: the answer comes from the headers alone.
    s.sendall(b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"X-Telegram-Bot-Api-Secret-Token: guessed\r\nContent-Length: 200000\r\n\r\n")
    answer = await raw_answer(s)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert await closed_by_server(s, 2), "the connection is closed, the body never read"
    s.close()
    assert tight.total_rows() == 0


async def test_a_body_over_256_kb_is_refused(tight):
    s = connect(tight.bot.port)
    s.sendall(b"POST /telegram HTTP/1.1\r\nHost: x\r\nX-Telegram-Bot-Api-Secret-Token: " + SECRET.encode()
              + b"\r\nContent-Length: 300000\r\n\r\n")
    answer = await raw_answer(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer


async def test_stalled_connections_over_the_cap_cannot_keep_telegram_or_the_health_check_out(tight):
    port = tight.bot.port
    stalled = [connect(port) for _ in range(60)]            # three times the cap of 20
    try:
        await asyncio.sleep(0.2)
        assert tight.bot._server.open_connections <= 20
        status, body = await ahttp(tight.local_url("/healthz"))
        assert status == 200 and body["status"] == "ok"
        messages = await tight.command(tight.emu.user(ANN), "/start")
        assert messages and messages[0]["text"].startswith("Hello"), "Telegram's update answered during the attack"
        assert all(d["status"] == 200 for d in tight.emu.webhook_deliveries)
        closed = await asyncio.gather(*(closed_by_server(s, 0.05) for s in stalled[:10]))
        assert all(closed), "the oldest stalled connections were closed to make room"
    finally:
        for s in stalled:
            s.close()


async def test_no_answer_names_the_server_software(tight):
    answers = []
    for request in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /telegram HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"):
        s = connect(tight.bot.port)
        s.sendall(request)
        answers.append(await raw_answer(s))
        s.close()
    assert [a.split(b" ", 2)[1] for a in answers] == [b"200", b"404", b"405", b"401"]
    assert not any(b"\r\nserver:" in a.lower() for a in answers), answers


async def test_refusals_are_logged_once_a_minute_per_kind_and_never_with_the_attackers_text(tight, caplog):
    caplog.set_level(logging.INFO)
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "wrong"}
    for n in range(40):
        status, _ = await ahttp(tight.local_url("/telegram"), start_update(900 + n), headers)
        assert status == 401
    s = connect(tight.bot.port)
    s.sendall(b"GET / HTTP/1.1\r\nX-Junk: " + b"A" * 60_000 + b"\r\n\r\n")     # over tornado's header limit
    await raw_answer(s)
    s.close()
    await asyncio.sleep(0.2)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len([m for m in refused if "secret" in m]) == 1, refused
    assert "A" * 300 not in caplog.text
    assert all(len(r.getMessage()) < 400 for r in caplog.records)
    assert tight.bot.refusals.total["wrong secret token (401)"] == 40


def update_with(date: object) -> bytes:
    return json.dumps({"update_id": 0, "message": {
        "message_id": 1, "date": date, "text": "hello",
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
        "from": {"id": ANN, "is_bot": False, "first_name": "Ann"}}}).replace('"update_id": 0', '"update_id": %d')


async def test_poison_updates_are_acknowledged_once_counted_and_the_next_update_is_answered(tight):
    url, headers = tight.local_url("/telegram"), {"Content-Type": "application/json",
                                                  "X-Telegram-Bot-Api-Secret-Token": SECRET}
    deep = b'{"update_id": 703, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    poisons = [(update_with(1e20) % 701).encode(), (update_with(float("inf")) % 702).encode(), deep]
    assert b"Infinity" in poisons[1]
    for body in poisons:
        status, _ = await ahttp(url, body, headers)
        assert status == 200, body[:80]
    status, health = await ahttp(tight.local_url("/healthz"))
    assert (status, health["poisoned"]) == (200, 3)
    messages = await tight.command(tight.emu.user(ANN), "/start")
    assert messages and messages[0]["text"].startswith("Hello")


async def test_a_callback_query_the_library_cannot_parse_is_acknowledged_and_the_next_update_is_answered(tight):
    """As another Bot API implementation may send: a callback query without its sender."""
    url, headers = tight.local_url("/telegram"), {"Content-Type": "application/json",
                                                  "X-Telegram-Bot-Api-Secret-Token": SECRET}
    body = json.dumps({"update_id": 801, "callback_query": {"id": "q-1", "chat_instance": "1",
                                                            "data": "q:1:x:y"}}).encode()
    status, _ = await ahttp(url, body, headers)
    assert status == 200
    assert tight.bot.acks.poisoned == 1
    messages = await tight.command(tight.emu.user(ANN), "/start")
    assert messages and messages[0]["text"].startswith("Hello")


@pytest.mark.filterwarnings("ignore:.*`retry_after` will be of type")
async def test_an_update_whose_reply_cannot_be_sent_is_not_acknowledged_and_is_answered_when_the_api_recovers(tight):
    ann = tight.emu.user(ANN)
    tight.emu.fail_next("sendMessage", 502, count=4)       # every attempt of the first delivery fails
    update = ann.send_command("/start")
    (reply,) = await tight.emu.wait_for_messages_async(ANN, 1, timeout=20, after=update)
    assert reply["text"].startswith("Hello") and reply["reply_markup"], "the welcome and the first question"
    await tight.emu.wait_for(lambda: not tight.emu.pending_updates(), timeout=10)
    statuses = [d["status"] for d in tight.emu.webhook_deliveries if d["update"]["update_id"] == update["update_id"]]
    assert statuses[0] == 503 and statuses[-1] == 200, statuses
    assert len(tight.emu.messages(ANN)) == 1, "answered once"

    # A dialog turn too: the answer is stored, the next question comes when the Bot API is back.
    tight.emu.fail_next("sendMessage", 502, count=4)
    answer = ann.send("China")
    (question,) = await tight.emu.wait_for_messages_async(ANN, 1, timeout=20, after=answer)
    assert question["reply_markup"], "the next question, with its buttons"


async def test_behind_a_proxy_the_refusal_names_the_forwarded_address_and_never_a_forged_text(tight, caplog):
    url = tight.local_url("/telegram")
    status, _ = await ahttp(url, start_update(950), {"X-Forwarded-For": "198.51.100.1, 203.0.113.7",
                                                     "Content-Type": "application/json"})
    assert status == 401
    assert "from 203.0.113.7" in caplog.text, "the address the proxy on this machine forwarded"
    tight.bot.refusals.interval = 0            # every refusal logged, for this check
    status, _ = await ahttp(url, start_update(951), {"X-Forwarded-For": "<script>" + "x" * 500,
                                                     "Content-Type": "application/json"})
    assert status == 401
    assert "<script>" not in caplog.text and "from 127.0.0.1" in caplog.text
