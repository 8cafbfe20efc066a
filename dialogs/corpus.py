"""The narratives corpus (corpus/narratives.jsonl, format in corpus/README.md) as records.

    read_records(lines) -> (records, problems)   every line checked; a bad line is a problem, not a crash
    held_out(text)      -> whether a text belongs to the held-out split (fixed by its SHA-256)
    fold(text, k)       -> its cross-validation fold, 0..k-1 (also from the SHA-256)

Pure: the caller opens the file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

from dialogs.model import CATEGORIES

HELD_OUT_BELOW = 52          # the first byte of the hash: 52/256, about a fifth of the texts
LANGS = ("zh", "en")
SCRIPTS = ("hans", "hant", "latn")
ORIGINS = ("public", "written")


@dataclass(frozen=True)
class Record:
    id: str
    text: str
    label: str
    lang: str = "en"
    script: str = "latn"
    origin: str = "written"
    source: str = ""
    licence: str = ""
    note: str = ""

    @property
    def held_out(self) -> bool:
        return held_out(self.text)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.strip().encode("utf-8")).digest()


def held_out(text: str) -> bool:
    return _digest(text)[0] < HELD_OUT_BELOW


def fold(text: str, k: int = 5) -> int:
    """The cross-validation fold of a training text (the second byte of the hash: independent of the split)."""
    return _digest(text)[1] % k


def read_records(lines: Iterable[str], *, strict: bool = True) -> tuple[list[Record], list[str]]:
    """Records from JSON lines. `strict`: the corpus's own fields must all be there and valid (the
    repository's corpus); otherwise only `text` and `label` are needed (anyone's file for `eval`)."""
    records: list[Record] = []
    problems: list[str] = []
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {number}: not a JSON object")
            continue
        text, label = obj.get("text"), obj.get("label")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"line {number}: 'text' must be a non-empty string")
            continue
        if label not in CATEGORIES:
            problems.append(f"line {number}: 'label' must be one of {', '.join(CATEGORIES)}, not {label!r}")
            continue
        fields = {key: obj.get(key) for key in ("id", "lang", "script", "origin", "source", "licence", "note")}
        record_id = str(fields["id"] or f"line-{number}")
        if strict:
            wrong = _strict_problems(fields)
            if wrong:
                problems.append(f"line {number} ({record_id}): {'; '.join(wrong)}")
                continue
        if record_id in seen_ids:
            problems.append(f"line {number}: id {record_id!r} is used twice")
            continue
        if text.strip() in seen_texts:
            problems.append(f"line {number} ({record_id}): the same text is already in the file")
            continue
        seen_ids.add(record_id)
        seen_texts.add(text.strip())
        records.append(Record(
            id=record_id, text=text, label=label,
            **{k: str(v) for k, v in fields.items() if k != "id" and isinstance(v, str)},
        ))
    return records, problems


def _strict_problems(fields: dict[str, object]) -> list[str]:
    wrong = []
    if not isinstance(fields["id"], str) or not fields["id"]:
        wrong.append("'id' is missing")
    for key, allowed in (("lang", LANGS), ("script", SCRIPTS), ("origin", ORIGINS)):
        if fields[key] not in allowed:
            wrong.append(f"'{key}' must be one of {', '.join(allowed)}")
    for key in ("source", "licence"):
        value = fields[key]
        if not isinstance(value, str) or not value.strip():
            wrong.append(f"'{key}' is missing")
    if fields["note"] is not None and not isinstance(fields["note"], str):
        wrong.append("'note' must be a string")
    return wrong
