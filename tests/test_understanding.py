"""Reading a story as a person would (issue 11), in the engine: the questions that resolve a doubt,
the cautious prefill from a story, and "That's not my situation" under the advice."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import pytest

from dialogs import engine
from dialogs.classifier import classify
from dialogs.engine import CATEGORY_PREFIX, NOT_MY_SITUATION, DialogState, Press, Text, step
from dialogs.graph import load
from dialogs.model import CATEGORIES

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=8)))
GRAPH = load()

ROOT = Path(__file__).resolve().parent.parent
ANSWERS = {"jurisdiction": "CN", "purchase_type": "goods", "payment_method": "alipay",
           "amount": {"value": "300.00", "currency": "CNY"}, "purchase_date": "2026-11-01",
           "contacted": False}      # what went wrong: left to the story


def hesitating_story(question: str, answers: tuple[tuple[str, object], ...] | None = None) -> str:
    """The shortest story of the corpus's held-out split on which the classifier, given `answers`
    (the usual ones by default), hesitates between the pair that `question` tells apart (real
    words, not ours)."""
    if answers is None:
        answers = tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in ANSWERS.items()))
    return _hesitating(question, answers)


@lru_cache(maxsize=None)
def _hesitating(question: str, answers: tuple[tuple[str, object], ...]) -> str:
    slots = {k: (dict(v) if isinstance(v, tuple) else v) for k, v in answers}
    from dialogs.corpus import read_records
    records, _ = read_records((ROOT / "corpus" / "narratives.jsonl").read_text("utf-8").splitlines())
    for record in sorted((r for r in records if r.held_out), key=lambda r: (len(r.text), r.id)):
        if GRAPH.clarify.question_for(classify(slots, record.text).ranked()) == question:
            return record.text
    pytest.fail(f"no held-out story makes the classifier hesitate where {question!r} would help")


def keys(result):
    return [r.key for r in result.replies]


def at_story(**slots):
    return DialogState(node="story", slots={**ANSWERS, **slots}, history=("jurisdiction",))


# --------------------------------------------------------------------------- clarifying questions

@pytest.mark.parametrize("pair, question", [
    (("withdrawal_scam", "maintenance_stalling"), "holder"),
    (("defect", "mismatch"), "fault_kind"),
    (("non_delivery", "maintenance_stalling"), "delivery_or_refund"),
])
def test_each_close_pair_has_its_question(pair, question):
    first, second = pair
    rest = [c for c in CATEGORIES if c not in pair]
    close = [(first, 0.46), (second, 0.40)] + [(c, 0.14 / len(rest)) for c in rest]
    assert GRAPH.clarify.question_for(close) == question
    assert GRAPH.clarify.question_for([(second, 0.46), (first, 0.40)] + close[2:]) == question
    sure = [(first, 0.90), (second, 0.05)] + [(c, 0.05 / len(rest)) for c in rest]
    assert GRAPH.clarify.question_for(sure) is None
    # Unsure of everything, not of this pair: the story says too little for this question.
    vague = [(first, 0.20), (second, 0.18)] + [(c, 0.62 / len(rest)) for c in rest]
    assert GRAPH.clarify.question_for(vague) is None


def test_a_pair_without_a_question_asks_nothing():
    close = [("changed_mind", 0.45), ("other", 0.44)] + [(c, 0.11 / 6) for c in CATEGORIES[:6]]
    assert GRAPH.clarify.question_for(close) is None


@pytest.mark.parametrize("question, answers", [
    ("holder", {"known_firm": "maintenance_stalling", "introduced": "withdrawal_scam"}),
    ("fault_kind", {"broken": "defect", "different": "mismatch"}),
    ("delivery_or_refund", {"never_received": "non_delivery", "refund_owed": "maintenance_stalling"}),
])
def test_an_unsure_story_gets_the_question_and_the_answer_decides(question, answers):
    story = hesitating_story(question)
    asked = step(at_story(), Text(story), NOW)
    assert asked.state.node == question, classify(ANSWERS, story).ranked()[:3]
    assert keys(asked)[-1] == f"q.{question}" and not any(k.startswith("err.") for k in keys(asked))
    for option, category in answers.items():
        summary = step(asked.state, Press(option), NOW)
        assert summary.state.node == "confirm"
        done = step(summary.state, Press(engine.CONFIRM), NOW)
        assert done.replies[0].context["classification"]["category"] == category, option


def test_a_clarifying_question_can_be_skipped_and_is_not_asked_again():
    asked = step(at_story(), Text(hesitating_story("holder")), NOW)
    skipped = step(asked.state, Press(engine.SKIP), NOW)
    assert skipped.state.node == "confirm"
    again = step(skipped.state, Text("还有，银行客服说要等通知"), NOW)      # more story at the summary
    assert again.state.node == "confirm"


def test_at_most_two_clarifying_questions_in_an_intake():
    state = at_story(holder="not_sure", fault_kind="broken")
    result = step(state, Text(hesitating_story("delivery_or_refund")), NOW)
    assert result.state.node == "confirm", "two were asked already"


def test_a_pressed_answer_outweighs_a_doubtful_story():
    # The user said what went wrong: a story that leaves the classifier unsure between two
    # situations does not bring a question when the answer settles it.
    result = step(at_story(problem="defect"), Text(hesitating_story("fault_kind")), NOW)
    assert result.state.node == "confirm"


# --------------------------------------------------------------------------- the cautious prefill

def test_a_sure_story_answers_what_went_wrong():
    result = step(engine.start(), Text("我在一个投资平台提现不了，客服说要先交20%的解冻金才能出款"), NOW)
    assert result.state.slots["problem"] == "withdrawal_blocked"
    assert "problem" in result.state.filled
    assert keys(result)[0] == "noted"


def test_an_unsure_story_leaves_the_question_with_the_likely_answer_first():
    story = "I bought a Photoshop licence from Adobe in the US for $49.99 with PayPal 3 days ago and it crashes."
    result = step(engine.start(), Text(story), NOW)
    assert "problem" not in result.state.slots
    assert keys(result) == ["noted", "q.problem"], "what the story gave is noted; no 'did not understand'"
    ranked = [c for c, _ in classify(result.state.slots, story).ranked()]
    shown = [GRAPH["problem"].option(b.id).category for b in result.replies[-1].buttons if GRAPH["problem"].option(b.id)]
    assert shown[0] == ranked[0] == "defect"
    # The numbers typed follow the order shown.
    typed = step(result.state, Text("1"), NOW)
    assert typed.state.slots["problem"] == "defect"


def test_a_story_that_answers_nothing_else_is_not_a_wrong_answer():
    # At the first question, a story that gives other answers is noted, and the question asked
    # again without "I did not understand that".
    result = step(engine.start(), Text("我在淘宝买了一双鞋，用支付宝付了299元，到现在还没收到"), NOW)
    assert result.state.node == "jurisdiction" or "jurisdiction" in result.state.slots
    assert not any(k.startswith("err.") for k in keys(result))


# --------------------------------------------------------------------------- that's not my situation

def advised(story: str = "我在淘宝买的耳机，收到后左耳没声音，商家不给退。"):
    state = at_story(problem="defect")
    summary = step(state, Text(story), NOW)
    done = step(summary.state, Press(engine.CONFIRM), NOW)
    assert done.state.node == "done"
    return done


def test_the_advice_offers_a_way_out():
    done = advised()
    assert [b.id for b in done.replies[-1].buttons] == [NOT_MY_SITUATION]


@pytest.mark.parametrize("ask", [Press(NOT_MY_SITUATION), Text("这不是我的情况"), Text("That's not my situation")])
def test_not_my_situation_shows_the_categories(ask):
    menu = step(advised().state, ask, NOW)
    assert keys(menu) == ["q.category_menu"]
    ids = [b.id for b in menu.replies[0].buttons]
    assert ids[:-1] == [CATEGORY_PREFIX + c for c in CATEGORIES]


@pytest.mark.parametrize("choose", [Press(CATEGORY_PREFIX + "mismatch"), Text("4")])
def test_choosing_a_situation_redoes_the_advice_and_is_recorded(choose):
    menu = step(advised().state, Press(NOT_MY_SITUATION), NOW)
    chosen = step(menu.state, choose, NOW)
    assert keys(chosen) == ["category_changed", "advice_result"]
    assert chosen.replies[0].context == {"before": "defect", "after": "mismatch"}
    result = chosen.replies[1].context
    assert result["classification"]["category"] == "mismatch" and result["classification"]["chosen"]
    assert result["classification"]["read_as"] == "defect"
    assert [(e.kind, e.data) for e in chosen.events] == [("category_changed", {"before": "defect", "after": "mismatch"})]
    assert [(e.kind, e.data["category"], e.data.get("changed")) for e in chosen.effects] == \
        [("advised", "mismatch", True)]
    # It stays chosen: the advice shown again later (/status) is for the chosen situation.
    assert engine.verdict_of(GRAPH, chosen.state, NOW.date())["classification"]["category"] == "mismatch"
    # And notes added afterwards do not undo it.
    noted = step(chosen.state, Text("卖家又说可以换货"), NOW)
    assert engine.verdict_of(GRAPH, noted.state, NOW.date())["classification"]["category"] == "mismatch"


def test_keeping_the_situation_changes_nothing():
    before = advised().state
    menu = step(before, Press(NOT_MY_SITUATION), NOW)
    kept = step(menu.state, Press(engine.CANCEL_EDIT), NOW)
    assert keys(kept) == ["category_kept"]
    assert kept.state.slots == before.slots and not kept.effects


def test_a_wrong_choice_is_reasked():
    menu = step(advised().state, Press(NOT_MY_SITUATION), NOW)
    wrong = step(menu.state, Text("99"), NOW)
    assert keys(wrong)[-1] == "q.category_menu"
    assert not wrong.effects


# --------------------------------------------------------------------------- Traditional Chinese

def test_a_story_in_traditional_characters_is_read_and_quoted_as_written():
    story = "我在台灣網購了一支手機，用銀行轉帳付了新台幣5萬元，到現在還沒收到，賣家已讀不回"
    result = step(engine.start(), Text(story), NOW)
    slots = result.state.slots
    assert (slots["jurisdiction"], slots["payment_method"]) == ("TW", "bank_transfer")
    assert slots["amount"] == {"value": "50000.00", "currency": "TWD"}
    reading = classify(slots, story)
    assert reading.category == "non_delivery"
    quotes = [s.phrase for s in reading.signals if s.source == "text"]
    assert quotes and all(q in story for q in quotes), "quotes are the user's own characters"
