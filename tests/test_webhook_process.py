"""`refund-advisor webhook` and `refund-advisor health` as an operator runs them: a webhook process
answers a user and stops cleanly on SIGTERM, the token and secret never reach its log; settings
it cannot use stop it with one line and exit 2; `health` exits 0 or 1 with one line."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bot.cli import main
from bot.storage import Storage

try:
    from tests.botapi import BotApiEmulator
except ImportError:  # pragma: no cover
    from botapi import BotApiEmulator

TOKEN = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
SECRET = "Zq9-process_secret_0123456789"
ANN = 1001
ROOT = Path(__file__).resolve().parents[1]
WEBHOOK_ENV = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_URL", "TELEGRAM_WEBHOOK_SECRET", "TELEGRAM_WEBHOOK_LISTEN",
               "TELEGRAM_WEBHOOK_PORT", "TELEGRAM_WEBHOOK_PATH", "REFUND_ADVISOR_DB")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def clean_env(monkeypatch):
    for name in WEBHOOK_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_webhook_process_answers_a_user_and_stops_cleanly_on_sigterm(tmp_path):
    port, log = free_port(), tmp_path / "bot.log"
    with BotApiEmulator(token=TOKEN) as emu:
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": emu.base_url,
               "REFUND_ADVISOR_DB": str(tmp_path / "bot.db"), "TELEGRAM_WEBHOOK_SECRET": SECRET,
               "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook", "TELEGRAM_WEBHOOK_PORT": str(port)}
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "bot.cli", "webhook"], env=env, cwd=ROOT,
                                       stdout=out, stderr=out)
        try:
            emu.wait_for_sync(lambda: emu.webhook["url"] or process.poll() is not None, 20)
            assert process.poll() is None, log.read_text()
            assert emu.webhook["secret_token"] == SECRET
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
                assert (response.status, json.loads(response.read())["status"]) == (200, "ok")
            update = emu.user(ANN).send_command("/start")
            (reply,) = emu.wait_for_messages(ANN, 1, timeout=20, after=update)
            assert reply["text"].startswith("Hello")
            emu.wait_for_sync(lambda: not emu.pending_updates(), 10)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(20)
    text = log.read_text()
    assert code == 0, text
    assert TOKEN not in text and SECRET not in text
    assert emu.webhook["url"], "a stop leaves the webhook set for the other instances"


@pytest.mark.parametrize("env, expected", [
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/t"}, "TELEGRAM_WEBHOOK_SECRET is not set"),
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/t", "TELEGRAM_WEBHOOK_SECRET": "no spaces allowed"},
     "TELEGRAM_WEBHOOK_SECRET: expected"),
    ({"TELEGRAM_WEBHOOK_SECRET": SECRET}, "TELEGRAM_WEBHOOK_URL is not set"),
    ({"TELEGRAM_WEBHOOK_URL": "bot.example.com", "TELEGRAM_WEBHOOK_SECRET": SECRET}, "TELEGRAM_WEBHOOK_URL="),
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/t", "TELEGRAM_WEBHOOK_SECRET": SECRET,
      "TELEGRAM_WEBHOOK_PORT": "http"}, "TELEGRAM_WEBHOOK_PORT='http'"),
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/t", "TELEGRAM_WEBHOOK_SECRET": SECRET,
      "TELEGRAM_WEBHOOK_PORT": "70000"}, "TELEGRAM_WEBHOOK_PORT='70000'"),
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/healthz", "TELEGRAM_WEBHOOK_SECRET": SECRET},
     "/healthz is the health check's path"),
], ids=["no-secret", "bad-secret", "no-url", "bad-url", "port-word", "port-range", "path-clash"])
def test_webhook_settings_it_cannot_use_stop_it_with_one_line_and_exit_2(clean_env, capsys, tmp_path, env, expected):
    clean_env.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    clean_env.setenv("REFUND_ADVISOR_DB", str(tmp_path / "bot.db"))
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert main(["webhook"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert "no spaces allowed" not in err[0], "a secret is never echoed"
    assert not (tmp_path / "bot.db").exists(), "nothing started"


def test_a_port_in_use_stops_it_with_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken, BotApiEmulator(token=TOKEN) as emu:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": emu.base_url,
               "REFUND_ADVISOR_DB": str(tmp_path / "bot.db"), "TELEGRAM_WEBHOOK_SECRET": SECRET,
               "TELEGRAM_WEBHOOK_URL": "https://bot.example.com/hook", "TELEGRAM_WEBHOOK_PORT": str(port)}
        done = subprocess.run([sys.executable, "-m", "bot.cli", "webhook"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("refund-advisor:")]
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


async def make_database(path: Path) -> None:
    """As the bot does at its first start."""
    await (await Storage.open(path)).close()


def test_health_says_healthy_for_a_database_that_answers(clean_env, capsys, tmp_path):
    db = tmp_path / "bot.db"
    asyncio.run(make_database(db))
    assert main(["health", "--db", str(db)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"healthy: database {db} answers"


def test_health_is_unhealthy_without_a_usable_database(clean_env, capsys, tmp_path):
    missing = tmp_path / "missing.db"
    assert main(["health", "--db", str(missing)]) == 1
    assert not missing.exists(), "the check does not create a database"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    clean_env.setenv("REFUND_ADVISOR_DB", str(garbage))
    assert main(["health"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("unhealthy: ") for line in err), err
    assert "does not exist" in err[0] and "garbage.db" in err[1]


def test_health_never_exits_2_which_docker_reserves(clean_env, capsys, tmp_path):
    clean_env.setenv("REFUND_ADVISOR_FOLLOWUP", "soon")
    assert main(["health", "--db", str(tmp_path / "x.db")]) == 1
    assert "REFUND_ADVISOR_FOLLOWUP" in capsys.readouterr().err


def _limit_files(limit: int):
    def apply() -> None:
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


def test_stalled_connections_beyond_the_file_limit_do_not_take_the_webhook_down_and_health_tells_the_truth(tmp_path):
    """A process allowed 256 open files, held 600 idle connections: Telegram's update and the
    health probe are answered during the attack, the log stays short, and `refund-advisor health`
    asks the server itself (healthy while it accepts, unhealthy once it is gone)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip("this test holds 600 connections and needs an open-file limit of 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1024), hard))
    port, log = free_port(), tmp_path / "bot.log"
    held: list[socket.socket] = []
    with BotApiEmulator(token=TOKEN) as emu:
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": emu.base_url,
               "REFUND_ADVISOR_DB": str(tmp_path / "bot.db"), "TELEGRAM_WEBHOOK_SECRET": SECRET,
               "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook", "TELEGRAM_WEBHOOK_PORT": str(port)}
        health = [sys.executable, "-m", "bot.cli", "health"]
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "bot.cli", "webhook"], env=env, cwd=ROOT,
                                       stdout=out, stderr=out, preexec_fn=_limit_files(256))
        try:
            emu.wait_for_sync(lambda: emu.webhook["url"] or process.poll() is not None, 20)
            assert process.poll() is None, log.read_text()
            for _ in range(600):
                try:
                    held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                except OSError:
                    break
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
                assert (response.status, json.loads(response.read())["status"]) == (200, "ok")
            checked = subprocess.run(health, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
            assert checked.returncode == 0 and checked.stdout.startswith("healthy: the webhook server"), checked
            update = emu.user(ANN).send_command("/start")
            (reply,) = emu.wait_for_messages(ANN, 1, timeout=20, after=update)
            assert reply["text"].startswith("Hello")
        finally:
            for s in held:
                s.close()
            process.send_signal(signal.SIGTERM)
            code = process.wait(20)
        gone = subprocess.run(health, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert gone.returncode == 1 and "does not answer" in gone.stderr, gone
    assert "Traceback" not in text and "Too many open files" not in text
    assert len(text.splitlines()) < 30, text
