"""Issue 13: Hong Kong, Taiwan, Singapore and Malaysia as places to live, and replies in
Traditional Chinese. What a user there sees: the question offers their place, their amounts are in
their money, the advice names their own authorities, lines and time limits with official sources,
reminders come in their time zone, /escalate drafts go to their own authorities, and a Traditional
Chinese Telegram gets Traditional replies (end to end on the Bot API emulator)."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pytest

import messages
from dialogs.zones import JURISDICTION_ZONE
from bot.telegram.render import keyboard
from dialogs import complaint as cp
from messages.complaint import render_draft
from dialogs import engine
from dialogs.advice import advise
from dialogs.graph import load
from dialogs.engine import Text, step
from dialogs.model import LOCALES
from messages import hant
from telegram_harness import Harness, answer_intake, h  # noqa: F401  (h is a fixture)

TODAY = date(2026, 12, 6)
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
PLACES = ("HK", "TW", "SG", "MY")
SIMPLIFIED_ONLY = re.compile("[们这说请时对还没钱买卖应该让给发现问题权联银费]")


def run(*texts: str) -> engine.DialogState:
    state = engine.start()
    for text in texts:
        state = step(state, Text(text), NOW).state
    return state


def advice_text(locale: str, case: dict, category: str) -> str:
    return messages.plain(messages.render(locale, "advice_body", advice=advise(case, category, TODAY).context(),
                                          case=case))


# --------------------------------------------------------------------------- the question

@pytest.mark.parametrize("locale", LOCALES)
def test_where_do_you_live_offers_the_four_places_in_a_keyboard_telegram_accepts(locale):
    reply = engine.ask(load(), engine.start())
    rendered = messages.render_reply(locale, reply)
    ids = [option for option, _ in rendered.buttons]
    assert set(PLACES) <= set(ids) and ids[-1] == "OTHER"
    markup = keyboard([(option, label, f"q:1:jurisdiction:{option}") for option, label in rendered.buttons])
    rows = markup.inline_keyboard
    assert sum(len(r) for r in rows) == len(ids) <= 100 and all(len(r) <= 8 for r in rows)
    labels = dict(rendered.buttons)
    assert labels["TW"] == {"en": "Taiwan", "zh": "台湾", "zh-Hant": "台灣"}[locale]


@pytest.mark.parametrize("answer, place", [
    ("香港", "HK"), ("Hong Kong", "HK"), ("台灣", "TW"), ("臺灣", "TW"), ("Taiwan", "TW"),
    ("新加坡", "SG"), ("Singapore", "SG"), ("馬來西亞", "MY"), ("Malaysia", "MY"), ("大马", "MY"),
])
def test_the_place_is_understood_typed_in_either_script(answer, place):
    assert run(answer).slots["jurisdiction"] == place


# --------------------------------------------------------------------------- money

@pytest.mark.parametrize("place, typed, value, currency", [
    ("TW", "5萬元", "50000.00", "TWD"),          # 元 in Taipei is the New Taiwan dollar
    ("TW", "NT$1,299", "1299.00", "TWD"),
    ("TW", "新台幣3000", "3000.00", "TWD"),
    ("HK", "3萬港幣", "30000.00", "HKD"),
    ("HK", "$300", "300.00", "HKD"),            # a bare $ in Hong Kong is HK$
    ("HK", "¥500", "500.00", "CNY"),            # ¥ says yuan wherever you live
    ("HK", "500人民幣", "500.00", "CNY"),
    ("SG", "S$49.90", "49.90", "SGD"),
    ("SG", "1000新幣", "1000.00", "SGD"),
    ("MY", "RM120", "120.00", "MYR"),
    ("MY", "300令吉", "300.00", "MYR"),
    ("MY", "$20", "20.00", "USD"),              # Malaysia's money is not a dollar
    ("CN", "5万元", "50000.00", "CNY"),
])
def test_an_amount_is_in_the_money_of_where_the_user_lives(place, typed, value, currency):
    state = run(place, "goods", "Shop", "credit card", typed)
    assert state.slots["amount"] == {"value": value, "currency": currency}


def test_a_story_names_its_place_by_its_money_or_its_platforms():
    assert run("I paid NT$1,299 for headphones on PChome and they never came").slots["jurisdiction"] == "TW"
    assert run("Bought a phone on Lazada for RM1,200, it never arrived").slots["jurisdiction"] == "MY"
    story = run("我在台灣網購手機花了5萬元，到現在還沒收到，賣家不回訊息").slots
    assert story["jurisdiction"] == "TW" and story["amount"] == {"value": "50000.00", "currency": "TWD"}


# --------------------------------------------------------------------------- the advice

@pytest.mark.parametrize("place, line, body", [
    ("HK", "18222", "Anti-Deception Coordination Centre"),
    ("TW", "165", "National Police Agency"),
    ("SG", "1799", "ScamShield"),
    ("MY", "997", "National Scam Response Centre"),
])
def test_a_scam_victim_is_sent_to_the_bank_and_the_local_anti_scam_line_first(place, line, body):
    case = {"jurisdiction": place, "payment_method": "bank_transfer", "purchase_type": "platform_funds",
            "purchase_date": "2026-12-01"}
    a = advise(case, "withdrawal_scam", TODAY)
    steps = list(a.steps)
    assert steps[0] == "step.scam.call_bank_now" and steps[1] == f"step.scam.police_{place.lower()}"
    text = advice_text("en", case, "withdrawal_scam")
    assert line in text and body in text and "recovery" in text
    zh = advice_text("zh", case, "withdrawal_scam")
    assert line in zh and "依据" not in zh.split(line)[0][-5:]


@pytest.mark.parametrize("place, needles", [
    ("HK", ["Consumer Council", "2929 2222", "Small Claims Tribunal", "HK$75,000", "Financial Dispute Resolution Centre"]),
    ("TW", ["Consumer Protection Act, art. 19", "1950", "Financial Ombudsman Institution", "0800-789-885"]),
    ("SG", ["lemon law", "CASE", "Small Claims Tribunals", "S$20,000", "FIDReC"]),
    ("MY", ["Tribunal for Consumer Claims", "RM50,000", "Financial Markets Ombudsman Service"]),
])
def test_a_faulty_purchase_gets_the_authorities_and_limits_of_its_own_place(place, needles):
    case = {"jurisdiction": place, "payment_method": "credit_card", "purchase_type": "goods",
            "purchase_date": "2026-11-30", "merchant": "Shopee"}
    text = advice_text("en", case, "defect")
    for needle in needles:
        assert needle in text, needle
    assert "small-claims court" not in text   # not the generic step of "somewhere else"


def test_taiwan_change_of_mind_gets_the_7_days_counted_from_the_day_after_receipt():
    case = {"jurisdiction": "TW", "payment_method": "credit_card", "purchase_type": "goods",
            "purchase_date": "2026-11-30"}
    a = advise(case, "changed_mind", TODAY)
    deadline = next(d for d in a.deadlines if d.id == "tw_7day_withdrawal")
    assert deadline.date == date(2026, 12, 7)
    zh = advice_text("zh", case, "changed_mind")
    assert "第十九条" in zh and "2026年12月7日" in zh
    hant_text = advice_text("zh-Hant", case, "changed_mind")
    assert "第十九條" in hant_text and "7日解除期" in hant_text
    # A download may be excluded, and the advice says "may", as its source is not the official text.
    digital = advise({**case, "purchase_type": "software"}, "changed_mind", TODAY)
    assert "warning.tw.digital_exception" in digital.warnings


def test_singapore_lemon_law_runs_six_months_from_delivery():
    case = {"jurisdiction": "SG", "payment_method": "debit_card", "purchase_type": "goods",
            "purchase_date": "2026-11-30"}
    a = advise(case, "defect", TODAY)
    assert {d.id: d.date for d in a.deadlines}["sg_lemon_6_months"] == date(2027, 5, 30)


@pytest.mark.parametrize("place, zone", [("HK", "Asia/Hong_Kong"), ("TW", "Asia/Taipei"),
                                         ("SG", "Asia/Singapore"), ("MY", "Asia/Kuala_Lumpur")])
def test_reminders_are_timed_in_the_places_own_time_zone(place, zone):
    assert JURISDICTION_ZONE[place] == zone


# --------------------------------------------------------------------------- complaints

@pytest.mark.parametrize("place, regulator, police", [
    ("HK", "Consumer Council", "Anti-Scam Helpline 18222"),
    ("TW", "消保官", "165"),
    ("SG", "CASE", "ScamShield Helpline 1799"),
    ("MY", "Tribunal for Consumer Claims", "997"),
])
def test_escalate_drafts_go_to_the_places_own_authorities(place, regulator, police):
    slots = {"jurisdiction": place, "problem": "defect", "payment_method": "credit_card", "purchase_type": "goods",
             "purchase_date": "2026-11-30", "merchant": "Shop", "amount": {"value": "100.00", "currency": None}}
    letter = cp.draft(slots, "defect", "regulator", "en", [], [], TODAY)
    assert regulator in render_draft(letter)[1]
    scam = {**slots, "problem": "withdrawal_blocked", "payment_method": "bank_transfer",
            "purchase_type": "platform_funds"}
    report = cp.draft(scam, "withdrawal_scam", "police", "en", [], [], TODAY)
    assert police in render_draft(report)[1]


def test_a_taiwanese_letter_cites_article_19_in_traditional_chinese():
    slots = {"jurisdiction": "TW", "problem": "changed_mind", "payment_method": "credit_card",
             "purchase_type": "goods", "purchase_date": "2026-12-01", "merchant": "momo購物網"}
    letter = render_draft(cp.draft(slots, "changed_mind", "seller", "zh-Hant", [], [], TODAY))[1]
    assert "《消費者保護法》（台灣）第19條" in letter and "15日內" in letter
    assert not SIMPLIFIED_ONLY.search(letter.replace("momo購物網", ""))


# --------------------------------------------------------------------------- Traditional Chinese

@pytest.mark.parametrize("code, locale", [("zh-hant", "zh-Hant"), ("zh-TW", "zh-Hant"), ("zh-hk", "zh-Hant"),
                                          ("zh-hans", "zh"), ("zh", "zh"), ("en-US", "en"), (None, "en")])
def test_the_telegram_language_picks_the_script(code, locale):
    assert messages.locale_from(code) == locale


def test_the_traditional_catalogue_is_the_converted_simplified_one_with_the_hand_fixes():
    built = hant.build()
    for name, text in built.items():
        assert (hant.TARGET / name).read_text("utf-8") == text, (
            f"messages/zh-Hant/{name} is stale: run `python -m messages.hant`")
    assert messages.keys("zh-Hant") == messages.keys("zh")
    catalogue = "\n".join(built.values())
    assert "帳號" in catalogue and "賬" not in catalogue and "訊息" in catalogue and "軟體" in catalogue


async def test_a_traditional_chinese_telegram_gets_traditional_replies_and_taiwan_advice(h):
    user = h.emu.user(3003, language_code="zh-TW")
    first = await h.command(user, "/start")
    assert "你好" in first[0]["text"] and "住在哪裡" in "".join(m["text"] for m in first)
    story = "我住在台灣，11月30日在PChome網購了一支手機，用信用卡付了NT$12,990，到現在還沒收到，賣家不回訊息。"
    case = await answer_intake(h, user, story, {
        "jurisdiction": "TW", "purchase_type": "goods", "merchant": "_skip", "payment_method": "credit_card",
        "amount": "type:12990", "purchase_date": "type:11月30日", "problem": "non_delivery",
        "problem_date": "_skip", "contacted": "yes", "contact_date": "type:今天", "seller_answer": "none",
        "story": "_skip", "confirm": "_yes", "expected_date": "_skip", "statement_date": "_skip",
        "clarify_money": "_skip",
    })
    slots = case["dialog"]["slots"]
    assert slots["jurisdiction"] == "TW" and slots["amount"]["currency"] == "TWD"
    advice = [m["text"] for m in h.emu.messages(3003)][-1]
    assert "NT$12,990.00" in advice and "1950" in advice and "依據" in advice
    # Every line the advisor writes is Traditional (the classifier's quotes of the story are not
    # the catalogue's: dialogs/classifier.py, left to its owner).
    ours = "\n".join(line for line in advice.splitlines() if "「" not in line)
    assert not SIMPLIFIED_ONLY.search(ours), ours
    assert "發卡" in advice and "髮" not in advice
