"""The emulator's webhook side: setWebhook checked like every method, deliveries spread
round-robin over several instances (route_webhook), a non-2xx retried (on the next instance)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from telegram import Bot
from telegram.error import BadRequest

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

ANN = 1001


class Instance:
    """A webhook endpoint on 127.0.0.1 that records what it gets and answers `status`."""

    def __init__(self, status: int = 200):
        self.status = status
        self.received: list[tuple[int, str | None]] = []
        instance = self

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self):
                update = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                instance.received.append((update["update_id"], self.headers.get("X-Telegram-Bot-Api-Secret-Token")))
                self.send_response(instance.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Hook)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def instances():
    made = [Instance(), Instance()]
    yield made
    for instance in made:
        instance.close()


async def test_deliveries_alternate_between_instances_and_a_refusal_is_retried_on_the_next(instances):
    a, b = instances
    with BotApiEmulator(webhook_retry_interval=0.05) as emu:
        async with Bot(emu.token, base_url=emu.base_url) as bot:
            assert await bot.set_webhook("https://bot.example.test/hook", secret_token="k3y")
        emu.route_webhook([a.url, b.url])
        ann = emu.user(ANN)
        ids = [ann.send(f"message {n}")["update_id"] for n in range(4)]
        await emu.wait_for(lambda: not emu.pending_updates(), timeout=10)
        assert [i for i, _ in a.received] == ids[0::2] and [i for i, _ in b.received] == ids[1::2]
        assert {secret for _, secret in a.received + b.received} == {"k3y"}

        a.status = 503                                   # instance a is going down; next in turn
        retried = ann.send("while a refuses")["update_id"]
        await emu.wait_for(lambda: not emu.pending_updates(), timeout=10)
        tail = [(d["url"], d["status"]) for d in emu.webhook_deliveries if d["update"]["update_id"] == retried]
        assert tail == [(a.url, 503), (b.url, 200)]
        assert "503" in emu.webhook["last_error_message"]
        assert emu.errors == []


@pytest.mark.filterwarnings("ignore:Please use 'Bot.setWebhook'")
async def test_set_webhook_is_checked_against_the_spec_and_telegrams_rules():
    with BotApiEmulator() as emu:
        async with Bot(emu.token, base_url=emu.base_url) as bot:
            with pytest.raises(BadRequest, match="(?i)https url"):
                await bot.set_webhook("ftp://bot.example.test/hook")
            with pytest.raises(BadRequest, match="(?i)unallowed characters"):
                await bot.set_webhook("https://bot.example.test/hook", secret_token="has space")
            with pytest.raises(BadRequest, match="(?i)max_connections"):
                await bot.do_api_request("setWebhook", {"url": "https://bot.example.test/h",
                                                        "max_connections": "many"})
            assert (await bot.get_webhook_info()).url == ""
        assert emu.errors == []
