"""`refund-advisor migrate` and `copy-db` as an operator runs them: every row kept through a
SQLite -> TO -> SQLite round trip (TO being SQLite or PostgreSQL), ids continuing after the copy,
a non-empty target refused, and errors as one line without a traceback or the password."""
from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import dbs
from bot.storage import MIGRATIONS, TABLES, OutboxRow, PlanChange, Storage
from dialogs.followup import Nudge
from dialogs.model import TimelineEvent

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parent.parent


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def fill(path: str) -> None:
    """Some of everything: users (one blocked, one with a 2**40 Telegram id), cases in several
    states, a timeline, evidence, follow-ups sent, pending and failed, processed updates, a reply not yet delivered."""
    s = await Storage.open(path)
    try:
        for uid in (1, 2, 2**40 + 3):
            await s.ensure_user(uid, NOW, seen_locale="zh")
            case = await s.create_case(uid, {"node": "done", "slots": {"merchant": "小店 & <Co>"}}, NOW)
            await s.save_turn(uid, case.id, {"node": "done", "slots": {"amount": 12.5}},
                              [TimelineEvent("answer", {"text": "退款 'quoted'"})], NOW, status="advised",
                              category="defect", confidence=0.8125, update_id=uid,
                              change=PlanChange(plan={"status": "waiting", "n": 0},
                                                nudges=[Nudge(NOW, "regular"), Nudge(NOW + timedelta(days=2), "deadline")]))
            await s.add_evidence(uid, case.id, "photo", NOW, file_id=f"F{uid}", text=None)
        await s.set_user(2, NOW, time_zone="Asia/Shanghai")
        first, *_ = await s.queue.claim_followups(NOW, 3)
        await s.queue.followup_sent([first.id], 42, NOW)
        await s.queue.followup_failed([_[0].id], NOW, "Forbidden")
        await s.create_case(1, {"node": "jurisdiction", "slots": {}}, NOW)       # a second case, in intake
        await s.mark_update(99, None, NOW)
        await s.outbox.put(OutboxRow(1, 1, 100, {"outcome": {"replies": [{"text": "<b>owed</b> 退款"}]}}), NOW)  # a crash's
        await s.block_user(2**40 + 3, NOW)
    finally:
        await s.close()


async def dump(path: str) -> dict[str, list[tuple]]:
    return {table: await dbs.raw(path, f"SELECT * FROM {table} ORDER BY {key}") for table, key in TABLES}


async def test_a_round_trip_keeps_every_row(db_url, tmp_path):
    original, back = str(tmp_path / "original.db"), str(tmp_path / "back.db")
    await fill(original)
    code, out, err = await cli("copy-db", original, db_url)
    assert (code, err) == (0, ""), err
    assert re.search(r"users +3 rows", out) and re.search(r"case_events +\d+ rows", out)
    assert "34 rows, every table's count checked" in out
    code, out, err = await cli("copy-db", db_url, back)
    assert (code, err) == (0, ""), err
    before, after = await dump(original), await dump(back)
    assert all(before.values()) and before == after
    # New rows in the copy get ids after the copied ones (the sequences were advanced).
    s = await Storage.open(db_url)
    try:
        case = await s.create_case(1, {"node": "x", "slots": {}}, NOW)
        assert case.id == max(r[0] for r in before["cases"]) + 1
        assert (await s.get_user(2**40 + 3)).blocked
    finally:
        await s.close()


async def test_a_target_with_rows_is_refused_and_left_alone(db_url, tmp_path):
    source = str(tmp_path / "source.db")
    await fill(source)
    s = await Storage.open(db_url)
    try:
        await s.ensure_user(5, NOW)
    finally:
        await s.close()
    code, out, err = await cli("copy-db", source, db_url)
    assert code == 2 and "not empty (users 1)" in err and "Traceback" not in err
    assert await dbs.raw(db_url, "SELECT id FROM users") == [(5,)]


async def test_migrate_prints_the_schema_version(db_url):
    code, out, err = await cli("migrate", "--db", db_url)
    assert (code, err) == (0, "")
    assert out.strip().endswith(f"schema version {len(MIGRATIONS)}")
    assert "***" in out if dbs.is_postgres(db_url) and "@" in db_url else True


@pytest.mark.parametrize("url, says", [
    ("postgresql://someone:s3cret-pw@127.0.0.1:1/db", "Connect call failed"),
    ("postgresql://someone:s3cret-pw@127.0.0.1:notaport/db", "malformed URL"),
    ("mysql://someone:s3cret-pw@127.0.0.1/db", "not a database this program uses"),
])
async def test_a_database_that_cannot_be_used_is_one_line_without_the_password(url, says):
    for args in (("migrate", "--db", url), ("copy-db", url, "x.db")):
        code, out, err = await cli(*args)
        assert code == 2 and says in err, err
        assert len(err.strip().splitlines()) == 1 and "s3cret-pw" not in out + err


async def test_a_wrong_password_is_one_line_without_it():
    if dbs.pg_unavailable():
        pytest.skip(f"PostgreSQL not available: {dbs.pg_unavailable()}")
    url = dbs.PG_URL.replace(f":{dbs.urlsplit(dbs.PG_URL).password}@", ":wrong-pw@") \
        if dbs.urlsplit(dbs.PG_URL).password else dbs.PG_URL.replace("://", "://nobody:wrong-pw@", 1)
    code, out, err = await cli("migrate", "--db", url)
    assert code == 2 and "authentication failed" in err and "wrong-pw" not in out + err, err
