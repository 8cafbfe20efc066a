"""The intake graph: loaded from `intake.yaml`, checked, and printable as Mermaid."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from dialogs.model import CATEGORIES
from dialogs.phrases import OptionIndex
from dialogs.yamlfile import read_yaml

NODE_TYPES = ("choice", "date", "amount", "text", "yesno", "confirm", "end")
_DEFAULT_PATH = Path(__file__).with_name("intake.yaml")


class GraphError(ValueError):
    """The graph data is broken: the message lists every problem found."""


@dataclass(frozen=True)
class Option:
    id: str
    words: tuple[str, ...]
    story: tuple[str, ...]
    category: str | None = None     # the situation this answer means (questions read by the classifier)


@dataclass(frozen=True)
class Edge:
    to: str
    when: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, slots: Mapping[str, Any]) -> bool:
        for key, value in self.when.items():
            if slots.get(key) != value:
                return False
        return True


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    slot: str | None = None
    optional: bool = False
    options: tuple[Option, ...] = ()
    edges: tuple[Edge, ...] = ()
    not_before: str | None = None
    prefer: tuple[str, ...] = ()    # when a story names several options, the first of these wins
    # "phrases": a story answers the question when it contains one option's `story` phrases;
    # "classifier": when the classifier is at least `sure_above` sure of one option's category;
    # "never": only a direct answer does (the clarifying questions: asked because the story left doubt).
    from_story: str = "phrases"
    sure_above: float = 1.0
    ranked: bool = False            # options shown most likely first (by the classifier)

    def option_for(self, category: str) -> Option | None:
        return next((o for o in self.options if o.category == category), None)

    def option(self, option_id: str) -> Option | None:
        try:
            return self._options_by_id.get(option_id)
        except TypeError:   # not an id at all
            return None

    @cached_property
    def _options_by_id(self) -> dict[str, Option]:
        found: dict[str, Option] = {}
        for option in self.options:
            found.setdefault(option.id, option)
        return found

    def next_node(self, slots: Mapping[str, Any]) -> str | None:
        for to, conditions in self._edge_conditions:
            for key, value in conditions:
                if slots.get(key) != value:
                    break
            else:
                return to
        return None

    @cached_property
    def _edge_conditions(self) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
        # Edges are followed on every step, often several times: their conditions as plain pairs.
        return tuple((edge.to, tuple(edge.when.items())) for edge in self.edges)

    @cached_property
    def index(self) -> OptionIndex:
        """The options compiled for reading typed answers and stories (built on first use)."""
        return OptionIndex(self.options)


@dataclass(frozen=True)
class Clarify:
    """Questions that tell two likely situations apart, asked before the summary when the
    classifier is unsure between them (intake.yaml `clarify`)."""
    max_questions: int = 0
    margin: float = 0.0          # unsure: the top two probabilities closer than this
    below: float = 0.0           # or the top one below this,
    pair_at_least: float = 0.0   # while the two together hold at least this much (else it could be anything)
    pairs: tuple[tuple[frozenset[str], str], ...] = ()   # ({category, category}, node id)

    def question_for(self, ranked: Sequence[tuple[str, float]]) -> str | None:
        """The question for the classifier's ranking (most likely first), if it is unsure between
        a pair that has one."""
        (first, p1), (second, p2) = ranked[0], ranked[1]
        if (p1 - p2 >= self.margin and p1 >= self.below) or p1 + p2 < self.pair_at_least:
            return None
        return self.node_for(first, second)

    def node_for(self, first: str, second: str) -> str | None:
        pair = frozenset((first, second))
        return next((node_id for cats, node_id in self.pairs if cats == pair), None)

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(node_id for _, node_id in self.pairs)


@dataclass(frozen=True)
class Graph:
    start: str
    nodes: Mapping[str, Node]
    yesno: Mapping[str, tuple[str, ...]] = field(default_factory=dict)     # "yes"/"no" -> words
    controls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # back/skip/edit -> words
    story_cues: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # slot -> nearby words
    merchants: tuple[str, ...] = ()                                         # well-known sellers
    clarify: Clarify = field(default_factory=Clarify)

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def by_slot(self, slot: str) -> Node | None:
        return self._by_slot.get(slot)

    @cached_property
    def _by_slot(self) -> dict[str | None, Node]:
        found: dict[str | None, Node] = {}
        for node in self.nodes.values():
            found.setdefault(node.slot, node)
        return found

    def questions(self) -> list[Node]:
        """The nodes that store an answer, in declaration order (the order of the summary)."""
        return [n for n in self.nodes.values() if n.slot]


def _parse_edges(raw: Any) -> tuple[Edge, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (Edge(to=raw),)
    return tuple(Edge(to=e["to"], when=dict(e.get("if") or {})) for e in raw)


def _words(raw: Any, where: str) -> tuple[str, ...]:
    words = tuple(raw or ())
    odd = [w for w in words if not isinstance(w, str)]
    if odd:
        # YAML reads a bare yes/no/on/off as a boolean and 12315 as a number: quote them.
        raise GraphError(f"{where}: {odd!r} are not text; quote them in the YAML")
    return words


def _parse_node(node_id: str, raw: Mapping[str, Any]) -> Node:
    options = tuple(
        Option(id=str(oid), words=_words((o or {}).get("words"), f"{node_id}.{oid}.words"),
               story=_words((o or {}).get("story"), f"{node_id}.{oid}.story"),
               category=(o or {}).get("category"))
        for oid, o in (raw.get("options") or {}).items()
    )
    return Node(
        id=node_id,
        type=raw.get("type", ""),
        slot=raw.get("slot"),
        optional=bool(raw.get("optional", False)),
        options=options,
        edges=_parse_edges(raw.get("next")),
        not_before=raw.get("not_before"),
        prefer=_words(raw.get("prefer"), f"{node_id}.prefer"),
        from_story=str(raw.get("from_story", "phrases")),
        sure_above=float(raw.get("sure_above", 1.0)),
        ranked=bool(raw.get("ranked", False)),
    )


def _parse_clarify(raw: Any) -> Clarify:
    if not raw:
        return Clarify()
    pairs = tuple((frozenset(str(c) for c in q.get("between") or ()), str(q.get("ask")))
                  for q in raw.get("questions") or ())
    return Clarify(int(raw.get("max", 2)), float(raw.get("margin", 0.0)), float(raw.get("below", 0.0)),
                   float(raw.get("pair_at_least", 0.0)), pairs)


def problems(graph: Graph) -> list[str]:
    """Everything wrong with a graph; empty when it is sound."""
    found: list[str] = []
    if graph.start not in graph.nodes:
        found.append(f"start node {graph.start!r} does not exist")
        return found
    for node in graph.nodes.values():
        if node.type not in NODE_TYPES:
            found.append(f"node {node.id!r} has unknown type {node.type!r}")
        if node.type == "end":
            if node.edges:
                found.append(f"end node {node.id!r} has outgoing edges")
            continue
        if not node.edges:
            found.append(f"node {node.id!r} is a dead end (no next)")
        elif node.edges[-1].when:
            found.append(f"node {node.id!r} has no fallback edge (the last edge has a condition)")
        for edge in node.edges:
            if edge.to not in graph.nodes:
                found.append(f"node {node.id!r} points to missing node {edge.to!r}")
        if node.type == "choice" and not node.options:
            found.append(f"choice node {node.id!r} has no options")
        if node.type not in ("confirm",) and not node.slot:
            found.append(f"node {node.id!r} stores its answer nowhere (no slot)")
        for option_id in node.prefer:
            if not node.option(option_id):
                found.append(f"node {node.id!r}: prefer names unknown option {option_id!r}")
        if node.not_before and not graph.by_slot(node.not_before):
            found.append(f"node {node.id!r}: not_before names unknown slot {node.not_before!r}")
        if node.from_story not in ("phrases", "classifier", "never"):
            found.append(f"node {node.id!r}: from_story must be phrases, classifier or never")
        for option in node.options:
            if option.category is not None and option.category not in CATEGORIES:
                found.append(f"node {node.id!r}: option {option.id!r} names unknown category {option.category!r}")
        if node.from_story == "classifier" and not any(o.category for o in node.options):
            found.append(f"node {node.id!r} is answered by the classifier but no option names a category")
    for cats, node_id in graph.clarify.pairs:
        if len(cats) != 2 or not cats <= set(CATEGORIES):
            found.append(f"clarify: {sorted(cats)} is not a pair of categories")
        question = graph.nodes.get(node_id)
        if question is None or question.type != "choice" or not question.slot:
            found.append(f"clarify: {node_id!r} is not a choice question")
    seen: set[str] = set()
    # Clarifying questions are reached from the classifier, not by an edge.
    todo = [graph.start, *graph.clarify.nodes]
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in graph.nodes:
            continue
        seen.add(node_id)
        todo.extend(e.to for e in graph.nodes[node_id].edges)
    for node_id in graph.nodes:
        if node_id not in seen:
            found.append(f"node {node_id!r} is unreachable from {graph.start!r}")
    if any(n.type == "yesno" for n in graph.nodes.values()) and set(graph.yesno) != {"yes", "no"}:
        found.append("yes/no questions need `yesno` words for both yes and no")
    if not any(n.type == "end" for n in graph.nodes.values()):
        found.append("the graph has no end node")
    return found


def from_data(data: Mapping[str, Any]) -> Graph:
    nodes = {str(k): _parse_node(str(k), v or {}) for k, v in (data.get("nodes") or {}).items()}
    graph = Graph(
        start=str(data.get("start", "")),
        nodes=nodes,
        yesno={str(k): _words(v, f"yesno.{k}") for k, v in (data.get("yesno") or {}).items()},
        controls={str(k): _words(v, f"controls.{k}") for k, v in (data.get("controls") or {}).items()},
        story_cues={str(k): _words(v, f"story_cues.{k}") for k, v in (data.get("story_cues") or {}).items()},
        merchants=_words(data.get("merchants"), "merchants"),
        clarify=_parse_clarify(data.get("clarify")),
    )
    found = problems(graph)
    if found:
        raise GraphError("; ".join(found))
    return graph


@lru_cache(maxsize=4)
def load(path: Path = _DEFAULT_PATH) -> Graph:
    graph = from_data(read_yaml(path))
    for node in graph.nodes.values():
        node.index   # built here, once, rather than on some user's first answer
    return graph


def mermaid(graph: Graph) -> str:
    """The graph as a Mermaid flowchart, edges labelled with their conditions."""
    lines = ["flowchart TD"]
    for node in graph.nodes.values():
        label = f"{node.id}<br/>{node.type}" + (" (optional)" if node.optional else "")
        shape = f'(["{label}"])' if node.type == "end" else f'["{label}"]'
        lines.append(f"    {node.id}{shape}")
    for node in graph.nodes.values():
        for edge in node.edges:
            if edge.when:
                cond = ", ".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in edge.when.items())
                lines.append(f'    {node.id} -->|"{cond}"| {edge.to}')
            else:
                lines.append(f"    {node.id} --> {edge.to}")
    if graph.clarify.pairs:
        lines.append('    unsure{{"before the summary: the classifier is unsure"}}')
    for cats, node_id in graph.clarify.pairs:
        lines.append(f'    unsure -.->|"{" or ".join(sorted(cats))}"| {node_id}')
    return "\n".join(lines) + "\n"
