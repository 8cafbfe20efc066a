"""The end of the intake: the classification and the advice for a case, as template context."""
from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from dialogs.advice import advise
from dialogs.classifier import classify


def verdict(slots: Mapping[str, Any], today: date) -> dict[str, Any]:
    classification = classify(slots, str(slots.get("story") or ""))
    advice = advise(slots, classification.category, today)
    return {"classification": classification.to_dict(), "advice": advice.context(), "case": dict(slots)}
