"""The span agents' tools: plain typed functions returning structured results (§4.2 step 3).

Each tool reads the precomputed `IncidentContext` (no database access, so agents can run
in threads), records what it saw in the `EvidenceLedger`, and returns a frozen result
carrying the ids of that evidence. Thresholds are in natural units with floors
(milliseconds, log lines, robust spreads), never raw z-scores of flat series:

- `span_timing`: latency and self-time against the operation's baseline. A client span's
  self-time is time on the wire, so it is reported as edge time, not as the span's own.
- `edge_timing`: a call's client-minus-server time against the same call's baseline.
- `instance_logs`: warning/error lines linked to the span (trace and span id), weighted
  by novelty; the names of other services or instances the error lines mention; and
  silence: the info templates this operation writes in most baseline spans that none of
  this node's spans wrote.
- `instance_metrics` / `node_metrics`: series of the instance / node that rose beyond
  their baseline.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from tracehound.rclagent.context import (
    ANY_OPERATION,
    UNLINKED_SHARE,
    IncidentContext,
    LogLine,
    MetricShift,
)
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.graph import GraphNode, SpanRow

#: Latency excess is measured beyond ``median + MAD_K * 1.4826 * MAD``, and must also
#: exceed `RELATIVE_FLOOR` of the median and `SPAN_FLOOR_MS` (edges: `EDGE_FLOOR_MS`).
MAD_K = 3.0
RELATIVE_FLOOR = 0.5
SPAN_FLOOR_MS = 5.0
EDGE_FLOOR_MS = 5.0
#: A metric series counts as shifted at this many (floored) robust spreads.
METRIC_THRESHOLD = 5.0


def _short(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()


def excess_ms(value: float, median: float, mad: float, floor_ms: float) -> float:
    """How far `value` lies beyond the robust upper bound of its baseline (0 if within)."""
    bound = max(median + MAD_K * 1.4826 * mad, median * (1 + RELATIVE_FLOOR), median + floor_ms)
    return max(0.0, value - bound)


@dataclass(frozen=True, slots=True)
class SpanTiming:
    duration_ms: float
    self_ms: float
    status: str
    baseline_ms: float | None
    baseline_self_ms: float | None
    latency_excess_ms: float
    self_excess_ms: float
    evidence: str


def span_timing(ctx: IncidentContext, ledger: EvidenceLedger, node: GraphNode) -> SpanTiming:
    """Latency, self-time and status of the node's span against its operation baseline."""
    span = node.span
    base = ctx.op_base.get((span.service, span.operation))
    latency = self_excess = 0.0
    if base is not None:
        latency = excess_ms(span.duration_ms, base.median_ms, base.mad_ms, SPAN_FLOOR_MS)
        if not node.is_client:
            self_excess = excess_ms(
                node.own_self_ns / 1e6, base.self_median_ms, base.self_mad_ms, SPAN_FLOOR_MS
            )
    baseline = f"{base.median_ms:.1f} ms (self {base.self_median_ms:.1f})" if base else "none"
    evidence = ledger.add(
        f"span:{span.trace_id}:{span.span_id}",
        "span_timing",
        f"{span.service} {span.operation}: {span.duration_ms:.1f} ms, self "
        f"{span.self_ms:.1f} ms, status {span.status}; baseline {baseline}",
        table="spans",
        keys={"trace_id": span.trace_id, "span_id": span.span_id},
        tool="span_timing",
        value=self_excess or latency,
    )
    return SpanTiming(
        duration_ms=span.duration_ms,
        self_ms=span.self_ms,
        status=span.status,
        baseline_ms=base.median_ms if base else None,
        baseline_self_ms=base.self_median_ms if base else None,
        latency_excess_ms=latency,
        self_excess_ms=self_excess,
        evidence=evidence,
    )


@dataclass(frozen=True, slots=True)
class EdgeTiming:
    caller_instance: str
    callee_instance: str
    gap_ms: float
    baseline_ms: float | None
    #: the gap beyond the pair's baseline bound, times `edge_surprise`
    excess_ms: float
    evidence: str
    #: the share of the edge's delay that belongs to the callee: its share of slow incoming
    #: calls against the caller's share of slow outgoing calls, incident-wide (0.5: even)
    callee_share: float = 0.5


def edge_surprise(ctx: IncidentContext, pair: tuple[str, str, str, str]) -> float:
    """How likely a slow call of this operation pair is the incident's doing rather than
    the pair's background: ``(p1 - p0) / p1``, where p0 and p1 are the shares of its calls
    beyond the bound in the baseline and in the incident window (each with half a slow
    call in one extra call, a Jeffreys prior's mean); 1 without both counts. Real
    traffic has occasional slow calls on any pair (a pause, a connection set up); when a
    pair was slow as often before, its slow call says nothing about an instance."""
    base, now = ctx.edge_base.get(pair), ctx.edge_pairs.get(pair)
    if base is None or now is None or not base.n:
        return 1.0
    before = (base.slow + 0.5) / (base.n + 1)
    during = (now[0] + 0.5) / (now[1] + 1)
    return max(0.0, (during - before) / during)


def edge_timing(
    ctx: IncidentContext, ledger: EvidenceLedger, node: GraphNode, caller: SpanRow
) -> EdgeTiming | None:
    """Client-minus-server time of the call from `caller` into `node` (None: no edge)."""
    if not node.has_edge:
        return None
    span = node.span
    gap = (caller.duration_ns - span.duration_ns) / 1e6
    pair = (caller.service, caller.operation, span.service, span.operation)
    base = ctx.edge_base.get(pair)
    extra = excess_ms(gap, base.median_ms, base.mad_ms, EDGE_FLOOR_MS) if base else 0.0
    surprise = edge_surprise(ctx, pair)
    extra *= surprise
    evidence = ledger.add(
        f"edge:{span.trace_id}:{span.span_id}",
        "edge_timing",
        f"call {caller.instance} -> {span.instance}: {gap:.1f} ms between client and server"
        + (f", baseline {base.median_ms:.1f} ms" if base else ", no baseline")
        + (
            f" (calls of this pair were slow about as often before: weight {surprise:.2f})"
            if surprise < 0.5
            else ""
        ),
        table="spans",
        keys={"trace_id": span.trace_id, "span_ids": [caller.span_id, span.span_id]},
        tool="edge_timing",
        value=extra,
    )
    out_share = ctx.edge_side(caller.instance)[0]
    in_share = ctx.edge_side(span.instance)[1]
    return EdgeTiming(
        caller_instance=caller.instance,
        callee_instance=span.instance,
        callee_share=in_share / (in_share + out_share) if in_share + out_share > 0 else 0.5,
        gap_ms=gap,
        baseline_ms=base.median_ms if base else None,
        excess_ms=extra,
        evidence=evidence,
    )


#: An error line that reports a crash rather than a complaint: an exception or error
#: class (``FooException``, ``java.lang.OutOfMemoryError``), a traceback or stack frame,
#: a panic, or the word "exception". Case-sensitive for class names.
CRASH_PATTERN = re.compile(
    r"[A-Za-z]+(Exception|Error)\b|Traceback \(most recent|^\s+at [\w.$]+\(|\bpanic:|"
    r"(?i:\bexception\b|\bthrew\b)",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class LogFindings:
    #: novelty-weighted error lines (warnings count `warn_share`) per member span
    error_weight: float
    error_lines: int
    templates: tuple[str, ...]
    #: other services / instances named by the error lines
    mentions: tuple[str, ...]
    #: whether an error line reports a crash (see `CRASH_PATTERN`), not a complaint
    crashed: bool
    #: strength (0..1) of the silence: dropped templates these spans also left out
    silence: float
    silent_templates: tuple[str, ...]
    evidence: tuple[str, ...]
    #: when the span failed (error status) and none of its error lines is news: the
    #: services / instances its error lines name, and those lines' evidence ids. A
    #: template seen once is too rare to count as news (`context.novelty_cte`), as on a
    #: quiet service called once or twice in the window, but the failed span's own
    #: error line still says where the failure came from.
    status_mentions: tuple[str, ...] = ()
    status_evidence: tuple[str, ...] = ()


def instance_logs(
    ctx: IncidentContext, ledger: EvidenceLedger, node: GraphNode, *, warn_share: float = 0.3
) -> LogFindings:
    """Linked warning/error lines of the node's spans, what they name, and what went silent."""
    span = node.span
    lines = [
        line
        for member in node.members
        for line in ctx.span_logs.get((span.trace_id, member), [])
        if line.instance == span.instance or not line.instance
    ]
    errors = [line for line in lines if line.level != "info" and line.novelty > 0]
    weight = sum(line.weight * (1.0 if line.level == "error" else warn_share) for line in errors)
    evidence = [_log_evidence(ledger, line) for line in errors[:5]]
    said = [line for line in errors if line.level == "error"]
    mentions = _mentions(ctx, span, said)
    status_mentions: tuple[str, ...] = ()
    status_evidence: tuple[str, ...] = ()
    if not said and span.status == "error":
        failed_lines = [line for line in lines if line.level == "error" and line.linked]
        status_mentions = _mentions(ctx, span, failed_lines)
        if status_mentions:
            status_evidence = tuple(_log_evidence(ledger, line) for line in failed_lines[:5])
    silence, silent = _silence(ctx, node, lines)
    if silent:
        evidence.append(
            ledger.add(
                f"silence:{span.trace_id}:{span.span_id}",
                "silence",
                f"{span.instance} {span.operation} did not write {len(silent)} line(s) it "
                f"usually writes: {'; '.join(silent[:3])}",
                table="logs",
                keys={"trace_id": span.trace_id, "span_ids": list(node.members)},
                tool="instance_logs",
                value=silence,
            )
        )
    return LogFindings(
        error_weight=weight / node.count,
        error_lines=len(errors),
        templates=tuple(sorted({line.template for line in errors}))[:5],
        mentions=mentions,
        crashed=any(CRASH_PATTERN.search(line.message) for line in errors if line.level == "error"),
        silence=silence,
        silent_templates=tuple(silent),
        evidence=tuple(evidence),
        status_mentions=status_mentions,
        status_evidence=status_evidence,
    )


def _log_evidence(ledger: EvidenceLedger, line: LogLine) -> str:
    if line.linked:
        how = f"novelty {line.novelty:.2f}"
        keys = {"trace_id": line.trace_id, "span_id": line.span_id, "ts_ns": line.ts_ns}
    else:
        # the row has no trace id: it is found by instance and time
        how = f"novelty {line.novelty:.2f}, no trace id: written while span {line.span_id} ran"
        keys = {"instance": line.instance, "ts_ns": line.ts_ns, "near_span_id": line.span_id}
    return ledger.add(
        f"log:{line.trace_id}:{line.span_id}:{_short(line.template)}",
        "log",
        f"{line.level.upper()} at {line.instance} ({how}): {line.message[:200]}",
        table="logs",
        keys=keys,
        tool="instance_logs",
        value=line.weight,
    )


def _mentions(ctx: IncidentContext, span: SpanRow, lines: list[LogLine]) -> tuple[str, ...]:
    """Instances, else services, other than the span's own that the lines name (in any
    case: `CartService` names `cartservice`)."""
    if not lines:
        return ()
    text = "\n".join(line.message for line in lines).lower()
    found = [i for i in ctx.instances if i != span.instance and i.lower() in text]
    if not found:
        found = [s for s in ctx.services if s != span.service and s.lower() in text]
    return tuple(n for n in found if not any(n != m and n in m for m in found))


def _silence(
    ctx: IncidentContext, node: GraphNode, lines: list[LogLine]
) -> tuple[float, list[str]]:
    """How much of what the operation stopped writing this node's spans also left out.

    Each member span counts the strongest silence among the usual templates it did not
    write (templates of one code path vanish together, so they are not summed); the
    result is the mean over members.
    """
    dropped = ctx.usual_templates.get((node.span.instance, node.span.operation), [])
    # templates the instance stopped writing without trace ids: no span can be shown to
    # have written them, so every member counts as silent, at `UNLINKED_SHARE`
    dropped = dropped + [
        (template, strength * UNLINKED_SHARE)
        for template, strength in ctx.usual_templates.get((node.span.instance, ANY_OPERATION), [])
    ]
    if not dropped:
        return 0.0, []
    written: dict[str, set[str]] = {}
    for line in lines:
        written.setdefault(line.span_id, set()).add(line.template)
    missing = 0.0
    silent: set[str] = set()
    for member in node.members:
        have = written.get(member, set())
        gone = [(template, strength) for template, strength in dropped if template not in have]
        missing += max((strength for _, strength in gone), default=0.0)
        silent.update(template for template, _ in gone)
    return min(1.0, missing / node.count), sorted(silent)


@dataclass(frozen=True, slots=True)
class MetricFindings:
    shifts: tuple[MetricShift, ...]
    evidence: tuple[str, ...]

    @property
    def top(self) -> MetricShift | None:
        return self.shifts[0] if self.shifts else None


def instance_metrics(ctx: IncidentContext, ledger: EvidenceLedger, instance: str) -> MetricFindings:
    """Series of `instance` that rose beyond their baseline, strongest first."""
    return _metric_findings(ledger, ctx.instance_metrics.get(instance, []), instance)


def node_metrics(ctx: IncidentContext, ledger: EvidenceLedger, instance: str) -> MetricFindings:
    """Series of the node hosting `instance` that rose beyond their baseline."""
    node = ctx.instance_node.get(instance, "")
    return _metric_findings(ledger, ctx.node_metrics.get(node, []) if node else [], node)


def _metric_findings(
    ledger: EvidenceLedger, shifts: list[MetricShift], where: str
) -> MetricFindings:
    kept = tuple(s for s in shifts if s.score >= METRIC_THRESHOLD)[:5]
    evidence = tuple(
        ledger.add(
            f"metric:{where}:{s.name}",
            "metric_shift",
            f"{s.name} on {where}: {s.value:.4g} against a normal {s.normal:.4g} "
            f"({s.score:.1f} spreads)",
            table="metrics",
            keys={"instance": s.instance, "node": s.node, "name": s.name},
            tool="instance_metrics" if s.instance else "node_metrics",
            value=s.score,
        )
        for s in kept
    )
    return MetricFindings(shifts=kept, evidence=evidence)
