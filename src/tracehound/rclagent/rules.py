"""The rule reasoner: the deterministic, offline default behind the agents (§4.2, §4.3).

Rules, each with a named weight in `RuleWeights` (strengths are in [0, 1], saturating in
natural units: ``x / (x + half)`` with halves in ms or robust spreads):

Phase 1 (`verify`), per span, from its tools:
  - *error logs* (`error_logs`): novel warning/error lines linked to the span (strong);
    *error status* without such lines (`error_status`). Lines that report a crash (an
    exception class, a stack frame, "exception": `tools.CRASH_PATTERN`) make the fault
    type *error*; lines that only complain about a value (a record not found, a wrong
    code) make it *wrong_return*: the component carried on with a wrong value;
  - *silence* (`silence`): the info templates this operation writes in most baseline
    spans went missing (an exception short-circuited the code);
  - *self-time* (`self_time`): unexplained self-time beyond the operation baseline is the
    span's own; a client span's self-time is edge time, not its own;
  - *resource shift* (`metric_shift`): cpu, memory and disk series of the instance (or,
    at half weight, of its node) beyond baseline; latency and error-rate series are
    symptoms and are not counted;
  - *edge delay* (`edge_delay`): the client-minus-server time of the call into the span
    beyond its baseline; it is split between the two instances of the edge, by how many
    of the caller's other calls and of the callee's other incoming calls were slow too
    (incident-wide), and summed over edges, so the instance that slow edges share
    collects it;
  - *latency only* (`latency_only`): a slow span with nothing else is a victim (weak);
    not a client span whose call into its callee is slow on the edge (that time is the
    edge's, split by the edge rule).

Phase 2 (`consolidate`), bottom-up, blame moves to the deepest span with strong
evidence:
  - an error at a span whose subtree already shows an error is propagated: it keeps only
    `propagated` of its weight;
  - an error that *first* appears at a span is moved (`redirect` of its weight) to the
    component its error lines name (for a failed span whose error lines are no news, a
    callee it reached that they name: `tools.LogFindings.status_mentions`), or, for a
    failed call that reached nothing, to the
    service the call usually reaches (unavailable), or to a child whose own logs went
    silent (the callee returned a wrong value or threw without logging);
  - otherwise the error is the span's own.
  Each suspect keeps its strongest span evidence; edge evidence is summed.

Synthesis (`synthesize`): per request, each suspect's blame plus its edge share, divided
by the request's best or `vote_floor`, whichever is larger (a vote in [0, 1]); votes
(`vote`) and `absolute` times the raw blame (so stronger evidence breaks ties) are
averaged over requests. Incident-wide evidence per instance is added
(`global_evidence`): novel error lines, silenced templates (at `propagated` of their
weight for the share of an instance's novel error lines that pass on a failure of a
callee it reached, `InstanceEvidence.passes_on`: what it stopped writing follows from
that failure), a vanished share of spans (`vanished`), novel error lines of other
services that name it (`named`), resource shifts; a resource shift of
`resource_explains` or more types an instance's errors, slowness or edge time by its
resource. No rule names a service, operation or dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracehound.methods.metric_ranking import RESOURCE_KINDS, fault_type_of
from tracehound.model import Finding, Report
from tracehound.rclagent.context import IncidentContext
from tracehound.rclagent.reasoner import (
    Blame,
    LocalReport,
    Signals,
    SpanContext,
    SpanFinding,
    SuspectScore,
    Toolbox,
)
from tracehound.rclagent.tools import MetricFindings


@dataclass(frozen=True)
class RuleWeights:
    """Named weights and natural-unit scales of the rules (see module docstring)."""

    error_logs: float = 1.0
    error_status: float = 0.6
    propagated: float = 0.15
    redirect: float = 1.1
    silence: float = 0.8
    silence_min: float = 0.3
    self_time: float = 0.6
    metric_shift: float = 0.7
    edge_delay: float = 0.6
    latency_only: float = 0.1
    vote: float = 1.0
    #: a request's votes are its blames divided by its best blame, but by at least this:
    #: a request whose strongest evidence is weak (a slow span, nothing else) casts a
    #: weak vote rather than a full one
    vote_floor: float = 0.5
    absolute: float = 0.2
    global_evidence: float = 1.0
    vanished: float = 1.0
    #: incident-wide: novel error lines of other services name the instance or service
    named: float = 0.5
    #: an instance's resource shift this strong names the fault type of its errors/slowness
    resource_explains: float = 0.15
    self_half_ms: float = 50.0
    edge_half_ms: float = 50.0
    latency_half_ms: float = 100.0
    metric_half: float = 10.0


def saturate(value: float, half: float) -> float:
    """`value / (value + half)` for positive values, else 0: strength in [0, 1)."""
    return value / (value + half) if value > 0 else 0.0


def _key(service: str, instance: str) -> str:
    return instance or f"service:{service}"


class RuleReasoner:
    """The deterministic reasoner (see module docstring)."""

    def __init__(self, weights: RuleWeights | None = None) -> None:
        self.weights = weights or RuleWeights()

    # -- phase 1 -------------------------------------------------------------------

    def verify(self, ctx: SpanContext, tools: Toolbox) -> SpanFinding:
        """Gather the span's evidence and state what is abnormal about it."""
        node, span, w = ctx.node, ctx.node.span, self.weights
        timing = tools.span_timing(node)
        edge = tools.edge_timing(node, ctx.caller) if ctx.caller is not None else None
        logs = tools.instance_logs(node)
        resource, kind, metric_ev = _resource(
            tools.instance_metrics(span.instance), tools.node_metrics(span.instance), w
        )
        missing: tuple[str, ...] = ()
        failed = span.status == "error" or (logs is not None and logs.error_weight > 0)
        # a span without children whose operation usually calls another instance is a
        # call (by kind or by structure) that reached nothing this time
        callees: tuple[str, ...] = ()
        if not node.children:
            callees = _usual_callees(tools.ctx, span.service, span.operation)
        if failed and (node.is_client or span.kind == "client"):
            missing = callees
        self_time = saturate(timing.self_excess_ms, w.self_half_ms)
        unreached: tuple[tuple[str, float], ...] = ()
        if callees and self_time > 0:
            # a call that reached no server span spent its time on the way to the callee
            # (a slow or broken network, a callee too slow to accept): edge time, not the
            # caller's own work
            unreached = _unreached_split(tools.ctx, span.instance, callees)
            self_time = 0.0
        signals = Signals(
            error=min(1.0, logs.error_weight) if logs else 0.0,
            status_error=span.status == "error",
            crashed=logs.crashed if logs else False,
            silence=logs.silence if logs and logs.silence >= w.silence_min else 0.0,
            self_time=self_time,
            unreached=saturate(timing.self_excess_ms, w.edge_half_ms) if unreached else 0.0,
            unreached_split=unreached,
            latency=saturate(timing.latency_excess_ms, w.latency_half_ms),
            edge=saturate(edge.excess_ms, w.edge_half_ms) if edge else 0.0,
            edge_callee_share=edge.callee_share if edge else 0.5,
            resource=resource,
            resource_kind=kind,
            mentions=_resolve(tools.ctx, logs.mentions) if logs else (),
            status_mentions=_resolve(tools.ctx, logs.status_mentions) if logs else (),
            missing_callee=missing,
            is_client=node.is_client,
            has_children=bool(node.children),
            evidence={
                "timing": (timing.evidence,),
                "edge": (edge.evidence,) if edge and edge.excess_ms > 0 else (),
                "logs": logs.evidence if logs else (),
                "status_logs": logs.status_evidence if logs else (),
                "metrics": metric_ev,
            },
        )
        return SpanFinding(
            key=node.key,
            node=node,
            caller=ctx.caller,
            finding=_finding(node.key, span.service, span.instance, signals, timing.self_excess_ms),
            signals=signals,
        )

    # -- phase 2 -------------------------------------------------------------------

    def consolidate(self, finding: SpanFinding, child_reports: list[LocalReport]) -> LocalReport:
        """Merge the span's own finding with its children's reports (see module doc)."""
        w, s, span = self.weights, finding.signals, finding.node.span
        blame: dict[str, Blame] = {}
        edges: dict[str, float] = {}
        edge_ev: dict[str, tuple[str, ...]] = {}
        for child in child_reports:
            for key, item in child.blame.items():
                if key not in blame or item.score > blame[key].score:
                    blame[key] = item
            for key, value in child.edge_blame.items():
                edges[key] = edges.get(key, 0.0) + value
                edge_ev[key] = edge_ev.get(key, ()) + child.edge_evidence.get(key, ())
        if s.unreached > 0:
            ev = s.evidence.get("timing", ())
            for inst, part in s.unreached_split:
                edges[inst] = edges.get(inst, 0.0) + part * w.edge_delay * s.unreached
                edge_ev[inst] = edge_ev.get(inst, ()) + ev
        if s.edge > 0 and finding.caller is not None:
            ev = s.evidence.get("edge", ())
            sides = (
                (finding.caller.instance, 1.0 - s.edge_callee_share),
                (span.instance, s.edge_callee_share),
            )
            for inst, part in sides:
                edges[inst] = edges.get(inst, 0.0) + part * w.edge_delay * s.edge
                edge_ev[inst] = edge_ev.get(inst, ()) + ev
        below_error = any(c.error_chain for c in child_reports)
        error = w.error_logs * s.error + (w.error_status if s.status_error and not s.error else 0)
        targets = self._redirect(finding, child_reports, error) if error and not below_error else []
        # a client span made slow by the edge into its callee carries edge time: the
        # edge rule splits it between the two instances, so the caller is no victim
        carried = s.is_client and any(c.signals.edge > 0 for c in child_reports)
        own = self._own(finding, error, below_error, redirected=bool(targets), edge_carried=carried)
        for target in targets:
            key = _key(target.service, target.instance)
            if key not in blame or target.score > blame[key].score:
                blame[key] = target
        own_key = _key(span.service, span.instance)
        if own is not None and (own_key not in blame or own.score > blame[own_key].score):
            blame[own_key] = own
        top = max(blame.values(), key=lambda b: (b.score, b.span_key), default=None)
        total = sum(b.score for b in blame.values()) or 1.0
        report = Report(
            span_id=span.span_id,
            root_cause=_key(top.service, top.instance) if top else None,
            confidence=min(1.0, top.score / total) if top else 0.0,
            fault_type=top.fault_type if top else None,
            evidence=list(top.evidence) if top else [],
            summary=top.note if top else "nothing abnormal below this span",
        )
        silent: dict[str, tuple[str, str, str, float]] = {}
        for child in child_reports:
            for instance, entry in child.silent.items():
                if instance not in silent or entry[3] > silent[instance][3]:
                    silent[instance] = entry
        if s.silence > 0 and s.silence > silent.get(span.instance, ("", "", "", 0.0))[3]:
            silent[span.instance] = (span.service, span.instance, finding.key, s.silence)
        reach = {span.instance: (span.service, span.instance, finding.key)}
        reach.setdefault(span.service, (span.service, span.instance, finding.key))
        for child in child_reports:
            for name, nearest in child.reach.items():
                reach.setdefault(name, nearest)
        return LocalReport(
            key=finding.key,
            reach=reach,
            silent=silent,
            report=report,
            signals=s,
            service=span.service,
            instance=span.instance,
            blame=blame,
            edge_blame=edges,
            edge_evidence=edge_ev,
            error_chain=below_error or error > 0,
        )

    def _own(
        self,
        finding: SpanFinding,
        error: float,
        below_error: bool,
        *,
        redirected: bool,
        edge_carried: bool = False,
    ) -> Blame | None:
        """The blame the span's own evidence puts on its own instance."""
        w, s, span = self.weights, finding.signals, finding.node.span
        parts: list[tuple[float, str, str]] = []
        if error > 0:
            factor = w.propagated if below_error else 1.0
            note = "error propagated from a callee" if below_error else "errors start here"
            if redirected:
                factor, note = w.propagated, "reports an error caused by a callee"
            # error lines that complain about a value without any crash: the component
            # went on with a wrong value (wrong return); a crash or a bare status: error
            kind = "wrong_return" if s.error and not s.crashed else "error"
            parts.append((error * factor, kind, note))
        if s.silence > 0:
            # lines cut short by an error that came from below, or that this span's own
            # error lines blame on a callee, are part of that error, not a cause
            factor = w.propagated if below_error or redirected else 1.0
            parts.append((w.silence * s.silence * factor, "error", "usual log lines went silent"))
        performance = w.self_time * s.self_time + w.metric_shift * s.resource
        if performance > 0:
            slow = (s.resource_kind if s.resource > 0 else None) or "latency"
            parts.append((performance, slow, "own self-time / resources grew"))
        if not parts and s.latency > 0 and not edge_carried:
            parts.append((w.latency_only * s.latency, "latency", "slow, nothing else (victim)"))
        if not parts:
            return None
        score = sum(p[0] for p in parts)
        _, fault, note = max(parts)
        evidence = tuple(e for group in finding.signals.evidence.values() for e in group)
        return Blame(
            service=span.service,
            instance=span.instance,
            score=score,
            fault_type=fault,
            note=f"{span.instance or span.service} {span.operation}: {note}",
            span_key=finding.key,
            evidence=evidence,
        )

    def _redirect(
        self, finding: SpanFinding, children: list[LocalReport], error: float
    ) -> list[Blame]:
        """Where an error that first appears here points below (see module docstring)."""
        w, s, span = self.weights, finding.signals, finding.node.span
        logs_ev = s.evidence.get("logs", ())
        score = error * w.redirect
        by_instance: dict[str, tuple[str, str, str]] = {}
        by_service: dict[str, tuple[str, str, str]] = {}
        for c in children:
            for name, target in c.reach.items():
                table = by_instance if name == target[1] else by_service
                table.setdefault(name, target)
        chains = {c.key: c.error_chain for c in children}
        out: list[Blame] = []
        for service, instance in s.mentions:
            reached = by_instance.get(instance) if instance else by_service.get(service)
            name = instance or service
            if reached is not None:
                r_service, r_instance, r_key = reached
                fault = "error" if chains.get(r_key) else "wrong_return"
                note = f"{span.instance} errors naming its callee {name}"
                out.append(_blame(r_service, r_instance, score, fault, note, r_key, logs_ev))
            else:
                note = f"{span.instance} errors naming {name}, which it did not reach"
                out.append(
                    _blame(service, instance, score, "unavailable", note, finding.key, logs_ev)
                )
        if not out:
            # a failed span whose error lines are no news still names where it failed;
            # only a callee it reached is taken (one it did not reach is left to the
            # call's structure, `missing_callee`)
            status_ev = s.evidence.get("status_logs", ())
            for service, instance in s.status_mentions:
                reached = by_instance.get(instance) if instance else by_service.get(service)
                if reached is not None:
                    r_service, r_instance, r_key = reached
                    fault = "error" if chains.get(r_key) else "wrong_return"
                    note = f"{span.instance} errors naming its callee {instance or service}"
                    out.append(_blame(r_service, r_instance, score, fault, note, r_key, status_ev))
        if not out:
            for service in s.missing_callee:
                note = f"call from {span.instance} failed without reaching {service}"
                out.append(_blame(service, "", score, "unavailable", note, finding.key, logs_ev))
        if not out:
            silent: dict[str, tuple[str, str, str, float]] = {}
            for child in children:
                for instance, entry in child.silent.items():
                    if instance not in silent or entry[3] > silent[instance][3]:
                        silent[instance] = entry
            for service, instance, key, quiet in silent.values():
                if instance == span.instance:
                    continue
                note = f"{span.instance} fails after {instance} below it went silent"
                strength = score + w.silence * quiet
                out.append(_blame(service, instance, strength, "wrong_return", note, key, logs_ev))
        return out

    # -- synthesis -----------------------------------------------------------------

    def synthesize(
        self, root_reports: list[tuple[str, LocalReport]], ctx: IncidentContext
    ) -> list[SuspectScore]:
        """Votes across requests into one score per suspect (see module docstring)."""
        w = self.weights
        votes: dict[str, float] = {}
        raw: dict[str, float] = {}
        best: dict[str, tuple[float, Blame | None, str, str]] = {}
        for trace_id, report in root_reports:
            combined: dict[str, tuple[float, Blame | None]] = {}
            for key, blamed in report.blame.items():
                key = _instance_key(key, ctx)
                if key not in combined or blamed.score > combined[key][0]:
                    combined[key] = (blamed.score, blamed)
            for key, value in report.edge_blame.items():
                key = _instance_key(key, ctx)
                edge = min(w.edge_delay, value)
                before, blamed_or_none = combined.get(key, (0.0, None))
                combined[key] = (before + edge, blamed_or_none)
            top = max((v[0] for v in combined.values()), default=0.0)
            if top <= 0:
                continue
            for key, (score, entry) in combined.items():
                votes[key] = votes.get(key, 0.0) + score / max(top, w.vote_floor)
                raw[key] = raw.get(key, 0.0) + score
                edge = min(w.edge_delay, report.edge_blame.get(key, 0.0))
                if key not in best or score > best[key][0]:
                    best[key] = (score, entry, trace_id, _edge_note(edge))
        for instance in ctx.instance_evidence:
            votes.setdefault(instance, 0.0)
            raw.setdefault(instance, 0.0)
            best.setdefault(instance, (0.0, None, "", ""))
        requests = max(1, len(root_reports))
        out = []
        for key, vote in votes.items():
            score, item, trace_id, edge_note = best[key]
            service, instance = _identify(key, item, ctx)
            fault = (
                "network"
                if edge_note and (item is None or item.score < score / 2)
                else (item.fault_type if item else "network")
            )
            found = ctx.instance_evidence.get(key)
            glob = 0.0
            if found is not None:
                # an instance whose error lines blame a callee it reached passed that
                # failure on: the lines it stopped writing follow from it, as at a span
                # whose errors are redirected (`_own`); callers naming it still count in
                # full (a network fault at it fails its calls and its callers' alike)
                relayed = 1.0 - found.passes_on * (1.0 - w.propagated)
                glob = w.global_evidence * (
                    w.error_logs * found.errors
                    + w.silence * found.silence * relayed
                    + w.vanished * found.vanished
                    + w.named * found.named
                    + w.metric_shift * found.resource
                )
                if (
                    found.resource_kind
                    and found.resource >= w.resource_explains
                    and fault in ("error", "latency", "network")
                ):
                    # errors or slowness from resource exhaustion; a saturated CPU also
                    # delays accepting calls, which shows as time on the edges into it
                    fault = found.resource_kind
                if item is None and not edge_note:
                    fault = found.resource_kind or (
                        "unavailable"
                        if found.vanished
                        else "error"
                        if found.errors
                        else "wrong_return"
                    )
            notes = (item.note if item else "", edge_note, found.note if found else "")
            reason = "; ".join(p for p in notes if p)
            out.append(
                SuspectScore(
                    service=service,
                    instance=instance,
                    score=(w.vote * vote + w.absolute * raw[key]) / requests + glob,
                    fault_type=fault,
                    reason=f"{vote:.2f} of {requests} request vote(s): {reason}",
                    evidence=item.evidence if item else (),
                    span_key=item.span_key if item else None,
                    trace_id=trace_id or None,
                )
            )
        return out


def _edge_note(edge: float) -> str:
    return f"endpoint of slow calls (edge weight {edge:.2f})" if edge > 0 else ""


#: How completely an instance must have stopped serving (`InstanceEvidence.vanished`) for
#: a call that failed without reaching its service to be counted against that instance.
UNREACHABLE_VANISHED = 0.9


def _instance_key(key: str, ctx: IncidentContext) -> str:
    """The instance a service-level blame key (a call that failed without reaching its
    callee) stands for, when the data says so: the one instance of that service that
    stopped serving almost entirely (`UNREACHABLE_VANISHED`). A request's blame and the
    incident-wide evidence of that instance (its vanishing, its callers' errors naming
    it) then add up instead of competing as two suspects. Otherwise the key as it is: a
    callee that still served most calls was reachable, and the failed call may be its
    caller's doing."""
    if not key.startswith("service:"):
        return key
    service = key.removeprefix("service:")
    gone = [
        i
        for i, s in sorted(ctx.instance_service.items())
        if s == service
        and (found := ctx.instance_evidence.get(i)) is not None
        and found.vanished >= UNREACHABLE_VANISHED
    ]
    return gone[0] if len(gone) == 1 else key


def _identify(key: str, item: Blame | None, ctx: IncidentContext) -> tuple[str, str]:
    """(service, instance) of a blame key."""
    if key.startswith("service:"):
        return key.removeprefix("service:"), ""
    if item is not None and item.instance == key:
        return item.service, key
    return ctx.instance_service.get(key, item.service if item else key), key


def _blame(
    service: str,
    instance: str,
    score: float,
    fault: str,
    note: str,
    span_key: str,
    evidence: tuple[str, ...],
) -> Blame:
    return Blame(
        service=service,
        instance=instance,
        score=score,
        fault_type=fault,
        note=note,
        span_key=span_key,
        evidence=evidence,
    )


def _resource(
    instance: MetricFindings | None, node: MetricFindings | None, w: RuleWeights
) -> tuple[float, str | None, tuple[str, ...]]:
    """Strength and kind (`RESOURCE_KINDS`: cpu, memory, disk) of the strongest resource
    shift, with evidence."""
    best: tuple[float, str | None, tuple[str, ...]] = (0.0, None, ())
    for findings, factor in ((instance, 1.0), (node, 0.5)):
        if findings is None:
            continue
        for shift, evidence in zip(findings.shifts, findings.evidence, strict=True):
            kind = fault_type_of(shift.name)
            if kind in RESOURCE_KINDS:
                strength = factor * saturate(shift.score, w.metric_half)
                if strength > best[0]:
                    best = (strength, kind, (evidence,))
    return best


def _resolve(ctx: IncidentContext, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Mentioned names as (service, instance) pairs; instance empty for a service name."""
    return tuple(
        (ctx.instance_service[n], n) if n in ctx.instance_service else (n, "") for n in names
    )


def _unreached_split(
    ctx: IncidentContext, caller: str, callees: tuple[str, ...]
) -> tuple[tuple[str, float], ...]:
    """How the time of a call that reached no server span is shared: between the caller's
    instance and each usual callee (its one instance, else its service), by their
    incident-wide shares of slow outgoing and incoming calls (`facts._edge_sides`), evenly
    when neither shows any."""
    out_share = ctx.edge_side(caller)[0]
    parts: list[tuple[str, float]] = []
    callee_total = 0.0
    for service in callees:
        instances = [i for i, s in ctx.instance_service.items() if s == service]
        key = instances[0] if len(instances) == 1 else f"service:{service}"
        in_share = max((ctx.edge_side(i)[1] for i in instances), default=0.5)
        share = in_share / (in_share + out_share) if in_share + out_share > 0 else 0.5
        part = share / len(callees)
        parts.append((key, part))
        callee_total += part
    return ((caller, 1.0 - callee_total), *parts)


def _usual_callees(ctx: IncidentContext, service: str, operation: str) -> tuple[str, ...]:
    """Services the (service, operation) call reaches in the baseline."""
    return ctx.usual_callees().get((service, operation), ())


def _finding(key: str, service: str, instance: str, s: Signals, self_excess: float) -> Finding:
    """The typed finding: abnormal?, error logs?, metric anomaly?, symptoms, hypothesis."""
    symptoms = []
    if s.error:
        symptoms.append(f"novel error logs (strength {s.error:.2f})")
    if s.status_error:
        symptoms.append("error status")
    if s.silence:
        symptoms.append(f"{s.silence:.0%} of its usual log lines missing")
    if s.self_time:
        symptoms.append(f"self-time {self_excess:.0f} ms above baseline")
    if s.resource:
        symptoms.append(f"{s.resource_kind} shift (strength {s.resource:.2f})")
    if s.edge:
        symptoms.append(f"slow call into it (strength {s.edge:.2f})")
    if s.latency and not symptoms:
        symptoms.append("slower than baseline")
    if s.mentions:
        symptoms.append(f"errors name {', '.join(i or v for v, i in s.mentions)}")
    hypothesis = "nothing abnormal"
    if s.error or s.status_error:
        hypothesis = "fails; its own fault unless a callee explains the error"
    elif s.silence:
        hypothesis = "stopped writing its usual logs: code cut short here"
    elif s.self_time or s.resource:
        hypothesis = f"slow in its own work ({s.resource_kind or 'latency'})"
    elif s.edge:
        hypothesis = "calls into it are slow on the network"
    elif s.latency:
        hypothesis = "slow because of what it calls"
    evidence = [e for group in s.evidence.values() for e in group]
    return Finding(
        span_id=key,
        service=service,
        instance=instance,
        abnormal=bool(symptoms),
        error_logs=s.error > 0,
        metric_anomaly=s.resource > 0,
        symptoms=symptoms,
        hypothesis=hypothesis,
        evidence=evidence,
    )
