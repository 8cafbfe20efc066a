"""The labelled corpus as a file: reading it (every bad line named), what a model was trained
from (a digest), and the held-out figures of a model, as `refund-advisor train` records them in
corpus/figures.json and CI compares them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from dialogs.corpus import Record, read_records
from dialogs.evaluation import evaluate
from dialogs.ngram_model import NgramModel

ROOT = Path(__file__).resolve().parent.parent
CORPUS_PATH = ROOT / "corpus" / "narratives.jsonl"
FIGURES_PATH = ROOT / "corpus" / "figures.json"
MODES = ("rules", "model", "both")


class CorpusError(Exception):
    """The corpus cannot be read: the message says which line and why."""


def load_corpus(path: Path = CORPUS_PATH, *, strict: bool = True) -> list[Record]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text") from exc
    records, problems = read_records(lines, strict=strict)
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise CorpusError(f"{path}: {shown}")
    if not records:
        raise CorpusError(f"{path} holds no records")
    return records


def digest(records: Iterable[Record]) -> str:
    """What the model was trained from: the texts and labels, in order."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.text.strip(), r.label], ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:16]


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n",
                    encoding="utf-8")


def held_out_figures(records: Sequence[Record], model: NgramModel) -> dict[str, Any]:
    test = [r for r in records if r.held_out]
    return {mode: evaluate(test, mode, model).figures() for mode in MODES}


