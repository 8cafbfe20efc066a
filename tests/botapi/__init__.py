"""A Telegram Bot API emulator for end-to-end tests and benchmarks (see README.md)."""
from .formatting import EntityParseError, parse_text, utf16_len
from .server import ApiError, BotApiEmulator, FakeUser, Stats
from .spec import Spec, load_spec

__all__ = ["ApiError", "BotApiEmulator", "EntityParseError", "FakeUser", "Spec", "Stats",
           "load_spec", "parse_text", "utf16_len"]
