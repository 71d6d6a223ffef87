"""Step 2: the trace graph of one selected request (ARCHITECTURE §4.2).

Spans of the request's trace come from one SQL query with each span's self-time
(duration minus its children's durations, floored at 0). The graph then

- starts at the selected root and stops at `max_depth` (deeper spans are counted);
- collapses repeated calls: children of one parent with the same (service, operation,
  called services) become one node carrying the count and every member's span id; the
  representative is the worst member (error status, then novel error logs, then the
  longest);
- attaches orphans (a parent id absent from the trace, or a second root) to the nearest
  plausible ancestor: among spans whose interval contains the orphan's start, one of the
  same service if any, else the one that started last; the root when none contains it;
- recognises client spans by structure when `kind` is unset: a span whose children all
  run on another instance is a call, and the time between it and its single child is the
  edge (network and queueing) time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tracehound.rclagent.context import NS_PER_MS
from tracehound.store import TelemetryStore


@dataclass(frozen=True, slots=True)
class SpanRow:
    """The span facts the agents use."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    instance: str
    operation: str
    kind: str
    start_ns: int
    duration_ns: int
    status: str
    self_ns: int

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / NS_PER_MS

    @property
    def self_ms(self) -> float:
        return self.self_ns / NS_PER_MS


@dataclass
class GraphNode:
    """One (possibly collapsed) span of the graph."""

    key: str
    span: SpanRow
    depth: int
    parent: str | None
    members: tuple[str, ...]
    children: list[str] = field(default_factory=list)
    #: this span calls another instance (client by kind or by structure)
    is_client: bool = False
    #: the parent is a single-child client span on another instance: edge time applies
    has_edge: bool = False
    #: self-time not overlapped by sibling calls to other instances (time spent waiting
    #: on a concurrent call is not the span's own work)
    own_self_ns: int = 0

    @property
    def count(self) -> int:
        return len(self.members)


@dataclass
class TraceGraph:
    """The bounded, de-duplicated graph of one request; `nodes` is keyed by node key."""

    trace_id: str
    root: str
    nodes: dict[str, GraphNode]
    truncated: int = 0

    def levels(self) -> list[list[str]]:
        """Node keys by depth, deepest level first (the order of phase 2)."""
        by_depth: dict[int, list[str]] = {}
        for key, node in self.nodes.items():
            by_depth.setdefault(node.depth, []).append(key)
        return [sorted(by_depth[d]) for d in sorted(by_depth, reverse=True)]

    def path_to(self, key: str) -> list[str]:
        """Node keys from the root down to `key`."""
        path = [key]
        while (parent := self.nodes[path[-1]].parent) is not None:
            path.append(parent)
        return path[::-1]


def fetch_spans(store: TelemetryStore, trace_ids: list[str]) -> dict[str, list[SpanRow]]:
    """Spans of the given traces with self-time, grouped by trace (one query)."""
    table = store.query(
        """
        WITH s AS (SELECT * FROM spans WHERE trace_id IN (SELECT unnest(?))),
        k AS (SELECT trace_id, parent_span_id, sum(duration_ns) AS child_ns FROM s
              WHERE parent_span_id IS NOT NULL GROUP BY ALL)
        SELECT s.trace_id, s.span_id, s.parent_span_id, s.service, s.instance, s.operation,
               s.kind, s.start_ns, s.duration_ns, s.status,
               CAST(greatest(s.duration_ns - coalesce(k.child_ns, 0), 0) AS BIGINT) AS self_ns
        FROM s LEFT JOIN k ON k.trace_id = s.trace_id AND k.parent_span_id = s.span_id
        ORDER BY s.trace_id, s.start_ns, s.span_id
        """,
        [trace_ids],
    )
    grouped: dict[str, list[SpanRow]] = {}
    for r in table.to_pylist():
        grouped.setdefault(r["trace_id"], []).append(SpanRow(**r))
    return grouped


def build_graph(
    spans: list[SpanRow],
    root_span_id: str,
    max_depth: int,
    badness: Callable[[SpanRow], float],
) -> TraceGraph:
    """The graph of the request rooted at `root_span_id` (see module docstring).

    `badness` ranks members of a collapsed group (larger is worse) beyond error status.
    """
    by_id = {s.span_id: s for s in spans}
    root = by_id[root_span_id]
    kids = _children(spans, by_id, root)
    graph = TraceGraph(trace_id=root.trace_id, root=root.span_id, nodes={})
    graph.nodes[root.span_id] = GraphNode(
        key=root.span_id,
        span=root,
        depth=0,
        parent=None,
        members=(root.span_id,),
        own_self_ns=root.self_ns,
    )
    stack = [root.span_id]
    while stack:
        key = stack.pop()
        node = graph.nodes[key]
        children = kids.get(node.span.span_id, [])
        node.is_client = bool(children) and (
            node.span.kind == "client"
            or (
                node.span.kind in ("unset", "")
                and all(c.instance != node.span.instance for c in children)
            )
        )
        if node.depth + 1 > max_depth:
            graph.truncated += _subtree_size(node.span.span_id, kids)
            continue
        for group in _groups(children, kids):
            if any(s.span_id in graph.nodes for s in group):
                continue  # a cycle through broken parent ids
            rep = max(group, key=lambda s: (s.status == "error", badness(s), s.duration_ns))
            child = GraphNode(
                key=rep.span_id,
                span=rep,
                depth=node.depth + 1,
                parent=key,
                members=tuple(s.span_id for s in group),
            )
            child.own_self_ns = max(0, rep.self_ns - _waiting_ns(rep, children, group, kids))
            child.has_edge = (
                node.is_client and len(children) == 1 and rep.instance != node.span.instance
            )
            graph.nodes[rep.span_id] = child
            node.children.append(rep.span_id)
            stack.append(rep.span_id)
    return graph


def _children(
    spans: list[SpanRow], by_id: dict[str, SpanRow], root: SpanRow
) -> dict[str, list[SpanRow]]:
    """Children of each span id, orphans attached to their nearest plausible ancestor."""
    kids: dict[str, list[SpanRow]] = {}
    for span in spans:
        if span.span_id == root.span_id:
            continue
        parent = span.parent_span_id
        if parent is None or parent not in by_id or parent == span.span_id:
            parent = _adopter(span, spans, root)
        kids.setdefault(parent, []).append(span)
    return kids


def _adopter(orphan: SpanRow, spans: list[SpanRow], root: SpanRow) -> str:
    """The span that most plausibly called `orphan` (by time, then service)."""
    containing = [
        s
        for s in spans
        if s.span_id != orphan.span_id
        and s.parent_span_id is not None
        and s.start_ns <= orphan.start_ns
        and orphan.start_ns + orphan.duration_ns <= s.start_ns + s.duration_ns
    ]
    if not containing:
        return root.span_id
    same = [s for s in containing if s.service == orphan.service]
    pool = same or containing
    return max(pool, key=lambda s: (s.start_ns, s.span_id)).span_id


def _calls_out(span: SpanRow, kids: dict[str, list[SpanRow]]) -> bool:
    """A client by kind, or by structure (its children run on other instances)."""
    children = kids.get(span.span_id, [])
    if span.kind == "client":
        return True
    return bool(children) and all(c.instance != span.instance for c in children)


def _waiting_ns(
    span: SpanRow,
    siblings: list[SpanRow],
    group: list[SpanRow],
    kids: dict[str, list[SpanRow]],
) -> int:
    """Time of `span` overlapped by sibling calls to other instances (union of intervals)."""
    own = {s.span_id for s in group}
    start, end = span.start_ns, span.start_ns + span.duration_ns
    intervals = sorted(
        (max(start, s.start_ns), min(end, s.start_ns + s.duration_ns))
        for s in siblings
        if s.span_id not in own and _calls_out(s, kids)
    )
    total, reach = 0, start
    for lo, hi in intervals:
        lo = max(lo, reach)
        if hi > lo:
            total += hi - lo
            reach = hi
    return total


def _groups(children: list[SpanRow], kids: dict[str, list[SpanRow]]) -> list[list[SpanRow]]:
    """Children grouped by (service, operation, services they call), in order of first start.

    The callee is part of the key because generic client operations ("HTTP GET") reach
    different services: collapsing those would hide every callee but one.
    """
    groups: dict[tuple[str, str, tuple[str, ...]], list[SpanRow]] = {}
    for child in children:
        callees = tuple(sorted({c.service for c in kids.get(child.span_id, [])}))
        groups.setdefault((child.service, child.operation, callees), []).append(child)
    return list(groups.values())


def _subtree_size(span_id: str, kids: dict[str, list[SpanRow]]) -> int:
    """Number of spans below `span_id`."""
    total, stack = 0, [span_id]
    while stack:
        for child in kids.get(stack.pop(), []):
            total += 1
            stack.append(child.span_id)
    return total
