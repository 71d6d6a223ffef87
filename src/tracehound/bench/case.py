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
from tracehound.methods.agent_run import agent_key
from tracehound.model import Candidate, Incident, Ranking
from tracehound.store import TelemetryStore

#: How many names of each ranking level a case result keeps.
TOP_NAMES = 5

#: Builds a method from its registered name and parameters (`get_method` by default).
MethodFactory = Callable[..., Method]

#: The incident attribute holding a run's reference answer (agent-run datasets).
GROUND_TRUTH_ATTRIBUTE = "ground_truth"
#: The method parameter that says whether a method may read that answer.
GROUND_TRUTH_PARAM = "use_ground_truth"


@dataclass(frozen=True)
class CaseLabels:
    """The ground truth a case is scored against; None where the dataset has no label.

    `span` is the labelled span (for an agent run, ``step-<i>``) and `step` its 0-based
    step index. A case labelled with a step is an agent run: its service (agent) names
    are compared as Who&When's labels need (`methods.agent_run.agent_key`: case-insensitive,
    without a trailing ``" (...)"``), not exactly.
    """

    service: str | None = None
    instance: str | None = None
    fault_type: str | None = None
    span: str | None = None
    step: int | None = None

    @classmethod
    def of(cls, incident: Incident) -> CaseLabels:
        labels = incident.labels
        if labels is None:
            return cls()
        return cls(
            service=labels.service,
            instance=labels.instance,
            fault_type=labels.fault_type,
            span=labels.span,
            step=labels.step,
        )

    @property
    def agent_run(self) -> bool:
        """Whether the labels name a step of an agent run."""
        return self.step is not None


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
    #: True/False: the method runs with/without the run's reference answer (its
    #: `use_ground_truth` parameter, and the harness strips the attribute when False);
    #: None: the method has no such parameter or the data carries no reference answer.
    ground_truth: bool | None = None


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
    span_rank: int | None = None
    top_services: tuple[str, ...] = ()
    top_instances: tuple[str, ...] = ()
    top_spans: tuple[str, ...] = ()
    predicted_fault_type: str | None = None
    load_seconds: float | None = None
    localize_seconds: float | None = None
    peak_rss_mb: float | None = None
    error: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    ground_truth: bool | None = None

    @property
    def fault_type(self) -> str | None:
        """The labelled fault type."""
        return self.labels.fault_type


def rank_of(
    name: str | None, candidates: Sequence[Candidate], *, agent_names: bool = False
) -> int | None:
    """The 1-based position of `name` among `candidates`, else None.

    Names match exactly, or with `agent_names` by `agent_key` (agent runs).
    """
    if name is None:
        return None
    key = agent_key if agent_names else _same
    wanted = key(name)
    for position, candidate in enumerate(candidates, start=1):
        if key(candidate.name) == wanted:
            return position
    return None


def _same(name: str) -> str:
    return name


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
        ground_truth=spec.ground_truth,
    )
    load_seconds: float | None = None
    localize_seconds: float | None = None
    try:
        started = time.perf_counter()
        data = open_dataset(spec.dataset_path).load(spec.incident)
        with TelemetryStore.from_incident(data) as store:
            load_seconds = time.perf_counter() - started
            method = factory(spec.method, **spec.params)
            incident = data.incident
            if spec.ground_truth is False:
                incident = without_ground_truth(incident)
            started = time.perf_counter()
            ranking = method.localize(incident, store)
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


def without_ground_truth(incident: Incident) -> Incident:
    """`incident` without its reference-answer attribute (belt and braces for methods run
    with ``use_ground_truth=False``: what a method is not given, it cannot read)."""
    if GROUND_TRUTH_ATTRIBUTE not in incident.attributes:
        return incident
    attributes = {k: v for k, v in incident.attributes.items() if k != GROUND_TRUTH_ATTRIBUTE}
    return incident.model_copy(update={"attributes": attributes})


def _scored(base: CaseResult, ranking: Ranking) -> CaseResult:
    """Ranks of the labels. Spans (steps) match exactly: a step's span id is ``step-<i>``
    with `i` written without leading zeros, so equal ids are equal integer indices."""
    agent_run = base.labels.agent_run
    return replace(
        base,
        service_rank=rank_of(base.labels.service, ranking.services, agent_names=agent_run),
        instance_rank=rank_of(base.labels.instance, ranking.instances, agent_names=agent_run),
        span_rank=rank_of(base.labels.span, ranking.spans),
        top_services=tuple(c.name for c in ranking.services[:TOP_NAMES]),
        top_instances=tuple(c.name for c in ranking.instances[:TOP_NAMES]),
        top_spans=tuple(c.name for c in ranking.spans[:TOP_NAMES]),
        predicted_fault_type=ranking.fault_type,
    )
