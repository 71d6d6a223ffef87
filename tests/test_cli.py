"""The command line, run as a user runs it: a subprocess, exit codes, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from cli_helpers import assert_bad_input, run_cli
from tiny import tiny_incident

from tracehound.bundle import write_bundle


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args)


def test_info_on_bundles_json(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path / "a")
    result = run("datasets", "info", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["kind"] == "bundles"
    assert info["incidents"] == 1
    assert info["fault_types"] == {"cpu": 1}
    assert info["modalities"] == ["traces", "logs", "metrics"]
    assert info["systems"] == ["tiny"]


def test_info_table_output(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path / "a")
    result = run("datasets", "info", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "bundles" in result.stdout
    assert "cpu" in result.stdout


def test_convert_round_trip_via_cli(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path / "src" / "a", "csv")
    result = run("datasets", "convert", str(tmp_path / "src"), str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [b["id"] for b in payload["bundles"]] == ["tiny-0001"]
    assert (tmp_path / "out" / "tiny-0001" / "spans.parquet").is_file()


def test_nonexistent_path_exits_2() -> None:
    assert_bad_input(
        run("datasets", "info", "/no/such/dataset"), "/no/such/dataset", "does not exist"
    )


def test_unknown_layout_exits_2(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    assert_bad_input(run("datasets", "info", str(tmp_path)), "is not a dataset layout")


def test_bundle_missing_incident_json_exits_2(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path / "a")
    (tmp_path / "a" / "incident.json").unlink()
    result = run("datasets", "convert", str(tmp_path / "a"), str(tmp_path / "out"))
    assert_bad_input(result, str(tmp_path / "a"), "bundle is missing incident.json")


def test_truncated_csv_exits_2(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path / "a", "csv")
    spans = tmp_path / "a" / "spans.csv"
    text = spans.read_text()
    spans.write_text(text[: len(text) // 2])
    result = run("datasets", "convert", str(tmp_path), str(tmp_path / "out"))
    assert_bad_input(result, str(spans), "truncated")


def test_wrong_column_type_exits_2(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path / "a", "csv")
    path = tmp_path / "a" / "spans.csv"
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    durations = [str(v) for v in table.column("duration_ns").to_pylist()]
    durations[1] = "slow"
    index = table.column_names.index("duration_ns")
    pacsv.write_csv(table.set_column(index, "duration_ns", pa.array(durations)), path)
    result = run("datasets", "convert", str(tmp_path), str(tmp_path / "out"))
    assert_bad_input(result, str(path), "row 2", "column 'duration_ns'", "expected an integer")


def test_unknown_option_is_a_usage_error() -> None:
    result = run("datasets", "info", "--bogus")
    assert result.returncode == 2
    assert "No such option" in result.stderr


@pytest.mark.parametrize("command", [["--help"], ["datasets", "--help"], ["simulate", "--help"]])
def test_help_explains(command: list[str]) -> None:
    result = run(*command)
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_simulate_spans_scales_the_traffic(tmp_path: Path) -> None:
    """`--spans` sets about how many spans an incident holds (default 5,000)."""
    import pyarrow.parquet as pq

    counts = {}
    for spans in ("2000", "20000"):
        out = tmp_path / spans
        result = run(
            "simulate",
            "--services",
            "8",
            "--incidents",
            "1",
            "--seed",
            "3",
            "--spans",
            spans,
            str(out),
        )
        assert result.returncode == 0, result.stderr
        counts[spans] = pq.read_metadata(out / "sim-3-0001" / "spans.parquet").num_rows
    # the seeded draw gives these exact counts, each within 10 % of its target
    assert counts == {"2000": 2_188, "20000": 21_587}
    too_few = run("simulate", "--spans", "10", str(tmp_path / "x"))
    assert too_few.returncode == 2
    assert "--spans" in too_few.stderr


def test_simulate_then_info(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = run(
        "simulate", "--services", "8", "--incidents", "2", "--seed", "3", str(out), "--json"
    )
    assert result.returncode == 0, result.stderr
    bundles = json.loads(result.stdout)["bundles"]
    assert [Path(b).name for b in bundles] == ["sim-3-0001", "sim-3-0002"]
    info = json.loads(run("datasets", "info", str(out), "--json").stdout)
    assert info["incidents"] == 2
    assert info["fault_types"] == {"cpu": 1, "memory": 1}
    assert info["systems"] == ["sim-3"]
    again = tmp_path / "again"
    assert (
        run("simulate", "--services", "8", "--incidents", "2", "--seed", "3", str(again)).returncode
        == 0
    )
    for name in ("incident.json", "spans.parquet", "metrics.parquet", "logs.parquet"):
        assert (out / "sim-3-0002" / name).read_bytes() == (
            again / "sim-3-0002" / name
        ).read_bytes()


def test_demo_shows_the_incident(tmp_path: Path) -> None:
    result = run("demo", "--out", str(tmp_path), "--fault", "error", "--seed", "2")
    assert result.returncode == 0, result.stderr
    assert "ground truth" in result.stdout
    assert "error at" in result.stdout
    assert "showing the error paths" in result.stdout
    assert (tmp_path / "sim-2-0001" / "incident.json").is_file()


def test_demo_rejects_unknown_fault() -> None:
    assert_bad_input(run("demo", "--fault", "gremlins"), "unknown fault 'gremlins'", "cpu, memory")


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "kind", "incidents", "fault_types", "modalities"),
    [
        (
            "nezha",
            "nezha",
            28,
            {"exception": 13, "return": 11, "cpu_contention": 4},
            ["traces", "logs", "metrics"],
        ),
        ("rcd-sockshop", "rcd", 50, {"cpu": 25, "mem": 25}, ["metrics"]),
        ("who-and-when", "who-and-when", 126, {"agent_mistake": 126}, ["traces", "logs"]),
    ],
)
def test_info_on_the_development_datasets(
    name: str, kind: str, incidents: int, fault_types: dict[str, int], modalities: list[str]
) -> None:
    if not (SHARED / name).is_dir():
        pytest.skip(f"{SHARED / name} is not present")
    result = run("datasets", "info", str(SHARED / name), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["kind"], info["incidents"], info["fault_types"]) == (kind, incidents, fault_types)
    assert info["modalities"] == modalities
    assert info["missing"] == []


def test_bench_json_writes_results_chart_and_markdown(tmp_path: Path) -> None:
    from tracehound.simulate import simulate_dataset

    simulate_dataset(tmp_path / "sim", services=8, incidents=3, seed=4)
    out = tmp_path / "out"
    result = run(
        "bench", "--method", "random", "--dataset", str(tmp_path / "sim"), "--json",
        "--workers", "1", "--out", str(out), "--seed", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.count("\n") == 1
    payload = json.loads(result.stdout)
    assert set(payload) == {"version", "seed", "dataset", "results", "cases"}
    assert (payload["seed"], payload["dataset"]) == (3, str(tmp_path / "sim"))
    [summary] = payload["results"]
    assert set(summary) == {
        "method", "dataset", "ground_truth", "n", "service", "instance", "span",
        "fault_type", "by_fault_type", "by_system", "time_s", "load_time_s", "peak_rss_mb",
        "errors",
    }  # fmt: skip
    # random predicts no fault type: every labelled case is a miss
    assert summary["fault_type"] == {"accuracy": 0.0, "n": 3}
    assert set(summary["service"]) == {"ac@1", "ac@3", "ac@5", "avg@5", "mrr", "n"}
    # simulated incidents carry no step label and no reference answer
    assert (summary["span"]["n"], summary["ground_truth"]) == (0, None)
    assert (summary["method"], summary["n"], summary["errors"]) == ("random", 3, [])
    assert list(summary["by_fault_type"]) == ["cpu", "latency", "memory"]
    assert [c["incident"] for c in payload["cases"]] == ["sim-4-0001", "sim-4-0002", "sim-4-0003"]
    assert json.loads((out / "results.json").read_text()) == payload
    assert (out / "results.md").read_text().startswith("# tracehound bench")
    assert (out / "acc.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_rejects_unknown_method_listing_the_methods(tmp_path: Path) -> None:
    result = run("bench", "--method", "nope", "--dataset", str(tmp_path))
    assert_bad_input(result, "unknown method 'nope'", "random", "tracehound methods list")


def test_bench_rejects_workers_with_scheduler(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path / "a")
    result = run(
        "bench", "-m", "random", "-d", str(tmp_path), "--workers", "2",
        "--scheduler", "tcp://127.0.0.1:8786",
    )  # fmt: skip
    assert_bad_input(result, "--workers and --scheduler exclude each other")


def test_bench_rejects_a_path_that_is_not_a_dataset() -> None:
    assert_bad_input(run("bench", "-m", "random", "-d", "/no/such/dataset"), "does not exist")


def test_bench_help_has_an_example() -> None:
    result = run("bench", "--help")
    assert result.returncode == 0
    assert "tracehound bench --method random" in " ".join(result.stdout.split())
