"""Settings from the environment (the README's Settings table), overridable by flags; ARCHITECTURE.md
says where each part of the bot that reads them lives."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping
from urllib.parse import urlsplit

DEFAULT_API_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_DB = "refund-advisor.db"
DEFAULT_FOLLOWUP = "2d,3d,5d,7d"
DEFAULT_QUIET_HOURS = "22-8"
DEFAULT_RATE_LIMIT = 30
# One place is always kept for a reply, so nudges need two; past 1,000 a second not even paid broadcasts go.
MIN_RATE_LIMIT, MAX_RATE_LIMIT = 2, 1000
DEFAULT_WEBHOOK_LISTEN = "127.0.0.1"    # behind a reverse proxy on the same host; the container sets 0.0.0.0
DEFAULT_WEBHOOK_PORT = 8080
HEALTH_PATH = "/healthz"
# What Telegram accepts as a secret_token (setWebhook).
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says what is expected."""


@dataclass(frozen=True)
class Config:
    token: str | None
    api_base_url: str
    db_path: str
    followup: tuple[timedelta, ...]
    quiet_hours: tuple[int, int] | None
    # Bot API requests a second this instance may make (replies and nudges). Telegram allows a bot
    # about 30 in all: instances sharing one token share that, so each takes its part.
    rate_limit: int = 30


@dataclass(frozen=True)
class WebhookConfig:
    url: str            # the public address Telegram posts to (setWebhook url)
    secret: str         # setWebhook secret_token; requests without it are refused
    listen: str         # address the HTTP server binds
    port: int           # 0: any free port (tests)
    path: str           # path the updates are served on, here


def parse_delays(text: str, name: str = "REFUND_ADVISOR_FOLLOWUP") -> tuple[timedelta, ...]:
    delays = []
    for part in text.split(","):
        m = _DELAY.match(part)
        if not m or float(m.group(1)) <= 0:
            raise ConfigError(f"{name}={text!r}: expected positive delays like 2d,3d,5d,7d (units s, m, h, d)")
        delays.append(timedelta(**{_UNITS[m.group(2)]: float(m.group(1))}))
    return tuple(delays)


def parse_quiet_hours(text: str, name: str = "REFUND_ADVISOR_QUIET_HOURS") -> tuple[int, int] | None:
    if text.strip().lower() == "off":
        return None
    m = re.fullmatch(r"\s*(\d{1,2})\s*-\s*(\d{1,2})\s*", text)
    if not m or not all(0 <= int(h) <= 23 for h in m.groups()) or m.group(1) == m.group(2):
        raise ConfigError(f"{name}={text!r}: expected hours like 22-8 (start-end, 0-23), or off")
    return int(m.group(1)), int(m.group(2))


def parse_rate_limit(text: str, name: str = "TELEGRAM_RATE_LIMIT") -> int:
    value = text.strip()
    if not value.isdigit() or not MIN_RATE_LIMIT <= int(value) <= MAX_RATE_LIMIT:
        raise ConfigError(f"{name}={text!r}: expected a whole number of requests a second from {MIN_RATE_LIMIT} to "
                          f"{MAX_RATE_LIMIT}, like 30 for one instance or 15 for each of two")
    return int(value)


def parse_db(text: str, name: str = "REFUND_ADVISOR_DB") -> str:
    """A SQLite file path, or a postgresql:// URL (several instances on one database)."""
    text = text.strip()
    if not text:
        raise ConfigError(f"{name} is empty: expected a SQLite file path or a postgresql:// URL")
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme and scheme.group(1).lower() not in ("postgresql", "postgres"):
        raise ConfigError(f"{name}: {scheme.group(1)}:// is not a database this program uses: expected a "
                          "SQLite file path or a postgresql://user:password@host:port/database URL")
    if scheme and scheme.group(1) != scheme.group(1).lower():
        text = scheme.group(1).lower() + text[len(scheme.group(1)):]
    return text


def load(env: Mapping[str, str], **overrides: str | None) -> Config:
    """Settings from `env`; a non-None override (a command-line flag) wins."""
    def get(name: str, default: str | None = None) -> str | None:
        value = overrides.get(name)
        return value if value is not None else env.get(name, default)

    base_url = (get("TELEGRAM_API_BASE_URL") or DEFAULT_API_BASE_URL).strip()
    if not re.match(r"^https?://", base_url):
        raise ConfigError(f"TELEGRAM_API_BASE_URL={base_url!r}: expected an http(s) URL like {DEFAULT_API_BASE_URL}")
    db_path = parse_db(get("REFUND_ADVISOR_DB") or DEFAULT_DB)
    token = (get("TELEGRAM_BOT_TOKEN") or "").strip() or None
    return Config(
        token=token,
        api_base_url=base_url,
        db_path=db_path,
        followup=parse_delays(get("REFUND_ADVISOR_FOLLOWUP") or DEFAULT_FOLLOWUP),
        quiet_hours=parse_quiet_hours(get("REFUND_ADVISOR_QUIET_HOURS") or DEFAULT_QUIET_HOURS),
        rate_limit=parse_rate_limit(get("TELEGRAM_RATE_LIMIT") or str(DEFAULT_RATE_LIMIT)),
    )


def load_webhook(env: Mapping[str, str], **overrides: str | None) -> WebhookConfig:
    """Webhook settings from `env`, a non-None override (a command-line flag) winning. Read only
    by `refund-advisor webhook`: polling needs none of them."""
    def get(name: str) -> str:
        value = overrides.get(name)
        return (value if value is not None else env.get(name, "")).strip()

    url = get("TELEGRAM_WEBHOOK_URL")
    if not url:
        raise ConfigError("TELEGRAM_WEBHOOK_URL is not set: expected the public https:// address Telegram "
                          "posts updates to, like https://bot.example.com/telegram")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"TELEGRAM_WEBHOOK_URL={url!r}: expected an https:// URL like "
                          "https://bot.example.com/telegram")
    secret = get("TELEGRAM_WEBHOOK_SECRET")
    # The value itself is never quoted: it is a credential.
    if not secret:
        raise ConfigError("TELEGRAM_WEBHOOK_SECRET is not set: webhook mode needs a secret of 1-256 characters "
                          "A-Z a-z 0-9 _ - (for example: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if not _SECRET.fullmatch(secret):
        raise ConfigError("TELEGRAM_WEBHOOK_SECRET: expected 1-256 characters A-Z a-z 0-9 _ - "
                          "(Telegram accepts no others)")
    listen = get("TELEGRAM_WEBHOOK_LISTEN") or DEFAULT_WEBHOOK_LISTEN
    port_text = get("TELEGRAM_WEBHOOK_PORT") or str(DEFAULT_WEBHOOK_PORT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"TELEGRAM_WEBHOOK_PORT={port_text!r}: expected a port number 1-65535")
    path = get("TELEGRAM_WEBHOOK_PATH") or parts.path or "/"
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise ConfigError(f"TELEGRAM_WEBHOOK_PATH={path!r}: expected a path like /telegram")
    if path.rstrip("/") == HEALTH_PATH:
        raise ConfigError(f"TELEGRAM_WEBHOOK_PATH={path!r}: {HEALTH_PATH} is the health check's path")
    return WebhookConfig(url=url, secret=secret, listen=listen, port=int(port_text), path=path)
