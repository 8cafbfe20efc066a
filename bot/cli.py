"""`refund-advisor`: run the bot, chat in a terminal, print the intake graph, classify narratives,
migrate a database, copy one database into another."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, Callable

from bot.config import ConfigError, load as load_config, parse_db
from bot.storage import StorageError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refund-advisor",
        description="Helps a person get their money back: asks what happened, classifies it, "
                    "advises next steps with real dates, in Chinese or English.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def db_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", metavar="PATH|URL",
                       help="SQLite database file or postgresql://user:password@host:port/database URL "
                            "(env REFUND_ADVISOR_DB, default refund-advisor.db)")

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
    _database_commands(sub, db_flag)
    return parser


def _database_commands(sub: Any, db_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    migrate = sub.add_parser("migrate", help="bring the database's schema up to date and print its version",
                             description="Apply the schema migrations this version has (run and chat also do "
                                         "this at start-up) and print the schema version. Safe to run again, "
                                         "and while other instances run on the same PostgreSQL database.")
    db_flag(migrate)
    copy = sub.add_parser("copy-db", help="copy every row of one database into another, empty one",
                          description="Copy every table, row by row with its ids, from FROM into TO (each a "
                                      "SQLite file or a postgresql:// URL; both are migrated first), in one "
                                      "transaction, then check every table's row count. TO must be empty. "
                                      "Stop the bot while copying. Typical: copy-db refund-advisor.db "
                                      "postgresql://user:password@host/refund_advisor")
    copy.add_argument("source", metavar="FROM", help="the database to copy (file path or postgresql:// URL)")
    copy.add_argument("target", metavar="TO", help="an empty database to fill (file path or postgresql:// URL)")


async def _migrate(target: str) -> int:
    from bot.pgsession import redact
    from bot.storage import Storage
    storage = await Storage.open(target)
    try:
        print(f"{redact(storage.path)}: schema version {await storage.schema_version()}")
    finally:
        await storage.close()
    return 0


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
        if args.command == "copy-db":
            from bot.copydb import copy_db
            asyncio.run(copy_db(parse_db(args.source, "FROM"), parse_db(args.target, "TO"), sys.stdout))
            return 0
        config = load_config(os.environ, REFUND_ADVISOR_DB=args.db,
                             TELEGRAM_API_BASE_URL=getattr(args, "api_base_url", None))
        if args.command == "migrate":
            return asyncio.run(_migrate(config.db_path))
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
