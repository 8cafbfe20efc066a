"""`refund-advisor`: run the bot (polling or webhook), check its database, chat in a terminal, print the
intake graph, classify narratives, train and measure the story classifier, migrate a database, copy one
database into another."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, Callable

from bot.config import (DEFAULT_WEBHOOK_LISTEN, DEFAULT_WEBHOOK_PORT, ConfigError, load as load_config,
                        load_webhook, parse_db)
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
                            description="Open the configured database and check that it answers; in webhook "
                                        "mode (TELEGRAM_WEBHOOK_URL set) ask the running server's /healthz "
                                        "instead, so that a server that cannot accept is unhealthy. Prints one "
                                        "line; exit code 0 when healthy, 1 otherwise (the container's "
                                        "HEALTHCHECK).")
    db_flag(health)

    chat = sub.add_parser("chat", help="the same conversation in this terminal, no token needed",
                          description="Talk to the advisor in the terminal. Type answers, or the number of an "
                                      "option. Commands: /back /skip /cancel /new /status /language zh|en "
                                      "/help /quit.")
    db_flag(chat)
    chat.add_argument("--lang", choices=("zh", "zh-Hant", "en"), help="language of the conversation: zh (Simplified), zh-Hant (Traditional) or en (default)")

    sub.add_parser("graph", help="print the intake state graph as Mermaid",
                   description="Print the intake graph (questions and the conditions between them) as a "
                               "Mermaid flowchart.")
    facts = sub.add_parser(
        "facts", help="list every fact the advice shows, with its official source and checked date",
        description="List every legal number, deadline, phone number, authority and citation the advice "
                    "and the letters rely on (dialogs/rules/facts.yaml): its official citation and address, "
                    "what was read to check it and when, where it is used, and why it needs re-checking "
                    "(checked over a year before --as-of, a rule that changes such as a platform policy, "
                    "or not verified).")
    facts.add_argument("--flagged", action="store_true", help="only the facts that need re-checking")
    facts.add_argument("--as-of", metavar="YYYY-MM-DD", help="judge the age of checks on this day (default today)")
    facts.add_argument("--json", action="store_true", help="one JSON object a line instead of text")
    sub.add_parser("classify", help="classify narratives read on stdin, one JSON line each",
                   description="Read narratives on stdin, one per line (plain text, or JSON with a `text` "
                               "field and optional `slots`), and print one JSON line each with category, "
                               "confidence and signals.")
    _classifier_commands(sub)
    _database_commands(sub, db_flag)
    return parser


def _classifier_commands(sub: Any) -> None:
    train = sub.add_parser(
        "train", help="fit the story classifier on the corpus and write its weights",
        description="Fit the learned story classifier on the training split of the corpus (a checkout's "
                    "corpus/narratives.jsonl; format in corpus/README.md), write its weights "
                    "(dialogs/ngram_model.json) and the held-out figures (corpus/figures.json), and print "
                    "them. Needs the train extra: pip install -e '.[train]'. The same corpus always gives "
                    "the same weights.")
    train.add_argument("--corpus", metavar="FILE", help="the labelled corpus (default corpus/narratives.jsonl)")
    train.add_argument("--out", metavar="FILE", help="where to write the weights (default dialogs/ngram_model.json)")
    evaluate = sub.add_parser(
        "eval", help="measure the story classifier on labelled stories",
        description="Classify every story of FILE (JSON lines with `text` and `label`, as in corpus/README.md) "
                    "as if told in one message, and print per-category precision, recall and F1, the "
                    "withdrawal-scam recall and precision, how often the story alone answers the problem "
                    "question and how often rightly, and the confusion matrix. On the repository's corpus "
                    "only its held-out texts are used, unless --split says otherwise.")
    evaluate.add_argument("file", metavar="FILE", help="labelled stories, one JSON object a line")
    evaluate.add_argument("--mode", choices=("both", "rules", "model", "all"), default="both",
                          help="the phrase rules alone, the learned model alone, or both combined as the "
                               "advisor does (default); all: a table of the three")
    evaluate.add_argument("--split", choices=("auto", "all", "held-out", "train"), default="auto",
                          help="which texts to use: auto (default) is held-out for the repository's corpus, "
                               "all for any other file")
    evaluate.add_argument("--cv", metavar="K", type=int,
                          help="instead: K-fold cross-validation on the training split, retraining each "
                               "fold (needs the train extra)")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")


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
    from bot.storage.pgsession import redact
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


def _health(db: str | None) -> int:
    """Always 0 or 1, a malformed setting included: Docker reserves 2 for HEALTHCHECK commands."""
    from bot.health import EXIT_UNHEALTHY, check
    try:
        config = load_config(os.environ, REFUND_ADVISOR_DB=db)
    except ConfigError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return EXIT_UNHEALTHY
    if os.environ.get("TELEGRAM_WEBHOOK_URL", "").strip():
        from bot.health import check_server
        try:
            webhook = load_webhook(os.environ)
        except ConfigError as exc:
            print(f"unhealthy: {exc}", file=sys.stderr)
            return EXIT_UNHEALTHY
        code, line = check_server(webhook.listen, webhook.port)
    else:
        code, line = asyncio.run(check(config.db_path))
    print(line, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _facts(flagged: bool, as_of: str | None, as_json: bool) -> int:
    from datetime import date

    from dialogs.factsheet import entries, render_text
    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        return _fail(f"--as-of: not a date (YYYY-MM-DD): {as_of!r}")
    items = [e for e in entries(day) if e.flags or not flagged]
    if as_json:
        for e in items:
            sys.stdout.write(json.dumps(e.as_dict(), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_text(items))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "graph":
            from dialogs.graph import load, mermaid
            sys.stdout.write(mermaid(load()))
            return 0
        if args.command == "facts":
            return _facts(args.flagged, args.as_of, args.json)
        if args.command == "classify":
            from dialogs.classifier import classify_lines
            for result in classify_lines(sys.stdin):
                sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            return 0
        if args.command in ("train", "eval"):
            from bot.train_cli import run
            return run(args)
        if args.command == "copy-db":
            from bot.storage.copydb import copy_db
            asyncio.run(copy_db(parse_db(args.source, "FROM"), parse_db(args.target, "TO"), sys.stdout))
            return 0
        if args.command == "health":
            return _health(args.db)
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
    except BrokenPipeError:
        # The reader went away (`| head`): everything was saved before it was printed; say nothing
        # more, and let the exit's final flush go nowhere instead of raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
