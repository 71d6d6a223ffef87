"""The reasoner interface: what phases 1, 2 and 5 call (ARCHITECTURE §4.2).

A reasoner verifies one span from its tools (`verify`), consolidates a span's finding
with its children's reports (`consolidate`), and turns the root reports of every analysed
request into scores per suspect (`synthesize`). `rules.RuleReasoner` is the deterministic
default; `llm_reasoner.LLMReasoner` and `llm_reasoner.HybridReasoner` implement the same
three methods. Their `verify` keeps `SpanFinding.signals` grounded in the tool results
(the model's verdict can only switch evidence off), so consolidation and synthesis work
the same whichever reasoner produced the finding; `source` says which one did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tracehound.model import Finding, Report
from tracehound.rclagent import tools
from tracehound.rclagent.context import IncidentContext
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.graph import GraphNode, SpanRow


@dataclass(frozen=True, slots=True)
class SpanContext:
    """What one span agent sees: its own node and the span that called it."""

    trace_id: str
    node: GraphNode
    caller: SpanRow | None


@dataclass(frozen=True)
class Toolbox:
    """The tools bound to one incident's context and evidence ledger."""

    ctx: IncidentContext
    ledger: EvidenceLedger

    def span_timing(self, node: GraphNode) -> tools.SpanTiming:
        return tools.span_timing(self.ctx, self.ledger, node)

    def edge_timing(self, node: GraphNode, caller: SpanRow) -> tools.EdgeTiming | None:
        return tools.edge_timing(self.ctx, self.ledger, node, caller)

    def instance_logs(self, node: GraphNode) -> tools.LogFindings | None:
        return tools.instance_logs(self.ctx, self.ledger, node) if self.ctx.use_logs else None

    def instance_metrics(self, instance: str) -> tools.MetricFindings | None:
        if not self.ctx.use_metrics:
            return None
        return tools.instance_metrics(self.ctx, self.ledger, instance)

    def node_metrics(self, instance: str) -> tools.MetricFindings | None:
        if not self.ctx.use_metrics:
            return None
        return tools.node_metrics(self.ctx, self.ledger, instance)


@dataclass(frozen=True, slots=True)
class Signals:
    """Numeric strength of each kind of evidence about one span, each in [0, 1]."""

    error: float = 0.0
    status_error: bool = False
    #: its error lines report a crash (an exception), not a complaint about a value
    crashed: bool = False
    silence: float = 0.0
    self_time: float = 0.0
    latency: float = 0.0
    edge: float = 0.0
    #: which share of the edge's delay is the callee's (`tools.EdgeTiming.callee_share`)
    edge_callee_share: float = 0.5
    #: time of a call that reached no server span (a client span without children), and
    #: how it is shared between the caller's instance and the usual callees (keys)
    unreached: float = 0.0
    unreached_split: tuple[tuple[str, float], ...] = ()
    resource: float = 0.0
    resource_kind: str | None = None
    #: (service, instance) named by its error lines; instance empty for a service name
    mentions: tuple[tuple[str, str], ...] = ()
    #: named by the error lines of a failed span when none of them is news
    #: (`tools.LogFindings.status_mentions`): where it failed, if it reached them
    status_mentions: tuple[tuple[str, str], ...] = ()
    #: services this call usually reaches, when the call failed and reached nothing
    missing_callee: tuple[str, ...] = ()
    is_client: bool = False
    has_children: bool = False
    evidence: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanFinding:
    """Phase 1's output: the typed `Finding` plus the signals behind it."""

    key: str
    node: GraphNode
    caller: SpanRow | None
    finding: Finding
    signals: Signals
    #: who wrote the finding when a model took part: "llm", "rule" (screened out by the
    #: hybrid reasoner) or "rule (fallback: <reason>)"; None for the plain rule reasoner
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Blame:
    """Blame one suspect receives within a subtree, and why."""

    service: str
    instance: str
    score: float
    fault_type: str
    note: str
    span_key: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LocalReport:
    """Phase 2's output for one span: the typed `Report` plus the blame it passes up.

    `blame` holds span evidence (the strongest per suspect), `edge_blame` the summed
    weight of slow edges each instance is an endpoint of, `error_chain` whether an error
    was seen at or below this span.
    """

    key: str
    report: Report
    signals: Signals
    service: str
    instance: str
    blame: dict[str, Blame]
    edge_blame: dict[str, float]
    edge_evidence: dict[str, tuple[str, ...]]
    error_chain: bool
    #: every instance and service in the subtree -> (service, instance, node key) of its
    #: nearest span, to resolve names that error lines mention
    reach: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    #: spans in the subtree whose usual log lines went silent: instance -> (service,
    #: instance, node key, silence strength), the strongest per instance
    silent: dict[str, tuple[str, str, str, float]] = field(default_factory=dict)
    #: who consolidated it when a model took part (see `SpanFinding.source`)
    source: str | None = None


@dataclass(frozen=True, slots=True)
class SuspectScore:
    """A suspect's final score and the reason, from `Reasoner.synthesize`."""

    service: str
    instance: str
    score: float
    fault_type: str
    reason: str
    evidence: tuple[str, ...]
    span_key: str | None
    trace_id: str | None


class Reasoner(Protocol):
    """What the agents call; see the module docstring."""

    def verify(self, ctx: SpanContext, tools: Toolbox) -> SpanFinding: ...

    def consolidate(
        self, finding: SpanFinding, child_reports: list[LocalReport]
    ) -> LocalReport: ...

    def synthesize(
        self, root_reports: list[tuple[str, LocalReport]], ctx: IncidentContext
    ) -> list[SuspectScore]: ...
