"""Evidence citations shared by every renderer (ARCHITECTURE §6).

Every claim of a report carries evidence ids; every evidence item points at raw rows
(table + keys) or at the tool call it came from. This module answers, for all formats
alike: which ids does a claim cite, where does an evidence item come from, and which items
does the evidence list at the end of a report show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tracehound.investigation import Investigation
from tracehound.model import Evidence, EvidenceGraph

#: How many evidence items the text and Markdown evidence lists show at most; JSON and
#: HTML always carry the whole graph.
LIST_LIMIT = 40


def cite(ids: Sequence[str]) -> str:
    """`[e1, e2]`, or the empty string when a claim cites nothing."""
    return f"[{', '.join(ids)}]" if ids else ""


def source_text(evidence: Evidence, graph: EvidenceGraph | None = None) -> str:
    """Where an evidence item comes from: its tool call and/or its table and row keys.

    An item with neither (a finding that only summarises other evidence) names the items
    it links to in the graph instead. A finding a model took part in starts with who
    concluded it (``by llm``, ``by rule (fallback: …)``).
    """
    parts: list[str] = []
    if evidence.tool:
        parts.append(f"tool {evidence.tool}")
    if evidence.table:
        keys = ", ".join(f"{k}={_key_value(v)}" for k, v in evidence.keys.items())
        parts.append(f"{evidence.table} ({keys})" if keys else evidence.table)
    elif evidence.keys:
        parts.append(", ".join(f"{k}={_key_value(v)}" for k, v in evidence.keys.items()))
    if not parts and graph is not None:
        based_on = [f"{e.source} ({e.relation})" for e in graph.edges if e.target == evidence.id]
        feeds = [f"{e.target} ({e.relation})" for e in graph.edges if e.source == evidence.id]
        if based_on:
            parts.append("based on " + ", ".join(based_on))
        if feeds:
            parts.append("feeds " + ", ".join(feeds))
    if evidence.source:
        parts.insert(0, f"by {evidence.source}")
    return " · ".join(parts) if parts else "no source recorded"


def _key_value(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def cited_ids(investigation: Investigation) -> list[str]:
    """Every evidence id a claim of the report cites, in the order the report cites them."""
    groups: list[Iterable[str]] = []
    if investigation.root_cause is not None:
        groups.append(investigation.root_cause.evidence)
    groups.extend(step.evidence for step in investigation.path)
    groups.extend(alt.evidence for alt in investigation.alternatives)
    known = {node.id for node in investigation.evidence_graph.nodes}
    groups.append(i for i in investigation.supporting if i in known)
    groups.append(i for i in investigation.contradicting if i in known)
    return _unique(i for group in groups for i in group)


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


@dataclass(frozen=True)
class EvidenceListing:
    """The evidence items a report lists, ids cited but absent from the graph, and how
    many graph items were left out."""

    items: list[Evidence]
    missing: list[str]
    omitted: int


def evidence_listing(investigation: Investigation, limit: int = LIST_LIMIT) -> EvidenceListing:
    """The evidence list of a text or Markdown report.

    A small graph is listed whole, in graph order. A large one lists the cited items first,
    then their direct neighbours in the graph, up to `limit`; the rest is counted.
    """
    graph = investigation.evidence_graph
    by_id = {node.id: node for node in graph.nodes}
    cited = cited_ids(investigation)
    missing = [i for i in cited if i not in by_id]
    if len(graph.nodes) <= limit:
        return EvidenceListing(list(graph.nodes), missing, 0)
    chosen = _unique([*(i for i in cited if i in by_id), *_neighbours(graph, set(cited))])
    items = [by_id[i] for i in chosen[:limit]]
    return EvidenceListing(items, missing, len(graph.nodes) - len(items))


def _neighbours(graph: EvidenceGraph, ids: set[str]) -> list[str]:
    found: list[str] = []
    for edge in graph.edges:
        if edge.source in ids:
            found.append(edge.target)
        if edge.target in ids:
            found.append(edge.source)
    known = {node.id for node in graph.nodes}
    return [i for i in found if i in known]


@dataclass(frozen=True)
class Statement:
    """One line of supporting or contradicting evidence: its text and the ids it cites.

    `Investigation.supporting` and `.contradicting` hold evidence ids; a plain sentence
    (not an id in the graph) is shown as it is, citing nothing.
    """

    text: str
    ids: list[str]


def statements(items: Sequence[str], graph: EvidenceGraph) -> list[Statement]:
    """The supporting or contradicting lines of a report."""
    by_id = {node.id: node for node in graph.nodes}
    return [
        Statement(by_id[item].summary, [item]) if item in by_id else Statement(item, [])
        for item in items
    ]
