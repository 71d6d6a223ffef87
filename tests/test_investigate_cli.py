"""`tracehound investigate`, run as a user runs it: a subprocess, exit codes, stdout, stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_helpers import assert_bad_input, run_cli
from tiny import tiny_incident

from tracehound.bundle import write_bundle
from tracehound.model import IncidentData


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("investigate", *args, cwd=cwd, columns=100)


def renamed(data: IncidentData, new_id: str) -> IncidentData:
    incident = data.incident.model_copy(update={"id": new_id})
    return IncidentData(incident=incident, spans=data.spans, metrics=data.metrics, logs=data.logs)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_bundle(tiny_incident(), tmp_path / "data" / "tiny-0001")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "many"
    for name in ("inc-a", "inc-b", "inc-c"):
        write_bundle(renamed(tiny_incident(), name), root / name)
    return root


def test_json_prints_exactly_one_object(bundle: Path) -> None:
    result = run(str(bundle), "--method", "random", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("incident", "ranking", "root_cause", "fault_type", "evidence_graph", "stats"):
        assert key in data
    assert data["incident"]["id"] == "tiny-0001"
    assert data["method"] == "random"
    assert {c["name"] for c in data["ranking"] if c["kind"] == "service"} == {"db", "front"}
    assert set(data["ranking"][0]) == {"kind", "name", "score", "reason"}
    assert data["root_cause"]["service"] == data["ranking"][0]["name"]
    assert data["modalities"] == ["traces", "logs", "metrics"]
    assert data["stats"]["wall_time_s"] >= 0
    assert data["stats"]["load_time_s"] >= 0


def test_json_passes_method_parameters(bundle: Path) -> None:
    first = run(str(bundle), "-m", "random", "-f", "json", "--param", "seed=1")
    again = run(str(bundle), "-m", "random", "-f", "json", "-p", "seed=1")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["ranking"] == json.loads(again.stdout)["ranking"]
    assert_bad_input(
        run(str(bundle), "-m", "random", "-p", "nope=1"), "method 'random' has no parameter"
    )
    assert_bad_input(run(str(bundle), "-m", "random", "-p", "seed"), "expected NAME=VALUE")


def test_html_writes_the_page(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "report" / "X.html"
    result = run(str(bundle), "--method", "random", "--format", "html", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert str(out) in " ".join(result.stderr.split())
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "tiny-0001" in page
    assert "The Cytoscape Consortium" in page


def test_html_defaults_to_the_incident_id_in_the_current_directory(
    bundle: Path, tmp_path: Path
) -> None:
    result = run(str(bundle), "-m", "random", "-f", "html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tiny-0001.html").is_file()


def test_markdown_to_a_file_and_text_to_stdout(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    result = run(str(bundle), "-m", "random", "-f", "md", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8").startswith("# Investigation of incident `tiny-0001`")
    text = run(str(bundle), "-m", "random")
    assert text.returncode == 0, text.stderr
    assert "Root cause" in text.stdout
    assert "confidence  not estimated (ranking only)" in text.stdout


def test_dataset_picks_the_incident_by_id(dataset: Path) -> None:
    result = run(str(dataset), "--incident", "inc-b", "-m", "random", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["incident"]["id"] == "inc-b"


def test_dataset_with_several_incidents_needs_an_id(dataset: Path) -> None:
    result = run(str(dataset), "-m", "random")
    assert_bad_input(
        result, "holds 3 incidents; choose one with --incident ID", "inc-a, inc-b, inc-c"
    )


def test_single_incident_dataset_needs_no_id(bundle: Path) -> None:
    result = run(str(bundle.parent), "-m", "random", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["incident"]["id"] == "tiny-0001"


def test_unknown_incident_exits_2(dataset: Path) -> None:
    result = run(str(dataset), "--incident", "inc-z", "-m", "random")
    assert_bad_input(result, "no incident with id 'inc-z'", "one of inc-a, inc-b, inc-c")


def test_unknown_method_and_format_exit_2(bundle: Path) -> None:
    assert_bad_input(run(str(bundle), "-m", "nope"), "unknown method 'nope'", "random")
    assert_bad_input(run(str(bundle), "-m", "random", "-f", "pdf"), "unknown report format 'pdf'")


def test_help_has_examples() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "tracehound investigate" in result.stdout
    assert "--incident" in result.stdout
