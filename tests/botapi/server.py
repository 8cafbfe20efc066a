"""An emulation of the Telegram Bot API server on 127.0.0.1, for end-to-end tests and benchmarks.

    with BotApiEmulator() as emu:
        app = ApplicationBuilder().token(emu.token).base_url(emu.base_url).build()
        ann = emu.user(42, first_name="Ann")
        update = ann.send("hello")
        ...  # run the bot
        replies = emu.wait_for_messages(42, 1, after=update)

Requests arrive as ``POST|GET /bot<token>/<method>`` (form-encoded, multipart or JSON
bodies, or a query string) and are checked against the Bot API spec
(/work/shared/telegram/bot-api-spec.json, or $BOT_API_SPEC): unknown method -> 404,
missing required parameter or a value of the wrong type -> 400, unknown parameters are
ignored (as Telegram does) and listed in ``emu.warnings``.  Answers are shaped like
Telegram's: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": "..."}`` with the HTTP status equal to error_code.

The server runs in a background thread (a ThreadingHTTPServer); every public method
is thread-safe and may be called from the test's thread or event loop.
"""
from __future__ import annotations

import asyncio
import copy
import json
import math
import mimetypes
import re
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

from .formatting import EntityParseError, parse_text, utf16_len
from .spec import ParamError, Spec, UploadedFile, load_spec

__all__ = ["ApiError", "BotApiEmulator", "FakeUser", "Stats"]

MAX_MESSAGE_LENGTH = 4096      # UTF-16 code units, after entity parsing
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_GETFILE_SIZE = 20 * 1024 * 1024

# Update types a bot gets when allowed_updates was never set or set to [] (Telegram's default)
_DEFAULT_EXCLUDED_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}
_MESSAGE_KEYS = ("message", "edited_message", "channel_post", "edited_channel_post",
                 "business_message", "edited_business_message")
_CHAT_ACTIONS = {"typing", "upload_photo", "record_video", "upload_video", "record_voice",
                 "upload_voice", "upload_document", "choose_sticker", "find_location",
                 "record_video_note", "upload_video_note"}
_BUTTON_ACTIONS = ("url", "callback_data", "web_app", "login_url", "switch_inline_query",
                   "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
                   "copy_text", "callback_game", "pay")
# Keys of a stored message that are the emulator's, not Telegram's (not sent to the bot)
_EXTRA_KEYS = ("parse_mode", "edited", "raw_text", "raw_caption", "deleted", "file_data")

_NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and "
                 "reply markup are exactly the same as a current content and reply markup of the message")
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"


class ApiError(Exception):
    """An error answer: HTTP status and error_code `code`, Telegram's `description`."""

    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict:
        body = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, "Bad Request: " + description)


@dataclass(frozen=True)
class Stats:
    """A snapshot of call counts: ``stats["sendMessage"]``, ``stats.too_many_requests``."""

    calls: dict[str, int]
    errors: dict[int, int]         # answers by error_code (400, 403, 429, ...)
    rate_limited: int              # 429s from enforce_rate_limit (fail_next 429s are not counted here)

    @property
    def too_many_requests(self) -> int:
        """All 429 answers: enforced rate limit and injected ones."""
        return self.errors.get(429, 0)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def __getitem__(self, method: str) -> int:
        return self.calls.get(method, 0)


@dataclass
class _Fault:
    method: str | None             # None: any method
    code: int
    description: str
    retry_after: int | None
    remaining: int
    drop: bool = False             # close the connection without an answer


@dataclass
class _QueuedUpdate:
    update: dict
    forced: bool = False           # a redelivery: sent once whatever the offset says
    delivered: bool = False


@dataclass
class _Chat:
    info: dict
    next_message_id: int = 1
    messages: dict[int, dict] = field(default_factory=dict)
    blocked: bool = False


class BotApiEmulator:
    """A Telegram Bot API server for one bot, on 127.0.0.1 and an ephemeral port."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        bot_username: str = "test_refund_bot",
        bot_first_name: str = "Refund Advisor (test)",
        reject_token: bool = False,
        strict_chats: bool = True,
        strict_html_ampersand: bool = True,
        long_poll_cap: float = 10.0,
        callback_query_ttl: float | None = None,
        latency: float = 0.0,
        webhook_retry_interval: float = 0.5,
        spec_path: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        first_update_id: int = 1,
    ):
        self.spec: Spec = load_spec(spec_path)
        self.token = token
        self.reject_token = reject_token
        self.strict_chats = strict_chats                  # unknown chat_id -> "chat not found"
        self.strict_html_ampersand = strict_html_ampersand
        self.long_poll_cap = long_poll_cap
        self.callback_query_ttl = callback_query_ttl      # None: queries never expire
        self.latency = latency                            # seconds added to every call
        self.webhook_retry_interval = webhook_retry_interval
        self.warnings: list[str] = []                     # unknown parameters, unemulated methods
        self.errors: list[str] = []                       # emulator bugs (answered with 500)
        self._host, self._port = host, port

        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 123456
        self.bot = {"id": bot_id, "is_bot": True, "first_name": bot_first_name, "username": bot_username}

        self._cond = threading.Condition(threading.RLock())
        self._stopping = False
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

        self._next_update_id = first_update_id
        self._queue: list[_QueuedUpdate] = []
        self._allowed_updates: set[str] | None = None
        self._poll_generation = 0
        self._dropped_updates: list[dict] = []

        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, FakeUser] = {}
        self._callback_queries: dict[str, dict] = {}
        self._callback_answers: list[dict] = []
        self._next_query = 1
        self._chat_actions: list[tuple[int, str]] = []
        self._files: dict[str, dict] = {}
        self._commands: dict[tuple[str, str], list[dict]] = {}
        self._bot_texts: dict[tuple[str, str], str] = {}
        self._settings: dict[str, dict] = {}

        self._webhook: dict[str, Any] = {"url": ""}
        self._webhook_deliveries: list[dict] = []
        self._webhook_targets: list[str] = []      # route_webhook: a load balancer's back ends
        self._next_target = 0

        self._faults: list[_Fault] = []
        self._holds: list[list[Any]] = []      # [method, remaining, release event, calls held so far]
        self._rate_per_second: int | None = None
        self._rate_per_chat: float | None = None
        self._rate_window: deque[float] = deque()
        self._rate_chat_last: dict[int, float] = {}
        self._calls: Counter[str] = Counter()
        self._error_counts: Counter[int] = Counter()
        self._rate_limited = 0
        self._requests: deque[dict] = deque(maxlen=10_000)
        self._changes = 0

    # ================================================================ lifecycle

    def start(self) -> "BotApiEmulator":
        if self._server is not None:
            return self
        self._stopping = False
        self._server = _Server((self._host, self._port), _Handler, self)
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="botapi-emulator", daemon=True)
        webhook = threading.Thread(target=self._webhook_loop, name="botapi-emulator-webhook", daemon=True)
        self._threads = [serve, webhook]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        with self._cond:
            self._stopping = True
            for entry in self._holds:
                entry[2].set()
            self._cond.notify_all()
        server.shutdown()
        server.close_connections()
        server.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._server = None

    def __enter__(self) -> "BotApiEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __aenter__(self) -> "BotApiEmulator":
        return self.start()

    async def __aexit__(self, *exc) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """For python-telegram-bot's base_url: it appends the token, then /method."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """For python-telegram-bot's base_file_url (downloads of files users sent)."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    @property
    def api_url(self) -> str:
        """base_url with the token: f"{emu.api_url}/getMe"."""
        return f"{self.base_url}{self.token}"

    # ================================================================ fault injection, limits

    def fail_next(self, method: str | None, error_code: int = 500, description: str | None = None,
                  retry_after: int | None = None, count: int = 1) -> None:
        """Answer the next `count` calls of `method` (None: any method) with an error.

        The calls have no effect.  With retry_after the answer carries
        ``parameters: {retry_after: N}`` (python-telegram-bot raises RetryAfter).
        """
        if description is None:
            description = {
                400: "Bad Request: injected error", 403: "Forbidden: injected error",
                409: "Conflict: injected error", 429: f"Too Many Requests: retry after {retry_after or 1}",
                500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                504: "Gateway Timeout",
            }.get(error_code, "Injected error")
        if error_code == 429 and retry_after is None:
            retry_after = 1
        with self._cond:
            self._faults.append(_Fault(self._canonical(method), error_code, description, retry_after, count))

    def drop_next(self, method: str | None, count: int = 1) -> None:
        """Close the connection without answering the next `count` calls (a network error)."""
        with self._cond:
            self._faults.append(_Fault(self._canonical(method), 0, "", None, count, drop=True))

    def hold_next(self, method: str, count: int = 1) -> tuple[threading.Event, Callable[[], int]]:
        """Keep the next `count` calls of `method` unanswered until the returned event is set; then
        their connections are closed without an answer and the calls have no effect: requests in
        flight when the bot dies. Also returns a function telling how many calls are held so far."""
        release = threading.Event()
        entry: list[Any] = [method, count, release, 0]
        with self._cond:
            self._holds.append(entry)
        return release, lambda: entry[3]

    def _held(self, path: str) -> threading.Event | None:
        method = path.rsplit("/", 1)[-1].lower()
        with self._cond:
            for entry in self._holds:
                if entry[0].lower() == method and entry[1] > 0:
                    entry[1] -= 1
                    entry[3] += 1
                    self._cond.notify_all()
                    return entry[2]
        return None

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()

    def enforce_rate_limit(self, per_second: int | None = 30, *, per_chat_per_second: float | None = None) -> None:
        """Answer 429 (with retry_after) to send* calls over `per_second` within any second overall,
        and optionally over `per_chat_per_second` in one chat.  per_second=None turns it off."""
        with self._cond:
            self._rate_per_second = per_second
            self._rate_per_chat = per_chat_per_second
            self._rate_window.clear()
            self._rate_chat_last.clear()

    @property
    def stats(self) -> Stats:
        with self._cond:
            return Stats(dict(self._calls), dict(self._error_counts), self._rate_limited)

    def reset_stats(self) -> None:
        with self._cond:
            self._calls.clear()
            self._error_counts.clear()
            self._rate_limited = 0
            self._requests.clear()

    def calls(self, method: str | None = None) -> list[dict]:
        """Recent requests (last 10,000): dicts with method, params, ok, error_code, description, time,
        host (the request's Host header: bots given different base URLs, such as 127.0.0.1 and
        localhost, can be told apart)."""
        method = self._canonical(method)
        with self._cond:
            return [dict(r) for r in self._requests if method is None or r["method"] == method]

    # ================================================================ the user side

    def user(self, user_id: int, first_name: str = "Ann", language_code: str | None = "en", *,
             last_name: str | None = None, username: str | None = None,
             is_premium: bool | None = None) -> "FakeUser":
        """A Telegram user who talks to the bot in a private chat (chat id == user id).

        Asking again for the same id gives the same FakeUser."""
        with self._cond:
            if user_id in self._users:
                return self._users[user_id]
            info = {"id": user_id, "is_bot": False, "first_name": first_name}
            for key, value in (("last_name", last_name), ("username", username),
                               ("language_code", language_code), ("is_premium", is_premium)):
                if value is not None:
                    info[key] = value
            chat = {"id": user_id, "type": "private", "first_name": first_name}
            if last_name:
                chat["last_name"] = last_name
            if username:
                chat["username"] = username
            self._chat_state(chat)
            user = FakeUser(self, info)
            self._users[user_id] = user
            return user

    def group(self, chat_id: int, title: str = "Test group", type: str = "supergroup",
              username: str | None = None) -> dict:
        """Register a group chat (users post in it with ``u.send(..., chat=chat_id)``)."""
        chat = {"id": chat_id, "type": type, "title": title}
        if username:
            chat["username"] = username
        with self._cond:
            return copy.deepcopy(self._chat_state(chat).info)

    def queue_update(self, update: dict) -> dict:
        """Queue a raw Update (an update_id is assigned when missing).

        Chats it mentions are registered, and its message (message/channel_post/...) gets
        message_id and date when missing and is stored in the chat's history.
        Returns the queued Update."""
        with self._cond:
            update = copy.deepcopy(update)
            forced = False
            if "update_id" in update:
                if update["update_id"] < self._next_update_id:
                    forced = True  # an old id: deliver it whatever the bot's offset is
                else:
                    self._next_update_id = update["update_id"] + 1
            else:
                update["update_id"] = self._next_update_id
                self._next_update_id += 1
            self._register_update(update)
            return self._enqueue(update, forced)

    def redeliver(self, update: dict) -> dict:
        """Queue `update` again with the same update_id (Telegram redelivers after a crash)."""
        with self._cond:
            return self._enqueue(copy.deepcopy(update), forced=True)

    def pending_updates(self) -> list[dict]:
        """Updates not confirmed by the bot yet (getUpdates offset or a webhook's 2xx)."""
        with self._cond:
            return [copy.deepcopy(e.update) for e in self._queue if not (e.forced and e.delivered)]

    @property
    def dropped_updates(self) -> list[dict]:
        """Updates not queued because allowed_updates excluded their type."""
        with self._cond:
            return copy.deepcopy(self._dropped_updates)

    # ================================================================ what the bot did

    def messages(self, chat_id: int, *, include_deleted: bool = False, include_user: bool = False) -> list[dict]:
        """The bot's messages in a chat, oldest first (copies).

        Each is a Telegram Message dict (message_id, date, chat, from, text, entities,
        reply_markup, document, caption, ...) plus the emulator's keys: parse_mode,
        raw_text (text as the bot sent it), raw_caption, edited (bool), deleted (bool),
        file_data (bytes of an uploaded document/photo).  ``text`` is what Telegram shows:
        tags stripped, HTML entities decoded."""
        with self._cond:
            chat = self._chats.get(chat_id)
            if chat is None:
                return []
            return [copy.deepcopy(m) for m in chat.messages.values()
                    if (include_user or m["from"]["id"] == self.bot["id"])
                    and (include_deleted or not m.get("deleted"))]

    def last(self, chat_id: int) -> dict | None:
        """The bot's latest message in a chat, or None."""
        msgs = self.messages(chat_id)
        return msgs[-1] if msgs else None

    def message(self, chat_id: int, message_id: int) -> dict | None:
        with self._cond:
            chat = self._chats.get(chat_id)
            rec = chat.messages.get(message_id) if chat else None
            return copy.deepcopy(rec) if rec else None

    def chat(self, chat_id: int) -> dict | None:
        with self._cond:
            chat = self._chats.get(chat_id)
            return copy.deepcopy(chat.info) if chat else None

    def callback_answer(self, callback_query_id: str) -> dict | None:
        """What the bot answered to a callback query (text, show_alert, url, cache_time), or None."""
        with self._cond:
            q = self._callback_queries.get(callback_query_id)
            return copy.deepcopy(q["answer"]) if q and q["answer"] is not None else None

    @property
    def callback_answers(self) -> list[dict]:
        with self._cond:
            return copy.deepcopy(self._callback_answers)

    def chat_actions(self, chat_id: int | None = None) -> list[str]:
        with self._cond:
            return [a for c, a in self._chat_actions if chat_id is None or c == chat_id]

    def commands(self, scope: dict | None = None, language_code: str = "") -> list[dict] | None:
        """The commands set with setMyCommands for a scope and language (None: never set)."""
        with self._cond:
            found = self._commands.get((self._scope_key(scope), language_code or ""))
            return copy.deepcopy(found) if found is not None else None

    def bot_text(self, kind: str, language_code: str = "") -> str | None:
        """What setMyName/setMyDescription/setMyShortDescription stored (kind: name, description,
        short_description)."""
        with self._cond:
            return self._bot_texts.get((kind, language_code or ""))

    def settings(self, method: str) -> dict | None:
        """Parameters of the last call of a Boolean-returning method the emulator only records."""
        with self._cond:
            return copy.deepcopy(self._settings.get(self._canonical(method) or method))

    def file(self, file_id: str) -> dict | None:
        """A stored file: file_id, file_unique_id, file_name, mime_type, file_size, file_path, data."""
        with self._cond:
            f = self._files.get(file_id)
            return dict(f) if f else None

    def add_file(self, data: bytes, file_name: str | None = None, mime_type: str | None = None,
                 kind: str = "documents", file_id: str | None = None) -> dict:
        """Store a file as if a user had uploaded it (the bot can getFile and download it)."""
        with self._cond:
            return dict(self._store_file(data, file_name, mime_type, kind, file_id))

    @property
    def webhook(self) -> dict:
        """The webhook settings: url ("" when none), secret_token, max_connections, allowed_updates."""
        with self._cond:
            return copy.deepcopy(self._webhook)

    @property
    def webhook_deliveries(self) -> list[dict]:
        """POSTs to the webhook: dicts with update, url (where it went), status (None if the
        connection failed), error."""
        with self._cond:
            return copy.deepcopy(self._webhook_deliveries)

    def route_webhook(self, targets: Iterable[str] | None) -> None:
        """Deliver the webhook's POSTs to `targets` in turn (round-robin, one delivery or retry
        each) instead of the URL the bot set: a load balancer in front of several instances that
        all set the same public URL.  None or [] delivers to the set URL again.  Deliveries stay
        one at a time, in order, as with a single URL."""
        with self._cond:
            self._webhook_targets = list(targets or [])
            self._next_target = 0
            self._cond.notify_all()

    # ================================================================ waiting

    def wait_for_sync(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Block until predicate() is truthy and return its value (TimeoutError after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._cond.wait(min(remaining, 0.05))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0,
                       interval: float = 0.01) -> Any:
        """Await until predicate() is truthy and return its value; polls with asyncio.sleep so a
        bot in the same event loop keeps running.  TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(interval)

    def _new_messages(self, chat_id: int, count: int, after: Any) -> list[dict] | None:
        after_id = _message_id_of(after)
        msgs = [m for m in self.messages(chat_id) if m["message_id"] > after_id]
        return msgs if len(msgs) >= count else None

    def _timeout_message(self, chat_id, count, after, timeout) -> str:
        after_id = _message_id_of(after)
        got = [m.get("text", m.get("caption")) for m in self.messages(chat_id) if m["message_id"] > after_id]
        return (f"expected {count} bot message(s) in chat {chat_id} after message {after_id} "
                f"within {timeout}s; got {len(got)}: {got!r}")

    def wait_for_messages(self, chat_id: int, count: int = 1, timeout: float = 10.0, *,
                          after: Any = None) -> list[dict]:
        """Block until the bot has `count` messages in the chat (only those with a message_id
        greater than `after`: an id, a message or an Update) and return them."""
        try:
            return self.wait_for_sync(lambda: self._new_messages(chat_id, count, after), timeout)
        except TimeoutError:
            raise TimeoutError(self._timeout_message(chat_id, count, after, timeout)) from None

    async def wait_for_messages_async(self, chat_id: int, count: int = 1, timeout: float = 10.0, *,
                                      after: Any = None) -> list[dict]:
        """The asyncio-friendly wait_for_messages."""
        try:
            return await self.wait_for(lambda: self._new_messages(chat_id, count, after), timeout)
        except TimeoutError:
            raise TimeoutError(self._timeout_message(chat_id, count, after, timeout)) from None

    # ================================================================ HTTP entry point

    def _handle_request(self, path: str, query: dict, raw: dict, files: dict,
                        host: str | None = None) -> tuple[int, bytes] | None:
        """(status, JSON body) for a request to `path`, or None to drop the connection."""
        if self.latency:
            time.sleep(self.latency)
        release = self._held(path) if self._holds else None
        if release is not None:
            release.wait(60)
            return None
        m = re.fullmatch(r"/bot([^/]*)/([^/]*)", path)
        if not m:
            return 404, _json({"ok": False, "error_code": 404, "description": "Not Found"})
        token, method_name = m.group(1), m.group(2)
        params = dict(query)
        params.update(raw)
        outcome = self._call(token, method_name, params, files, host)
        if outcome is None:
            return None
        status, payload = outcome
        return status, _json(payload)

    def _call(self, token: str, method_name: str, raw: dict, files: dict,
              host: str | None = None) -> tuple[int, dict] | None:
        with self._cond:
            if self.reject_token:
                return 401, ApiError(401, "Unauthorized").payload()
            if token != self.token:
                if re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
                    return 401, ApiError(401, "Unauthorized").payload()
                return 404, ApiError(404, "Not Found").payload()
            method = self.spec.canonical_method(method_name)
            if method is None:
                return 404, ApiError(404, "Not Found").payload()
            self._calls[method] += 1
            record = {"method": method, "params": dict(raw), "ok": True, "error_code": None,
                      "description": None, "time": time.time(), "host": host}
            self._requests.append(record)
            try:
                fault = self._take_fault(method)
                if fault is not None:
                    if fault.drop:
                        record.update(ok=False, description="connection dropped")
                        return None
                    raise ApiError(fault.code, fault.description,
                                   {"retry_after": fault.retry_after} if fault.retry_after else None)
                warnings: list[str] = []
                params = self.spec.check_params(method, raw, files, warnings)
                self.warnings.extend(warnings)
                record["params"] = params
                self._check_rate_limit(method, params)
                handler = getattr(self, "_m_" + method, None)
                result = handler(params) if handler else self._m_unemulated(method, params)
                self._changes += 1
                self._cond.notify_all()
                return 200, {"ok": True, "result": result}
            except ParamError as e:
                error = _bad(str(e))
            except ApiError as e:
                error = e
            except Exception as e:  # an emulator bug: make it visible
                self.errors.append(f"{method}: {e!r}")
                error = ApiError(500, f"Internal Server Error: emulator failed on {method}: {e!r}")
            self._error_counts[error.code] += 1
            record.update(ok=False, error_code=error.code, description=error.description)
            return error.code, error.payload()

    def _handle_file_download(self, path: str) -> tuple[int, bytes, str]:
        m = re.fullmatch(r"/file/bot([^/]*)/(.+)", path)
        with self._cond:
            if not m or m.group(1) != self.token or self.reject_token:
                return 404, _json({"ok": False, "error_code": 404, "description": "Not Found"}), "application/json"
            file_path = m.group(2)
            for f in self._files.values():
                if f["file_path"] == file_path:
                    return 200, f["data"], f.get("mime_type") or "application/octet-stream"
        return 404, _json({"ok": False, "error_code": 404, "description": "Not Found"}), "application/json"

    # ================================================================ internals

    def _canonical(self, method: str | None) -> str | None:
        if method is None:
            return None
        found = self.spec.canonical_method(method)
        if found is None:
            raise ValueError(f"{method!r} is not a Bot API method")
        return found

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.method in (None, method):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _check_rate_limit(self, method: str, params: dict) -> None:
        if not method.startswith("send") or (self._rate_per_second is None and self._rate_per_chat is None):
            return
        now = time.monotonic()
        if self._rate_per_second is not None:
            while self._rate_window and self._rate_window[0] <= now - 1.0:
                self._rate_window.popleft()
            if len(self._rate_window) >= self._rate_per_second:
                self._rate_limited += 1
                wait = max(1, math.ceil(self._rate_window[0] + 1.0 - now))
                raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        chat_id = params.get("chat_id")
        if self._rate_per_chat and isinstance(chat_id, int):
            last = self._rate_chat_last.get(chat_id)
            gap = 1.0 / self._rate_per_chat
            if last is not None and now - last < gap:
                self._rate_limited += 1
                wait = max(1, math.ceil(last + gap - now))
                raise ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
            self._rate_chat_last[chat_id] = now
        if self._rate_per_second is not None:
            self._rate_window.append(now)

    # -- updates ------------------------------------------------------------------------

    def _update_type(self, update: dict) -> str:
        return next((k for k in update if k != "update_id"), "")

    def _enqueue(self, update: dict, forced: bool) -> dict:
        kind = self._update_type(update)
        allowed = self._allowed_updates
        if (kind in _DEFAULT_EXCLUDED_UPDATES and not allowed) or (allowed and kind not in allowed):
            self._dropped_updates.append(update)
        else:
            self._queue.append(_QueuedUpdate(update, forced=forced))
        self._changes += 1
        self._cond.notify_all()
        return copy.deepcopy(update)

    def _register_update(self, update: dict) -> None:
        """Register chats an update mentions; complete and store its message."""
        for key, value in update.items():
            if not isinstance(value, dict):
                continue
            if key in _MESSAGE_KEYS:
                self._complete_message(value, store=key in ("message", "channel_post", "business_message"))
            elif isinstance(value.get("chat"), dict) and "id" in value["chat"]:
                self._chat_state(value["chat"])
            msg = value.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("chat"), dict):
                self._chat_state(msg["chat"])

    def _complete_message(self, msg: dict, store: bool) -> None:
        chat_info = msg.get("chat")
        if not isinstance(chat_info, dict) or "id" not in chat_info:
            return
        chat = self._chat_state(chat_info)
        msg.setdefault("date", int(time.time()))
        if "message_id" not in msg:
            msg["message_id"] = chat.next_message_id
        chat.next_message_id = max(chat.next_message_id, msg["message_id"] + 1)
        if store:
            chat.messages[msg["message_id"]] = copy.deepcopy(msg)
        elif msg["message_id"] in chat.messages:  # an edit
            chat.messages[msg["message_id"]].update(copy.deepcopy(msg))

    def _chat_state(self, info: dict) -> _Chat:
        chat = self._chats.get(info["id"])
        if chat is None:
            chat = self._chats[info["id"]] = _Chat(dict(info))
        return chat

    def _user_message(self, user: "FakeUser", chat_id: int | dict | None, **content) -> dict:
        with self._cond:
            chat = self._resolve_user_chat(user, chat_id)
            msg = {"message_id": chat.next_message_id, "from": dict(user.info), "chat": dict(chat.info),
                   "date": int(time.time())}
            chat.next_message_id += 1
            msg.update(content)
            chat.messages[msg["message_id"]] = copy.deepcopy(msg)
            update = {"update_id": self._next_update_id, "message": msg}
            self._next_update_id += 1
            return self._enqueue(update, forced=False)

    def _resolve_user_chat(self, user: "FakeUser", chat_id: int | dict | None) -> _Chat:
        if chat_id is None:
            return self._chats[user.id]
        if isinstance(chat_id, dict):
            return self._chat_state(chat_id)
        if chat_id not in self._chats:
            raise ValueError(f"unknown chat {chat_id}: register it with emu.group(...) first")
        return self._chats[chat_id]

    # -- bot messages -------------------------------------------------------------------

    def _target_chat(self, chat_id: int | str) -> _Chat:
        if isinstance(chat_id, str):
            for chat in self._chats.values():
                if chat_id.startswith("@") and chat.info.get("username", "").lower() == chat_id[1:].lower():
                    return chat
            raise _bad("chat not found")
        chat = self._chats.get(chat_id)
        if chat is None:
            if self.strict_chats:
                raise _bad("chat not found")
            info = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
            info["first_name" if chat_id > 0 else "title"] = f"Chat {chat_id}"
            chat = self._chat_state(info)
        return chat

    def _check_blocked(self, chat: _Chat) -> None:
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _parse(self, text: str, parse_mode: str | None, entities: list | None, *, caption: bool) -> tuple[str, list]:
        try:
            plain, ents = parse_text(text, parse_mode, entities, strict_ampersand=self.strict_html_ampersand)
        except EntityParseError as e:
            raise _bad(f"can't parse entities: {e}") from None
        except ValueError:
            raise _bad("unsupported parse_mode") from None
        limit = MAX_CAPTION_LENGTH if caption else MAX_MESSAGE_LENGTH
        if not caption and not plain:
            raise _bad("message text is empty")
        if utf16_len(plain) > limit:
            raise _bad("message caption is too long" if caption else "message is too long")
        return plain, ents

    def _check_markup(self, markup: dict | None, inline_only: bool = False) -> dict | None:
        if markup is None:
            return None
        if "inline_keyboard" not in markup:
            if inline_only:
                raise _bad("inline keyboard expected")
            return markup
        for row in markup["inline_keyboard"]:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                    raise _bad("BUTTON_DATA_INVALID")
                if not any(button.get(k) not in (None, "") for k in _BUTTON_ACTIONS):
                    raise _bad("text buttons are unallowed in the inline keyboard")
                url = button.get("url")
                if url is not None and not re.match(r"(https?|tg)://\S+$", url):
                    raise _bad("BUTTON_URL_INVALID")
        return markup

    def _reply_to(self, chat: _Chat, params: dict) -> dict | None:
        rp = params.get("reply_parameters")
        if not rp:
            return None
        target_chat = chat
        if rp.get("chat_id") not in (None, chat.info["id"]):
            target_chat = self._target_chat(rp["chat_id"])
        rec = target_chat.messages.get(rp["message_id"])
        if rec is None or rec.get("deleted"):
            if rp.get("allow_sending_without_reply"):
                return None
            raise _bad("message to be replied not found")
        return _public(rec)

    def _store_bot_message(self, chat: _Chat, content: dict, extras: dict, reply_to: dict | None) -> dict:
        rec = {"message_id": chat.next_message_id, "from": dict(self.bot), "chat": dict(chat.info),
               "date": int(time.time())}
        chat.next_message_id += 1
        if reply_to:
            rec["reply_to_message"] = reply_to
        rec.update({k: v for k, v in content.items() if v not in (None, [], "")})
        rec.update({"edited": False, "deleted": False})
        rec.update(extras)
        chat.messages[rec["message_id"]] = rec
        return rec

    def _find_message(self, params: dict, what: str) -> tuple[_Chat, dict]:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")  # inline-mode messages are not emulated
        if "chat_id" not in params:
            raise _bad("chat_id is empty")
        if "message_id" not in params:
            raise _bad("message identifier is not specified")
        chat = self._target_chat(params["chat_id"])
        rec = chat.messages.get(params["message_id"])
        if rec is None or rec.get("deleted"):
            raise _bad(f"message to {what} not found")
        return chat, rec

    def _store_file(self, data: bytes, file_name: str | None, mime_type: str | None, kind: str,
                    file_id: str | None = None, extra: dict | None = None) -> dict:
        n = len(self._files) + 1
        file_id = file_id or f"BQACAgIAAxkBAAE{n:06d}{secrets.token_urlsafe(12)}"
        ext = ""
        if file_name and "." in file_name:
            ext = file_name[file_name.rfind("."):]
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        info = {"file_id": file_id, "file_unique_id": f"AgAD{n:04d}{secrets.token_hex(4)}",
                "file_name": file_name, "mime_type": mime_type, "file_size": len(data),
                "file_path": f"{kind}/file_{n}{ext}", "data": data}
        info.update(extra or {})
        self._files[file_id] = info
        return info

    # ================================================================ methods
    # Each _m_<method> gets the typed parameters and returns the result, or raises ApiError.

    def _m_unemulated(self, method: str, params: dict) -> Any:
        if self.spec.returns(method) == ["Boolean"]:
            self._settings[method] = {k: v for k, v in params.items() if not isinstance(v, UploadedFile)}
            return True
        self.warnings.append(f"{method}: not emulated (answered 501)")
        raise ApiError(501, f"Not Implemented: the emulator does not implement {method}")

    def _m_getMe(self, p: dict) -> dict:
        return dict(self.bot, can_join_groups=True, can_read_all_group_messages=False,
                    supports_inline_queries=False, can_connect_to_business=False, has_main_web_app=False)

    def _m_logOut(self, p: dict) -> bool:
        return True

    def _m_close(self, p: dict) -> bool:
        return True

    # -- updates ------------------------------------------------------------------------

    def _m_getUpdates(self, p: dict) -> list[dict]:
        if self._webhook["url"]:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        if "allowed_updates" in p:
            self._allowed_updates = set(p["allowed_updates"]) or None
        offset = p.get("offset")
        limit = min(max(p.get("limit", 100), 1), 100)
        timeout = min(max(p.get("timeout", 0), 0), self.long_poll_cap)
        if offset is not None:
            if offset < 0:
                regular = [e for e in self._queue if not e.forced]
                keep = regular[offset:] if -offset < len(regular) else regular
                self._queue = [e for e in self._queue if e in keep or (e.forced and not e.delivered)]
            else:
                self._queue = [e for e in self._queue
                               if (e.forced and not e.delivered) or (not e.forced and e.update["update_id"] >= offset)]
        self._poll_generation += 1
        generation = self._poll_generation
        deadline = time.monotonic() + timeout
        while True:
            batch = [e for e in self._queue if not (e.forced and e.delivered)][:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._stopping:
                break
            self._cond.wait(remaining)
            if self._webhook["url"]:
                raise ApiError(409, "Conflict: terminated by setWebhook request")
            if generation != self._poll_generation:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; "
                                    "make sure that only one bot instance is running")
        for e in batch:
            e.delivered = True
        return [copy.deepcopy(e.update) for e in batch]

    def _m_setWebhook(self, p: dict) -> bool:
        url = p["url"]
        if url and not re.match(r"https?://[^/\s]+", url):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise _bad("secret token contains unallowed characters")
        if p.get("drop_pending_updates"):
            self._queue.clear()
        if "allowed_updates" in p:
            self._allowed_updates = set(p["allowed_updates"]) or None
        self._webhook = {"url": url, "secret_token": secret if url else None,
                         "max_connections": p.get("max_connections", 40) if url else None,
                         "allowed_updates": p.get("allowed_updates"),
                         "last_error_date": None, "last_error_message": None}
        return True

    def _m_deleteWebhook(self, p: dict) -> bool:
        if p.get("drop_pending_updates"):
            self._queue.clear()
        self._webhook = {"url": ""}
        return True

    def _m_getWebhookInfo(self, p: dict) -> dict:
        info = {"url": self._webhook["url"], "has_custom_certificate": False,
                "pending_update_count": sum(1 for e in self._queue if not (e.forced and e.delivered))}
        for key in ("max_connections", "allowed_updates", "last_error_date", "last_error_message"):
            if self._webhook.get(key) is not None:
                info[key] = self._webhook[key]
        return info

    # -- sending ------------------------------------------------------------------------

    def _m_sendMessage(self, p: dict) -> dict:
        chat = self._target_chat(p["chat_id"])
        self._check_blocked(chat)
        text, entities = self._parse(p["text"], p.get("parse_mode"), p.get("entities"), caption=False)
        markup = self._check_markup(p.get("reply_markup"))
        reply_to = self._reply_to(chat, p)
        rec = self._store_bot_message(
            chat, {"text": text, "entities": entities, "reply_markup": markup,
                   "link_preview_options": p.get("link_preview_options")},
            {"parse_mode": p.get("parse_mode"), "raw_text": p["text"]}, reply_to)
        return _public(rec)

    def _send_file(self, p: dict, field_name: str, kind: str) -> dict:
        chat = self._target_chat(p["chat_id"])
        self._check_blocked(chat)
        caption, caption_entities = None, None
        if p.get("caption"):
            caption, caption_entities = self._parse(p["caption"], p.get("parse_mode"),
                                                    p.get("caption_entities"), caption=True)
        markup = self._check_markup(p.get("reply_markup"))
        reply_to = self._reply_to(chat, p)
        value = p[field_name]
        if isinstance(value, UploadedFile):
            stored = self._store_file(value.data, value.file_name, value.content_type
                                      if value.content_type not in ("", "application/octet-stream") else None,
                                      kind)
        elif value in self._files:
            stored = self._files[value]
        elif re.match(r"https?://", value):
            name = urlsplit(value).path.rsplit("/", 1)[-1] or "file"
            stored = self._store_file(b"", name, None, kind)
        else:
            raise _bad("wrong file identifier/HTTP URL specified")
        if field_name == "photo":
            media: Any = [{"file_id": stored["file_id"], "file_unique_id": stored["file_unique_id"],
                           "width": 1280, "height": 960, "file_size": stored["file_size"]}]
        else:
            media = {k: stored[k] for k in ("file_id", "file_unique_id", "file_name", "mime_type", "file_size")
                     if stored.get(k) is not None}
        rec = self._store_bot_message(
            chat, {field_name: media, "caption": caption, "caption_entities": caption_entities,
                   "reply_markup": markup},
            {"parse_mode": p.get("parse_mode"), "raw_caption": p.get("caption"), "file_data": stored["data"]},
            reply_to)
        return _public(rec)

    def _m_sendDocument(self, p: dict) -> dict:
        return self._send_file(p, "document", "documents")

    def _m_sendPhoto(self, p: dict) -> dict:
        return self._send_file(p, "photo", "photos")

    def _m_sendChatAction(self, p: dict) -> bool:
        chat = self._target_chat(p["chat_id"])
        self._check_blocked(chat)
        if p["action"] not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        self._chat_actions.append((chat.info["id"], p["action"]))
        return True

    # -- editing and deleting -----------------------------------------------------------

    def _m_editMessageText(self, p: dict) -> dict:
        chat, rec = self._find_message(p, "edit")
        if rec["from"]["id"] != self.bot["id"]:
            raise _bad("message can't be edited")
        if "text" not in rec:
            raise _bad("there is no text in the message to edit")
        if "text" not in p:
            raise _bad("message text is empty")
        text, entities = self._parse(p["text"], p.get("parse_mode"), p.get("entities"), caption=False)
        markup = self._check_markup(p.get("reply_markup"), inline_only=True)
        if text == rec["text"] and entities == rec.get("entities", []) and markup == rec.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        rec["text"] = text
        _set_or_drop(rec, "entities", entities)
        _set_or_drop(rec, "reply_markup", markup)  # no reply_markup: Telegram removes the keyboard
        rec.update(parse_mode=p.get("parse_mode"), raw_text=p["text"], edited=True, edit_date=int(time.time()))
        return _public(rec)

    def _m_editMessageCaption(self, p: dict) -> dict:
        chat, rec = self._find_message(p, "edit")
        if rec["from"]["id"] != self.bot["id"]:
            raise _bad("message can't be edited")
        if "text" in rec:
            raise _bad("there is no caption in the message to edit")
        caption, entities = (None, [])
        if p.get("caption"):
            caption, entities = self._parse(p["caption"], p.get("parse_mode"), p.get("caption_entities"),
                                            caption=True)
        markup = self._check_markup(p.get("reply_markup"), inline_only=True)
        if (caption == rec.get("caption") and entities == rec.get("caption_entities", [])
                and markup == rec.get("reply_markup")):
            raise ApiError(400, _NOT_MODIFIED)
        _set_or_drop(rec, "caption", caption)
        _set_or_drop(rec, "caption_entities", entities)
        _set_or_drop(rec, "reply_markup", markup)
        rec.update(parse_mode=p.get("parse_mode"), raw_caption=p.get("caption"), edited=True,
                   edit_date=int(time.time()))
        return _public(rec)

    def _m_editMessageReplyMarkup(self, p: dict) -> dict:
        chat, rec = self._find_message(p, "edit")
        if rec["from"]["id"] != self.bot["id"]:
            raise _bad("message can't be edited")
        markup = self._check_markup(p.get("reply_markup"), inline_only=True)
        if markup == rec.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        _set_or_drop(rec, "reply_markup", markup)
        rec.update(edited=True, edit_date=int(time.time()))
        return _public(rec)

    def _m_deleteMessage(self, p: dict) -> bool:
        chat, rec = self._find_message(p, "delete")
        rec["deleted"] = True
        return True

    def _m_deleteMessages(self, p: dict) -> bool:
        chat = self._target_chat(p["chat_id"])
        for mid in p["message_ids"]:
            rec = chat.messages.get(mid)
            if rec is not None:
                rec["deleted"] = True
        return True

    # -- callback queries ---------------------------------------------------------------

    def _m_answerCallbackQuery(self, p: dict) -> bool:
        q = self._callback_queries.get(p["callback_query_id"])
        expired = (q is not None and self.callback_query_ttl is not None
                   and time.monotonic() - q["created"] > self.callback_query_ttl)
        if q is None or q["answer"] is not None or expired:
            raise _bad(_QUERY_INVALID[len("Bad Request: "):])
        q["answer"] = {k: p[k] for k in ("text", "show_alert", "url", "cache_time") if k in p}
        q["answer"]["callback_query_id"] = p["callback_query_id"]
        self._callback_answers.append(copy.deepcopy(q["answer"]))
        return True

    def _new_callback_query(self, user: "FakeUser", chat_id: int, message_id: int,
                            callback_data: str | None, text: str | None, force: bool) -> dict:
        with self._cond:
            chat = self._chats.get(chat_id)
            rec = chat.messages.get(message_id) if chat else None
            if rec is None or rec.get("deleted"):
                raise ValueError(f"message {message_id} in chat {chat_id} does not exist (or was deleted)")
            buttons = [b for row in (rec.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
            if text is not None:
                match = [b for b in buttons if b.get("text") == text and "callback_data" in b]
                if not match:
                    raise ValueError(f"no callback button labelled {text!r}; buttons: {buttons!r}")
                callback_data = match[0]["callback_data"]
            if not force and callback_data not in [b.get("callback_data") for b in buttons]:
                raise ValueError(f"no button with callback_data {callback_data!r} on message {message_id}; "
                                 f"buttons: {buttons!r} (force=True to press it anyway)")
            query_id = str(4_200_000_000_000_000_000 + self._next_query)
            self._next_query += 1
            self._callback_queries[query_id] = {"created": time.monotonic(), "answer": None,
                                                "chat_id": chat_id, "message_id": message_id}
            query = {"id": query_id, "from": dict(user.info), "message": _public(rec),
                     "chat_instance": str(abs(chat_id) * 7919 % 10**18), "data": callback_data}
            update = {"update_id": self._next_update_id, "callback_query": query}
            self._next_update_id += 1
            return self._enqueue(update, forced=False)

    # -- commands and bot texts ---------------------------------------------------------

    def _scope_key(self, scope: dict | None) -> str:
        scope = dict(scope or {"type": "default"})
        for key in ("chat_id", "user_id"):
            v = scope.get(key)
            if isinstance(v, str) and re.fullmatch(r"-?\d+", v):
                scope[key] = int(v)
        return json.dumps(scope, sort_keys=True)

    @staticmethod
    def _language(p: dict) -> str:
        lang = p.get("language_code") or ""
        if lang and not re.fullmatch(r"[a-z]{2}", lang):
            raise _bad("LANG_CODE_INVALID")
        return lang

    def _m_setMyCommands(self, p: dict) -> bool:
        commands = p["commands"]
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", c["command"]):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(c["description"]) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        key = (self._scope_key(p.get("scope")), self._language(p))
        if commands:
            self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        else:
            self._commands.pop(key, None)
        return True

    def _m_getMyCommands(self, p: dict) -> list[dict]:
        return copy.deepcopy(self._commands.get((self._scope_key(p.get("scope")), self._language(p)), []))

    def _m_deleteMyCommands(self, p: dict) -> bool:
        self._commands.pop((self._scope_key(p.get("scope")), self._language(p)), None)
        return True

    def _set_bot_text(self, kind: str, p: dict, limit: int) -> bool:
        value = p.get(kind) or ""
        if len(value) > limit:
            raise _bad(f"bot {kind.replace('_', ' ')} is too long")
        key = (kind, self._language(p))
        if value:
            self._bot_texts[key] = value
        else:
            self._bot_texts.pop(key, None)
        return True

    def _get_bot_text(self, kind: str, p: dict) -> dict:
        lang = self._language(p)
        value = self._bot_texts.get((kind, lang))
        if value is None and kind == "name":
            value = self.bot["first_name"]
        return {kind: value or ""}

    def _m_setMyName(self, p): return self._set_bot_text("name", p, 64)
    def _m_getMyName(self, p): return self._get_bot_text("name", p)
    def _m_setMyDescription(self, p): return self._set_bot_text("description", p, 512)
    def _m_getMyDescription(self, p): return self._get_bot_text("description", p)
    def _m_setMyShortDescription(self, p): return self._set_bot_text("short_description", p, 120)
    def _m_getMyShortDescription(self, p): return self._get_bot_text("short_description", p)

    # -- files --------------------------------------------------------------------------

    def _m_getFile(self, p: dict) -> dict:
        f = self._files.get(p["file_id"])
        if f is None:
            raise _bad("invalid file_id")
        if f["file_size"] > MAX_GETFILE_SIZE:
            raise _bad("file is too big")
        return {k: f[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}

    # ================================================================ webhook delivery

    def _webhook_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (self._webhook["url"] and self._queue):
                    self._cond.wait()
                if self._stopping:
                    return
                entry = self._queue[0]
                url, secret = self._webhook["url"], self._webhook.get("secret_token")
                target = url
                if self._webhook_targets:
                    target = self._webhook_targets[self._next_target % len(self._webhook_targets)]
                    self._next_target += 1
            status, error, body = _post_json(target, entry.update, secret)
            with self._cond:
                self._webhook_deliveries.append({"update": copy.deepcopy(entry.update), "status": status,
                                                 "error": error, "url": target})
                if status is not None and 200 <= status < 300:
                    if entry in self._queue:
                        self._queue.remove(entry)
                    self._changes += 1
                    self._cond.notify_all()
                else:
                    if self._webhook["url"] == url:
                        self._webhook["last_error_date"] = int(time.time())
                        self._webhook["last_error_message"] = error or f"Wrong response from the webhook: {status}"
                    self._cond.wait(self.webhook_retry_interval)
                    continue
            # a webhook may answer with a method call, as Telegram allows
            if body:
                try:
                    call = json.loads(body)
                except ValueError:
                    call = None
                if isinstance(call, dict) and isinstance(call.get("method"), str):
                    method = call.pop("method")
                    self._call(self.token, method, call, {})


# ==================================================================== the user side


class FakeUser:
    """A Telegram user talking to the bot; created with ``emu.user(...)``.

    Every method queues an Update (returned as a dict) that the bot gets via getUpdates
    or its webhook.  `chat` defaults to the private chat with the bot (id == user id);
    pass a group's chat id (registered with ``emu.group``) to post there."""

    def __init__(self, emu: BotApiEmulator, info: dict):
        self.emu = emu
        self.info = info

    @property
    def id(self) -> int:
        return self.info["id"]

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.info['first_name']!r})"

    def send(self, text: str, *, entities: list[dict] | None = None, reply_to: dict | None = None,
             chat: int | dict | None = None) -> dict:
        """A text message."""
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        if reply_to is not None:
            content["reply_to_message"] = _public(reply_to)
        return self.emu._user_message(self, chat, **content)

    def send_command(self, command: str, args: str | None = None, *, chat: int | dict | None = None) -> dict:
        """"/start" (or "/start payload"), with a bot_command entity."""
        if not command.startswith("/"):
            command = "/" + command
        text = f"{command} {args}" if args else command
        return self.send(text, entities=[{"type": "bot_command", "offset": 0, "length": utf16_len(command)}],
                         chat=chat)

    def send_photo(self, file_id: str | None = None, caption: str | None = None, *, data: bytes = b"\xff\xd8\xff",
                   width: int = 1280, height: int = 960, chat: int | dict | None = None) -> dict:
        """A photo (registered as a file the bot can download unless file_id is an unknown id)."""
        with self.emu._cond:
            stored = self.emu._files.get(file_id) if file_id else None
            if stored is None:
                stored = self.emu._store_file(data, None, "image/jpeg", "photos", file_id)
            small = {"file_id": stored["file_id"] + "_s", "file_unique_id": stored["file_unique_id"] + "s",
                     "width": 90, "height": max(1, 90 * height // max(width, 1)), "file_size": min(stored["file_size"], 1000)}
            big = {"file_id": stored["file_id"], "file_unique_id": stored["file_unique_id"],
                   "width": width, "height": height, "file_size": stored["file_size"]}
            content: dict[str, Any] = {"photo": [small, big]}
            if caption:
                content["caption"] = caption
            return self.emu._user_message(self, chat, **content)

    def send_document(self, file_name: str = "receipt.pdf", data: bytes = b"%PDF-1.4\n%test\n", *,
                      mime_type: str | None = None, caption: str | None = None, file_id: str | None = None,
                      chat: int | dict | None = None) -> dict:
        """A document; its bytes are stored so the bot can getFile and download them."""
        with self.emu._cond:
            stored = self.emu._files.get(file_id) if file_id else None
            if stored is None:
                stored = self.emu._store_file(data, file_name, mime_type, "documents", file_id)
            doc = {k: stored[k] for k in ("file_id", "file_unique_id", "file_name", "mime_type", "file_size")
                   if stored.get(k) is not None}
            content: dict[str, Any] = {"document": doc}
            if caption:
                content["caption"] = caption
            return self.emu._user_message(self, chat, **content)

    def forward(self, text: str, *, from_user: dict | None = None, sender_name: str = "Hidden Sender",
                from_chat: dict | None = None, chat: int | dict | None = None) -> dict:
        """A forwarded text message; forward_origin is a user (from_user), a channel (from_chat)
        or, by default, a hidden user called `sender_name`."""
        date = int(time.time()) - 3600
        if from_chat is not None:
            origin = {"type": "channel", "chat": from_chat, "message_id": 1, "date": date}
        elif from_user is not None:
            origin = {"type": "user", "sender_user": from_user, "date": date}
        else:
            origin = {"type": "hidden_user", "sender_user_name": sender_name, "date": date}
        return self.emu._user_message(self, chat, text=text, forward_origin=origin)

    def send_location(self, latitude: float, longitude: float, *, chat: int | dict | None = None) -> dict:
        return self.emu._user_message(self, chat, location={"latitude": latitude, "longitude": longitude})

    def edit(self, message: dict, text: str) -> dict:
        """Edit one of the user's own messages (an edited_message update)."""
        with self.emu._cond:
            chat = self.emu._chats[message["chat"]["id"]]
            rec = chat.messages.get(message["message_id"])
            if rec is None or rec["from"]["id"] != self.id:
                raise ValueError("only the user's own messages can be edited")
            rec.update(text=text, edit_date=int(time.time()))
            update = {"update_id": self.emu._next_update_id, "edited_message": copy.deepcopy(rec)}
            self.emu._next_update_id += 1
            return self.emu._enqueue(update, forced=False)

    def press(self, message: dict, callback_data: str | None = None, *, text: str | None = None,
              force: bool = False) -> dict:
        """Press an inline button of a bot message (by callback_data, or by its label `text`).

        The message must still exist and carry that button unless force=True (a stale button).
        Returns the Update; its callback_query id is ``update["callback_query"]["id"]``."""
        if callback_data is None and text is None:
            raise ValueError("give callback_data or text")
        chat_id = message["chat"]["id"]
        return self.emu._new_callback_query(self, chat_id, message["message_id"], callback_data, text, force)

    def block(self, notify: bool = True) -> None:
        """The user blocks the bot: sending to them answers 403.  With notify, the bot gets a
        my_chat_member update (status kicked), as from Telegram."""
        self._set_blocked(True, notify)

    def unblock(self, notify: bool = True) -> None:
        self._set_blocked(False, notify)

    def _set_blocked(self, blocked: bool, notify: bool) -> None:
        with self.emu._cond:
            chat = self.emu._chats[self.id]
            if chat.blocked == blocked:
                return
            chat.blocked = blocked
            if notify:
                bot = dict(self.emu.bot)
                member = {"user": bot, "status": "member"}
                kicked = {"user": bot, "status": "kicked", "until_date": 0}
                update = {"update_id": self.emu._next_update_id, "my_chat_member": {
                    "chat": dict(chat.info), "from": dict(self.info), "date": int(time.time()),
                    "old_chat_member": member if blocked else kicked,
                    "new_chat_member": kicked if blocked else member}}
                self.emu._next_update_id += 1
                self.emu._enqueue(update, forced=False)

    def messages(self) -> list[dict]:
        """The bot's messages in this user's private chat."""
        return self.emu.messages(self.id)

    def last(self) -> dict | None:
        return self.emu.last(self.id)


# ==================================================================== helpers


def _public(rec: dict) -> dict:
    """A stored message as Telegram sends it: without the emulator's keys; reply keyboards
    are not part of a Message (only inline keyboards are)."""
    msg = {k: copy.deepcopy(v) for k, v in rec.items() if k not in _EXTRA_KEYS}
    markup = msg.get("reply_markup")
    if markup is not None and "inline_keyboard" not in markup:
        del msg["reply_markup"]
    return msg


def _set_or_drop(rec: dict, key: str, value: Any) -> None:
    if value in (None, [], ""):
        rec.pop(key, None)
    else:
        rec[key] = value


def _message_id_of(after: Any) -> int:
    if after is None:
        return 0
    if isinstance(after, int):
        return after
    if isinstance(after, dict):
        if "message_id" in after:
            return after["message_id"]
        for key in _MESSAGE_KEYS:
            if key in after:
                return after[key]["message_id"]
        if "callback_query" in after:
            return 0
    raise ValueError(f"can't tell a message_id from {after!r}")


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _post_json(url: str, update: dict, secret: str | None) -> tuple[int | None, str | None, bytes]:
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=_json(update), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, None, response.read()
    except urllib.error.HTTPError as e:
        return e.code, f"Wrong response from the webhook: {e.code} {e.reason}", b""
    except OSError as e:
        return None, f"Connection failed: {e}", b""


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict, dict]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("multipart body without a boundary")
    delimiter = b"\r\n--" + m.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    for part in (b"\r\n" + body).split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part
        head, _, content = part.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        disposition = headers.get("content-disposition", "")
        params = _disposition_params(disposition)
        name = params.get("name")
        if name is None:
            continue
        if "filename" in params:
            files[name] = UploadedFile(name, params["filename"], headers.get("content-type", ""), content)
        else:
            fields[name] = content.decode("utf-8")
    return fields, files


def _disposition_params(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for m in re.finditer(r';\s*([\w*-]+)=("((?:[^"\\]|\\.)*)"|[^;]*)', value):
        key, raw, quoted = m.group(1).lower(), m.group(2), m.group(3)
        if key.endswith("*"):  # RFC 5987: filename*=utf-8''name
            charset, _, encoded = raw.strip().partition("''")
            params[key[:-1]] = unquote(encoded, encoding=charset or "utf-8")
            continue
        val = quoted if quoted is not None else raw.strip()
        val = val.replace("%22", '"').replace("%0A", "\n").replace("%0D", "\r").replace('\\"', '"')
        params.setdefault(key, val)
    return params


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, emulator: BotApiEmulator):
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close kept-alive connections so no request is served after stop()."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TelegramBotApiEmulator/1.0"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every answer
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        emu = self.server.emulator
        try:
            body = self._read_body()
            url = urlsplit(self.path)
            path = unquote(url.path)  # python-telegram-bot quotes file paths (':' -> %3A)
            if path.startswith("/file/bot") and self.command == "GET":
                status, data, ctype = emu._handle_file_download(path)
                self._send(status, data, ctype)
                return
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            ctype = self.headers.get("Content-Type", "")
            raw: dict[str, Any] = {}
            files: dict[str, UploadedFile] = {}
            try:
                if body and ctype.startswith("application/json"):
                    raw = json.loads(body)
                    if not isinstance(raw, dict):
                        raise ValueError("a JSON object expected")
                elif body and ctype.startswith("multipart/form-data"):
                    raw, files = _parse_multipart(body, ctype)
                elif body:
                    raw = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except (ValueError, UnicodeDecodeError) as e:
                self._send(400, _json({"ok": False, "error_code": 400,
                                       "description": f"Bad Request: can't parse request body: {e}"}))
                return
            answer = emu._handle_request(path, query, raw, files, self.headers.get("Host"))
            if answer is None:
                self.close_connection = True
                return
            self._send(*answer)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if self.server.emulator._stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        # Headers and body in one write: two would wake the client twice for every answer.
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()
