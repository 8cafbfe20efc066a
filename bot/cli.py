"""`refund-advisor`: run the bot (polling or webhook), check its database, chat in a terminal, print the
intake graph, classify narratives."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from bot.config import DEFAULT_WEBHOOK_LISTEN, DEFAULT_WEBHOOK_PORT, ConfigError, load as load_config, load_webhook
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
    def api_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--api-base-url", metavar="URL",
                       help="Bot API base URL, token appended (env TELEGRAM_API_BASE_URL, "
                            "default https://api.telegram.org/bot)")

    db_flag(run)
    api_flag(run)

    webhook = sub.add_parser(
        "webhook", help="run the Telegram bot on a webhook (Telegram POSTs updates to it)",
        description="Run the Telegram bot with a webhook: serves Telegram's POSTs on LISTEN:PORT at PATH "
                    "(and GET /healthz: 200 when the database answers, 503 otherwise), after setting the "
                    "webhook to URL with the secret. Needs TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_URL and "
                    "TELEGRAM_WEBHOOK_SECRET (environment only, so it never shows in a process list; 1-256 "
                    "characters A-Z a-z 0-9 _ -). Requests without that secret are refused (401). Telegram "
                    "posts only to https:// on port 443, 80, 88 or 8443: put a TLS proxy in front.")
    db_flag(webhook)
    api_flag(webhook)
    webhook.add_argument("--url", metavar="URL",
                         help="public address Telegram posts to (env TELEGRAM_WEBHOOK_URL)")
    webhook.add_argument("--listen", metavar="ADDRESS",
                         help=f"address to listen on (env TELEGRAM_WEBHOOK_LISTEN, default {DEFAULT_WEBHOOK_LISTEN})")
    webhook.add_argument("--port", metavar="PORT",
                         help=f"port to listen on (env TELEGRAM_WEBHOOK_PORT, default {DEFAULT_WEBHOOK_PORT})")
    webhook.add_argument("--path", metavar="PATH",
                         help="path updates are posted to, here (env TELEGRAM_WEBHOOK_PATH, default the "
                              "path of the URL)")

    health = sub.add_parser("health", help="check that the database answers (exit 0, else 1)",
                            description="Open the configured database and check that it answers. Prints one "
                                        "line; exit code 0 when healthy, 1 otherwise (the container's "
                                        "HEALTHCHECK).")
    db_flag(health)

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


def _health(db: str | None) -> int:
    """Always 0 or 1, a malformed setting included: Docker reserves 2 for HEALTHCHECK commands."""
    from bot.health import EXIT_UNHEALTHY, check
    try:
        config = load_config(os.environ, REFUND_ADVISOR_DB=db)
    except ConfigError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return EXIT_UNHEALTHY
    code, line = asyncio.run(check(config.db_path))
    print(line, file=sys.stdout if code == 0 else sys.stderr)
    return code


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
        if args.command == "health":
            return _health(args.db)
        config = load_config(os.environ, REFUND_ADVISOR_DB=args.db,
                             TELEGRAM_API_BASE_URL=getattr(args, "api_base_url", None))
        if args.command == "chat":
            from bot.chat import run_chat
            return asyncio.run(run_chat(config.db_path, args.lang))
        if args.command == "run":
            from bot.telegram_app import run_polling
            return run_polling(config)
        if args.command == "webhook":
            webhook = load_webhook(os.environ, TELEGRAM_WEBHOOK_URL=args.url, TELEGRAM_WEBHOOK_LISTEN=args.listen,
                                   TELEGRAM_WEBHOOK_PORT=args.port, TELEGRAM_WEBHOOK_PATH=args.path)
            from bot.webhook import run_webhook
            return run_webhook(config, webhook)
    except ConfigError as exc:
        return _fail(str(exc))
    except StorageError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
