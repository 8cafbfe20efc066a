"""Complaint drafts: golden files for every recipient x letter language on fixed hostile cases.

Each draft is rendered three ways (Telegram HTML message, .txt, .md) and kept in
tests/golden/complaint_<case>_<recipient>_<locale>.txt. Regenerate after an intended change:

    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_complaint.py

and read the diff before committing. Besides the byte-for-byte comparison, every draft is
checked for the facts it must carry (amount, dates, merchant, legal basis when it applies,
demand date, evidence) and for what it must not carry (template syntax, None, Undefined).
"""
from __future__ import annotations

import html
import os
import re
from datetime import date
from pathlib import Path

import pytest
from markupsafe import escape

import messages
from messages.complaint import render_draft
from dialogs import complaint as cp
from dialogs.model import LOCALES

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("UPDATE_GOLDEN"))
TODAY = date(2026, 11, 20)

HOSTILE_MERCHANT = '淘宝 "Bob\'s" <Shop> & Co 🛒'
_PARAGRAPH = ('The kettle arrived on 10 Nov. On the first use the lid <b>cracked</b> & boiling water '
              'leaked onto the counter; the seller\'s "support" said it was my fault. 客服说“人为损坏，'
              '不予退款”。 I have photos & the chat log 😡 <script>alert(1)</script>. ')
STORY_2000 = (_PARAGRAPH * 12)[:2000]
assert len(STORY_2000) == 2000


def _events(*items):
    return [{"kind": k, "data": d, "at": at} for k, d, at in items]


CASES = {
    # A Taobao purchase paid with Alipay, broken on arrival, refused: every consumer rung.
    "cn_taobao": {
        "slots": {
            "jurisdiction": "CN", "purchase_type": "goods", "merchant": HOSTILE_MERCHANT,
            "payment_method": "alipay", "amount": {"value": "1299.00", "currency": "CNY"},
            "purchase_date": "2026-11-10", "problem": "defect", "problem_date": "2026-11-11",
            "contacted": True, "contact_date": "2026-11-12", "seller_answer": "refused",
            "story": STORY_2000,
        },
        "category": "defect",
        "timeline": _events(
            ("answer", {"slot": "seller_answer", "value": "refused", "text": "they refused"}, "2026-11-13T08:00:00+00:00"),
            ("nudge_answer", {"answer": "waiting", "status": "waiting", "rung": "seller"}, "2026-11-15T02:00:00+00:00"),
            ("nudge_answer", {"answer": "refused", "status": ["waiting", "escalated"], "rung": ["seller", "platform"]},
             "2026-11-17T02:00:00+00:00"),
            ("escalation", {"rung": "platform", "path": "consumer"}, "2026-11-18T03:00:00+00:00"),
            ("note", {"text": 'Seller\'s agent "Amy" <amy@shop> said: wait & see 🙄'}, "2026-11-19T04:00:00+00:00"),
            ("said", {"text": "ignored kind"}, "2026-11-19T05:00:00+00:00"),
        ),
        "evidence": [
            {"kind": "photo", "file_id": "AgACAgQAAx", "text": 'cracked lid <b>"before"</b> & after', "at": "2026-11-11T09:00:00+00:00"},
            {"kind": "document", "file_id": "BQACAgQAAx", "text": "order.pdf: 订单 #A&B<1>", "at": "2026-11-12T09:30:00+00:00"},
            {"kind": "forward", "file_id": None, "text": "客服：不予退款 & no refund", "at": "2026-11-13T10:00:00+00:00"},
        ],
        "recipients": ["seller", "platform", "payment", "regulator"],
    },
    # A withdrawal scam paid by bank transfer; the platform asked for fees: bank and police.
    "cn_scam": {
        "slots": {
            "jurisdiction": "CN", "purchase_type": "platform_funds", "merchant": 'Gold<Win> "VIP" & 彩票 🎰',
            "payment_method": "bank_transfer", "amount": {"value": "52000", "currency": "CNY"},
            "purchase_date": "2026-10-28", "problem": "withdrawal_blocked", "problem_date": "2026-11-02",
            "contacted": True, "contact_date": "2026-11-03", "seller_answer": "asked_fees",
            "story": ("A 'mentor' added me on WeChat and sent https://goldwin-vip.top/app?ref=8&x=<1> ; "
                      "I deposited 52000 yuan, then withdrawals failed with 系统维护, and they asked for a "
                      "20% 解冻金 & tax first. Also www.gw-vip.cc/download."),
        },
        "category": "withdrawal_scam",
        "timeline": _events(
            ("nudge_answer", {"answer": "asked_more", "rung": ["seller", "bank"], "path": ["consumer", "fraud"]}, "2026-11-10T02:00:00+00:00"),
            ("escalation", {"rung": "bank", "path": "fraud"}, "2026-11-11T02:00:00+00:00"),
        ),
        "evidence": [
            {"kind": "photo", "file_id": "AgAC1", "text": "transfer receipt 工商银行 6222 **** 8888 & <name>", "at": "2026-11-03T01:00:00+00:00"},
        ],
        "recipients": ["police", "payment"],     # mainland China: 110 first (issue 12, point 6)
    },
    # UK: faulty goods bought on eBay with a credit card, over £100: section 75.
    "uk_card": {
        "slots": {
            "jurisdiction": "UK", "purchase_type": "goods", "merchant": 'Gadgets "R" <Us> & Co on eBay ☂',
            "payment_method": "credit_card", "amount": {"value": "249.99", "currency": "GBP"},
            "purchase_date": "2026-11-05", "problem": "defect", "contacted": True,
            "contact_date": "2026-11-08", "seller_answer": "none",
            "story": "The blender's motor <smells> & stops after 10 seconds.",
        },
        "category": "defect",
        "timeline": [],
        "evidence": [{"kind": "video", "file_id": "BAAC", "text": None, "at": "2026-11-08T12:00:00+00:00"}],
        "recipients": ["seller", "platform", "payment", "regulator"],
    },
    # US: a subscription charged after cancelling, paid by credit card.
    "us_sub": {
        "slots": {
            "jurisdiction": "US", "purchase_type": "subscription", "merchant": 'StreamFlix <Premium> & "Family"',
            "payment_method": "credit_card", "amount": {"value": "59.99", "currency": "USD"},
            "purchase_date": "2026-10-01", "problem": "unauthorized", "contacted": False,
            "story": "I cancelled on Sep 20 & they still charged me. 🙃",
        },
        "category": "unauthorized_or_subscription",
        "timeline": [],
        "evidence": [],
        "recipients": ["seller", "payment", "regulator"],
    },
    # EU: a Steam game, changed mind within 14 days, paid with PayPal (no PayPal dispute for that).
    "eu_steam": {
        "slots": {
            "jurisdiction": "EU", "purchase_type": "game", "merchant": 'Steam: "Dungeon <&> Dragons" 🐉',
            "payment_method": "paypal", "amount": {"value": "39.99", "currency": "EUR"},
            "purchase_date": "2026-11-12", "problem": "changed_mind", "contacted": False,
        },
        "category": "changed_mind",
        "timeline": [],
        "evidence": [{"kind": "document", "file_id": "BQ", "text": "receipt <Steam> & VAT", "at": "2026-11-12T20:00:00+00:00"}],
        "recipients": ["seller", "platform", "regulator"],
    },
    # Issue 13. Taiwan: a change of mind on momo within the 7 days of art. 19, paid by credit card.
    "tw_momo": {
        "slots": {
            "jurisdiction": "TW", "purchase_type": "goods", "merchant": "momo購物網 <3C> & 家電",
            "payment_method": "credit_card", "amount": {"value": "12990", "currency": "TWD"},
            "purchase_date": "2026-11-17", "problem": "changed_mind", "contacted": False,
        },
        "category": "changed_mind",
        "timeline": [],
        "evidence": [],
        "recipients": ["seller", "platform", "regulator"],
    },
    # Hong Kong: an investment-platform scam paid by bank transfer: the bank and 18222.
    "hk_scam": {
        "slots": {
            "jurisdiction": "HK", "purchase_type": "platform_funds", "merchant": "Tele<gram> 投資群 & 導師",
            "payment_method": "bank_transfer", "amount": {"value": "80000", "currency": "HKD"},
            "purchase_date": "2026-10-30", "problem": "withdrawal_blocked", "problem_date": "2026-11-05",
            "contacted": True, "contact_date": "2026-11-06", "seller_answer": "asked_fees",
        },
        "category": "withdrawal_scam",
        "timeline": [],
        "evidence": [],
        "recipients": ["payment", "police"],     # outside mainland China the bank comes first
    },
    # Singapore: a faulty blender bought on Lazada by debit card: the lemon law, CASE, FIDReC.
    "sg_lemon": {
        "slots": {
            "jurisdiction": "SG", "purchase_type": "goods", "merchant": "Lazada <SG> & Co",
            "payment_method": "debit_card", "amount": {"value": "189", "currency": "SGD"},
            "purchase_date": "2026-10-20", "problem": "defect", "contacted": True,
            "contact_date": "2026-11-02", "seller_answer": "refused",
        },
        "category": "defect",
        "timeline": [],
        "evidence": [],
        "recipients": ["seller", "platform", "payment", "regulator"],
    },
    # Malaysia: a phone from Shopee never delivered, paid by card: the Tribunal and FMOS.
    "my_shopee": {
        "slots": {
            "jurisdiction": "MY", "purchase_type": "goods", "merchant": "Shopee <MY> & Kedai",
            "payment_method": "credit_card", "amount": {"value": "1200", "currency": "MYR"},
            "purchase_date": "2026-10-25", "problem": "non_delivery", "contacted": True,
            "contact_date": "2026-11-05", "seller_answer": "none",
        },
        "category": "non_delivery",
        "timeline": [],
        "evidence": [],
        "recipients": ["seller", "platform", "payment", "regulator"],
    },
}

# The legal basis each case's drafts must cite (a fragment of the citation, per recipient).
CITES = {
    ("cn_taobao", "en"): "Article 24 of the Law of the People's Republic of China on the Protection of Consumer",
    ("cn_taobao", "zh"): "《中华人民共和国消费者权益保护法》第二十四条",
    ("cn_scam", "en"): "Articles 20 and 34 of the Anti-Telecom and Online Fraud Law",
    ("cn_scam", "zh"): "《中华人民共和国反电信网络诈骗法》第二十条、第三十四条",
    ("uk_card", "en"): "section 22 of the Consumer Rights Act 2015",
    ("uk_card", "zh"): "英国《2015年消费者权利法》第22条",
    ("us_sub", "en"): "the Fair Credit Billing Act, 15 U.S.C. § 1666",
    ("us_sub", "zh"): "美国《公平信用账单法》，15 U.S.C. § 1666",
    ("eu_steam", "en"): "Directive 2011/83/EU",
    ("eu_steam", "zh"): "欧盟《消费者权利指令》（2011/83/EU）第9(1)条",
    ("cn_taobao", "zh-Hant"): "《中華人民共和國消費者權益保護法》第二十四條",
    ("cn_scam", "zh-Hant"): "《中華人民共和國反電信網路詐騙法》第二十條、第三十四條",
    ("uk_card", "zh-Hant"): "英國《2015年消費者權利法》第22條",
    ("us_sub", "zh-Hant"): "美國《公平信用帳單法》，15 U.S.C. § 1666",
    ("eu_steam", "zh-Hant"): "歐盟《消費者權利指令》（2011/83/EU）第9(1)條",
    ("tw_momo", "en"): "Articles 19 and 19-2 of the Consumer Protection Act (Taiwan)",
    ("tw_momo", "zh"): "《消费者保护法》（台湾）第19条、第19-2条",
    ("tw_momo", "zh-Hant"): "《消費者保護法》（台灣）第19條、第19-2條",
    ("sg_lemon", "en"): "of the Consumer Protection (Fair Trading) Act (Singapore)",
    ("sg_lemon", "zh"): "新加坡《消费者保护（公平交易）法》第12A-12F条",
    ("sg_lemon", "zh-Hant"): "新加坡《消費者保護（公平交易）法》第12A-12F條",
}


def _date(locale, iso):
    return messages.catalog(locale).env.filters["date"](iso)


PARAMS = [(case, rec, loc) for case, spec in CASES.items() for rec in spec["recipients"] for loc in LOCALES]


def _draft(case, recipient, locale):
    spec = CASES[case]
    return cp.draft(spec["slots"], spec["category"], recipient, locale, spec["timeline"], spec["evidence"], TODAY)


def _golden_text(message, text, md):
    return ("===== Telegram message (HTML) =====\n" + message + "\n"
            "===== .txt =====\n" + text + "===== .md =====\n" + md)


def test_every_recipient_and_language_has_a_golden_case():
    covered = {(rec, loc) for _, rec, loc in PARAMS}
    assert covered == {(r, loc) for r in cp.RECIPIENTS for loc in LOCALES}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fixed_cases_offer_the_expected_recipients(case):
    spec = CASES[case]
    assert cp.recipients(spec["slots"], spec["category"], None) == spec["recipients"]


@pytest.mark.parametrize("case,recipient,locale", PARAMS)
def test_golden(case, recipient, locale):
    d = _draft(case, recipient, locale)
    message, text, md = render_draft(d)
    got = _golden_text(message, text, md)
    path = GOLDEN / f"complaint_{case}_{recipient}_{locale}.txt"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert path.exists(), f"{path.name} missing: run with UPDATE_GOLDEN=1 and review it"
    assert got == path.read_text(encoding="utf-8"), f"{path.name} differs: review, then UPDATE_GOLDEN=1"


@pytest.mark.parametrize("case,recipient,locale", PARAMS)
def test_each_draft_carries_the_facts_of_the_case(case, recipient, locale):
    spec = CASES[case]
    slots = spec["slots"]
    d = _draft(case, recipient, locale)
    message, text, md = render_draft(d)
    money = messages.catalog(locale).env.filters["money"](slots["amount"])
    for out, merchant in ((text, slots["merchant"]), (message, str(escape(slots["merchant"])))):
        assert money in out
        assert merchant in out
        assert _date(locale, slots["purchase_date"]) in out
        assert _date(locale, TODAY.isoformat()) in out
        if slots.get("contact_date"):
            assert _date(locale, slots["contact_date"]) in out
        for record in spec["evidence"]:
            label = messages.plain(messages.render(locale, f"complaint.evidence_kind.{record['kind']}"))
            assert label in messages.plain(out)
            if record["text"]:
                assert (record["text"] if out is text else str(escape(record["text"]))) in out
        for bad in ("{{", "{%", "}}", "%}", "None", "Undefined", "undefined"):
            assert bad not in out, bad
    # the demand date (none for a police report: it asks for a report and a freeze)
    if recipient == "police":
        assert d.demand_date is None
    else:
        assert d.demand_date is not None and _date(locale, d.demand_date.isoformat()) in text
    # the legal basis, where the rules give one for this recipient
    if d.context["basis"]:
        assert CITES[(case, locale)].lower() in text.lower(), "legal basis"
    # marked as a draft, with instructions
    assert ("DRAFT" if locale == "en" else "草稿") in text
    assert messages.plain(messages.render(locale, "complaint.h.how_to_send")).lower() in text.lower()
    # the documents keep the whole story; the message may shorten it
    if slots.get("story"):
        assert slots["story"] in text
        assert slots["story"][:40] in html.unescape(message)


@pytest.mark.parametrize("case,recipient,locale", PARAMS)
def test_the_message_is_telegram_html_with_user_text_escaped(case, recipient, locale):
    message, _, md = render_draft(_draft(case, recipient, locale))
    tags = set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9-]*)", message))
    assert tags <= {"b", "i", "code"}, tags
    assert "<script>" not in message and "<Shop>" not in message and "<b>cracked" not in message
    # every & starts an entity
    assert not re.search(r"&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)", message)
    # Markdown: the user's angle brackets and ampersands cannot become HTML or entities
    assert "<Shop>" not in md and "<script>" not in md and "<b>cracked" not in md


def test_the_long_story_is_shortened_in_the_message_only():
    for locale in LOCALES:
        message, text, md = render_draft(_draft("cn_taobao", "seller", locale))
        assert STORY_2000 in text
        assert STORY_2000 not in html.unescape(message)
        assert messages.plain(messages.render(locale, "complaint.story_cut")) in html.unescape(message)
        assert "…" in message
        assert len(message) < len(text)
        # the .md keeps it whole too (escaped), as a quote
        assert md.count("> ") >= 1 and "\\<script\\>" in md


def test_the_hostile_golden_case_has_a_2000_character_story_and_hostile_merchant():
    slots = CASES["cn_taobao"]["slots"]
    assert len(slots["story"]) == 2000
    assert all(ch in slots["merchant"] for ch in ('<', '&', '"', "'", "🛒"))


def test_golden_files_have_no_strays():
    expected = {f"complaint_{c}_{r}_{lang}.txt" for c, r, lang in PARAMS}
    present = {p.name for p in GOLDEN.glob("complaint_*.txt")} if GOLDEN.exists() else set()
    assert present <= expected, sorted(present - expected)
