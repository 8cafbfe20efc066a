"""The Bot API's machine-readable spec, and request checking against it.

``load_spec()`` reads the JSON spec (keys "methods" and "types"); ``Spec.check_params``
turns a request's raw parameters (form/multipart strings or JSON values) into typed
Python values, or raises ``ParamError`` with a Telegram-style description.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_SPEC_PATH", "ParamError", "Spec", "UploadedFile", "load_spec"]

# A copy of shared/telegram/bot-api-spec.json (Bot API 10.1) travels with the tests, so a fresh
# clone tests on its own; BOT_API_SPEC points at another copy.
DEFAULT_SPEC_PATH = Path(__file__).resolve().with_name("bot-api-spec.json")

_INT_RE = re.compile(r"-?\d+")
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
_DISCRIMINATOR_RE = re.compile(r'(?:always|must be) "?([a-z_]+)"?')


class ParamError(Exception):
    """A parameter Telegram would reject; str() is the description after "Bad Request: "."""


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    field_name: str
    file_name: str
    content_type: str
    data: bytes


@dataclass
class Spec:
    version: str
    methods: dict[str, dict]
    types: dict[str, dict]
    path: str
    _lower: dict[str, str] = field(default_factory=dict, repr=False)
    _discriminators: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lower = {name.lower(): name for name in self.methods}
        for name, t in self.types.items():
            fields = t.get("fields") or []
            if fields and fields[0]["name"] in ("type", "source", "status"):
                m = _DISCRIMINATOR_RE.search(fields[0].get("description", ""))
                if m:
                    self._discriminators[name] = (fields[0]["name"], m.group(1))

    # -- methods ------------------------------------------------------------------------

    def canonical_method(self, name: str) -> str | None:
        """The spec's spelling of a method name (Telegram matches them case-insensitively)."""
        return self._lower.get(name.lower())

    def returns(self, method: str) -> list[str]:
        return list(self.methods[method].get("returns") or [])

    def check_params(
        self,
        method: str,
        raw: dict[str, Any],
        files: dict[str, UploadedFile],
        warnings: list[str],
    ) -> dict[str, Any]:
        """Typed parameters of a call; unknown parameters are dropped and reported in `warnings`."""
        fields = {f["name"]: f for f in self.methods[method].get("fields") or []}
        for name in raw:
            if name not in fields:
                warnings.append(f"{method}: unknown parameter {name!r} (Telegram ignores it)")
        params: dict[str, Any] = {}
        for name, f in fields.items():
            types = f["types"]
            present = name in raw and raw[name] is not None and raw[name] != ""
            if not present and "InputFile" in types and name in files:
                params[name] = files[name]
                continue
            if not present:
                if f["required"]:
                    raise ParamError(_missing_description(method, name))
                continue
            params[name] = self._top_level(method, name, raw[name], types, files, warnings)
        return params

    def _top_level(self, method, name, value, types, files, warnings):
        return _first_fit(types, lambda t, w: self._coerce_top(method, name, value, t, files, w), warnings)

    def _coerce_top(self, method, name, value, t, files, warnings):
        if t == "InputFile":
            if isinstance(value, str) and value.startswith("attach://"):
                part = value[len("attach://"):]
                if part in files:
                    return files[part]
                raise ParamError(f"file {part!r} referenced by {name} is missing from the request")
            raise ParamError(f'parameter "{name}" must be an uploaded file')
        if t in ("Integer", "Float", "Boolean", "String"):
            return _simple(value, t, name, top_level=True)
        # an object or an array: JSON-serialised when the request is form-encoded
        if isinstance(value, (bytes, str)):
            try:
                value = json.loads(value)
            except ValueError:
                raise ParamError(f"can't parse {name} JSON object") from None
        return self._check(value, t, name, warnings, files)

    # -- nested values ------------------------------------------------------------------

    def _check(self, value, t: str, path: str, warnings: list[str], files) -> Any:
        if t.startswith("Array of "):
            inner = t[len("Array of "):]
            if not isinstance(value, list):
                raise ParamError(f'field "{path}" must be an Array')
            return [self._check(v, inner, f"{path}[{i}]", warnings, files) for i, v in enumerate(value)]
        if t in ("Integer", "Float", "Boolean", "String"):
            return _simple(value, t, path, top_level=False)
        if t == "InputFile":
            if isinstance(value, str):
                return value
            raise ParamError(f'field "{path}" must be a String (attach://<name>, a file_id or a URL)')
        spec_t = self.types.get(t)
        if spec_t is None:
            return value  # a type the spec does not describe: accept it
        if spec_t.get("subtypes"):
            return self._check_union(value, spec_t["subtypes"], path, warnings, files, t)
        if not isinstance(value, dict):
            raise ParamError(f'field "{path}" must be an object of type {t}')
        fields = {f["name"]: f for f in spec_t.get("fields") or []}
        out = dict(value)
        for key in value:
            if key not in fields:
                warnings.append(f"{path}: unknown field {key!r} for {t}")
        for fname, f in fields.items():
            if fname in value and value[fname] is not None:
                out[fname] = self._check_any(value[fname], f["types"], f"{path}.{fname}", warnings, files)
            elif f["required"]:
                raise ParamError(f'field "{path}.{fname}" of {t} is required')
        return out

    def _check_any(self, value, types, path, warnings, files):
        return _first_fit(types, lambda t, w: self._check(value, t, path, w, files), warnings)

    def _check_union(self, value, subtypes, path, warnings, files, t):
        if not isinstance(value, dict):
            raise ParamError(f'field "{path}" must be an object of type {t}')
        discriminated = [s for s in subtypes if s in self._discriminators]
        if discriminated:
            key = self._discriminators[discriminated[0]][0]
            for s in discriminated:
                if self._discriminators[s] == (key, value.get(key)):
                    return self._check(value, s, path, warnings, files)
            raise ParamError(f'unsupported {path}.{key} {value.get(key)!r} for {t}')
        return self._check_any(value, subtypes, path, warnings, files)

    def check_value(self, value: Any, types: list[str], path: str, warnings: list[str] | None = None) -> Any:
        """Check a nested value (e.g. an inline keyboard) against spec types."""
        return self._check_any(value, types, path, warnings if warnings is not None else [], {})


def _first_fit(types: list[str], attempt, warnings: list[str]) -> Any:
    """The value as the first of `types` that accepts it.  Only the accepted type's warnings
    are kept; when none accepts it, the error that got deepest into the value is raised."""
    errors: list[str] = []
    for t in _order(types):
        local: list[str] = []
        try:
            value = attempt(t, local)
        except ParamError as e:
            errors.append(str(e))
            continue
        warnings.extend(local)
        return value
    raise ParamError(max(errors, key=lambda e: e.split(" ", 2)[1].count(".") + e.split(" ", 2)[1].count("[")
                         if e.startswith("field ") else -1))


def _order(types: list[str]) -> list[str]:
    """Try the most specific type first: Integer before String (chat_id), files before strings."""
    rank = {"InputFile": 0, "Integer": 1, "Float": 2, "Boolean": 3}
    return sorted(types, key=lambda t: rank.get(t, 4 if t != "String" else 5))


def _simple(value: Any, t: str, name: str, top_level: bool) -> Any:
    """Integer, Float, Boolean or String; form values arrive as strings."""
    if t == "Integer":
        if isinstance(value, bool):
            raise ParamError(f'field "{name}" must be of type Integer')
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value)
        raise ParamError(f'field "{name}" must be of type Integer')
    if t == "Float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ParamError(f'field "{name}" must be of type Float')
    if t == "Boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and top_level:
            if value.strip().lower() in _TRUE:
                return True
            if value.strip().lower() in _FALSE:
                return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ParamError(f'field "{name}" must be of type Boolean')
    # String: Telegram turns JSON numbers into strings, but not objects, arrays or booleans
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)
    raise ParamError(f'field "{name}" must be of type String')


def _missing_description(method: str, name: str) -> str:
    if name == "text":
        return "message text is empty"
    return f"{name} is empty" if name in ("chat_id", "message_id", "user_id") else f'parameter "{name}" is required'


@lru_cache(maxsize=8)
def _load(path: str) -> Spec:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if "methods" not in data or "types" not in data:
        raise ValueError(f"{path}: not a Bot API spec (keys 'methods' and 'types' expected)")
    return Spec(version=data.get("version", "?"), methods=data["methods"], types=data["types"], path=path)


def load_spec(path: str | os.PathLike | None = None) -> Spec:
    """The spec at `path`, $BOT_API_SPEC or the copy beside this file (cached).

    A missing spec is an error: the emulator refuses to run unchecked.
    """
    chosen = Path(path or os.environ.get("BOT_API_SPEC") or DEFAULT_SPEC_PATH).resolve()
    if not chosen.is_file():
        raise FileNotFoundError(
            f"Bot API spec not found at {chosen}; set BOT_API_SPEC to the path of bot-api-spec.json"
        )
    return _load(str(chosen))
