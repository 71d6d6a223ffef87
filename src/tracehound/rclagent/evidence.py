"""A thread-safe ledger of evidence items: what every tool saw, pointing at raw rows.

Agents run concurrently, so ids are derived from content (tool, span, key), never from a
counter: the same incident always yields the same ids, whatever the thread schedule.
"""

from __future__ import annotations

import threading
from typing import Any

from tracehound.model import Evidence, EvidenceEdge, EvidenceGraph


class EvidenceLedger:
    """Collects `Evidence` nodes and the edges between them, de-duplicated by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, Evidence] = {}
        self._edges: set[tuple[str, str, str]] = set()

    def add(
        self,
        evidence_id: str,
        kind: str,
        summary: str,
        *,
        table: str | None = None,
        keys: dict[str, Any] | None = None,
        tool: str | None = None,
        value: float | None = None,
        source: str | None = None,
    ) -> str:
        """Record one evidence item (first writer wins) and return its id."""
        item = Evidence(
            id=evidence_id,
            kind=kind,
            summary=summary,
            table=table,
            keys=keys or {},
            tool=tool,
            value=value,
            source=source,
        )
        with self._lock:
            self._nodes.setdefault(evidence_id, item)
        return evidence_id

    def link(self, source: str, target: str, relation: str) -> None:
        """Record that `source` relates to `target` (e.g. evidence supports a finding)."""
        with self._lock:
            self._edges.add((source, target, relation))

    def graph(self) -> EvidenceGraph:
        """The collected graph, sorted so that it does not depend on thread order."""
        with self._lock:
            nodes = [self._nodes[key] for key in sorted(self._nodes)]
            edges = [
                EvidenceEdge(source=s, target=t, relation=r) for s, t, r in sorted(self._edges)
            ]
        return EvidenceGraph(nodes=nodes, edges=edges)
