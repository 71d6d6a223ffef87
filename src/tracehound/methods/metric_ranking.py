"""From scored metric series to a `Ranking`: shared by the metric baselines (nsigma, baro).

BARO and RCAEval rank metric columns ``<service>_<metric>`` and turn that list into a
service ranking by keeping each service's first occurrence (``to_service_ranks``). Our
series are keyed by (service, instance, node, name), so the same first-occurrence rule
gives a service ranking and, for series that carry an instance, an instance ranking.
Series without a service (node-level metrics) are ranked but name no candidate.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tracehound.model import Candidate, CandidateKind, Ranking

FloatArray = npt.NDArray[np.float64]

#: Fault type named by the top metric, by case-insensitive pattern on its name; first wins.
_FAULT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cpu", re.compile(r"cpu", re.IGNORECASE)),
    ("memory", re.compile(r"mem", re.IGNORECASE)),
    (
        "latency",
        re.compile(r"latenc|(^|[^a-z])lat([^a-z]|$)|duration|delay|response.?time", re.I),
    ),
    ("error", re.compile(r"error|fail|success", re.IGNORECASE)),
    ("network", re.compile(r"network|net_|receive|transmit|packet|loss", re.IGNORECASE)),
    (
        "disk",
        re.compile(
            r"disk|blkio|iops|(^|[^a-z])fs([^a-z]|$)|(^|[^a-z])io([^a-z]|$)"
            r"|(^|[^a-z])io[-_.]?(read|write|wait|time)",
            re.IGNORECASE,
        ),
    ),
)
#: Kinds of series that measure a component's own resources: their rise is a cause (a hog,
#: a leak), where latency, error and network series show symptoms that travel along calls.
RESOURCE_KINDS = ("cpu", "memory", "disk")


@dataclass(frozen=True)
class SeriesScores:
    """One score per metric series, with what the reason text needs.

    `extreme` is the incident value that gave the score, `center` the normal level it is
    compared with, `scale` the normal spread, and `unit` names that spread ("IQRs").
    """

    service: list[str]
    instance: list[str]
    node: list[str]
    name: list[str]
    score: FloatArray
    extreme: FloatArray
    center: FloatArray
    scale: FloatArray
    unit: str

    def __len__(self) -> int:
        return len(self.name)


@functools.lru_cache(maxsize=4096)
def fault_type_of(metric: str) -> str | None:
    """The fault type a metric's name points at (cpu, memory, latency, error, network,
    disk: ``container_fs_writes_bytes_total``, ``node_disk_io_time_seconds_total``).

    Cached: a system has few metric names and each is asked about once per series."""
    for fault, pattern in _FAULT_PATTERNS:
        if pattern.search(metric):
            return fault
    return None


def series_order(series: SeriesScores) -> npt.NDArray[np.intp]:
    """Indices of the series by descending score, ties broken by key (deterministic)."""
    keys = (series.name, series.node, series.instance, series.service)
    ranks = [np.unique(np.asarray(k, dtype=object), return_inverse=True)[1] for k in keys]
    order: npt.NDArray[np.intp] = np.lexsort((*ranks, -series.score))
    return order


def _reason(series: SeriesScores, i: int) -> str:
    where = series.instance[i] or series.service[i] or series.node[i]
    direction = "above" if series.extreme[i] >= series.center[i] else "below"
    return (
        f"{series.name[i]} on {where}: {series.extreme[i]:.4g} against a normal "
        f"{series.center[i]:.4g}, {abs(float(series.score[i])):.1f} {series.unit} {direction} "
        f"normal (spread {series.scale[i]:.3g})"
    )


def _candidates(
    kind: CandidateKind, names: list[str], series: SeriesScores, order: npt.NDArray[np.intp]
) -> list[Candidate]:
    seen: set[str] = set()
    candidates = []
    for i in order.tolist():
        name = names[i]
        if not name or name in seen:
            continue
        seen.add(name)
        candidates.append(
            Candidate(kind=kind, name=name, score=float(series.score[i]), reason=_reason(series, i))
        )
    return candidates


def ranking_from_series(series: SeriesScores) -> Ranking:
    """Services and instances by their best series (first occurrence), best first.

    The loop runs over series in ranked order, not over telemetry rows. Equal scores keep
    the series order, which breaks ties by key.
    """
    if len(series) == 0:
        return Ranking()
    order = series_order(series)
    services = _candidates("service", series.service, series, order)
    instances = _candidates("instance", series.instance, series, order)
    top = int(order[0])
    return Ranking(
        services=services, instances=instances, fault_type=fault_type_of(series.name[top])
    )


def finite_scores(scores: FloatArray) -> FloatArray:
    """Scores with NaN as 0 and infinities clipped to the largest finite float.

    Both methods floor their spreads, so this only guards against overflow.
    """
    cleaned: FloatArray = np.nan_to_num(scores, nan=0.0, posinf=np.finfo(np.float64).max)
    cleaned = np.maximum(cleaned, -np.finfo(np.float64).max)
    return cleaned
