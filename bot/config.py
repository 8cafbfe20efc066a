"""Settings from the environment (DESIGN.md's run-time contract), overridable by flags."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

DEFAULT_API_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_DB = "refund-advisor.db"
DEFAULT_FOLLOWUP = "2d,3d,5d,7d"
DEFAULT_QUIET_HOURS = "22-8"
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
    )
