"""The data that crosses the boundary between `dialogs/` and the shells.

Everything here is plain, immutable and JSON-friendly: a shell can store it,
a test can compare it, and `messages` can render it without knowing the engine.

Slots (the facts of a case) are a dict with these keys, all optional:

    jurisdiction    "CN" | "EU" | "UK" | "US" | "HK" | "TW" | "SG" | "MY" | "OTHER"
    purchase_type   "software" | "subscription" | "course" | "game" | "goods"
                    | "service" | "platform_funds" | "other"
    merchant        str, the seller or platform name as the user wrote it
    payment_method  "credit_card" | "debit_card" | "paypal" | "alipay" | "wechat_pay"
                    | "app_store" | "bank_transfer" | "direct_debit" | "crypto" | "cash_other"
    amount          {"value": "1299.00", "currency": "CNY" | "USD" | "EUR" | "GBP" | ... | None}
    purchase_date   "YYYY-MM-DD" (purchase or delivery)
    problem         "defect" | "mismatch" | "non_delivery" | "unauthorized"
                    | "changed_mind" | "withdrawal_blocked" | "refund_delayed" | "other"
    problem_date    "YYYY-MM-DD"
    contacted       True | False
    contact_date    "YYYY-MM-DD"
    seller_answer   "none" | "refused" | "maintenance" | "promised" | "asked_fees"
    statement_date  "YYYY-MM-DD", US card and bank cases: the statement that first showed the charge
    expected_date   "YYYY-MM-DD", non-delivery by card: when it should have arrived or been provided
    story           str, the user's own account (every free text they typed, joined)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, TypedDict

JURISDICTIONS = ("CN", "HK", "TW", "SG", "MY", "EU", "UK", "US", "OTHER")
PURCHASE_TYPES = ("software", "subscription", "course", "game", "goods", "service", "platform_funds", "other")
PAYMENT_METHODS = (
    "credit_card", "debit_card", "paypal", "alipay", "wechat_pay",
    "app_store", "bank_transfer", "direct_debit", "crypto", "cash_other",
)
PROBLEMS = (
    "defect", "mismatch", "non_delivery", "unauthorized",
    "changed_mind", "withdrawal_blocked", "refund_delayed", "other",
)
SELLER_ANSWERS = ("none", "refused", "maintenance", "promised", "asked_fees")
CATEGORIES = (
    "withdrawal_scam", "maintenance_stalling", "defect", "mismatch", "non_delivery",
    "unauthorized_or_subscription", "changed_mind", "other",
)
LOCALES = ("en", "zh", "zh-Hant")   # zh-Hant: Traditional Chinese, made from zh (messages/hant.py)


class Amount(TypedDict):
    """The `amount` slot: the value as text to the cent, and the currency when known."""
    value: str
    currency: str | None


class Slots(TypedDict, total=False):
    """The slots as the module docstring lists them, for the code that reads them by name.

    Stored slots come back from JSON and the graph names its slots as data: readers check a
    value's type before relying on it, and code that goes by a slot name held in a variable
    keeps a `Mapping[str, Any]`."""
    jurisdiction: str
    purchase_type: str
    merchant: str
    payment_method: str
    amount: Amount
    purchase_date: str
    problem: str
    problem_date: str
    contacted: bool
    contact_date: str
    seller_answer: str
    statement_date: str
    expected_date: str
    story: str


@dataclass(frozen=True)
class Button:
    """One option of a question: a stable id (callback data) and the catalog key of its label."""
    id: str
    label: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A message to show: a catalog/template key, its context, and its buttons."""
    key: str
    context: Mapping[str, Any] = field(default_factory=dict)
    buttons: tuple[Button, ...] = ()


# What an Effect asks of the shell: `new_case` and `advised` from the engine (dialogs/engine.py),
# the others from the reminder plan (dialogs/followup.py, whose docstring says what each carries;
# `draft_complaint` is named by rules/ladder.yaml's answers).
EffectKind = Literal["new_case", "advised", "replan_followups", "cancel_followups", "set_case_status",
                     "set_category", "draft_complaint"]


@dataclass(frozen=True)
class Effect:
    """Something the shell must do after saving the state: `kind` names it, `data` says what."""
    kind: EffectKind
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineEvent:
    """An entry for the case timeline (every answer, the advice, ...)."""
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
