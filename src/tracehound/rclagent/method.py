"""`rclagent`: multi-agent recursion-of-thought localization (ARCHITECTURE §4.2).

After RCLAgent (Zhang et al., "Adaptive Root Cause Localization for Microservice Systems
with Multi-Agent Recursion-of-Thought", 2025; "Towards In-Depth Root Cause Localization
for Microservices with Multi-Agent Recursion-of-Thought", 2026), with the deterministic
rule reasoner (`rules`) in place of the LLM.

Pipeline: precompute the incident's facts in SQL (`facts`), select anomalous requests
(`select`), build each request's trace graph (`graph`), run one agent per span to verify
it with tools (`tools`, `agents`, phase 1), consolidate bottom-up (phase 2), and
synthesise one ranking and investigation across requests (`synthesis`). Without traces it
ranks from metrics (and logs) and says so in `Investigation.modalities`.

Parameters (keyword-only; `__init__` only stores them):

- ``max_requests`` (5): requests analysed and voted over.
- ``max_depth`` (20, the official code's `MAX_TRACE_DEPTH`): graph depth bound.
- ``single_request`` (False): the paper's configuration: exactly one request (the most
  anomalous), so no voting across requests, and neither edge time nor silence (the
  paper's agents have only log and metric tools): it sets ``max_requests=1``, turns off
  the `edge_delay` and `silence` rules (span-level and incident-wide) and drops the
  silence tables. The incident-wide error-log and metric evidence stays, as the paper's
  synthesizer also receives the services with error logs and metric anomalies.
- ``use_logs`` (True) / ``use_metrics`` (True): ablations; off means the modality is
  ignored even when present.
- ``workers`` (4): agent threads.

Deviations from the paper's code (anchors §1.4): requests are chosen from telemetry
(never from an inject time), several requests vote, the evidence graph has edges, rules
name no service, and units are normalised at load time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from tracehound.investigation import Investigation
from tracehound.methods.base import Method, Tags
from tracehound.model import Incident, Ranking
from tracehound.rclagent.agents import RequestAnalysis, run_agents
from tracehound.rclagent.context import IncidentContext
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.facts import fill_context, new_context
from tracehound.rclagent.graph import SpanRow, build_graph, fetch_spans
from tracehound.rclagent.reasoner import Toolbox
from tracehound.rclagent.rules import RuleReasoner, RuleWeights
from tracehound.rclagent.select import select_requests
from tracehound.rclagent.synthesis import build_investigation, metrics_ranking, rank_suspects
from tracehound.store import TelemetryStore


class RclAgentMethod(Method):
    """Recursion-of-thought span agents with the rule reasoner (see module docstring)."""

    name = "rclagent"
    tags = Tags(modalities=frozenset(), deterministic=True, needs_normal_window=False)

    def __init__(
        self,
        *,
        max_requests: int = 5,
        max_depth: int = 20,
        single_request: bool = False,
        use_logs: bool = True,
        use_metrics: bool = True,
        workers: int = 4,
    ) -> None:
        self.max_requests = max_requests
        self.max_depth = max_depth
        self.single_request = single_request
        self.use_logs = use_logs
        self.use_metrics = use_metrics
        self.workers = workers

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        return self.investigate(incident, store).ranking

    def investigate(self, incident: Incident, store: TelemetryStore) -> Investigation:
        """Run the whole pipeline and explain the answer."""
        started = time.perf_counter()
        self.check_inputs(incident, store)
        ctx = new_context(incident, store, use_logs=self.use_logs, use_metrics=self.use_metrics)
        ledger = EvidenceLedger()
        present = set(store.modalities())
        weights = RuleWeights()
        if self.single_request:
            weights = replace(weights, edge_delay=0.0, silence=0.0)
        reasoner = RuleReasoner(weights)
        analyses: list[RequestAnalysis] = []
        if "traces" in present:
            limit = 1 if self.single_request else max(1, self.max_requests)
            requests = select_requests(store, ctx, limit)
            trace_ids = sorted({r.trace_id for r in requests})
            fill_context(store, ctx, trace_ids)
            if self.single_request:
                ctx.usual_templates = {}
            spans = fetch_spans(store, trace_ids)
            badness = _badness(ctx)
            graphs = [
                (r, build_graph(spans[r.trace_id], r.span_id, self.max_depth, badness))
                for r in requests
            ]
            analyses = run_agents(graphs, reasoner, Toolbox(ctx, ledger), self.workers)
            suspects = reasoner.synthesize(
                [(a.graph.trace_id, a.root_report) for a in analyses], ctx
            )
            ranking = rank_suspects(suspects, ctx)
        else:
            fill_context(store, ctx, [])
            suspects = []
            ranking = metrics_ranking(store, ctx, ledger)
        modalities = [
            m
            for m, used in (
                ("traces", "traces" in present),
                ("logs", ctx.use_logs),
                ("metrics", ctx.use_metrics),
            )
            if used
        ]
        stats = {
            "requests_analysed": len(analyses),
            "agents_run": sum(len(a.graph.nodes) for a in analyses),
            "spans_truncated": sum(a.graph.truncated for a in analyses),
            "baseline": "normal window" if ctx.has_normal else "incident window (robust)",
            "wall_time_s": round(time.perf_counter() - started, 4),
        }
        return build_investigation(
            ctx=ctx,
            method=self.name,
            ranking=ranking,
            suspects=suspects,
            analyses=analyses,
            ledger=ledger,
            modalities=modalities,
            stats=stats,
        )


def _badness(ctx: IncidentContext) -> Callable[[SpanRow], float]:
    """How bad a span looks before agents run: its novel warning/error lines."""

    def score(span: SpanRow) -> float:
        lines = ctx.span_logs.get((span.trace_id, span.span_id), [])
        return sum(line.novelty for line in lines if line.level != "info")

    return score
