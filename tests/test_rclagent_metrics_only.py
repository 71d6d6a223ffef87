"""rclagent without traces: sustained shifts, series flat at zero, vanished instances."""

from __future__ import annotations

import pytest
from handmade import SECOND, T0

from tracehound.investigation import Investigation
from tracehound.model import Incident, IncidentData, Window
from tracehound.rclagent import RclAgentMethod
from tracehound.rclagent.metrics_only import FLAT_SPREADS, SYMPTOM_DISCOUNT, VANISHED_SPREADS
from tracehound.store import TelemetryStore
from tracehound.tables import METRICS_SCHEMA, from_columns

STEP = 15  # seconds between points: 40 in the normal window, 40 in the incident window
POINTS = 80


def _series(
    columns: dict[str, list[object]], instance: str, name: str, values: list[float]
) -> None:
    """One series of `values`, one every `STEP` seconds from T0 (service: up to the "-")."""
    for i, value in enumerate(values):
        columns["ts_ns"].append(T0 + i * STEP * SECOND)
        columns["service"].append(instance.split("-")[0])
        columns["instance"].append(instance)
        columns["node"].append("")
        columns["name"].append(name)
        columns["value"].append(value)


def _noise(level: float, i: int) -> float:
    """A deterministic wobble of ±5 % around `level`."""
    return level * (1.0 + 0.05 * ((i * 7) % 5 - 2) / 2)


def _investigate(series: list[tuple[str, str, list[float]]]) -> Investigation:
    columns: dict[str, list[object]] = {k: [] for k in METRICS_SCHEMA.names}
    for instance, name, values in series:
        _series(columns, instance, name, values)
    incident = Incident(
        id="metrics-0001",
        window=Window.from_ns(T0 + 600 * SECOND, T0 + 1200 * SECOND),
        normal_window=Window.from_ns(T0, T0 + 600 * SECOND),
    )
    data = IncidentData(incident=incident, metrics=from_columns("metrics", columns, "metrics"))
    with TelemetryStore.from_incident(data) as store:
        return RclAgentMethod().investigate(incident, store)


def _quiet(instance: str) -> list[tuple[str, str, list[float]]]:
    return [
        (instance, "cpu_usage", [_noise(20.0, i) for i in range(POINTS)]),
        (instance, "memory_usage", [_noise(500.0, i) for i in range(POINTS)]),
    ]


def test_a_sustained_rise_outranks_spikes() -> None:
    # spiky-1's cpu hits 100 twice in the incident window (and once before); steady-1's
    # rises from 20 to 40 for the window's second half. The largest value of the window
    # (BARO's RobustScorer) would name spiky-1.
    spiky = [_noise(20.0, i) for i in range(POINTS)]
    for i in (12, 50, 66):
        spiky[i] = 100.0
    steady = [_noise(20.0 if i < 60 else 40.0, i) for i in range(POINTS)]
    result = _investigate(
        [
            ("spiky-1", "cpu_usage", spiky),
            ("steady-1", "cpu_usage", steady),
            *_quiet("other-1"),
        ]
    )
    scores = {c.name: c.score for c in result.ranking.services}
    assert result.ranking.services[0].name == "steady"
    # spiky's median did not move: it is no more suspect than the quiet service
    assert scores["steady"] == 1.0 and scores["spiky"] == scores["other"] == 0.0
    assert result.fault_type == "cpu"
    assert result.modalities == ["metrics"]
    # the claim carries the evidence it rests on
    assert result.root_cause is not None
    (node,) = [n for n in result.evidence_graph.nodes if n.id in result.root_cause.evidence]
    assert node.summary.startswith("steady-1: cpu_usage up to ")
    assert node.kind == "metric_shift"


def test_series_flat_at_zero_score_by_their_share_of_the_largest_rise() -> None:
    # two error rates were 0 throughout the normal window; one rises to 0.3, the other
    # (a caller's) to 0.05. Both have no spread to be counted in.
    def rate(level: float) -> list[float]:
        return [0.0] * 40 + [level] * 40

    result = _investigate(
        [
            ("victim-1", "error_rate", rate(0.3)),
            ("caller-1", "error_rate", rate(0.05)),
            *_quiet("victim-1"),
            *_quiet("caller-1"),
        ]
    )
    scores = {c.name: c.score for c in result.ranking.instances}
    top = FLAT_SPREADS * SYMPTOM_DISCOUNT
    assert scores["victim-1"] == pytest.approx(1.0)
    assert scores["caller-1"] == pytest.approx(top * (0.05 / 0.3) / top)
    assert result.fault_type == "error"
    assert result.root_cause is not None and "flat before" in result.root_cause.summary


def test_an_instance_whose_metrics_stopped_is_unavailable() -> None:
    # gone-1 reports through the normal window and the incident window's first 10 points,
    # then nothing; its caller's error rate rises from 0 (flat) to 0.4 at the same time.
    gone = [(name, values[:50]) for _, name, values in _quiet("gone-1")]
    errors = [0.0] * 50 + [0.4] * 30
    result = _investigate(
        [
            *[("gone-1", name, values) for name, values in gone],
            ("caller-1", "error_rate", errors),
            *_quiet("caller-1"),
            *_quiet("other-1"),
            *_quiet("another-1"),
        ]
    )
    ranked = [c.name for c in result.ranking.instances]
    assert ranked[:2] == ["gone-1", "caller-1"]
    assert result.fault_type == "unavailable"
    # 20 points in the incident window where the peers' ratio (40 / 40) predicts 80
    drop = 1.0 - 20 / 80
    scores = {c.name: c.score for c in result.ranking.instances}
    assert scores["caller-1"] == pytest.approx(
        FLAT_SPREADS * SYMPTOM_DISCOUNT / (VANISHED_SPREADS * drop)
    )
    assert result.root_cause is not None
    assert "reported 20 metric points where 80 were expected (75% fewer)" in (
        result.root_cause.summary
    )


def test_cpu_with_memory_rising_alongside_is_a_memory_fault() -> None:
    # leak-1's cpu quadruples (collection) while its memory climbs by 60 % (1.2 spreads,
    # as half its peers' level is the floor): the cpu shift is the larger, the memory one
    # names the fault
    cpu = [_noise(20.0 if i < 40 else 80.0, i) for i in range(POINTS)]
    memory = [_noise(500.0 if i < 40 else 800.0, i) for i in range(POINTS)]
    result = _investigate(
        [("leak-1", "cpu_usage", cpu), ("leak-1", "memory_usage", memory), *_quiet("other-1")]
    )
    assert result.ranking.services[0].name == "leak"
    assert result.root_cause is not None and result.root_cause.summary.startswith("cpu_usage")
    assert result.fault_type == "memory"


def test_a_disk_hog_is_a_cause_and_typed_disk() -> None:
    """writer-1's file-system writes rise fivefold; reader-1's request latency (a symptom,
    `SYMPTOM_DISCOUNT`) rises by as many spreads. Disk series are resource series: the
    writer is first and the fault is typed disk."""
    quiet = [_noise(200.0, i) for i in range(40)]
    result = _investigate(
        [
            *_quiet("writer-1"),
            ("writer-1", "container_fs_writes_bytes_total", quiet + [x * 5 for x in quiet]),
            *_quiet("reader-1"),
            ("reader-1", "latency_p90", quiet + [x * 5 for x in quiet]),
        ]
    )
    assert [c.name for c in result.ranking.services] == ["writer", "reader"]
    assert result.fault_type == "disk"
