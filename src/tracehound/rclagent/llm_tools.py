"""The span agent's tools as a model sees them (ARCHITECTURE §4.2 step 3, §5).

`SpanTools` offers the `Toolbox` tools of one span as OpenAI tool definitions without
arguments (an agent looks at its own span only) and runs the ones the model asks for,
returning compact text instead of the structured results: small models read prose more
reliably than nested JSON, and every character costs context. Each result cites the
evidence it rests on by a short alias (``E1``, ``E2``, ...) that `aliases` maps back to
the ledger's id, so the model can cite evidence without copying long ids.

Tools are offered in order of how much they usually tell: `span_timing`,
`instance_logs` (logs in use), `edge_timing` (a call leads into the span),
`instance_metrics` and `node_metrics` (metrics in use).
"""

from __future__ import annotations

from collections.abc import Callable

from tracehound.llm.types import ToolSpec
from tracehound.rclagent.reasoner import SpanContext, Toolbox
from tracehound.rclagent.tools import EdgeTiming, LogFindings, MetricFindings, SpanTiming


def flat(text: str, limit: int = 160) -> str:
    """`text` on one line, cut to `limit` characters: prompts list one item per line."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class CitingTools:
    """Tools offered to a model without arguments, in the order of `runners` (name ->
    description, runner), whose text cites evidence by short aliases (`_cite`)."""

    def __init__(self, runners: dict[str, tuple[str, Callable[[], str]]]) -> None:
        #: alias (``E1``) -> evidence id, for the ids the model cites
        self.aliases: dict[str, str] = {}
        self._alias_of: dict[str, str] = {}
        self._runners = runners
        self.specs = tuple(
            ToolSpec(name, text, {"type": "object", "properties": {}})
            for name, (text, _) in runners.items()
        )

    def run(self, name: str) -> str:
        entry = self._runners.get(name)
        if entry is None:
            return f"unknown tool {name!r}; tools: {', '.join(self._runners)}"
        return entry[1]()

    def _cite(self, *ids: str) -> str:
        """`` [E1, E2]`` for the evidence ids, numbering new ones in order of citation."""
        names = []
        for evidence_id in ids:
            alias = self._alias_of.get(evidence_id)
            if alias is None:
                alias = self._alias_of[evidence_id] = f"E{len(self._alias_of) + 1}"
                self.aliases[alias] = evidence_id
            names.append(alias)
        return f" [{', '.join(names)}]" if names else ""


class SpanTools(CitingTools):
    """The tools one span agent is offered, run without arguments, citing short ids."""

    def __init__(self, ctx: SpanContext, tools: Toolbox) -> None:
        self.ctx = ctx
        self.tools = tools
        runners: dict[str, tuple[str, Callable[[], str]]] = {
            "span_timing": (
                "Latency, own time and status of this span against its normal values.",
                self._span_timing,
            )
        }
        if tools.ctx.use_logs:
            runners["instance_logs"] = (
                "New warning/error log lines of this span, what they name, and usual "
                "lines that went missing.",
                self._instance_logs,
            )
        if ctx.caller is not None and ctx.node.has_edge:
            runners["edge_timing"] = (
                "Network and queueing time of the call into this span against normal.",
                self._edge_timing,
            )
        if tools.ctx.use_metrics:
            runners["instance_metrics"] = (
                "Metrics of this span's instance that moved beyond normal.",
                lambda: self._metrics(tools.instance_metrics(ctx.node.span.instance), "instance"),
            )
            runners["node_metrics"] = (
                "Metrics of the machine hosting this instance that moved beyond normal.",
                lambda: self._metrics(tools.node_metrics(ctx.node.span.instance), "node"),
            )
        super().__init__(runners)

    def _span_timing(self) -> str:
        t: SpanTiming = self.tools.span_timing(self.ctx.node)
        normal = (
            f"normal {t.baseline_ms:.1f} ms (own {t.baseline_self_ms or 0.0:.1f} ms)"
            if t.baseline_ms is not None
            else "no normal values"
        )
        client = "; a client span: its own time is network time" if self.ctx.node.is_client else ""
        return (
            f"duration {t.duration_ms:.1f} ms, own time {t.self_ms:.1f} ms, status "
            f"{t.status or 'not recorded'}; {normal}; beyond normal: latency "
            f"+{t.latency_excess_ms:.0f} ms, own time +{t.self_excess_ms:.0f} ms{client}"
            + self._cite(t.evidence)
        )

    def _edge_timing(self) -> str:
        caller = self.ctx.caller
        edge: EdgeTiming | None = (
            self.tools.edge_timing(self.ctx.node, caller) if caller is not None else None
        )
        if edge is None:
            return "no call leads into this span"
        normal = (
            f"normal {edge.baseline_ms:.1f} ms" if edge.baseline_ms is not None else "no normal"
        )
        return (
            f"call {edge.caller_instance} -> {edge.callee_instance}: {edge.gap_ms:.1f} ms "
            f"between client and server, {normal}, +{edge.excess_ms:.0f} ms beyond normal"
            + self._cite(edge.evidence)
        )

    def _instance_logs(self) -> str:
        logs: LogFindings | None = self.tools.instance_logs(self.ctx.node)
        if logs is None:
            return "logs are not in use"
        parts = []
        if logs.error_lines:
            crash = ", reporting a crash" if logs.crashed else ""
            parts.append(
                f"{logs.error_lines} new warning/error line(s) (weight "
                f"{logs.error_weight:.2f}{crash}): "
                + " | ".join(flat(t, 100) for t in logs.templates[:3])
            )
        else:
            parts.append("no new warning/error lines")
        if logs.mentions:
            parts.append(f"they name {', '.join(logs.mentions)}")
        if logs.silence > 0:
            parts.append(
                f"{logs.silence:.0%} of its usual lines missing: "
                + "; ".join(flat(t, 80) for t in logs.silent_templates[:2])
            )
        return "; ".join(parts) + self._cite(*logs.evidence)

    def _metrics(self, found: MetricFindings | None, where: str) -> str:
        if found is None:
            return "metrics are not in use"
        if not found.shifts:
            return f"no {where} metric beyond normal"
        return "; ".join(
            f"{s.name} {s.value:.4g} vs normal {s.normal:.4g} ({s.score:.1f} spreads)"
            + self._cite(evidence)
            for s, evidence in zip(found.shifts, found.evidence, strict=True)
        )
