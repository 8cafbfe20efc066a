"""The intake engine: `step(state, event, now)` reads one event and says what happens.

Pure: no I/O, no clock (`now` comes in, already in the user's time zone). The shell
saves `Step.state`, appends `Step.events` to the case timeline, renders `Step.replies`
and applies `Step.effects`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Iterable, Mapping, cast

from dialogs import extract
from dialogs.amounts import parse_amount
from dialogs.answers import clean, match_choice, match_words, match_yesno, normalize
from dialogs.classifier import Classification, classify
from dialogs.dates import parse_date
from dialogs.graph import Graph, Node, load
from dialogs.model import CATEGORIES, Button, Effect, Reply, Slots, TimelineEvent
from dialogs.places import local_currency, localised_amount
from dialogs.verdict import CATEGORY_CHOICE, verdict

MERCHANT_MAX = 120          # a longer answer to "who sold it" is a story, not a name
STORY_WORTHY = 12           # an unmatched answer this long is kept as part of the story
MINE_FROM = 16              # an answer this long is also read for the other questions it answers
_CJK = re.compile(r"[\u3400-\u9fff]")
BACK, SKIP, RESUME, NEW, CONFIRM, EDIT, CANCEL_EDIT = "_back", "_skip", "_resume", "_new", "_yes", "_edit", "_cancel"
NOT_MY_SITUATION, CATEGORY_PREFIX = "_recat", "cat."   # under the advice: "That's not my situation"


# ---- events -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Text:
    """Something the user typed."""
    text: str


@dataclass(frozen=True)
class Press:
    """A button pressed: the option id the button carried."""
    option: str


@dataclass(frozen=True)
class Command:
    """`ask` (show the open question again), `back`, `skip`, `cancel`, `resume`."""
    name: str


Event = Text | Press | Command


# ---- state --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DialogState:
    node: str
    slots: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    pending: Mapping[str, Any] | None = None   # a sub-question: ambiguous date, edit menu
    paused: bool = False
    # Slots the story filled in, not the user's own answers to their questions: the classifier
    # reads the story itself and does not count these a second time.
    filled: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "slots": dict(self.slots), "history": list(self.history),
                "skipped": list(self.skipped), "pending": dict(self.pending) if self.pending else None,
                "paused": self.paused, "filled": list(self.filled)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DialogState":
        return cls(node=data["node"], slots=dict(data.get("slots") or {}),
                   history=tuple(data.get("history") or ()), skipped=tuple(data.get("skipped") or ()),
                   pending=data.get("pending"), paused=bool(data.get("paused")),
                   filled=tuple(data.get("filled") or ()))


def _with(state: DialogState, **changes: Any) -> DialogState:
    """`dataclasses.replace` for the dialog state (fields named by the engine itself), filled in
    directly: a step makes several copies and the generated __init__ sets fields one by one."""
    new = object.__new__(DialogState)
    values = new.__dict__
    values.update(state.__dict__)
    values.update(changes)
    return new


@dataclass(frozen=True)
class Step:
    state: DialogState
    replies: tuple[Reply, ...] = ()
    events: tuple[TimelineEvent, ...] = ()
    effects: tuple[Effect, ...] = ()


def start(graph: Graph | None = None) -> DialogState:
    return DialogState(node=(graph or load()).start)


# ---- what the graph says about the answers so far -----------------------------------------

def active_nodes(graph: Graph, slots: Mapping[str, Any]) -> list[Node]:
    """The question nodes on the path the answers take (answers off the path do not count)."""
    path: list[Node] = []
    node_id: str | None = graph.start
    seen: set[str] = set()
    nodes = graph.nodes
    while node_id and node_id not in seen:
        seen.add(node_id)
        node = nodes[node_id]
        if node.slot:
            path.append(node)
        node_id = node.next_node(slots)
    # The clarifying questions are reached from the classifier, not by an edge: answered, they count.
    path.extend(nodes[n] for n in graph.clarify.nodes if nodes[n].slot in slots and nodes[n] not in path)
    return path


def active_slots(graph: Graph, slots: Mapping[str, Any]) -> Slots:
    """The answers on the path (`active_nodes`), by slot name: the case's Slots."""
    return cast(Slots, {n.slot: slots[n.slot] for n in active_nodes(graph, slots) if n.slot is not None and n.slot in slots})


def facts(graph: Graph, slots: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The answers as a list the templates can show: slot, answer type and value."""
    return [{"slot": n.slot, "type": n.type, "value": slots[n.slot]}
            for n in active_nodes(graph, slots) if n.slot is not None and n.slot in slots and n.slot != "story"]


def _answered(state: DialogState, node: Node) -> bool:
    return node.slot in state.slots or node.slot in state.skipped


def _advance(graph: Graph, state: DialogState, from_node: Node) -> DialogState:
    """Move past `from_node` and every question already answered (by a story, or before an edit)."""
    state = _with_currency(state)
    nodes = graph.nodes
    node_id = from_node.next_node(state.slots)
    while node_id and nodes[node_id].slot and _answered(state, nodes[node_id]):
        node_id = nodes[node_id].next_node(state.slots)
    if node_id and nodes[node_id].type == "confirm":
        node_id = _clarifying_question(graph, state) or node_id
    return _with(state, node=node_id or from_node.id, history=state.history + (from_node.id,), pending=None)


def classification(graph: Graph, state: DialogState) -> Classification:
    """What the classifier makes of the case so far (the answers on the path and the story)."""
    slots = active_slots(graph, state.slots)
    return classify(slots, str(slots.get("story") or ""), ignore=state.filled)


def _clarifying_question(graph: Graph, state: DialogState) -> str | None:
    """The question that tells apart the two situations the classifier hesitates between, if it
    does and one is declared for them (intake.yaml `clarify`), at most `max` in an intake."""
    clarify = graph.clarify
    asked = sum(1 for n in clarify.nodes if _answered(state, graph[n]))
    if not clarify.pairs or asked >= clarify.max_questions or state.slots.get(CATEGORY_CHOICE):
        return None
    node_id = clarify.question_for(classification(graph, state).ranked())
    return node_id if node_id and not _answered(state, graph[node_id]) else None


def _currency_filled(slots: Mapping[str, Any]) -> dict[str, Any]:
    """An amount given without a currency ("五万", "1.2万", "49.99") is in the currency of where
    the user lives, as soon as that is known."""
    amount = slots.get("amount")
    currency = local_currency(None, "", slots.get("jurisdiction"))
    if not isinstance(amount, Mapping) or amount.get("currency") or not currency:
        return dict(slots)
    return {**slots, "amount": {**amount, "currency": currency}}


def _with_currency(state: DialogState) -> DialogState:
    filled = _currency_filled(state.slots)
    return state if filled == dict(state.slots) else _with(state, slots=filled)


# ---- replies ------------------------------------------------------------------------------

# Buttons carry no per-user data: the same ones serve every question that shows them.
_SKIP_BUTTON, _BACK_BUTTON = Button(SKIP, "btn.skip"), Button(BACK, "btn.back")
_YESNO_BUTTONS = (Button("yes", "btn.yes"), Button("no", "btn.no"))
_DATE_BUTTONS = (Button("today", "btn.today"), Button("yesterday", "btn.yesterday"))
_CATEGORY_BUTTONS = tuple(Button(CATEGORY_PREFIX + c, f"category.{c}") for c in CATEGORIES) + \
    (Button(CANCEL_EDIT, "btn.keep_category"),)


@lru_cache(maxsize=256)
def _option_buttons(slot: str | None, option_ids: tuple[str, ...]) -> tuple[Button, ...]:
    return tuple(Button(oid, f"opt.{slot}.{oid}") for oid in option_ids)


def option_order(graph: Graph, node: Node, state: DialogState) -> tuple[str, ...]:
    """A choice question's options as shown: declared order, or for a `ranked` question with a
    story to read, the most likely first (by the classifier; a typed number counts in this order)."""
    if not node.ranked or not state.slots.get("story"):
        return node.index.ids
    likely = {option.category: option.id for option in node.options if option.category}
    first = [likely[c] for c, _ in classification(graph, state).ranked() if c in likely]
    return tuple(first + [oid for oid in node.index.ids if oid not in first])


def _controls(graph: Graph, state: DialogState, node: Node) -> tuple[Button, ...]:
    if node.optional:
        return (_SKIP_BUTTON, _BACK_BUTTON) if state.history else (_SKIP_BUTTON,)
    return (_BACK_BUTTON,) if state.history else ()


def ask(graph: Graph, state: DialogState) -> Reply:
    """The open question, with its buttons."""
    node = graph[state.node]
    if state.pending and state.pending.get("kind") == "date_choice":
        dates = tuple(Button(f"d{i}", "btn.date", {"date": d}) for i, d in enumerate(state.pending["candidates"]))
        return Reply("q.date_choice", {"text": state.pending.get("text", "")}, dates)
    if state.pending and state.pending.get("kind") == "edit_menu":
        fields = tuple(Button(n.id, f"field.{n.slot}") for n in active_nodes(graph, state.slots))
        return Reply("q.edit_menu", {}, fields + (Button(CANCEL_EDIT, "btn.cancel_edit"),))
    if state.pending and state.pending.get("kind") == "category_menu":
        return Reply("q.category_menu", {}, _CATEGORY_BUTTONS)
    if node.type == "end":
        return Reply("case_done", {})
    if node.type == "confirm":
        return Reply("summary", {"facts": facts(graph, state.slots)},
                     (Button(CONFIRM, "btn.confirm"), Button(EDIT, "btn.edit")) + _controls(graph, state, node))
    context: dict[str, Any] = {"optional": node.optional}
    if node.slot is not None and node.slot in state.slots:
        context["current"] = {"slot": node.slot, "type": node.type, "value": state.slots[node.slot]}
    buttons: tuple[Button, ...] = ()
    if node.type == "choice":
        buttons = _option_buttons(node.slot, option_order(graph, node, state))
    elif node.type == "yesno":
        buttons = _YESNO_BUTTONS
    elif node.type == "date":
        buttons = _DATE_BUTTONS
    return Reply(f"q.{node.id}", context, buttons + _controls(graph, state, node))


def _error(graph: Graph, state: DialogState, key: str, **context: Any) -> Step:
    return Step(state, (Reply(key, context), ask(graph, state)))


# ---- reading one answer -------------------------------------------------------------------

@dataclass(frozen=True)
class _Parsed:
    value: Any = None
    ok: bool = False
    error: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    candidates: tuple[date, ...] = ()


def _check_date(node: Node, state: DialogState, day: date, today: date) -> _Parsed:
    if day > today:
        return _Parsed(error="err.date_future", context={"date": day.isoformat()})
    earlier = state.slots.get(node.not_before) if node.not_before else None
    if earlier and day.isoformat() < earlier:
        return _Parsed(error="err.date_before", context={"date": day.isoformat(), "other": earlier})
    return _Parsed(value=day.isoformat(), ok=True)


def _parse(graph: Graph, node: Node, state: DialogState, event: Text | Press, today: date, norm: str) -> _Parsed:
    """`norm`: the typed text, `normalize`d (empty for a press)."""
    if isinstance(event, Press):
        if node.type == "choice" and node.option(event.option):
            return _Parsed(value=event.option, ok=True)
        if node.type == "yesno" and event.option in ("yes", "no"):
            return _Parsed(value=event.option == "yes", ok=True)
        if node.type == "date" and event.option in ("today", "yesterday"):
            return _check_date(node, state, date.fromordinal(today.toordinal() - (event.option == "yesterday")), today)
        return _Parsed(error="stale")
    text = event.text
    if node.type == "choice":
        option = match_choice(node, norm, normalized=True, order=option_order(graph, node, state))
        return _Parsed(value=option, ok=True) if option else _Parsed(error="err.choice")
    if node.type == "yesno":
        yes = match_yesno(graph.yesno, norm, normalized=True)
        return _Parsed(value=yes, ok=True) if yes is not None else _Parsed(error="err.yesno")
    if node.type == "date":
        when = parse_date(text, today)
        if when.kind == "date" and when.value is not None:
            return _check_date(node, state, when.value, today)
        if when.kind == "ambiguous":
            return _Parsed(candidates=when.candidates)
        return _Parsed(error="err.date_impossible" if when.kind == "impossible" else "err.date_unparsed")
    if node.type == "amount":
        amount = parse_amount(text)
        if amount.kind == "amount":
            currency = local_currency(amount.currency, text, state.slots.get("jurisdiction"))
            return _Parsed(value={"value": f"{amount.value:.2f}", "currency": currency}, ok=True)
        return _Parsed(error=f"err.amount_{amount.kind}")
    if node.type == "text":
        if node.slot == "merchant" and len(text) > MERCHANT_MAX:
            return _Parsed(error="err.merchant_long")
        return _Parsed(value=text, ok=True)
    return _Parsed(error="err.choice")


def _tells_more(text: str) -> bool:
    """Long enough to hold more than the answer itself ("UK", "299元" do not); a Chinese
    character carries about as much as two Latin ones."""
    return len(text) + len(_CJK.findall(text)) >= MINE_FROM


def _with_story(state: DialogState, text: str) -> DialogState:
    slots = dict(state.slots)
    slots["story"] = _joined(state.slots.get("story"), text)
    return _with(state, slots=slots)


def _mined(graph: Graph, state: DialogState, text: str, today: date) -> tuple[DialogState, dict[str, Any]]:
    """The state with what the text tells added to unanswered slots, and what was added. The
    questions read by the classifier are answered only when it is sure of the whole story."""
    found = extract.mine(graph, text, today)
    if "amount" in found:   # 5萬元 told from Taipei is in New Taiwan dollars (rules/places.yaml)
        found["amount"] = localised_amount(found["amount"], text, state.slots.get("jurisdiction") or found.get("jurisdiction"))
    found = {k: v for k, v in found.items() if _valid_mined(graph, state, k, v, found)}
    merged = extract.merge(state.slots, found, frozenset(state.skipped))
    from_story = set(state.filled) | set(found)
    story = _joined(state.slots.get("story"), text)
    for node in graph.nodes.values():
        if node.from_story == "classifier" and node.slot is not None and node.slot not in merged \
                and node.slot not in state.skipped:
            option = extract.story_choice(graph, node.slot, merged, story, ignore=from_story)
            if option is not None:
                merged[node.slot] = option
    merged = _currency_filled(merged)
    added = {k: v for k, v in merged.items() if k not in state.slots}
    return _with(state, slots=merged, filled=_union(state.filled, added)), added


def _joined(story: Any, text: str) -> str:
    return f"{story}\n\n{text}" if story else text


def _union(names: tuple[str, ...], more: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names) | set(more)))


def _valid_mined(graph: Graph, state: DialogState, slot: str, value: Any, found: Mapping[str, Any]) -> bool:
    node = graph.by_slot(slot)
    if node is None or node.type != "date" or not node.not_before:
        return True
    earlier = state.slots.get(node.not_before) or found.get(node.not_before)
    return not earlier or value >= earlier


# ---- the step -----------------------------------------------------------------------------

def step(state: DialogState, event: Event, now: datetime, graph: Graph | None = None) -> Step:
    graph = graph or load()
    today = now.date()
    norm = ""
    if isinstance(event, Text):
        event = Text(clean(event.text))
        norm = normalize(event.text)
    if state.node not in graph.nodes:   # the graph changed under a stored state: restart at the summary
        state = _with(state, node="confirm" if "confirm" in graph.nodes else graph.start, pending=None)

    if isinstance(event, Command):
        return _command(graph, state, event.name)
    if isinstance(event, Press) and event.option in (BACK, SKIP, RESUME):
        return _command(graph, state, {BACK: "back", SKIP: "skip", RESUME: "resume"}[event.option])
    if isinstance(event, Press) and event.option == NEW:
        return Step(state, (), (), (Effect("new_case"),))
    if state.paused:
        return Step(state, (Reply("paused", {}, (Button(RESUME, "btn.resume"), Button(NEW, "btn.new"))),))
    if isinstance(event, Text):
        if not event.text:
            return _error(graph, state, "err.empty")
        if match_words(norm, graph.controls.get("back", ()), normalized=True):
            return _command(graph, state, "back")
        if match_words(norm, graph.controls.get("skip", ()), normalized=True) and graph[state.node].type not in ("end", "confirm"):
            return _command(graph, state, "skip")
    if state.pending:
        return _pending(graph, state, event, today, norm)

    node = graph[state.node]
    if node.type == "end":
        return _after_intake(graph, state, event, norm)
    if node.type == "confirm":
        return _confirm(graph, state, event, now, norm)
    return _answer(graph, state, node, event, now, norm=norm)


def _command(graph: Graph, state: DialogState, name: str) -> Step:
    node = graph[state.node]
    if name == "cancel":
        return Step(_with(state, paused=True, pending=None), (Reply("cancelled", {}),),
                    (TimelineEvent("paused", {"node": state.node}),))
    if name in ("resume", "ask"):
        return Step(_with(state, paused=False), (ask(graph, _with(state, paused=False)),))
    if name == "back":
        if state.pending:
            return Step(_with(state, pending=None), (ask(graph, _with(state, pending=None)),))
        if not state.history:
            return _error(graph, state, "err.no_back")
        back = _with(state, node=state.history[-1], history=state.history[:-1], paused=False)
        return Step(back, (ask(graph, back),), (TimelineEvent("back", {"to": back.node}),))
    if name == "skip":
        if not node.optional or state.pending:
            return _error(graph, state, "err.not_optional")
        skipped = _with(state, skipped=tuple(sorted(set(state.skipped) | {node.slot})))
        moved = _advance(graph, skipped, node)
        return _arrive(graph, moved, (TimelineEvent("skipped", {"slot": node.slot}),), None)
    return _error(graph, state, "err.unknown_command")


def _pending(graph: Graph, state: DialogState, event: Text | Press, today: date, norm: str) -> Step:
    pending = state.pending or {}
    node = graph[state.node]
    if pending.get("kind") == "category_menu":
        return _category_menu(graph, state, event, today)
    if pending.get("kind") == "date_choice":
        candidates = pending["candidates"]
        choice = None
        if isinstance(event, Press) and event.option in ("d0", "d1"):
            choice = candidates[int(event.option[1])]
        elif isinstance(event, Text) and event.text.strip() in ("1", "2"):
            choice = candidates[int(event.text.strip()) - 1]
        elif isinstance(event, Text):
            return _answer(graph, _with(state, pending=None), node, event, None, today=today, norm=norm)
        if choice is None:
            return _error(graph, state, "stale")
        return _answer(graph, _with(state, pending=None), node, Press(f"={choice}"), None,
                       today=today, value=choice)
    # edit menu
    if isinstance(event, Press) and event.option == CANCEL_EDIT:
        back = _with(state, pending=None)
        return Step(back, (ask(graph, back),))
    targets = active_nodes(graph, state.slots)
    target = None
    if isinstance(event, Press):
        target = next((n for n in targets if n.id == event.option), None)
    elif isinstance(event, Text) and event.text.isdigit() and 1 <= int(event.text) <= len(targets):
        target = targets[int(event.text) - 1]
    if target is None:
        return _error(graph, state, "stale" if isinstance(event, Press) else "err.choice")
    moved = _with(state, node=target.id, pending=None, history=state.history + (state.node,))
    return Step(moved, (ask(graph, moved),))


def _answer(graph: Graph, state: DialogState, node: Node, event: Text | Press, now: datetime | None,
            today: date | None = None, value: str | None = None, norm: str = "") -> Step:
    if today is None:
        assert now is not None, "_answer is given now or today"
        today = now.date()
    assert node.slot is not None   # every question stores its answer in a slot (graph.problems)
    if value is not None:
        parsed = _check_date(node, state, date.fromisoformat(value), today)
    else:
        parsed = _parse(graph, node, state, event, today, norm)
    text = event.text if isinstance(event, Text) else None
    if parsed.candidates:
        asking = _with(state, pending={"kind": "date_choice", "text": text or "",
                                         "candidates": [d.isoformat() for d in parsed.candidates]})
        return Step(asking, (ask(graph, asking),))
    if parsed.error == "stale":
        return Step(state, (Reply("stale", {}), ask(graph, state)))

    events: list[TimelineEvent] = []
    added: dict[str, Any] = {}
    if text and node.slot != "story" and (not parsed.ok or _tells_more(text)):
        mined_state, added = _mined(graph, state, text, today)
        added.pop(node.slot, None) if parsed.ok else None
        if not parsed.ok and node.slot in added:
            parsed = _check_date(node, state, date.fromisoformat(added[node.slot]), today) \
                if node.type == "date" else _Parsed(value=added.pop(node.slot), ok=True)
            added.pop(node.slot, None)
        state = _with(mined_state, slots={k: v for k, v in mined_state.slots.items()
                                            if k != node.slot or k in state.slots})
        if added or (not parsed.ok and len(text) >= STORY_WORTHY):
            state = _with_story(state, text)
            events.append(TimelineEvent("story", {"text": text, "found": added}))
    if not parsed.ok:
        if added:
            # A story that answers other questions is not a wrong answer to this one: say what
            # was noted and ask this question again, without "I did not understand".
            notes = Reply("noted", {"facts": [f for f in facts(graph, state.slots) if f["slot"] in added]})
            return Step(state, (notes, ask(graph, state)), tuple(events))
        return Step(state, (Reply(parsed.error or "err.choice", dict(parsed.context)), ask(graph, state)),
                    tuple(events))

    slots = dict(state.slots)
    if node.slot == "story":
        state = _with_story(state, text or "")
        slots = dict(state.slots)
        _, story_found = _mined(graph, _with(state, slots={}), text or "", today)
        for k, v in story_found.items():
            if k not in slots and k not in state.skipped and k != "story":
                slots[k] = v
                added[k] = v
    else:
        slots[node.slot] = parsed.value
    events.insert(0, TimelineEvent("answer", {"slot": node.slot, "value": slots.get(node.slot), "text": text}))
    answered = _with(state, slots=slots, skipped=tuple(s for s in state.skipped if s != node.slot),
                     filled=tuple(s for s in _union(state.filled, added) if s != node.slot))
    moved = _advance(graph, answered, node)
    noted = (Reply("noted", {"facts": [f for f in facts(graph, moved.slots) if f["slot"] in added]}),) if added else ()
    return _arrive(graph, moved, tuple(events), now, noted)


def _arrive(graph: Graph, state: DialogState, events: tuple[TimelineEvent, ...], now: datetime | None,
            notes: tuple[Reply, ...] = ()) -> Step:
    return Step(state, notes + (ask(graph, state),), events)


def _confirm(graph: Graph, state: DialogState, event: Text | Press, now: datetime, norm: str) -> Step:
    if isinstance(event, Press):
        if event.option == CONFIRM:
            return _finish(graph, state, now)
        if event.option == EDIT:
            editing = _with(state, pending={"kind": "edit_menu"})
            return Step(editing, (ask(graph, editing),))
        return Step(state, (Reply("stale", {}), ask(graph, state)))
    yes = match_yesno(graph.yesno, norm, normalized=True)
    if yes is True:
        return _finish(graph, state, now)
    if yes is False or match_words(norm, graph.controls.get("edit", ()), normalized=True):
        editing = _with(state, pending={"kind": "edit_menu"})
        return Step(editing, (ask(graph, editing),))
    # More of the story at the summary: keep it, fill what it answers, show the summary again.
    mined_state, added = _mined(graph, state, event.text, now.date())
    told = _with_story(mined_state, event.text)
    notes = (Reply("noted", {"facts": [f for f in facts(graph, told.slots) if f["slot"] in added]}),) if added \
        else (Reply("story_added", {}),)
    return Step(told, notes + (ask(graph, told),), (TimelineEvent("story", {"text": event.text, "found": added}),))


def verdict_of(graph: Graph, state: DialogState, today: date) -> dict[str, Any]:
    """The classification and advice for the case as it stands (the user's own choice of
    situation, if they made one under the advice, wins)."""
    return verdict(active_slots(graph, state.slots), today, ignore=state.filled,
                   chosen=state.slots.get(CATEGORY_CHOICE))


_ADVICE_BUTTONS = (Button(NOT_MY_SITUATION, "btn.not_my_situation"),)
CALENDAR = "calendar"
_CALENDAR_BUTTON = Button(CALENDAR, "btn.calendar")


def advice_reply(result: Mapping[str, Any]) -> Reply:
    """The advice, with the way out when the situation read is not the user's, and (when a
    deadline is ahead) a button for the dates as a calendar file."""
    deadlines = (result.get("advice") or {}).get("deadlines") or ()
    ahead = any(d.get("days_left", -1) >= 0 and not d.get("met") for d in deadlines)
    return Reply("advice_result", result, _ADVICE_BUTTONS + ((_CALENDAR_BUTTON,) if ahead else ()))


def _advised(result: Mapping[str, Any], **extra: Any) -> Effect:
    return Effect("advised", {"category": result["classification"]["category"],
                              "confidence": result["classification"]["confidence"], **extra})


def _finish(graph: Graph, state: DialogState, now: datetime) -> Step:
    done = _advance(graph, state, graph[state.node])
    result = verdict_of(graph, done, now.date())
    return Step(
        done,
        (advice_reply(result),),
        (TimelineEvent("advice", {"category": result["classification"]["category"],
                                  "confidence": result["classification"]["confidence"],
                                  "signals": result["classification"]["signals"]}),),
        (_advised(result),),
    )


def _after_intake(graph: Graph, state: DialogState, event: Text | Press, norm: str) -> Step:
    if (isinstance(event, Press) and event.option == NOT_MY_SITUATION) or \
            (isinstance(event, Text) and match_words(norm, graph.controls.get("recategorize", ()), normalized=True)):
        choosing = _with(state, pending={"kind": "category_menu"})
        return Step(choosing, (ask(graph, choosing),))
    if isinstance(event, Press):
        return Step(state, (Reply("stale", {}),))
    return Step(_with_story(state, event.text), (Reply("note_added", {}),),
                (TimelineEvent("note", {"text": event.text}),))


def _category_menu(graph: Graph, state: DialogState, event: Text | Press, today: date) -> Step:
    """The user's answer to "which situation is yours?": the advice again, for that situation."""
    chosen = None
    if isinstance(event, Press) and event.option.startswith(CATEGORY_PREFIX):
        chosen = event.option[len(CATEGORY_PREFIX):]
    elif isinstance(event, Text) and event.text.strip().isdigit() and 1 <= int(event.text) <= len(CATEGORIES):
        chosen = CATEGORIES[int(event.text) - 1]
    if isinstance(event, Press) and event.option == CANCEL_EDIT:
        kept = _with(state, pending=None)
        return Step(kept, (Reply("category_kept", {}),))
    if chosen not in CATEGORIES:
        return _error(graph, state, "stale" if isinstance(event, Press) else "err.choice")
    before = verdict_of(graph, state, today)["classification"]["category"]
    changed = _with(state, pending=None, slots={**state.slots, CATEGORY_CHOICE: chosen})
    result = verdict_of(graph, changed, today)
    return Step(
        changed,
        (Reply("category_changed", {"before": before, "after": chosen}), advice_reply(result)),
        (TimelineEvent("category_changed", {"before": before, "after": chosen}),),
        (_advised(result, changed=True),),
    )
