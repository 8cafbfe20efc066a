"""Webhook mode end to end: the real bot (bot.webhook.WebhookBot, the code path of
`refund-advisor webhook`) against tests/botapi, which POSTs the updates to it with the secret.

The bot sets the public URL https://refund-bot.test/telegram; the emulator's route_webhook sends
its deliveries to the port the bot actually bound (a load balancer in front of it)."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from functools import partial

import pytest

from bot.config import WebhookConfig
from bot.telegram_app import serve
from bot.webhook import WebhookBot
from telegram_harness import Harness, config_for, started
from test_telegram_intake import BUTTONS, drive, finished

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

ANN = 1001
SECRET = "s3cret_Webhook-token"
PUBLIC_URL = "https://refund-bot.test/telegram"


class WebhookHarness(Harness):
    def serve(self, config, stop, **kwargs):
        webhook = WebhookConfig(url=PUBLIC_URL, secret=SECRET, listen="127.0.0.1", port=0, path="/telegram")
        ready = kwargs.pop("ready")

        def routed(bot: WebhookBot) -> None:
            self.emu.route_webhook([f"http://127.0.0.1:{bot.port}/telegram"])
            ready(bot)

        return serve(config, stop, bot_class=partial(WebhookBot, webhook=webhook), ready=routed, **kwargs)

    def local_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.bot.port}{path}"


@pytest.fixture
async def wh(tmp_path):
    with BotApiEmulator() as emu:
        async with started(WebhookHarness(emu, tmp_path / "bot.db")) as harness:
            yield harness


def http(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict | None]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, data = e.code, e.read()
    return status, (json.loads(data) if data else None)


async def ahttp(*args, **kwargs) -> tuple[int, dict | None]:
    # urllib blocks: off the event loop the bot runs on.
    return await asyncio.get_running_loop().run_in_executor(None, partial(http, *args, **kwargs))


def start_update(update_id: int) -> bytes:
    return json.dumps({"update_id": update_id, "message": {
        "message_id": 1, "date": 1_700_000_000, "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        "chat": {"id": ANN, "type": "private", "first_name": "Ann"},
        "from": {"id": ANN, "is_bot": False, "first_name": "Ann", "language_code": "en"}}}).encode()


async def test_a_whole_intake_arrives_through_the_webhook(wh):
    assert wh.emu.webhook["url"] == PUBLIC_URL and wh.emu.webhook["secret_token"] == SECRET
    user = wh.emu.user(ANN, language_code="en")
    first = await wh.command(user, "/start")
    asked, last = await drive(wh, user, BUTTONS, first)
    assert asked[-1] == "confirm"
    finished(wh, ANN, last)
    # The last 200 reaches the emulator just after the update is done.
    deliveries = await wh.emu.wait_for(lambda: [d for d in wh.emu.webhook_deliveries if d["status"] == 200]
                                       if len(wh.emu.webhook_deliveries) > len(asked) else None)
    assert len(deliveries) == len(wh.emu.webhook_deliveries) == len(asked) + 1, "/start and each answer, once"
    assert wh.emu.stats["getUpdates"] == 0, "webhook mode never polls"


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "guessed"},
                                     {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}],
                         ids=["missing", "wrong", "longer"])
async def test_a_request_without_the_secret_gets_401_and_changes_nothing(wh, headers, caplog):
    wh.emu.user(ANN)
    url = wh.local_url("/telegram")
    status, _ = await ahttp(url, start_update(500), {"Content-Type": "application/json", **headers})
    assert status == 401
    await asyncio.sleep(0.2)
    assert wh.total_rows() == 0, "nothing stored"
    assert wh.emu.messages(ANN) == [] and wh.emu.stats["sendMessage"] == 0, "nothing sent"
    assert "refused a webhook request" in caplog.text and SECRET not in caplog.text

    # The same request with the secret is an update like any other.
    status, _ = await ahttp(url, start_update(501), {"Content-Type": "application/json",
                                                     "X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert status == 200
    assert wh.emu.messages(ANN), "answered once the secret is right"
    assert wh.rows("SELECT COUNT(*) FROM processed_updates WHERE update_id = 501") == [(1,)]


async def test_a_body_that_is_not_an_update_gets_400(wh):
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    for body in (b"not json", b"[1, 2]", b'{"no": "update_id"}'):
        status, _ = await ahttp(wh.local_url("/telegram"), body, headers)
        assert status == 400, body
    assert wh.total_rows() == 0


async def test_the_answer_comes_after_the_turn_is_stored_and_a_redelivery_is_not_acted_on_twice(wh):
    user = wh.emu.user(ANN)
    update = user.send_command("/start")
    await wh.emu.wait_for(lambda: wh.emu.webhook_deliveries, timeout=10)
    # When Telegram has its 2xx, the reply is sent and the turn committed.
    assert wh.emu.messages(ANN) and wh.rows("SELECT COUNT(*) FROM processed_updates") == [(1,)]
    sent = wh.emu.stats["sendMessage"]
    wh.emu.redeliver(update)
    await wh.emu.wait_for(lambda: len(wh.emu.webhook_deliveries) == 2, timeout=10)
    assert wh.emu.webhook_deliveries[1]["status"] == 200
    assert wh.emu.stats["sendMessage"] == sent


async def test_healthz_is_200_while_the_database_answers_and_503_when_it_does_not(wh):
    status, body = await ahttp(wh.local_url("/healthz"))
    assert (status, body["status"], body["database"], body["poisoned"]) == (200, "ok", "ok", 0)
    await wh.bot.storage.close()           # the database connection is gone (a database server down)
    status, body = await ahttp(wh.local_url("/healthz"))
    assert (status, body["status"], body["database"]) == (503, "unavailable", "unavailable")


async def test_a_webhook_url_the_bot_api_refuses_stops_the_start_with_exit_2(tmp_path, capsys):
    with BotApiEmulator() as emu:
        webhook = WebhookConfig(url="ftp://nowhere", secret=SECRET, listen="127.0.0.1", port=0, path="/t")
        code = await serve(config_for(emu, tmp_path / "bot.db"), asyncio.Event(),
                           bot_class=partial(WebhookBot, webhook=webhook))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "TELEGRAM_WEBHOOK_URL" in err[0] and "https url" in err[0].lower()


async def test_back_to_polling_the_webhook_is_removed_and_what_was_written_meanwhile_is_answered(wh):
    user = wh.emu.user(ANN)
    await wh.command(user, "/start")
    assert await wh.stop() == 0
    assert wh.emu.webhook["url"] == PUBLIC_URL, "a stopped instance leaves the webhook to the others"
    update = user.send("China")                      # no instance listens: Telegram keeps it
    polling = Harness(wh.emu, wh.db_path)
    await polling.start()
    try:
        await polling.done(update)
        assert wh.emu.webhook["url"] == ""
        assert polling.after(ANN, update), "answered by the polling bot"
    finally:
        assert await polling.stop() == 0


@pytest.mark.filterwarnings("ignore:.*`retry_after` will be of type")    # python-telegram-bot's own, per 429
async def test_flood_control_on_set_webhook_is_waited_out(tmp_path):
    with BotApiEmulator() as emu:
        emu.fail_next("setWebhook", 429, retry_after=1)     # another instance set it a moment ago
        async with started(WebhookHarness(emu, tmp_path / "bot.db")) as harness:
            assert emu.webhook["url"] == PUBLIC_URL
            assert await harness.command(emu.user(ANN), "/start")
