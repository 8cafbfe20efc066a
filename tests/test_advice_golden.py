"""Golden advice for the 45 kinds of case of the issue 12 audit (jurisdiction x situation x
payment), in English and Chinese, as the user reads it (plain text of the Telegram message).

tests/golden/advice_<case>_<locale>.txt. After an intended change of rules or wording, regenerate
with UPDATE_GOLDEN=1 and review every changed line (git diff) before committing.
"""
from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import jinja2.utils
import markupsafe
import pytest

import messages
from dialogs.advice import advise, case_context

GOLDEN = Path(__file__).parent / "golden"
TODAY = date(2026, 11, 20)

# situation -> (category, slots)
SITUATIONS = {
    "defect": ("defect", {"purchase_type": "goods", "seller_answer": "refused"}),
    "change_of_mind": ("changed_mind", {"purchase_type": "goods", "seller_answer": "none"}),
    "non_delivery": ("non_delivery", {"purchase_type": "goods", "seller_answer": "none",
                                      "expected_date": "2026-11-08"}),
    "unauthorised": ("unauthorized_or_subscription", {"purchase_type": "subscription", "seller_answer": "refused"}),
    "stalled_refund": ("maintenance_stalling", {"purchase_type": "service", "seller_answer": "maintenance"}),
    "withdrawal_scam": ("withdrawal_scam", {"purchase_type": "platform_funds", "seller_answer": "asked_fees"}),
}
CURRENCY = {"CN": "CNY", "EU": "EUR", "UK": "GBP", "US": "USD"}
MERCHANT = {"CN": "淘宝", "EU": "Zalando", "UK": "Argos", "US": "Best Buy"}
# The first payment of each jurisdiction for every situation; the second for the five disputes
# (and crypto for the US scam): 4 x 6 + 4 x 5 + 1 = 45 cases.
PAYMENTS = {
    "CN": ("alipay", "wechat_pay"),
    "EU": ("credit_card", "direct_debit"),
    "UK": ("debit_card", "bank_transfer"),
    "US": ("credit_card", "app_store"),
}


def _cases() -> dict[str, tuple[dict, str]]:
    cases: dict[str, tuple[dict, str]] = {}
    for jurisdiction, payments in PAYMENTS.items():
        for situation, (category, extra) in SITUATIONS.items():
            methods = payments if situation != "withdrawal_scam" else payments[:1]
            if jurisdiction == "US" and situation == "withdrawal_scam":
                methods = (payments[0], "crypto")
            for method in methods:
                slots = {
                    "jurisdiction": jurisdiction, "payment_method": method, "merchant": MERCHANT[jurisdiction],
                    "amount": {"value": "249.00", "currency": CURRENCY[jurisdiction]},
                    "purchase_date": "2026-11-01", "problem_date": "2026-11-03",
                    "contacted": True, "contact_date": "2026-11-05", **extra,
                }
                if method == "app_store":
                    slots.update(merchant="Google Play", purchase_type="game")
                if situation == "withdrawal_scam":
                    slots["story"] = "平台说系统维护，要我先交解冻金才能提现" if jurisdiction == "CN" else \
                        "The investment site says maintenance and wants a release fee before I can withdraw."
                cases[f"{jurisdiction.lower()}_{situation}_{method}"] = (slots, category)
    return cases


CASES = _cases()


@pytest.fixture(autouse=True)
def _markup_shim(monkeypatch):
    if not hasattr(jinja2.utils, "Markup"):
        monkeypatch.setattr(jinja2.utils, "Markup", markupsafe.Markup, raising=False)


def test_there_are_45_audit_cases():
    assert len(CASES) == 45


@pytest.mark.parametrize("locale", ["en", "zh"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_advice(name, locale):
    slots, category = CASES[name]
    text = messages.plain(messages.render(locale, "advice_body",
                                          advice=advise(slots, category, TODAY).context(), case=case_context(slots, category, TODAY)))
    path = GOLDEN / f"advice_{name}_{locale}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path.name} missing: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs: review, then UPDATE_GOLDEN=1"


def test_no_stray_advice_golden_files():
    expected = {f"advice_{name}_{locale}.txt" for name in CASES for locale in ("en", "zh")}
    assert {p.name for p in GOLDEN.glob("advice_*.txt")} == expected


# Issue 17: a date the bot can compute is in the sentence, the same one the seller's letter names.
_BRACKETED = re.compile(r"\[[^\]]*(?:date|day|日)[^\]]*\]|from now|某月某日|明确日期", re.IGNORECASE)


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_sentence_leaves_a_computable_date_to_the_user(name):
    from dialogs.complaint import draft, recipients
    slots, category = CASES[name]
    context = case_context(slots, category, TODAY)
    for locale in ("en", "zh"):
        text = messages.plain(messages.render(locale, "advice_body", advice=advise(slots, category, TODAY).context(),
                                              case=context))
        assert not _BRACKETED.search(text), (locale, _BRACKETED.search(text).group(0))
    if "seller" in recipients(slots, category):
        letter = draft(slots, category, "seller", "en", [], [], TODAY)
        assert letter.demand_date.isoformat() == context["reply_by"]
