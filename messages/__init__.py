"""User-facing text: jinja2 templates in zh and en, rendered for Telegram's HTML parse mode.

Two kinds of template live under `messages/<locale>/`:
- `*.yaml` catalogs: short templates by key (questions, button labels, advice steps);
- `*.j2` files: longer messages, keyed by their file name without `.j2`.

Every value put into a template is escaped (autoescape), so a user's `<b>` or `&`
reaches Telegram as text. `plain()` turns the HTML into terminal text.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import jinja2
from markupsafe import Markup

from dialogs.model import LOCALES, Reply
from dialogs.yamlfile import read_yaml
from messages.hant import to_hant

_ROOT = Path(__file__).parent
DEFAULT_LOCALE = "en"
HANT = "zh-Hant"
# Telegram language codes (lower case) of Traditional Chinese apps: Taiwan, Hong Kong, Macau.
_HANT_CODES = ("zh-hant", "zh-tw", "zh-hk", "zh-mo")


class MissingMessage(KeyError):
    """A key that has no template in a locale: a bug, caught by the catalog tests."""


@dataclass(frozen=True)
class Rendered:
    text: str                                  # Telegram HTML
    buttons: tuple[tuple[str, str], ...] = ()  # (option id, label as plain text)


def _load_catalog(locale: str) -> dict[str, str]:
    catalog: dict[str, str] = {}
    for path in sorted((_ROOT / locale).glob("*.yaml")):
        data = read_yaml(path) or {}
        for key, value in data.items():
            if key in catalog:
                raise ValueError(f"message key {key!r} defined twice in {locale} (again in {path.name})")
            catalog[key] = str(value).rstrip("\n")
    for path in sorted((_ROOT / locale).glob("*.j2")):
        key = path.name[: -len(".j2")]
        if key in catalog:
            raise ValueError(f"message key {key!r} defined twice in {locale} ({path.name})")
        catalog[key] = path.read_text(encoding="utf-8").rstrip("\n")
    return catalog


def _format_date(value: Any, locale: str) -> str:
    if value in (None, ""):
        return ""
    d = value if isinstance(value, date) else date.fromisoformat(str(value))
    if locale.startswith("zh"):
        return f"{d.year}年{d.month}月{d.day}日"
    return f"{d.day} {d.strftime('%b')} {d.year}"


_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "JP¥", "HKD": "HK$", "TWD": "NT$", "SGD": "S$", "MYR": "RM"}


def _format_money(amount: Any, locale: str) -> str:
    if not amount:
        return ""
    try:
        value = Decimal(str(amount.get("value")))
    except (InvalidOperation, AttributeError):
        return str(amount)
    currency = amount.get("currency")
    number = f"{value:,.2f}"
    if currency in _SYMBOLS:
        return f"{_SYMBOLS[currency]}{number}"
    return f"{number} {currency}" if currency else number


class _Catalog:
    def __init__(self, locale: str):
        self.locale = locale
        self.sources = _load_catalog(locale)
        self.env = jinja2.Environment(
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            loader=jinja2.FunctionLoader(self._source),
        )
        self.env.filters["date"] = lambda v: _format_date(v, locale)
        self.env.filters["money"] = lambda v: _format_money(v, locale)
        # Chinese data shown as is in zh (official citations, menu paths), in Traditional in zh-Hant.
        self.env.filters["hant"] = (lambda v: to_hant(str(v))) if locale == HANT else (lambda v: v)
        self.env.globals["t"] = self._nested
        self.env.globals["locale"] = locale

    def _source(self, key: str) -> str | None:
        return self.sources.get(key)

    def _nested(self, key: str, **context: Any) -> Markup:
        # Templates refer to other catalog entries (labels, step texts) by key.
        return Markup(self.render(key, context))

    def render(self, key: str, context: Mapping[str, Any]) -> str:
        if key not in self.sources:
            raise MissingMessage(f"{self.locale}:{key}")
        return self.env.get_template(key).render(**context).strip()


@lru_cache(maxsize=None)
def catalog(locale: str) -> _Catalog:
    if locale not in LOCALES:
        locale = DEFAULT_LOCALE
    return _Catalog(locale)


def keys(locale: str) -> set[str]:
    return set(catalog(locale).sources)


def render(locale: str, key: str, **context: Any) -> str:
    """Render one catalog key as Telegram HTML."""
    return catalog(locale).render(key, context)


def render_reply(locale: str, reply: Reply) -> Rendered:
    text = render(locale, reply.key, **reply.context)
    buttons = tuple((b.id, plain(render(locale, b.label, **b.context))) for b in reply.buttons)
    return Rendered(text=text, buttons=buttons)


_TAG = re.compile(r"</?(?:b|strong|i|em|u|ins|s|strike|del|code|pre|a|blockquote|tg-spoiler|span)(?:\s[^>]*)?>")


def plain(html_text: str) -> str:
    """Terminal text from Telegram HTML: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", html_text))


def locale_named(name: str | None) -> str | None:
    """A language the user names (/language zh-Hant, 繁體, en) as one of our locales, or None."""
    text = (name or "").strip().lower().replace("_", "-")
    if text.startswith(_HANT_CODES) or text in ("繁體", "繁体", "繁體中文", "繁体中文", "traditional", "hant", "tw", "hk"):
        return HANT
    if text.startswith("zh") or text in ("中文", "简体", "簡體", "简体中文", "簡體中文", "simplified", "hans"):
        return "zh"
    if text.startswith("en") or text in ("english", "英文", "英语", "英語"):
        return "en"
    return None


def locale_from(language_code: str | None) -> str:
    """A Telegram language_code (zh-hans, en-US, ...) to one of our locales."""
    code = (language_code or "").lower().replace("_", "-")
    if code.startswith(_HANT_CODES):
        return HANT
    if code.startswith("zh"):
        return "zh"
    return DEFAULT_LOCALE
