"""From rendered replies to what the Bot API takes: HTML parts within 4,096 characters,
inline keyboards, and short callback data that names a case, the open question and an option.

Callback data (at most 64 bytes, never trusted; the handlers check it against the database):

    q:<case id>:<question token>:<option id>   an answer to the open question of a case
    q:<case id>:<question token>:#<index>      the same, when the option id would not fit
    c:<case id>                                switch to one of my cases
    l:<locale>                                 choose the language
    r:<case id>:<outcome>                      the outcome of /resolved
    x:<nonce> / x:no                           confirm or refuse /delete
    n:<case id>:<followup id>:<answer>         an answer to a nudge (live while that nudge is the latest)
    m:<case id>:<choice>                       a /remind button (a cadence, pause, resume)
    s:<case id>                                /status: the whole timeline and the advice
    k:<case id>                                the case's deadlines as a calendar file
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

MAX_TEXT = 4096            # UTF-16 code units, counted after entity parsing
MAX_CALLBACK = 64          # bytes
CONTROL_OPTIONS = ("_skip", "_back")
_PENDING_TOKEN = {"date_choice": "dc", "edit_menu": "em"}


def utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# ---- HTML length and splitting ----------------------------------------------------------

_TOKEN = re.compile(r"<[^>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);|[\s\S]", re.UNICODE)
_TAG_NAME = re.compile(r"</?\s*([a-zA-Z][a-zA-Z0-9-]*)")


def visible(html_text: str) -> str:
    """The text Telegram keeps from our HTML: tags dropped, entities decoded, ends stripped."""
    return html.unescape(re.sub(r"<[^>]*>", "", html_text)).strip()


def visible_len(html_text: str) -> int:
    return utf16_len(visible(html_text))


def _units(token: str) -> int:
    if token.startswith("<"):
        return 0
    if token.startswith("&") and len(token) > 1:
        return utf16_len(html.unescape(token))
    return utf16_len(token)


def _cut(text: str, limit: int) -> tuple[str, str]:
    """Split `text` (HTML) in two so that the head shows at most `limit` units: at the last
    paragraph break that fits, else the last line break, else the last space, else anywhere
    outside a tag or an entity. Tags open at the cut are closed in the head and reopened in the tail."""
    count = 0
    stack: list[tuple[str, str]] = []                  # (tag name, opening tag as written)
    best: dict[int, tuple[int, list[tuple[str, str]]]] = {}   # priority -> (index, open tags there)
    last_fit = 0
    last_stack: list[tuple[str, str]] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token.startswith("<") and len(token) > 1:
            name_match = _TAG_NAME.match(token)
            if name_match:
                name = name_match.group(1).lower()
                if token.startswith("</"):
                    for i in range(len(stack) - 1, -1, -1):
                        if stack[i][0] == name:
                            del stack[i:]
                            break
                elif not token.endswith("/>"):
                    stack.append((name, token))
            pos = match.end()
            continue
        units = _units(token)
        if count + units > limit:
            break
        count += units
        if token == "\n" and text[match.end():match.end() + 1] == "\n" and not stack:
            best[3] = (match.start(), list(stack))
        elif token == "\n":
            best[2] = (match.start(), list(stack))
        elif token.isspace():
            best[1] = (match.start(), list(stack))
        pos = match.end()
        last_fit, last_stack = pos, list(stack)
    else:
        return text, ""
    for priority in (3, 2, 1):
        # A break that leaves a very short head is worse than a lower-priority one.
        if priority in best and (best[priority][0] > len(text) // 50 or priority == 1):
            index, open_tags = best[priority]
            break
    else:
        index, open_tags = last_fit, last_stack
    if index <= 0:
        index, open_tags = max(last_fit, 1), last_stack
    head = text[:index] + "".join(f"</{name}>" for name, _ in reversed(open_tags))
    tail = "".join(opening for _, opening in open_tags) + text[index:].lstrip()
    return head.rstrip(), tail


def split_html(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Telegram HTML in parts that each show at most `limit` UTF-16 units, split at paragraph
    boundaries where possible, every part balanced."""
    parts: list[str] = []
    rest = text.strip()
    while rest and visible_len(rest) > limit:
        head, rest = _cut(rest, limit)
        if visible(head):
            parts.append(head)
        rest = rest.strip()
    if visible(rest) or not parts:
        parts.append(rest)
    return parts


# ---- callback data ----------------------------------------------------------------------

def question_token(dialog: Mapping[str, Any]) -> str:
    """A short name for the question open in a stored dialog state: its node, with a mark for a
    pending sub-question (a date to pick, the edit menu) and for a paused case."""
    token = str(dialog.get("node", ""))
    pending = dialog.get("pending") or {}
    if pending:
        kind = str(pending.get("kind", "?"))
        token += "~" + _PENDING_TOKEN.get(kind, kind[:2])
    if dialog.get("paused"):
        token += "~p"
    return token


def fits(data: str) -> bool:
    return len(data.encode("utf-8")) <= MAX_CALLBACK


def press_data(case_id: int, token: str, option: str, index: int) -> str:
    data = f"q:{case_id}:{token}:{option}"
    if fits(data):
        return data
    data = f"q:{case_id}:{token}:#{index}"
    if fits(data):
        return data
    raise ValueError(f"callback data for case {case_id}, question {token!r} does not fit in 64 bytes")


@dataclass(frozen=True)
class Press:
    kind: str                 # q, c, l, r, x, n, m, e
    case_id: int | None = None
    token: str = ""           # q: the question token; n: the followup id; e: the recipient
    option: str = ""


def nudge_data(case_id: int, followup_id: int, answer: str) -> str:
    data = f"n:{case_id}:{followup_id}:{answer}"
    if not fits(data):
        raise ValueError(f"nudge callback data {data!r} does not fit in 64 bytes")
    return data


def escalate_data(case_id: int, recipient: str, letter: str | None, origin: str) -> str:
    """/escalate buttons: e:<case>:<recipient>:<letter language or _>:<c (command) | n (nudge)>."""
    data = f"e:{case_id}:{recipient}:{letter or '_'}:{origin}"
    if not fits(data):
        raise ValueError(f"escalate callback data {data!r} does not fit in 64 bytes")
    return data


def parse_data(data: str | None) -> Press | None:
    """What a button's data claims; None if it is not ours. Claims are checked by the caller."""
    if not data or not fits(data):
        return None
    kind, _, rest = data.partition(":")
    try:
        if kind == "q":
            case, token, option = rest.split(":", 2)
            return Press("q", int(case), token, option)
        if kind == "c":
            return Press("c", int(rest))
        if kind == "r":
            case, outcome = rest.split(":", 1)
            return Press("r", int(case), option=outcome)
        if kind == "n":
            case, followup, answer = rest.split(":", 2)
            return Press("n", int(case), str(int(followup)), answer)
        if kind == "m":
            case, choice = rest.split(":", 1)
            return Press("m", int(case), option=choice)
        if kind == "e":
            case, recipient, letter, origin = rest.split(":", 3)
            return Press("e", int(case), recipient, f"{letter}:{origin}")
        if kind in ("s", "k"):
            return Press(kind, int(rest))
        if kind in ("l", "x") and rest:
            return Press(kind, option=rest)
    except ValueError:
        return None
    return None


# ---- keyboards --------------------------------------------------------------------------

def keyboard(buttons: Sequence[tuple[str, str, str]]) -> InlineKeyboardMarkup | None:
    """(option id, label, callback data) to an inline keyboard: short labels side by side,
    long ones one per row, Skip and Back together on the last row."""
    if not buttons:
        return None
    main = [b for b in buttons if b[0] not in CONTROL_OPTIONS]
    controls = [b for b in buttons if b[0] in CONTROL_OPTIONS]
    rows: list[list[InlineKeyboardButton]] = []
    width = max((len(label) for _, label, _ in main), default=0)
    per_row = 3 if width <= 10 else 2 if width <= 18 else 1
    for start in range(0, len(main), per_row):
        rows.append([InlineKeyboardButton(label, callback_data=data) for _, label, data in main[start:start + per_row]])
    if controls:
        rows.append([InlineKeyboardButton(label, callback_data=data) for _, label, data in controls])
    return InlineKeyboardMarkup(rows)


def flowing_keyboard(buttons: Sequence[tuple[str, str, str]], width: int = 20,
                     group: Callable[[str], str] | None = None) -> InlineKeyboardMarkup | None:
    """Buttons in order, as many side by side as fit: up to three short labels (10 characters),
    two of up to `width`, a longer one alone. A row never mixes two groups (`group(option id)`)."""
    if not buttons:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    row: list[tuple[str, str]] = []
    row_group = None

    def per_row(labels: list[str]) -> int:
        longest = max(len(label) for label in labels)
        return 3 if longest <= 10 else 2 if longest <= width else 1

    for option, label, data in buttons:
        key = group(option) if group else None
        candidate = row + [(label, data)]
        if row and (key != row_group or len(candidate) > per_row([lbl for lbl, _ in candidate])):
            rows.append([InlineKeyboardButton(lbl, callback_data=d) for lbl, d in row])
            row = []
        row.append((label, data))
        row_group = key
    if row:
        rows.append([InlineKeyboardButton(lbl, callback_data=d) for lbl, d in row])
    return InlineKeyboardMarkup(rows)


def label_of(markup: InlineKeyboardMarkup | None, data: str | None) -> str | None:
    """The label of the button that carried `data` in a message's keyboard."""
    if markup is None or data is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


def merge_texts(texts: Iterable[str]) -> str:
    return "\n\n".join(t.strip() for t in texts if t and t.strip())
