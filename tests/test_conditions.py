"""The `when` conditions of the rules files: compiled once for speed, they must still pick
exactly the entries the written conditions pick, for every case."""
from __future__ import annotations

import itertools
import pytest

from dialogs import advice
from dialogs.advice import normalise_case
from dialogs.rulefiles import rules_file
from dialogs.conditions import compile_when, matches
from dialogs.model import CATEGORIES, JURISDICTIONS, PAYMENT_METHODS, PURCHASE_TYPES, SELLER_ANSWERS


def _when_maps(node):
    """Every `when` map anywhere in a parsed rules file."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "when" and isinstance(value, dict):
                yield value
            yield from _when_maps(value)
    elif isinstance(node, list):
        for item in node:
            yield from _when_maps(item)


WHENS = [w for name in ("advice.yaml", "deadlines.yaml", "ladder.yaml", "recipients.yaml")
         for w in _when_maps(rules_file(name))]
WHENS += [cond for conds in rules_file("advice.yaml")["derived"].values() for cond in conds]


def _cases():
    for category, jurisdiction, method, ptype, answer in itertools.product(
            CATEGORIES, JURISDICTIONS + ("XX",), PAYMENT_METHODS, PURCHASE_TYPES[::3], SELLER_ANSWERS[::2]):
        yield normalise_case({"jurisdiction": jurisdiction, "payment_method": method, "purchase_type": ptype,
                              "seller_answer": answer, "merchant": "JD.com", "story": "在淘宝买的",
                              "purchase_date": "2026-11-01"}, category)
    yield normalise_case({}, "other")
    yield normalise_case({"merchant": "jdsports", "contact_date": "2026-11-02"}, "defect")


def test_the_rules_have_conditions_to_check():
    assert len(WHENS) > 100


def test_compiled_conditions_pick_what_the_written_ones_pick():
    compiled = [(w, compile_when(w)) for w in WHENS]
    for case in _cases():
        for when, test in compiled:
            assert test(case) == matches(when, case), (when, case)


@pytest.mark.parametrize("when, case, expected", [
    ({"merchant_any": ["jd"]}, {"merchant": "JD.com"}, True),
    ({"merchant_any": ["jd"]}, {"merchant": "jdsports"}, False),      # latin words stand alone
    ({"merchant_any": ["淘宝"]}, {"story": "在淘宝买的"}, True),
    ({"not": {"category": ["defect"], "fraud": [True]}}, {"category": "defect", "fraud": False}, False),
    ({"any": [{"jurisdiction": ["CN"]}, {"payment_method": ["alipay"]}]}, {"jurisdiction": "UK",
                                                                           "payment_method": "alipay"}, True),
    ({"missing": ["purchase_date"], "present": ["merchant"]}, {"merchant": "x", "purchase_date": ""}, True),
    ({"seller_answer": [None]}, {}, True),                              # null matches a missing slot
])
def test_compiled_condition_examples(when, case, expected):
    assert compile_when(when)(case) is expected
    assert matches(when, case) is expected


def test_a_malformed_condition_fails_when_used_as_it_did_before():
    # The loader reports it as a problem (rules_problems); compiling must not hide or move the failure.
    when = {"any": [{"category": ["defect"]}, "not a map"]}
    test = compile_when(when)
    with pytest.raises(AttributeError):
        matches(when, {"category": "other"})
    with pytest.raises(AttributeError):
        test({"category": "other"})


def test_advice_is_the_same_whichever_entries_the_filing_skips():
    # Entries are filed by one value list of their `when`; a case must get every entry it matches.
    rules = advice.advice_rules()
    for case in _cases():
        matching = [i for i, e in enumerate(rules.entries) if matches(e.when, case)]
        assert set(matching) <= set(rules.gates.candidates(case))
