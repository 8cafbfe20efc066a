"""Issue 12: the audit of the advice. One test per point, named after the case and the law; each
checks what the user sees (the advice text, its dates, the letter), in English and Chinese."""
from __future__ import annotations

from datetime import date, timedelta

import jinja2.utils
import markupsafe
import pytest

import messages
from messages.complaint import render_draft
from dialogs import complaint as cp
from dialogs.advice import advise
from dialogs.followup import ladders_for

TODAY = date(2026, 11, 20)


@pytest.fixture(autouse=True)
def _markup_shim(monkeypatch):
    if not hasattr(jinja2.utils, "Markup"):
        monkeypatch.setattr(jinja2.utils, "Markup", markupsafe.Markup, raising=False)


def shown(case: dict, category: str, locale: str = "en", today: date = TODAY) -> str:
    a = advise(case, category, today)
    return messages.plain(messages.render(locale, "advice_body", advice=a.context(), case=case))


def dates(case: dict, category: str, today: date = TODAY) -> dict[str, date]:
    return {d.id: d.date for d in advise(case, category, today).deadlines}


def letter(case: dict, category: str, recipient: str, locale: str = "en") -> tuple[cp.Draft, str]:
    d = cp.draft(case, category, recipient, locale, [], [], TODAY)
    return d, render_draft(d)[1]


# ---------------------------------------------------------------------------------------- 1

def test_1_us_fcba_and_reg_e_notices_are_never_dated_late():
    """12 CFR 1026.13(b)(1), 1005.11(b)(1): 60 days from the statement, not purchase + 90."""
    card = {"jurisdiction": "US", "payment_method": "credit_card", "purchase_type": "goods",
            "purchase_date": "2026-11-01"}
    got = dates(card, "non_delivery")
    assert got["us_fcba_notice_safe"] == date(2026, 12, 31)          # purchase + 60: the safe date
    assert "us_fcba_notice" not in got
    text = shown(card, "non_delivery")
    assert "Billing-error notice (safe date): 31 Dec 2026" in text
    assert "about" not in text.split("Billing-error notice")[1].split("\n")[0]
    assert "稳妥日期" in shown(card, "non_delivery", "zh")
    # with the statement date it counts from the statement, as the law does
    dated = dates({**card, "statement_date": "2026-11-12"}, "non_delivery")
    assert dated["us_fcba_notice"] == date(2027, 1, 11) and "us_fcba_notice_safe" not in dated
    debit = {"jurisdiction": "US", "payment_method": "debit_card", "purchase_date": "2026-11-01"}
    assert dates(debit, "unauthorized_or_subscription")["us_rege_notice_safe"] == date(2026, 12, 31)
    # every safe date is on or before the law's own date, whatever the statement date
    for lag in range(0, 35):
        statement = (date(2026, 11, 1) + timedelta(days=lag)).isoformat()
        law = dates({**card, "statement_date": statement}, "non_delivery")["us_fcba_notice"]
        assert got["us_fcba_notice_safe"] <= law


def test_1_the_intake_asks_us_card_users_for_the_statement_date():
    from dialogs.graph import load
    graph = load()
    node = graph.nodes["problem_date"]
    assert node.next_node({"jurisdiction": "US", "payment_method": "credit_card"}) == "statement_date"
    assert node.next_node({"jurisdiction": "US", "payment_method": "direct_debit"}) == "statement_date"
    assert node.next_node({"jurisdiction": "UK", "payment_method": "credit_card"}) == "contacted"
    assert graph.nodes["statement_date"].optional and graph.nodes["expected_date"].optional


# ---------------------------------------------------------------------------------------- 2

def test_2_a_non_delivery_chargeback_counts_from_the_expected_date_not_the_purchase():
    """Visa 13.1: 120 days from the last day the goods or services were expected."""
    case = {"jurisdiction": "EU", "payment_method": "credit_card", "purchase_type": "service",
            "purchase_date": "2026-05-01", "expected_date": "2026-10-15"}
    got = dates(case, "non_delivery")
    assert got == {"card_chargeback_expected": date(2027, 2, 12)}    # still open
    text = shown(case, "non_delivery")
    assert "passed" not in text and "120 days from the due date" in text
    assert "从应到日期起算" in shown(case, "non_delivery", "zh")
    # without an expected date: counted from the payment, as before
    assert dates({**case, "expected_date": None}, "non_delivery") == {"card_chargeback": date(2026, 8, 29)}


def test_2_the_intake_asks_card_non_delivery_cases_for_the_expected_date():
    from dialogs.graph import load
    graph = load()
    slots = {"jurisdiction": "UK", "payment_method": "debit_card", "problem": "non_delivery"}
    assert graph.nodes["problem_date"].next_node(slots) == "expected_date"
    assert graph.nodes["statement_date"].next_node({**slots, "jurisdiction": "US"}) == "expected_date"
    assert graph.nodes["expected_date"].next_node(slots) == "contacted"


# ---------------------------------------------------------------------------------------- 3

@pytest.mark.parametrize("jurisdiction, step, words", [
    ("UK", "step.pay.uk_ddg", "Direct Debit Guarantee"),
    ("EU", "step.pay.eu_sepa_dd", "8 weeks"),
    ("US", "step.pay.us_ach", "Regulation E"),
])
def test_3_an_unauthorised_direct_debit_gets_the_bank_refund_not_no_chargeback(jurisdiction, step, words):
    case = {"jurisdiction": jurisdiction, "payment_method": "direct_debit", "purchase_type": "subscription",
            "purchase_date": "2026-11-01"}
    a = advise(case, "unauthorized_or_subscription", TODAY)
    assert step in a.steps
    assert "step.pay.no_chargeback" not in a.steps and "step.pay.bank_recall" not in a.steps
    text = shown(case, "unauthorized_or_subscription")
    assert words in text and "no chargeback" not in text and "nobody can" not in text
    d, body = letter(case, "unauthorized_or_subscription", "payment")
    assert d.variant in ("uk_ddg", "eu_sepa_dd", "us_ach")
    assert "not authorised" in body or "without my authority" in body or "did not authorise" in body


def test_3_sepa_direct_debit_refund_8_weeks_and_13_months():
    case = {"jurisdiction": "EU", "payment_method": "direct_debit", "purchase_date": "2026-11-01"}
    got = dates(case, "unauthorized_or_subscription")
    assert got["eu_sepa_dd_refund"] == date(2026, 12, 27)        # 8 weeks after the debit
    assert got["eu_sepa_dd_unauthorised"] == date(2027, 12, 1)   # 13 months
    assert "8周" in shown(case, "unauthorized_or_subscription", "zh")


def test_3_direct_debit_is_an_answer_to_how_did_you_pay():
    from dialogs.graph import load
    node = load().nodes["payment_method"]
    assert node.option("direct_debit") is not None
    assert "direct debit" in node.option("direct_debit").words


# ---------------------------------------------------------------------------------------- 4

def test_4_us_faulty_goods_on_a_credit_card_go_by_claims_and_defenses_not_billing_error():
    """Commentary to 12 CFR 1026.13(a)(3); 15 U.S.C. 1666i / 1026.12(c)."""
    case = {"jurisdiction": "US", "payment_method": "credit_card", "purchase_type": "goods",
            "purchase_date": "2026-11-01", "amount": {"value": "300.00", "currency": "USD"}}
    a = advise(case, "defect", TODAY)
    assert "step.pay.us_fcba" not in a.steps and "step.pay.us_claims_defenses" in a.steps
    assert not [d for d in a.deadlines if d.id.startswith("us_fcba")]
    text = shown(case, "defect")
    assert "over $50" in text and "100 miles" in text and "good faith" in text
    d, body = letter(case, "defect", "payment")
    assert d.variant == "us_claims" and "1666i" in body
    assert "not delivered" not in body and "not authorised" not in body
    small = advise({**case, "amount": {"value": "40.00", "currency": "USD"}}, "defect", TODAY)
    assert "step.pay.us_claims_defenses" not in small.steps


def test_4_letters_state_only_what_the_user_said():
    base = {"jurisdiction": "US", "payment_method": "credit_card", "purchase_type": "goods",
            "purchase_date": "2026-11-01"}
    def intro(category: str, locale: str = "en") -> str:
        _, body = letter(base, category, "payment", locale)
        start = body.index("billing error notice" if locale == "en" else "账单错误通知：")
        return body[start:body.index("\n", start)]
    assert "not delivered or provided as agreed" in intro("non_delivery")
    assert "authorise" not in intro("non_delivery")
    assert "I did not authorise this charge" in intro("unauthorized_or_subscription")
    assert "not delivered" not in intro("unauthorized_or_subscription")
    assert "未按约定交付" in intro("non_delivery", "zh") and "未经本人授权" not in intro("non_delivery", "zh")


# ---------------------------------------------------------------------------------------- 5

def test_5_uk_app_fraud_claim_says_13_months_excess_and_what_is_covered():
    case = {"jurisdiction": "UK", "payment_method": "bank_transfer", "purchase_type": "platform_funds"}
    text = shown(case, "withdrawal_scam")
    for words in ("£85,000", "13 months of the last payment", "£100", "Faster Payments and CHAPS",
                  "5 business days", "Card, crypto, international payments and transfers to your own accounts"):
        assert words in text, words
    zh = shown(case, "withdrawal_scam", "zh")
    assert "13个月" in zh and "£100" in zh and "5个工作日" in zh


def test_5_the_ombudsman_step_says_payment_complaints_are_answered_sooner():
    case = {"jurisdiction": "UK", "payment_method": "debit_card", "purchase_type": "goods",
            "purchase_date": "2026-11-01"}
    text = shown(case, "non_delivery")
    assert "Financial Ombudsman Service" in text and "for a payment-service complaint it must answer sooner" in text


# ---------------------------------------------------------------------------------------- 6

def test_6_cn_gambling_warning_only_where_gambling_is_said():
    investment = {"jurisdiction": "CN", "payment_method": "bank_transfer", "purchase_type": "platform_funds",
                  "story": "投资理财平台说系统维护，提现不了"}
    assert "warning.scam.gambling_cn" not in advise(investment, "withdrawal_scam", TODAY).warnings
    assert "赌资" not in shown(investment, "withdrawal_scam", "zh")
    gambling = {**investment, "story": "在博彩网站下注赢了钱，提现说系统维护"}
    zh = shown(gambling, "withdrawal_scam", "zh")
    assert "赌资可能被依法没收" in zh and "操纵输赢、拒不出款的平台属于诈骗" in zh


@pytest.mark.parametrize("method", ["alipay", "wechat_pay"])
def test_6_cn_wallet_scam_never_sends_the_victim_to_complain_to_the_merchant(method):
    case = {"jurisdiction": "CN", "payment_method": method, "purchase_type": "platform_funds"}
    a = advise(case, "withdrawal_scam", TODAY)
    assert "step.pay.alipay" not in a.steps and "step.pay.wechat" not in a.steps
    assert "step.scam.cn_wallet_report" in a.steps
    zh = shown(case, "withdrawal_scam", "zh")
    assert "不要走“投诉商家”" in zh and "投诉商家（" not in zh
    d, body = letter(case, "withdrawal_scam", "payment", "zh")
    assert d.variant == "wallet_fraud" and "骗子" in body


def test_6_cn_fraud_110_comes_first_then_the_bank():
    """反电信网络诈骗法 第二十条: emergency stop-payment and freezing are ordered by the police."""
    a = advise({"jurisdiction": "CN", "payment_method": "bank_transfer"}, "withdrawal_scam", TODAY)
    assert a.steps[:2] == ("step.scam.police_cn", "step.scam.call_bank_cn")
    zh = shown({"jurisdiction": "CN", "payment_method": "bank_transfer"}, "withdrawal_scam", "zh")
    assert zh.index("110") < zh.index("联系银行")


# ---------------------------------------------------------------------------------------- 7

def test_7_cn_seven_day_return_asked_in_time_is_not_shown_as_lost():
    """网络购买商品七日无理由退货暂行办法 第十条, 第三十一条."""
    case = {"jurisdiction": "CN", "payment_method": "alipay", "purchase_type": "goods",
            "purchase_date": "2026-11-01", "contacted": True, "contact_date": "2026-11-05",
            "seller_answer": "refused"}
    a = advise(case, "changed_mind", TODAY)                           # today is after the 7 days
    d = next(d for d in a.deadlines if d.id == "cn_7day_no_reason_return")
    assert d.met and d.days_left < 0
    text = shown(case, "changed_mind")
    assert "passed" not in text.split("7-day no-reason return:")[1].split("\n")[0]
    assert "your request was in time" in text and "that refusal is itself a breach" in text
    zh = shown(case, "changed_mind", "zh")
    assert "你已在期限内提出" in zh and "本身就违反" in zh
    late = advise({**case, "contact_date": "2026-11-12"}, "changed_mind", TODAY)
    assert not next(d for d in late.deadlines if d.id == "cn_7day_no_reason_return").met


# ---------------------------------------------------------------------------------------- 8

@pytest.mark.parametrize("jurisdiction", ["EU", "UK"])
def test_8_eu_uk_change_of_mind_by_card_can_be_disputed_after_an_ignored_withdrawal(jurisdiction):
    """Visa 13.7 covers distance contracts cancelled in the 14-day period."""
    case = {"jurisdiction": jurisdiction, "payment_method": "credit_card", "purchase_type": "goods",
            "purchase_date": "2026-11-01", "contacted": True, "contact_date": "2026-11-04", "seller_answer": "none"}
    a = advise(case, "changed_mind", TODAY)
    assert "step.pay.card_after_withdrawal" in a.steps
    assert "warning.no_chargeback_change_of_mind" not in a.warnings
    assert "payment" in ladders_for(case, "changed_mind")["consumer"]["rungs"]   # reminders reach the bank too
    d, body = letter(case, "changed_mind", "payment")
    assert d.variant == "card_withdrawal" and "within the 14-day period" in body
    us = advise({**case, "jurisdiction": "US"}, "changed_mind", TODAY)
    assert "warning.no_chargeback_change_of_mind" in us.warnings


# ---------------------------------------------------------------------------------------- 9

def test_9_google_plays_48_hours_is_only_the_change_of_mind_window():
    base = {"jurisdiction": "US", "payment_method": "app_store", "merchant": "Google Play",
            "purchase_type": "game", "purchase_date": "2026-11-10"}
    assert "googleplay_refund" in dates(base, "changed_mind")
    for category in ("unauthorized_or_subscription", "defect"):
        assert "googleplay_refund" not in dates(base, category)
        a = advise(base, category, TODAY)
        assert "step.pay.app_store_card" in a.steps                     # the card issuer remains
        assert "not limited to 48 hours" in shown(base, category)


# ---------------------------------------------------------------------------------------- 10

def test_10_uk_unauthorised_payment_cites_psrs_regulations_74_and_76():
    case = {"jurisdiction": "UK", "payment_method": "debit_card", "purchase_date": "2026-11-01"}
    _, body = letter(case, "unauthorized_or_subscription", "payment")
    assert "Regulations 74 and 76 of the Payment Services Regulations 2017" in body
    assert "95" not in body


def test_10_cn_auto_renewal_cites_the_implementing_regulations_article_10():
    case = {"jurisdiction": "CN", "payment_method": "alipay", "purchase_type": "subscription",
            "purchase_date": "2026-11-01", "story": "会员自动续费没有提醒"}
    assert "step.seller.cn_auto_renewal" in advise(case, "unauthorized_or_subscription", TODAY).steps
    _, body = letter(case, "unauthorized_or_subscription", "seller", "zh")
    assert "《消费者权益保护法实施条例》第十条" in body and "第五十七条" not in body


def test_10_arbitration_is_offered_only_with_an_arbitration_agreement():
    case = {"jurisdiction": "CN", "payment_method": "alipay", "purchase_type": "goods"}
    assert "arbitration agreement" in shown(case, "defect") or "agreed to it" in shown(case, "defect")
    assert "仲裁协议" in shown(case, "defect", "zh")


# ---------------------------------------------------------------------------------------- 11

def test_11_uk_fraud_is_reported_to_report_fraud_not_action_fraud():
    case = {"jurisdiction": "UK", "payment_method": "credit_card"}
    text = shown(case, "withdrawal_scam")
    assert "Report it to Report Fraud" in text and "reportfraud.police.uk" in text and "0300 123 2040" in text
    _, body = letter(case, "withdrawal_scam", "police")
    assert "Report Fraud" in body and "reportfraud.police.uk" in body


# ---------------------------------------------------------------------------------------- 12

def test_12_unsupported_claims_are_gone_or_hedged():
    apple = {"payment_method": "app_store", "merchant": "Apple", "purchase_date": "2026-11-10"}
    assert "24" not in shown(apple, "changed_mind") and "48 hours" not in shown(apple, "changed_mind")
    alipay = {"jurisdiction": "CN", "payment_method": "alipay", "purchase_type": "goods"}
    assert "could not verify" in shown(alipay, "defect") and "无法核实" in shown(alipay, "defect", "zh")
    cn_card = {"jurisdiction": "CN", "payment_method": "credit_card", "purchase_date": "2026-11-01"}
    assert "card_chargeback" not in dates(cn_card, "non_delivery")
    zh = shown(cn_card, "non_delivery", "zh")
    assert "争议交易" in zh and "问清该行受理争议的期限" in zh and "120天" not in zh


# ---------------------------------------------------------------------------------------- 13

def test_13_sources_shown_are_official_citations_with_the_official_address():
    case = {"jurisdiction": "CN", "payment_method": "alipay", "purchase_type": "goods",
            "purchase_date": "2026-11-15"}
    zh = shown(case, "changed_mind", "zh")
    assert "依据：《消费者权益保护法》第二十五条（flk.npc.gov.cn）" in zh
    assert "LawRefBook" not in zh and "repo" not in zh and "quoted" not in zh


# ---------------------------------------------------------------------------------------- 14

def test_14_eu_goods_two_year_liability_and_one_year_presumption():
    """Directive (EU) 2019/771 arts. 10-11."""
    case = {"jurisdiction": "EU", "payment_method": "paypal", "purchase_type": "goods"}
    text = shown(case, "defect")
    assert "within 2 years of delivery" in text and "first year is presumed" in text


def test_14_uk_six_month_presumption():
    """Consumer Rights Act 2015 s.19(14)."""
    assert "within 6 months of delivery is presumed" in shown({"jurisdiction": "UK", "purchase_type": "goods"},
                                                                 "defect")


def test_14_cn_quality_after_7_days_durable_goods_and_one_route_at_a_time():
    """消费者权益保护法 第二十三条, 第二十四条; 投诉举报处理暂行办法 第十五条."""
    zh = shown({"jurisdiction": "CN", "purchase_type": "goods", "payment_method": "alipay"}, "defect", "zh")
    assert "7日后仍可退货" in zh and "6个月内" in zh and "举证责任" in zh
    assert "消协已处理过的同一纠纷，12315 不再受理" in zh


def test_14_eu_withdrawal_extended_12_months_without_information():
    assert "extended by 12 months" in shown({"jurisdiction": "EU", "purchase_type": "goods"}, "changed_mind")


def test_14_section_75_not_offered_for_a_known_100_pounds_or_less():
    case = {"jurisdiction": "UK", "payment_method": "credit_card", "purchase_type": "goods"}
    assert "step.pay.uk_section75" in advise(case, "defect", TODAY).steps                    # amount unknown
    assert "step.pay.uk_section75" in advise({**case, "amount": {"value": "100.01", "currency": "GBP"}},
                                             "defect", TODAY).steps
    assert "step.pay.uk_section75" not in advise({**case, "amount": {"value": "100", "currency": "GBP"}},
                                                 "defect", TODAY).steps


def test_14_card_funded_paypal_keeps_the_card_issuer_after_180_days():
    text = shown({"jurisdiction": "OTHER", "payment_method": "paypal"}, "non_delivery")
    assert "Past the 180 days and PayPal charged your card? Ask your card issuer." in text
