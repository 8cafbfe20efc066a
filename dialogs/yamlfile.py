"""The data files (the intake graph, the rules, the message catalogs) as Python values.

libyaml's parser when PyYAML was built with it: the same safe subset and the same value types
as yaml.safe_load, at a fraction of the start-up time (the data files are read at import)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str | Path) -> Any:
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LOADER)
