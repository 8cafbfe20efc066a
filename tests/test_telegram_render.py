"""The Telegram rendering rules, checked against the emulator's own HTML parser: parts within
4,096 UTF-16 units that each parse, callback data within 64 bytes, the catalogs in both languages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.telegram import callback_data as cb
from bot.telegram import render as tg
from dialogs import engine
from dialogs.engine import DialogState
from dialogs.graph import load
from messages import render

try:
    from tests.botapi.formatting import parse_text, utf16_len
except ImportError:  # pragma: no cover
    from botapi.formatting import parse_text, utf16_len

MESSAGES = Path(__file__).resolve().parents[1] / "messages"


def shown(part: str) -> str:
    text, _ = parse_text(part, "HTML")          # raises if Telegram would reject the HTML
    assert 0 < utf16_len(text) <= 4096
    return text


def test_a_short_text_is_one_part():
    assert tg.split_html("<b>Hi</b> &amp; bye") == ["<b>Hi</b> &amp; bye"]


def test_long_text_is_split_at_paragraphs_and_loses_nothing():
    paragraphs = [f"<b>Step {i}.</b> " + "Write to the seller &amp; keep a copy. " * 12 for i in range(40)]
    text = "\n\n".join(paragraphs)
    parts = tg.split_html(text)
    assert len(parts) > 1
    for part in parts:
        shown(part)
        assert part.startswith("<b>Step "), "each part starts at a paragraph"
    assert re.sub(r"\s+", "", "".join(shown(p) for p in parts)) == re.sub(r"\s+", "", parse_text(text, "HTML")[0])


def test_one_huge_paragraph_with_emoji_and_tags_is_split_into_balanced_parts():
    text = "<i>" + "退款 😀 &lt;b&gt; " * 1500 + "</i> <a href=\"https://example.com/?a=1&amp;b=2\">" + "x" * 5000 + "</a>"
    parts = tg.split_html(text)
    assert len(parts) >= 4
    total = "".join(shown(p) for p in parts)
    assert total.replace(" ", "") == parse_text(text, "HTML")[0].replace(" ", "")
    assert all(p.count("<i>") == p.count("</i>") for p in parts)


def test_split_never_cuts_an_entity():
    text = "&amp;" * 5000
    parts = tg.split_html(text)
    assert sum(len(shown(p)) for p in parts) == 5000


def test_callback_data_fits_for_every_question_option_and_state():
    graph = load()
    big_case = 10 ** 12
    for node in graph.nodes.values():
        state = DialogState(node=node.id, slots={"purchase_date": "2026-01-01"}, history=("jurisdiction",))
        for variant in (state, DialogState(node=node.id, paused=True),
                        DialogState(node=node.id, pending={"kind": "date_choice", "candidates": ["2026-01-02",
                                                                                                 "2026-02-01"]}),
                        DialogState(node=node.id, pending={"kind": "edit_menu"})):
            token = tg.question_token(variant.to_dict())
            reply = engine.ask(graph, variant)
            for index, button in enumerate(reply.buttons + (engine.ask(graph, state).buttons)):
                data = cb.Answer.for_button(big_case, token, button.id, index)
                assert len(data.encode()) <= 64
                claim = cb.unpack(data)
                assert isinstance(claim, cb.Answer)
                assert claim.case_id == big_case and claim.question == token
                assert claim.option in (button.id, f"#{index}")


def test_an_option_too_long_for_64_bytes_goes_by_its_index():
    data = cb.Answer.for_button(12, "purchase_type", "x" * 80, 3)
    assert data == "ask:12:purchase_type:#3"


@pytest.mark.parametrize("data", [None, "", "zzz", "q:1", "q:one:node:x", "c:", "c:x", "r:1", "x:", "l:",
                                  "q:1:n:" + "x" * 70, "ask:1", "case:", "end:1", "del:", "lang:",
                                  "nudge:1:x:waiting", "esc:1:police:en", "ask:1:n:" + "x" * 70,
                                  "timeline:", "timeline:x", "ics:", "s:x", "k:"])
def test_unknown_or_malformed_callback_data_claims_nothing(data):
    assert cb.unpack(data) is None


@pytest.mark.parametrize("claim", [
    cb.Answer(7, "purchase_type~p", "software"), cb.SwitchCase(3), cb.Language("zh"), cb.CaseOutcome(3, "partial"),
    cb.Erase("0123456789ab"), cb.Erase("no"), cb.NudgeAnswer(3, 41, "refused"), cb.RemindChoice(3, "7d"),
    cb.Escalate(3, "regulator", None, "c"), cb.Escalate(3, "police", "en", "n"), cb.Timeline(3), cb.Ics(3)])
def test_each_kind_of_callback_data_unpacks_to_what_was_packed(claim):
    assert cb.unpack(claim.pack()) == claim


@pytest.mark.parametrize("old, claim", [
    ("q:7:purchase_type:#2", cb.Answer(7, "purchase_type", "#2")), ("c:3", cb.SwitchCase(3)),
    ("l:en", cb.Language("en")), ("r:3:refunded", cb.CaseOutcome(3, "refunded")), ("x:no", cb.Erase("no")),
    ("n:3:41:waiting", cb.NudgeAnswer(3, 41, "waiting")), ("m:3:pause", cb.RemindChoice(3, "pause")),
    ("e:3:seller:_:n", cb.Escalate(3, "seller", None, "n")), ("e:3:seller:zh:c", cb.Escalate(3, "seller", "zh", "c")),
    ("s:3", cb.Timeline(3)), ("k:3", cb.Ics(3))])
def test_buttons_sent_before_the_kinds_had_names_are_still_understood(old, claim):
    assert cb.unpack(old) == claim


def test_callback_data_over_64_bytes_is_refused_when_packed():
    with pytest.raises(ValueError):
        cb.NudgeAnswer(3, 41, "x" * 60).pack()


def test_keyboard_puts_back_and_skip_on_the_last_row():
    markup = tg.keyboard([("yes", "Yes", "a"), ("no", "No", "b"), ("_skip", "Skip", "c"), ("_back", "« Back", "d")])
    rows = [[b.text for b in row] for row in markup.inline_keyboard]
    assert rows == [["Yes", "No"], ["Skip", "« Back"]]
    long = tg.keyboard([("a", "Money held on a platform (balance, winnings)", "a"), ("b", "Other", "b")])
    assert [len(r) for r in long.inline_keyboard] == [1, 1]


def _keys(locale: str, name: str) -> set[str]:
    return set(yaml.safe_load((MESSAGES / locale / name).read_text(encoding="utf-8")))


def test_telegram_catalog_has_the_same_keys_in_both_languages():
    assert _keys("en", "telegram.yaml") == _keys("zh", "telegram.yaml")
    assert _keys("en", "session.yaml") == _keys("zh", "session.yaml")


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_command_descriptions_fit_telegram(locale):
    from bot.telegram.routing import COMMANDS
    for name in COMMANDS:
        description = render(locale, f"cmd.{name}")
        assert 3 <= len(description) <= 256 and "<" not in description


def test_the_case_file_buttons_are_made_for_their_reply_options():
    assert cb.for_option("status:4", 0, None, "", {}) == "timeline:4"
    assert cb.for_option("calendar:4", 0, None, "", {}) == "ics:4"
    assert cb.for_option("calendar", 1, 4, "advice", {"outcome_case": 4}) == "ics:4"     # under the advice
