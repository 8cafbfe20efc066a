"""Measure `refund-advisor webhook` under the attacks of issue 18: `python -m bench.attack [--quick]`.

Starts the real webhook process (its open-file limit set to 1024, as under systemd and Docker)
against the Bot API emulator, and from loopback, without the secret:

- bodies: 64 connections each announcing and sending 1 MB without the secret: the process's RSS
  before and after (the issue measured +72 MB);
- stalled: 100 connections that send half a header and 100 that send headers and half a body (with
  the secret): how many are still open 30 s later (the issue: all of them);
- exhaustion: 1,100 idle connections held (over the file limit), then the time /healthz and a
  user's /start take to be answered while they are held, and `refund-advisor health`'s verdict;
- refusals: 2,000 requests with a wrong secret: the bytes of log they cost.

Prints one JSON object. Numbers, not pass/fail: the tests check the behaviour.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.procs import proc_status

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from botapi import BotApiEmulator  # noqa: E402

TOKEN = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
SECRET = "bench_secret_0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


def _closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attack")
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter waits")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    port, out = _free_port(), {}
    workdir = Path(tempfile.mkdtemp())
    log = workdir / "bot.log"
    with BotApiEmulator(token=TOKEN) as emu:
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": emu.base_url,
               "REFUND_ADVISOR_DB": str(workdir / "bot.db"), "TELEGRAM_WEBHOOK_SECRET": SECRET,
               "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook", "TELEGRAM_WEBHOOK_PORT": str(port)}
        with open(log, "wb") as sink:
            bot = subprocess.Popen([sys.executable, "-m", "bot.cli", "webhook"], env=env, cwd=ROOT,
                                   stdout=sink, stderr=sink, preexec_fn=_limit(1024))
        try:
            emu.wait_for_sync(lambda: emu.webhook["url"] or bot.poll() is not None, 30)

            # bodies without the secret
            rss = proc_status(bot.pid, "VmRSS")
            held = []
            for _ in range(16 if args.quick else 64):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
                try:
                    s.sendall(b"x" * 1048576)
                except OSError:
                    pass
                held.append(s)
            time.sleep(1)
            out["bodies_without_secret_rss_kb_added"] = proc_status(bot.pid, "VmRSS") - rss
            for s in held:
                s.close()

            # stalled headers and bodies
            stalled = []
            for n in range(20 if args.quick else 100):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\n")
                stalled.append(s)
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nX-Telegram-Bot-Api-Secret-Token: " + SECRET.encode()
                          + b"\r\nContent-Length: 1000\r\n\r\n{\"upd")
                stalled.append(s)
            time.sleep(30)
            out["stalled_still_open_after_30_s"] = sum(not _closed(s) for s in stalled)
            out["stalled_total"] = len(stalled)
            for s in stalled:
                s.close()

            # descriptor exhaustion
            idle = []
            for _ in range(300 if args.quick else 1100):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                except OSError:
                    break
            out["idle_connections_opened"] = len(idle)
            started = time.monotonic()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
                    out["healthz_during"] = [response.status, round(time.monotonic() - started, 3)]
            except OSError as exc:
                out["healthz_during"] = [str(exc), round(time.monotonic() - started, 3)]
            started = time.monotonic()
            update = emu.user(1001).send_command("/start")
            try:
                emu.wait_for_messages(1001, 1, timeout=30, after=update)
                out["start_answered_during_s"] = round(time.monotonic() - started, 3)
            except Exception as exc:            # a measurement: report what happened
                out["start_answered_during_s"] = f"not answered: {type(exc).__name__}"
            health = subprocess.run([sys.executable, "-m", "bot.cli", "health"], env=env, cwd=ROOT,
                                    capture_output=True, text=True, timeout=60)
            out["health_during"] = [health.returncode, (health.stdout or health.stderr).strip()]
            for s in idle:
                s.close()

            # refusals in the log
            before = log.stat().st_size
            for n in range(500 if args.quick else 2000):
                request = urllib.request.Request(f"http://127.0.0.1:{port}/hook", data=b"{}", method="POST",
                                                 headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
                try:
                    urllib.request.urlopen(request, timeout=10)
                except OSError:
                    pass
            out["log_bytes_for_refusals"] = log.stat().st_size - before
            out["refusals_sent"] = 500 if args.quick else 2000
        finally:
            bot.send_signal(signal.SIGTERM)
            out["exit_code"] = bot.wait(60)
    text = log.read_text()
    out["log_lines"] = len(text.splitlines())
    out["tracebacks_in_log"] = text.count("Traceback")
    kinds: dict[str, int] = {}
    for line in text.splitlines():
        key = " ".join(line.split()[2:])[:70]
        kinds[key] = kinds.get(key, 0) + 1
    out["log_line_kinds"] = dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:8])
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
