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
- ``use_traces`` (True) / ``use_logs`` (True) / ``use_metrics`` (True): ablations; off
  means the modality is ignored even when present (without traces the engine ranks from
  metrics and logs, `metrics_only`).
- ``scope`` ("auto"): what the facts are gathered over. ``"incident"``: every
  component of the system (incident-wide evidence: error lines, silences, vanished
  instances and metric shifts anywhere; the cost follows the size of the system).
  ``"graph"``: only the services with a span in the analysed requests, the services
  they called in the baseline, and their instances (their nodes' series too), with
  requests chosen without the whole system's silences, so that the cost does not follow
  the number of services; a fault outside those services cannot be ranked.
  ``"auto"``: the incident scope while the windows' traces reach at most
  ``max_services`` services, the graph scope above (docs/rclagent.md, "Scope").
- ``max_services`` (500): the largest system, in services with a span in either window
  (of the sampled traces, see ``max_traces``), that the ``auto`` scope examines whole:
  about where the incident-wide screen stops costing less than following the graph.
- ``max_traces`` (1,000): requests per window that the facts about spans and log lines
  read whole; above it, in either window, they are computed over a sample of whole
  traces drawn by trace-id hash, the analysed requests' traces added
  (`rclagent.sample`), so that their cost stops following the system's traffic. The
  requests are still chosen from every request of the window (the lines that stopped
  being written, which selection weighs, come from the sample); warning and error
  lines and metric series are read whole. 0 reads every trace.
- ``workers`` (4): agent threads.
- ``reasoner`` ("rule"): who reasons in phases 1, 2 and 5: ``"rule"`` (the deterministic
  rule reasoner), ``"llm"`` (a model, with the rules as ground and fallback) or
  ``"hybrid"`` (rules screen, the model reasons about ambiguous evidence only); see
  `llm_reasoner`.
- ``llm`` (None): the model's endpoint: ``"local"`` (the packaged small model behind
  llama.cpp's server on 127.0.0.1, started when none answers) or a base URL of an
  OpenAI-compatible server; None leaves it to the environment and config file.
- ``llm_model``, ``llm_config`` (a config file), ``llm_record`` / ``llm_replay`` (write /
  answer from a transcript), ``llm_max_calls`` (the call budget): LLM settings, highest
  in precedence over ``TRACEHOUND_LLM_*`` and the config file (`llm.config`). An API key
  is never a parameter (parameters end up in benchmark results): set
  ``TRACEHOUND_LLM_API_KEY`` or the config file.

With an LLM reasoner, `stats["llm"]` holds the session's accounting (calls, tokens, wall
time, cost, per agent) and which agents the model answered and which fell back.

Deviations from the paper's code (anchors §1.4): requests are chosen from telemetry
(never from an inject time), several requests vote, the evidence graph has edges, rules
name no service, and units are normalised at load time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from tracehound.errors import BadInput
from tracehound.investigation import Investigation
from tracehound.llm.method_session import session_for
from tracehound.methods.base import Method, Tags
from tracehound.model import Incident, Ranking
from tracehound.rclagent.agents import RequestAnalysis, run_agents
from tracehound.rclagent.context import IncidentContext
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.facts import (
    examine_every_component,
    fill_context,
    new_context,
    services_reached,
    set_scope,
)
from tracehound.rclagent.graph import SpanRow, build_graph, fetch_spans
from tracehound.rclagent.metrics_only import metrics_ranking
from tracehound.rclagent.reasoner import Reasoner, SuspectScore, Toolbox
from tracehound.rclagent.rules import RuleReasoner, RuleWeights
from tracehound.rclagent.sample import MAX_TRACES, TraceSample, sample_rate, sample_threshold
from tracehound.rclagent.select import select_requests
from tracehound.rclagent.steps import StepRuleReasoner, investigate_run, is_agent_run
from tracehound.rclagent.synthesis import build_investigation, rank_suspects
from tracehound.store import TelemetryStore

if TYPE_CHECKING:
    from tracehound.llm.session import LLMSession
    from tracehound.rclagent.llm_reasoner import HybridReasoner, LLMReasoner

#: The values of the ``scope`` parameter.
SCOPES = ("auto", "incident", "graph")
#: Default of ``max_services``: the largest system the ``auto`` scope examines whole.
MAX_SERVICES = 500
#: The values of the ``reasoner`` parameter.
REASONERS = ("rule", "llm", "hybrid")


class RclAgentMethod(Method):
    """Recursion-of-thought span agents with the rule reasoner (see module docstring)."""

    name = "rclagent"
    tags = Tags(modalities=frozenset(), deterministic=True, needs_normal_window=False)

    def get_tags(self) -> Tags:
        """With the rule reasoner (the class tags): deterministic, no LLM. With `llm` or
        `hybrid`: uses an LLM, and is deterministic only when replaying a transcript."""
        if self.reasoner == "rule":
            return self.tags
        return replace(self.tags, uses_llm=True, deterministic=self.llm_replay is not None)

    def __init__(
        self,
        *,
        max_requests: int = 5,
        max_depth: int = 20,
        single_request: bool = False,
        use_traces: bool = True,
        use_logs: bool = True,
        use_metrics: bool = True,
        workers: int = 4,
        scope: str = "auto",
        max_services: int = MAX_SERVICES,
        max_traces: int = MAX_TRACES,
        reasoner: str = "rule",
        llm: str | None = None,
        llm_model: str | None = None,
        llm_config: str | None = None,
        llm_record: str | None = None,
        llm_replay: str | None = None,
        llm_max_calls: int | None = None,
        use_ground_truth: bool = True,
    ) -> None:
        self.max_requests = max_requests
        self.max_depth = max_depth
        self.single_request = single_request
        self.use_traces = use_traces
        self.use_logs = use_logs
        self.use_metrics = use_metrics
        self.workers = workers
        self.scope = scope
        self.max_services = max_services
        self.max_traces = max_traces
        self.reasoner = reasoner
        self.llm = llm
        self.llm_model = llm_model
        self.llm_config = llm_config
        self.llm_record = llm_record
        self.llm_replay = llm_replay
        self.llm_max_calls = llm_max_calls
        self.use_ground_truth = use_ground_truth

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        return self.investigate(incident, store).ranking

    def investigate(self, incident: Incident, store: TelemetryStore) -> Investigation:
        """Run the whole pipeline and explain the answer."""
        started = time.perf_counter()
        kind = self._reasoner_kind()
        _choice(
            "scope",
            self.scope,
            SCOPES,
            "Use --param scope=auto (the default), scope=incident or scope=graph.",
        )
        self.check_inputs(incident, store)
        if is_agent_run(incident):
            return self._run_steps(incident, store, kind, started)
        weights = RuleWeights()
        if self.single_request:
            weights = replace(weights, edge_delay=0.0, silence=0.0)
        rules = RuleReasoner(weights)
        if kind == "rule":
            return self._run(incident, store, rules, started)
        with session_for(self, local_max_tokens=LOCAL_MAX_TOKENS) as session:
            reasoner = self._model_reasoner(kind, session, rules)
            result = self._run(incident, store, reasoner, started)
            llm_stats = {**session.stats(), **reasoner.llm_stats()}
        return result.model_copy(update={"stats": {**result.stats, "llm": llm_stats}})

    def _run(
        self, incident: Incident, store: TelemetryStore, reasoner: Reasoner, started: float
    ) -> Investigation:
        present = set(store.modalities())
        if not self.use_traces:
            present.discard("traces")
        ctx = new_context(
            incident,
            store,
            use_logs=self.use_logs,
            use_metrics=self.use_metrics,
            graph_scope=self.scope in ("graph", "auto") and "traces" in present,
        )
        ledger = EvidenceLedger()
        analyses: list[RequestAnalysis] = []
        suspects: list[SuspectScore] = []
        reached: int | None = None
        if "traces" in present:
            limit = 1 if self.single_request else max(1, self.max_requests)
            threshold = sample_threshold(store, ctx, self.max_traces)
            ctx.sampled = threshold is not None
            sample = TraceSample(store, threshold) if threshold is not None else None
            facts_from = sample.store if sample is not None else store
            try:
                if self.scope == "auto":
                    reached = services_reached(facts_from, ctx)
                    if reached <= self.max_services:
                        examine_every_component(store, ctx)
                requests = select_requests(store, ctx, limit, facts_from)
                trace_ids = sorted({r.trace_id for r in requests})
                if sample is not None:
                    sample.include(trace_ids)
                if ctx.graph_scope:  # without a request: every component
                    set_scope(store, ctx, trace_ids, facts_from)
                fill_context(store, ctx, trace_ids, facts_from)
            finally:
                if sample is not None:
                    sample.close()
            traces_read = sample_rate(threshold)
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
            ranking, suspects = metrics_ranking(store, ctx, ledger)
            traces_read = 1.0
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
            "scope": "graph" if ctx.graph_scope else "incident",
            "services_examined": len(ctx.services),
            **({"services_reached": reached} if reached is not None else {}),
            "traces_read": round(traces_read, 4),
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

    def _run_steps(
        self, incident: Incident, store: TelemetryStore, kind: str, started: float
    ) -> Investigation:
        """An agent run: step agents over the chain of steps (`rclagent.steps`)."""
        rules = StepRuleReasoner()
        if kind == "rule":
            return investigate_run(
                incident,
                store,
                rules,
                method=self.name,
                started=started,
                use_ground_truth=self.use_ground_truth,
                workers=self.workers,
            )
        from tracehound.rclagent.llm_loop import EACH
        from tracehound.rclagent.steps.llm import StepHybridReasoner, StepLLMReasoner

        local = self.llm == "local"
        with session_for(self, local_max_tokens=LOCAL_MAX_TOKENS) as session:
            model = StepHybridReasoner if kind == "hybrid" else StepLLMReasoner
            reasoner = model(session, rules, tool_choice=EACH if local else "auto")
            result = investigate_run(
                incident,
                store,
                reasoner,
                method=self.name,
                started=started,
                use_ground_truth=self.use_ground_truth,
                # the local server answers one call at a time and reuses the cache of
                # the prompt before: one step agent after another, each call extends
                # the previous one's prompt instead of evicting it
                workers=1 if local else self.workers,
            )
            llm_stats = {**session.stats(), **reasoner.llm_stats()}
        return result.model_copy(update={"stats": {**result.stats, "llm": llm_stats}})

    def _reasoner_kind(self) -> str:
        """The ``reasoner`` parameter, checked."""
        return _choice(
            "reasoner",
            self.reasoner,
            REASONERS,
            "Choose one with --reasoner (or --param reasoner=NAME).",
        )

    def _model_reasoner(
        self, kind: str, session: LLMSession, rules: RuleReasoner
    ) -> LLMReasoner | HybridReasoner:
        """The reasoner `kind` names, on `session`, falling back to `rules`."""
        from tracehound.rclagent.llm_loop import EACH
        from tracehound.rclagent.llm_reasoner import HybridReasoner, LLMReasoner

        # the packaged local model ignores tools unless one is forced (`llm.local`)
        tool_choice = EACH if self.llm == "local" else "auto"
        if kind == "hybrid":
            return HybridReasoner(session, rules, tool_choice=tool_choice)
        return LLMReasoner(session, rules, tool_choice=tool_choice)


def _choice(name: str, value: str, allowed: tuple[str, ...], hint: str) -> str:
    """`value` of the parameter `name` if it is one of `allowed`, else `BadInput`."""
    if value not in allowed:
        raise BadInput(
            f"rclagent has no {name} {value!r}",
            column=name,
            expected=", ".join(allowed),
            hint=hint,
        )
    return value


def _badness(ctx: IncidentContext) -> Callable[[SpanRow], float]:
    """How bad a span looks before agents run: its novel warning/error lines."""

    def score(span: SpanRow) -> float:
        lines = ctx.span_logs.get((span.trace_id, span.span_id), [])
        return sum(line.weight for line in lines if line.level != "info")

    return score


#: `max_tokens` per call for the packaged local model unless configured otherwise: its
#: answers are short JSON objects, and a rambling answer at a few dozen tokens a second
#: would cost seconds per agent.
LOCAL_MAX_TOKENS = 192
