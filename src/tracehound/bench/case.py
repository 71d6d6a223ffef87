"""One benchmark case: a method on one incident, run where a worker runs it.

`run_case` is the unit of work `tracehound bench` fans out (ARCHITECTURE §10, §11). It
opens the dataset itself, so a worker on another machine needs only the path to shared
storage, and it returns a small picklable `CaseResult`. Anything the case raises becomes
the result's `error` and the case counts as a miss: one broken case never stops a run.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tracehound.datasets import open_dataset
from tracehound.methods import Method, get_method
from tracehound.model import Candidate, Incident, Ranking
from tracehound.store import TelemetryStore

#: How many names of each ranking level a case result keeps.
TOP_NAMES = 5

#: Builds a method from its registered name and parameters (`get_method` by default).
MethodFactory = Callable[..., Method]


@dataclass(frozen=True)
class CaseLabels:
    """The ground truth a case is scored against; None where the dataset has no label."""

    service: str | None = None
    instance: str | None = None
    fault_type: str | None = None

    @classmethod
    def of(cls, incident: Incident) -> CaseLabels:
        labels = incident.labels
        if labels is None:
            return cls()
        return cls(service=labels.service, instance=labels.instance, fault_type=labels.fault_type)


@dataclass(frozen=True)
class CaseSpec:
    """What a worker needs to run one case: plain values only, so it pickles cheaply."""

    method: str
    params: Mapping[str, Any]
    dataset: str
    dataset_path: str
    incident: str
    system: str | None
    labels: CaseLabels


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case. Ranks are 1-based; None means not in the ranking."""

    method: str
    dataset: str
    incident: str
    system: str | None
    labels: CaseLabels
    service_rank: int | None = None
    instance_rank: int | None = None
    top_services: tuple[str, ...] = ()
    top_instances: tuple[str, ...] = ()
    predicted_fault_type: str | None = None
    load_seconds: float | None = None
    localize_seconds: float | None = None
    peak_rss_mb: float | None = None
    error: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fault_type(self) -> str | None:
        """The labelled fault type."""
        return self.labels.fault_type


def rank_of(name: str | None, candidates: Sequence[Candidate]) -> int | None:
    """The 1-based position of `name` among `candidates` (exact match), else None."""
    if name is None:
        return None
    for position, candidate in enumerate(candidates, start=1):
        if candidate.name == name:
            return position
    return None


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_case(spec: CaseSpec, factory: MethodFactory = get_method) -> CaseResult:
    """Load the incident, localize with the method, and score the ranking against labels."""
    base = CaseResult(
        method=spec.method,
        dataset=spec.dataset,
        incident=spec.incident,
        system=spec.system,
        labels=spec.labels,
        params=dict(spec.params),
    )
    load_seconds: float | None = None
    localize_seconds: float | None = None
    try:
        started = time.perf_counter()
        data = open_dataset(spec.dataset_path).load(spec.incident)
        with TelemetryStore.from_incident(data) as store:
            load_seconds = time.perf_counter() - started
            method = factory(spec.method, **spec.params)
            started = time.perf_counter()
            ranking = method.localize(data.incident, store)
            localize_seconds = time.perf_counter() - started
    except Exception as exc:  # a failing case is a miss with its message, never an abort
        return replace(
            base,
            load_seconds=load_seconds,
            peak_rss_mb=peak_rss_mb(),
            error=f"{type(exc).__name__}: {exc}",
        )
    return replace(
        _scored(base, ranking),
        load_seconds=load_seconds,
        localize_seconds=localize_seconds,
        peak_rss_mb=peak_rss_mb(),
    )


def _scored(base: CaseResult, ranking: Ranking) -> CaseResult:
    return replace(
        base,
        service_rank=rank_of(base.labels.service, ranking.services),
        instance_rank=rank_of(base.labels.instance, ranking.instances),
        top_services=tuple(c.name for c in ranking.services[:TOP_NAMES]),
        top_instances=tuple(c.name for c in ranking.instances[:TOP_NAMES]),
        predicted_fault_type=ranking.fault_type,
    )
