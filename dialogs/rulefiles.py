"""The rule files of dialogs/rules/ (advice, deadlines, facts, ladder, recipients, categories,
places) read one way: `rules_file(name)`, a mapping (an empty file is an empty one). Each reader
checks what it takes from its files and keeps the result (the loaders are cached); every rule file
is named here, so that a newcomer finds them all in one list."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from dialogs.yamlfile import read_yaml

RULES_DIR = Path(__file__).parent / "rules"
RULE_FILES = ("advice.yaml", "categories.yaml", "deadlines.yaml", "facts.yaml", "ladder.yaml", "places.yaml",
              "recipients.yaml")


def rules_file(name: str, folder: Path | None = None) -> Mapping[str, Any]:
    """One rule file of `folder` (RULES_DIR), parsed. ValueError if it is not a mapping at the top."""
    folder = folder or RULES_DIR
    if name not in RULE_FILES:
        raise ValueError(f"{name} is not one of the rule files {RULE_FILES}")
    data = read_yaml(folder / name)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{folder / name}: expected a mapping at the top, not {type(data).__name__}")
    return data


def as_tuple(value: Any) -> tuple[str, ...]:
    """A YAML value that may be one string or a list of them, as a tuple of strings."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return (str(value),)
