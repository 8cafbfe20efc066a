"""`refund-advisor run` as a process against the Bot API emulator: a restart after kill -9 and after
SIGTERM continues the same question; a missing or rejected token exits 2 with one line; the
token never reaches the logs."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from telegram_harness import option_data, question_of

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

TOKEN = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
ANN = 1001
EXE = [sys.executable, "-m", "bot.cli", "run"]
ROOT = Path(__file__).resolve().parents[1]


class BotProcess:
    def __init__(self, emu: BotApiEmulator, db: Path, log: Path, token: str | None = TOKEN):
        self.env = {**os.environ, "TELEGRAM_API_BASE_URL": emu.base_url, "REFUND_ADVISOR_DB": str(db)}
        self.env.pop("TELEGRAM_BOT_TOKEN", None)
        if token is not None:
            self.env["TELEGRAM_BOT_TOKEN"] = token
        self.emu = emu
        self.log = log
        self.command = "run"        # or "webhook" (with its settings in env)
        self.process: subprocess.Popen | None = None

    def start(self) -> "BotProcess":
        # Updates are being received once a getUpdates call arrives (or, for a webhook, setWebhook).
        method = "getUpdates" if self.command == "run" else "setWebhook"
        before = self.emu.stats[method]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([*EXE[:-1], self.command], env=self.env, cwd=ROOT, stdout=log, stderr=log)
        self.emu.wait_for_sync(lambda: self.emu.stats[method] > before or self.process.poll() is not None, 20)
        assert self.process.poll() is None, self.log.read_text()
        return self

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        return self.process.wait(20)


def live_keyboard_record(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT data FROM dialog_state WHERE user_id = ?", (ANN,)).fetchone()
    return row[0] if row else ""


def expect(emu: BotApiEmulator, update: dict, count: int = 1) -> list[dict]:
    return emu.wait_for_messages(ANN, count, timeout=20, after=update)


def test_a_restart_after_kill_9_and_after_sigterm_continues_the_same_question(tmp_path):
    db, log = tmp_path / "bot.db", tmp_path / "bot.log"
    with BotApiEmulator(token=TOKEN) as emu:
        ann = emu.user(ANN, language_code="zh")
        bot = BotProcess(emu, db, log).start()
        update = ann.send_command("/start")
        question = expect(emu, update)[-1]
        assert question_of(question) == "jurisdiction"
        ann.press(question, option_data(question, "CN"))
        question = emu.wait_for_sync(lambda: [m for m in emu.messages(ANN) if question_of(m) == "purchase_type"])[-1]
        # Killed between turns (a kill in the millisecond between sending a keyboard and recording its
        # message id would leave that keyboard live; a press on it is then refused as stale).
        emu.wait_for_sync(lambda: f'"id": {question["message_id"]}' in live_keyboard_record(db), 10)

        assert bot.stop(signal.SIGKILL) == -signal.SIGKILL
        update = ann.send("游戏")                  # written while the bot is down
        bot.start()
        asked = expect(emu, update)
        assert question_of(asked[-1]) == "merchant", [m["text"] for m in asked]
        retired = emu.message(ANN, question["message_id"])
        assert retired["text"].endswith("✔️ 游戏") and not retired.get("reply_markup")

        assert bot.stop(signal.SIGTERM) == 0
        update = ann.send("淘宝")
        bot.start()
        asked = expect(emu, update)
        assert question_of(asked[-1]) == "payment_method"
        assert bot.stop(signal.SIGINT) == 0
        assert emu.errors == [] and emu.stats.errors.get(400, 0) == 0

    with sqlite3.connect(db) as conn:
        (slots,) = conn.execute("SELECT slots FROM cases WHERE user_id = ?", (ANN,)).fetchone()
        assert '"purchase_type": "game"' in slots and '"merchant": "淘宝"' in slots
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    output = log.read_text()
    assert TOKEN not in output and TOKEN.split(":")[1] not in output
    assert "polling as @test_refund_bot" in output


@pytest.mark.parametrize("token, expected", [
    (None, "TELEGRAM_BOT_TOKEN is not set"),
    ("111:wrong-token-that-the-server-rejects", "rejected the token"),
])
def test_a_missing_or_rejected_token_exits_2_with_one_line(tmp_path, token, expected):
    with BotApiEmulator(token=TOKEN) as emu:
        env = {**os.environ, "TELEGRAM_API_BASE_URL": emu.base_url, "REFUND_ADVISOR_DB": str(tmp_path / "b.db")}
        env.pop("TELEGRAM_BOT_TOKEN", None)
        if token:
            env["TELEGRAM_BOT_TOKEN"] = token
        done = subprocess.run(EXE, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("refund-advisor: ")
    if token:
        assert token not in done.stderr + done.stdout and "wrong-token" not in done.stderr


def test_an_unusable_database_exits_2(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with BotApiEmulator(token=TOKEN) as emu:
        env = {**os.environ, "TELEGRAM_API_BASE_URL": emu.base_url, "REFUND_ADVISOR_DB": str(junk),
               "TELEGRAM_BOT_TOKEN": TOKEN}
        done = subprocess.run(EXE, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "junk.db" in done.stderr and TOKEN not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_database_that_cannot_be_written_exits_2_with_one_line_and_health_says_so(tmp_path):
    """A read-only database file (issue 15): one line naming the file and the cause, exit 2."""
    import shutil
    import tempfile
    outside = Path(tempfile.mkdtemp(prefix="refund-advisor-ro-"))       # a folder anyone may enter
    folder = outside / "ro"
    folder.mkdir()
    db = folder / "bot.db"
    subprocess.run([sys.executable, "-m", "bot.cli", "migrate", "--db", str(db)], cwd=ROOT, check=True,
                   capture_output=True)
    db.chmod(0o444)
    for p in (outside, folder):
        p.chmod(0o777)
    as_other: list[str] = []
    if os.geteuid() == 0:       # root writes whatever the mode says: run as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        as_other = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    with BotApiEmulator(token=TOKEN) as emu:
        env = {**os.environ, "TELEGRAM_API_BASE_URL": emu.base_url, "REFUND_ADVISOR_DB": str(db),
               "TELEGRAM_BOT_TOKEN": TOKEN}
        env.pop("TELEGRAM_WEBHOOK_URL", None)
        done = subprocess.run(as_other + EXE, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
        health = subprocess.run(as_other + [sys.executable, "-m", "bot.cli", "health"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        # A folder this user may not even enter: the same, with that cause.
        outside.chmod(0o700)
        hidden = subprocess.run(as_other + EXE, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    shutil.rmtree(outside)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert str(db) in lines[0] and "readonly" in lines[0] and TOKEN not in done.stderr
    assert health.returncode == 1 and "readonly" in health.stderr
    assert hidden.returncode == 2 and len(hidden.stderr.strip().splitlines()) == 1, hidden.stderr
    assert "Permission denied" in hidden.stderr
