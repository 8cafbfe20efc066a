"""The export (/export) as a Markdown document in the user's language: the user's cases, each
with its facts, deadlines, timeline (as sentences, at the user's local time) and evidence. The
data is the plain export bot.conversation builds, with the sentences and deadline names rendered
here (`timeline_sentences`, `deadline_rows`)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from dialogs import engine
from dialogs.graph import Graph
from messages import MissingMessage, plain, render


def timeline_sentences(locale: str, entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The timeline's entries (dialogs.timeline.entries) as the sentences /status shows."""
    return [{"at": entry["at"], "kind": entry["kind"], "text": plain(render(locale, "timeline.what", e=entry))}
            for entry in entries]


def deadline_rows(locale: str, deadlines: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The advice's deadlines (Advice.context()["deadlines"]) with their names in the user's language."""
    return [{"id": d["id"], "date": d["date"], "name": plain(render(locale, d["name"])),
             "passed": d["passed"], "met": d["met"]} for d in deadlines]


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
        if case.get("deadlines"):
            lines += ["", f"### {t('export.deadlines')}", ""]
            for d in case["deadlines"]:
                lines.append(f"- {t('export.date', day=d['date'])}: {md(d['name'])}"
                             + (f" ({t('export.deadline_passed')})" if d["passed"] else "")
                             + (f" ({t('export.deadline_met')})" if d["met"] else ""))
        lines += ["", f"### {t('export.timeline')} ({case.get('time_zone', 'UTC')})", ""]
        for entry in case.get("timeline_text") or []:
            lines.append(f"- {entry['at'][:16].replace('T', ' ')} · {md(entry['text'])}")
        lines += ["", f"### {t('export.evidence')}", ""]
        for item in case["evidence"]:
            lines.append(f"- {item['at'].replace('T', ' ')} · {t('export.kind.' + item['kind'])}"
                         + (f" · {md(item['text'])}" if item.get("text") else "")
                         + (f" · file id `{item['file_id']}`" if item.get("file_id") else ""))
        if not case["evidence"]:
            lines.append(f"- {t('export.none')}")
        lines.append("")
    return ("\n".join(lines).rstrip() + "\n").encode("utf-8")
