"""Dates as users type them, in Chinese or English.

Two pure functions, no clock reads: "today" is always an argument.

* `parse_date(text, today)` reads one typed answer ("昨天", "上周三", "5 Nov",
  "05/11/2026", ...) and says what it is: a date, an ambiguous numeric date, an
  impossible date, or nothing it understands. Future dates are returned as
  written; rejecting them is the caller's business.
* `find_dates(text, today)` mines a free-text story for the dates in it, in
  order of appearance, with the text exactly as written.

Choices worth knowing (all relative to `today`):

* A date without a year ("11月5日", "5 Nov", "Dec 1") is in today's year, unless
  that is after today, then it is in the year before.
* A bare weekday ("周三", "星期三", "Monday", "on Monday") is the most recent such
  day on or before today (today itself if today is that weekday).
  "last Monday" is the most recent Monday strictly before today.
  "上周三" is the Wednesday of the previous calendar week, "本周一"/"这周一" the
  Monday of this week (weeks start on Monday); "下周X"/"next X" are computed too.
* "上个月"/"last month" is the same day of last month, clamped to the month end;
  "上个月5号" is the 5th of last month.
* Numeric dates with the year last (05/11/2026, 5.11.2026) are read both ways:
  two different valid readings give "ambiguous" (day-first reading first).
* A one-answer text is examined up to its first `ANSWER_WINDOW` characters; if
  it is not a date as a whole, a single date expression inside it is accepted
  ("我是10月3日买的", "I paid on 5 Nov"); several different ones are "unparsed".
* `find_dates` keeps only unambiguous, possible dates and leaves out the vague
  ones ("上个月", "last month", "2 months ago", "今日" which is also an app name).

Every regular expression uses bounded repetitions only, so any input is scanned
in linear time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable

__all__ = [
    "ANSWER_WINDOW",
    "DateAnswer",
    "chinese_numeral_value",
    "find_dates",
    "fold_width",
    "parse_date",
]

ANSWER_WINDOW = 200
"""How many leading characters of a one-answer text `parse_date` looks at."""


@dataclass(frozen=True)
class DateAnswer:
    """What a typed date answer says.

    kind: "date" | "ambiguous" | "impossible" | "unparsed"
    value: the date, for "date"
    candidates: for "ambiguous", the possible readings, day-first reading first
    """
    kind: str
    value: date | None = None
    candidates: tuple[date, ...] = ()


_UNPARSED = DateAnswer("unparsed")
_IMPOSSIBLE = DateAnswer("impossible")


# ---------------------------------------------------------------------------
# Shared text helpers (also used by `dialogs.amounts`)

_FOLD_TABLE: dict[int, int] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FOLD_TABLE.update({
    0x3000: 0x20,   # ideographic space
    0x00A0: 0x20,   # no-break space
    0x2007: 0x20,
    0x2009: 0x20,
    0x202F: 0x20,
    0x2010: 0x2D,   # hyphens and dashes
    0x2011: 0x2D,
    0x2012: 0x2D,
    0x2013: 0x2D,
    0x2014: 0x2D,
    0x2212: 0x2D,   # minus sign
    0xFE63: 0x2D,
    0xFFE5: 0xA5,   # full-width yen/yuan sign
    0xFFE1: 0xA3,   # full-width pound sign
    0xFFE0: 0xA2,   # full-width cent sign
})


def fold_width(text: str) -> str:
    """Full-width ASCII, odd spaces and dashes to their plain forms, one character for one.

    The result has exactly the length of `text`, so match positions in it are
    positions in `text`.
    """
    return text.translate(_FOLD_TABLE)


_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4,
             "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_BIG = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}


def chinese_numeral_value(s: str) -> int | None:
    """The value of a Chinese numeral ("三", "十一", "二十三", "一千二百", "两万五"), or None.

    Colloquial abbreviations count: "一千二" is 1200, "三百五" 350, "一万二" 12000;
    after a 零 the digit is a unit ("一千零五" is 1005). Digit strings such as
    "二〇二六" are not numerals here (None).
    """
    if not s or len(s) > 24:
        return None
    total = 0
    section = 0
    digit: int | None = None
    last_unit: int | None = None
    last_big: int | None = None
    after_zero = False
    for ch in s:
        if ch in _CN_DIGIT:
            d = _CN_DIGIT[ch]
            if digit is not None:
                return None
            if d == 0:
                after_zero = True
                continue
            digit = d
        elif ch in _CN_UNIT:
            unit = _CN_UNIT[ch]
            if digit is None:
                if unit != 10:
                    return None
                digit = 1  # "十", "十五", "一百十"
            if last_unit is not None and unit >= last_unit:
                return None
            section += digit * unit
            digit = None
            last_unit = unit
            after_zero = False
        elif ch in _CN_BIG:
            big = _CN_BIG[ch]
            if digit is not None:
                section += digit
                digit = None
            if section == 0:
                return None
            if last_big is not None and big == last_big:
                return None
            if last_big is not None and big > last_big:
                total = (total + section) * big
            else:
                total += section * big
            section = 0
            last_big = big
            last_unit = None
            after_zero = False
        else:
            return None
    if digit is not None:
        if after_zero:
            section += digit
        elif last_unit is not None:
            section += digit * (last_unit // 10)
        elif last_big is not None and section == 0:
            section += digit * (last_big // 10)
        else:
            section += digit
    return total + section


# ---------------------------------------------------------------------------
# Date arithmetic

def _make(year: int, month: int, day: int) -> DateAnswer:
    try:
        return DateAnswer("date", date(year, month, day))
    except (ValueError, OverflowError):
        return _IMPOSSIBLE


def _shift_days(today: date, days: int) -> DateAnswer:
    try:
        return DateAnswer("date", today + timedelta(days=days))
    except (ValueError, OverflowError):
        return _UNPARSED


def _add_months(day: date, months: int) -> date:
    """`day` moved by `months` calendar months, clamped to the end of the month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise ValueError("month out of range")  # pragma: no cover - 28 always exists


def _months_ago(today: date, months: int) -> DateAnswer:
    try:
        return DateAnswer("date", _add_months(today, -months))
    except (ValueError, OverflowError):
        return _UNPARSED


def _month_day(year_month_offset: int, day: int, today: date) -> DateAnswer:
    """Day `day` of the month `year_month_offset` months from today's month."""
    index = today.year * 12 + (today.month - 1) + year_month_offset
    year, month0 = divmod(index, 12)
    return _make(year, month0 + 1, day)


def _without_year(month: int, day: int, today: date) -> DateAnswer:
    """Month and day without a year: this year, or last year if that is after today."""
    year = today.year if (month, day) <= (today.month, today.day) else today.year - 1
    return _make(year, month, day)


def _weekday_on_or_before(today: date, weekday: int) -> DateAnswer:
    return _shift_days(today, -((today.weekday() - weekday) % 7))


def _weekday_before(today: date, weekday: int) -> DateAnswer:
    return _shift_days(today, -((today.weekday() - weekday) % 7 or 7))


def _weekday_after(today: date, weekday: int) -> DateAnswer:
    return _shift_days(today, (weekday - today.weekday()) % 7 or 7)


def _weekday_of_week(today: date, weeks: int, weekday: int) -> DateAnswer:
    """Weekday `weekday` of the calendar week `weeks` weeks from this one (weeks start Monday)."""
    return _shift_days(today, -today.weekday() + 7 * weeks + weekday)


# ---------------------------------------------------------------------------
# Vocabulary

_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3,
    "apr": 4, "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7,
    "aug": 8, "august": 8, "sep": 9, "sept": 9, "september": 9,
    "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
}
_MON = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
        r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")

_EN_WEEKDAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1,
    "wednesday": 2, "wed": 2, "weds": 2, "thursday": 3, "thu": 3, "thur": 3, "thurs": 3,
    "friday": 4, "fri": 4, "saturday": 5, "sat": 5, "sunday": 6, "sun": 6,
}
_WD_FULL = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_WD_SHORT = r"(?:mon|tues?|weds?|thu(?:rs?)?|fri|sat|sun)"
_WD_ANY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues?|weds?|thu(?:rs?)?|fri|sat|sun)"

_EN_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "couple of": 2, "a couple of": 2,
}
_EN_NUMBER = (r"(?:[0-9]{1,3}|(?:a\s{1,3})?couple\s{1,3}of|an?|one|two|three|four|five|six"
              r"|seven|eight|nine|ten|eleven|twelve)")

_ZH_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
_ZH_WEEK = r"(?:周|週|星期|礼拜|禮拜)"
_ZH_SMALL = r"(?:[0-9]{1,2}|[一二三四五六七八九十]{1,3})"   # a month or a day
_ZH_DAY_MARK = r"[日号號]"


def _zh_small(s: str) -> int | None:
    if s.isascii() and s.isdigit():
        return int(s)
    return chinese_numeral_value(s)


def _zh_year(s: str) -> int | None:
    if s.isascii() and s.isdigit():
        return int(s)
    digits = [_CN_DIGIT.get(ch) for ch in s]
    if any(d is None for d in digits):
        return None
    return int("".join(str(d) for d in digits))


def _en_count(s: str) -> int:
    s = " ".join(s.lower().split())
    if s.isdigit():
        return int(s)
    return _EN_NUMBERS[s]


# ---------------------------------------------------------------------------
# Rules: a regular expression and what a match of it means

Resolver = Callable[[re.Match[str], date, bool], DateAnswer]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    resolve: Resolver
    story: bool = True        # also used by find_dates
    full_only: bool = False   # only when it is the whole answer
    weekday_only: bool = False
    # Found in every match of `pattern`: a text without it is not scanned with the whole rule
    # (most rules would otherwise be tried at every position of every story).
    gate: re.Pattern[str] | None = None


def _rule(regex: str, resolve: Resolver, gate: str | None = None, **flags: bool) -> _Rule:
    return _Rule(re.compile(regex, re.IGNORECASE), resolve, gate=re.compile(gate, re.IGNORECASE) if gate else None,
                 **flags)


_DIGIT = "[0-9]"
_MONTH_START = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"


def _zh_relative(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    offsets = {"大前天": -3, "前天": -2, "前日": -2, "昨天": -1, "昨日": -1, "昨晚": -1,
               "今天": 0, "今日": 0, "今晚": 0, "明天": 1, "后天": 2, "後天": 2}
    return _shift_days(today, offsets[m.group(0)])


def _zh_ago(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    n = _zh_small(m.group("n"))
    if n is None:
        return _UNPARSED
    unit = m.group("u")
    if unit in ("天", "日"):
        return _shift_days(today, -n)
    if unit.endswith("月"):
        return _UNPARSED if story else _months_ago(today, n)
    if unit == "年":
        return _UNPARSED if story else _months_ago(today, 12 * n)
    return _shift_days(today, -7 * n)   # weeks


def _zh_weekday(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    weekday = _ZH_WEEKDAYS[m.group("wd")]
    pre = m.group("pre")
    if pre is None:
        return _weekday_on_or_before(today, weekday)
    weeks = {"上上": -2, "上": -1, "本": 0, "这": 0, "這": 0, "下": 1}[pre]
    return _weekday_of_week(today, weeks, weekday)


def _zh_relative_month(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    offset = {"上上": -2, "上": -1, "本": 0, "这": 0, "這": 0, "下": 1}[m.group("rel")]
    if m.group("d") is None:
        # "上个月" alone: same day of that month (vague, so never in a story).
        if story or offset == 0:
            return _UNPARSED
        return _months_ago(today, -offset)
    day = _zh_small(m.group("d"))
    if day is None:
        return _UNPARSED
    return _month_day(offset, day, today)


def _zh_full(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    month = _zh_small(m.group("m"))
    day = _zh_small(m.group("d"))
    if month is None or day is None:
        return _UNPARSED
    if m.group("y"):
        year = _zh_year(m.group("y"))
        if year is None:
            return _UNPARSED
        return _make(year, month, day)
    if m.group("ry"):
        return _make(today.year + {"去": -1, "今": 0, "前": -2}[m.group("ry")], month, day)
    if not 1 <= month <= 12:
        return _IMPOSSIBLE
    return _without_year(month, day, today)


def _zh_day_only(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    day = _zh_small(m.group("d"))
    if day is None:
        return _UNPARSED
    return _day_only(day, today)


def _day_only(day: int, today: date) -> DateAnswer:
    """A day of the month alone: this month if on or before today, else last month."""
    return _month_day(0 if day <= today.day else -1, day, today)


def _numeric_year_first(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    return _make(int(m.group("y")), int(m.group("m")), int(m.group("d")))


def _numeric_year_last(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    a, b, year = int(m.group("a")), int(m.group("b")), int(m.group("y"))
    day_first = _make(year, b, a)
    month_first = _make(year, a, b)
    if (day_first.kind == "date" and month_first.kind == "date"
            and day_first.value is not None and month_first.value is not None):
        if day_first.value == month_first.value:
            return day_first
        return DateAnswer("ambiguous", candidates=(day_first.value, month_first.value))
    if day_first.kind == "date":
        return day_first
    if month_first.kind == "date":
        return month_first
    return _IMPOSSIBLE


def _en_month_day(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    month_word = m.group("mon")
    if story and month_word == "may":
        return _UNPARSED   # "I may 2 ..." is not May 2nd; "May 2" is
    month = _MONTHS[month_word.lower()]
    day = int(m.group("d"))
    if m.group("y"):
        return _make(int(m.group("y")), month, day)
    return _without_year(month, day, today)


def _en_relative(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    word = " ".join(m.group(0).lower().split())
    if word.endswith("before yesterday"):
        return _shift_days(today, -2)
    offsets = {"today": 0, "tonight": 0, "yesterday": -1, "tomorrow": 1}
    return _shift_days(today, offsets[word])


def _en_ago(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    n = _en_count(m.group("n"))
    unit = m.group("u").lower().rstrip("s")
    if unit == "day":
        return _shift_days(today, -n)
    if unit == "week":
        return _shift_days(today, -7 * n)
    if story:
        return _UNPARSED
    return _months_ago(today, n if unit == "month" else 12 * n)


def _en_last_month(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    return _months_ago(today, 1)


def _en_weekday(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    weekday = _EN_WEEKDAYS[m.group("wd").lower()]
    pre = " ".join((m.group("pre") or "").lower().split())
    if pre in ("last", "past", "this past"):
        return _weekday_before(today, weekday)
    if pre == "next":
        return _weekday_after(today, weekday)
    return _weekday_on_or_before(today, weekday)


def _en_day_only(m: re.Match[str], today: date, story: bool) -> DateAnswer:
    return _day_only(int(m.group("d")), today)


_NOT_NUM_BEFORE = r"(?<![0-9.,:/-])"

_RULES: tuple[_Rule, ...] = (
    # --- Chinese -----------------------------------------------------------
    _rule(r"(?:(?P<y>[0-9]{4}|[〇零一二三四五六七八九]{4})\s{0,2}年\s{0,2}|(?P<ry>去|今|前)年\s{0,2})?"
          rf"(?<![0-9.])(?P<m>{_ZH_SMALL})\s{{0,2}}月\s{{0,2}}(?P<d>{_ZH_SMALL})\s{{0,2}}{_ZH_DAY_MARK}"
          rf"(?:\s{{0,2}}[(（]?\s{{0,2}}{_ZH_WEEK}[一二三四五六日天]\s{{0,2}}[)）]?)?",
          _zh_full, gate="月"),
    _rule(rf"(?P<rel>上上|上|本|这|這)[个個]?月(?:\s{{0,2}}(?P<d>{_ZH_SMALL})\s{{0,2}}{_ZH_DAY_MARK})?",
          _zh_relative_month, gate="月"),
    _rule(r"(?P<n>[0-9]{1,3}|[一二两兩三四五六七八九十百]{1,4})\s{0,2}"
          rf"(?P<u>天|日|[个個]?{_ZH_WEEK}|[个個]月|年)\s{{0,2}}(?:之前|以前|前)",
          _zh_ago, gate="前"),
    _rule(rf"(?:(?P<pre>上上|上|下|本|这|這)[个個]?)?{_ZH_WEEK}(?P<wd>[一二三四五六日天])",
          _zh_weekday, gate=_ZH_WEEK, weekday_only=True),
    _rule(r"大前天|(?<![之以])前天(?!天)|昨天|昨晚|今天|今晚|明天|(?<![之以然])后天(?!天)|(?<![之以然])後天(?!天)",
          _zh_relative, gate="[天晚]"),
    _rule(r"今日|昨日|前日", _zh_relative, gate="日", story=False),
    # --- Numeric -----------------------------------------------------------
    _rule(rf"{_NOT_NUM_BEFORE}(?P<y>[0-9]{{4}})\s?(?P<sep>[./-])\s?(?P<m>[0-9]{{1,2}})\s?(?P=sep)\s?"
          r"(?P<d>[0-9]{1,2})(?![0-9]|[./-][0-9])",
          _numeric_year_first, gate=_DIGIT),
    _rule(rf"{_NOT_NUM_BEFORE}(?P<a>[0-9]{{1,2}})(?P<sep>[./-])(?P<b>[0-9]{{1,2}})(?P=sep)"
          r"(?P<y>[0-9]{4})(?![0-9]|[./-][0-9])",
          _numeric_year_last, gate=_DIGIT),
    # --- English -----------------------------------------------------------
    _rule(rf"(?<![a-z0-9.,:/-])(?:{_WD_ANY}\.?,?\s{{1,3}}(?:the\s{{1,3}})?)?"
          rf"(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?(?:\s{{0,3}}|[-/.])(?:of\s{{1,3}})?(?P<mon>{_MON})(?![a-z])"
          r"(?:(?:\.?,?\s{1,3}|[-/.])(?P<y>[0-9]{4})(?![0-9]))?",
          _en_month_day, gate=_MONTH_START),
    _rule(rf"(?<![a-z])(?:{_WD_ANY}\.?,?\s{{1,3}})?(?P<mon>{_MON})(?![a-z])\.?\s{{0,3}}(?:the\s{{1,3}})?"
          r"(?P<d>[0-9]{1,2})(?:st|nd|rd|th)?(?![0-9])"
          r"(?:(?:,\s{0,3}|\s{1,3}|[-/])(?P<y>(?:19|20)[0-9]{2})(?![0-9]))?",
          _en_month_day, gate=_MONTH_START),
    _rule(r"(?<![a-z])(?:(?:the\s{1,3})?day\s{1,3}before\s{1,3}yesterday|yesterday|today|tonight|tomorrow)(?![a-z])",
          _en_relative, gate="yesterday|today|tonight|tomorrow"),
    _rule(rf"(?<![a-z0-9.,])(?P<n>{_EN_NUMBER})\s{{0,3}}(?P<u>days?|weeks?|months?|years?)\s{{1,3}}ago(?![a-z])",
          _en_ago, gate="ago"),
    _rule(r"(?<![a-z])last\s{1,3}month(?![a-z])", _en_last_month, gate="month", story=False),
    _rule(rf"(?<![a-z])(?:(?P<pre>this\s{{1,3}}past|last|past|this|next)\s{{1,3}})?(?P<wd>{_WD_FULL})(?![a-z])",
          _en_weekday, gate="day", weekday_only=True),
    # --- Only as a whole answer -------------------------------------------
    _rule(r"(?:(?P<y>[0-9]{4})\s{0,2}年\s{0,2}|(?P<ry>去|今|前)年\s{0,2})?"
          rf"(?P<m>{_ZH_SMALL})\s{{0,2}}月\s{{0,2}}(?P<d>{_ZH_SMALL})",
          _zh_full, gate="月", story=False, full_only=True),
    _rule(rf"(?P<d>{_ZH_SMALL})\s{{0,2}}{_ZH_DAY_MARK}", _zh_day_only, gate=_ZH_DAY_MARK, story=False, full_only=True),
    _rule(rf"(?:(?P<pre>last|past|this|next|on)\s{{1,3}})?(?P<wd>{_WD_SHORT})\.?",
          _en_weekday, gate="mon|tue|wed|thu|fri|sat|sun", story=False, full_only=True),
    _rule(r"(?:on\s{1,3})?(?:the\s{1,3})?(?P<d>[0-9]{1,2})(?:st|nd|rd|th)", _en_day_only, gate=_DIGIT,
          story=False, full_only=True),
)

_STORY_RULES = tuple(r for r in _RULES if r.story and not r.full_only)
_ANSWER_SCAN_RULES = tuple(r for r in _RULES if not r.full_only)

_STRIP = " \t\r\n\v\f.,;:!?。，；：！？、~～…\"'`()[]{}（）【】「」『』《》<>"


def _scan(text: str, rules: tuple[_Rule, ...]) -> list[tuple[re.Match[str], _Rule]]:
    """Non-overlapping matches of `rules` in `text`: leftmost first, then longest."""
    found = []
    for index, rule in enumerate(rules):
        if rule.gate is not None and not rule.gate.search(text):
            continue
        for m in rule.pattern.finditer(text):
            if m.end() > m.start():
                found.append((m.start(), -m.end(), index, m, rule))
    found.sort(key=lambda item: item[:3])
    chosen = []
    position = 0
    for start, neg_end, _, m, rule in found:
        if start >= position:
            chosen.append((m, rule))
            position = -neg_end
    return chosen


def _resolve(m: re.Match[str], rule: _Rule, today: date, story: bool) -> DateAnswer:
    try:
        return rule.resolve(m, today, story)
    except Exception:  # a resolver bug must not take the dialog down
        return _UNPARSED


def parse_date(text: str, today: date) -> DateAnswer:
    """Read one typed date answer. Never raises; see the module docstring for the readings."""
    try:
        return _parse_date(text, today)
    except Exception:
        return _UNPARSED


def _parse_date(text: str, today: date) -> DateAnswer:
    if not isinstance(text, str):
        return _UNPARSED
    s = fold_width(text[:ANSWER_WINDOW]).strip(_STRIP)
    if not s:
        return _UNPARSED
    for rule in _RULES:
        if rule.gate is not None and not rule.gate.search(s):
            continue
        m = rule.pattern.fullmatch(s)
        if m:
            answer = _resolve(m, rule, today, False)
            if answer.kind != "unparsed":
                return answer
    hits = []
    for m, rule in _scan(s, _ANSWER_SCAN_RULES):
        answer = _resolve(m, rule, today, False)
        if answer.kind != "unparsed":
            hits.append((rule, answer))
    if any(not rule.weekday_only for rule, _ in hits):
        hits = [(rule, answer) for rule, answer in hits if not rule.weekday_only]
    distinct = {answer for _, answer in hits}
    if len(distinct) == 1:
        return distinct.pop()
    return _UNPARSED


def find_dates(text: str, today: date) -> list[tuple[str, date]]:
    """The unambiguous dates in a story, in order: (the text as written, the date). Never raises."""
    if not isinstance(text, str) or not text:
        return []
    try:
        folded = fold_width(text)
        result = []
        for m, rule in _scan(folded, _STORY_RULES):
            answer = _resolve(m, rule, today, True)
            if answer.kind == "date" and answer.value is not None:
                result.append((text[m.start():m.end()], answer.value))
        return result
    except Exception:
        return []
