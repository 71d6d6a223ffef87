"""The benchmark harness: metrics on hand-made ranks, the case function, the Dask fan-out
and the reports."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tracehound.bench import (
    BenchConfig,
    CaseLabels,
    CaseResult,
    bench_json,
    level_scores,
    markdown,
    parse_params,
    plan_cases,
    run_bench,
    run_case,
    summarize,
    write_report,
)
from tracehound.bench.case import rank_of
from tracehound.bench.metrics import fault_class, spread, summarize_method
from tracehound.bench.plots import accuracy_chart
from tracehound.bench.runner import BenchRun
from tracehound.errors import BadInput
from tracehound.methods import Method, Tags
from tracehound.model import Candidate, Incident, Ranking
from tracehound.simulate import simulate_dataset
from tracehound.store import TelemetryStore

#: Keys that measure the machine, not the method: they may differ between runs.
MEASUREMENTS = {"time_s", "load_time_s", "peak_rss_mb", "load_s", "localize_s"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, services=10, incidents=4, seed=1)
    return out


def case(
    incident: str,
    service_rank: int | None,
    *,
    service: str | None = "svc",
    instance: str | None = None,
    instance_rank: int | None = None,
    fault_type: str | None = "cpu",
    system: str | None = "shop",
    error: str | None = None,
    method: str = "m",
    seconds: float | None = 1.0,
    predicted: str | None = None,
) -> CaseResult:
    return CaseResult(
        method=method,
        dataset="d",
        incident=incident,
        system=system,
        labels=CaseLabels(service=service, instance=instance, fault_type=fault_type),
        service_rank=service_rank,
        instance_rank=instance_rank,
        localize_seconds=seconds,
        load_seconds=0.5,
        peak_rss_mb=100.0,
        error=error,
        predicted_fault_type=predicted,
    )


def without_measurements(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_measurements(v) for k, v in value.items() if k not in MEASUREMENTS}
    if isinstance(value, list):
        return [without_measurements(v) for v in value]
    return value


# --- metrics ------------------------------------------------------------------------------


def test_level_scores_on_hand_made_ranks() -> None:
    scores = level_scores([1, 3, None, 6])
    assert scores.n == 4
    assert scores.ac == (0.25, 0.25, 0.5, 0.5, 0.5)
    assert [scores.ac_at(k) for k in (1, 3, 5)] == [0.25, 0.5, 0.5]
    assert scores.avg5 == pytest.approx(0.4, abs=1e-12)
    assert scores.mrr == pytest.approx((1 + 1 / 3 + 0 + 1 / 6) / 4, abs=1e-12)


def test_level_scores_all_hits_and_all_misses() -> None:
    assert level_scores([1, 1]).ac == (1.0,) * 5
    assert level_scores([1, 1]).mrr == 1.0
    misses = level_scores([None, None, None])
    assert (misses.ac, misses.avg5, misses.mrr, misses.n) == ((0.0,) * 5, 0.0, 0.0, 3)
    assert level_scores([2]).ac == (0.0, 1.0, 1.0, 1.0, 1.0)
    assert level_scores([2]).avg5 == pytest.approx(0.8, abs=1e-12)


def test_level_scores_without_labelled_cases_are_none() -> None:
    empty = level_scores([])
    assert (empty.n, empty.ac_at(1), empty.avg5, empty.mrr) == (0, None, None, None)


def test_level_scores_reject_bad_ranks_and_cutoffs() -> None:
    with pytest.raises(ValueError, match="1-based"):
        level_scores([0])
    with pytest.raises(ValueError, match="AC@7"):
        level_scores([1]).ac_at(7)


def test_summary_counts_errors_as_misses_and_skips_unlabelled_levels() -> None:
    cases = [
        case("a", 1, instance="i1", instance_rank=2),
        case("b", 2, fault_type="mem"),
        case("c", 1, error="RuntimeError: boom"),  # ranked first, but it raised: a miss
        case("d", None, service=None, fault_type=None, system=None),  # not labelled
        case("e", None, fault_type="mem", seconds=3.0),
    ]
    summary = summarize_method(cases)
    assert summary.overall.n == 5
    service = summary.overall.service
    assert service.n == 4
    assert service.ac == (0.25, 0.5, 0.5, 0.5, 0.5)
    assert service.mrr == pytest.approx((1 + 0.5) / 4, abs=1e-12)
    instance = summary.overall.instance
    assert (instance.n, instance.ac_at(1), instance.ac_at(3), instance.mrr) == (1, 0.0, 1.0, 0.5)
    assert list(summary.by_fault_type) == ["cpu", "mem", "unlabelled"]
    cpu = summary.by_fault_type["cpu"]
    assert (cpu.n, cpu.service.n, cpu.service.ac_at(1)) == (2, 2, 0.5)
    assert summary.by_fault_type["mem"].service.ac == (0.0, 0.5, 0.5, 0.5, 0.5)
    assert summary.by_fault_type["unlabelled"].service.n == 0
    assert list(summary.by_system) == ["shop", "unlabelled"]
    assert summary.by_system["shop"].n == 4
    assert (summary.time_s.median, summary.time_s.max) == (1.0, 3.0)
    assert summary.peak_rss_mb == 100.0
    assert summary.errors == (("c", "RuntimeError: boom"),)


def test_fault_type_accuracy_scores_classes_and_counts_misses() -> None:
    cases = [
        case("a", 1, fault_type="cpu_contention", predicted="cpu"),  # synonyms: a hit
        case("b", 1, fault_type="network_delay", predicted="latency"),  # one class: a hit
        case("c", 1, fault_type="Exception", predicted="error"),  # case ignored: a hit
        case("d", 1, fault_type="return", predicted="error"),  # a miss
        case("e", 1, fault_type="mem", predicted=None),  # no prediction: a miss
        case("f", 1, fault_type="cpu", predicted="cpu", error="boom"),  # raised: a miss
        case("g", 1, fault_type="disk", predicted="cpu"),  # no class: not scored
        case("h", 1, fault_type=None, predicted="cpu"),  # unlabelled: not scored
    ]
    summary = summarize_method(cases)
    assert (summary.overall.fault_type.n, summary.overall.fault_type.accuracy) == (6, 0.5)
    by = summary.by_fault_type
    assert (by["return"].fault_type.n, by["return"].fault_type.accuracy) == (1, 0.0)
    assert (by["disk"].fault_type.n, by["disk"].fault_type.accuracy) == (0, None)
    assert [fault_class(n) for n in ("pod-kill", "loss", "wrong_return", "f1")] == [
        "unavailable",
        "latency/network",
        "wrong_return",
        None,
    ]


def test_summarize_groups_by_method_sorted() -> None:
    cases = [case("b", 1, method="z"), case("a", None, method="a"), case("a", 1, method="z")]
    summaries = summarize(cases)
    assert [(s.method, s.overall.n, s.overall.service.ac_at(1)) for s in summaries] == [
        ("a", 1, 0.0),
        ("z", 2, 1.0),
    ]


def test_spread_ignores_missing_values() -> None:
    assert spread([None, 2.0, 1.0, 4.0]) == spread([1.0, 2.0, 4.0])
    assert (spread([1.0, 2.0, 4.0]).median, spread([1.0, 2.0, 4.0]).max) == (2.0, 4.0)
    assert (spread([None]).median, spread([]).max) == (None, None)


def test_rank_of_is_exact_and_one_based() -> None:
    ranked = [Candidate(kind="service", name=n, score=1.0) for n in ("a", "ab", "b")]
    assert [rank_of(n, ranked) for n in ("a", "b", "B", "x", None)] == [1, 3, None, None, None]


# --- planning -----------------------------------------------------------------------------


def test_parse_params_reads_json_values_and_targets_methods() -> None:
    assert parse_params(["seed=5"], ["random"]) == {"random": {"seed": 5}}
    assert parse_params(["random.seed=7"], ["random"]) == {"random": {"seed": 7}}
    with pytest.raises(BadInput, match="no selected method has a parameter 'k'"):
        parse_params(["k=3"], ["random"])
    with pytest.raises(BadInput, match="NAME=VALUE"):
        parse_params(["seed"], ["random"])
    with pytest.raises(BadInput, match="not selected"):
        parse_params(["other.seed=1"], ["random"])
    with pytest.raises(BadInput, match=r"unknown method 'nope'.*one of .*random"):
        parse_params([], ["nope"])


def test_plan_cases_sorts_limits_and_seeds(sim: Path) -> None:
    specs = plan_cases(BenchConfig(methods=("random", "random"), dataset=sim, seed=9, limit=3))
    assert [s.incident for s in specs] == ["sim-1-0001", "sim-1-0002", "sim-1-0003"]
    assert {s.method for s in specs} == {"random"}
    assert all(s.params == {"seed": 9} for s in specs)
    assert specs[0].labels.fault_type == "cpu"
    assert specs[0].dataset == str(sim)
    explicit = BenchConfig(methods=("random",), dataset=sim, seed=9, params={"random": {"seed": 1}})
    assert plan_cases(explicit)[0].params == {"seed": 1}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (BenchConfig(methods=("nope",), dataset=Path(".")), "unknown method 'nope'"),
        (BenchConfig(methods=("random",), dataset=Path("/no/such")), "does not exist"),
        (BenchConfig(methods=(), dataset=Path(".")), "no method given"),
        (
            BenchConfig(methods=("random",), dataset=Path("."), workers=2, scheduler="x:1"),
            "exclude each other",
        ),
    ],
)
def test_plan_cases_rejects_bad_input(config: BenchConfig, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        plan_cases(config)


# --- running ------------------------------------------------------------------------------


def test_local_cluster_results_do_not_depend_on_worker_count(sim: Path) -> None:
    runs = [
        run_bench(BenchConfig(methods=("random",), dataset=sim, seed=2, workers=w)) for w in (1, 2)
    ]
    one, two = (without_measurements(bench_json(run)) for run in runs)
    assert one == two
    assert one["seed"] == 2
    assert [c["incident"] for c in one["cases"]] == [f"sim-1-000{i}" for i in range(1, 5)]
    for row in one["cases"]:
        assert row["error"] is None
        assert row["params"] == {"seed": 2}
        rank = row["service_rank"]
        assert rank is not None  # random ranks every service in the telemetry
        if rank <= 5:
            assert row["top_services"][rank - 1] == row["labels"]["service"]
        else:
            assert row["labels"]["service"] not in row["top_services"]
    result = one["results"][0]
    assert (result["n"], result["service"]["n"], result["instance"]["n"]) == (4, 4, 4)
    assert list(result["by_fault_type"]) == ["cpu", "latency", "memory", "network"]
    case_rows = runs[0].cases
    assert all(c.localize_seconds is not None and c.peak_rss_mb for c in case_rows)


class Explodes(Method):
    """Test-only: ranks the labelled service first, except that it raises for one incident."""

    name = "explodes"
    tags = Tags()

    def __init__(self, *, victim: str = "sim-1-0002") -> None:
        self.victim = victim

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        if incident.id == self.victim:
            raise RuntimeError(f"boom on {incident.id}")
        truth = incident.labels.service if incident.labels else None
        return Ranking(
            services=[Candidate(kind="service", name=truth or "?", score=1.0)],
            fault_type="cpu",
        )


def explodes_factory(name: str, **params: Any) -> Method:
    assert name == "explodes"
    return Explodes(**params)


def test_a_failing_case_is_an_error_row_and_a_miss(sim: Path, tmp_path: Path) -> None:
    specs = [
        replace(spec, method="explodes", params={})
        for spec in plan_cases(BenchConfig(methods=("random",), dataset=sim))
    ]
    specs.append(replace(specs[0], incident="sim-1-0009", method="explodes"))
    cases = [run_case(spec, explodes_factory) for spec in specs]
    errors = {c.incident: c.error for c in cases if c.error is not None}
    assert errors == {
        "sim-1-0002": "RuntimeError: boom on sim-1-0002",
        "sim-1-0009": errors["sim-1-0009"],
    }
    assert "BadInput" in str(errors["sim-1-0009"])
    failed = next(c for c in cases if c.incident == "sim-1-0002")
    assert (failed.service_rank, failed.top_services, failed.localize_seconds) == (None, (), None)
    assert failed.load_seconds is not None
    hit = next(c for c in cases if c.incident == "sim-1-0001")
    assert (hit.service_rank, hit.predicted_fault_type, hit.instance_rank) == (1, "cpu", None)

    [summary] = summarize(cases)
    assert summary.overall.service.n == 5
    assert summary.overall.service.ac_at(1) == 0.6
    assert [incident for incident, _ in summary.errors] == ["sim-1-0002", "sim-1-0009"]
    run = BenchRun(version="t", seed=0, dataset=str(sim), cases=cases, summaries=[summary])
    text = markdown(run)
    assert "| explodes | sim-1-0002 | RuntimeError: boom on sim-1-0002 |" in text
    files = write_report(run, tmp_path / "out")
    assert files.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_escapes_cells_and_reports_missing_scores() -> None:
    cases = [case("a", 1, error="ValueError: a | b\nsecond line")]
    run = BenchRun(version="t", seed=0, dataset="d", cases=cases, summaries=summarize(cases))
    text = markdown(run)
    assert "| m | a | ValueError: a \\| b second line |" in text
    assert "| m | d | 1 | 0.000 |" in text
    assert "n/a" in text  # no instance labels: the instance scores do not exist


def test_chart_has_a_panel_per_method(tmp_path: Path) -> None:
    cases = [
        case(f"{method}-{i}", i % 6 or None, method=method, fault_type=fault)
        for method in ("alpha", "beta", "gamma")
        for i, fault in enumerate(["cpu", "memory", "network", "error", "latency", "cpu"])
    ]
    path = accuracy_chart(summarize(cases), tmp_path / "acc.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="nothing to draw"):
        accuracy_chart([], tmp_path / "empty.png")
