"""`refund-advisor`: run the bot, chat in a terminal, print the intake graph, classify narratives."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from bot.config import ConfigError, load as load_config
from bot.storage import StorageError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refund-advisor",
        description="Helps a person get their money back: asks what happened, classifies it, "
                    "advises next steps with real dates, in Chinese or English.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def db_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", metavar="PATH",
                       help="SQLite database file (env REFUND_ADVISOR_DB, default refund-advisor.db)")

    run = sub.add_parser("run", help="run the Telegram bot (long polling)",
                         description="Run the Telegram bot with long polling. Needs TELEGRAM_BOT_TOKEN; "
                                     "TELEGRAM_API_BASE_URL points it at another Bot API server.")
    db_flag(run)
    run.add_argument("--api-base-url", metavar="URL",
                     help="Bot API base URL, token appended (env TELEGRAM_API_BASE_URL, "
                          "default https://api.telegram.org/bot)")

    chat = sub.add_parser("chat", help="the same conversation in this terminal, no token needed",
                          description="Talk to the advisor in the terminal. Type answers, or the number of an "
                                      "option. Commands: /back /skip /cancel /new /status /language zh|en "
                                      "/help /quit.")
    db_flag(chat)
    chat.add_argument("--lang", choices=("zh", "en"), help="language of the conversation (default en)")

    sub.add_parser("graph", help="print the intake state graph as Mermaid",
                   description="Print the intake graph (questions and the conditions between them) as a "
                               "Mermaid flowchart.")
    sub.add_parser("classify", help="classify narratives read on stdin, one JSON line each",
                   description="Read narratives on stdin, one per line (plain text, or JSON with a `text` "
                               "field and optional `slots`), and print one JSON line each with category, "
                               "confidence and signals.")
    return parser


def _fail(message: str) -> int:
    print(f"refund-advisor: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "graph":
            from dialogs.graph import load, mermaid
            sys.stdout.write(mermaid(load()))
            return 0
        if args.command == "classify":
            from dialogs.classifier import classify_lines
            for result in classify_lines(sys.stdin):
                sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            return 0
        config = load_config(os.environ, REFUND_ADVISOR_DB=args.db,
                             TELEGRAM_API_BASE_URL=getattr(args, "api_base_url", None))
        if args.command == "chat":
            from bot.chat import run_chat
            return asyncio.run(run_chat(config.db_path, args.lang))
        if args.command == "run":
            from bot.telegram_app import run_polling
            return run_polling(config)
    except ConfigError as exc:
        return _fail(str(exc))
    except StorageError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
