"""Phases 1 and 2: span agents on a thread pool (ARCHITECTURE §4.2 steps 3 and 4).

Phase 1 runs one agent per graph node of every selected request at once; phase 2 walks
each graph level by level from the leaves, the agents of one level concurrently, each
consolidating its finding with its children's reports. Agents share nothing mutable but
the evidence ledger, which is locked, and read only the precomputed context, so no
database cursor crosses threads.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from tracehound.rclagent.graph import SpanRow, TraceGraph
from tracehound.rclagent.reasoner import LocalReport, Reasoner, SpanContext, SpanFinding, Toolbox
from tracehound.rclagent.select import SelectedRequest

J = TypeVar("J")
R = TypeVar("R")
#: Chunks of agents per worker thread (see `_map`).
CHUNKS_PER_WORKER = 4


@dataclass
class RequestAnalysis:
    """Everything the agents concluded about one request."""

    request: SelectedRequest
    graph: TraceGraph
    findings: dict[str, SpanFinding]
    reports: dict[str, LocalReport]

    @property
    def root_report(self) -> LocalReport:
        return self.reports[self.graph.root]


def run_agents(
    requests: list[tuple[SelectedRequest, TraceGraph]],
    reasoner: Reasoner,
    toolbox: Toolbox,
    workers: int,
) -> list[RequestAnalysis]:
    """Verify every node (phase 1), then consolidate bottom-up (phase 2)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = [
            (index, key, SpanContext(graph.trace_id, node, _caller(graph, key)))
            for index, (_, graph) in enumerate(requests)
            for key, node in graph.nodes.items()
        ]
        verified = _map(pool, workers, lambda job: reasoner.verify(job[2], toolbox), jobs)
        findings: list[dict[str, SpanFinding]] = [{} for _ in requests]
        for (index, key, _), finding in zip(jobs, verified, strict=True):
            findings[index][key] = finding
        analyses = []
        for index, (request, graph) in enumerate(requests):
            reports: dict[str, LocalReport] = {}
            for level in graph.levels():
                jobs_2 = [
                    (findings[index][key], [reports[c] for c in graph.nodes[key].children])
                    for key in level
                ]
                merged = _map(pool, workers, lambda job: reasoner.consolidate(*job), jobs_2)
                reports.update(zip(level, merged, strict=True))
            _record(toolbox, graph, findings[index], reports)
            analyses.append(RequestAnalysis(request, graph, findings[index], reports))
    return analyses


def _map(pool: ThreadPoolExecutor, workers: int, fn: Callable[[J], R], items: list[J]) -> list[R]:
    """`fn` over `items` on the pool, in order, a few chunks per worker.

    Thousands of cheap rule agents would spend more time in one future each than in
    their work; chunks keep the agents concurrent (slow LLM agents overlap) at a fraction
    of the overhead.
    """
    size = max(1, -(-len(items) // (max(1, workers) * CHUNKS_PER_WORKER)))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    done = pool.map(lambda chunk: [fn(item) for item in chunk], chunks)
    return [result for chunk in done for result in chunk]


def _caller(graph: TraceGraph, key: str) -> SpanRow | None:
    parent = graph.nodes[key].parent
    return graph.nodes[parent].span if parent is not None else None


def _record(
    toolbox: Toolbox,
    graph: TraceGraph,
    findings: dict[str, SpanFinding],
    reports: dict[str, LocalReport],
) -> None:
    """Findings and reports into the evidence graph: evidence supports findings, findings
    report to their parents, the root report concludes the request."""
    ledger = toolbox.ledger
    for key, finding in findings.items():
        node_id = f"finding:{graph.trace_id}:{key}"
        span = finding.node.span
        ledger.add(
            node_id,
            "finding",
            f"{span.instance} {span.operation} (x{finding.node.count}): "
            f"{finding.finding.hypothesis}; " + "; ".join(finding.finding.symptoms),
            table="spans",
            keys={"trace_id": graph.trace_id, "span_id": span.span_id},
            tool="verify",
            source=finding.source,
        )
        for evidence in finding.finding.evidence:
            ledger.link(evidence, node_id, "supports")
        parent = finding.node.parent
        if parent is not None:
            ledger.link(node_id, f"finding:{graph.trace_id}:{parent}", "reports_to")
    root = reports[graph.root].report
    report_id = f"report:{graph.trace_id}"
    ledger.add(
        report_id,
        "report",
        f"request {graph.trace_id}: {root.root_cause or 'no cause'} "
        f"(confidence {root.confidence:.2f}) - {root.summary}",
        table="spans",
        keys={"trace_id": graph.trace_id, "span_id": graph.root},
        tool="consolidate",
        value=root.confidence,
        source=reports[graph.root].source,
    )
    ledger.link(f"finding:{graph.trace_id}:{graph.root}", report_id, "concludes")
