"""Traditional Chinese read as Simplified: the intake's phrases, the rules and the model are
written in Simplified, and a story from Taiwan or Hong Kong means the same.

    to_simplified(text)      Taiwan phrasing too (軟體 -> 软件, 訊息 -> 消息); the length may change
    same_length_simplified(text)  character for character, so positions in it are positions in
                             the text (what the answer parsers and the story miner slice by)
"""
from __future__ import annotations

import opencc

# OpenCC's tables, bundled in its wheel: Taiwan phrases (tw2sp) and plain characters (t2s).
_PHRASES = opencc.OpenCC("tw2sp.json")
_CHARACTERS = opencc.OpenCC("t2s.json")


def _encodable(text: str) -> str:
    # Lone surrogates (a broken client) cannot go through OpenCC's UTF-8: each becomes "?".
    return text.encode("utf-8", "replace").decode("utf-8")


def to_simplified(text: str) -> str:
    return str(_PHRASES.convert(_encodable(text)))


def same_length_simplified(text: str) -> str:
    if text.isascii():
        return text
    text = _encodable(text)
    # Taiwan phrasing first (轉帳 -> 转账, not 转帐); a phrase of another length would move the
    # positions: then character for character, and if even that moves them, the text as it is.
    for converter in (_PHRASES, _CHARACTERS):
        converted = str(converter.convert(text))
        if len(converted) == len(text):
            return converted
    return text
