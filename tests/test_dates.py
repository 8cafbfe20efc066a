"""dialogs.dates: typed date answers and dates in stories.

Expected dates are worked out by hand from the calendar:
2026-11-22 is a Sunday (its week runs Mon 16 .. Sun 22, the week before Mon 9 .. Sun 15);
2026-01-02 is a Friday (its week runs Mon 2025-12-29 .. Sun 2026-01-04).
"""
from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from dialogs import dates as dates_module
from dialogs.dates import DateAnswer, find_dates, parse_date

TODAY = date(2026, 11, 22)      # Sunday
NEW_YEAR = date(2026, 1, 2)     # Friday


def d(y: int, m: int, day: int) -> DateAnswer:
    return DateAnswer("date", date(y, m, day))


IMPOSSIBLE = DateAnswer("impossible")
UNPARSED = DateAnswer("unparsed")


ZH_CASES = [
    ("今天", d(2026, 11, 22)),
    ("昨天", d(2026, 11, 21)),
    ("前天", d(2026, 11, 20)),
    ("大前天", d(2026, 11, 19)),
    ("3天前", d(2026, 11, 19)),
    ("三天前", d(2026, 11, 19)),
    ("3 天前", d(2026, 11, 19)),
    ("十天前", d(2026, 11, 12)),
    ("一周前", d(2026, 11, 15)),
    ("两周前", d(2026, 11, 8)),
    ("2周前", d(2026, 11, 8)),
    ("一个星期前", d(2026, 11, 15)),
    ("上周三", d(2026, 11, 11)),
    ("上个星期三", d(2026, 11, 11)),
    ("上周日", d(2026, 11, 15)),
    ("本周一", d(2026, 11, 16)),
    ("这周一", d(2026, 11, 16)),
    ("周三", d(2026, 11, 18)),
    ("星期三", d(2026, 11, 18)),
    ("礼拜三", d(2026, 11, 18)),
    ("周日", d(2026, 11, 22)),        # today is Sunday: on or before today
    ("星期天", d(2026, 11, 22)),
    ("上个月", d(2026, 10, 22)),
    ("上个月5号", d(2026, 10, 5)),
    ("上月5日", d(2026, 10, 5)),
    ("11月5日", d(2026, 11, 5)),
    ("11月5号", d(2026, 11, 5)),
    ("12月1日", d(2025, 12, 1)),      # after today this year: last year
    ("11月22日", d(2026, 11, 22)),
    ("11月23日", d(2025, 11, 23)),
    ("2026年10月3日", d(2026, 10, 3)),
    ("2026年10月3号", d(2026, 10, 3)),
    ("2026.10.3", d(2026, 10, 3)),
    ("2026/10/3", d(2026, 10, 3)),
    ("2026-10-03", d(2026, 10, 3)),
    ("去年12月1日", d(2025, 12, 1)),
    ("三月五日", d(2026, 3, 5)),
    ("十一月二十三日", d(2025, 11, 23)),
    ("二〇二六年三月五日", d(2026, 3, 5)),
    ("2027年1月1日", d(2027, 1, 1)),  # future dates are returned as written
    ("11月5日（周四）", d(2026, 11, 5)),
    ("我是10月3日买的", d(2026, 10, 3)),
    ("11月5", d(2026, 11, 5)),
    ("5号", d(2026, 11, 5)),
]

EN_CASES = [
    ("today", d(2026, 11, 22)),
    ("Yesterday", d(2026, 11, 21)),
    ("the day before yesterday", d(2026, 11, 20)),
    ("3 days ago", d(2026, 11, 19)),
    ("a week ago", d(2026, 11, 15)),
    ("2 weeks ago", d(2026, 11, 8)),
    ("two weeks ago", d(2026, 11, 8)),
    ("last Monday", d(2026, 11, 16)),
    ("last Sunday", d(2026, 11, 15)),   # strictly before today
    ("on Monday", d(2026, 11, 16)),
    ("Monday", d(2026, 11, 16)),
    ("Sunday", d(2026, 11, 22)),        # on or before today
    ("on Wednesday", d(2026, 11, 18)),
    ("last month", d(2026, 10, 22)),
    ("5 Nov", d(2026, 11, 5)),
    ("5th November", d(2026, 11, 5)),
    ("Nov 5", d(2026, 11, 5)),
    ("November 5th", d(2026, 11, 5)),
    ("Nov 5 2026", d(2026, 11, 5)),
    ("5 Nov 2026", d(2026, 11, 5)),
    ("November 5, 2026", d(2026, 11, 5)),
    ("the 5th of November", d(2026, 11, 5)),
    ("Thursday, 5 November 2026", d(2026, 11, 5)),
    ("Dec 1", d(2025, 12, 1)),
    ("2026-11-05", d(2026, 11, 5)),
    ("2026-11-05T10:30:00", d(2026, 11, 5)),
    ("2026-11-05 10:30", d(2026, 11, 5)),
    ("I paid on 5 Nov.", d(2026, 11, 5)),
]

NUMERIC_CASES = [
    ("05/11/2026", DateAnswer("ambiguous", candidates=(date(2026, 11, 5), date(2026, 5, 11)))),
    ("5.11.2026", DateAnswer("ambiguous", candidates=(date(2026, 11, 5), date(2026, 5, 11)))),
    ("5-11-2026", DateAnswer("ambiguous", candidates=(date(2026, 11, 5), date(2026, 5, 11)))),
    ("13/11/2026", d(2026, 11, 13)),
    ("11/13/2026", d(2026, 11, 13)),
    ("05/05/2026", d(2026, 5, 5)),
]

IMPOSSIBLE_CASES = [
    "2026-02-30",
    "2026年2月30日",
    "31 April 2026",
    "32/01/2026",
    "2026-13-01",
    "2月30日",
]

WIDTH_CASES = [
    ("２０２６年１０月３日", d(2026, 10, 3)),
    ("１１月５日", d(2026, 11, 5)),
    ("２０２６－１０－０３", d(2026, 10, 3)),
    ("  昨天。 ", d(2026, 11, 21)),
    ("yesterday!", d(2026, 11, 21)),
    ("３天前", d(2026, 11, 19)),
]

HOSTILE = [
    "",
    "   ",
    "😀",
    "hello",
    "<b>",
    "I paid 49 dollars",
    "49.99",
    "¥1299",
    "1.2万",
    "3",
    "2026",
    "上周",
    "May",
    "a" * 10_000,
    "1" * 10_000,
    "2026-" * 2_000,
    "10月3日和11月5日",   # two different dates: not one answer
]

NEW_YEAR_CASES = [
    ("上个月", d(2025, 12, 2)),
    ("last month", d(2025, 12, 2)),
    ("12月30日", d(2025, 12, 30)),
    ("Dec 30", d(2025, 12, 30)),
    ("1月1日", d(2026, 1, 1)),
    ("昨天", d(2026, 1, 1)),
    ("3天前", d(2025, 12, 30)),
    ("一周前", d(2025, 12, 26)),
    ("上周三", d(2025, 12, 24)),
    ("本周一", d(2025, 12, 29)),
    ("last Friday", d(2025, 12, 26)),
    ("Friday", d(2026, 1, 2)),
    ("Thursday", d(2026, 1, 1)),
    ("上个月31号", d(2025, 12, 31)),
    ("2月29日", IMPOSSIBLE),            # 2025-02-29 does not exist
    ("29 Feb 2028", d(2028, 2, 29)),
]


@pytest.mark.parametrize("text, expected", ZH_CASES)
def test_chinese(text, expected):
    assert parse_date(text, TODAY) == expected


@pytest.mark.parametrize("text, expected", EN_CASES)
def test_english(text, expected):
    assert parse_date(text, TODAY) == expected


@pytest.mark.parametrize("text, expected", NUMERIC_CASES)
def test_numeric_year_last(text, expected):
    assert parse_date(text, TODAY) == expected


@pytest.mark.parametrize("text", IMPOSSIBLE_CASES)
def test_impossible(text):
    assert parse_date(text, TODAY) == IMPOSSIBLE


@pytest.mark.parametrize("text, expected", WIDTH_CASES)
def test_width_and_punctuation(text, expected):
    assert parse_date(text, TODAY) == expected


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_is_unparsed(text):
    assert parse_date(text, TODAY) == UNPARSED


@pytest.mark.parametrize("text, expected", NEW_YEAR_CASES)
def test_month_and_year_boundaries(text, expected):
    assert parse_date(text, NEW_YEAR) == expected


@pytest.mark.parametrize("text, today, expected", [
    ("上个月", date(2026, 3, 31), d(2026, 2, 28)),
    ("last month", date(2028, 3, 30), d(2028, 2, 29)),
    ("上个月5号", date(2026, 1, 15), d(2025, 12, 5)),
    ("上个月31号", date(2026, 3, 10), IMPOSSIBLE),   # no 31 February
])
def test_last_month_clamping(text, today, expected):
    assert parse_date(text, today) == expected


@pytest.mark.parametrize("value", [None, 42, b"2026-11-05"])
def test_not_a_string(value):
    assert parse_date(value, TODAY) == UNPARSED


STORIES = [
    ("我10月3日在淘宝买了会员，11月5日开始说系统维护",
     [("10月3日", date(2026, 10, 3)), ("11月5日", date(2026, 11, 5))]),
    ("I bought it on 3 Oct 2026 and it broke 2 days ago",
     [("3 Oct 2026", date(2026, 10, 3)), ("2 days ago", date(2026, 11, 20))]),
    ("我在2026年10月3日充值了¥1299，三天前说要交49.99的手续费，又要1.2万",
     [("2026年10月3日", date(2026, 10, 3)), ("三天前", date(2026, 11, 19))]),
    ("订单号 20261103123，金额 1,299.50，电话 138-1234-5678，版本 1.2.3", []),
    ("Paid 49.99 for 3 items, order 123456, see 05/11/2026", []),   # ambiguous date skipped
    ("Delivered 13/11/2026, refund refused yesterday",
     [("13/11/2026", date(2026, 11, 13)), ("yesterday", date(2026, 11, 21))]),
    ("他之前天天打电话，然后天天拖延，上个月还在今日头条打广告", []),
    ("It was last Monday. I may 5 times ask. Nov 5 2026 they replied.",
     [("last Monday", date(2026, 11, 16)), ("Nov 5 2026", date(2026, 11, 5))]),
    ("２０２６年１１月５日付款", [("２０２６年１１月５日", date(2026, 11, 5))]),
    ("上周三买的，昨天坏了", [("上周三", date(2026, 11, 11)), ("昨天", date(2026, 11, 21))]),
    ("Bought it on Thursday, 5 November 2026.", [("Thursday, 5 November 2026", date(2026, 11, 5))]),
    ("", []),
]


@pytest.mark.parametrize("text, expected", STORIES)
def test_find_dates(text, expected):
    assert find_dates(text, TODAY) == expected


def test_find_dates_not_a_string():
    assert find_dates(None, TODAY) == []


@pytest.mark.parametrize("text", [
    "a" * 10_000,
    "1" * 10_000,
    " " * 10_000,
    "5 " * 5_000,
    "1." * 5_000,
    "Nov " * 2_500,
    "上" * 10_000,
    "2026年" * 2_000,
    "我10月3日在淘宝买了会员，11月5日开始说系统维护" * 300,
])
def test_long_input_is_fast(text):
    start = time.perf_counter()
    parse_date(text, TODAY)
    find_dates(text, TODAY)
    assert time.perf_counter() - start < 1.0


def test_long_story_finds_every_date():
    story = "我10月3日在淘宝买了会员，11月5日开始说系统维护" * 300
    found = find_dates(story, TODAY)
    assert len(found) == 600
    assert found[-1] == ("11月5日", date(2026, 11, 5))


def test_every_date_rule_is_only_skipped_where_it_cannot_match():
    # A rule's gate lets the scan skip texts without it; a match without its gate would be lost.
    d = dates_module
    texts = [n["text"] for n in yaml.safe_load((Path(__file__).parent / "narratives.yaml").read_text("utf-8"))]
    texts += ["上周三", "3天前", "今天", "昨日", "05/11/2026", "2026-11-05", "Monday, 5th of November 2026",
              "Nov 5", "the day before yesterday", "two weeks ago", "last month", "this past Friday", "11月5日",
              "5号", "on Tue", "the 5th", "十一月五日", "上个月5号", "下周一", "礼拜天"]
    for text in texts:
        folded = d.fold_width(text)
        for rule in d._RULES:
            for m in rule.pattern.finditer(folded):
                if m.end() > m.start():
                    assert rule.gate is None or rule.gate.search(m.group(0)), (rule.pattern.pattern, m.group(0))
