from datetime import timedelta

import pytest

from bot.config import DEFAULT_API_BASE_URL, ConfigError, load, parse_delays, parse_quiet_hours


def test_defaults():
    c = load({})
    assert c.token is None
    assert c.api_base_url == DEFAULT_API_BASE_URL
    assert c.db_path == "refund-advisor.db"
    assert c.followup == (timedelta(days=2), timedelta(days=3), timedelta(days=5), timedelta(days=7))
    assert c.quiet_hours == (22, 8)


def test_flags_override_environment():
    c = load({"REFUND_ADVISOR_DB": "env.db", "TELEGRAM_BOT_TOKEN": " 1:abc "}, REFUND_ADVISOR_DB="flag.db")
    assert c.db_path == "flag.db"
    assert c.token == "1:abc"


@pytest.mark.parametrize("text, expected", [
    ("30s", (timedelta(seconds=30),)),
    ("1m, 2h", (timedelta(minutes=1), timedelta(hours=2))),
    ("1.5d", (timedelta(days=1.5),)),
])
def test_delays(text, expected):
    assert parse_delays(text) == expected


@pytest.mark.parametrize("text", ["", "2x", "0s", "-1d", "2d,,3d", "soon"])
def test_bad_delays_are_refused_with_the_setting_named(text):
    with pytest.raises(ConfigError, match="REFUND_ADVISOR_FOLLOWUP"):
        parse_delays(text)


def test_quiet_hours():
    assert parse_quiet_hours("off") is None
    assert parse_quiet_hours("23-7") == (23, 7)
    for bad in ("24-8", "8", "8-8", "night"):
        with pytest.raises(ConfigError, match="REFUND_ADVISOR_QUIET_HOURS"):
            parse_quiet_hours(bad)


def test_bad_base_url():
    with pytest.raises(ConfigError, match="TELEGRAM_API_BASE_URL"):
        load({"TELEGRAM_API_BASE_URL": "api.telegram.org"})


def test_the_database_is_a_file_or_a_postgresql_url():
    assert load({"REFUND_ADVISOR_DB": " data/bot.db "}).db_path == "data/bot.db"
    url = "postgresql://bot:pw@db.internal:5432/refunds"
    assert load({"REFUND_ADVISOR_DB": url}).db_path == url
    assert load({"REFUND_ADVISOR_DB": "PostgreSQL://bot@db/refunds"}).db_path == "postgresql://bot@db/refunds"
    for bad in ("mysql://bot:pw@db/refunds", "   "):
        with pytest.raises(ConfigError, match="REFUND_ADVISOR_DB") as refused:
            load({"REFUND_ADVISOR_DB": bad})
        assert "pw" not in str(refused.value).replace("password", "")


def test_webhook_defaults_take_the_path_from_the_url_and_flags_win():
    from bot.config import load_webhook
    env = {"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/tg/hook", "TELEGRAM_WEBHOOK_SECRET": "abc_DEF-1"}
    w = load_webhook(env)
    assert (w.url, w.secret, w.listen, w.port, w.path) == (
        "https://bot.example.com/tg/hook", "abc_DEF-1", "127.0.0.1", 8080, "/tg/hook")
    assert load_webhook({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com", "TELEGRAM_WEBHOOK_SECRET": "x"}).path == "/"
    w = load_webhook({**env, "TELEGRAM_WEBHOOK_PORT": "9000"}, TELEGRAM_WEBHOOK_PORT="8443",
                     TELEGRAM_WEBHOOK_LISTEN="0.0.0.0", TELEGRAM_WEBHOOK_PATH="/in")
    assert (w.listen, w.port, w.path) == ("0.0.0.0", 8443, "/in")


def test_rate_limit_is_shared_out_between_instances():
    assert load({}).rate_limit == 30
    assert load({"TELEGRAM_RATE_LIMIT": " 15 "}).rate_limit == 15
    for bad in ("0", "1", "fast", "2.5", "1001"):
        with pytest.raises(ConfigError, match="TELEGRAM_RATE_LIMIT"):
            load({"TELEGRAM_RATE_LIMIT": bad})
