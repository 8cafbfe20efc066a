"""The end of the intake: the classification and the advice for a case, as template context."""
from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Mapping

from dialogs.advice import advise, case_context
from dialogs.classifier import classify
from dialogs.model import CATEGORIES
from dialogs.phrase_rules import Signal

# The situation the user picked under the advice ("That's not my situation"): it wins over the
# classifier's reading, which is still shown beside it.
CATEGORY_CHOICE = "category_choice"


def verdict(slots: Mapping[str, Any], today: date, ignore: Iterable[str] = (),
            chosen: str | None = None) -> dict[str, Any]:
    classification = classify(slots, str(slots.get("story") or ""), ignore)
    context: dict[str, Any] = {"classification": classification.to_dict()}
    category = classification.category
    if chosen in CATEGORIES:
        context["read_as"] = classification.category
        category = chosen
        context["classification"] = {
            "category": chosen, "confidence": 1.0, "chosen": True, "read_as": classification.category,
            "signals": [Signal(chosen, 1.0, "choice").to_dict()],
            "probabilities": classification.to_dict()["probabilities"],
        }
    advice = advise(slots, category, today)
    context.update({"advice": advice.context(), "case": case_context(slots, category, today)})
    return context
