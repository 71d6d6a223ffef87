"""Step 5: one ranking and one investigation from every analysed request (§4.2).

The reasoner turns the requests' root reports into suspect scores (votes across
requests). Here they become a `Ranking` of every service and instance the incident
contains (suspects first; the others scored by their resource shifts, so every candidate
has a finite score and a reason), a fault type, and the `Investigation`: root cause with
confidence, the propagation path from the root span to the cause, the runners-up and why
each ranks lower, supporting and contradicting evidence, the evidence graph and stats.

Without traces the engine ranks from metrics instead (`metrics_only`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracehound.investigation import Alternative, Investigation, PathStep, RootCause
from tracehound.methods.metric_ranking import fault_type_of
from tracehound.methods.trace_common import Scored, keep_best, ordered, to_candidates
from tracehound.model import Ranking
from tracehound.rclagent.agents import RequestAnalysis
from tracehound.rclagent.context import (
    IncidentContext,
)
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.reasoner import SuspectScore
from tracehound.rclagent.rules import saturate

#: Scale of the scores given to candidates no analysed request blamed (metric shifts only).
BACKGROUND = 0.05


def rank_suspects(suspects: list[SuspectScore], ctx: IncidentContext) -> Ranking:
    """Every service and instance, suspects first, the rest by resource shift."""
    inst: dict[str, Scored] = {}
    svc: dict[str, Scored] = {}
    replicas: dict[str, list[str]] = {}
    for instance, service in ctx.instance_service.items():
        replicas.setdefault(service, []).append(instance)
    for s in suspects:
        if s.instance:
            keep_best(inst, Scored(s.instance, s.score, s.reason))
            keep_best(svc, Scored(s.service, s.score, f"instance {s.instance}: {s.reason}"))
        else:
            keep_best(svc, Scored(s.service, s.score, s.reason))
            for instance in replicas.get(s.service, []):
                share = _activity_drop(ctx, instance)
                reason = f"instance of {s.service} ({share:.0%} drop in spans): {s.reason}"
                keep_best(inst, Scored(instance, s.score * (0.5 + 0.5 * share), reason))
    for instance in ctx.instances:
        background = _background(ctx, instance)
        keep_best(inst, Scored(instance, background[0], background[1]))
        service = ctx.instance_service.get(instance, "")
        if service:
            keep_best(svc, Scored(service, background[0], f"instance {instance}: {background[1]}"))
    for service in ctx.services:
        keep_best(svc, Scored(service, 0.0, "no evidence against it"))
    fault = max(suspects, key=lambda s: (s.score, s.instance)).fault_type if suspects else None
    return Ranking(
        services=to_candidates("service", ordered(svc.values())),
        instances=to_candidates("instance", ordered(inst.values())),
        fault_type=fault,
    )


def _activity_drop(ctx: IncidentContext, instance: str) -> float:
    """How much fewer spans the instance started than its baseline rate predicts (0..1)."""
    now, before = ctx.activity.get(instance, (0, 0))
    if before <= 0:
        return 0.0
    expected = before * ctx.window_seconds / ctx.base_seconds
    return float(np.clip(1.0 - now / expected, 0.0, 1.0))


def _background(ctx: IncidentContext, instance: str) -> tuple[float, str]:
    """A small score from the instance's strongest resource shift, with its reason."""
    shifts = [s for s in ctx.instance_metrics.get(instance, []) if fault_type_of(s.name)]
    if not shifts:
        return 0.0, "no evidence against it"
    top = shifts[0]
    return (
        BACKGROUND * saturate(top.score, 5.0),
        f"not blamed by any analysed request; {top.name} {top.value:.4g} vs normal "
        f"{top.normal:.4g}",
    )


def build_investigation(
    *,
    ctx: IncidentContext,
    method: str,
    ranking: Ranking,
    suspects: list[SuspectScore],
    analyses: list[RequestAnalysis],
    ledger: EvidenceLedger,
    modalities: list[str],
    stats: dict[str, Any],
) -> Investigation:
    """The investigation a report renders (ARCHITECTURE §6)."""
    for analysis in analyses:
        request = analysis.request
        ledger.add(
            f"request:{request.trace_id}",
            "request",
            f"request {request.operation} ({request.trace_id}) picked: {request.reason}",
            table="spans",
            keys={"trace_id": request.trace_id, "span_id": request.span_id},
            tool="select",
            value=request.score,
        )
        ledger.link(f"request:{request.trace_id}", f"report:{request.trace_id}", "analysed_as")
    top_service = ranking.services[0] if ranking.services else None
    top = _top_suspect(suspects, ranking)
    root = None
    path: list[PathStep] = []
    supporting: list[str] = []
    if top_service is not None:
        scores = [c.score for c in ranking.services[:3]]
        confidence = top_service.score / sum(scores) if sum(scores) > 0 else 0.0
        instance = ranking.instances[0].name if ranking.instances else None
        supporting = list(top.evidence) if top else []
        operation, span_id = None, None
        if top is not None and top.trace_id and top.span_key:
            path = _path(analyses, top.trace_id, top.span_key)
            operation = path[-1].operation if path else None
            span_id = path[-1].span_id if path else None
        root = RootCause(
            service=top_service.name,
            instance=instance,
            span_id=span_id,
            operation=operation,
            confidence=float(np.clip(confidence, 0.0, 1.0)),
            summary=top_service.reason,
            evidence=supporting,
        )
    contradicting = [
        f"report:{a.graph.trace_id}"
        for a in analyses
        if root is not None
        and a.root_report.report.root_cause not in (root.instance, f"service:{root.service}")
        and a.root_report.service != root.service
        and not _names_service(a, root.service)
    ]
    alternatives = [
        Alternative(
            kind=c.kind,
            name=c.name,
            score=c.score,
            why_lower=f"score {c.score:.3g} below {top_service.score:.3g}: {c.reason}"
            if top_service
            else c.reason,
        )
        for c in ranking.services[1:6]
    ]
    return Investigation(
        incident=ctx.incident,
        method=method,
        ranking=ranking,
        root_cause=root,
        fault_type=ranking.fault_type,
        path=path,
        alternatives=alternatives,
        supporting=supporting,
        contradicting=contradicting,
        evidence_graph=ledger.graph(),
        modalities=modalities,
        stats=stats,
    ).with_short_evidence_ids()


def _names_service(analysis: RequestAnalysis, service: str) -> bool:
    blame = analysis.root_report.blame
    top = max(blame.values(), key=lambda b: b.score, default=None)
    return top is not None and top.service == service


def _top_suspect(suspects: list[SuspectScore], ranking: Ranking) -> SuspectScore | None:
    if not ranking.services:
        return None
    name = ranking.services[0].name
    matching = [s for s in suspects if s.service == name]
    return max(matching, key=lambda s: (s.score, s.instance), default=None)


def _path(analyses: list[RequestAnalysis], trace_id: str, key: str) -> list[PathStep]:
    for analysis in analyses:
        if analysis.graph.trace_id != trace_id or key not in analysis.graph.nodes:
            continue
        steps = []
        for node_key in analysis.graph.path_to(key):
            node = analysis.graph.nodes[node_key]
            span_finding = analysis.findings[node_key]
            finding = span_finding.finding
            steps.append(
                PathStep(
                    span_id=node.span.span_id,
                    service=node.span.service,
                    instance=node.span.instance,
                    operation=node.span.operation,
                    note="; ".join(finding.symptoms) or finding.hypothesis,
                    evidence=[f"finding:{trace_id}:{node_key}"],
                    source=span_finding.source,
                )
            )
        return steps
    return []
