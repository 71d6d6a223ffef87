"""The trace baselines `microrank` and `tracerca`: exact outcomes on small inputs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tracehound.methods.conformance import check_method
from tracehound.methods.microrank import (
    MicroRankMethod,
    dstar2,
    ochiai,
    personalized_pagerank,
)
from tracehound.methods.tracerca import TraceRCAMethod, jaccard_score
from tracehound.model import Incident, IncidentData, Labels, Ranking, Window
from tracehound.simulate import generate_incident, generate_system
from tracehound.store import TelemetryStore
from tracehound.tables import from_columns

MS = 1_000_000
SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


def _traces(normal_window: bool) -> IncidentData:
    """front → mid (→ leaf) traces; the leaf is slow only in the incident window.

    Kind A calls front, mid and leaf; kind B calls front and mid only, alternating, one
    trace a second with a little jitter: 120 traces in the first 600 s (normal), 40 in
    the next 600 s (slow leaf). With `normal_window` the incident window is the second
    part and the first is the normal window; without it, the incident window spans both,
    as when a fault starts inside the window.
    """
    columns: dict[str, list[object]] = {
        k: []
        for k in (
            "trace_id",
            "span_id",
            "parent_span_id",
            "service",
            "instance",
            "operation",
            "start_ns",
            "duration_ns",
        )
    }

    def add(trace: str, span: str, parent: str | None, svc: str, op: str, t: int, d: int) -> None:
        for key, value in zip(
            columns, (trace, span, parent, svc, f"{svc}-1", op, t, d), strict=True
        ):
            columns[key].append(value)

    for window, offset, count in (("n", 0, 120), ("i", 600, 40)):
        leaf_ms = 10 if window == "n" else 60
        for k in range(count):
            start = T0 + (offset + 10 + k) * SECOND
            jitter = (k % 5) * MS // 5
            trace = f"{window}{k:02d}"
            with_leaf = k % 2 == 0
            leaf = (leaf_ms * MS + jitter) if with_leaf else 0
            mid = 5 * MS + jitter + leaf
            add(trace, "a", None, "front", "GET /", start, mid + 3 * MS + jitter)
            add(trace, "b", "a", "mid", "/m", start + MS, mid)
            if with_leaf:
                add(trace, "c", "b", "leaf", "/l", start + 2 * MS, leaf)
    spans = from_columns("spans", dict(columns), "hand-built spans")
    incident = Incident(
        id="hand-0001",
        window=Window.from_ns(T0 + (600 if normal_window else 0) * SECOND, T0 + 1200 * SECOND),
        normal_window=Window.from_ns(T0, T0 + 600 * SECOND) if normal_window else None,
        labels=Labels(service="leaf", instance="leaf-1", fault_type="latency"),
    )
    return IncidentData(incident=incident, spans=spans)


def _run(method: MicroRankMethod | TraceRCAMethod, data: IncidentData) -> Ranking:
    with TelemetryStore.from_incident(data) as store:
        return method.localize(data.incident, store)


@pytest.mark.parametrize("method", [MicroRankMethod(), TraceRCAMethod()], ids=lambda m: m.name)
@pytest.mark.parametrize("normal_window", [True, False], ids=["baseline", "no-baseline"])
def test_slow_leaf_ranked_first(
    method: MicroRankMethod | TraceRCAMethod, normal_window: bool
) -> None:
    ranking = _run(method, _traces(normal_window))
    assert ranking.services[0].name == "leaf"
    assert ranking.instances[0].name == "leaf-1"
    assert ranking.services[0].reason
    scores = [c.score for c in ranking.services]
    assert scores == sorted(scores, reverse=True)


def test_pagerank_matches_hand_computed_vector() -> None:
    # cycle 0 → 1 → 2 → 0, M[to, from] = 1; restart at node 0, d = 0.5:
    # x0 = 0.5 + 0.5 x2, x1 = 0.5 x0, x2 = 0.5 x1  →  x = (4/7, 2/7, 1/7)
    rows = np.array([1, 2, 0], dtype=np.int64)
    cols = np.array([0, 1, 2], dtype=np.int64)
    weights = np.ones(3)
    x = personalized_pagerank(rows, cols, weights, np.array([1.0, 0.0, 0.0]), damping=0.5)
    assert x == pytest.approx([4 / 7, 2 / 7, 1 / 7], abs=1e-9)


def test_spectrum_formulas_on_given_counts() -> None:
    assert dstar2(3.0, 1.0, 1.0, 5.0) == pytest.approx(9 / 2)
    assert ochiai(3.0, 1.0, 1.0, 5.0) == pytest.approx(3 / 4)
    assert jaccard_score(0.5, 0.5) == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def latency_incident() -> IncidentData:
    system = generate_system(12, 3)
    return generate_incident(system, index=1, seed=3, fault_type="latency", target_spans=4000)


@pytest.mark.parametrize(
    ("method", "service_rank"),
    [(MicroRankMethod(), 1), (TraceRCAMethod(), 1)],
    ids=["microrank", "tracerca"],
)
def test_simulated_latency_incident(
    latency_incident: IncidentData, method: MicroRankMethod | TraceRCAMethod, service_rank: int
) -> None:
    ranking = _run(method, latency_incident)
    labels = latency_incident.incident.labels
    assert labels is not None and labels.service and labels.instance
    services = [c.name for c in ranking.services]
    instances = [c.name for c in ranking.instances]
    assert services.index(labels.service) + 1 == service_rank
    assert instances.index(labels.instance) + 1 == service_rank


@pytest.mark.parametrize("method_class", [MicroRankMethod, TraceRCAMethod])
def test_conformance(method_class: type[MicroRankMethod] | type[TraceRCAMethod]) -> None:
    check_method(method_class)


@pytest.mark.parametrize("method", [MicroRankMethod(), TraceRCAMethod()], ids=lambda m: m.name)
def test_orphans_and_a_huge_trace(method: MicroRankMethod | TraceRCAMethod) -> None:
    """Spans whose parent is missing, and one trace of 20,000 spans, still rank."""
    data = _traces(True)
    assert data.spans is not None
    n = 20_000
    huge = from_columns(
        "spans",
        {
            "trace_id": ["huge"] * n,
            "span_id": [f"h{i}" for i in range(n)],
            # every 10th span's parent is absent (an orphan); the rest chain to span 0
            "parent_span_id": [None] + [f"gone{i}" if i % 10 == 0 else "h0" for i in range(1, n)],
            "service": ["front"] + ["mid"] * (n - 1),
            "instance": ["front-1"] + ["mid-1"] * (n - 1),
            "operation": ["GET /"] + ["/m"] * (n - 1),
            "start_ns": [T0 + 900 * SECOND + i for i in range(n)],
            "duration_ns": [5 * MS] * n,
        },
        "huge trace",
    )
    spans = pa.concat_tables([data.spans, huge])
    ranking = _run(method, IncidentData(incident=data.incident, spans=spans))
    assert ranking.services[0].name == "leaf"
    assert {c.name for c in ranking.services} <= {"front", "mid", "leaf"}
