"""The bot under test as a child process: start, wait until it polls, peak RSS, CPU time, stop, kill."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The product the bot process runs: this checkout, or a snapshot (`python -m bench.run --at REV`).
PRODUCT_ROOT = Path(os.environ.get("BENCH_PRODUCT_ROOT") or ROOT)
TOKEN = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
_TICKS = os.sysconf("SC_CLK_TCK")


def export_revision(rev: str, into: Path) -> Path:
    """The product's packages (bot, dialogs, messages) as committed at `rev`, in a folder of their own:
    benchmarks of a committed state while the working tree is being edited."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "bot", "dialogs", "messages"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def proc_status(pid: int, key: str) -> int:
    """A /proc/<pid>/status value in kB (VmHWM: peak RSS, VmRSS: RSS now); 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class BotProcess:
    """`python -m bench.botproc <kind> [--no-limiter]` with the bot's settings in the environment."""

    def __init__(self, kind: str, emu, workdir: Path, *, no_limiter: bool = False, env: dict | None = None,
                 name: str = "bot"):
        self.kind = kind
        self.emu = emu
        self.args = [sys.executable, "-m", "bench.botproc", kind] + (["--no-limiter"] if no_limiter else [])
        self.workdir = workdir
        self.db = workdir / f"{name}.db"
        self.pickle = workdir / f"{name}.pickle"
        self.log = workdir / f"{name}.log"
        self.env = {**os.environ, "TELEGRAM_BOT_TOKEN": emu.token, "TELEGRAM_API_BASE_URL": emu.base_url,
                    "REFUND_ADVISOR_DB": str(self.db), "BASELINE_PICKLE": str(self.pickle),
                    "REFUND_ADVISOR_QUIET_HOURS": "off", "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(PRODUCT_ROOT), str(ROOT)])),
                    **(env or {})}
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> "BotProcess":
        self.started_at = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, cwd=self.workdir, stdout=log, stderr=log)
        return self

    def wait_polling(self, timeout: float = 60.0) -> float:
        """Seconds from spawn until the bot's first getUpdates."""
        polls = self.emu.stats["getUpdates"]
        self.emu.wait_for_sync(lambda: self.emu.stats["getUpdates"] > polls or self.process.poll() is not None,
                               timeout)
        if self.process.poll() is not None:
            raise RuntimeError(f"the {self.kind} bot exited with {self.process.returncode}:\n{self.tail()}")
        return time.monotonic() - self.started_at

    def start(self, timeout: float = 60.0) -> "BotProcess":
        self.spawn()
        self.wait_polling(timeout)
        return self

    def peak_rss_mb(self) -> float:
        return proc_status(self.pid, "VmHWM") / 1024

    def rss_mb(self) -> float:
        return proc_status(self.pid, "VmRSS") / 1024

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM, as an operator stops it; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
