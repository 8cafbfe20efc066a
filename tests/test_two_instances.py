"""Two `refund-advisor webhook` processes on one PostgreSQL database behind a load balancer (the
emulator's round-robin webhook routing), as issue 7 asks: 1,000 due nudges are each sent exactly
once, shared between the instances, and a user whose updates alternate between the instances goes
through the whole intake without losing their place; an update delivered again, to the other
instance, is acted on once. PostgreSQL only (SQLite is one process per file)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.reminders import Reminders
from bot.storage import Storage
from dbs import raw
from dialogs.graph import load as load_graph
from telegram_harness import option_data, question_of

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

TOKEN = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
SECRET = "two-instances_secret_0123456789"
ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://bot.example.com/telegram"      # what both set; the emulator routes it to them
USERS = 1000
FIRST_USER = 5_000_000
SEEDERS = 8                                          # connections seeding side by side
ANN = 4242
NUDGE = "What has happened since my last message?"
# No dates: no deadline nudges, so that the day the tests run changes nothing.
SLOTS = {"jurisdiction": "UK", "purchase_type": "goods", "merchant": "Some Shop", "payment_method": "debit_card",
         "problem": "non_delivery", "contacted": False}
# The seeded plans' first nudge is due a second after seeding; the instances' cadence puts the next
# one an hour later, so within the test each seeded chat is owed exactly one nudge.
SEED_CADENCE = (timedelta(seconds=1),)
INSTANCE_CADENCE = "3600s"
# Ann's answers: typed, or "press:<option>" for a button; every kind of update alternates instances.
PLAN = {"jurisdiction": "press:CN", "purchase_type": "software", "merchant": "Steam", "payment_method": "PayPal",
        "amount": "$49.99", "purchase_date": "press:yesterday", "problem": "it does not work",
        "problem_date": "yesterday", "contacted": "press:yes", "contact_date": "today",
        "seller_answer": "they refused", "story": "press:_skip", "confirm": "press:_yes"}
QUESTIONS = ["jurisdiction", "purchase_type", "merchant", "payment_method", "amount", "purchase_date", "problem",
             "problem_date", "contacted", "contact_date", "seller_answer", "story", "confirm"]
REDELIVERED_AFTER = "merchant"


async def seed(db: str) -> None:
    """USERS advised cases, their plans started now, written by the product's own storage and
    follow-up code (as the intake's last turn writes them), several connections side by side."""
    graph = load_graph()
    now = datetime.now(timezone.utc)

    async def seeder(user_ids: range) -> None:
        storage = await Storage.open(db)
        try:
            followups = Reminders(storage, graph, cadence=SEED_CADENCE, quiet_hours=None)
            for user_id in user_ids:
                user = await storage.ensure_user(user_id, now, seen_locale="en")
                case = await storage.create_case(user_id, {"node": "done", "slots": SLOTS}, now)
                change = followups.start(user, case, "non_delivery", now)
                await storage.save_turn(user_id, case.id, {"node": "done", "slots": SLOTS}, [], now,
                                        status="advised", category="non_delivery", change=change)
        finally:
            await storage.close()

    await (await Storage.open(db)).close()        # migrated once, before the seeders race to it
    share = -(-USERS // SEEDERS)
    await asyncio.gather(*(seeder(range(FIRST_USER + i, min(FIRST_USER + i + share, FIRST_USER + USERS)))
                           for i in range(0, USERS, share)))


def rows(db: str, sql: str, *args) -> list[tuple]:
    return asyncio.run(raw(db, sql, *args))


class Instance:
    """`refund-advisor webhook` as an operator runs it; `host` is how it names the Bot API server,
    which the emulator records with each request (so that the two can be told apart)."""

    def __init__(self, name: str, emu: BotApiEmulator, db: str, tmp_path: Path, host: str):
        self.name = name
        self.port = _free_port()
        self.host = f"{host}:{emu.port}"
        self.log = tmp_path / f"{name}.log"
        self.url = f"http://127.0.0.1:{self.port}/telegram"
        self.env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": f"http://{self.host}/bot",
                    "REFUND_ADVISOR_DB": db, "TELEGRAM_WEBHOOK_URL": PUBLIC_URL, "TELEGRAM_WEBHOOK_SECRET": SECRET,
                    "TELEGRAM_WEBHOOK_PORT": str(self.port), "REFUND_ADVISOR_FOLLOWUP": INSTANCE_CADENCE,
                    "REFUND_ADVISOR_QUIET_HOURS": "off"}
        self.process: subprocess.Popen | None = None

    def start(self) -> "Instance":
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "bot.cli", "webhook"], env=self.env, cwd=ROOT,
                                            stdout=out, stderr=out)
        return self

    def ready(self) -> bool:
        assert self.process.poll() is None, f"{self.name} exited:\n{self.log.read_text()}"
        if "webhook for @" not in self.log.read_text():
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processed(emu: BotApiEmulator, update: dict, times: int = 1, timeout: float = 20) -> list[str]:
    """Waits until `update` has been answered 2xx `times` times (an instance answers once the turn is
    stored and its replies sent); the instance URLs it went to."""
    def answered() -> list[str] | None:
        urls = [d["url"] for d in emu.webhook_deliveries
                if d["update"]["update_id"] == update["update_id"] and d["status"] == 200]
        return urls if len(urls) >= times else None
    return emu.wait_for_sync(answered, timeout)


def ann_case(db: str) -> dict:
    ((case_id, dialog, status, category),) = rows(
        db, "SELECT c.id, c.dialog, c.status, c.category FROM dialog_state d JOIN cases c ON c.id = d.case_id "
            "WHERE d.user_id = ?", ANN)
    return {"id": case_id, "dialog": json.loads(dialog), "status": status, "category": category}


def converse(emu: BotApiEmulator, db: str) -> tuple[list[str], list[dict]]:
    """Ann's whole intake through the load balancer: (questions asked in order, her last messages)."""
    ann = emu.user(ANN, language_code="en")
    update = ann.send_command("/start")
    processed(emu, update)
    messages = emu.wait_for_messages(ANN, 1, timeout=20, after=update)
    asked: list[str] = []
    for _ in range(len(QUESTIONS) + 5):
        questions = [m for m in messages if question_of(m)]
        if not questions:
            return asked, messages
        question = questions[-1]
        node = question_of(question)
        asked.append(node)
        action = PLAN[node]
        mark = emu.messages(ANN, include_user=True)[-1]["message_id"]
        if action.startswith("press:"):
            update = ann.press(question, option_data(question, action.removeprefix("press:")))
        else:
            update = ann.send(action)
        (first,) = processed(emu, update)
        messages = [m for m in emu.messages(ANN) if m["message_id"] > mark]
        if node == REDELIVERED_AFTER:
            before = (ann_case(db)["dialog"], len(emu.messages(ANN)), len(emu.calls("editMessageText")))
            (_, again) = processed(emu, emu.redeliver(update), times=2)
            assert again != first, "the redelivery went to the other instance"
            assert (ann_case(db)["dialog"], len(emu.messages(ANN)), len(emu.calls("editMessageText"))) == before, \
                "a redelivered update is acted on once"
    raise AssertionError(f"the intake did not end: {asked}")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_webhook_instances_send_1000_nudges_once_and_share_a_conversation(db_url, tmp_path):
    db = db_url
    asyncio.run(seed(db))
    seeded = range(FIRST_USER, FIRST_USER + USERS)
    assert rows(db, "SELECT COUNT(*) FROM followups WHERE state = 'pending' AND user_id >= ?", FIRST_USER) \
        == [(USERS,)]
    with BotApiEmulator(token=TOKEN) as emu:
        for user_id in seeded:
            emu.user(user_id, language_code="en")
        a = Instance("a", emu, db, tmp_path, "127.0.0.1")
        b = Instance("b", emu, db, tmp_path, "localhost")
        emu.route_webhook([a.url, b.url])
        try:
            a.start(), b.start()
            emu.wait_for_sync(lambda: a.ready() and b.ready(), 30)

            # Ann talks to the bot while the nudges go out.
            asked, last = converse(emu, db)
            deliveries = emu.webhook_deliveries

            emu.wait_for_sync(lambda: emu.stats["sendMessage"] >= USERS, 50)
            emu.wait_for_sync(lambda: rows(db, "SELECT COUNT(*) FROM followups WHERE state = 'sent' "
                                               "AND user_id >= ?", FIRST_USER) == [(USERS,)], 20)
        finally:
            codes = {instance.name: instance.stop() for instance in (a, b)}
        logs = {instance.name: instance.log.read_text() for instance in (a, b)}
        assert codes == {"a": 0, "b": 0}, logs

        # Every seeded chat got one message, its nudge.
        per_chat = {user_id: [m["text"] for m in emu.messages(user_id)] for user_id in seeded}
        wrong = {u: texts for u, texts in per_chat.items() if len(texts) != 1 or NUDGE not in texts[0]}
        assert not wrong, f"{len(wrong)} chats did not get exactly one nudge, e.g. {list(wrong.items())[:3]}"
        # Both instances sent some of them.
        senders = Counter(call["host"] for call in emu.calls("sendMessage")
                          if call["ok"] and call["params"]["chat_id"] in seeded)
        assert sum(senders.values()) == USERS
        assert senders[a.host] > 0 and senders[b.host] > 0, senders
        assert emu.errors == [] and emu.warnings == [] and emu.stats.errors.get(400, 0) == 0

    # The database agrees: each seeded case's nudge sent once and on its timeline once.
    assert rows(db, "SELECT state, COUNT(*) FROM followups WHERE user_id >= ? AND due_at <= ? GROUP BY state",
                FIRST_USER, datetime.now(timezone.utc).isoformat()) == [("sent", USERS)]
    assert rows(db, "SELECT COUNT(*) FROM (SELECT c.user_id FROM case_events e JOIN cases c ON c.id = e.case_id "
                    "WHERE c.user_id >= ? AND e.kind = 'nudge' GROUP BY c.user_id HAVING COUNT(*) = 1) once",
                FIRST_USER) == [(USERS,)]

    # Ann: every question once, in order, each following from her last answer, whichever instance
    # took it; her updates (the redelivery too) alternated between the instances, each answered 200.
    assert asked == QUESTIONS
    assert [d["status"] for d in deliveries] == [200] * (len(QUESTIONS) + 2)
    routes = [d["url"] for d in deliveries]
    assert routes == [a.url, b.url] * (len(routes) // 2) + [a.url] * (len(routes) % 2), routes
    assert last and not question_of(last[-1]), "the intake ended with the advice"
    case = ann_case(db)
    assert (case["status"], case["dialog"]["node"]) == ("advised", "done")
    slots = case["dialog"]["slots"]
    assert {k: slots.get(k) for k in ("jurisdiction", "purchase_type", "merchant", "payment_method", "problem",
                                      "contacted", "seller_answer")} == {
        "jurisdiction": "CN", "purchase_type": "software", "merchant": "Steam", "payment_method": "paypal",
        "problem": "defect", "contacted": True, "seller_answer": "refused"}
    assert slots["amount"]["value"] == "49.99"
    for when in ("purchase_date", "problem_date", "contact_date"):
        datetime.strptime(slots[when], "%Y-%m-%d")
    answered = [json.loads(d) for (d,) in rows(db, "SELECT data FROM case_events WHERE case_id = ? AND kind = 'answer' "
                                                   "ORDER BY id", case["id"])]
    assert [e["slot"] for e in answered] == [q for q in QUESTIONS if q not in ("story", "confirm")], \
        "each answer on the timeline once, in the order given"
    for name, text in logs.items():
        assert "Traceback" not in text and TOKEN not in text and SECRET not in text, (name, text[-3000:])
