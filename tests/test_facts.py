"""The fact sheet (issue 12): every claim the advice shows traces to a fact with an official
source and a checked date; users see official citations only; `refund-advisor facts` lists them."""
from __future__ import annotations

import itertools
import json
import re
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import jinja2.utils
import markupsafe
import pytest
import yaml

import messages
from bot.cli import main
from dialogs import advice as adv
from dialogs.advice import advise
from dialogs.factsheet import entries
from dialogs.model import CATEGORIES, JURISDICTIONS, LOCALES, PAYMENT_METHODS

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 12, 6)

# The official sites a fact's `url` may point to: law databases, regulators, police, card schemes
# and the platforms' own pages (for their own rules).
OFFICIAL = (
    "flk.npc.gov.cn", "www.gov.cn", "www.samr.gov.cn", "www.mps.gov.cn", "eur-lex.europa.eu",
    "www.legislation.gov.uk", "www.ecfr.gov", "uscode.house.gov", "www.consumerfinance.gov",
    "reportfraud.ftc.gov", "www.usa.gov", "www.ic3.gov", "www.handbook.fca.org.uk", "www.psr.org.uk",
    "www.reportfraud.police.uk", "www.directdebit.co.uk", "www.citizensadvice.org.uk", "www.eccnet.eu",
    "usa.visa.com", "www.paypal.com", "support.apple.com", "support.google.com", "store.steampowered.com",
    "support.xbox.com", "rulechannel.taobao.com", "learn-jdm.jd.com", "pay.weixin.qq.com",
    "opendocs.alipay.com",
    # Hong Kong, Taiwan, Singapore, Malaysia (issue 13)
    "www.consumer.org.hk", "www.judiciary.hk", "www.adcc.gov.hk", "www1.erc.police.gov.hk",
    "www.fdrc.org.hk", "law.moj.gov.tw", "cpc.ey.gov.tw", "165.npa.gov.tw", "www.foi.org.tw",
    "www.judiciary.gov.sg", "sso.agc.gov.sg", "www.case.org.sg", "www.scamshield.gov.sg",
    "eservices1.police.gov.sg", "www.fidrec.com.sg", "ttpm.kpdn.gov.my", "lom.agc.gov.my",
    "nfcc.jpm.gov.my", "www.fmos.org.my",
)
# Texts with a number that is advice, not a legal fact: "give them 7 days" is what the advisor
# calls reasonable, and says so.
NOT_A_LEGAL_NUMBER = {"step.seller.written_demand", "step.seller.final_notice", "step.stalling.written_deadline"}
CLAIM = re.compile(r"\d|\b[a-z0-9-]+\.(?:com|gov|org|uk|eu|cn|net)\b", re.I)
# What research notes look like; none of it may reach a user.
RESEARCH = re.compile(r"github|quoted|\brepo\b|repository|\.md\b|TMAI|CPRL|7DAY|bankersonline|lifewire|makeuseof|bgr\.com|"
                      r"mylawyer|mondaq|chargebacks911|chargeback\.com|file id|via ", re.I)


@pytest.fixture(autouse=True)
def _markup_shim(monkeypatch):
    if not hasattr(jinja2.utils, "Markup"):
        monkeypatch.setattr(jinja2.utils, "Markup", markupsafe.Markup, raising=False)


def test_every_fact_has_an_official_citation_address_and_checked_date():
    assert adv.rules_problems() == []
    for fid, fact in adv.facts().items():
        assert fact["cite"]["en"].strip() and fact["cite"]["zh"].strip(), fid
        assert urlparse(fact["url"]).hostname in OFFICIAL, (fid, fact["url"])
        date.fromisoformat(str(fact["checked"]))
        assert str(fact["via"]).strip(), fid


def test_chinese_citations_name_the_article_in_chinese():
    for fid, fact in adv.facts().items():
        if fid.startswith("cn.") and "《" in fact["cite"]["zh"] and "法" in fact["cite"]["zh"]:
            assert re.search(r"第[一二三四五六七八九十百]+条", fact["cite"]["zh"]), (fid, fact["cite"]["zh"])


@pytest.mark.parametrize("locale", LOCALES)
def test_every_shown_legal_number_phone_or_address_has_a_fact(locale):
    """A text with a number or a web address is only shown by rules that name its facts."""
    catalog = yaml.safe_load((ROOT / f"messages/{locale}/advice.yaml").read_text("utf-8"))
    rules = adv.advice_rules()
    facts_of: dict[str, set[str]] = {}
    for e in rules.entries:
        facts_of.setdefault(e.key, set()).update(e.facts)
    for d in rules.deadlines:
        for key in (f"deadline.{d.id}", d.action, f"deadline.{d.id}.met"):
            facts_of.setdefault(key, set()).update(d.facts)
    unsourced = []
    for key, text in catalog.items():
        plain = re.sub(r"\{[{%].*?[}%]\}", "", str(text))
        if CLAIM.search(plain) and not facts_of.get(key) and key not in NOT_A_LEGAL_NUMBER:
            unsourced.append(key)
    assert unsourced == []


@pytest.mark.parametrize("locale", LOCALES)
def test_users_see_official_citations_never_research_notes(locale):
    label = {"en": "Source: ", "zh": "依据：", "zh-Hant": "依據："}[locale]
    seen = set()
    for category, jurisdiction, method in itertools.product(CATEGORIES, JURISDICTIONS, PAYMENT_METHODS):
        case = {"jurisdiction": jurisdiction, "payment_method": method, "purchase_type": "goods",
                "purchase_date": "2026-11-01", "problem_date": "2026-11-02", "merchant": "京东 Steam Google Play",
                "contacted": True, "contact_date": "2026-11-03", "seller_answer": "refused"}
        text = messages.render(locale, "advice_body", advice=advise(case, category, TODAY).context(), case=case)
        for line in re.findall(rf"<i>{label}(.*?)</i>", text):
            seen.add(line)
            assert not RESEARCH.search(line), line
    assert seen
    assert any(("第二十五條" if locale == "zh-Hant" else "第二十五条") in s for s in seen) or locale == "en"


def test_the_shared_research_sheet_ids_are_kept():
    shared = ROOT.parent / "shared" / "facts" / "refund-facts.yaml"
    if not shared.exists():
        shared = Path("/work/shared/facts/refund-facts.yaml")
    if not shared.exists():
        pytest.skip("shared fact sheet not available")
    ids = {f["id"] for f in yaml.safe_load(shared.read_text("utf-8"))["facts"]}
    assert ids <= set(adv.facts())


def test_rules_that_change_or_could_not_be_verified_are_flagged():
    by_id = {e.id: e for e in entries(TODAY)}
    assert any("changes" in f for f in by_id["uk.report_fraud"].flags)          # an authority's name
    assert any("changes" in f for f in by_id["intl.googleplay"].flags)          # a platform policy
    assert any("changes" in f for f in by_id["intl.chargeback.windows"].flags)  # card scheme rules
    assert any(f.startswith("unverified") for f in by_id["uk.fos"].flags)
    assert by_id["cn.cprl.art25.seven_day_return"].flags == ()                   # a law, checked today
    later = {e.id: e for e in entries(date(2028, 1, 1))}
    assert any("over a year" in f for f in later["cn.cprl.art25.seven_day_return"].flags)
    assert "step.seller.cn_7day_return" in by_id["cn.cprl.art25.seven_day_return"].used_by


def test_the_facts_command_lists_every_fact_with_its_source(capsys):
    assert main(["facts", "--as-of", "2026-12-06"]) == 0
    out = capsys.readouterr().out
    for fid, fact in adv.facts().items():
        assert fid in out and fact["url"] in out
    assert "《消费者权益保护法》第二十五条" in out and "checked: 2026-12-06" in out
    assert out.rstrip().endswith("flagged for re-checking")

    assert main(["facts", "--flagged", "--json", "--as-of", "2026-12-06"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["flags"] for r in rows) and len(rows) < len(adv.facts())
    assert {"id", "cite", "url", "via", "checked", "used_by", "flags"} <= set(rows[0])

    assert main(["facts", "--flagged", "--json", "--as-of", "2030-01-01"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(adv.facts())   # every check over a year old

    assert main(["facts", "--as-of", "someday"]) == 2
    assert "--as-of" in capsys.readouterr().err
