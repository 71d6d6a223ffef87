"""rclagent on an agent run: step agents, bottom-up consolidation along the chain, and
synthesis into agent and step rankings (ARCHITECTURE §4.2 applied to §1's agent runs).

The run is one chain of steps (each step's parent is the previous one), so the trace
graph is the chain itself, never truncated: a run of 130 steps has 130 step agents.

1. Phase 1: one step agent per step verifies it with the step tools (`tools`), through a
   `StepReasoner` (the rule reasoner by default).
2. Phase 2: from the last step to the first, each step's report merges its own finding
   with the report of the step after it; blame moves toward the earliest step whose
   content carries the decisive evidence.
3. Synthesis: steps ranked by suspicion become `Ranking.spans` (candidate name: the span
   id), agents ranked by their most suspicious step `Ranking.services`; the investigation
   names the blamed agent and step, the chain of steps from the mistake to the end of the
   run, and the quoted evidence.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from tracehound.investigation import Alternative, Investigation, PathStep, RootCause
from tracehound.model import Candidate, Incident, Ranking
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.steps.rules import StepFinding, StepReport, StepRuleReasoner, StepScore
from tracehound.rclagent.steps.run import AgentRun, load_run
from tracehound.rclagent.steps.tools import StepToolbox
from tracehound.store import TelemetryStore

FAULT_TYPE = "agent_mistake"
#: Steps of the chain shown after the blamed one in the report's path, at most.
CHAIN_STEPS = 30


class StepReasoner(Protocol):
    """What the step agents call: the `Reasoner` interface for steps of a run."""

    def verify(self, index: int, tools: StepToolbox) -> StepFinding: ...

    def consolidate(self, finding: StepFinding, later: StepReport | None) -> StepReport: ...

    def synthesize(self, reports: list[StepReport], run: AgentRun) -> list[StepScore]: ...


def investigate_run(
    incident: Incident,
    store: TelemetryStore,
    reasoner: StepReasoner,
    *,
    method: str,
    use_ground_truth: bool,
    workers: int = 4,
    started: float | None = None,
) -> Investigation:
    """The whole pipeline on one agent run (module docstring)."""
    started = time.perf_counter() if started is None else started
    run = load_run(incident, store, use_ground_truth=use_ground_truth)
    ledger = EvidenceLedger()
    tools = StepToolbox(run, ledger)
    indices = list(range(len(run.steps)))
    if isinstance(reasoner, StepRuleReasoner) or workers <= 1:
        # the rules take microseconds per step: threads would cost more than they save
        findings = [reasoner.verify(i, tools) for i in indices]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            findings = list(pool.map(lambda i: reasoner.verify(i, tools), indices))
    reports: list[StepReport | None] = [None] * len(indices)
    later: StepReport | None = None
    for finding in reversed(findings):
        later = reasoner.consolidate(finding, later)
        reports[finding.index] = later
    done = [r for r in reports if r is not None]
    scores = reasoner.synthesize(done, run)
    _record(run, findings, done, ledger)
    ranking = _ranking(scores)
    stats: dict[str, Any] = {
        "steps": len(run.steps),
        "agents_run": len(findings),
        "ground_truth_used": run.ground_truth is not None,
        "wall_time_s": round(time.perf_counter() - started, 4),
    }
    return _investigation(incident, method, run, ranking, scores, findings, ledger, stats)


def _ranking(scores: list[StepScore]) -> Ranking:
    """Steps as span candidates; agents by their best step (ties: the earlier step)."""
    spans = [
        Candidate(kind="span", name=s.span_id, score=s.score, reason=f"{s.agent}: {s.reason}")
        for s in scores
    ]
    best: dict[str, StepScore] = {}
    for s in scores:
        best.setdefault(s.agent, s)
    order = sorted(best.values(), key=lambda s: (-s.score, s.index))
    services = [
        Candidate(kind="service", name=s.agent, score=s.score, reason=f"{s.span_id}: {s.reason}")
        for s in order
    ]
    return Ranking(services=services, spans=spans, fault_type=FAULT_TYPE)


def _record(
    run: AgentRun, findings: list[StepFinding], reports: list[StepReport], ledger: EvidenceLedger
) -> None:
    """Findings into the evidence graph: quotes support findings, each step reports to the
    step before it, the first step's report concludes the run."""
    for f in findings:
        node = f"finding:{run.trace_id}:{f.span_id}"
        ledger.add(
            node,
            "finding",
            f"{f.span_id} {f.agent}: {f.finding.hypothesis}"
            + (f" ({'; '.join(f.finding.symptoms)})" if f.finding.symptoms else ""),
            table="spans",
            keys={"trace_id": run.trace_id, "span_id": f.span_id},
            tool="verify",
            source=f.source,
        )
        for evidence in f.finding.evidence:
            ledger.link(evidence, node, "supports")
        if f.index > 0:
            ledger.link(node, f"finding:{run.trace_id}:{run.steps[f.index - 1].span_id}", "follows")
    if reports:
        first = reports[0]
        report_id = f"report:{run.trace_id}"
        ledger.add(
            report_id,
            "report",
            f"run {run.trace_id}: {first.report.root_cause or 'no cause'} "
            f"(confidence {first.report.confidence:.2f}) - {first.report.summary}",
            table="spans",
            keys={"trace_id": run.trace_id, "span_id": first.span_id},
            tool="consolidate",
            value=first.report.confidence,
            source=first.source,
        )
        ledger.link(f"finding:{run.trace_id}:{first.span_id}", report_id, "concludes")


def _investigation(
    incident: Incident,
    method: str,
    run: AgentRun,
    ranking: Ranking,
    scores: list[StepScore],
    findings: list[StepFinding],
    ledger: EvidenceLedger,
    stats: dict[str, Any],
) -> Investigation:
    root = None
    path: list[PathStep] = []
    supporting: list[str] = []
    alternatives: list[Alternative] = []
    if scores:
        top = scores[0]
        total = sum(s.score for s in scores[:3])
        supporting = [*top.evidence, f"finding:{run.trace_id}:{top.span_id}"]
        step = run.steps[top.index]
        root = RootCause(
            service=top.agent,
            instance=None,
            span_id=top.span_id,
            operation=step.operation or None,
            confidence=min(1.0, top.score / total) if total > 0 else 0.0,
            summary=f"{top.agent} at {top.span_id}: {top.reason}",
            evidence=supporting,
        )
        path = _chain(run, findings, top.index)
        alternatives = [
            Alternative(
                kind="span",
                name=s.span_id,
                score=s.score,
                why_lower=f"{s.agent}: score {s.score:.3g} below {top.score:.3g}: {s.reason}",
                evidence=list(s.evidence),
            )
            for s in scores[1:6]
        ]
    return Investigation(
        incident=incident,
        method=method,
        ranking=ranking,
        root_cause=root,
        fault_type=ranking.fault_type,
        path=path,
        alternatives=alternatives,
        supporting=supporting,
        contradicting=[],
        evidence_graph=ledger.graph(),
        modalities=["traces", "logs"],
        stats=stats,
    ).with_short_evidence_ids()


def _chain(run: AgentRun, findings: list[StepFinding], blamed: int) -> list[PathStep]:
    """The steps from the blamed one to the end of the run (the failure), at most
    `CHAIN_STEPS` after it plus the last."""
    last = len(run.steps) - 1
    indices = list(range(blamed, min(last, blamed + CHAIN_STEPS) + 1))
    if indices[-1] != last:
        indices.append(last)
    steps = []
    for i in indices:
        f = findings[i]
        step = run.steps[i]
        steps.append(
            PathStep(
                span_id=step.span_id,
                service=step.agent,
                instance=step.agent,
                operation=step.operation,
                note="; ".join(f.finding.symptoms) or f.finding.hypothesis,
                evidence=[f"finding:{run.trace_id}:{step.span_id}", *f.finding.evidence],
                source=f.source,
            )
        )
    return steps
