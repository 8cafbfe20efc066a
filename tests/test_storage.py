"""Storage: migrations, one transaction per turn, per-user isolation, erasure; on SQLite and on
PostgreSQL (tests/conftest.py's db_url), except what is SQLite's own (WAL, a file that is not one)."""
import sqlite3
from datetime import datetime, timezone

import pytest

from bot.storage import MIGRATIONS, AlreadyDone, Storage, StorageError
from dbs import raw
from dialogs.model import TimelineEvent

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


async def test_migrates_a_new_database_and_reopens_it(db_url, backend):
    s = await Storage.open(db_url)
    assert await s.schema_version() == len(MIGRATIONS)
    await s.ensure_user(7, NOW)
    await s.close()
    s = await Storage.open(db_url)
    assert (await s.get_user(7)).id == 7
    assert await s.schema_version() == len(MIGRATIONS)
    await s.close()
    if backend == "sqlite":
        mode = sqlite3.connect(db_url).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


async def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="junk.db"):
        await Storage.open(path)


async def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        await Storage.open(tmp_path / "no" / "such" / "x.db")


async def test_a_newer_schema_is_refused(db_url, backend):
    if backend == "sqlite":
        sqlite3.connect(db_url).execute("PRAGMA user_version = 99").connection.commit()
    else:
        await (await Storage.open(db_url)).close()
        await raw(db_url, "UPDATE refund_advisor_schema SET version = 99")
    with pytest.raises(StorageError, match="newer"):
        await Storage.open(db_url)


async def test_a_turn_is_saved_whole_and_only_for_the_owner(storage):
    await storage.ensure_user(1, NOW)
    await storage.ensure_user(2, NOW)
    case = await storage.create_case(1, {"node": "jurisdiction", "slots": {}}, NOW)
    dialog = {"node": "purchase_type", "slots": {"jurisdiction": "CN"}}
    await storage.save_turn(1, case.id, dialog, [TimelineEvent("answer", {"slot": "jurisdiction"})], NOW,
                            update_id=100)
    assert (await storage.get_case(1, case.id)).slots == {"jurisdiction": "CN"}
    # the same update again changes nothing
    with pytest.raises(AlreadyDone):
        await storage.save_turn(1, case.id, {"node": "x", "slots": {}}, [], NOW, update_id=100)
    assert (await storage.get_case(1, case.id)).dialog["node"] == "purchase_type"
    # another user cannot see or write the case
    assert await storage.get_case(2, case.id) is None
    assert await storage.timeline(2, case.id) == []
    with pytest.raises(LookupError):
        await storage.save_turn(2, case.id, dialog, [], NOW)
    assert not await storage.set_active_case(2, case.id, NOW)
    kinds = [e.kind for e in await storage.timeline(1, case.id)]
    assert kinds == ["opened", "answer"]


async def test_delete_user_removes_every_row(storage):
    for uid in (1, 2):
        await storage.ensure_user(uid, NOW)
        case = await storage.create_case(uid, {"node": "jurisdiction", "slots": {}}, NOW)
        await storage.save_turn(uid, case.id, {"node": "x", "slots": {"a": 1}}, [TimelineEvent("said", {})], NOW,
                                update_id=uid * 10)
        await storage.add_evidence(uid, case.id, "photo", NOW, file_id="F", text="receipt")
    await storage.delete_user(1)
    assert await storage.count_rows(1) == 0
    assert await storage.count_rows(2) > 0
    assert await storage.list_cases(2)
