"""Benchmark metrics (ARCHITECTURE §10), pure functions over case results.

AC@k is the share of labelled cases whose true root cause is among the top k of the
ranking; Avg@5 is the mean of AC@1..AC@5; MRR is the mean of 1/rank, 0 when the true root
cause is not ranked. These are the metrics of RCAEval (Pham et al., WWW 2025) and BARO
(Pham et al., FSE 2024). Every level counts only cases labelled at that level; a case that
raised, or whose method predicted nothing at that level, counts as a miss.

The span level scores agent runs (Who&When, Zhang et al., ICML 2025): the service is the
agent and the span the step, so service AC@1 is the paper's agent-level accuracy and span
AC@1 its step-level accuracy, scored separately as the paper does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby

import numpy as np

from tracehound.bench.case import CaseResult

#: The cut-offs AC@k is computed for; Avg@5 averages all of them.
TOP_K = (1, 2, 3, 4, 5)
#: Group name for cases without a fault-type or system label.
UNLABELLED = "unlabelled"

#: The classes fault types are scored in: the issue's six (latency and network are one
#: class, as an engine can only tell them apart by where the time sits), each with the
#: names benchmark datasets commonly give it. Scoring only; no method reads this.
FAULT_CLASSES: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu", "cpu_contention", "cpu_consumed", "cpu_hog", "cpu_stress"),
    "memory": ("memory", "mem", "memory_leak", "mem_leak", "memory_stress", "oom"),
    "latency/network": (
        "latency",
        "delay",
        "network",
        "network_delay",
        "net_delay",
        "loss",
        "packet_loss",
        "network_loss",
    ),
    "error": ("error", "exception", "http_error", "abort"),
    "wrong_return": ("wrong_return", "return", "return_value", "wrong_value"),
    "unavailable": ("unavailable", "kill", "pod_kill", "pod_failure", "crash", "down"),
}
_FAULT_CLASS = {name: cls for cls, names in FAULT_CLASSES.items() for name in names}


def fault_class(name: str | None) -> str | None:
    """The scoring class of a fault-type name (`FAULT_CLASSES`; case, spaces and hyphens
    ignored), or None for a name outside them (a disk fault, a code-level fault)."""
    if not name:
        return None
    return _FAULT_CLASS.get(name.strip().lower().replace("-", "_").replace(" ", "_"))


@dataclass(frozen=True)
class LevelScores:
    """Accuracy at one level (service or instance) over `n` labelled cases.

    `ac[k - 1]` is AC@k for k in `TOP_K`. With no labelled case every score is None.
    """

    n: int
    ac: tuple[float, ...] = ()
    mrr: float | None = None

    def ac_at(self, k: int) -> float | None:
        """AC@k, or None when no case is labelled at this level."""
        if k not in TOP_K:
            raise ValueError(f"AC@{k} is not computed; k must be one of {TOP_K}")
        return self.ac[k - 1] if self.n else None

    @property
    def avg5(self) -> float | None:
        """Avg@5: the mean of AC@1..AC@5."""
        return float(np.mean(self.ac)) if self.n else None


@dataclass(frozen=True)
class TypeScores:
    """Fault-type accuracy over the `n` cases whose labelled type has a scoring class
    (`fault_class`): the share whose predicted type is in the same class. A case that
    raised or predicted no type is a miss. None when `n` is 0."""

    n: int
    accuracy: float | None = None


@dataclass(frozen=True)
class GroupScores:
    """Service-, instance- and span-level scores of a group of cases (`n` cases in all),
    and its fault-type accuracy."""

    n: int
    service: LevelScores
    instance: LevelScores
    span: LevelScores = LevelScores(n=0)
    fault_type: TypeScores = TypeScores(n=0)


@dataclass(frozen=True)
class Spread:
    """Median and maximum of a set of measurements; None when there are none."""

    median: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class MethodSummary:
    """Everything `tracehound bench` reports for one method on one dataset."""

    method: str
    dataset: str
    overall: GroupScores
    #: With (True) or without (False) the runs' reference answer; None: not applicable.
    ground_truth: bool | None = None
    by_fault_type: dict[str, GroupScores] = field(default_factory=dict)
    by_system: dict[str, GroupScores] = field(default_factory=dict)
    time_s: Spread = Spread()
    load_time_s: Spread = Spread()
    peak_rss_mb: float | None = None
    #: (incident id, error message) of every case that raised, in incident order.
    errors: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """The method's name for tables and charts, with its ground-truth setting."""
        return self.method + ground_truth_suffix(self.ground_truth)


def ground_truth_suffix(setting: bool | None) -> str:
    """`` (with GT)``, `` (without GT)`` or nothing."""
    if setting is None:
        return ""
    return " (with GT)" if setting else " (without GT)"


def level_scores(ranks: Sequence[int | None]) -> LevelScores:
    """Scores of labelled cases from their 1-based ranks (None: the truth was not ranked)."""
    if not ranks:
        return LevelScores(n=0)
    if any(r is not None and r < 1 for r in ranks):
        raise ValueError("ranks are 1-based; got a rank below 1")
    position = np.array([0 if r is None else r for r in ranks], dtype=np.int64)
    ranked = position >= 1
    cutoffs = np.array(TOP_K, dtype=np.int64)
    hits = ranked[:, None] & (position[:, None] <= cutoffs[None, :])
    reciprocal = np.divide(1.0, position, out=np.zeros(len(position)), where=ranked)
    return LevelScores(
        n=len(ranks),
        ac=tuple(float(v) for v in hits.mean(axis=0)),
        mrr=float(reciprocal.mean()),
    )


def service_ranks(cases: Iterable[CaseResult]) -> list[int | None]:
    """The service rank of every case labelled with a service; a case that raised is a miss."""
    return [
        None if case.error is not None else case.service_rank
        for case in cases
        if case.labels.service is not None
    ]


def instance_ranks(cases: Iterable[CaseResult]) -> list[int | None]:
    """The instance rank of every case labelled with an instance; errors are misses."""
    return [
        None if case.error is not None else case.instance_rank
        for case in cases
        if case.labels.instance is not None
    ]


def span_ranks(cases: Iterable[CaseResult]) -> list[int | None]:
    """The span (step) rank of every case labelled with a span; errors are misses."""
    return [
        None if case.error is not None else case.span_rank
        for case in cases
        if case.labels.span is not None
    ]


def type_scores(cases: Iterable[CaseResult]) -> TypeScores:
    """Fault-type accuracy of the cases whose labelled type has a scoring class."""
    hits = [
        case.error is None and fault_class(case.predicted_fault_type) == truth
        for case in cases
        if (truth := fault_class(case.labels.fault_type)) is not None
    ]
    if not hits:
        return TypeScores(n=0)
    return TypeScores(n=len(hits), accuracy=sum(hits) / len(hits))


def group_scores(cases: Sequence[CaseResult]) -> GroupScores:
    """Service-, instance- and span-level scores and fault-type accuracy of `cases`."""
    return GroupScores(
        n=len(cases),
        service=level_scores(service_ranks(cases)),
        instance=level_scores(instance_ranks(cases)),
        span=level_scores(span_ranks(cases)),
        fault_type=type_scores(cases),
    )


def scores_by(
    cases: Sequence[CaseResult], key: Callable[[CaseResult], str | None]
) -> dict[str, GroupScores]:
    """Scores of each group of `cases` sharing `key`, groups sorted by name."""
    groups: dict[str, list[CaseResult]] = {}
    for case in cases:
        groups.setdefault(key(case) or UNLABELLED, []).append(case)
    return {name: group_scores(groups[name]) for name in sorted(groups)}


def spread(values: Iterable[float | None]) -> Spread:
    """Median and maximum of the values that are not None."""
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    if not present.size:
        return Spread()
    return Spread(median=float(np.median(present)), max=float(present.max()))


def summarize_method(cases: Sequence[CaseResult]) -> MethodSummary:
    """The summary of one method's cases on one dataset."""
    if not cases:
        raise ValueError("cannot summarize an empty set of cases")
    rss = [c.peak_rss_mb for c in cases if c.peak_rss_mb is not None]
    return MethodSummary(
        method=cases[0].method,
        dataset=cases[0].dataset,
        ground_truth=cases[0].ground_truth,
        overall=group_scores(cases),
        by_fault_type=scores_by(cases, lambda c: c.labels.fault_type),
        by_system=scores_by(cases, lambda c: c.system),
        time_s=spread(c.localize_seconds for c in cases),
        load_time_s=spread(c.load_seconds for c in cases),
        peak_rss_mb=max(rss) if rss else None,
        errors=tuple((c.incident, c.error) for c in cases if c.error is not None),
    )


def ground_truth_order(setting: bool | None) -> int:
    """Sort key of a ground-truth setting: not applicable, with, without."""
    return 0 if setting is None else 1 if setting else 2


def summarize(cases: Sequence[CaseResult]) -> list[MethodSummary]:
    """One summary per (method, dataset, ground-truth setting), sorted by method, dataset,
    then setting (with before without)."""

    def key(case: CaseResult) -> tuple[str, str, int]:
        return (case.method, case.dataset, ground_truth_order(case.ground_truth))

    ordered = sorted(cases, key=lambda c: (*key(c), c.incident))
    return [summarize_method(list(group)) for _, group in groupby(ordered, key=key)]
