"""End to end: simulated users completing the whole intake through a bot process and the emulator.

The emulator (tests/botapi) and the users run in this process; the bot runs in a child process
(`bench.botproc`), long polling 127.0.0.1, with its storage on disk in a temporary folder.

Each user sends /start, then answers every question the moment it arrives: by button, except the
amount, which is typed. Latency is measured from an update being queued in the emulator to the
first message the bot sends in that chat afterwards (its reply), both clocks in this process.

- `closed`: all users start at once and answer as fast as the bot replies: the throughput.
- `paced`: updates are offered at a fixed mean rate (Poisson arrivals) by users who are ready; if
  the bot keeps up, the offered rate is exactly that, and the latencies are what a user sees.
"""
from __future__ import annotations

import collections
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.emulator import ANSWER_PREFIXES, BenchEmulator
from bench.procs import BotProcess, self_cpu_seconds

# node -> option id, or "type:<text>" (the plan of tests/test_telegram_intake.py, with a typed amount)
PLAN = {"jurisdiction": "CN", "purchase_type": "software", "merchant": "_skip", "payment_method": "alipay",
        "amount": "type:1299", "purchase_date": "yesterday", "problem": "defect", "problem_date": "today",
        "contacted": "yes", "contact_date": "today", "seller_answer": "refused", "story": "_skip",
        "confirm": "_yes",
        # optional dates some variants are asked (US cards: the statement; non-delivery by card: the due date)
        "statement_date": "_skip", "expected_date": "_skip"}
VARIANTS = [{}, {"jurisdiction": "UK", "payment_method": "credit_card", "amount": "type:£49.99"},
            {"jurisdiction": "US", "purchase_type": "subscription", "problem": "unauthorized",
             "payment_method": "paypal", "amount": "type:$12"},
            {"jurisdiction": "EU", "purchase_type": "goods", "problem": "non_delivery", "seller_answer": "none",
             "amount": "type:80 EUR", "payment_method": "debit_card"}]
UPDATES_PER_INTAKE = 1 + len(PLAN) - 2     # /start and one answer per question (not the optional dates)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class SimUser:
    id: int
    plan: dict
    fake: object
    waiting_since: float | None = None     # an update of ours is queued and not answered yet
    confirmed: bool = False
    done: bool = False
    next_action: tuple | None = None        # ("start",) | ("press", message_id, data) | ("say", text)
    sent: int = 0


@dataclass
class PhaseResult:
    mode: str
    users: int
    finished: int
    updates: int
    replies: int
    seconds: float
    latencies: list[float] = field(repr=False, default_factory=list)
    offered_per_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        lat = self.latencies
        return {"mode": self.mode, "users": self.users, "finished": self.finished, "updates": self.updates,
                "replies": self.replies, "seconds": round(self.seconds, 3),
                "updates_per_s": self.replies / self.seconds if self.seconds else 0.0,
                "offered_per_s": self.offered_per_s,
                "p50_ms": percentile(lat, 50) * 1000, "p90_ms": percentile(lat, 90) * 1000,
                "p99_ms": percentile(lat, 99) * 1000, "max_ms": (max(lat) * 1000) if lat else float("nan"),
                "errors": self.errors[:5]}


class Driver:
    def __init__(self, emu: BenchEmulator, first_id: int, count: int, seed: int = 7):
        self.emu = emu
        self.users: dict[int, SimUser] = {}
        for i in range(count):
            uid = first_id + i
            plan = {**PLAN, **VARIANTS[i % len(VARIANTS)]}
            fake = emu.user(uid, first_name=f"U{uid}", language_code="zh-hans" if i % 2 else "en")
            self.users[uid] = SimUser(uid, plan, fake, next_action=("start",))
        self.rng = random.Random(seed)
        self.errors: list[str] = []

    def _act(self, user: SimUser) -> bool:
        action, user.next_action = user.next_action, None
        try:
            if action[0] == "start":
                user.fake.send_command("/start")
            elif action[0] == "press":
                user.fake.press({"chat": {"id": user.id}, "message_id": action[1]}, action[2])
            else:
                user.fake.send(action[1])
        except ValueError as exc:
            self.errors.append(f"user {user.id}: {exc}")
            user.done = True
            return False
        user.waiting_since = time.monotonic()
        user.sent += 1
        return True

    def _on_message(self, user: SimUser, t: float, message_id: int, node: str | None, data: list[str],
                    latencies: list[float]) -> bool:
        """A bot message in the user's chat; True if the user has something to send now."""
        if user.waiting_since is not None:
            latencies.append(t - user.waiting_since)
            user.waiting_since = None
        if user.done:
            return False
        if node is None:
            if user.confirmed:
                user.done = True
            return False
        step = user.plan.get(node)
        if step is None:
            self.errors.append(f"user {user.id}: no plan for question {node!r}")
            user.done = True
            return False
        if step.startswith("type:"):
            user.next_action = ("say", step[5:])
        else:
            match = [d for d in data if d.startswith(ANSWER_PREFIXES) and d.split(":", 3)[3] == step]
            if not match:
                self.errors.append(f"user {user.id}: no button {step!r} for {node!r}: {data}")
                user.done = True
                return False
            user.next_action = ("press", message_id, match[0])
        if node == "confirm":
            user.confirmed = True
        return True

    def run(self, rate: float | None, *, duration: float | None = None, stall: float = 30.0) -> PhaseResult:
        """All users through their intake. rate=None: closed loop (everyone at once, as fast as replies
        come); else Poisson arrivals at `rate` updates/s for at most `duration` s of offering."""
        latencies: list[float] = []
        ready: collections.deque[SimUser] = collections.deque(self.users.values())
        sent_q = self.emu.sent
        t0 = time.monotonic()
        next_send = t0
        offering_until = t0 + duration if duration else float("inf")
        last_progress = t0
        last_send = t0
        sends = replies = 0
        remaining = len(self.users)
        if rate is None:
            for user in list(ready):
                sends += self._act(user)
            ready.clear()
            last_send = time.monotonic()
        while remaining > 0:
            now = time.monotonic()
            offering = rate is not None and now < offering_until
            if offering and ready and now >= next_send:
                sends += self._act(ready.popleft())
                last_send = now
                next_send += self.rng.expovariate(rate)
                if next_send < now - 1.0:      # fell behind by a second: do not burst to catch up
                    next_send = now
                continue
            timeout = max(0.0, min(next_send - now, 0.05)) if (offering and ready) else 0.05
            try:
                chat_id, t, message_id, node, data, _ = sent_q.get(timeout=timeout)
            except Exception:  # queue.Empty
                if time.monotonic() - last_progress > stall:
                    self.errors.append(f"no reply for {stall:.0f} s; {remaining} users unfinished")
                    break
                if rate is not None and not offering and all(u.waiting_since is None for u in self.users.values()):
                    break        # offering is over and every update has its reply
                continue
            last_progress = time.monotonic()
            user = self.users.get(chat_id)
            if user is None:
                continue
            was_waiting = user.waiting_since is not None
            if self._on_message(user, t, message_id, node, data, latencies):
                if rate is None:
                    sends += self._act(user)
                    last_send = time.monotonic()
                else:
                    ready.append(user)
            if was_waiting:
                replies += 1
            if user.done:
                remaining -= 1
        t_end = max((t for t in [last_progress]), default=time.monotonic())
        finished = sum(1 for u in self.users.values() if u.done and u.confirmed)
        offered = sends / max(last_send - t0, 1e-9) if rate is not None else 0.0
        return PhaseResult("closed" if rate is None else f"paced {rate:g}/s", len(self.users), finished, sends,
                           replies, t_end - t0, latencies, offered, self.errors)


def _drain(emu: BenchEmulator) -> None:
    while True:
        try:
            emu.sent.get_nowait()
        except Exception:
            return


def db_size(bot: BotProcess) -> dict:
    """Bytes on disk (after a clean stop) and per case."""
    import sqlite3
    if bot.kind == "ours":
        files = [bot.db, Path(str(bot.db) + "-wal"), Path(str(bot.db) + "-shm")]
        size = sum(f.stat().st_size for f in files if f.exists())
        with sqlite3.connect(bot.db) as conn:
            cases = conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
            rows = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("users", "cases", "case_events", "dialog_state", "followups", "processed_updates")}
        return {"bytes": size, "cases": cases, "bytes_per_case": size / cases if cases else 0, "rows": rows}
    import pickle
    size = bot.pickle.stat().st_size if bot.pickle.exists() else 0
    cases = 0
    if size:
        try:
            with open(bot.pickle, "rb") as f:
                data = pickle.load(f)
        except (EOFError, pickle.UnpicklingError) as exc:
            # PicklePersistence rewrites its whole file on stop: a stop cut short leaves it half-written.
            return {"bytes": size, "cases": None, "bytes_per_case": None, "error": f"unreadable pickle: {exc}"}
        cases = sum(1 for d in data.get("user_data", {}).values() if "confirm" in d.get("answers", {}))
    return {"bytes": size, "cases": cases, "bytes_per_case": size / cases if cases else 0}


def run(kind: str, users: int, paced_rate: float, paced_seconds: float, *, no_limiter: bool = False,
        keep_db: Path | None = None, log=print) -> dict:
    """One bot process: a warm-up, the closed run with `users` users, then the paced run. `keep_db`:
    where to copy our bot's database afterwards (the follow-up benchmark clones a case from it)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-e2e-{kind}-"))
    label = f"{kind}{' (no limiter)' if no_limiter else ''}"
    try:
        with BenchEmulator() as emu:
            bot = BotProcess(kind, emu, workdir, no_limiter=no_limiter).start()
            try:
                warm = Driver(emu, 10, 4).run(None, stall=20)
                if warm.finished != 4:
                    raise RuntimeError(f"{label}: the warm-up intakes did not finish: {warm.errors}\n{bot.tail()}")
                _drain(emu)
                cpu_bot, cpu_emu = bot.cpu(), self_cpu_seconds()
                closed = Driver(emu, 100_000, users).run(None)
                cpu = {"bot_cpu_s": bot.cpu() - cpu_bot, "emulator_cpu_s": self_cpu_seconds() - cpu_emu}
                log(f"  {label}: closed {users} users: {closed.replies / closed.seconds:,.1f} updates/s, "
                    f"p99 {percentile(closed.latencies, 99) * 1000:,.0f} ms")
                emu.forget_messages(range(100_000, 100_000 + users))
                _drain(emu)
                # Enough users that some are always ready to send, even when replies come slowly.
                paced_users = max(20, int(paced_rate * paced_seconds / 4))
                paced = Driver(emu, 500_000, paced_users, seed=11).run(paced_rate, duration=paced_seconds)
                log(f"  {label}: offered {paced.offered_per_s:,.1f} updates/s: p50 "
                    f"{percentile(paced.latencies, 50) * 1000:,.1f} ms, p99 {percentile(paced.latencies, 99) * 1000:,.1f} ms")
                peak = bot.peak_rss_mb()
            finally:
                code = bot.stop()
            emu_errors = list(emu.errors)
            rejected = emu.stats.errors
        size = db_size(bot)
        if keep_db is not None and kind == "ours":
            shutil.copyfile(bot.db, keep_db)
        return {"bot": kind, "no_limiter": no_limiter, "closed": {**closed.summary(), **cpu},
                "paced": paced.summary(), "peak_rss_mb": peak, "storage": size, "exit_code": code,
                "emulator_errors": emu_errors[:5], "api_errors": {str(k): v for k, v in rejected.items()}}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
