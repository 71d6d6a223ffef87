"""Ranking without traces: the incident's metric shifts and vanished instances (§4.2 step 5).

When a store holds no spans, no request can be followed, so the engine ranks instances by
what their own metrics did, with the statistics the traced path uses for its incident-wide
metric evidence (`facts._metric_shifts`):

- **Sustained shifts.** Each series is scored by how far its incident level (the median
  of the incident window, or of its last quarter) rose over its baseline median, in
  spreads floored in the series' own units and its peers'. A lone spike (a garbage
  collection, a cron job, a scrape of a saturated core) does not move a median, where the
  largest value of the window, which BARO's RobustScorer takes, is the spike itself: on
  simulated systems whose series spike now and then, ranking by the largest robust
  z-score put the faulty service first in 3 of 200 incidents (docs/benchmarks.md).
  Series that say what kind of fault they see (`fault_type_of`: cpu, memory, disk,
  latency, errors, network) count; traffic and unnamed series are symptoms of everything and do
  not. A series flat at zero in the baseline has no spread to count in: the largest rise
  of its metric among such series scores `FLAT_SPREADS`, and smaller ones less in
  proportion (an error rate that rose from none to 29 % outranks a caller's that rose to
  5 %). Series that show symptoms rather than causes (latency, errors, network) count
  `SYMPTOM_DISCOUNT` of their score: symptoms propagate to callers, pressure on a
  resource stays where it is. Series a node reports for all its pods alike
  (`MetricShift` in `node_metrics`) name no pod and count the same discount.
- **Vanished instances.** An instance whose series stopped reporting (a crashed or
  deleted pod) shifts nothing: it has no incident rows. Its points in the incident
  window are compared with what its baseline points and the other instances' ratio of
  incident to baseline points predict; a fall of at least `VANISHED_DROP` that chance
  does not explain (`VANISHED_ALPHA`, Bonferroni over the instances compared) scores
  `VANISHED_SPREADS` times the fall, and types the fault "unavailable".

Novel error lines add to an instance's score when logs exist: its own, and those of other
services that name it (a caller's "connection refused" names the pod that vanished; see
`facts._instance_evidence`), each a strength in [0, 1) added to the score relative to the
strongest signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracehound.methods.metric_ranking import RESOURCE_KINDS, fault_type_of
from tracehound.methods.trace_common import Scored, keep_best, ordered, to_candidates
from tracehound.model import Ranking
from tracehound.rclagent.context import (
    IncidentContext,
    MetricShift,
    rows,
)
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.facts import (
    VANISHED_ALPHA,
    VANISHED_DROP,
    metric_segments,
    poisson_cdf,
)
from tracehound.rclagent.reasoner import SuspectScore
from tracehound.store import TelemetryStore

#: Share of its score a symptom series (latency, errors, network) or a node-wide series
#: counts; resource series of one instance (`RESOURCE_KINDS`: cpu, memory, disk) count
#: fully.
SYMPTOM_DISCOUNT = 0.5
#: A culprit whose cpu rose is typed memory when its memory rose by this many spreads
#: too: a leak burns cpu (collection, allocation, paging), a cpu hog leaves memory where
#: it was (RCD Sock Shop's 25 cpu hogs moved their memory by at most 0.1 spreads, its 25
#: leaks by at least 2.5 while their cpu rose by hundreds).
MEMORY_ALONGSIDE = 1.0
#: Score, in spreads, of the largest rise of a metric among series that were flat at zero
#: in the baseline (`MetricShift.flat`); smaller rises of the same metric scale down.
FLAT_SPREADS = 10.0
#: Score, in spreads, of an instance whose metric points all stopped (scaled by the fall).
VANISHED_SPREADS = 10.0
#: Least baseline points an instance needs before its fall in points is judged.
VANISHED_MIN_POINTS = 10
#: Evidence items recorded for the strongest series (the rest only score).
LEDGER_TOP = 5


@dataclass(frozen=True, slots=True)
class Signal:
    """One reason to suspect an instance (or a service, when series carry no instance)."""

    service: str
    instance: str
    score: float
    fault_type: str
    reason: str
    evidence_id: str
    #: the score in spreads before any discount
    raw: float = 0.0


def metrics_ranking(
    store: TelemetryStore, ctx: IncidentContext, ledger: EvidenceLedger
) -> tuple[Ranking, list[SuspectScore]]:
    """Every service and instance, by their strongest signal (see module doc), and the
    suspects behind the strongest signals with the evidence each rests on."""
    signals: list[Signal] = []
    if ctx.use_metrics:
        signals += shift_signals(ctx)
        signals += vanished_signals(store, ctx)
    signals.sort(key=lambda s: (-s.score, s.instance, s.service, s.reason))
    top = signals[0].score if signals else 0.0
    fault = _fault_type(signals)
    inst: dict[str, Scored] = {}
    svc: dict[str, Scored] = {}
    suspects: list[SuspectScore] = []
    for rank, s in enumerate(signals):
        value = s.score / top if top > 0 else 0.0
        if s.instance:
            keep_best(inst, Scored(s.instance, value, s.reason))
        keep_best(svc, Scored(s.service, value, s.reason))
        if rank < LEDGER_TOP:
            ledger.add(
                s.evidence_id,
                "metric_shift" if s.fault_type != "unavailable" else "metric_silence",
                f"{s.instance or s.service}: {s.reason}",
                table="metrics",
                keys={"service": s.service, "instance": s.instance},
                tool="instance_metrics",
                value=s.score,
            )
            suspects.append(
                SuspectScore(
                    s.service,
                    s.instance,
                    value,
                    s.fault_type,
                    s.reason,
                    (s.evidence_id,),
                    None,
                    None,
                )
            )
    if ctx.use_logs:
        suspects += _add_error_logs(ctx, inst, svc, ledger)
    for instance in ctx.instances:
        keep_best(inst, Scored(instance, 0.0, "no shift"))
    for service in ctx.services:
        keep_best(svc, Scored(service, 0.0, "no shift"))
    ranking = Ranking(
        services=to_candidates("service", ordered(svc.values())),
        instances=to_candidates("instance", ordered(inst.values())),
        fault_type=fault,
    )
    return ranking, suspects


def _fault_type(signals: list[Signal]) -> str | None:
    """The strongest signal's fault type; cpu becomes memory when the same instance's
    memory rose too (`MEMORY_ALONGSIDE`)."""
    if not signals:
        return None
    top = signals[0]
    if top.fault_type == "cpu" and any(
        s.fault_type == "memory"
        and (s.instance, s.service) == (top.instance, top.service)
        and s.raw >= MEMORY_ALONGSIDE
        for s in signals
    ):
        return "memory"
    return top.fault_type


def shift_signals(ctx: IncidentContext) -> list[Signal]:
    """One signal per typed series that rose (see module doc for the discount)."""
    found: list[tuple[MetricShift, bool]] = [
        (shift, False) for shifts in ctx.instance_metrics.values() for shift in shifts
    ]
    found += [(shift, True) for shifts in ctx.node_metrics.values() for shift in shifts]
    found += [(shift, False) for shifts in ctx.service_metrics.values() for shift in shifts]
    found = [(s, node_wide) for s, node_wide in found if s.service and fault_type_of(s.name)]
    flat_top: dict[str, float] = {}
    for shift, _ in found:
        if shift.flat:
            flat_top[shift.name] = max(flat_top.get(shift.name, 0.0), shift.level - shift.normal)
    signals = []
    for shift, node_wide in found:
        fault = fault_type_of(shift.name) or ""
        symptom = node_wide or fault not in RESOURCE_KINDS
        score = shift.score
        if shift.flat:
            score = FLAT_SPREADS * (shift.level - shift.normal) / flat_top[shift.name]
        score *= SYMPTOM_DISCOUNT if symptom else 1.0
        where = shift.instance or shift.service
        signals.append(
            Signal(
                service=shift.service,
                instance=shift.instance,
                score=score,
                fault_type=fault,
                reason=(
                    f"{shift.name} up to {shift.value:.4g} against a normal {shift.normal:.4g}"
                    f" ({_spreads(shift)}{', node-wide' if node_wide else ''})"
                ),
                evidence_id=f"metric:{where}:{shift.name}",
                raw=shift.score,
            )
        )
    return signals


def _spreads(shift: MetricShift) -> str:
    return "flat before" if shift.flat else f"{shift.score:.1f} spreads"


def vanished_signals(store: TelemetryStore, ctx: IncidentContext) -> list[Signal]:
    """Instances whose metric points fell far below their peers' ratio (module doc)."""
    (b0, b1), (w0, w1) = metric_segments(store, ctx)
    counts = rows(
        store,
        """
        SELECT any_value(service) AS service, instance,
               count(*) FILTER (WHERE ts_ns >= ? AND ts_ns < ?) AS nb,
               count(*) FILTER (WHERE ts_ns >= ? AND ts_ns < ?) AS ni
        FROM metrics WHERE instance <> '' AND service <> ''
        GROUP BY instance HAVING nb >= ? ORDER BY instance
        """,
        [b0, b1, w0, w1, VANISHED_MIN_POINTS],
    )
    if len(counts) < 2:
        return []
    ratio = float(np.median([r["ni"] / r["nb"] for r in counts]))
    level = VANISHED_ALPHA / len(counts)
    signals = []
    for r in counts:
        expected = r["nb"] * ratio
        if expected <= 0:
            continue
        drop = 1.0 - r["ni"] / expected
        if drop < VANISHED_DROP or poisson_cdf(int(r["ni"]), expected) >= level:
            continue
        signals.append(
            Signal(
                service=r["service"],
                instance=r["instance"],
                score=VANISHED_SPREADS * drop,
                fault_type="unavailable",
                reason=(
                    f"reported {r['ni']} metric points where {expected:.0f} were expected "
                    f"({drop:.0%} fewer)"
                ),
                evidence_id=f"metric:{r['instance']}:vanished",
            )
        )
    return signals


def _add_error_logs(
    ctx: IncidentContext,
    inst: dict[str, Scored],
    svc: dict[str, Scored],
    ledger: EvidenceLedger,
) -> list[SuspectScore]:
    """Novel error lines, added to the score of the instance they point at (module doc);
    one suspect per such instance."""
    suspects = []
    for instance, found in sorted(ctx.instance_evidence.items()):
        bonus = 1.0 - (1.0 - found.errors) * (1.0 - found.named)
        if bonus <= 0:
            continue
        notes = [n for n in found.note.split("; ") if "error line" in n]
        old = inst.get(instance)
        reason = "; ".join([*([old.reason] if old else []), *notes])
        inst[instance] = Scored(instance, (old.score if old else 0.0) + bonus, reason)
        service = ctx.instance_service.get(instance, "")
        keep_best(svc, Scored(service, inst[instance].score, f"instance {instance}: {reason}"))
        evidence = ledger.add(
            f"logs:{instance}:novel-errors",
            "error_logs",
            f"{instance}: {'; '.join(notes)}",
            table="logs",
            keys={"instance": instance, "level": "error"},
            tool="instance_logs",
            value=bonus,
        )
        suspects.append(
            SuspectScore(
                service, instance, inst[instance].score, "error", reason, (evidence,), None, None
            )
        )
    return suspects
