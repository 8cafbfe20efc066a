"""The two forms of a user's text the dialogs work with: kept (`clean`) and compared (`normalize`)."""
from __future__ import annotations

import re
import unicodedata

from dialogs.script import same_length_simplified

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_PUNCT_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """What we keep of a user's text: control and invisible characters removed, line breaks kept."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.strip()


def normalize(text: str) -> str:
    """A comparable form: NFKC (full-width to half-width), Simplified characters, lower case, no
    apostrophes, edges trimmed. Every run of white space becomes one plain space, which
    `dialogs.phrases` relies on."""
    text = same_length_simplified(unicodedata.normalize("NFKC", clean(text))).lower()
    text = text.replace("'", "").replace("\u2019", "")
    text = _SPACES.sub(" ", text)
    return _PUNCT_EDGES.sub("", text)
