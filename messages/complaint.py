"""A complaint draft (dialogs.complaint.draft) as the user gets it: a Telegram HTML message, and
the same letter as plain text and as Markdown for the documents sent with it. Every value the
user typed is escaped in each format."""
from __future__ import annotations

import html
import re
from typing import Any, Mapping

from dialogs.complaint import Draft
from messages import plain, render

_USER_TEXT = ("merchant", "user_name", "story", "story_short")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&#|~])")
_MD_TAGS = ((re.compile(r"</?b>"), "**"), (re.compile(r"</?i>"), "_"), (re.compile(r"</?code>"), "`"))


def _md_escape(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    # a line of the user's own that would start a list, a heading or a quote stays text
    return re.sub(r"(?m)^(\s*)([-+>]|\d+\.)(?=\s)", lambda m: m.group(1) + "\\" + m.group(2), escaped)


def _md_context(context: Mapping[str, Any]) -> dict[str, Any]:
    ctx = dict(context)
    for key in _USER_TEXT:
        ctx[key] = _md_escape(ctx.get(key))
    ctx["urls"] = [_md_escape(u) for u in ctx.get("urls") or []]
    ctx["history"] = [{**h, "text": _md_escape(h.get("text")), "text_short": _md_escape(h.get("text_short"))}
                      for h in ctx.get("history") or []]
    ctx["evidence"] = [{**e, "text": _md_escape(e.get("text")), "text_short": _md_escape(e.get("text_short"))}
                       for e in ctx.get("evidence") or []]
    return ctx


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return out + "\n"


def render_draft(d: Draft) -> tuple[str, str, str]:
    """(Telegram HTML message, plain text for a .txt document, Markdown for a .md document).

    The message keeps long user texts short (the documents keep them whole); the shell
    splits it if it is over Telegram's length. Every user value is escaped in each format.
    """
    def ctx(context: Mapping[str, Any], fmt: str) -> dict[str, Any]:
        c = {**context, "subject_key": d.subject_key, "how_to_send_key": d.how_to_send_key,
             "demand_date": d.demand_date.isoformat() if d.demand_date else None, "fmt": fmt}
        c["d"] = c           # the whole context, for nested templates: t(key, **d)
        return c

    message = _tidy(render(d.locale, "complaint_draft", **ctx(d.context, "html"))).rstrip("\n")
    text = _tidy(plain(render(d.locale, "complaint_draft", **ctx(d.context, "text"))))
    md = render(d.locale, "complaint_draft", **ctx(_md_context(d.context), "md"))
    for pattern, mark in _MD_TAGS:
        md = pattern.sub(mark, md)
    return message, text, _tidy(html.unescape(md))
