"""`refund-advisor webhook`: the same bot as `run`, its updates POSTed by Telegram instead of polled.

Only the way updates arrive differs: WebhookBot is TelegramBot (same database, handlers,
conversation, follow-up dispatcher in post_init/post_stop) with `_receive` serving HTTP.

- `POST <path>`: an update. A request whose `X-Telegram-Bot-Api-Secret-Token` header is not the
  configured secret gets 401 from its headers alone: none of its body is read, its connection is
  closed, and it is counted (bot.webserver.Refusals: a log line per kind at most once a minute).
- `GET /healthz`: 200 `{"status": "ok", ...}` when the database answers and the server can accept
  connections; 503 otherwise. It also gives the open connections and the poisoned updates.

The answer to Telegram's POST is sent once the update has been made good: its turn committed
and its replies sent; not as soon as it is queued. Telegram forgets an update once it has a 2xx:
answering early would lose the update if the process died in between, while answering late
only risks a redelivery, which the processed-update ids make harmless. It also keeps a user's
turns in order across several instances: Telegram does not send the next update until this one
is answered. An update whose replies could not be sent (the Bot API or the database failing) gets
503, so that Telegram delivers it again; one that cannot be read or handled at all (poison) gets
200, is logged once and counted, and the updates after it go on (bot.telegram.acks). A stop
finishes the requests in hand; one arriving during the stop gets 503, so Telegram delivers it
again later (to this instance once restarted, or to another).

Connections from the open internet are bounded by bot.webserver.GuardedServer: timeouts for
headers and bodies, a cap below the open-file limit, the oldest idle connection closed first.

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
from tornado.netutil import bind_sockets
from tornado.web import Application as WebApplication, RequestHandler, stream_request_body

from bot.config import HEALTH_PATH, Config, ConfigError, WebhookConfig
from bot.health import probe
from bot.telegram.acks import RETRY
from bot.telegram.sender import Sender
from bot.logs import protect_token
from bot.telegram_app import TelegramBot, run
from bot.webserver import BODY_TIMEOUT, HEADER_TIMEOUT, GuardedServer, Refusals, client_address, connection_cap, raise_open_file_limit

log = logging.getLogger("bot.webhook")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 256 * 1024           # bytes; an update is a few kilobytes, anything far larger is not Telegram
STOP_GRACE = 30.0               # seconds a stop waits for the updates in hand
SET_WEBHOOK_ATTEMPTS = 3
_UPDATE_ID = re.compile(rb'"update_id"\s*:\s*(\d{1,19})')


class WebhookBot(TelegramBot):
    """TelegramBot receiving updates on an HTTP server. `port` is the bound port once started."""

    def __init__(self, config: Config, *, webhook: WebhookConfig, max_connections: int | None = None,
                 header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT, **kwargs: Any):
        """`max_connections`: by default from the open-file limit (bot.webserver.connection_cap)."""
        super().__init__(config, **kwargs)
        self.timeouts = {"idle_connection_timeout": header_timeout, "body_timeout": body_timeout}
        self.webhook = webhook
        self.port: int | None = None
        self.accepting = False
        self.max_connections = max_connections
        self.refusals = Refusals()
        self._server: GuardedServer | None = None
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
        cap = self.max_connections or connection_cap(raise_open_file_limit())
        self._server = GuardedServer(_web_app(self), max_body_size=MAX_BODY, max_connections=cap,
                                     refusals=self.refusals, **self.timeouts)
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
        self._server.detach_logging()
        self._server = None

    def server_busy(self, connection: Any, busy: bool) -> None:
        """A connection serving a genuine update is never closed to make room for another."""
        if self._server is not None:
            self._server.busy(getattr(connection, "stream", None), busy)

    def poison(self, update_id: int | None, why: str) -> None:
        self.acks.poison(update_id, why)

    async def process(self, update: Update) -> str:
        """As polling does (TelegramBot.process), the updates in hand counted for a stop."""
        self._in_hand += 1
        self._idle.clear()
        try:
            return await super().process(update)
        finally:
            self._in_hand -= 1
            if self._in_hand == 0:
                self._idle.set()


class _Base(RequestHandler):
    def initialize(self, bot: WebhookBot) -> None:
        self.bot = bot

    def set_default_headers(self) -> None:
        self.clear_header("Server")          # no software name and version for strangers

    def _answer(self, status: int, body: dict | None = None) -> None:
        self.set_status(status)
        if body is not None:
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(body))

    def _client(self) -> str:
        return client_address(self.request.remote_ip, self.request.headers)


class _NotFound(_Base):
    def initialize(self, bot: WebhookBot | None = None, status_code: int = 404) -> None:
        if bot is not None:         # a 404 needs no bot: nothing of it is used
            self.bot = bot

    def prepare(self) -> None:
        self._answer(404, {"ok": False, "error": "not found"})
        self.finish()


@stream_request_body
class _UpdateHandler(_Base):
    """The secret is checked on the headers: a request without it is answered 401 before any of
    its body is read, and its connection closed."""

    _chunks: list[bytes] | None = None

    async def prepare(self) -> None:
        if self.request.method != "POST":
            return                            # 405, from tornado
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.bot.webhook.secret.encode()):
            self.bot.refusals.note(f"{'wrong' if given else 'no'} secret token (401)", f"from {self._client()}")
            self._answer(401, {"ok": False, "error": "unauthorized"})
            self.finish()
            return
        if not self.bot.accepting:
            self._answer(503, {"ok": False, "error": "stopping"})
            self.finish()
            return
        self._chunks = []
        self.bot.server_busy(self.request.connection, True)

    def data_received(self, chunk: bytes) -> None:
        if self._chunks is not None:
            self._chunks.append(chunk)

    def on_finish(self) -> None:
        self.bot.server_busy(self.request.connection, False)

    def on_connection_close(self) -> None:
        self.bot.server_busy(self.request.connection, False)

    async def post(self) -> None:
        body = b"".join(self._chunks or ())
        self._chunks = None
        update_id = _update_id(body)
        try:
            update = Update.de_json(json.loads(body), self.bot.application.bot)
            if update is None or not isinstance(update.update_id, int):
                raise ValueError("not an update")
        except Exception as exc:    # whatever it is, it came with the secret: Telegram must not retry it
            if update_id is None:
                self.bot.refusals.note("not an update (400)", f"{type(exc).__name__} from {self._client()}")
                return self._answer(400, {"ok": False, "error": "not an update"})
            self.bot.poison(update_id, f"cannot be read ({type(exc).__name__})")
            return self._answer(200)
        verdict = await self.bot.process(update)
        if verdict == RETRY:
            # Its replies are not out (the Bot API or the database failing): Telegram delivers it again.
            return self._answer(503, {"ok": False, "error": "not processed, try again"})
        self._answer(200)


def _update_id(body: bytes) -> int | None:
    """The update_id of a body, read without parsing it (it may be too deep to parse)."""
    match = _UPDATE_ID.search(body[:4096]) or _UPDATE_ID.search(body[-4096:])
    return int(match.group(1)) if match else None


class _HealthHandler(_Base):
    async def get(self) -> None:
        problem = await probe(self.bot.storage)
        if problem:
            log.warning("health check: %s", problem)
        server = self.bot._server
        starved = server is not None and server.starved()
        self.set_status(503 if problem or starved else 200)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps({
            "status": "unavailable" if problem else "overloaded" if starved else "ok",
            "database": "unavailable" if problem else "ok",
            "connections": server.open_connections if server else 0,
            "poisoned": self.bot.acks.poisoned,
        }))


def _quiet(handler: RequestHandler) -> None:
    """No access log: refusals are counted and logged by the handlers, and 2xx lines would be one per update."""


def _web_app(bot: WebhookBot) -> WebApplication:
    return WebApplication([
        (HEALTH_PATH, _HealthHandler, {"bot": bot}),
        # tornado routes are regular expressions: this one matches the configured path exactly.
        (re.escape(bot.webhook.path), _UpdateHandler, {"bot": bot}),
    ], log_function=_quiet, default_handler_class=_NotFound, default_handler_args={"bot": bot})


def run_webhook(config: Config, webhook: WebhookConfig) -> int:
    """`refund-advisor webhook`: until SIGTERM or SIGINT. Returns the exit code."""
    return run(config, bot_class=partial(WebhookBot, webhook=webhook))
