"""dialogs.amounts: typed amount answers and amounts in stories (expected values worked out by hand)."""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from dialogs import amounts
from dialogs.amounts import AmountAnswer, find_amounts, parse_amount
from dialogs.dates import fold_width

UNPARSED = AmountAnswer("unparsed")


def a(value: str, currency: str | None = None) -> AmountAnswer:
    return AmountAnswer("amount", Decimal(value), currency)


CNY_CASES = [
    ("¥1,299", a("1299.00", "CNY")),
    ("￥1299", a("1299.00", "CNY")),
    ("1299元", a("1299.00", "CNY")),
    ("1299块", a("1299.00", "CNY")),
    ("1299块钱", a("1299.00", "CNY")),
    ("1299 RMB", a("1299.00", "CNY")),
    ("RMB1299", a("1299.00", "CNY")),
    ("人民币1299", a("1299.00", "CNY")),
    ("CNY 1299", a("1299.00", "CNY")),
    ("一千二百元", a("1200.00", "CNY")),
    ("一千二", a("1200.00")),
    ("两千五百块", a("2500.00", "CNY")),
    ("三百五", a("350.00")),
    ("一千零五元", a("1005.00", "CNY")),
    ("十元", a("10.00", "CNY")),
    ("1.2万", a("12000.00")),
    ("1.2万元", a("12000.00", "CNY")),
    ("三万", a("30000.00")),
    ("一万二", a("12000.00")),
    ("两万五千块", a("25000.00", "CNY")),
    ("3千元", a("3000.00", "CNY")),
    ("99.5元", a("99.50", "CNY")),
]

OTHER_CURRENCY_CASES = [
    ("$49.99", a("49.99", "USD")),
    ("49.99 USD", a("49.99", "USD")),
    ("US$49.99", a("49.99", "USD")),
    ("USD 49.99", a("49.99", "USD")),
    ("30 dollars", a("30.00", "USD")),
    ("49,99 €", a("49.99", "EUR")),
    ("€49.99", a("49.99", "EUR")),
    ("1.299,50 €", a("1299.50", "EUR")),
    ("EUR 1.299,50", a("1299.50", "EUR")),
    ("30 euros", a("30.00", "EUR")),
    ("£30", a("30.00", "GBP")),
    ("30 GBP", a("30.00", "GBP")),
    ("30 pounds", a("30.00", "GBP")),
    ("HK$100", a("100.00", "HKD")),
    ("100港币", a("100.00", "HKD")),
    ("5000日元", a("5000.00", "JPY")),
    ("$49 CAD", a("49.00", "CAD")),      # a generic sign gives way to the code
    ("$5k", a("5000.00", "USD")),
]

BARE_CASES = [
    ("49.99", a("49.99")),
    ("1,299.50", a("1299.50")),
    ("1,299", a("1299.00")),
    ("1,299,000", a("1299000.00")),
    ("1299", a("1299.00")),
    ("49,9", a("49.90")),
    ("１２９９元", a("1299.00", "CNY")),
    ("￥１，２９９", a("1299.00", "CNY")),
    ("＄４９．９９", a("49.99", "USD")),
    (" 1299元。", a("1299.00", "CNY")),
    ("大概1299元吧", a("1299.00", "CNY")),
    ("about 50", a("50.00")),
    ("1299左右", a("1299.00")),
    ("我花了1299元", a("1299.00", "CNY")),
    ("I paid 30 dollars", a("30.00", "USD")),
]

ZERO_CASES = [
    ("0", AmountAnswer("zero", Decimal("0.00"))),
    ("0.00", AmountAnswer("zero", Decimal("0.00"))),
    ("¥0", AmountAnswer("zero", Decimal("0.00"), "CNY")),
    ("0元", AmountAnswer("zero", Decimal("0.00"), "CNY")),
    ("零元", AmountAnswer("zero", Decimal("0.00"), "CNY")),
]

NEGATIVE_CASES = [
    ("-5", AmountAnswer("negative", Decimal("-5.00"))),
    ("−5", AmountAnswer("negative", Decimal("-5.00"))),   # U+2212 minus sign
    ("－5", AmountAnswer("negative", Decimal("-5.00"))),   # full-width hyphen-minus
    ("-$5", AmountAnswer("negative", Decimal("-5.00"), "USD")),
    ("$-5", AmountAnswer("negative", Decimal("-5.00"), "USD")),
    ("-¥1,299", AmountAnswer("negative", Decimal("-1299.00"), "CNY")),
]

HOSTILE = [
    "abc",
    "",
    "   ",
    "😀",
    "lots",
    "<b>",
    "万一",
    "$",
    "元",
    "1.2.3",
    "0.125",
    "€49 USD",                  # contradicting markers
    "I paid $49.99 and $10",    # two amounts: not one answer
    "9" * 30,                   # more than 15 integer digits
    "a" * 10_000,
    "1" * 10_000,
    "$" * 10_000,
]


@pytest.mark.parametrize("text, expected", CNY_CASES)
def test_cny(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize("text, expected", OTHER_CURRENCY_CASES)
def test_other_currencies(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize("text, expected", BARE_CASES)
def test_bare_and_noisy(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize("text, expected", ZERO_CASES)
def test_zero(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize("text, expected", NEGATIVE_CASES)
def test_negative(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_is_unparsed(text):
    assert parse_amount(text) == UNPARSED


@pytest.mark.parametrize("value", [None, 42, b"$5"])
def test_not_a_string(value):
    assert parse_amount(value) == UNPARSED


def test_value_is_quantized():
    answer = parse_amount("$49.9")
    assert answer.value == Decimal("49.90")
    assert str(answer.value) == "49.90"


STORIES = [
    ("我在某平台充值了1.2万，现在提现不了", [("1.2万", Decimal("12000"), None)]),
    ("paid $49.99 on 3 Oct 2026", [("$49.99", Decimal("49.99"), "USD")]),
    ("I bought it 3 days ago", []),
    ("2026年10月3日花了1299元，元旦那天又充了两千五百块",
     [("1299元", Decimal("1299"), "CNY"), ("两千五百块", Decimal("2500"), "CNY")]),
    ("粉丝1.2万人，订单号123456789，买了3件，2026-11-05下单", []),
    ("It cost 49,99 € and shipping was £5, then 5 $10 more",
     [("49,99 €", Decimal("49.99"), "EUR"), ("£5", Decimal("5"), "GBP"), ("$10", Decimal("10"), "USD")]),
    ("充值￥１，２９９，对方说要交三万保证金",
     [("￥１，２９９", Decimal("1299"), "CNY"), ("三万", Decimal("30000"), None)]),
    ("refund of $0 offered, I paid US$1,299.50", [("US$1,299.50", Decimal("1299.50"), "USD")]),
    ("", []),
]


@pytest.mark.parametrize("text, expected", STORIES)
def test_find_amounts(text, expected):
    assert find_amounts(text) == expected


def test_find_amounts_not_a_string():
    assert find_amounts(None) == []


@pytest.mark.parametrize("text", [
    "a" * 10_000,
    "1" * 10_000,
    " " * 10_000,
    "$" * 10_000,
    "-" * 10_000,
    "1," * 5_000,
    "1." * 5_000,
    "一" * 10_000,
    "¥1 " * 3_000,
    "我在某平台充值了1.2万，现在提现不了" * 500,
])
def test_long_input_is_fast(text):
    start = time.perf_counter()
    parse_amount(text)
    find_amounts(text)
    assert time.perf_counter() - start < 1.0


def test_a_story_is_read_for_amounts_only_where_one_can_start_and_nothing_is_missed():
    texts = [n["text"] for n in yaml.safe_load((Path(__file__).parent / "narratives.yaml").read_text("utf-8"))]
    texts += ["- US$ -1,299.50 and ¥ 30", "人民币 一千二百元", "hk$5k", "共 - 3万", "1.2万人", "5 $10", "$$$9", "一一一"]
    for text in texts:
        folded = fold_width(text)
        assert [m.span() for m in amounts._matches(folded)] == [m.span() for m in amounts._AMOUNT.finditer(folded)]


# Issue 17: a typed answer that only a part of could be read as money is not an amount.
@pytest.mark.parametrize("text", [
    "-1e309 USD",          # was read as $309.00
    "1e3", "$1e5", "USD 1e3", "5 e 3",
    "49-", "1,299-", "4-9 USD",   # a minus sign after the number or inside it
    "99999999999999",      # beyond any real purchase
    "$200,000,000,000",
    "2000亿",
])
def test_exponents_misplaced_signs_and_impossible_sums_are_unparsed(text):
    assert parse_amount(text) == UNPARSED


@pytest.mark.parametrize("text, expected", [
    ("2026-10-03 花了1299元", AmountAnswer("amount", Decimal("1299.00"), "CNY")),   # a date is not a sign
    ("- 5 USD", AmountAnswer("negative", Decimal("-5.00"), "USD")),
    ("1000亿", AmountAnswer("amount", Decimal("100000000000.00"), None)),
])
def test_dates_and_leading_signs_still_read(text, expected):
    assert parse_amount(text) == expected
