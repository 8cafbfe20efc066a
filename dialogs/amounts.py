"""Money amounts as users type them, in Chinese or English.

* `parse_amount(text)` reads one typed answer ("¥1,299", "一千二百元", "49,99 €",
  "1.2万", "30 pounds", "49.99") into a value and, when the text says it, an ISO
  currency code.
* `find_amounts(text)` mines a free-text story for amounts. In a story a number
  is money only when it carries a currency marker (¥ $ € £, 元 块 RMB USD
  dollars ...) or the 万/亿 multiplier: bare numbers there are more often dates,
  counts or order numbers.

Choices worth knowing:

* "¥" is read as CNY (the users are Chinese or English speakers; "JP¥", "日元",
  "円", "yen" give JPY) and a bare "$" as USD ("HK$", "A$", "C$", "S$", "NT$"
  give their own dollars). A generic sign with a specific code after it
  ("$49 CAD") takes the code.
* Separators: with both "," and "." the last one is the decimal point
  ("1,299.50", "1.299,50"); with one of them only, one or two digits after it
  make a decimal point ("49,99", "49.99") and groups of three make thousands
  ("1,299", "1.299", "1,299,000").
* Chinese numerals take colloquial forms: "一千二" is 1200, "两万五" 25000.
* Multipliers: 万 (10 000), 亿 (10^8), 千, 百 and "k" after digits ("1.2万", "3千元",
  "$5k"). 万 alone is not a currency: "1.2万" has currency None.
* `value` is quantized to 0.01. For "zero" it is 0.00, for "negative" the
  signed (negative) value; the currency is kept for both.
* A one-answer text is examined up to its first `ANSWER_WINDOW` characters,
  after dropping a few filler words ("大概", "about", "左右", ...); if it is not an
  amount as a whole, a single marked amount inside it is accepted
  ("我花了1299元"); several are "unparsed".
* Numbers with more than 15 integer digits are not amounts; an answer above `MAX_PURCHASE`
  (a hundred billion, in any currency) is "unparsed" too: no real purchase is that large, so it
  is a typo or a test of the bot, never money to advise on.
* A typed answer with an exponent ("1e5", "-1e309 USD") or a minus sign anywhere but in front
  ("49-", "4-9 USD") is "unparsed": reading a part of it ("309 USD") would put a wrong amount in
  the letters.

Every regular expression uses bounded repetitions only: linear time on any input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Iterable, Iterator

from .dates import ANSWER_WINDOW, chinese_numeral_value, fold_width

__all__ = ["AmountAnswer", "find_amounts", "parse_amount"]


@dataclass(frozen=True)
class AmountAnswer:
    """What a typed amount answer says.

    kind: "amount" | "zero" | "negative" | "unparsed"
    value: the amount quantized to 0.01 (positive for "amount")
    currency: an ISO 4217 code, or None when the text does not say
    """
    kind: str
    value: Decimal | None = None
    currency: str | None = None


_UNPARSED = AmountAnswer("unparsed")
_CENT = Decimal("0.01")
_MAX_INTEGER_DIGITS = 15
MAX_PURCHASE = Decimal(10) ** 11
_DATES = re.compile(r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}")   # "2026-10-03 花了1299元": a date, not a sign
# In a typed answer: a digit with an exponent after it, or a minus sign after a digit.
_MALFORMED = re.compile(r"[0-9][.,]?\s{0,2}e\s{0,2}[-+]?\s{0,2}[0-9]|[0-9.,]\s{0,2}[-−–]", re.IGNORECASE)

# Currency markers written before the number (lower case; matched case-insensitively).
_PREFIXES = {
    "us$": "USD", "usd": "USD", "$": "USD", "美元": "USD",
    "hk$": "HKD", "hkd": "HKD", "港币": "HKD", "港幣": "HKD",
    "nt$": "TWD", "twd": "TWD", "ntd": "TWD", "新台币": "TWD", "新台幣": "TWD", "台币": "TWD", "台幣": "TWD",
    "rm": "MYR", "myr": "MYR", "马币": "MYR", "馬幣": "MYR", "令吉": "MYR",
    "新币": "SGD", "新幣": "SGD", "新加坡元": "SGD",
    "a$": "AUD", "au$": "AUD", "aud": "AUD",
    "c$": "CAD", "ca$": "CAD", "cad": "CAD",
    "s$": "SGD", "sgd": "SGD",
    "cn¥": "CNY", "rmb": "CNY", "cny": "CNY", "人民币": "CNY", "人民幣": "CNY", "¥": "CNY",
    "jp¥": "JPY", "jpy": "JPY",
    "€": "EUR", "eur": "EUR",
    "£": "GBP", "gbp": "GBP",
    "chf": "CHF", "₩": "KRW", "krw": "KRW", "₹": "INR", "inr": "INR", "₽": "RUB", "rub": "RUB",
}
# Currency markers written after the number.
_SUFFIXES = {
    "usd": "USD", "dollars": "USD", "dollar": "USD", "bucks": "USD", "buck": "USD",
    "美元": "USD", "美金": "USD", "$": "USD",
    "eur": "EUR", "euros": "EUR", "euro": "EUR", "欧元": "EUR", "歐元": "EUR", "€": "EUR",
    "gbp": "GBP", "pounds": "GBP", "pound": "GBP", "quid": "GBP", "英镑": "GBP", "英鎊": "GBP", "£": "GBP",
    "cny": "CNY", "rmb": "CNY", "yuan": "CNY", "kuai": "CNY", "人民币": "CNY", "人民幣": "CNY",
    "元": "CNY", "圆": "CNY", "圓": "CNY", "块钱": "CNY", "块": "CNY", "塊錢": "CNY", "塊": "CNY", "¥": "CNY",
    "hkd": "HKD", "港币": "HKD", "港元": "HKD", "港幣": "HKD",
    "jpy": "JPY", "yen": "JPY", "日元": "JPY", "日圆": "JPY", "日圓": "JPY", "円": "JPY",
    "twd": "TWD", "台币": "TWD", "新台币": "TWD", "台幣": "TWD", "新台幣": "TWD",
    "aud": "AUD", "澳元": "AUD", "cad": "CAD", "加元": "CAD", "sgd": "SGD", "新币": "SGD", "新幣": "SGD",
    "新加坡元": "SGD", "新元": "SGD", "ntd": "TWD", "台元": "TWD", "港纸": "HKD", "港紙": "HKD",
    "myr": "MYR", "ringgit": "MYR", "令吉": "MYR", "马币": "MYR", "馬幣": "MYR", "林吉特": "MYR",
    "chf": "CHF", "krw": "KRW", "韩元": "KRW", "韓元": "KRW", "inr": "INR", "rub": "RUB", "卢布": "RUB",
}
_GENERIC_SIGNS = {"$", "¥"}
_GENERIC_UNITS = {"元", "圆", "圓", "块", "塊", "块钱", "塊錢"}
_MULTIPLIERS = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8, "千": 1000, "百": 100, "k": 1000}
_BIG_MULTIPLIERS = {"万", "萬", "亿", "億"}


def _alternation(words: Iterable[str], *, before_letter: bool) -> str:
    parts = []
    for word in sorted(words, key=len, reverse=True):
        part = re.escape(word)
        if word[0].isascii() and word[0].isalpha():
            if before_letter:
                part = r"(?<![a-z])" + part
        if word[-1].isascii() and word[-1].isalpha():
            part += r"(?![a-z])"
        if not before_letter and not word[-1].isalnum():
            part += r"(?!\s{0,2}[0-9])"   # "5 $10": the sign belongs to the 10
        if word.endswith("元"):
            part += r"(?![旦宵])"   # 元旦 (New Year's Day), 元宵 are not money
        parts.append(part)
    return "(?:" + "|".join(parts) + ")"


_ARABIC = r"[0-9](?:[0-9]|[.,'](?=[0-9])){0,40}(?![0-9])"
_CHINESE = r"[零〇一二两兩三四五六七八九十拾百佰千仟万萬亿億]{1,24}"

_AMOUNT = re.compile(
    r"(?P<neg0>-\s?)?"
    rf"(?:(?P<pre>{_alternation(_PREFIXES, before_letter=True)})\s{{0,2}}(?P<neg1>-\s?)?)?"
    rf"(?:(?<![0-9.,])(?P<num>{_ARABIC})|(?P<cn>{_CHINESE}))"
    r"(?:\s{0,2}(?P<mult>[万萬亿億千百]|k(?![a-z])))?"
    rf"(?:\s{{0,2}}(?P<suf>{_alternation(_SUFFIXES, before_letter=False)}))?",
    re.IGNORECASE,
)

# Every match of _AMOUNT starts with one of these characters ("-", a prefix's first, a numeral) and
# has a numeral at most _LEAD characters after its start: "-", a prefix, two spaces, "- ".
# Scanning a story tries _AMOUNT only there, instead of at every position.
_NUMERAL = re.compile(r"[0-9零〇一二两兩三四五六七八九十拾百佰千仟万萬亿億]")
_START = re.compile(
    "[" + re.escape("-" + "".join(sorted({p[0] for p in _PREFIXES}))) + r"0-9零〇一二两兩三四五六七八九十拾百佰千仟万萬亿億]",
    re.IGNORECASE,
)
_LEAD = 2 + max(map(len, _PREFIXES)) + 2 + 2


def _matches(text: str) -> Iterator[re.Match[str]]:
    """`_AMOUNT.finditer(text)`, trying only the positions a match can start at."""
    pos = 0
    while True:
        numeral = _NUMERAL.search(text, pos)
        if numeral is None:
            return
        q = numeral.start()
        for start in _START.finditer(text, max(pos, q - _LEAD), q + 1):
            m = _AMOUNT.match(text, start.start())
            if m:
                yield m
                pos = m.end()
                break
        else:
            pos = q + 1


# After a number marked only by 万/亿, these make it a count, not money ("1.2万人").
_COUNTER_AFTER = re.compile(
    r"\s{0,2}(?:人|个|個|次|件|条|條|名|粉|字|步|张|張|份|天|年|公里|米|位|家|户|戶|台|辆|輛|股|单|單|篇|部|km|views?|people)",
    re.IGNORECASE,
)

_STRIP = " \t\r\n\v\f,;:!?。，；：！？、~～≈…\"'`()[]{}（）【】「」『』《》<>"
_FILLER_BEFORE = re.compile(
    r"(?:about|around|approx(?:imately)?\.?|roughly|almost|nearly|total(?:ly)?|in\s+total|i\s+paid|paid|"
    r"it\s+was|it\s+cost|cost|约|大约|大概|差不多|一共|总共|共|花了|付了|总计|合计|是|充值了?|充了)\s{0,3}:?\s{0,3}",
    re.IGNORECASE,
)
_FILLER_AFTER = re.compile(
    r"\s{0,3}(?:左右|吧|啦|了|in\s+total|total|approx\.?|or\s+so|roughly)$",
    re.IGNORECASE,
)


def _arabic_value(token: str, multiplied: bool) -> Decimal | None:
    """The value of a digit string with separators, or None if the grouping makes no sense."""
    seps = [ch for ch in token if ch in ".,'"]
    if not seps:
        return Decimal(token)
    if multiplied and seps == ["."]:
        return Decimal(token)   # "1.25万"
    kinds = set(seps)
    if len(kinds) == 1:
        sep = seps[0]
        parts = token.split(sep)
        if len(parts) == 2 and sep != "'" and len(parts[1]) in (1, 2):
            return Decimal(parts[0] + "." + parts[1])
        if _thousands_ok(parts):
            return Decimal("".join(parts))
        return None
    decimal_sep = seps[-1]
    if decimal_sep == "'" or seps.count(decimal_sep) != 1 or len(kinds) != 2:
        return None
    integer, fraction = token.rsplit(decimal_sep, 1)
    if len(fraction) not in (1, 2):
        return None
    (thousands_sep,) = kinds - {decimal_sep}
    groups = integer.split(thousands_sep)
    if not _thousands_ok(groups):
        return None
    return Decimal("".join(groups) + "." + fraction)


def _thousands_ok(groups: list[str]) -> bool:
    head = groups[0]
    return 1 <= len(head) <= 3 and not head.startswith("0") and all(len(g) == 3 for g in groups[1:])


def _currency(m: re.Match[str]) -> tuple[str | None, bool]:
    """The currency the match states, and whether its markers agree."""
    pre, suf = m.group("pre"), m.group("suf")
    pre_code = _PREFIXES[pre.lower()] if pre else None
    suf_code = _SUFFIXES[suf.lower()] if suf else None
    if pre_code and suf_code and pre_code != suf_code:
        if pre.lower() in _GENERIC_SIGNS:
            return suf_code, True
        if suf.lower() in _GENERIC_UNITS:       # 新台幣5萬元, 港幣300元: 元 is the unit of any dollar
            return pre_code, True
        return None, False
    return pre_code or suf_code, True


def _value(m: re.Match[str]) -> Decimal | None:
    mult = m.group("mult")
    value: Decimal | None
    if m.group("cn"):
        number = chinese_numeral_value(m.group("cn"))
        if number is None:
            return None
        value = Decimal(number)
    else:
        value = _arabic_value(m.group("num"), multiplied=mult is not None)
        if value is None:
            return None
    if mult:
        value *= _MULTIPLIERS[mult.lower()]
    if value.adjusted() >= _MAX_INTEGER_DIGITS:
        return None
    return value


def _answer(m: re.Match[str]) -> AmountAnswer:
    currency, consistent = _currency(m)
    if not consistent:
        return _UNPARSED
    with localcontext() as ctx:
        ctx.prec = 40
        value = _value(m)
        if value is None:
            return _UNPARSED
        value = value.quantize(_CENT, rounding=ROUND_HALF_UP)
        if m.group("neg0") or m.group("neg1"):
            value = -value
    if value == 0:
        return AmountAnswer("zero", abs(value), currency)
    if value < 0:
        return AmountAnswer("negative", value, currency)
    return AmountAnswer("amount", value, currency)


def _marked(m: re.Match[str], text: str) -> bool:
    """Whether a match in running text is money: a currency marker, or 万/亿 not followed by a counter."""
    if m.group("pre") or m.group("suf"):
        return True
    big = (m.group("mult") or "") in _BIG_MULTIPLIERS or any(ch in _BIG_MULTIPLIERS for ch in m.group("cn") or "")
    return big and not _COUNTER_AFTER.match(text, m.end())


_EXPONENT_BEFORE = re.compile(r"[0-9][.,]?\s{0,2}e\s{0,2}[-+]?\s{0,2}$", re.IGNORECASE)
_EXPONENT_AFTER = re.compile(r"[.,]?\s{0,2}e\s{0,2}[-+]?\s{0,2}[0-9]", re.IGNORECASE)


def _in_exponent(m: re.Match[str], text: str) -> bool:
    """"1e309 USD": neither the 309 nor the 1 is an amount."""
    start = m.start("num") if m.group("num") else m.start()
    if _EXPONENT_BEFORE.search(text, max(0, start - 8), start):
        return True
    return bool(m.group("num")) and bool(_EXPONENT_AFTER.match(text, m.end("num")))


def _marked_hits(text: str) -> list[tuple[re.Match[str], AmountAnswer]]:
    hits = []
    for m in _matches(text):
        if not _marked(m, text) or _in_exponent(m, text):
            continue
        try:
            answer = _answer(m)
        except (ArithmeticError, ValueError, KeyError):
            continue
        if answer.kind != "unparsed":
            hits.append((m, answer))
    return hits


def parse_amount(text: str) -> AmountAnswer:
    """Read one typed amount answer. Never raises; see the module docstring for the readings."""
    try:
        return _parse_amount(text)
    except Exception:
        return _UNPARSED


def _parse_amount(text: str) -> AmountAnswer:
    if not isinstance(text, str):
        return _UNPARSED
    s = fold_width(text[:ANSWER_WINDOW]).strip(_STRIP).rstrip(".")
    for _ in range(3):
        before = _FILLER_BEFORE.match(s)
        if before:
            s = s[before.end():]
        after = _FILLER_AFTER.search(s)
        if after and after.start() > 0:
            s = s[:after.start()]
        s = s.strip(_STRIP).rstrip(".")
    if not s or _MALFORMED.search(_DATES.sub(" ", s)):
        return _UNPARSED
    m = _AMOUNT.fullmatch(s)
    if m:
        answer = _answer(m)
    else:
        hits = _marked_hits(s)
        if len(hits) != 1:
            return _UNPARSED
        answer = hits[0][1]
    if answer.value is not None and abs(answer.value) > MAX_PURCHASE:
        return _UNPARSED
    return answer


def find_amounts(text: str) -> list[tuple[str, Decimal, str | None]]:
    """The positive, marked amounts in a story, in order: (the text as written, value, currency)."""
    if not isinstance(text, str) or not text:
        return []
    try:
        folded = fold_width(text)
        return [
            (text[m.start():m.end()], answer.value, answer.currency)
            for m, answer in _marked_hits(folded)
            if answer.kind == "amount" and answer.value is not None
        ]
    except Exception:
        return []
