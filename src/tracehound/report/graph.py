"""The evidence graph as Cytoscape.js elements, for the HTML report.

Nodes are the evidence items, coloured by kind (finding, tool call, log, metric, span, …),
plus one node for the root cause itself, linked from the evidence it cites; items the root
cause cites are flagged so the page can highlight them. Edges whose ends are not in the
graph are dropped, since Cytoscape.js refuses them.
"""

from __future__ import annotations

from typing import Any

from tracehound.investigation import Investigation
from tracehound.report.evidence import source_text
from tracehound.report.facts import culprit

ROOT_COLOR = "#d62728"
OTHER_COLOR = "#8c8c8c"
#: Substrings of an evidence kind and the colour they get; the first match wins.
KIND_COLORS = (
    ("finding", "#7b61ff"),
    ("report", "#7b61ff"),
    ("hypothesis", "#7b61ff"),
    ("tool", "#1f77b4"),
    ("log", "#ff7f0e"),
    ("metric", "#2ca02c"),
    ("span", "#17becf"),
    ("trace", "#17becf"),
    ("edge", "#17becf"),
    ("request", "#17becf"),
)


def kind_color(kind: str) -> str:
    """The colour of an evidence node of this kind."""
    lowered = kind.lower()
    for fragment, color in KIND_COLORS:
        if fragment in lowered:
            return color
    return OTHER_COLOR


def root_node_id(investigation: Investigation) -> str:
    """An id for the root-cause node that no evidence item uses."""
    taken = {node.id for node in investigation.evidence_graph.nodes}
    candidate = "root-cause"
    while candidate in taken:
        candidate = f"_{candidate}"
    return candidate


def graph_elements(investigation: Investigation) -> dict[str, Any]:
    """`{"nodes": [...], "edges": [...], "root": id | None}`, each element's data only.

    Empty when the investigation has no evidence: a lone root-cause node explains nothing.
    """
    graph = investigation.evidence_graph
    if not graph.nodes:
        return {"nodes": [], "edges": [], "root": None}
    root = investigation.root_cause
    cited = set(root.evidence) if root is not None else set()
    nodes: list[dict[str, Any]] = [
        {
            "id": node.id,
            "label": node.id,
            "kind": node.kind,
            "summary": node.summary,
            "source": source_text(node, graph),
            "color": kind_color(node.kind),
            "cited": node.id in cited,
            "root": False,
        }
        for node in graph.nodes
    ]
    known = {node.id for node in graph.nodes}
    edges: list[dict[str, Any]] = [
        {"id": f"edge-{index}", "source": e.source, "target": e.target, "relation": e.relation}
        for index, e in enumerate(graph.edges)
        if e.source in known and e.target in known
    ]
    root_id: str | None = None
    if root is not None:
        root_id = root_node_id(investigation)
        nodes.append(
            {
                "id": root_id,
                "label": culprit(root),
                "kind": "root cause",
                "summary": root.summary,
                "source": f"confidence {root.confidence:.2f}",
                "color": ROOT_COLOR,
                "cited": False,
                "root": True,
            }
        )
        edges.extend(
            {"id": f"root-edge-{index}", "source": ev, "target": root_id, "relation": "supports"}
            for index, ev in enumerate(dict.fromkeys(root.evidence))
            if ev in known
        )
    return {"nodes": nodes, "edges": edges, "root": root_id}


def legend(investigation: Investigation) -> list[tuple[str, str]]:
    """(kind, colour) of every kind present, in first-seen order, the root cause last."""
    kinds = dict.fromkeys(node.kind for node in investigation.evidence_graph.nodes)
    entries = [(kind, kind_color(kind)) for kind in kinds]
    if investigation.root_cause is not None and kinds:
        entries.append(("root cause", ROOT_COLOR))
    return entries
