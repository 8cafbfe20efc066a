"""The export (/export) as a Markdown document in the user's language: the user's cases, each
with its facts, timeline and evidence. The data is the plain export bot.conversation builds."""
from __future__ import annotations

import json
from typing import Any

from dialogs import engine
from dialogs.graph import Graph
from messages import MissingMessage, plain, render


def export_markdown(data: dict[str, Any], locale: str, graph: Graph) -> bytes:
    """The export as a readable Markdown document in the user's language."""

    def t(key: str, **context: Any) -> str:
        try:
            return plain(render(locale, key, **context))
        except MissingMessage:      # a kind of event or evidence newer than the catalog
            return key.rsplit(".", 1)[-1]

    def md(text: Any) -> str:
        return str(text).replace("\r", "").replace("\n", "\n  ")

    lines = [f"# {t('export.title')}", "", t("export.intro", exported_at=data["exported_at"], count=len(data["cases"])), ""]
    for case in data["cases"]:
        lines += [f"## {t('export.case', case_id=case['id'])} · {t('status.' + case['status'])}", ""]
        if case.get("category"):
            lines += [f"{t('export.category')}: {t('category.' + case['category'])}", ""]
        lines += [f"### {t('export.facts')}", ""]
        case_facts = engine.facts(graph, case["facts"])
        for fact in case_facts:
            lines.append(f"- {t('field.' + fact['slot'])}: {md(t('fact_value', current=fact))}")
        if case["facts"].get("story"):
            lines.append(f"- {t('field.story')}: {md(case['facts']['story'])}")
        if not case_facts and not case["facts"].get("story"):
            lines.append(f"- {t('export.none')}")
        lines += ["", f"### {t('export.timeline')}", ""]
        for event in case["timeline"]:
            detail = json.dumps(event["data"], ensure_ascii=False) if event["data"] else ""
            lines.append(f"- {event['at'].replace('T', ' ')} · {t('event.' + event['kind'])}"
                         + (f" · `{md(detail)}`" if detail else ""))
        lines += ["", f"### {t('export.evidence')}", ""]
        for item in case["evidence"]:
            lines.append(f"- {item['at'].replace('T', ' ')} · {t('export.kind.' + item['kind'])}"
                         + (f" · {md(item['text'])}" if item.get("text") else "")
                         + (f" · file id `{item['file_id']}`" if item.get("file_id") else ""))
        if not case["evidence"]:
            lines.append(f"- {t('export.none')}")
        lines.append("")
    return ("\n".join(lines).rstrip() + "\n").encode("utf-8")
