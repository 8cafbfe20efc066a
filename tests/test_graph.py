"""The intake graph is data: it must load, be sound, and print as Mermaid."""
import subprocess
import sys

import pytest
import yaml

from dialogs.graph import GraphError, _DEFAULT_PATH, from_data, load, mermaid, problems
from dialogs.model import JURISDICTIONS, PAYMENT_METHODS, PROBLEMS, PURCHASE_TYPES, SELLER_ANSWERS
from messages import keys


def raw():
    return yaml.safe_load(_DEFAULT_PATH.read_text(encoding="utf-8"))


def test_the_shipped_graph_is_sound():
    assert problems(load()) == []


def test_every_choice_offers_the_documented_values():
    g = load()
    assert [o.id for o in g["jurisdiction"].options] == list(JURISDICTIONS)
    assert [o.id for o in g["purchase_type"].options] == list(PURCHASE_TYPES)
    assert [o.id for o in g["payment_method"].options] == list(PAYMENT_METHODS)
    assert [o.id for o in g["problem"].options] == list(PROBLEMS)
    assert [o.id for o in g["seller_answer"].options] == list(SELLER_ANSWERS)


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_every_question_option_and_field_has_text(locale):
    have = keys(locale)
    g = load()
    for node in g.nodes.values():
        if node.slot:
            assert f"q.{node.id}" in have
            assert f"field.{node.slot}" in have
        for option in node.options:
            assert f"opt.{node.slot}.{option.id}" in have


def test_a_missing_target_is_reported():
    data = raw()
    data["nodes"]["story"]["next"] = "nowhere"
    with pytest.raises(GraphError, match="missing node 'nowhere'"):
        from_data(data)


def test_an_unreachable_node_is_reported():
    data = raw()
    data["nodes"]["orphan"] = {"type": "text", "slot": "orphan", "next": "done"}
    with pytest.raises(GraphError, match="'orphan' is unreachable"):
        from_data(data)


def test_a_dead_end_is_reported():
    data = raw()
    del data["nodes"]["story"]["next"]
    with pytest.raises(GraphError, match="'story' is a dead end"):
        from_data(data)


def test_conditional_edges_need_a_fallback():
    data = raw()
    data["nodes"]["contacted"]["next"] = [{"if": {"contacted": True}, "to": "contact_date"}]
    with pytest.raises(GraphError, match="no fallback"):
        from_data(data)


def test_mermaid_shows_nodes_and_conditions():
    text = mermaid(load())
    assert text.startswith("flowchart TD")
    assert 'contacted -->|"contacted = true"| contact_date' in text
    assert "contacted --> story" in text
    assert "confirm --> done" in text


def test_graph_command_prints_mermaid():
    out = subprocess.run([sys.executable, "-m", "bot.cli", "graph"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("flowchart TD")
    assert "purchase_type --> merchant" in out.stdout


def test_classify_command_reads_plain_and_json_lines():
    import json
    stdin = "我在网赌平台赢了5万，提现说系统维护，要交解冻金\n\n" \
            '{"text": "I was charged twice for my subscription after cancelling"}\n'
    out = subprocess.run([sys.executable, "-m", "bot.cli", "classify"], input=stdin, capture_output=True,
                         text=True, encoding="utf-8", check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["category"] for r in rows] == ["withdrawal_scam", "unauthorized_or_subscription"]
    assert any(s.get("phrase") == "解冻金" for s in rows[0]["signals"])
    assert all(0 < r["confidence"] <= 1 for r in rows)
