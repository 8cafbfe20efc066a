"""Follow-ups at scale: a store holding many pending nudges, some of them due, and the bot started on it.

Ours: a SQLite database cloned, with direct SQL, from a template case the real bot made (one intake
through the real bot and the emulator, so every row is what the product itself writes: schema,
plan state, nudge kinds). The baseline: its PicklePersistence file, written directly.

Each simulated user has one case and `per_user` pending follow-ups, the first of them due (in the
past hour) and the others days ahead; so one due nudge per chat, and a chat that gets two nudges got
a duplicate.

- start-up: from exec until the dispatcher is armed (its log line) and until the first nudge arrives;
- dispatch rate over a window, (a) with the emulator answering 429 over 30 sends a second, (b) with
  no limit anywhere (the bot's own 30/s limiter is lifted too: the raw rate);
- kill -9 during dispatch, restart, and account for every due nudge: sent exactly once, or still
  pending and never delivered; anything else is lost or duplicated.
"""
from __future__ import annotations

import collections
import pickle
import shutil
import sqlite3
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.emulator import BenchEmulator
from bench.procs import BotProcess

UTC = timezone.utc
FIRST_USER = 1_000_000           # cloned users' ids (= their private chats' ids)


class NoDispatcher(Exception):
    """The product under test does not schedule follow-ups (a version before the dispatcher)."""


# ---- building the stores -------------------------------------------------------------------------

def check_template(db_path: Path) -> Path:
    with sqlite3.connect(db_path) as db:
        if not db.execute("SELECT COUNT(*) FROM followups WHERE state = 'pending'").fetchone()[0]:
            raise NoDispatcher("the product made no pending follow-up after an intake (no dispatcher yet?)")
    return db_path


def make_template(workdir: Path, log=print) -> Path:
    """One real intake through our bot: a database whose single case has its follow-up plan and rows."""
    from bench.e2e import Driver
    with BenchEmulator() as emu:
        bot = BotProcess("ours", emu, workdir, name="template").start()
        try:
            result = Driver(emu, 42, 1).run(None, stall=30)
        finally:
            bot.stop()
    if result.finished != 1:
        raise RuntimeError(f"the template intake did not finish: {result.errors}\n{bot.tail()}")
    return check_template(bot.db)


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def build_ours(template: Path, path: Path, users: int, per_user: int, now: datetime) -> dict:
    """`users` users, each with one case like the template's and `per_user` pending follow-ups, the
    first due in the past hour, the others 1 to `per_user` - 1 days ahead. Direct SQL, one transaction."""
    shutil.copyfile(template, path)
    t0 = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    # The template: the first case with pending follow-ups (a database the real bot wrote).
    (user_id, case_id), = db.execute("SELECT user_id, case_id FROM followups WHERE state = 'pending' "
                                     "ORDER BY id LIMIT 1").fetchall()
    templates = db.execute("SELECT kind, data FROM followups WHERE case_id = ? AND state = 'pending' ORDER BY due_at",
                           (case_id,)).fetchall()
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                       "AND name NOT LIKE 'sqlite_%'")]
    db.execute("BEGIN")
    # The template user's rows, aside; then every table emptied (timeline, evidence and processed
    # updates are not cloned: the dispatcher does not read them).
    cloned = {"users": f"id = {user_id}", "cases": f"id = {case_id}", "dialog_state": f"user_id = {user_id}"}
    for table, where in cloned.items():
        db.execute(f"CREATE TEMP TABLE t_{table} AS SELECT * FROM main.{table} WHERE {where}")
    for table in tables:
        db.execute(f"DELETE FROM main.{table}")
    db.execute("CREATE TEMP TABLE n(i INTEGER PRIMARY KEY)")
    db.execute("WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?) "
               "INSERT INTO n SELECT i FROM s", (users,))

    def clone(table: str, subst: dict[str, str]) -> None:
        cols = _columns(db, table)
        select = ", ".join(subst.get(c, f"t.{c}") for c in cols)
        db.execute(f"INSERT INTO main.{table} ({', '.join(cols)}) SELECT {select} FROM n, t_{table} t ORDER BY n.i")

    clone("users", {"id": f"{FIRST_USER} + n.i"})
    clone("cases", {"id": "1 + n.i", "user_id": f"{FIRST_USER} + n.i"})
    clone("dialog_state", {"user_id": f"{FIRST_USER} + n.i", "case_id": "1 + n.i"})
    # One row per (user, slot): slot 0 due in the past hour, slot j > 0 due j days (and a bit) ahead.
    cols = _columns(db, "followups")
    now_s = now.astimezone(UTC)
    db.execute("CREATE TEMP TABLE tpl(slot INTEGER PRIMARY KEY, kind TEXT, data TEXT)")
    db.executemany("INSERT INTO tpl VALUES (?, ?, ?)",
                   [(j, *templates[j % len(templates)]) for j in range(per_user)])
    epoch = now_s.timestamp()
    due = (f"strftime('%Y-%m-%dT%H:%M:%f', {epoch} + CASE WHEN tpl.slot = 0 THEN -1 - (n.i % 3600) "
           f"ELSE tpl.slot * 86400 + (n.i % 86400) END, 'unixepoch') || '+00:00'")
    values = {"id": "NULL", "case_id": "1 + n.i", "user_id": f"{FIRST_USER} + n.i", "due_at": due,
              "kind": "tpl.kind", "state": "'pending'", "attempts": "0", "data": "tpl.data",
              "updated_at": f"'{now_s.isoformat(timespec='seconds')}'"}
    select = ", ".join(values.get(c, "NULL") for c in cols)
    db.execute(f"INSERT INTO main.followups ({', '.join(cols)}) SELECT {select} FROM n, tpl ORDER BY n.i, tpl.slot")
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {"pending": db.execute("SELECT COUNT(*) FROM followups WHERE state = 'pending'").fetchone()[0],
              "due": db.execute("SELECT COUNT(*) FROM followups WHERE state = 'pending' AND due_at <= ?",
                                (now_s.isoformat(timespec="milliseconds"),)).fetchone()[0]}
    db.close()
    return {**counts, "build_s": time.perf_counter() - t0, "bytes": path.stat().st_size}


def build_baseline(path: Path, users: int, per_user: int, now: datetime) -> dict:
    """The baseline's PicklePersistence file: bot_data["followups"] = {id: [chat, due (epoch), state]}."""
    t0 = time.perf_counter()
    epoch = now.timestamp()
    followups = {}
    fid = 0
    for i in range(users):
        chat = FIRST_USER + i
        for slot in range(per_user):
            fid += 1
            due = epoch - 1 - (i % 3600) if slot == 0 else epoch + slot * 86400 + (i % 86400)
            followups[fid] = [chat, due, "pending"]
    data = {"user_data": {}, "chat_data": {}, "bot_data": {"followups": followups, "next_fid": fid},
            "callback_data": None, "conversations": {"intake": {}}}
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    return {"pending": fid, "due": users, "build_s": time.perf_counter() - t0, "bytes": path.stat().st_size}


def nudge_states(kind: str, store: Path) -> dict[int, str]:
    """chat id -> state of its due (slot 0) follow-up, read from the store after the bot stopped."""
    if kind == "ours":
        with sqlite3.connect(store) as db:
            rows = db.execute("SELECT user_id, state FROM followups f WHERE id = "
                              "(SELECT MIN(id) FROM followups g WHERE g.case_id = f.case_id)").fetchall()
        return dict(rows)
    with open(store, "rb") as f:
        followups = pickle.load(f)["bot_data"]["followups"]
    # slot 0 of each chat is its lowest id
    states: dict[int, str] = {}
    for fid in sorted(followups):
        chat, _, state = followups[fid]
        states.setdefault(chat, state)
    return states


# ---- measuring -------------------------------------------------------------------------------------

class Nudges:
    """Every message the bot sends, by chat, with the times of arrival."""

    def __init__(self, emu: BenchEmulator):
        self.emu = emu
        self.per_chat: collections.Counter[int] = collections.Counter()
        self.times: list[float] = []

    def pump(self, timeout: float = 0.05) -> int:
        got = 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                chat_id, t, *_ = self.emu.sent.get(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                return got
            self.per_chat[chat_id] += 1
            self.times.append(t)
            got += 1

    def wait_first(self, bot: BotProcess, timeout: float, armed_marker: str) -> tuple[float | None, float | None]:
        """(seconds from spawn to the armed log line, to the first nudge); None if not seen."""
        armed = first = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and first is None:
            if self.pump(0.02):
                first = self.times[0] - bot.started_at
            if armed is None and armed_marker in _read(bot.log):
                armed = time.monotonic() - bot.started_at
            if bot.process.poll() is not None:
                raise RuntimeError(f"the {bot.kind} bot exited with {bot.process.returncode}:\n{bot.tail()}")
        if armed is None and armed_marker in _read(bot.log):
            armed = time.monotonic() - bot.started_at
        return armed, first

    def run_for(self, seconds: float, bot: BotProcess | None = None, peak: list | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump(min(0.2, max(0.0, end - time.monotonic())))
            if bot is not None and peak is not None:
                peak.append(bot.peak_rss_mb())

    def rate(self, start: float, seconds: float) -> float:
        return sum(1 for t in self.times if start <= t < start + seconds) / seconds


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


ARMED = {"ours": "follow-up dispatcher started", "baseline": "armed "}


def dispatch(kind: str, source: Path, workdir: Path, *, limit: int | None, no_limiter: bool, window: float,
             startup_timeout: float, stop_grace: float = 30.0, log=print) -> dict:
    """Start the bot on a copy of `source`; start-up, peak RSS, and the dispatch rate over `window` s."""
    name = f"{kind}-{'limited' if limit else 'raw'}"
    store = workdir / (f"{name}.db" if kind == "ours" else f"{name}.pickle")
    shutil.copyfile(source, store)
    with BenchEmulator(strict_chats=False) as emu:
        if limit:
            emu.enforce_rate_limit(per_second=limit)
        bot = BotProcess(kind, emu, workdir, no_limiter=no_limiter, name=name)
        nudges = Nudges(emu)
        bot.spawn()
        try:
            armed, first = nudges.wait_first(bot, startup_timeout, ARMED[kind])
            rss_at_first = bot.peak_rss_mb()
            if first is None:
                log(f"  {kind}: no nudge within {startup_timeout:.0f} s of start-up")
                return {"bot": kind, "limit": limit, "no_limiter": no_limiter, "armed_s": armed,
                        "first_nudge_s": None, "peak_rss_mb": bot.peak_rss_mb(), "rate": 0.0,
                        "too_many_requests": emu.stats.too_many_requests}
            nudges.run_for(window)
            start = nudges.times[0]
            rate = nudges.rate(start, window)
            peak = bot.peak_rss_mb()
            stats = emu.stats
        finally:
            t_stop = time.monotonic()
            code = bot.stop(timeout=stop_grace)
            stop_s = time.monotonic() - t_stop
    dupes = sum(n - 1 for n in nudges.per_chat.values() if n > 1)
    log(f"  {kind}: {'limit ' + str(limit) + '/s' if limit else 'no limit'}: armed "
        f"{armed if armed is None else round(armed, 2)} s, first nudge {first:.2f} s, {rate:.1f} nudges/s, "
        f"{stats.too_many_requests} x 429, peak RSS {peak:.0f} MB")
    return {"bot": kind, "limit": limit, "no_limiter": no_limiter, "armed_s": armed, "first_nudge_s": first,
            "rss_at_first_nudge_mb": rss_at_first, "peak_rss_mb": peak, "window_s": window, "rate": rate,
            "sent": len(nudges.times), "too_many_requests": stats.too_many_requests,
            "duplicates_in_run": dupes, "exit_code": code, "stop_s": stop_s}


def kill_restart(kind: str, source: Path, workdir: Path, *, before_kill: float, after_restart: float,
                 startup_timeout: float, log=print) -> dict:
    """Dispatch for `before_kill` s, kill -9, restart, dispatch `after_restart` s, stop (SIGTERM, and
    wait: the baseline sends its whole backlog first); then every due nudge is checked against
    what the chats received. With no rate limit anywhere, for the most nudges in flight."""
    store = workdir / (f"{kind}-kill.db" if kind == "ours" else f"{kind}-kill.pickle")
    shutil.copyfile(source, store)
    with BenchEmulator(strict_chats=False) as emu:
        nudges = Nudges(emu)
        bot = BotProcess(kind, emu, workdir, no_limiter=True, name=f"{kind}-kill")
        bot.spawn()
        try:
            _, first = nudges.wait_first(bot, startup_timeout, ARMED[kind])
            if first is None:
                raise RuntimeError(f"{kind}: no nudge within {startup_timeout:.0f} s\n{bot.tail()}")
            nudges.run_for(before_kill)
        finally:
            bot.kill9()
        sent_before = len(nudges.times)
        nudges.pump(0.5)
        bot = BotProcess(kind, emu, workdir, no_limiter=True, name=f"{kind}-kill")
        bot.spawn()
        try:
            nudges.wait_first(bot, startup_timeout, ARMED[kind])
            nudges.run_for(after_restart)
        finally:
            code = bot.stop(timeout=300)
        nudges.pump(0.5)
    states = nudge_states(kind, store)
    lost = duplicated = delivered = pending = 0
    other: collections.Counter[str] = collections.Counter()
    for chat, state in states.items():
        got = nudges.per_chat.get(chat, 0)
        delivered += got > 0
        if state == "sent":
            lost += got == 0
            duplicated += max(0, got - 1)
        elif state == "pending":
            pending += 1
            duplicated += got       # delivered already, and will be sent again
        else:
            other[state] += 1
            if got == 0:
                lost += 1
            duplicated += max(0, got - 1)
    stray = sum(n for chat, n in nudges.per_chat.items() if chat not in states)
    log(f"  {kind}: kill -9 after {sent_before} nudges, restart: {lost} lost, {duplicated} duplicated "
        f"({delivered} chats reached)")
    return {"bot": kind, "sent_before_kill": sent_before, "sent_total": len(nudges.times), "chats_reached": delivered,
            "lost": lost, "duplicated": duplicated, "still_pending": pending, "other_states": dict(other),
            "stray_messages": stray, "exit_code": code}


def run(kind: str, users: int, per_user: int, *, window: float, kill_after: float, startup_timeout: float,
        template: Path | None = None, reduced_users: int | None = None, raw: bool = True, stop_grace: float = 30.0,
        log=print) -> dict:
    """Start-up, RSS and the rate under the 30/s limit on the full store; the raw rate and the kill -9
    test on the same store, or, with `reduced_users`, on a smaller one (the baseline: at a million
    jobs each of its start-ups takes minutes)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-followups-{kind}-"))
    try:
        def build(n: int, name: str) -> tuple[Path, dict]:
            now = datetime.now(UTC)
            if kind == "ours":
                source = workdir / f"{name}.db"
                built = build_ours(template, source, n, per_user, now)
            else:
                source = workdir / f"{name}.pickle"
                built = build_baseline(source, n, per_user, now)
            log(f"  {kind}: {built['pending']:,} pending follow-ups ({built['due']:,} due) built in "
                f"{built['build_s']:.1f} s, {built['bytes'] / 1e6:.0f} MB")
            return source, built

        def attempt(what: str, fn, *args, **kwargs) -> dict:
            """One measure; a failure is reported as its result (the other measures still run)."""
            try:
                return fn(*args, **kwargs)
            except Exception as exc:      # noqa: BLE001 - a benchmark reports, it does not stop
                log(f"  {kind}: {what} failed: {str(exc).splitlines()[0]}")
                return {"bot": kind, "error": str(exc)}

        source, built = build(users, "source")
        limited = attempt("dispatch under the limit", dispatch, kind, source, workdir, limit=30, no_limiter=False,
                          window=window, startup_timeout=startup_timeout, stop_grace=stop_grace, log=log)
        small = None
        if reduced_users and reduced_users < users:
            source.unlink()
            source, small = build(reduced_users, "reduced")
        unlimited = attempt("raw dispatch", dispatch, kind, source, workdir, limit=None, no_limiter=True,
                            window=window, startup_timeout=startup_timeout, stop_grace=stop_grace,
                            log=log) if raw else None
        killed = attempt("kill -9 test", kill_restart, kind, source, workdir, before_kill=kill_after,
                         after_restart=kill_after, startup_timeout=startup_timeout, log=log)
        return {"bot": kind, "store": built, "reduced_store": small, "limited": limited, "raw": unlimited, "kill": killed}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
