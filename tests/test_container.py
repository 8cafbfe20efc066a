"""The container files, checked without a Docker engine: the Dockerfile passes hadolint (when its
binary is installed, as the `test` extra does on Linux x86-64) and builds the image the README
promises; compose.yaml runs the bot in webhook mode on PostgreSQL with settings the bot accepts
and no secret in the repository."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.cli import _parser
from bot.config import load_webhook

ROOT = Path(__file__).resolve().parents[1]
TOKEN_SHAPE = re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip()]


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = instructions(text)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (the test extra has it on Linux x86-64)")
def test_the_dockerfile_passes_hadolint():
    done = subprocess.run([hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_image_is_small_non_root_checks_its_health_and_runs_the_bot():
    text = (ROOT / "Dockerfile").read_text()
    stages = [args for op, args in instructions(text) if op == "FROM"]
    assert len(stages) >= 2, "multi-stage: the build stays in the builder"
    final = final_stage(text)
    assert re.fullmatch(r"python:[\d.]+-slim(-\w+)?", final[0][1]), final[0][1]
    ops = dict(final)
    user = ops["USER"].split(":")[0]
    assert user not in ("root", "0"), "runs as a non-root user"
    assert any(op == "COPY" and args.startswith("--from=") for op, args in final), "only the built environment"
    assert not re.search(r"\b(gcc|build-essential|make|git)\b", " ".join(a for op, a in final if op == "RUN"))
    assert json.loads(ops["VOLUME"]) == ["/data"] and "REFUND_ADVISOR_DB=/data/" in ops["ENV"]
    health = json.loads(ops["HEALTHCHECK"].split("CMD", 1)[1])
    command = json.loads(ops["CMD"])
    assert command == ["refund-advisor", "run"] and health == ["refund-advisor", "health"]
    for argv in (command, health):          # real subcommands of the installed entry point
        assert _parser().parse_args(argv[1:]).command == argv[1]


def test_the_build_context_leaves_secrets_and_databases_out():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "everything excluded first, then what the image needs re-included"
    assert not [line for line in lines if line.startswith("!") and (".env" in line or ".db" in line)]
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def example_env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / "compose.env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_compose_runs_the_bot_in_webhook_mode_on_a_healthy_postgres():
    services = compose()["services"]
    bot, db = services["bot"], services["db"]
    assert bot["command"] == ["refund-advisor", "webhook"] and bot["build"] == "."
    assert bot["environment"]["REFUND_ADVISOR_DB"].startswith("postgresql://")
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    assert db["image"] == "postgres:15"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume, mount = db["volumes"][0].split(":")
    assert mount == "/var/lib/postgresql/data" and volume in compose()["volumes"]


def test_compose_settings_are_ones_the_bot_accepts_and_no_secret_is_committed():
    bot = compose()["services"]["bot"]
    env = example_env()
    assert {"TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_URL", "TELEGRAM_WEBHOOK_SECRET", "POSTGRES_PASSWORD"} <= set(env)
    assert bot["env_file"] == ".env"
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "POSTGRES_PASSWORD"):
        assert name not in bot["environment"], f"{name} comes from .env, not from compose.yaml"
        assert env[name].startswith("replace-with-"), f"{name} in the example is a placeholder"
    for path in ("compose.yaml", "compose.env.example", "Dockerfile"):
        assert not TOKEN_SHAPE.search((ROOT / path).read_text()), f"a bot token in {path}"
    webhook = load_webhook({**env, **bot["environment"]})
    container_port = bot["ports"][0].rsplit(":", 1)[1]
    assert (webhook.listen, str(webhook.port)) == ("0.0.0.0", container_port)
    exposed = [args for op, args in final_stage((ROOT / "Dockerfile").read_text()) if op == "EXPOSE"]
    assert exposed == [container_port]
