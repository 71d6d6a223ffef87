"""The metric baselines nsigma and baro, and the BOCPD they rest on, on hand-built data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracehound.methods.baro import BaroMethod, robust_scale
from tracehound.methods.bocpd import bocpd, fill_gaps, normalise_columns
from tracehound.methods.conformance import check_method
from tracehound.methods.metric_ranking import fault_type_of
from tracehound.methods.nsigma import NSigmaMethod
from tracehound.model import Incident, IncidentData, Labels, Ranking, Window
from tracehound.store import TelemetryStore
from tracehound.tables import from_columns

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND
#: Points per window, one every 10 s.
POINTS = 60
STEP = 10 * SECOND

# (service, instance, node, name, normal level): one series each.
SERIES = [
    ("front", "front-1", "n1", "cpu", 20.0),
    ("front", "front-1", "n1", "mem", 300.0),
    ("db", "db-1", "n1", "cpu", 10.0),
    ("db", "db-2", "n2", "cpu", 12.0),
    ("db", "db-2", "n2", "mem", 500.0),
    ("cache", "cache-1", "n2", "cpu", 5.0),
    ("", "", "n2", "node_cpu", 30.0),
]


def _incident(
    *,
    culprit: int = 3,
    factor: float = 10.0,
    normal_after: bool = False,
    with_normal: bool = True,
    node_jump: float = 1.0,
    extra: list[tuple[str, str, str, str, list[float], list[float]]] | None = None,
) -> IncidentData:
    """Series of `SERIES` with noise; series `culprit` is `factor` times higher in the incident.

    Normal window first (or after the incident window, `normal_after`), then the incident
    window, each `POINTS` points. `extra` adds series with explicit normal/incident values.
    """
    rng = np.random.default_rng(7)
    normal_start = T0 + (2 * POINTS * STEP if normal_after else 0)
    incident_start = T0 + (0 if normal_after else 2 * POINTS * STEP)
    times = np.concatenate(
        [normal_start + np.arange(POINTS) * STEP, incident_start + np.arange(POINTS) * STEP]
    )
    columns: dict[str, list[object]] = {k: [] for k in ("ts_ns", "service", "instance")}
    columns.update({"node": [], "name": [], "value": []})
    for index, (service, instance, node, name, level) in enumerate(SERIES):
        noise = rng.normal(0.0, 0.05 * level, 2 * POINTS)
        values = level + noise
        if index == culprit:
            values[POINTS:] *= factor
        if service == "":
            values[POINTS:] *= node_jump
        _append(columns, times, service, instance, node, name, values.tolist())
    for service, instance, node, name, normal, during in extra or []:
        stamps = np.concatenate(
            [
                normal_start + np.arange(len(normal)) * STEP,
                incident_start + np.arange(len(during)) * STEP,
            ]
        )
        _append(columns, stamps, service, instance, node, name, normal + during)
    normal_window = Window.from_ns(normal_start, normal_start + POINTS * STEP)
    incident = Incident(
        id="metric-baselines",
        window=Window.from_ns(incident_start, incident_start + POINTS * STEP),
        normal_window=normal_window if with_normal else None,
        labels=Labels(service=SERIES[culprit][0], instance=SERIES[culprit][1]),
    )
    metrics = from_columns("metrics", columns, "test metrics")  # type: ignore[arg-type]
    return IncidentData(incident=incident, metrics=metrics)


def _append(
    columns: dict[str, list[object]],
    times: np.ndarray,
    service: str,
    instance: str,
    node: str,
    name: str,
    values: list[float],
) -> None:
    n = len(values)
    columns["ts_ns"] += times[:n].tolist()
    columns["service"] += [service] * n
    columns["instance"] += [instance] * n
    columns["node"] += [node] * n
    columns["name"] += [name] * n
    columns["value"] += values


def _localize(method: NSigmaMethod | BaroMethod, data: IncidentData) -> Ranking:
    with TelemetryStore.from_incident(data) as store:
        return method.localize(data.incident, store)


def _names(ranking: Ranking) -> tuple[list[str], list[str]]:
    return [c.name for c in ranking.services], [c.name for c in ranking.instances]


METHODS = [NSigmaMethod(), BaroMethod()]


# -- BOCPD --------------------------------------------------------------------------


def test_bocpd_finds_the_onset_of_a_step() -> None:
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(0, 1, (100, 3)), rng.normal(5, 1, (60, 3))])
    result = bocpd(normalise_columns(data))
    # The most probable run restarts one point after the step and began at the step.
    assert result.change_points.tolist() == [101]
    assert result.onsets.tolist() == [100]
    assert result.map_run_length[100] == 100
    assert result.map_run_length[101] == 1


def test_bocpd_finds_no_change_in_noise() -> None:
    rng = np.random.default_rng(1)
    result = bocpd(normalise_columns(rng.normal(0, 1, (80, 3))))
    assert result.change_points.tolist() == []
    assert result.map_run_length.tolist() == list(range(81))


def test_bocpd_row_space_projection_is_exact() -> None:
    # 3-dimensional data embedded in 20 dimensions: running in the 3-dimensional row
    # space (max_dims=3) gives exactly the run lengths of the full 20-dimensional model.
    rng = np.random.default_rng(0)
    data = normalise_columns(
        np.concatenate([rng.normal(0, 1, (100, 3)), rng.normal(5, 1, (60, 3))])
    )
    rotation, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(20, 20)))
    embedded = data @ rotation[:3, :]
    full = bocpd(embedded, max_dims=64)
    projected = bocpd(embedded, max_dims=3)
    assert full.map_run_length.tolist() == projected.map_run_length.tolist()
    assert full.map_run_length[-1] == 160  # one Gaussian in 20-D explains the step


def test_bocpd_pruning_keeps_the_answer() -> None:
    rng = np.random.default_rng(3)
    data = np.concatenate([rng.normal(0, 1, (150, 2)), rng.normal(4, 1, (50, 2))])
    full = bocpd(normalise_columns(data), max_runs=1000)
    pruned = bocpd(normalise_columns(data), max_runs=16)
    assert full.onsets.tolist() == pruned.onsets.tolist() == [150]


def test_normalise_drops_constant_columns_and_fills_gaps() -> None:
    data = np.array([[np.nan, 1.0, 2.0], [4.0, 1.0, np.nan], [6.0, 1.0, 4.0]])
    assert fill_gaps(data).tolist() == [[4.0, 1.0, 2.0], [4.0, 1.0, 2.0], [6.0, 1.0, 4.0]]
    assert normalise_columns(data).tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]


# -- both methods -------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_tenfold_cpu_instance_is_first_at_both_levels(method: NSigmaMethod | BaroMethod) -> None:
    ranking = _localize(method, _incident())
    services, instances = _names(ranking)
    assert services[0] == "db"
    assert instances[0] == "db-2"
    assert sorted(services) == ["cache", "db", "front"]
    assert sorted(instances) == ["cache-1", "db-1", "db-2", "front-1"]
    assert ranking.fault_type == "cpu"
    assert "cpu on db-2" in ranking.services[0].reason
    assert "above normal" in ranking.services[0].reason
    scores = [c.score for c in ranking.services]
    assert all(math.isfinite(s) for s in scores)
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_node_only_series_names_no_candidate(method: NSigmaMethod | BaroMethod) -> None:
    # The node series jumps most of all, yet no empty-named candidate appears.
    ranking = _localize(method, _incident(factor=3.0, node_jump=50.0))
    services, instances = _names(ranking)
    assert "" not in services and "" not in instances
    assert services[0] == "db"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_constant_series_give_no_nan(method: NSigmaMethod | BaroMethod) -> None:
    extra = [
        ("flat", "flat-1", "n1", "cpu", [3.0] * POINTS, [3.0] * POINTS),
        ("flat", "flat-1", "n1", "mem", [7.0] * POINTS, [70.0] * POINTS),
    ]
    ranking = _localize(method, _incident(extra=extra))
    services, _ = _names(ranking)
    assert "flat" not in services  # constant in a window: dropped, as the reference does
    assert all(math.isfinite(c.score) for c in ranking.services + ranking.instances)
    assert services[0] == "db"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_normal_window_after_the_incident_window(method: NSigmaMethod | BaroMethod) -> None:
    ranking = _localize(method, _incident(normal_after=True))
    assert _names(ranking)[1][0] == "db-2"


def test_ties_are_broken_by_name() -> None:
    same = [1.0, 2.0, 3.0] * 20
    extra = [
        ("zeta", "zeta-1", "n1", "lat", same, [9.0] * 30 + [1.0] * 30),
        ("alpha", "alpha-1", "n1", "lat", same, [9.0] * 30 + [1.0] * 30),
    ]
    ranking = _localize(NSigmaMethod(), _incident(factor=1.0, extra=extra))
    services, _ = _names(ranking)
    assert services[:2] == ["alpha", "zeta"]
    assert ranking.services[0].score == ranking.services[1].score


# -- nsigma -------------------------------------------------------------------------


def test_nsigma_score_is_the_hand_computed_z_score() -> None:
    extra = [("solo", "solo-1", "n1", "lat", [1.0, 2.0, 3.0], [4.0, 60.0])]
    ranking = _localize(NSigmaMethod(), _incident(factor=1.0, extra=extra))
    top = ranking.services[0]
    assert top.name == "solo"
    # mean 2, population std sqrt(2/3): (60 - 2) / sqrt(2/3)
    assert top.score == pytest.approx(58.0 / math.sqrt(2.0 / 3.0), rel=1e-12)
    assert ranking.fault_type == "latency"


def test_nsigma_keeps_a_single_incident_point() -> None:
    extra = [("solo", "solo-1", "n1", "errors", [1.0, 2.0, 3.0], [30.0])]
    ranking = _localize(NSigmaMethod(), _incident(factor=1.0, extra=extra))
    assert ranking.services[0].name == "solo"
    assert ranking.services[0].score == pytest.approx(28.0 / math.sqrt(2.0 / 3.0))


def test_nsigma_two_sided_counts_drops() -> None:
    extra = [("sink", "sink-1", "n1", "rate", [10.0, 11.0, 12.0], [11.0, -100.0])]
    data = _incident(factor=1.0, extra=extra)
    assert _localize(NSigmaMethod(), data).services[0].name != "sink"
    two_sided = _localize(NSigmaMethod(two_sided=True), data)
    assert two_sided.services[0].name == "sink"
    assert "below normal" in two_sided.services[0].reason


# -- baro ---------------------------------------------------------------------------


def test_baro_without_a_normal_window_finds_the_onset() -> None:
    data = _incident(with_normal=False)
    assert data.incident.normal_window is None
    ranking = _localize(BaroMethod(), data)
    assert _names(ranking)[1][0] == "db-2"


def test_baro_onset_is_the_boundary_or_later() -> None:
    method = BaroMethod()
    data = _incident()
    with TelemetryStore.from_incident(data) as store:
        from tracehound.methods.metric_matrix import series_matrix

        normal, window = data.incident.normal_window, data.incident.window
        assert normal is not None
        matrix = series_matrix(
            store, [(normal.start_ns, normal.end_ns), (window.start_ns, window.end_ns)]
        )
    assert matrix.shape == (2 * POINTS, len(SERIES))
    assert method.find_onset(matrix, POINTS, trust_boundary=True) == POINTS


def test_robust_scale_floors() -> None:
    before = np.array(
        [[1.0, 100.0, 0.0, 5.0, 0.0], [2.0, 100.0, 0.0, 5.0, 0.0], [3.0, 100.0, 0.0, 5.0, 0.0],
         [4.0, 101.0, 1.0, 5.0, 0.0], [5.0, 100.0, 0.0, 5.0, 0.0]]
    )  # fmt: skip
    median, scale = robust_scale(before, 0.01)
    assert median.tolist() == [3.0, 100.0, 0.0, 5.0, 0.0]
    assert scale[0] == pytest.approx(2.0)  # the IQR
    assert scale[1] == pytest.approx(1.0)  # IQR 0: 1 % of the level beats the std 0.4
    assert scale[2] == pytest.approx(0.4)  # IQR 0 at level 0: the std
    assert scale[3] == pytest.approx(0.05)  # constant at 5: 1 % of the level
    assert scale[4] == pytest.approx(1e-9)  # constant at 0: the tiny floor


def test_fault_type_from_metric_names() -> None:
    assert fault_type_of("CpuUsageRate(%)") == "cpu"
    assert fault_type_of("MemoryUsage(Mi)") == "memory"
    assert fault_type_of("lat_90") == "latency"
    assert fault_type_of("PodClientLatencyP90(s)") == "latency"
    assert fault_type_of("NetworkReceiveBytes") == "network"
    assert fault_type_of("lod") is None


# -- contract -----------------------------------------------------------------------


@pytest.mark.parametrize("method_class", [NSigmaMethod, BaroMethod], ids=["nsigma", "baro"])
def test_conformance(method_class: type[NSigmaMethod] | type[BaroMethod]) -> None:
    report = check_method(method_class)
    assert not report.failed and not report.exempt


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_no_metric_row_in_the_incident_window_gives_an_empty_ranking(
    method: NSigmaMethod | BaroMethod,
) -> None:
    data = _incident()
    later = Window.from_ns(T0 + 10_000 * SECOND, T0 + 10_060 * SECOND)
    moved = IncidentData(
        incident=data.incident.model_copy(update={"window": later}), metrics=data.metrics
    )
    assert _localize(method, moved) == Ranking()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("container_fs_writes_bytes_total", "disk"),
        ("carts_container-fs-reads-bytes-total", "disk"),
        ("node_disk_io_time_seconds_total", "disk"),
        ("process.disk.io", "disk"),
        ("SyscallRead", None),
        ("compression_ratio_write", None),
        ("node_cpu_seconds_total{mode=iowait}", "cpu"),
    ],
)
def test_disk_series_are_typed_disk(name: str, kind: str | None) -> None:
    assert fault_type_of(name) == kind
