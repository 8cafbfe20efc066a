"""`refund-advisor run`: the advisor on Telegram, long polling (bot.webhook: the same bot on a webhook).

`run_polling(config)` is what the command line calls; `serve(config, stop)` is the same bot for
any event loop (the tests run it in-process against a Bot API emulation). Start-up: open the
database, getMe (a rejected token stops here), the Application's post_init (the follow-up
dispatcher starts and re-arms from the database), setMyCommands in English and Chinese, then
poll. Updates of different users are handled side by side, each user's in order. A stop
(SIGTERM, SIGINT, or `stop` set) starts no new nudge, stops polling, finishes the updates in hand,
runs post_stop (the nudge in flight is recorded, the rest of its batch released) and closes the database:
every turn is one transaction, so nothing is half-written.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import datetime
from typing import Callable

from telegram import BotCommand, Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, BaseUpdateProcessor

from bot.config import Config, ConfigError
from bot.conversation import Conversation
from bot.dispatcher import Dispatcher
from bot.logs import configure_logging, protect_token, scrub
from bot.polling import Poller
from bot.reminders import Reminders
from bot.storage import Storage
from bot.telegram.acks import Acks
from bot.telegram.routing import COMMANDS, TelegramShell
from bot.telegram.limiter import SharedLimiter
from bot.telegram.request import AiohttpRequest
from bot.telegram.sender import Sender
from dialogs.graph import load as load_graph
from messages import locale_from, plain, render

log = logging.getLogger("bot.telegram")
EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE = 0, 1, 2
POLL_TIMEOUT = 10          # seconds a getUpdates call waits for updates
BUSY_WAIT = 30.0           # seconds a turn waits out a busy database before the user is told
BUSY_PAUSE_FIRST, BUSY_PAUSE_MAX = 0.2, 4.0     # between attempts, doubling


# ---- the application ---------------------------------------------------------------------------

def _file_url(base_url: str) -> str:
    return base_url[: -len("bot")] + "file/bot" if base_url.endswith("/bot") else base_url.rstrip("/") + "/file/bot"


UPDATES_AT_ONCE = 64        # updates of different users handled side by side


def _update_key(update: object) -> object:
    """Whose turn an update is: its user (else its chat). Updates of one key are handled in order."""
    user = getattr(update, "effective_user", None)
    if user is not None:
        return ("user", user.id)
    chat = getattr(update, "effective_chat", None)
    return ("chat", chat.id) if chat is not None else None


class _PerUser(BaseUpdateProcessor):
    """Updates of different users side by side, one user's one at a time and in the order they
    came (a turn reads what the turn before it wrote); `done` hears of each finished update.

    Every turn waits on Bot API round trips: handled one at a time, the bot would idle through
    them while other users wait."""
    __slots__ = ("_tails", "done")

    def __init__(self, done: Callable[[object], None] | None = None, at_once: int = UPDATES_AT_ONCE):
        super().__init__(max_concurrent_updates=at_once)
        self.done = done
        self._tails: dict[object, asyncio.Future] = {}

    async def do_process_update(self, update: object, coroutine) -> None:
        key = _update_key(update)
        before = self._tails.get(key)
        mine = asyncio.get_running_loop().create_future()
        self._tails[key] = mine
        try:
            if before is not None:
                try:
                    await asyncio.shield(before)
                except asyncio.CancelledError:
                    coroutine.close()
                    raise
            await coroutine
        finally:
            mine.set_result(None)
            if self._tails.get(key) is mine:
                del self._tails[key]
            if self.done is not None:
                self.done(update)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def build_application(config: Config, done: Callable[[object], None] | None = None, *,
                      post_init: Callable | None = None, post_stop: Callable | None = None) -> Application:
    if not config.token:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set")
    builder = (ApplicationBuilder()
               .concurrent_updates(_PerUser(done))
               .token(config.token)
               .base_url(config.api_base_url)
               .base_file_url(_file_url(config.api_base_url))
               # One limiter for replies and nudges: at most TELEGRAM_RATE_LIMIT (30) requests a
               # second overall, replies first. RetryAfter is retried by our Sender, bounded.
               .rate_limiter(SharedLimiter(config.rate_limit, max_retries=0))
               .request(AiohttpRequest())
               .get_updates_request(AiohttpRequest(1, read_timeout=POLL_TIMEOUT + 10)))
    if post_init is not None:
        builder = builder.post_init(post_init)
    if post_stop is not None:
        builder = builder.post_stop(post_stop)
    return builder.build()


async def set_commands(app: Application) -> None:
    for locale, language_code in (("en", None), ("zh", "zh")):
        commands = [BotCommand(name, plain(render(locale, f"cmd.{name}"))) for name in COMMANDS]
        await app.bot.set_my_commands(commands, language_code=language_code)


class TelegramBot:
    """The running bot: database, Application, handlers. `start()` then `stop()`."""

    def __init__(self, config: Config, *, clock: Callable[[], datetime] | None = None,
                 poll_timeout: float = POLL_TIMEOUT, on_update_done: Callable[[object], None] | None = None,
                 dispatch_followups: bool = True, busy_wait: float = BUSY_WAIT):
        """`dispatch_followups=False`: nudges are planned and stored but not sent (tests of other
        things, which must not depend on the calendar; `refund-advisor run` always sends them)."""
        if not config.token:
            raise ValueError("no token")
        self.config = config
        self.token: str = config.token
        self.clock = clock
        self.poll_timeout = poll_timeout
        self.on_update_done = on_update_done
        self.dispatch_followups = dispatch_followups
        self.busy_wait = busy_wait
        self._told_busy: set[int] = set()      # updates whose user was told their answer is kept
        self._sender: Sender | None = None
        self.storage: Storage | None = None
        self.app: Application | None = None
        self.dispatcher: Dispatcher | None = None
        self.acks = Acks()          # which updates are made good (acknowledged) or poisoned
        self._dispatching = False
        self._poller: Poller | None = None

    async def start(self) -> None:
        protect_token(self.token)
        self.storage = await Storage.open(self.config.db_path)
        try:
            reminders = Reminders(self.storage, load_graph(), cadence=self.config.followup,
                                  quiet_hours=self.config.quiet_hours, clock=self.clock)
            conversation = Conversation(self.storage, clock=self.clock, reminders=reminders)
            sender = self._sender = Sender(self.storage, clock=self.clock)
            # Nudges: fewer retries in place (a row is simply retried later), the same bot and limiter.
            self.dispatcher = Dispatcher(self.storage, reminders, Sender(self.storage, attempts=3, clock=self.clock),
                                         clock=self.clock)
            self.app = build_application(self.config, self.on_update_done,
                                         post_init=self._post_init, post_stop=self._post_stop)
            shell = TelegramShell(self.storage, conversation, sender, clock=self.clock, reminders=reminders)
            self.dispatcher.chat_turn = shell.delivery.turn_of
            shell.register(self.app)
            self.app.add_error_handler(self.acks.on_error)
            try:
                await self.app.initialize()          # getMe: a rejected token raises InvalidToken
            except BaseException:
                await self.app.bot.shutdown()
                raise
            shell.bind(self.app)
            # As run_polling does: post_init after initialize(), post_stop after stop().
            if self.app.post_init is not None:
                await self.app.post_init(self.app)
            try:
                await set_commands(self.app)
            except TelegramError as exc:
                log.warning("setMyCommands failed (the command menu may be out of date): %s", exc)
            await self.app.start()
            await shell.delivery.sweep()        # replies a crash left undelivered, before any new update
            await self._receive()
        except BaseException:
            await self._shutdown()
            raise

    @property
    def application(self) -> Application:
        """The Application, once start() has built it."""
        if self.app is None:
            raise RuntimeError("the bot is not started")
        return self.app

    @property
    def opened_storage(self) -> Storage:
        """The database, once start() has opened it."""
        if self.storage is None:
            raise RuntimeError("the bot is not started")
        return self.storage

    async def _receive(self) -> None:
        """Start getting updates (webhook mode overrides this pair, the rest is shared)."""
        app = self.application
        self._poller = Poller(app, self.acks, self.process, timeout=self.poll_timeout,
                              allowed_updates=list(Update.ALL_TYPES))
        await self._poller.start()
        log.info("polling as @%s", app.bot.username)

    async def _stop_receiving(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            await poller.stop()

    async def process(self, update: Update) -> str:
        """One update through the Application (its user's updates in order, then `on_update_done`);
        what it is worth to Telegram (bot.telegram.acks): OK, RETRY or POISON.

        A busy or locked database is waited out: the update is tried again, with pauses, for up to
        `busy_wait` seconds (a button's spinner is stopped at the first failure, routing.error).
        Past that the user is told once that their message is kept and will be applied, and the
        update is left to be delivered again (RETRY): it is applied when the database can be written."""
        app = self.application
        loop = asyncio.get_running_loop()
        started, pause = loop.time(), BUSY_PAUSE_FIRST
        while True:
            try:
                await app.update_processor.process_update(update, app.process_update(update))
            except Exception as exc:        # the Application's error handlers did not even see it
                await self.acks.on_error(update, _Failed(exc))
            failure = self.acks.database_failure(update.update_id)
            if failure is None:
                self._told_busy.discard(update.update_id)
                break
            if loop.time() - started + pause > self.busy_wait:
                await self.acks.on_error(update, _Failed(failure))
                await self._tell_kept(update, failure)
                break
            log.info("update %d: the database is busy (%s); trying again in %.1f s",
                     update.update_id, failure, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, BUSY_PAUSE_MAX)
        return self.acks.verdict(update.update_id)

    async def _tell_kept(self, update: Update, failure: BaseException) -> None:
        """The database stayed busy past the wait: one WARNING for the operator, and (once an
        update) a word to the user that their message is kept; nothing else is read or written."""
        where = self.storage.path if self.storage is not None else "?"
        log.warning("database %s could not be written for %.0f s (%s); update %d left to be delivered again",
                    where, self.busy_wait, failure, update.update_id)
        chat, user = update.effective_chat, update.effective_user
        if (update.update_id in self._told_busy or chat is None or chat.type != "private"
                or self._sender is None or not (update.message or update.callback_query)):
            return
        if len(self._told_busy) > 10_000:
            self._told_busy.clear()
        self._told_busy.add(update.update_id)
        locale = locale_from(user.language_code if user else None)
        try:
            await self._sender.call(None, "sendMessage", self.application.bot.send_message, chat_id=chat.id,
                                    text=render(locale, "db_busy"), parse_mode="HTML")
        except Exception as exc:     # the notice is a courtesy: the update is delivered again anyway
            log.info("could not tell the user their message is kept: %s", exc)

    async def _post_init(self, app: Application) -> None:
        if not self.dispatch_followups or self.dispatcher is None:
            return
        await self.dispatcher.start(app)
        self._dispatching = True

    async def _post_stop(self, app: Application) -> None:
        if self._dispatching and self.dispatcher is not None:
            self._dispatching = False
            await self.dispatcher.stop(app)

    async def stop(self) -> None:
        await self._shutdown()
        log.info("stopped")

    async def _shutdown(self) -> None:
        """Whatever of start() was done, undone (also after a start that failed half-way)."""
        if self.dispatcher is not None:
            self.dispatcher.halt()      # no nudge starts while the updates in hand finish
        try:
            if self.app is not None:
                await self._stop_receiving()
                if self.app.running:
                    await self.app.stop()      # finishes the updates already fetched
                if self.app.post_stop is not None:
                    await self.app.post_stop(self.app)
        finally:
            await self._close()

    async def _close(self) -> None:
        try:
            if self.app is not None:
                await self._post_stop(self.app)       # a start that failed half-way
            if self.app is not None and not self.app.running:
                await self.app.shutdown()
        finally:
            if self.storage is not None:
                await self.storage.close()
                self.storage = None


class _Failed:
    """What an error handler gets as its context, for a failure outside the Application."""

    def __init__(self, error: BaseException):
        self.error = error


def _say(message: str) -> None:
    print(f"refund-advisor: {scrub(message)}", file=sys.stderr)


async def serve(config: Config, stop: asyncio.Event, *, clock: Callable[[], datetime] | None = None,
                poll_timeout: float = POLL_TIMEOUT, ready: Callable[["TelegramBot"], None] | None = None,
                on_update_done: Callable[[object], None] | None = None, dispatch_followups: bool = True,
                bot_class: Callable[..., "TelegramBot"] | None = None) -> int:
    """Run the bot until `stop` is set; the exit code. A StorageError propagates (exit 2 in the CLI).
    `bot_class`: how updates arrive (TelegramBot polls; bot.webhook's WebhookBot serves a webhook)."""
    if not config.token:
        _say("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export its token")
        return EXIT_USAGE
    bot = (bot_class or TelegramBot)(config, clock=clock, poll_timeout=poll_timeout,
                                     on_update_done=on_update_done, dispatch_followups=dispatch_followups)
    try:
        await bot.start()
    except ConfigError as exc:      # a setting the Bot API or the operating system refused at start
        _say(str(exc))
        return EXIT_USAGE
    except InvalidToken:
        # The exception's text quotes the token: never print it.
        _say("the Bot API rejected the token (401 Unauthorized on getMe): check TELEGRAM_BOT_TOKEN")
        return EXIT_USAGE
    except NetworkError as exc:
        _say(f"cannot reach the Bot API at {config.api_base_url}: {exc.message}")
        return EXIT_UNAVAILABLE
    if ready is not None:
        ready(bot)
    try:
        await stop.wait()
    finally:
        await bot.stop()
    return EXIT_OK


def run_polling(config: Config) -> int:
    """`refund-advisor run`: until SIGTERM or SIGINT. Returns the exit code."""
    return run(config)


def run(config: Config, bot_class: Callable[..., TelegramBot] | None = None) -> int:
    """The bot until SIGTERM or SIGINT, updates received as `bot_class` does (serve). The exit code."""
    if not config.token:
        _say("TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export its token")
        return EXIT_USAGE
    configure_logging(config.token)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await serve(config, stop, bot_class=bot_class)

    return asyncio.run(main())
