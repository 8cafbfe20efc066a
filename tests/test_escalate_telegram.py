"""/escalate end to end on Telegram (the real bot against the Bot API emulator): whom the
complaint is for (only recipients that fit the case, the recommended one first), the letter's
language, then the draft as a message and as .txt and .md documents, recorded on the timeline;
/escalate without a case or before the intake has the facts explains what is missing."""
from __future__ import annotations

import json

import pytest

from telegram_harness import answer_intake, buttons_of, h, question_of  # noqa: F401 (h: the fixture)

ANN, BOB = 1001, 1002
STORY = ("I live in the UK. On 3 November I bought a software licence from Adobe for £120 with my credit card. "
         "It stopped working and I emailed them, they refused.")
ANSWERS = {"jurisdiction": "UK", "purchase_type": "software", "merchant": "_skip", "payment_method": "card",
           "amount": "type:120", "purchase_date": "yesterday", "problem": "defect", "problem_date": "today",
           "contacted": "yes", "contact_date": "today", "seller_answer": "refused", "story": "_skip",
           "confirm": "_yes"}


async def advised(h, user) -> dict:
    return await answer_intake(h, user, STORY, ANSWERS)


def events(h, case_id: int) -> list[tuple[str, dict]]:
    return [(k, json.loads(d)) for k, d in h.rows("SELECT kind, data FROM case_events WHERE case_id = ? ORDER BY id",
                                                 case_id)]


@pytest.mark.parametrize("letter", ["en", "zh"])
async def test_escalate_after_the_intake_sends_the_draft_and_both_documents(h, letter):
    ann = h.emu.user(ANN, language_code="en")
    case = await advised(h, ann)
    chooser = await h.command(ann, "/escalate")
    assert len(chooser) == 1 and "Whom is the complaint for?" in chooser[0]["text"]
    offered = list(buttons_of(chooser[0]).items())
    recipients = [data.split(":")[2] for _, data in offered]
    assert recipients[0] == "seller" and "payment" in recipients
    assert "police" not in recipients, "no police report for a simple defect"
    assert offered[0][0] == "Letter to the seller"
    assert all(len(data.encode()) <= 64 and data.startswith(f"esc:{case['id']}:") for _, data in offered)

    _, language = await h.press(ann, chooser[0], offered[0][1])
    assert len(language) == 1 and "Letter to the seller" in language[0]["text"]
    assert not buttons_of(h.emu.messages(ANN)[[m["message_id"] for m in h.emu.messages(ANN)].index(
        chooser[0]["message_id"])]), "the recipient keyboard is retired"
    langs = buttons_of(language[0])
    assert set(langs) == {"English", "简体中文", "繁體中文"}
    data = langs["English" if letter == "en" else "简体中文"]

    _, sent = await h.press(ann, language[0], data)
    documents = [m for m in sent if m.get("document")]
    texts = [m for m in sent if not m.get("document")]
    assert [m["document"]["file_name"] for m in documents] == [
        f"complaint-{case['id']}-seller-{letter}.txt", f"complaint-{case['id']}-seller-{letter}.md"]
    draft = "\n".join(m["text"] for m in texts)
    for body in [draft] + [m["file_data"].decode("utf-8") for m in documents]:
        assert "Adobe" in body and "120" in body
        assert "{{" not in body and "{%" not in body
    assert all(m["caption"] for m in documents)
    assert "noted this escalation" in texts[-1]["text"]
    pressed = next(m for m in h.emu.messages(ANN) if m["message_id"] == language[0]["message_id"])
    assert not buttons_of(pressed) and pressed["text"].endswith("✔️ " + ("English" if letter == "en" else "简体中文"))

    recorded = [d for k, d in events(h, case["id"]) if k == "escalation"]
    assert recorded and recorded[-1]["recipient"] == "seller" and recorded[-1]["letter_locale"] == letter
    assert h.active_case(ANN)["status"] == "escalated"

    # The same press again (a stale keyboard): nothing more is sent or recorded.
    answer, again = await h.press(ann, language[0], data, force=True)
    assert again == [] and answer.get("text")
    assert len([k for k, _ in events(h, case["id"]) if k == "escalation"]) == len(recorded)


async def test_unfit_recipients_and_other_users_presses_are_refused(h):
    ann = h.emu.user(ANN, language_code="en")
    bob = h.emu.user(BOB, language_code="en")
    case = await advised(h, ann)
    chooser = await h.command(ann, "/escalate")
    forged = f"esc:{case['id']}:police:_:c"
    answer, sent = await h.press(ann, chooser[0], forged, force=True)
    assert sent == [] and "no longer active" in answer["text"]
    answer, sent = await h.press(ann, chooser[0], f"esc:{case['id']}:police:en:c", force=True)
    assert sent == [] and "no longer active" in answer["text"]
    # Bob cannot press Ann's buttons.
    await h.command(bob, "/start")
    seller = buttons_of(chooser[0])["Letter to the seller"]
    answer, sent = await h.press(bob, chooser[0], seller, force=True)
    assert sent == [] and "no longer active" in answer["text"]
    answer, sent = await h.press(bob, chooser[0], f"esc:{case['id']}:seller:en:c", force=True)
    assert sent == [] and "no longer active" in answer["text"]
    assert not [k for k, _ in events(h, case["id"]) if k == "escalation"]


@pytest.mark.parametrize("lang", ["en", "zh"])
async def test_escalate_without_a_case_or_before_the_facts_explains(h, lang):
    user = h.emu.user(ANN, language_code=lang)
    first = await h.command(user, "/escalate")
    assert len(first) == 1 and not buttons_of(first[0])
    assert ("no open case" in first[0]["text"]) if lang == "en" else ("还没有可以投诉" in first[0]["text"])
    await h.command(user, "/start")
    missing = await h.command(user, "/escalate")
    text = "\n".join(m["text"] for m in missing)
    if lang == "en":
        assert "To draft a complaint I still need" in text and "where you live" in text and "what went wrong" in text
    else:
        assert "起草投诉之前" in text and "出现的问题" in text
    assert question_of(missing[-1]) == "jurisdiction", "the intake goes on where it was"


async def test_the_escalate_button_of_a_nudge_asks_whom_and_sends_the_draft(tmp_path):
    from datetime import datetime, timezone

    from bot.config import parse_delays
    from telegram_harness import Harness
    try:
        from tests.botapi import BotApiEmulator
    except ImportError:  # pragma: no cover
        from botapi import BotApiEmulator

    with BotApiEmulator() as emu:
        h = Harness(emu, tmp_path / "bot.db", followup=parse_delays("1s,1h"), quiet_hours=None, nudges=True,
                    clock=lambda: datetime.now(timezone.utc))
        await h.start()
        try:
            ann = emu.user(ANN, language_code="en")
            case = await advised(h, ann)

            def nudges() -> list[dict]:
                return [m for m in emu.messages(ANN) if any(d.startswith("nudge:") for d in buttons_of(m).values())]

            await emu.wait_for(lambda: bool(nudges()), 6.0)
            nudge = nudges()[-1]
            escalate = next(d for d in buttons_of(nudge).values() if d.endswith(":escalate"))
            _, acks = await h.press(ann, nudge, escalate)
            joined = "\n".join(m["text"] for m in acks)
            assert "Let's escalate to" in joined and "/escalate" in joined
            chooser = next(m for m in acks if any(d.startswith("esc:") for d in buttons_of(m).values()))
            offered = list(buttons_of(chooser).values())
            assert offered and all(d.endswith(":_:n") for d in offered)
            assert not any(":police:" in d for d in offered)
            _, language = await h.press(ann, chooser, offered[0])
            language = next(m for m in language if "English" in buttons_of(m))
            _, sent = await h.press(ann, language, buttons_of(language)["English"])
            documents = [m for m in sent if m.get("document")]
            assert [m["document"]["file_name"].rsplit(".", 1)[1] for m in documents] == ["txt", "md"]
            assert all("Adobe" in m["file_data"].decode("utf-8") for m in documents)
            kinds = [k for k, _ in events(h, case["id"])]
            assert kinds.count("escalation") == 1 and "complaint_draft" in kinds
        finally:
            assert await h.stop() == 0
        assert emu.errors == [] and emu.warnings == []
        assert emu.stats.errors.get(400, 0) == 0
