"""`refund-advisor webhook`: the same bot as `run`, its updates POSTed by Telegram instead of polled.

Only the way updates arrive differs: WebhookBot is TelegramBot (same database, handlers,
conversation, follow-up dispatcher in post_init/post_stop) with `_receive` serving HTTP.

- `POST <path>`: an update. A request whose `X-Telegram-Bot-Api-Secret-Token` header is not the
  configured secret gets 401 and is logged; its body is not even parsed.
- `GET /healthz`: 200 `{"status": "ok"}` when the database answers, 503 otherwise.

The answer to Telegram's POST is sent once the update has been processed, its turn committed
and its replies sent; not as soon as it is queued. Telegram forgets an update once it has a 2xx:
answering early would lose the update if the process died in between, while answering late
only risks a redelivery, which the processed-update ids make harmless. It also keeps a user's
turns in order across several instances: Telegram does not send the next update until this one
is answered. A stop finishes the requests in hand; one arriving during the stop gets 503, so
Telegram delivers it again later (to this instance once restarted, or to another).

The server is tornado: python-telegram-bot's own webhook server (its `webhooks` extra), a
single dependency without dependencies of its own. `Application.run_webhook` itself is not used:
it answers 403, not 401, to a wrong secret, has no health check, and owns the event loop.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from functools import partial
from typing import Any

from telegram import Update
from telegram.error import BadRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application as WebApplication, RequestHandler

from bot.config import HEALTH_PATH, Config, ConfigError, WebhookConfig
from bot.health import probe
from bot.telegram.sender import Sender
from bot.telegram_app import TelegramBot, protect_token, run

log = logging.getLogger("bot.webhook")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024          # bytes; an update is a few kilobytes, anything far larger is not Telegram
STOP_GRACE = 30.0               # seconds a stop waits for the updates in hand
SET_WEBHOOK_ATTEMPTS = 3


class WebhookBot(TelegramBot):
    """TelegramBot receiving updates on an HTTP server. `port` is the bound port once started."""

    def __init__(self, config: Config, *, webhook: WebhookConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.webhook = webhook
        self.port: int | None = None
        self.accepting = False
        self._server: HTTPServer | None = None
        self._in_hand = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def _receive(self) -> None:
        protect_token(self.webhook.secret)
        try:
            sockets = bind_sockets(self.webhook.port, self.webhook.listen)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.webhook.listen}:{self.webhook.port}: "
                              f"{exc.strerror or exc}") from None
        self._server = HTTPServer(_web_app(self), max_body_size=MAX_BODY)
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self.accepting = True
        await self._set_webhook()
        log.info("webhook for @%s at %s, listening on %s:%s%s", self.application.bot.username, self.webhook.url,
                 self.webhook.listen, self.port, self.webhook.path)

    async def _set_webhook(self) -> None:
        # Every instance sets the same webhook: setting it again is harmless, and a stop never
        # deletes it (the other instances, or this one restarted, still need it). Instances
        # starting together may meet Telegram's flood control: the Sender waits and retries.
        try:
            await Sender(self.opened_storage, attempts=SET_WEBHOOK_ATTEMPTS).call(
                None, "setWebhook", self.application.bot.set_webhook, url=self.webhook.url,
                secret_token=self.webhook.secret, allowed_updates=Update.ALL_TYPES)
        except BadRequest as exc:
            raise ConfigError(f"the Bot API refused TELEGRAM_WEBHOOK_URL={self.webhook.url}: "
                              f"{exc.message}") from None

    async def _stop_receiving(self) -> None:
        self.accepting = False
        if self._server is None:
            return
        self._server.stop()
        try:
            await asyncio.wait_for(self._idle.wait(), STOP_GRACE)
        except asyncio.TimeoutError:
            log.warning("stopping with updates still in hand after %g s (Telegram will deliver them again)",
                        STOP_GRACE)
        await self._server.close_all_connections()
        self._server = None

    async def process(self, update: Update) -> None:
        """One update through the Application, as polling would: one at a time, then `on_update_done`."""
        self._in_hand += 1
        self._idle.clear()
        try:
            app = self.application
            await app.update_processor.process_update(update, app.process_update(update))
        finally:
            self._in_hand -= 1
            if self._in_hand == 0:
                self._idle.set()


class _UpdateHandler(RequestHandler):
    def initialize(self, bot: WebhookBot) -> None:
        self.bot = bot

    def _answer(self, status: int, body: dict | None = None) -> None:
        self.set_status(status)
        if body is not None:
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(body))

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.bot.webhook.secret.encode()):
            log.warning("refused a webhook request from %s: %s secret token (401)", self.request.remote_ip,
                        "wrong" if given else "no")
            return self._answer(401, {"ok": False, "error": "unauthorized"})
        if not self.bot.accepting:
            return self._answer(503, {"ok": False, "error": "stopping"})
        try:
            update = Update.de_json(json.loads(self.request.body), self.bot.application.bot)
            if update is None:
                raise ValueError("null")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("refused a webhook request from %s: not an update (%s)", self.request.remote_ip,
                        type(exc).__name__)
            return self._answer(400, {"ok": False, "error": "not an update"})
        await self.bot.process(update)
        self._answer(200)


class _HealthHandler(RequestHandler):
    def initialize(self, bot: WebhookBot) -> None:
        self.bot = bot

    async def get(self) -> None:
        problem = await probe(self.bot.storage)
        if problem:
            log.warning("health check: %s", problem)
        self.set_status(503 if problem else 200)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps({"status": "unavailable" if problem else "ok",
                               "database": "unavailable" if problem else "ok"}))


def _quiet(handler: RequestHandler) -> None:
    """No access log: rejections are logged by the handlers, and 2xx lines would be one per update."""


def _web_app(bot: WebhookBot) -> WebApplication:
    return WebApplication([
        (HEALTH_PATH, _HealthHandler, {"bot": bot}),
        # tornado routes are regular expressions: this one matches the configured path exactly.
        (re.escape(bot.webhook.path), _UpdateHandler, {"bot": bot}),
    ], log_function=_quiet)


def run_webhook(config: Config, webhook: WebhookConfig) -> int:
    """`refund-advisor webhook`: until SIGTERM or SIGINT. Returns the exit code."""
    return run(config, bot_class=partial(WebhookBot, webhook=webhook))
