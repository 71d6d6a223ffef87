"""rclagent on agent runs: the step tools, the rules, the engine and its reports."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tracehound.datasets.whowhen import WhoWhenDataset
from tracehound.investigation import Investigation
from tracehound.rclagent import RclAgentMethod
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.steps.run import AgentRun, Step, is_agent_run, load_run
from tracehound.rclagent.steps.tools import StepToolbox
from tracehound.report import render
from tracehound.store import TelemetryStore

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "who-and-when"
QUESTION = "How many blue marbles are in the jar described in the attached file?"
FILLER = " Let me describe what we know so far in some detail." * 8


def _run(texts: list[tuple[str, str]], *, truth: str | None = None) -> AgentRun:
    steps = tuple(
        Step(i, f"step-{i}", agent, "user", text, text.startswith("exitcode"))
        for i, (agent, text) in enumerate(texts)
    )
    return AgentRun("t", steps, QUESTION, truth)


def _toolbox(texts: list[tuple[str, str]], *, truth: str | None = None) -> StepToolbox:
    return StepToolbox(_run(texts, truth=truth), EvidenceLedger())


# -- tools ---------------------------------------------------------------------------


def test_step_text() -> None:
    box = _toolbox(
        [
            ("Planner", "Plan:" + FILLER),
            ("Coder", "Run this:\n```python\nprint(1)\n```"),
            ("Runner", "exitcode: 0 (execution succeeded)\nCode output: 1\n"),
            ("Planner", "TERMINATE"),
        ]
    )
    plan, code, output, bye = (box.step_text(i) for i in range(4))
    assert (plan.handoff, plan.code, plan.tool_output) == (False, None, False)
    assert code.code is not None and code.code.text.startswith("Run this:\n```python")
    assert (code.code.step, code.code.span_id, code.code.start) == (1, "step-1", 0)
    assert len(code.evidence) == 1 and not code.handoff
    assert (output.tool_output, output.handoff) == (True, False)
    assert (bye.handoff, bye.chars, bye.agent) == (True, 9, "Planner")


def test_failure_signals() -> None:
    text = (
        "exitcode: 1 (execution failed)\nCode output: Traceback (most recent call last):\n"
        '  File "x.py"\nFileNotFoundError: No such file or directory: data.csv'
    )
    box = _toolbox([("Coder", "x"), ("Runner", text), ("Coder", "I cannot open the page.")])
    found = box.failure_signals(1)
    assert found.kinds == ("non-zero exit code", "exception", "not found")
    assert all(q.text == text[q.start : q.end] for q in found.quotes)
    assert len(found.evidence) == 3
    assert box.failure_signals(2).kinds == ("refusal",)
    assert box.failure_signals(0).kinds == ()
    empty = _toolbox([("Runner", "exitcode: 0 (execution succeeded)\nCode output: \n")])
    assert empty.failure_signals(0).kinds == ("empty result",)


def test_code_execution() -> None:
    box = _toolbox(
        [
            ("Coder", "```python\nopen('x')\n```"),
            ("Runner", "exitcode: 1 (execution failed)\nCode output: Timeout"),
            ("Coder", "```python\nprint(2)\n```"),
            ("Runner", "exitcode: 0 (execution succeeded)\nCode output: 2"),
            ("Coder", "No code here." + FILLER),
        ]
    )
    failed, ok, none = box.code_execution(0), box.code_execution(2), box.code_execution(4)
    assert (failed.result_step, failed.failed) == (1, True)
    assert [q.what for q in failed.quotes] == ["non-zero exit code", "time-out"]
    assert (ok.result_step, ok.failed, ok.quotes) == (3, False, ())
    assert (none.result_step, none.failed) == (None, False)


def test_unverified_claims() -> None:
    box = _toolbox(
        [
            ("Analyst", "We could not load it, so let's assume the jar holds 40 marbles."),
            ("A", "ok"),
        ]
    )
    found = box.unverified_claims(0)
    assert [q.what for q in found.quotes] == ["unverified claim (assume)"]
    assert box.unverified_claims(1).quotes == ()


def test_answer_origin_with_and_without_truth() -> None:
    texts = [
        ("Planner", QUESTION),
        ("Coder", "```python\nprint(12 * 3)\n```"),
        ("Runner", "exitcode: 0 (execution succeeded)\nCode output: 36\n"),
        ("Checker", "The jar holds **36** blue marbles, as computed. TERMINATE"),
    ]
    blind = _toolbox(texts)
    origin = blind.answer_origin(2)
    assert (origin.value, origin.final_step, origin.introduces, origin.agrees) == (
        "36",
        3,
        True,
        None,
    )
    assert origin.quotes[0].text.endswith("Code output: 36\n")
    assert not blind.answer_origin(3).introduces
    assert _toolbox(texts, truth="36").answer_origin(2).agrees is True
    assert _toolbox(texts, truth="40").answer_origin(2).agrees is False


def test_contradiction() -> None:
    box = _toolbox(
        [
            ("Coder", "```python\nx()\n```"),
            ("Runner", "exitcode: 1 (execution failed)\nCode output: NameError: x"),
            ("Checker", "The code ran successfully and the result is verified."),
            ("Checker", "All good."),
        ]
    )
    found = box.contradiction(2)
    assert found.failed_step == 1
    assert [q.what for q in found.quotes] == [
        "non-zero exit code",
        "claims success after a failure",
    ]
    assert box.contradiction(3).failed_step is None


def test_task_statement() -> None:
    stated = _toolbox([("Planner", "# Task\n" + QUESTION)]).task_statement(0)
    assert (stated.coverage, stated.misstated) == (1.0, False)
    other = _toolbox([("Planner", "Debug the script that fails with exit code 1.")])
    found = other.task_statement(0)
    assert found.misstated and found.coverage == pytest.approx(1 / 11)  # "the"
    assert found.quotes[0].what == "states another task"


# -- the engine on small runs ----------------------------------------------------------


def _write(folder: Path, name: str, run: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(run), encoding="utf-8")


def _history(*steps: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": agent, "role": "user", "content": text} for agent, text in steps]


def _investigate(root: Path, name: str, **params: Any) -> Investigation:
    dataset = WhoWhenDataset(root)
    run = next(r for r in dataset.incidents() if r.id.endswith(f"-{name}"))
    data = dataset.load(run.id)
    with TelemetryStore.from_incident(data) as store:
        return RclAgentMethod(**params).investigate(data.incident, store)


def _blamed(result: Investigation) -> tuple[str, str]:
    return result.ranking.services[0].name, result.ranking.spans[0].name


RELAY = "You are given a task.\n# General Task\n" + QUESTION + FILLER
OUTPUT_OK = "exitcode: 0 (execution succeeded)\nCode output: 12\n"


def _small_runs(root: Path) -> None:
    folder = root / "Synthetic"
    _write(
        folder,
        "1",  # the first step states another task than the question
        {
            "question": QUESTION,
            "history": _history(
                ("Lead", "# General Task\nexitcode: 1 unknown language" + FILLER),
                ("Coder", "Let me look.\n```python\nprint(1)\n```"),
                ("Runner", OUTPUT_OK),
                ("Checker", "TERMINATE"),
            ),
        },
    )
    _write(
        folder,
        "2",  # an agent assumes data instead of reading it
        {
            "question": QUESTION,
            "history": _history(
                ("Lead", RELAY),
                ("Planner", "Here is a plan." + FILLER),
                ("Coder", "```python\nprint(len(open('f').read()))\n```"),
                ("Runner", OUTPUT_OK),
                (
                    "Analyst",
                    "The file is unclear, so let's assume 12 marbles.\n```python\nprint(12)\n```",
                ),
                ("Runner", OUTPUT_OK),
                ("Checker", "The answer is **12**. TERMINATE"),
            ),
        },
    )
    _write(
        folder,
        "3",  # code fails; the runner's output is not the culprit, its author is
        {
            "question": QUESTION,
            "history": _history(
                ("Lead", RELAY),
                ("Coder", "```python\ncount = jar.blue\nprint(count)\n```"),
                ("Runner", "exitcode: 1 (execution failed)\nCode output: NameError: jar"),
                ("Checker", "The result has been verified and is correct." + FILLER),
                ("Runner", "There is no code from the last 1 message for me to execute."),
                ("Checker", "TERMINATE"),
            ),
        },
    )
    human = [{"role": "human", "content": QUESTION}]
    talk = [
        {"role": "Orchestrator (thought)", "content": "Next, ask the browser." + FILLER},
        {"role": "Orchestrator (-> WebSurfer)", "content": "Open the product page."},
        {"role": "WebSurfer", "content": "I opened the page and read it." + FILLER},
    ]
    guess = {
        "role": "WebSurfer",
        "content": "The page did not load, so I will assume it lists 30 marbles." + FILLER,
    }
    _write(
        root / "Long",
        "4",  # a long run in the other schema: roles with suffixes, a human question first
        {
            "question": QUESTION,
            "history": human + talk + [talk[0], guess] + talk * 15,
        },
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    _small_runs(root)
    return root


@pytest.mark.parametrize(
    ("name", "agent", "step"),
    [
        ("1", "Lead", "step-0"),
        ("2", "Analyst", "step-4"),
        ("3", "Coder", "step-1"),
        ("4", "WebSurfer", "step-5"),
    ],
)
def test_blamed_agent_and_step(runs: Path, name: str, agent: str, step: str) -> None:
    assert _blamed(_investigate(runs, name)) == (agent, step)


def test_ranking_lists_every_step_tool_output_last(runs: Path) -> None:
    result = _investigate(runs, "3")
    assert [c.name for c in result.ranking.spans] == [
        "step-1",
        "step-3",
        "step-0",  # the relay and the hand-off score alike: the earlier first
        "step-5",
        "step-2",
        "step-4",
    ]
    assert [c.name for c in result.ranking.services] == ["Coder", "Checker", "Lead", "Runner"]
    assert all(c.kind == "span" for c in result.ranking.spans)
    assert result.ranking.instances == []


def test_agent_runs_are_recognised_by_the_kind_attribute(runs: Path) -> None:
    incident = WhoWhenDataset(runs).incidents()[0]
    assert is_agent_run(incident)
    assert not is_agent_run(incident.model_copy(update={"attributes": {}}))


def test_executor_recognised_by_behaviour(runs: Path) -> None:
    dataset = WhoWhenDataset(runs)
    data = dataset.load("ww-synthetic-3")
    with TelemetryStore.from_incident(data) as store:
        run = load_run(data.incident, store, use_ground_truth=True)
    # the runner's "no code" reply is tool output too: most of its steps are
    assert [s.tool_output for s in run.steps] == [False, False, True, False, True, False]


# -- the reference answer -------------------------------------------------------------


def _truth_runs(root: Path) -> None:
    handoff = [("Helper", f"Thanks, go on {i}.") for i in range(1, 5)]
    history = _history(
        ("Lead", RELAY),
        *handoff,
        ("Coder", "```python\nprint(count_blue())\n```"),
        ("Runner", OUTPUT_OK),
        ("Fixer", "```python\nprint(count_blue() + 61)\n```"),
        ("Runner", "exitcode: 0 (execution succeeded)\nCode output: 73\n"),
        ("Checker", "So the jar holds **73** blue marbles. TERMINATE"),
    )
    for name, truth in (("1", "73"), ("2", "40"), ("3", None)):
        run: dict[str, Any] = {"question": QUESTION, "history": history}
        if truth is not None:
            run["ground_truth"] = truth
        _write(root / "Truth", name, run)


def test_use_ground_truth_false_never_reads_it(tmp_path: Path) -> None:
    _truth_runs(tmp_path)
    # the reference answer agrees with the final value: its origin is not suspicious
    assert _blamed(_investigate(tmp_path, "1")) == ("Coder", "step-5")
    assert _blamed(_investigate(tmp_path, "2")) == ("Fixer", "step-7")
    assert _blamed(_investigate(tmp_path, "3")) == ("Fixer", "step-7")
    blind = [_investigate(tmp_path, n, use_ground_truth=False) for n in ("1", "2", "3")]
    assert {_blamed(r) for r in blind} == {("Fixer", "step-7")}
    assert {r.stats["ground_truth_used"] for r in blind} == {False}
    assert blind[0].ranking == blind[2].ranking


# -- reports --------------------------------------------------------------------------


def test_reports_show_agent_step_chain_and_quotes(runs: Path) -> None:
    result = _investigate(runs, "2")
    assert result.root_cause is not None
    assert (result.root_cause.service, result.root_cause.span_id) == ("Analyst", "step-4")
    assert [p.span_id for p in result.path] == ["step-4", "step-5", "step-6"]
    quotes = [n for n in result.evidence_graph.nodes if n.kind == "quote"]
    assert any(n.keys["span_id"] == "step-4" and "let's assume 12" in n.summary for n in quotes)
    text = render(result, "text")
    assert "Chain of steps (mistake → failure)" in text and "Analyst" in text
    assert "step-4 unverified claim (assume)" in text
    markdown = render(result, "md")
    assert "Chain of steps (mistake → failure)" in markdown
    data = json.loads(render(result, "json"))
    assert next(c["name"] for c in data["ranking"] if c["kind"] == "span") == "step-4"
    assert data["root_cause"]["span_id"] == "step-4"
    assert "Chain of steps" in render(result, "html")


# -- the real dataset -----------------------------------------------------------------


@pytest.mark.integration
def test_who_and_when_accuracy() -> None:
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

    from whowhen_rules import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main([str(REAL), "--json"])
    report = json.loads(out.getvalue())
    for setting in ("with_gt", "without_gt"):
        hits = {k: report[setting]["all"][k]["hits"] for k in ("agent", "step", "step_ac3")}
        assert hits == {"agent": 80, "step": 60, "step_ac3": 95}
