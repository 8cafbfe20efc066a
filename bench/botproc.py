"""Start the bot under test as a process of its own (so it does not share a GIL with the emulator).

    python -m bench.botproc ours [--no-limiter]       the product: `refund-advisor run`'s code path
    python -m bench.botproc baseline [--no-limiter]   bench/baseline: a plain python-telegram-bot bot

Settings come from the environment, as for `refund-advisor run` (TELEGRAM_BOT_TOKEN,
TELEGRAM_API_BASE_URL, REFUND_ADVISOR_DB, ...; the baseline reads BASELINE_PICKLE too).

`--no-limiter` lifts the bot's overall limit (30 requests/s for every call that names a chat,
edits included: bot.telegram.limiter.SharedLimiter, or python-telegram-bot's AIORateLimiter in
older revisions) and the follow-up dispatcher's own pace for nudges (older revisions had one),
in this process only: it measures what the bot
itself can process, not what the limits let through. Nothing in bot/ is changed.
"""
from __future__ import annotations

import sys


def _unlimited_rate_limiter():
    from telegram.ext import AIORateLimiter

    def factory(*args, **kwargs):
        kwargs["overall_max_rate"] = 0
        return AIORateLimiter(*args, **kwargs)
    return factory


def _lift_overall_limit(app_module) -> None:
    """The bot's limiter, whichever it is: SharedLimiter(per_second) or AIORateLimiter (older revisions)."""
    shared = getattr(app_module, "SharedLimiter", None)
    if shared is not None:
        app_module.SharedLimiter = lambda per_second=30, **kwargs: shared(0, **kwargs)
    else:
        app_module.AIORateLimiter = _unlimited_rate_limiter()


def _lift_nudge_pace() -> None:
    """The dispatcher's share of the 30 requests a second for nudges (a keyword default), lifted."""
    try:
        from bot.dispatcher import Dispatcher
    except ImportError:
        return
    defaults = Dispatcher.__init__.__kwdefaults__ or {}
    if "per_second" in defaults:
        defaults["per_second"] = 1e6


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("ours", "baseline"):
        print(__doc__, file=sys.stderr)
        return 2
    no_limiter = "--no-limiter" in argv[1:]
    if argv[0] == "ours":
        if no_limiter:
            import bot.telegram_app
            _lift_overall_limit(bot.telegram_app)
            _lift_nudge_pace()
        from bot.cli import main as cli_main
        return cli_main(["run"])
    from bench.baseline import bot as baseline
    return baseline.main(no_limiter=no_limiter)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
