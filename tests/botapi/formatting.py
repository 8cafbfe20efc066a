"""Telegram's text formatting as the Bot API server applies it.

``parse_text(text, parse_mode, entities)`` turns what a bot sends into what Telegram
stores: the plain text (tags removed, HTML entities decoded, leading and trailing
white space stripped) and a list of MessageEntity dicts whose offsets and lengths are in
UTF-16 code units.  Text that does not parse raises ``EntityParseError`` whose message
follows Telegram's (tdlib's) wording; the server prefixes it with
"Bad Request: can't parse entities: ".

Supported parse modes: "HTML", "MarkdownV2" and the legacy "Markdown" (case-insensitive).
"""
from __future__ import annotations

import re

__all__ = ["EntityParseError", "parse_text", "utf16_len"]


class EntityParseError(ValueError):
    """The text does not parse in the given parse mode."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: what Telegram counts (4096 per message, 1024 per caption)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogatepass"))


# An entity while parsing: [type, start char index, end char index, extra fields]
_Span = tuple[str, int, int, dict]


def _finish(plain: str, spans: list[_Span]) -> tuple[str, list[dict]]:
    """Strip surrounding white space as Telegram does and convert char indices to UTF-16."""
    start = len(plain) - len(plain.lstrip())
    stripped = plain.strip()
    end = start + len(stripped)
    # prefix sums of UTF-16 widths, over the stripped text
    widths = [0]
    for ch in stripped:
        widths.append(widths[-1] + (2 if ord(ch) > 0xFFFF else 1))
    entities = []
    for kind, s, e, extra in spans:
        s, e = max(s, start) - start, min(e, end) - start
        if e <= s:
            continue  # Telegram drops empty entities
        entity = {"type": kind, "offset": widths[s], "length": widths[e] - widths[s]}
        entity.update(extra)
        entities.append(entity)
    entities.sort(key=lambda x: (x["offset"], -x["length"]))
    return stripped, entities


# --------------------------------------------------------------------------- HTML

_HTML_TAGS = {
    "b": "bold", "strong": "bold",
    "i": "italic", "em": "italic",
    "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]+));")


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """The character an HTML entity at text[i] ('&') stands for, and the index after it."""
    m = _ENTITY_RE.match(text, i)
    if not m:
        return None
    if m.group(3) is not None:
        ch = _NAMED_ENTITIES.get(m.group(3))
        if ch is None:
            return None  # Telegram knows only &lt; &gt; &amp; &quot;
    else:
        code = int(m.group(1)) if m.group(1) is not None else int(m.group(2), 16)
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        ch = chr(code)
    return ch, m.end()


def _decode_attr(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "&":
            dec = _decode_entity(value, i)
            if dec:
                out.append(dec[0])
                i = dec[1]
                continue
        out.append(value[i])
        i += 1
    return "".join(out)


def _parse_html(text: str, strict_ampersand: bool) -> tuple[str, list[_Span]]:
    out: list[str] = []
    length = 0  # len("".join(out)), kept incrementally
    stack: list[tuple[str, int, dict]] = []  # (tag name, start index in plain text, attributes)
    spans: list[_Span] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "&":
            dec = _decode_entity(text, i)
            if dec is None:
                if strict_ampersand:
                    raise EntityParseError(
                        f'Character "&" at byte offset {_byte_offset(text, i)} does not start a '
                        'supported entity (&lt; &gt; &amp; &quot; or numeric); escape it as "&amp;"'
                    )
                out.append("&")
                length += 1
                i += 1
                continue
            out.append(dec[0])
            length += 1
            i = dec[1]
            continue
        if ch != "<":
            out.append(ch)
            length += 1
            i += 1
            continue
        begin = i
        i += 1
        if i < n and text[i] == "/":  # end tag
            i += 1
            j = i
            while j < n and text[j] not in " \t\r\n>":
                j += 1
            name = text[i:j].lower()
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j >= n or text[j] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            i = j + 1
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
            open_name, start, attrs = stack.pop()
            if name != open_name:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {_byte_offset(text, begin)}, '
                    f'expected "</{open_name}>", found "</{name}>"'
                )
            _close_html_tag(open_name, start, length, attrs, out, spans, stack)
            continue
        # start tag
        j = i
        while j < n and text[j] not in " \t\r\n>":
            j += 1
        if j >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        name = text[i:j].lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, begin)}'
            )
        attrs: dict[str, str] = {}
        i = j
        while True:
            while i < n and text[i] in " \t\r\n":
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            if text[i] == ">":
                i += 1
                break
            a = i
            while i < n and text[i] not in " \t\r\n=>":
                i += 1
            attr = text[a:i].lower()
            if not attr:
                raise EntityParseError(
                    f'Empty attribute name in the tag "{name}" at byte offset {_byte_offset(text, begin)}'
                )
            while i < n and text[i] in " \t\r\n":
                i += 1
            if i < n and text[i] == "=":
                i += 1
                while i < n and text[i] in " \t\r\n":
                    i += 1
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
                if text[i] in "\"'":
                    quote = text[i]
                    end = text.find(quote, i + 1)
                    if end < 0:
                        raise EntityParseError(
                            f'Unclosed end of attribute "{attr}" of the tag "{name}" '
                            f"at byte offset {_byte_offset(text, begin)}"
                        )
                    value = text[i + 1:end]
                    i = end + 1
                else:
                    v = i
                    while i < n and text[i] not in " \t\r\n>":
                        i += 1
                    value = text[v:i]
                attrs[attr] = _decode_attr(value)
            else:
                attrs[attr] = ""  # a value-less attribute such as <blockquote expandable>
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError('Tag "span" must have class "tg-spoiler"')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError('Tag "tg-emoji" must have a numeric attribute "emoji-id"')
        if name == "tg-time" and not attrs.get("unix", "").lstrip("-").isdigit():
            raise EntityParseError('Tag "tg-time" must have a numeric attribute "unix"')
        stack.append((name, length, attrs))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), spans


def _close_html_tag(name, start, end, attrs, out, spans, stack) -> None:
    kind = _HTML_TAGS[name]
    extra: dict = {}
    if name == "a":
        url = attrs.get("href", "")
        if not url:
            url = "".join(out)[start:end]  # tdlib uses the link text as its URL
        if url.startswith("tg://user?id="):
            kind = "text_mention"
            uid = url.split("=", 1)[1]
            extra = {"user": {"id": int(uid) if uid.isdigit() else 0, "is_bot": False, "first_name": ""}}
        else:
            extra = {"url": url}
    elif name == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    elif name == "tg-emoji":
        extra = {"custom_emoji_id": attrs["emoji-id"]}
    elif name == "tg-time":
        extra = {"unix_time": int(attrs["unix"])}
        if attrs.get("format"):
            extra["date_time_format"] = attrs["format"]
    elif name == "code":
        lang = attrs.get("class", "")
        if stack and stack[-1][0] == "pre" and lang.startswith("language-"):
            # <pre><code class="language-x"> is one pre entity with a language
            stack[-1][2]["_language"] = lang[len("language-"):]
            return
    elif name == "pre":
        if attrs.get("_language"):
            extra = {"language": attrs["_language"]}
    spans.append((kind, start, end, extra))


# --------------------------------------------------------------------------- MarkdownV2

_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler",
    "[": "TextUrl", "![": "CustomEmoji", "`": "Code", "```": "Pre",
}
_MDV2_KINDS = {
    "*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler",
    "`": "code", "```": "pre",
}


def _parse_markdown_v2(text: str) -> tuple[str, list[_Span]]:
    out: list[str] = []
    spans: list[_Span] = []
    stack: list[tuple[str, int, int]] = []  # (marker, start in plain text, byte offset in source)
    quote_start: int | None = None
    quote_expandable = False
    i, n = 0, len(text)

    def plain_len() -> int:
        return sum(len(s) for s in out)

    def close_quote(end: int) -> None:
        nonlocal quote_start
        if quote_start is not None:
            kind = "expandable_blockquote" if quote_expandable else "blockquote"
            spans.append((kind, quote_start, end, {}))
            quote_start = None

    while i < n:
        ch = text[i]
        at_line_start = i == 0 or text[i - 1] == "\n"
        top = stack[-1][0] if stack else None
        if top in ("`", "```"):
            # inside code: only '\' escapes and the closing marker are special
            if ch == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
                out.append(text[i + 1])
                i += 2
                continue
            if top == "```" and text.startswith("```", i):
                marker, start, _ = stack.pop()
                body = "".join(out)[start:]
                language = ""
                first_line, sep, rest = body.partition("\n")
                if sep and first_line and " " not in first_line:
                    language = first_line
                    # the language line is not part of the text
                    joined = "".join(out)
                    out[:] = [joined[:start] + rest]
                spans.append(("pre", start, plain_len(), {"language": language} if language else {}))
                i += 3
                continue
            if top == "`" and ch == "`":
                _, start, _ = stack.pop()
                spans.append(("code", start, plain_len(), {}))
                i += 1
                continue
            out.append(ch)
            i += 1
            continue
        if at_line_start and not stack:
            if text.startswith("**>", i):
                close_quote(plain_len())
                quote_start, quote_expandable = plain_len(), True
                i += 3
                continue
            if ch == ">":
                if quote_start is None:
                    quote_start, quote_expandable = plain_len(), False
                i += 1
                continue
            if quote_start is not None:
                # the line before ended the block quote (its '\n' stays outside it)
                close_quote(plain_len() - 1 if plain_len() else 0)
        if ch == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.append(text[i + 1])
            i += 2
            continue
        # end of an open entity?
        if top is not None:
            closes = (
                (top == "*" and ch == "*")
                or (top == "__" and text.startswith("__", i))
                or (top == "_" and ch == "_" and not text.startswith("__", i))
                or (top == "~" and ch == "~")
                or (top == "||" and text.startswith("||", i))
                or (top in ("[", "![") and ch == "]")
            )
            if top == "_" and text.startswith("__", i):
                closes = False  # '__' is greedily an underline marker: it opens one here
            if closes:
                marker, start, _ = stack.pop()
                if marker in ("[", "!["):
                    i += 1
                    if i < n and text[i] == "(":
                        j = i + 1
                        url_chars = []
                        while j < n and text[j] != ")":
                            if text[j] == "\\" and j + 1 < n:
                                url_chars.append(text[j + 1])
                                j += 2
                                continue
                            url_chars.append(text[j])
                            j += 1
                        if j >= n:
                            raise EntityParseError(
                                f"Can't find end of a url at byte offset {_byte_offset(text, i)}"
                            )
                        url = "".join(url_chars)
                        i = j + 1
                    else:
                        url = "".join(out)[start:]
                    if marker == "![":
                        m = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
                        if not m:
                            raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
                        spans.append(("custom_emoji", start, plain_len(), {"custom_emoji_id": m.group(1)}))
                    elif url.startswith("tg://user?id="):
                        uid = url.split("=", 1)[1]
                        spans.append(("text_mention", start, plain_len(), {
                            "user": {"id": int(uid) if uid.isdigit() else 0, "is_bot": False, "first_name": ""}}))
                    else:
                        spans.append(("text_link", start, plain_len(), {"url": url}))
                    continue
                spans.append((_MDV2_KINDS[marker], start, plain_len(), {}))
                i += len(marker)
                continue
        # start of an entity?
        if text.startswith("```", i):
            stack.append(("```", plain_len(), _byte_offset(text, i)))
            i += 3
            continue
        if ch == "`":
            stack.append(("`", plain_len(), _byte_offset(text, i)))
            i += 1
            continue
        if text.startswith("__", i):
            stack.append(("__", plain_len(), _byte_offset(text, i)))
            i += 2
            continue
        if text.startswith("||", i):
            if quote_start is not None and quote_expandable and (i + 2 == n or text[i + 2] == "\n"):
                i += 2  # the expandability mark at the end of an expandable block quote
                continue
            stack.append(("||", plain_len(), _byte_offset(text, i)))
            i += 2
            continue
        if text.startswith("![", i):
            stack.append(("![", plain_len(), _byte_offset(text, i)))
            i += 2
            continue
        if ch in "*_~[":
            stack.append((ch, plain_len(), _byte_offset(text, i)))
            i += 1
            continue
        if ch in _MDV2_RESERVED:
            raise EntityParseError(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        out.append(ch)
        i += 1
    if stack:
        marker, _, byte = stack[-1]
        raise EntityParseError(f"Can't find end of {_MDV2_NAMES[marker]} entity at byte offset {byte}")
    close_quote(plain_len())
    return "".join(out), spans


# --------------------------------------------------------------------------- legacy Markdown

def _parse_markdown(text: str) -> tuple[str, list[_Span]]:
    out: list[str] = []
    spans: list[_Span] = []
    i, n = 0, len(text)

    def plain_len() -> int:
        return sum(len(s) for s in out)

    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if ch not in "_*`[":
            out.append(ch)
            i += 1
            continue
        begin = i
        if ch == "[":
            end = text.find("]", i + 1)
            if end < 0:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
                )
            label = text[i + 1:end]
            i = end + 1
            url = ""
            if i < n and text[i] == "(":
                close = text.find(")", i + 1)
                if close < 0:
                    raise EntityParseError(
                        f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
                    )
                url = text[i + 1:close]
                i = close + 1
            start = plain_len()
            out.append(label)
            if url:
                spans.append(("text_link", start, plain_len(), {"url": url}))
            continue
        marker = "```" if text.startswith("```", i) else ch
        end = text.find(marker, i + len(marker))
        if end < 0:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        body = text[i + len(marker):end]
        i = end + len(marker)
        extra: dict = {}
        if marker == "```":
            first, sep, rest = body.partition("\n")
            if sep and first and " " not in first:
                extra, body = {"language": first}, rest
        start = plain_len()
        out.append(body)
        kind = {"*": "bold", "_": "italic", "`": "code", "```": "pre"}[marker]
        spans.append((kind, start, plain_len(), extra))
    return "".join(out), spans


# --------------------------------------------------------------------------- entry point

def parse_text(
    text: str,
    parse_mode: str | None = None,
    entities: list[dict] | None = None,
    *,
    strict_ampersand: bool = True,
) -> tuple[str, list[dict]]:
    """Plain text and entities (UTF-16 offsets) as Telegram would store them.

    Raises EntityParseError for text that does not parse and ValueError("unsupported
    parse_mode") for an unknown parse mode.
    """
    mode = (parse_mode or "").strip().lower()
    if mode == "html":
        plain, spans = _parse_html(text, strict_ampersand)
    elif mode == "markdownv2":
        plain, spans = _parse_markdown_v2(text)
    elif mode == "markdown":
        plain, spans = _parse_markdown(text)
    elif mode == "":
        if not entities:
            return _finish(text, [])
        # explicit entities: already in UTF-16 units; only strip leading white space shifts them
        stripped = text.strip()
        lead = utf16_len(text[: len(text) - len(text.lstrip())])
        total = utf16_len(stripped)
        result = []
        for e in entities:
            e = dict(e)
            s = max(int(e.get("offset", 0)) - lead, 0)
            end = min(int(e.get("offset", 0)) + int(e.get("length", 0)) - lead, total)
            if end <= s:
                continue
            e["offset"], e["length"] = s, end - s
            result.append(e)
        return stripped, result
    else:
        raise ValueError("unsupported parse_mode")
    return _finish(plain, spans)
