"""Complaint drafts: who may receive one, which law a letter cites, the demand, blanks, history.

The golden files (test_complaint.py) pin the wording; these tests pin the rules.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import messages
from messages.complaint import render_draft
from dialogs import rulefiles
from dialogs import complaint as cp
from dialogs.model import LOCALES, PAYMENT_METHODS, PROBLEMS, PURCHASE_TYPES

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 20)

DEFECT_CN = {
    "jurisdiction": "CN", "purchase_type": "goods", "merchant": "小米旗舰店", "payment_method": "alipay",
    "amount": {"value": "1299.00", "currency": "CNY"}, "purchase_date": "2026-11-10", "problem": "defect",
    "contacted": True, "contact_date": "2026-11-12", "seller_answer": "refused",
}
SCAM = {
    "jurisdiction": "CN", "purchase_type": "platform_funds", "merchant": "GoldWin", "payment_method": "bank_transfer",
    "amount": {"value": "52000", "currency": "CNY"}, "purchase_date": "2026-10-28", "problem": "withdrawal_blocked",
    "seller_answer": "maintenance",
}


def case(base=DEFECT_CN, **changes):
    slots = dict(base)
    for k, v in changes.items():
        if v is None:
            slots.pop(k, None)
        else:
            slots[k] = v
    return slots


def text_of(slots, category, recipient, locale="en", timeline=(), evidence=(), today=TODAY, **kw):
    d = cp.draft(slots, category, recipient, locale, list(timeline), list(evidence), today, **kw)
    return d, render_draft(d)[1]


# --------------------------------------------------------------------------- data and catalogs

def test_recipient_rules_have_no_problems():
    assert cp.recipients_problems() == []


@pytest.mark.parametrize("old,new,problem", [
    ("phone: 0808 223 1133", "phone: 0800 000 0000", "phone '0800 000 0000' is not in the text or source"),
    ('refs: ["24"]', 'refs: ["99"]', "reference '99' of CPRL is not in the text or source"),
    ("advice: [step.seller.cn_quality]", "advice: [step.seller.nonexistent]", "unknown advice key"),
    ("  - {days: 7}\n", "", "must end with a plain {days: N} rule"),
    ("send: [cn_police]", "send: [cn_nowhere]", "unknown channel 'cn_nowhere'"),
])
def test_mistakes_in_the_rules_are_reported(tmp_path, monkeypatch, old, new, problem):
    source = (ROOT / "dialogs/rules/recipients.yaml").read_text("utf-8")
    assert old in source
    for path in (ROOT / "dialogs/rules").glob("*.yaml"):        # every rule file is read through dialogs.rulefiles
        (tmp_path / path.name).write_text(path.read_text("utf-8"), "utf-8")
    (tmp_path / "recipients.yaml").write_text(source.replace(old, new, 1), "utf-8")
    monkeypatch.setattr(rulefiles, "RULES_DIR", tmp_path)
    cp._rules.cache_clear()
    try:
        assert any(problem in p for p in cp.recipients_problems()), cp.recipients_problems()
    finally:
        monkeypatch.undo()
        cp._rules.cache_clear()
    assert cp.recipients_problems() == []


@pytest.mark.parametrize("locale", LOCALES)
def test_every_key_the_data_names_exists(locale):
    missing = cp.message_keys() - messages.keys(locale)
    assert not missing, sorted(missing)


def test_the_catalogs_match_each_other():
    en = set(yaml.safe_load((ROOT / "messages/en/complaint.yaml").read_text("utf-8")))
    zh = set(yaml.safe_load((ROOT / "messages/zh/complaint.yaml").read_text("utf-8")))
    assert en == zh, sorted(en ^ zh)
    en_j2 = {p.name for p in (ROOT / "messages/en").glob("complaint*.j2")}
    zh_j2 = {p.name for p in (ROOT / "messages/zh").glob("complaint*.j2")}
    assert en_j2 == zh_j2


@pytest.mark.parametrize("locale", LOCALES)
def test_every_value_the_letters_name_has_text(locale):
    have = messages.keys(locale)
    for prefix, values in (("problem", PROBLEMS), ("item", PURCHASE_TYPES), ("pm", PAYMENT_METHODS)):
        for v in values:
            assert f"complaint.{prefix}.{v}" in have
    sources = "\n".join(p.read_text("utf-8") for p in (ROOT / f"messages/{locale}").glob("complaint*"))
    for name in set(re.findall(r"blank\('(\w+)'\)", sources)) | set(re.findall(r"name='(\w+)'", sources)):
        assert f"complaint.field.{name}" in have, name
    for key in set(re.findall(r"t\('(complaint[\w.]*\w)'", sources)):
        assert key in have, key
    for slot in cp.SHOWN_SLOTS:
        assert f"complaint.field.{slot}" in have


@pytest.mark.parametrize("locale", LOCALES)
def test_the_catalog_uses_only_telegram_safe_html(locale):
    for key, value in yaml.safe_load((ROOT / f"messages/{locale}/complaint.yaml").read_text("utf-8")).items():
        text = re.sub(r"\{[{%#].*?[}%#]\}", "", str(value), flags=re.S)
        for tag in re.findall(r"</?([a-zA-Z][\w-]*)", text):
            assert tag in ("b", "i", "code"), (key, tag)


def test_cited_article_numbers_come_from_the_facts():
    for b in cp._rules().basis:
        for c in b.cite:
            for ref in c["refs"]:
                assert any(ref.lower() in cp._fact_text(f) for f in b.facts), (b.id, ref)


def test_zh_numbers():
    assert [cp.zh_number(n) for n in (1, 10, 14, 20, 24, 25, 34, 55, 62, 100, 105, 120)] == [
        "一", "十", "十四", "二十", "二十四", "二十五", "三十四", "五十五", "六十二", "一百", "一百零五", "一百二十"]


# --------------------------------------------------------------------------- who may receive a draft

@pytest.mark.parametrize("jurisdiction", ["CN", "EU", "UK", "US", "OTHER"])
@pytest.mark.parametrize("payment", ["alipay", "credit_card", "bank_transfer", "cash_other", "paypal"])
def test_no_police_for_a_simple_defect(jurisdiction, payment):
    slots = case(jurisdiction=jurisdiction, payment_method=payment)
    for rung in (None, "seller", "platform", "payment", "regulator", "court"):
        offered = cp.recipients(slots, "defect", rung)
        assert "police" not in offered
        assert offered[0] in ("seller", "platform", "payment", "regulator")
    with pytest.raises(ValueError, match="does not fit"):
        cp.draft(slots, "defect", "police", "en", [], [], TODAY)


@pytest.mark.parametrize("category", ["defect", "non_delivery", "mismatch", "changed_mind", "other"])
def test_no_payment_provider_for_cash(category):
    slots = case(payment_method="cash_other", merchant="corner shop")
    assert "payment" not in cp.recipients(slots, category, "payment")
    with pytest.raises(ValueError):
        cp.draft(slots, category, "payment", "en", [], [], TODAY)


@pytest.mark.parametrize("method", ["credit_card", "debit_card", "paypal"])
def test_no_chargeback_for_a_change_of_mind(method):
    assert "payment" not in cp.recipients(case(payment_method=method, problem="changed_mind"), "changed_mind", None)


def test_a_bank_transfer_gets_a_recall_request_not_a_chargeback():
    slots = case(payment_method="bank_transfer", problem="non_delivery")
    assert "payment" in cp.recipients(slots, "non_delivery", None)
    for locale in LOCALES:
        d, text = text_of(slots, "non_delivery", "payment", locale)
        assert d.variant == "bank_recall"
        assert "chargeback" not in text.lower() and "拒付" not in text.split("————")[-1]


def test_crypto_only_for_fraud():
    assert "payment" not in cp.recipients(case(payment_method="crypto"), "non_delivery", None)
    offered = cp.recipients(case(SCAM, payment_method="crypto"), "withdrawal_scam", None)
    assert offered[:2] == ["police", "payment"]       # mainland China: 110 first (issue 12)
    assert cp.recipients(case(SCAM, payment_method="crypto", jurisdiction="US"), "withdrawal_scam", None)[0] == "payment"
    d, _ = text_of(case(SCAM, payment_method="crypto"), "withdrawal_scam", "payment")
    assert d.variant == "crypto_exchange"


def test_a_card_payment_picks_its_dispute_by_jurisdiction_and_amount():
    def variant(**changes):
        return cp.draft(case(**changes), "defect", "payment", "en", [], [], TODAY).variant
    assert variant(payment_method="credit_card") == "card"
    assert variant(payment_method="debit_card", jurisdiction="US") == "card"
    # A quality dispute about accepted goods is not a billing error (issue 12, point 4).
    assert variant(payment_method="credit_card", jurisdiction="US") == "us_claims"
    assert cp.draft(case(payment_method="credit_card", jurisdiction="US"), "non_delivery", "payment", "en",
                    [], [], TODAY).variant == "us_fcba"
    assert variant(payment_method="paypal") == "paypal"
    assert variant(payment_method="wechat_pay") == "wechat_pay"
    uk = dict(jurisdiction="UK", payment_method="credit_card")
    assert variant(**uk, amount={"value": "249.99", "currency": "GBP"}) == "uk_s75"
    assert variant(**uk, amount={"value": "60", "currency": "GBP"}) == "card"          # s.75: over £100 only
    assert variant(**uk, amount={"value": "31000", "currency": "GBP"}) == "card"       # ... and up to £30,000
    d, text = text_of(case(**uk, amount={"value": "300", "currency": "EUR"}), "defect", "payment")
    assert d.variant == "uk_s75" and d.context["amount_check"] == "unknown"
    assert "over £100 and not more than £30,000" in text


def test_fraud_gets_the_bank_and_the_police_never_a_letter_to_the_scammer():
    for category, slots in (("withdrawal_scam", SCAM),
                            ("maintenance_stalling", case(SCAM, seller_answer="asked_fees")),
                            ("defect", case(seller_answer="asked_fees"))):      # a fee demand
        offered = cp.recipients(slots, category, None)
        assert "police" in offered and "seller" not in offered and "platform" not in offered, category
        # mainland China: the police order stop-payments and freezes, so 110 comes first (issue 12)
        assert offered[:2] == ["police", "payment"]
        assert cp.recipients({**slots, "jurisdiction": "UK"}, category, None)[0] == "payment"
    assert cp.recipients(case(SCAM, payment_method="cash_other"), "withdrawal_scam", None) == ["police"]


def test_a_case_moved_to_the_fraud_path_by_a_nudge_answer_gets_the_police():
    # "They want me to pay more" moved the plan to the fraud path; the slots say nothing of it.
    slots = case(seller_answer="refused")
    assert "police" not in cp.recipients(slots, "defect", None)
    assert cp.recipients(slots, "withdrawal_scam", "police")[0] == "police"    # the plan's category and rung
    assert "police" in cp.recipients(slots, "defect", "bank")


def test_consumer_bodies_do_not_take_fraud_except_the_us_ftc():
    assert "regulator" not in cp.recipients(case(SCAM, jurisdiction="EU"), "withdrawal_scam", "regulator")
    assert "regulator" not in cp.recipients(case(SCAM), "withdrawal_scam", "regulator")
    assert "regulator" in cp.recipients(case(SCAM, jurisdiction="US"), "withdrawal_scam", "regulator")


def test_a_platform_only_when_the_case_has_one():
    assert "platform" not in cp.recipients(case(), "defect", None)
    assert "platform" in cp.recipients(case(merchant="京东 小米旗舰店"), "defect", None)
    assert "platform" in cp.recipients(case(payment_method="app_store", merchant="SomeApp"), "defect", None)
    assert cp.draft(case(merchant="京东 小米旗舰店"), "defect", "platform", "zh", [], [], TODAY).variant == "jd"
    assert cp.draft(case(jurisdiction="UK", merchant="gadgets on amazon"), "defect", "platform", "en",
                    [], [], TODAY).variant == "marketplace"


def test_the_recommended_recipient_follows_the_stage():
    slots = case(merchant="淘宝 小米旗舰店")
    assert cp.recipients(slots, "defect", None) == ["seller", "platform", "payment", "regulator"]
    assert cp.recipients(slots, "defect", "seller")[0] == "seller"
    assert cp.recipients(slots, "defect", "platform")[0] == "platform"
    assert cp.recipients(slots, "defect", "payment") == ["payment", "seller", "platform", "regulator"]
    assert cp.recipients(slots, "defect", "regulator")[0] == "regulator"
    assert cp.recipients(slots, "defect", "court")[0] == "seller"          # a last demand before court
    # a stage whose recipient does not fit: the first one that does, in the ladder's order
    cash = case(payment_method="cash_other")
    assert cp.recipients(cash, "defect", "payment") == ["seller", "regulator"]


def test_odd_input_does_not_break_the_choice():
    assert cp.recipients({}, "other", None) == ["seller", "regulator"]
    assert cp.recipients({"jurisdiction": "XX"}, None, None)[0] == "seller"
    assert cp.needed({}) == ("jurisdiction", "problem")
    assert cp.needed({"jurisdiction": "CN", "problem": "defect"}, "payment") == ("payment_method",)
    assert cp.needed(DEFECT_CN, "payment") == ()


def test_draft_refuses_what_it_cannot_write():
    with pytest.raises(ValueError):
        cp.draft(DEFECT_CN, "defect", "court", "en", [], [], TODAY)
    with pytest.raises(ValueError):
        cp.draft(DEFECT_CN, "defect", "seller", "fr", [], [], TODAY)
    with pytest.raises(ValueError):
        cp.draft(DEFECT_CN, "defect", "seller", "en", [], [], datetime(2026, 11, 20, tzinfo=timezone.utc))


# --------------------------------------------------------------------------- the legal basis

def basis_ids(slots, category, recipient="seller", today=TODAY):
    return [b["id"] for b in cp.draft(slots, category, recipient, "en", [], [], today).context["basis"]]


def test_no_seven_day_no_reason_claim_for_downloaded_software_in_cn():
    software = case(purchase_type="software", problem="changed_mind", purchase_date="2026-11-18")
    assert "cn_7day_return" not in basis_ids(software, "changed_mind")
    for locale, article in (("en", "Article 25"), ("zh", "第二十五条")):
        d, text = text_of(software, "changed_mind", "seller", locale)
        assert article not in text and not d.context["withdrawal"]
    goods = case(problem="changed_mind", purchase_date="2026-11-18")
    assert "cn_7day_return" in basis_ids(goods, "changed_mind")
    d, text = text_of(goods, "changed_mind", "seller", "zh")
    assert "《中华人民共和国消费者权益保护法》第二十五条" in text and "七日无理由退货" in text
    assert d.context["withdrawal"]


def test_a_period_that_is_over_is_not_claimed_unless_it_was_used_in_time():
    late = case(problem="changed_mind", purchase_date="2026-11-01", contacted=False, contact_date=None)
    assert "cn_7day_return" not in basis_ids(late, "changed_mind")
    in_time = case(problem="changed_mind", purchase_date="2026-11-01", contacted=True, contact_date="2026-11-05")
    assert "cn_7day_return" in basis_ids(in_time, "changed_mind")
    # UK: the 30-day right to reject, then repair, replacement or a price cut
    uk = case(jurisdiction="UK", payment_method="debit_card", contacted=False, contact_date=None)
    assert "uk_reject" in basis_ids(case(uk, purchase_date="2026-11-01"), "defect")
    assert "uk_goods_remedies" not in basis_ids(case(uk, purchase_date="2026-11-01"), "defect")
    assert basis_ids(case(uk, purchase_date="2026-09-01"), "defect") == ["uk_goods_remedies"]


def test_the_eu_withdrawal_right_only_in_the_eu():
    for jurisdiction, expected in (("EU", "eu_withdrawal"), ("UK", "uk_cancel"), ("US", None), ("CN", "cn_7day_return"),
                                   ("OTHER", None)):
        slots = case(jurisdiction=jurisdiction, problem="changed_mind", purchase_date="2026-11-15",
                     payment_method="debit_card")
        ids = basis_ids(slots, "changed_mind")
        assert ("eu_withdrawal" in ids) == (jurisdiction == "EU")
        if expected:
            assert expected in ids
        else:
            assert ids == []
        d, text = text_of(slots, "changed_mind", "seller")
        assert ("2011/83/EU" in text) == (jurisdiction == "EU")


def test_eu_downloads_keep_the_withdrawal_only_conditionally():
    game = case(jurisdiction="EU", purchase_type="game", problem="changed_mind", purchase_date="2026-11-15",
                payment_method="paypal")
    assert basis_ids(game, "changed_mind") == ["eu_withdrawal_digital"]
    _, text = text_of(game, "changed_mind", "seller")
    assert "16(m)" in text and "otherwise it remains" in text


def test_the_payment_letter_cites_the_payment_law():
    assert "us_fcba" in basis_ids(case(jurisdiction="US", payment_method="credit_card", problem="non_delivery"),
                                  "non_delivery", "payment")
    assert "uk_s75" in basis_ids(case(jurisdiction="UK", payment_method="credit_card",
                                      amount={"value": "150", "currency": "GBP"}), "defect", "payment")
    assert "uk_s75" not in basis_ids(case(jurisdiction="UK", payment_method="credit_card",
                                          amount={"value": "150", "currency": "GBP"}), "defect", "seller")
    assert "cn_unauthorized" in basis_ids(case(problem="unauthorized"), "unauthorized_or_subscription", "payment")


# --------------------------------------------------------------------------- the demand

@pytest.mark.parametrize("slots,category,recipient,days", [
    (case(jurisdiction="EU", problem="changed_mind"), "changed_mind", "seller", 14),
    (case(jurisdiction="UK", problem="changed_mind"), "changed_mind", "seller", 14),
    (case(jurisdiction="UK"), "defect", "regulator", 14),
    (case(), "defect", "seller", 7),
    (case(jurisdiction="US", payment_method="credit_card"), "defect", "payment", 7),
    (case(jurisdiction="OTHER"), "defect", "seller", 7),
    (case(SCAM, jurisdiction="EU"), "withdrawal_scam", "payment", 7),
])
def test_the_demand_date_is_data_driven(slots, category, recipient, days):
    d = cp.draft(slots, category, recipient, "en", [], [], TODAY)
    assert d.demand_date == TODAY + timedelta(days=days)
    assert d.context["demand"]["days"] == days


def test_a_police_report_has_no_demand_date():
    d = cp.draft(SCAM, "withdrawal_scam", "police", "zh", [], [], TODAY)
    assert d.demand_date is None and d.how_to_send_key == "complaint.send.police"


# --------------------------------------------------------------------------- blanks, never invented facts

@pytest.mark.parametrize("recipient", ["seller", "regulator"])
def test_facts_the_case_lacks_are_marked_blanks(recipient):
    bare = {"jurisdiction": "CN", "problem": "defect"}
    d = cp.draft(bare, "defect", recipient, "en", [], [], TODAY)
    assert d.missing == ("merchant", "purchase_date", "amount", "payment_method")
    for locale, blanks in (("en", ["[____ amount paid]", "[____ the seller's name]", "[____ date of purchase or delivery]",
                                   "[____ how you paid]", "[____ your name]", "[____ order number]"]),
                           ("zh", ["【请填写：支付金额】", "【请填写：商家名称】", "【请填写：购买或收货日期】",
                                   "【请填写：支付方式】", "【请填写：姓名】", "【请填写：订单号】"])):
        message, text, md = render_draft(cp.draft(bare, "defect", recipient, locale, [], [], TODAY))
        for out in (message, text, md):
            for blank in blanks:
                assert blank in out.replace("&#39;", "'"), (locale, blank)
            assert "None" not in out and "{{" not in out
    # the contact date is a blank only when the user said they asked
    asked = cp.draft({**bare, "contacted": True}, "defect", recipient, "en", [], [], TODAY)
    assert "contact_date" in asked.missing
    assert "[____ date you first asked for the refund]" in render_draft(asked)[1]


def test_the_police_report_takes_what_police_forms_ask_for():
    story = "They sent me to http://gold-win.vip/app?x=1 and the app GoldWin from www.goldwin.top, then 系统维护."
    d, text = text_of(case(SCAM, story=story, merchant="GoldWin 金赢"), "withdrawal_scam", "police", "zh")
    assert d.context["urls"] == ["http://gold-win.vip/app?x=1", "www.goldwin.top"]
    for part in ("GoldWin 金赢", "http://gold-win.vip/app?x=1", "¥52,000.00", "2026年10月28日", "【请填写：具体时间】",
                 "【请填写：收款账户、银行卡、钱包地址或收款码（含户名和开户行）】", "【请填写：身份证号码】",
                 "110", "96110", "国家反诈中心", "第二十条"):
        assert part in text, part
    _, en = text_of(case(SCAM, jurisdiction="UK"), "withdrawal_scam", "police", "en")
    # Report Fraud replaced Action Fraud on 4 Dec 2025 (issue 12, point 11)
    assert "Report Fraud" in en and "reportfraud.police.uk" in en and "0300 123 2040" in en
    _, us = text_of(case(SCAM, jurisdiction="US"), "withdrawal_scam", "police", "en")
    assert "ic3.gov" in us


def test_sending_instructions_come_from_the_rules_data():
    for slots, category, recipient, locale, parts in (
        (case(jurisdiction="UK", payment_method="debit_card"), "defect", "regulator", "en", ["0808 223 1133"]),
        (case(jurisdiction="US", payment_method="credit_card"), "defect", "regulator", "en",
         ["ReportFraud.ftc.gov", "consumerfinance.gov/complaint", "855-411-2372"]),
        (case(), "defect", "regulator", "zh", ["全国12315平台", "12315", "消费者协会"]),
        (case(jurisdiction="EU"), "defect", "regulator", "en", ["European Consumer Centre", "eccnet.eu"]),
        (case(payment_method="wechat_pay"), "defect", "payment", "zh", ["账单详情 → 对订单有疑惑 → 投诉商家"]),
        (case(payment_method="app_store", merchant="Apple App Store"), "defect", "platform", "en",
         ["reportaproblem.apple.com"]),
    ):
        _, text = text_of(slots, category, recipient, locale)
        for part in parts:
            assert part in text, (recipient, part)


def test_user_text_is_data_never_a_template():
    slots = case(merchant="{{ 7*7 }} Shop", story="{% for x in range(3) %}boom{% endfor %} {{ config }}")
    for locale in LOCALES:
        message, text, md = render_draft(cp.draft(slots, "defect", "seller", locale, [], [], TODAY))
        assert "{{ 7*7 }} Shop" in text and "49 Shop" not in text
        assert "{% for x in range(3) %}boom{% endfor %}" in text and "boomboom" not in text


def test_a_known_name_replaces_the_blank():
    _, text = text_of(case(), "defect", "seller", "en", user_name="Li <Lei>")
    assert "Li <Lei>" in text and "[____ your name]" not in text


# --------------------------------------------------------------------------- the history

def test_history_from_the_timeline_in_order_with_dates():
    timeline = [
        SimpleNamespace(kind="escalation", data={"rung": "platform", "path": "consumer"}, at="2026-11-18T03:00:00+00:00"),
        {"kind": "nudge_answer", "data": {"answer": "refused", "rung": ["seller", "platform"]},
         "at": datetime(2026, 11, 17, 2, tzinfo=timezone.utc)},
        {"kind": "nudge_answer", "data": {"answer": "snooze_1d"}, "at": "2026-11-16T00:00:00+00:00"},
        {"kind": "said", "data": {"text": "not history"}, "at": "2026-11-16T00:00:00+00:00"},
        {"kind": "note", "data": {"text": "  "}, "at": "2026-11-16T00:00:00+00:00"},
        {"kind": "answer", "data": {"slot": "seller_answer", "value": "refused"}, "at": "2026-11-13T08:00:00Z"},
    ]
    history = cp.draft(DEFECT_CN, "defect", "regulator", "en", timeline, [], TODAY).context["history"]
    assert [(h["kind"], h.get("who"), h["date"]) for h in history] == [
        ("asked", "seller", "2026-11-12"),
        ("answer", "seller", None),
        ("refused", "seller", "2026-11-17"),
        ("escalation", "platform", "2026-11-18"),
    ]
    assert history[1]["reported"] == "2026-11-13"
    _, text = text_of(DEFECT_CN, "defect", "regulator", "en", timeline)
    assert "17 Nov 2026: 小米旗舰店 refused or did not resolve it." in text
    assert "18 Nov 2026: I took the matter to the platform." in text
    _, seller = text_of(DEFECT_CN, "defect", "seller", "en", timeline)
    assert "12 Nov 2026: I asked you for a refund." in seller and "You refused the refund (as of 13 Nov 2026)." in seller


def test_evidence_records_are_listed_and_long_texts_kept_whole_in_the_documents():
    long = "chat log " + "x" * 400
    evidence = [{"kind": "photo", "file_id": "A", "text": None, "at": "2026-11-11T09:00:00+00:00"},
                {"kind": "sticker", "file_id": "B", "text": long, "at": "2026-11-12T09:00:00+00:00"}]
    d = cp.draft(DEFECT_CN, "defect", "seller", "en", [], evidence, TODAY)
    message, text, _ = render_draft(d)
    assert "1. Photo (11 Nov 2026)" in text and f"2. Item (12 Nov 2026): {long}" in text
    assert long not in message and "2. Item (12 Nov 2026): chat log" in message


def test_without_evidence_the_checklist_says_what_to_attach():
    _, text = text_of(DEFECT_CN, "defect", "seller", "en")
    assert "ATTACH WHAT YOU HAVE" in text
    assert messages.plain(messages.render("en", "evidence.defect")) in text


def test_drafts_are_plain_data_and_deterministic():
    d = cp.draft(DEFECT_CN, "defect", "seller", "zh", [], [], TODAY)
    json.dumps(d.context, ensure_ascii=False)
    assert render_draft(d) == render_draft(cp.draft(DEFECT_CN, "defect", "seller", "zh", [], [], TODAY))
    source = (ROOT / "dialogs/complaint.py").read_text("utf-8")
    assert "now(" not in source and "today()" not in source
