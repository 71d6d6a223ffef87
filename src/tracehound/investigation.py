"""The result of an investigation: what `investigate` renders (ARCHITECTURE §6).

A method's `localize` returns only a `Ranking`; an engine that explains itself (rclagent)
returns an `Investigation`, whose `ranking` is the same answer. `from_ranking` wraps a
plain ranking so every method can be rendered the same way.

Every claim carries evidence ids; every evidence node of `evidence_graph` points at the raw
rows (table + keys) or the tool call it came from.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tracehound.model import EvidenceGraph, Incident, Ranking


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RootCause(_Frozen):
    """The blamed component."""

    service: str
    instance: str | None = None
    span_id: str | None = None
    operation: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    summary: str = ""
    evidence: list[str] = Field(default_factory=list)


class PathStep(_Frozen):
    """One hop of the propagation path, from the failing request's root span to the cause."""

    span_id: str
    service: str
    instance: str
    operation: str
    note: str = ""
    evidence: list[str] = Field(default_factory=list)
    #: who wrote the span's finding when a model took part ("llm", "rule", "rule
    #: (fallback: <reason>)"); None otherwise
    source: str | None = None


class Alternative(_Frozen):
    """A runner-up and why it ranks lower than the root cause."""

    kind: str
    name: str
    score: float
    why_lower: str
    evidence: list[str] = Field(default_factory=list)


class Investigation(_Frozen):
    """Everything a report shows about one incident."""

    incident: Incident
    method: str
    ranking: Ranking
    root_cause: RootCause | None = None
    fault_type: str | None = None
    path: list[PathStep] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)
    supporting: list[str] = Field(default_factory=list)
    contradicting: list[str] = Field(default_factory=list)
    evidence_graph: EvidenceGraph = Field(default_factory=EvidenceGraph)
    #: The modalities the method actually used.
    modalities: list[str] = Field(default_factory=list)
    #: requests_analysed, agents_run, wall_time_s, and anything else worth counting.
    stats: dict[str, Any] = Field(default_factory=dict)

    def with_short_evidence_ids(self) -> Investigation:
        """The same investigation with evidence ids renamed e1, e2, ... in graph order.

        Engines derive ids from content (stable but long); people read short ones. Every
        reference — graph edges, root cause, path, alternatives, supporting and
        contradicting lists — is renamed consistently; the original id is kept in each
        node's `keys` under "ref".
        """
        names = {node.id: f"e{i}" for i, node in enumerate(self.evidence_graph.nodes, 1)}

        def rename(ids: list[str]) -> list[str]:
            return [names.get(i, i) for i in ids]

        graph = EvidenceGraph(
            nodes=[
                node.model_copy(
                    update={"id": names[node.id], "keys": {**node.keys, "ref": node.id}}
                )
                for node in self.evidence_graph.nodes
            ],
            edges=[
                edge.model_copy(
                    update={
                        "source": names.get(edge.source, edge.source),
                        "target": names.get(edge.target, edge.target),
                    }
                )
                for edge in self.evidence_graph.edges
            ],
        )
        root = self.root_cause
        if root is not None:
            root = root.model_copy(update={"evidence": rename(root.evidence)})
        return self.model_copy(
            update={
                "evidence_graph": graph,
                "root_cause": root,
                "path": [p.model_copy(update={"evidence": rename(p.evidence)}) for p in self.path],
                "alternatives": [
                    a.model_copy(update={"evidence": rename(a.evidence)}) for a in self.alternatives
                ],
                "supporting": rename(self.supporting),
                "contradicting": rename(self.contradicting),
            }
        )

    @classmethod
    def from_ranking(
        cls,
        incident: Incident,
        method: str,
        ranking: Ranking,
        *,
        modalities: list[str] | None = None,
        stats: dict[str, Any] | None = None,
    ) -> Investigation:
        """An investigation holding only a ranking (methods that do not explain)."""
        top = ranking.services[0] if ranking.services else None
        root = None
        if top is not None:
            # A plain ranking does not say which instance belongs to which service, so the
            # root cause names the service only; the instance ranking stays in `ranking`.
            root = RootCause(
                service=top.name,
                confidence=0.0,
                summary=top.reason,
            )
        alternatives = [
            Alternative(
                kind=c.kind,
                name=c.name,
                score=c.score,
                why_lower=f"score {c.score:.3g} below {top.score:.3g}" if top else "",
            )
            for c in ranking.services[1:6]
        ]
        return cls(
            incident=incident,
            method=method,
            ranking=ranking,
            root_cause=root,
            fault_type=ranking.fault_type,
            alternatives=alternatives,
            modalities=modalities or [],
            stats=stats or {},
        )
