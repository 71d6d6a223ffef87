"""A hand-built investigation for report tests: every field filled, exact known content."""

from __future__ import annotations

from tiny import tiny_incident

from tracehound.investigation import Alternative, Investigation, PathStep, RootCause
from tracehound.model import Candidate, Evidence, EvidenceEdge, EvidenceGraph, Ranking


def sample_investigation() -> Investigation:
    """db-1 blamed for a cpu fault, with a three-hop path, two alternatives and six evidence
    items (one log line holds a ``<script>`` tag, to check escaping)."""
    nodes = [
        Evidence(
            id="e1",
            kind="span",
            summary="SELECT on db-1 took 70 ms, baseline 7 ms",
            table="spans",
            keys={"trace_id": "t2", "span_id": "c"},
            tool="span_timing",
            value=70.0,
        ),
        Evidence(
            id="e2",
            kind="metric",
            summary="cpu of db-1 rose from 10.5 to 90.5",
            table="metrics",
            keys={"instance": "db-1", "name": "cpu"},
            tool="instance_metrics",
            value=90.5,
        ),
        Evidence(
            id="e3",
            kind="log",
            summary="ERROR timeout, retrying <script>alert(1)</script>",
            table="logs",
            keys={"trace_id": "t2", "span_id": "c"},
            tool="instance_logs",
        ),
        Evidence(
            id="e4",
            kind="tool",
            summary="front-1 self-time 10 ms, within baseline",
            tool="span_timing",
        ),
        Evidence(
            id="e5",
            kind="finding",
            summary="db-1 is abnormal: slow, cpu high, error logs",
        ),
        Evidence(
            id="e6",
            kind="metric",
            summary="cpu of front-1 flat at 20",
            table="metrics",
            keys={"instance": "front-1", "name": "cpu"},
            tool="instance_metrics",
        ),
    ]
    edges = [
        EvidenceEdge(source="e1", target="e5", relation="supports"),
        EvidenceEdge(source="e2", target="e5", relation="supports"),
        EvidenceEdge(source="e3", target="e5", relation="supports"),
        EvidenceEdge(source="e4", target="e5", relation="context"),
        EvidenceEdge(source="e6", target="gone", relation="supports"),
    ]
    ranking = Ranking(
        services=[
            Candidate(kind="service", name="db", score=0.9, reason="cpu and slow SELECT"),
            Candidate(kind="service", name="front", score=0.2, reason="caller of db"),
        ],
        instances=[
            Candidate(kind="instance", name="db-1", score=0.9, reason="cpu and slow SELECT"),
            Candidate(kind="instance", name="front-1", score=0.2, reason="caller"),
        ],
        fault_type="cpu",
    )
    return Investigation(
        incident=tiny_incident().incident,
        method="rclagent",
        ranking=ranking,
        root_cause=RootCause(
            service="db",
            instance="db-1",
            span_id="c",
            operation="SELECT",
            confidence=0.82,
            summary="db-1 runs hot and its SELECT is slow",
            evidence=["e5", "e1", "e2"],
        ),
        fault_type="cpu",
        path=[
            PathStep(
                span_id="a",
                service="front",
                instance="front-1",
                operation="GET /",
                note="slow, but its time is in its child",
                evidence=["e4"],
            ),
            PathStep(
                span_id="b",
                service="front",
                instance="front-1",
                operation="query",
                note="waits on db",
            ),
            PathStep(
                span_id="c",
                service="db",
                instance="db-1",
                operation="SELECT",
                note="self-time 63 ms over baseline",
                evidence=["e1", "e3"],
            ),
        ],
        alternatives=[
            Alternative(
                kind="instance",
                name="front-1",
                score=0.2,
                why_lower="its latency is its child's; cpu flat",
                evidence=["e4", "e6"],
            ),
            Alternative(kind="service", name="cache", score=0.05, why_lower="no anomaly seen"),
        ],
        supporting=["e2", "e3"],
        contradicting=["e6", "no network anomaly was checked"],
        evidence_graph=EvidenceGraph(nodes=nodes, edges=edges),
        modalities=["traces", "logs", "metrics"],
        stats={"requests_analysed": 2, "agents_run": 6, "wall_time_s": 0.4213},
    )
