"""`bench` on agent runs: Who&When's scoring (agent and step accuracy, AC@3, missing
predictions, name normalisation, integer steps) and the with/without ground-truth split,
on small run files written by the tests."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cli_helpers import assert_bad_input, run_cli

from tracehound.bench import BenchConfig, bench_json, plan_cases, run_case, summarize
from tracehound.bench.runner import BenchRun
from tracehound.methods import Method, Tags
from tracehound.model import Candidate, Incident, Ranking
from tracehound.store import TelemetryStore

#: (file stem, labelled agent, labelled step, agents of the steps in order)
RUNS = [
    ("1", "Excel_Expert", 0, ["Excel_Expert", "Computer_terminal", "Checker_Expert"]),
    ("2", "WebSurfer", 2, ["Orchestrator", "WebSurfer", "WebSurfer (thought)"]),
    ("3", "DataVerification_Expert", 1, ["Lead_Expert", "DataVerification_Expert"] * 6),
    ("4", "Lead_Expert", 1, ["Lead_Expert", "Lead_Expert", "Computer_terminal"]),
    ("5", "Checker_Expert", 2, ["Lead_Expert", "Computer_terminal", "Checker_Expert"]),
]


def write_runs(root: Path, *, with_answers: bool = True) -> Path:
    folder = root / "Algorithm-Generated"
    folder.mkdir(parents=True)
    for stem, agent, step, agents in RUNS:
        run: dict[str, Any] = {
            "question": f"question {stem}",
            "history": [
                {"name": a, "role": "user", "content": f"{a} says {i}"}
                for i, a in enumerate(agents)
            ],
            "mistake_agent": agent,
            "mistake_step": str(step),
        }
        if with_answers:
            run["ground_truth"] = f"answer {stem}"
        (folder / f"{stem}.json").write_text(json.dumps(run))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_runs(tmp_path_factory.mktemp("runs"))


class Scripted(Method):
    """Test-only: predicts per run from `WITH` when it reads the run's answer, from
    `WITHOUT` otherwise, and checks that it reads the answer only when allowed."""

    name = "scripted"
    tags = Tags()
    #: run id -> (agents best first, steps best first)
    WITH: ClassVar[dict[str, tuple[list[str], list[int]]]] = {
        "ww-algorithm-generated-1": (["excel_expert", "Checker_Expert"], [0, 1]),
        "ww-algorithm-generated-2": (["Websurfer (thought)"], [2]),
        "ww-algorithm-generated-3": (["Verification_Expert"], [10]),
        "ww-algorithm-generated-4": ([], []),
        "ww-algorithm-generated-5": (["Lead_Expert", "Checker_Expert"], [0, 1, 2]),
    }
    WITHOUT: ClassVar[dict[str, tuple[list[str], list[int]]]] = {
        "ww-algorithm-generated-1": (["Checker_Expert"], [1]),
    }

    def __init__(self, *, use_ground_truth: bool = True) -> None:
        self.use_ground_truth = use_ground_truth

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        has_answer = "ground_truth" in incident.attributes
        assert has_answer == self.use_ground_truth
        agents, steps = (self.WITH if has_answer else self.WITHOUT).get(incident.id, ([], []))
        return Ranking(
            services=[
                Candidate(kind="service", name=a, score=-float(i)) for i, a in enumerate(agents)
            ],
            spans=[
                Candidate(kind="span", name=f"step-{s}", score=-float(i))
                for i, s in enumerate(steps)
            ],
        )


def scripted_factory(name: str, **params: Any) -> Method:
    return Scripted(**params)


def scripted_run(dataset: Path, **config: Any) -> BenchRun:
    """Plan with a registered method that has `use_ground_truth`, run `Scripted`."""
    specs = [
        replace(spec, method="scripted")
        for spec in plan_cases(BenchConfig(methods=("all-at-once",), dataset=dataset, **config))
    ]
    cases = [run_case(spec, scripted_factory) for spec in specs]
    return BenchRun("t", 0, str(dataset), cases, summarize(cases))


def test_agent_and_step_accuracy_with_and_without_the_answer(runs: Path) -> None:
    result = bench_json(scripted_run(runs))
    assert [(r["method"], r["ground_truth"]) for r in result["results"]] == [
        ("scripted", "with"),
        ("scripted", "without"),
    ]
    with_gt, without_gt = result["results"]
    # agents: 1 by case, 2 without its " (...)" suffix; 3 is not a substring match;
    # 4 predicted nothing; 5 ranks the agent second
    assert with_gt["service"] == {
        "ac@1": 0.4,
        "ac@3": 0.6,
        "ac@5": 0.6,
        "avg@5": pytest.approx(0.56),
        "mrr": pytest.approx((1 + 1 + 0.5) / 5),
        "n": 5,
    }
    # steps: 1 and 2 right; 3 predicts step 10 for label 1 (no substring match); 4 nothing;
    # 5 ranks the labelled step third
    assert (with_gt["span"]["ac@1"], with_gt["span"]["ac@3"], with_gt["span"]["n"]) == (0.4, 0.6, 5)
    assert with_gt["instance"]["n"] == 0
    # without the answer only run 1 gets a prediction, and a wrong one at rank 1
    assert (without_gt["service"]["ac@1"], without_gt["span"]["ac@1"]) == (0.0, 0.0)
    assert without_gt["n"] == 5
    first = next(c for c in result["cases"] if c["incident"].endswith("-1"))
    assert first["labels"] == {
        "service": "Excel_Expert",
        "instance": None,
        "fault_type": "agent_mistake",
        "span": "step-0",
        "step": 0,
    }
    assert (first["service_rank"], first["span_rank"], first["top_spans"]) == (
        1,
        1,
        ["step-0", "step-1"],
    )
    assert {c["params"]["use_ground_truth"] for c in result["cases"]} == {True, False}


@pytest.mark.parametrize(
    ("config", "settings"),
    [
        ({}, [True, False]),
        ({"ground_truth": "with"}, [True]),
        ({"ground_truth": "without"}, [False]),
        ({"params": {"all-at-once": {"use_ground_truth": False}}}, [False]),
    ],
)
def test_ground_truth_settings(runs: Path, config: dict[str, Any], settings: list[bool]) -> None:
    specs = plan_cases(BenchConfig(methods=("all-at-once", "random"), dataset=runs, **config))
    protocol = [s for s in specs if s.method == "all-at-once"]
    assert list(dict.fromkeys(s.ground_truth for s in protocol)) == settings
    assert all(s.params["use_ground_truth"] is s.ground_truth for s in protocol)
    assert {s.ground_truth for s in specs if s.method == "random"} == {None}  # no parameter
    assert len(specs) == 5 * (len(settings) + 1)


def test_runs_without_answers_run_once(tmp_path: Path) -> None:
    dataset = write_runs(tmp_path, with_answers=False)
    specs = plan_cases(BenchConfig(methods=("all-at-once",), dataset=dataset))
    assert [s.ground_truth for s in specs] == [None] * 5
    assert all("use_ground_truth" not in s.params for s in specs)


def test_bench_json_on_runs_has_a_span_level(runs: Path, tmp_path: Path) -> None:
    result = run_cli(
        "bench", "-m", "random", "-d", str(runs), "--json", "--out", str(tmp_path / "out")
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [row] = data["results"]
    assert row["ground_truth"] is None
    assert set(row["span"]) == set(row["service"]) == {"ac@1", "ac@3", "ac@5", "avg@5", "mrr", "n"}
    assert (row["service"]["n"], row["span"]["n"]) == (5, 5)
    for case in data["cases"]:
        assert case["span_rank"] is not None  # random ranks every step
        assert case["top_spans"][0].startswith("step-")
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "span AC@1" in markdown


def test_bad_ground_truth_setting_is_bad_input(runs: Path, tmp_path: Path) -> None:
    result = run_cli(
        "bench", "-m", "random", "-d", str(runs), "--ground-truth", "maybe", "--out", str(tmp_path)
    )
    assert_bad_input(result, "--ground-truth 'maybe'", "both, with, without")
