"""The bot's log: one format on stderr, and the bot token (and the webhook secret) replaced by
`<token>` in every line, whichever library writes it, tracebacks included."""
from __future__ import annotations

import logging
import re
import sys
import warnings

from telegram.warnings import PTBDeprecationWarning

_TOKEN_SHAPE = re.compile(r"\b\d{3,}:[A-Za-z0-9_-]{20,}\b")


class _Scrubber:
    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<token>")
        return _TOKEN_SHAPE.sub("<token>", text)


scrub = _Scrubber()
_factory_installed = False


def _install_record_factory() -> None:
    """Every log record, from any library, has the token replaced in its message."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:         # a malformed record: leave it to logging's own error path
            return record
        cleaned = scrub(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


class _ScrubbingFormatter(logging.Formatter):
    """Tracebacks too (exception texts may quote URLs with the token)."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def protect_token(token: str) -> None:
    scrub.secrets.add(token)
    _install_record_factory()
    # httpx logs every request URL (which holds the token) at INFO.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(token: str | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # python-telegram-bot warns about its own RetryAfter.retry_after type change on every 429.
    warnings.filterwarnings("ignore", message=r".*`retry_after` will be of type", category=PTBDeprecationWarning)
    if token:
        protect_token(token)
