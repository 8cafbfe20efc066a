"""`db_url`: each storage and dispatcher test runs on SQLite and on PostgreSQL (tests/dbs.py);
`storage`: the Storage opened on it."""
from __future__ import annotations

import pytest

import dbs
from bot.storage import Storage

_skipped_pg: list[str] = []


def pytest_report_header(config):
    reason = dbs.pg_unavailable()
    return f"PostgreSQL tests: {'SKIPPED, ' + reason if reason else 'on ' + dbs.redact(dbs.PG_URL)}"


@pytest.fixture(params=dbs.BACKENDS)
def backend(request) -> str:
    if request.param == "postgresql":
        reason = dbs.pg_unavailable()
        if reason:
            _skipped_pg.append(request.node.nodeid)
            pytest.skip(f"PostgreSQL not available: {reason}")
    return request.param


@pytest.fixture
async def db_url(backend, tmp_path):
    """A fresh, empty database of the backend, as REFUND_ADVISOR_DB would name it."""
    if backend == "sqlite":
        yield str(tmp_path / "test.db")
        return
    url, drop = await dbs.new_pg_database()
    yield url
    await drop()


def pytest_terminal_summary(terminalreporter):
    if _skipped_pg:
        terminalreporter.write_sep("!", f"{len(_skipped_pg)} PostgreSQL test(s) SKIPPED: {dbs.pg_unavailable()}",
                                   red=True, bold=True)


@pytest.fixture
async def storage(db_url):
    """The Storage on a fresh database of the backend, closed after the test."""
    s = await Storage.open(db_url)
    yield s
    await s.close()
