"""The Who&When LLM protocols (all-at-once, step-by-step, binary-search) with a scripted
model: the prompts sent, the parsing of answers, the control flow, the rankings.

No server, no network: `Scripted` answers from a list and keeps every request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracehound.datasets import open_dataset
from tracehound.llm.backend import Backend
from tracehound.llm.method_session import backend_override
from tracehound.llm.session import LLMSession
from tracehound.llm.types import Completion, Request, Usage
from tracehound.methods import get_method
from tracehound.methods.agent_run import RunStep, attribution_ranking
from tracehound.methods.failure_attribution import (
    LOCAL_STEP_CHARS,
    RunQuestion,
    all_at_once,
    binary_search,
    parse_all_at_once,
    step_by_step,
)
from tracehound.model import IncidentData
from tracehound.store import TelemetryStore

AGENTS = ["Planner_Expert", "Computer_terminal", "Coder_Expert", "Computer_terminal"]
AGENTS += ["Verifier_Expert", "Coder_Expert"]


class Scripted(Backend):
    """Answers with `answers` in order, the last one again and again; remembers the
    requests."""

    name = "scripted"

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.requests: list[Request] = []

    def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return Completion(answer, usage=Usage(100, 5))

    @property
    def prompts(self) -> list[str]:
        return [r.messages[-1].content for r in self.requests]

    @property
    def systems(self) -> list[str]:
        return [r.messages[0].content for r in self.requests]


def history(n: int = 6) -> list[RunStep]:
    return [RunStep(i, f"step-{i}", AGENTS[i], AGENTS[i], f"says {i}") for i in range(n)]


def question(n: int = 6, ground_truth: str | None = "42") -> RunQuestion:
    return RunQuestion(history(n), "What is six times seven?", ground_truth)


def session(model: Backend) -> LLMSession:
    return LLMSession(model, max_tokens=4096)


# --- all-at-once ----------------------------------------------------------------------------


def test_all_at_once_prompt_and_answer() -> None:
    model = Scripted("Agent Name: Coder_Expert\n Step Number: 2\n Reason for Mistake: wrong")
    found = all_at_once(session(model), question())
    assert (found.agent, found.step) == ("Coder_Expert", 2)
    [prompt] = model.prompts
    assert model.systems == ["You are a helpful assistant skilled in analyzing conversations."]
    assert prompt.startswith(
        "You are an AI assistant tasked with analyzing a multi-agent conversation history "
        "when solving a real world problem. The problem is:  What is six times seven?\n"
        "The Answer for the problem is: 42\n"
        "Identify which agent made an error, at which step, and explain the reason for the "
        "error. Here's the conversation:\n\n"
        "Planner_Expert: says 0\nComputer_terminal: says 1\nCoder_Expert: says 2\n"
    )
    assert "Coder_Expert: says 5\n\nBased on this conversation, please predict" in prompt
    assert "If the mistake is in agent c's speech, the step number is 2." in prompt
    assert prompt.endswith(
        "3. The reason for your prediction.Please answer in the format: Agent Name: "
        "(Your prediction)\n Step Number: (Your prediction)\n Reason for Mistake: \n"
    )
    assert model.requests[0].max_tokens == 1024
    assert model.requests[0].temperature == 0.0


def test_all_at_once_without_ground_truth_has_no_answer_line() -> None:
    model = Scripted("Agent Name: Coder_Expert\nStep Number: 2")
    all_at_once(session(model), question(ground_truth=None))
    assert "The Answer for the problem is" not in model.prompts[0]
    assert "The problem is:  What is six times seven?\nIdentify which agent" in model.prompts[0]


@pytest.mark.parametrize(
    ("answer", "agent", "step"),
    [
        ("Agent Name: coder_expert\nStep Number: 5", "Coder_Expert", 5),
        ("Agent Name: Verifier_Expert.\nStep Number: 04", "Verifier_Expert", 4),
        ("Agent Name: **Planner_Expert**\nStep Number: 0", "Planner_Expert", 0),
        ("Agent Name: Nobody_Expert\nStep Number: 3", None, 3),
        ("agent name: Coder_Expert\nstep number: 3", None, None),  # upstream is case-sensitive
        ("It was the coder, at the third step.", None, None),
        ("Agent Name: Coder_Expert (thought)\nStep Number: 12", "Coder_Expert", 12),
    ],
)
def test_all_at_once_parsing(answer: str, agent: str | None, step: int | None) -> None:
    assert parse_all_at_once(answer, history()) == (agent, step)


def test_agent_names_outside_word_characters_are_read_from_the_line() -> None:
    steps = [RunStep(0, "a", "web-surfer", "web-surfer", "x")]
    assert parse_all_at_once("Agent Name: Web-Surfer\nStep Number: 0", steps) == ("web-surfer", 0)


def test_all_at_once_without_an_answer_predicts_nothing() -> None:
    found = all_at_once(session(Scripted("   ")), question())
    assert (found.agent, found.step, found.note) == (None, None, "no answer")


# --- step-by-step ---------------------------------------------------------------------------


def test_step_by_step_stops_at_the_first_yes() -> None:
    model = Scripted(
        "1. No.\n2. Reason: fine",
        "Maybe?",  # neither: upstream warns and goes on
        "1. No. 2. Reason: fine",
        "  1. YES.\n2. Reason: the terminal output is ignored",
        "1. Yes. never asked",
    )
    found = step_by_step(session(model), question())
    assert (found.agent, found.step) == ("Computer_terminal", 3)
    assert len(model.requests) == 4
    assert model.answers == ["1. Yes. never asked"]
    assert model.systems == ["You are a precise step-by-step conversation evaluator."] * 4
    last = model.prompts[-1]
    assert last.startswith(
        "You are an AI assistant tasked with evaluating the correctness of each step in an "
        "ongoing multi-agent conversation aimed at solving a real-world problem. The problem "
        "being addressed is: What is six times seven?. The Answer for the problem is: 42\n"
        "Here is the conversation history up to the current step:\n"
        "Step 0 - Planner_Expert: says 0\nStep 1 - Computer_terminal: says 1\n"
        "Step 2 - Coder_Expert: says 2\nStep 3 - Computer_terminal: says 3\n\n"
        "The most recent step (3) was by 'Computer_terminal'.\n"
    )
    # upstream's literal "{idx}" (a missing f-prefix) is kept
    assert "this most recent agent's action (Step {idx}) contains an error" in last
    assert last.endswith(
        "Focus on errors that clearly derail the process.Respond ONLY in the format: "
        "1. Yes/No.\n2. Reason: [Your explanation here]"
    )
    assert "Step 4" not in last
    assert [p.count("\nStep ") + p.startswith("Step ") for p in model.prompts] == [1, 2, 3, 4]


def test_step_by_step_never_yes_predicts_nothing() -> None:
    model = Scripted(*(["1. No"] * 6))
    found = step_by_step(session(model), question())
    assert (found.agent, found.step, len(model.requests)) == (None, None, 6)
    assert found.note == "no step judged a mistake"
    assert attribution_ranking(history(), found.agent, found.step, "r").services == []


def test_step_by_step_stops_without_prediction_on_an_empty_answer() -> None:
    model = Scripted("1. No", "", "1. Yes")
    found = step_by_step(session(model), question())
    assert (found.agent, found.step, len(model.requests)) == (None, None, 2)


def test_a_spent_budget_ends_a_protocol_without_prediction() -> None:
    model = Scripted(*(["1. No"] * 6))
    spent = LLMSession(model, max_tokens=4096)
    spent.budget.max_calls = 2
    found = step_by_step(spent, question())
    assert (found.agent, found.step, len(model.requests)) == (None, None, 2)


# --- binary search --------------------------------------------------------------------------


def test_binary_search_halves_to_one_step() -> None:
    model = Scripted("The lower half.", "upper half", "LOWER HALF")
    found = binary_search(session(model), question(6), lambda: pytest.fail("no coin needed"))
    # 0-5 -> lower 3-5 -> upper 3-4 -> lower 4-4
    assert found.segments == ((0, 5), (3, 5), (3, 4))
    assert (found.agent, found.step) == ("Verifier_Expert", 4)
    assert (
        model.systems
        == ["You are an AI assistant specializing in localizing errors in conversation segments."]
        * 3
    )
    first, second, _ = model.prompts
    assert first.startswith(
        "You are an AI assistant tasked with analyzing a segment of a multi-agent "
        "conversation. Multiple agents are collaborating to address a user query"
    )
    assert "ultimately leading to the failure in resolving the user\u2019s query.\n" in first
    assert (
        "The problem to address is as follows: What is six times seven?\n"
        "The Answer for the problem is: 42\n"
        "Review the following conversation segment from step 0 to step 5:\n\n"
        "Planner_Expert: says 0\nComputer_terminal: says 1\n" in first
    )
    assert (
        "located in the upper half (from step 0 to step 2) or the lower half (from step 3 to "
        "step 5) of this segment.\n" in first
    )
    assert first.endswith("allowing for subjective judgment, and base your answer on that.")
    assert "segment from step 3 to step 5:\n\nComputer_terminal: says 3\n" in second
    assert "Planner_Expert" not in second
    assert "(from step 3 to step 4) or the lower half (from step 5 to step 5)" in second


def test_binary_search_tosses_a_coin_on_an_ambiguous_answer() -> None:
    tosses = iter([False, True])
    model = Scripted("I cannot tell", "no idea")
    found = binary_search(session(model), question(4), lambda: next(tosses))
    assert found.segments == ((0, 3), (2, 3))
    assert found.step == 2
    assert "ambiguous answer for 0-3: chose the lower half" in found.note


def test_binary_search_without_an_answer_predicts_nothing() -> None:
    found = binary_search(session(Scripted("upper half", "")), question(6), lambda: True)
    assert (found.agent, found.step, found.segments) == (None, None, ((0, 5), (0, 2)))


def test_binary_search_on_one_step_asks_nothing() -> None:
    model = Scripted()
    found = binary_search(session(model), question(1), lambda: True)
    assert (found.step, model.requests) == (0, [])


# --- rankings -------------------------------------------------------------------------------


def test_ranking_tail_orders_steps_by_distance_then_agents_by_first_step() -> None:
    ranking = attribution_ranking(history(), "Coder_Expert", 3, "r")
    assert [c.name for c in ranking.spans] == [f"step-{i}" for i in (3, 2, 4, 1, 5, 0)]
    assert [c.name for c in ranking.services] == [
        "Coder_Expert",
        "Computer_terminal",
        "Verifier_Expert",
        "Planner_Expert",
    ]
    assert [c.score for c in ranking.spans] == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]


def test_ranking_of_partial_predictions() -> None:
    agent_only = attribution_ranking(history(), "Verifier_Expert", None, "r")
    assert agent_only.spans == []
    assert [c.name for c in agent_only.services][:2] == ["Verifier_Expert", "Planner_Expert"]
    step_only = attribution_ranking(history(), None, 1, "r")
    assert step_only.services == [] and step_only.spans[0].name == "step-1"
    out_of_range = attribution_ranking(history(), "Coder_Expert", 12, "r")
    assert out_of_range.spans == [] and out_of_range.services[0].name == "Coder_Expert"


# --- the methods on a run -------------------------------------------------------------------


def _run(tmp_path: Path, content: str = "x") -> IncidentData:
    run = {
        "question": "Q?",
        "ground_truth": "8",
        "history": [
            {"name": "A_Expert", "role": "assistant", "content": content},
            {"name": "Computer_terminal", "role": "user", "content": "exitcode: 0"},
            {"name": "B_Expert", "role": "user", "content": "TERMINATE"},
        ],
        "mistake_agent": "A_Expert",
        "mistake_step": "0",
    }
    folder = tmp_path / "Algorithm-Generated"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1.json").write_text(json.dumps(run))
    return open_dataset(tmp_path).load("ww-algorithm-generated-1")


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    model = Scripted("1. Yes\nAgent Name: B_Expert\nStep Number: 2")
    with backend_override(model):
        yield model


def test_method_ranks_and_reports_calls(tmp_path: Path, scripted: Scripted) -> None:
    data = _run(tmp_path)
    method = get_method("all-at-once", use_ground_truth=False)
    with TelemetryStore.from_incident(data) as store:
        result = method.investigate(data.incident, store)  # type: ignore[attr-defined]
    assert [c.name for c in result.ranking.services] == [
        "B_Expert",
        "Computer_terminal",
        "A_Expert",
    ]
    assert [c.name for c in result.ranking.spans] == ["step-2", "step-1", "step-0"]
    assert result.stats["attribution"]["step"] == 2
    assert (result.stats["llm"]["calls"], result.stats["llm"]["total_tokens"]) == (1, 105)
    assert "The Answer for the problem is" not in scripted.prompts[0]
    assert "A_Expert: x\nComputer_terminal: exitcode: 0\nB_Expert: TERMINATE" in scripted.prompts[0]


def test_method_reads_the_answer_only_with_use_ground_truth(
    tmp_path: Path, scripted: Scripted
) -> None:
    data = _run(tmp_path)
    with TelemetryStore.from_incident(data) as store:
        get_method("step-by-step").localize(data.incident, store)
    assert "The Answer for the problem is: 8\n" in scripted.prompts[0]


def test_long_steps_are_cut_for_the_local_model(tmp_path: Path, scripted: Scripted) -> None:
    data = _run(tmp_path, content="y" * (LOCAL_STEP_CHARS + 50))
    with TelemetryStore.from_incident(data) as store:
        get_method("all-at-once", llm="local").localize(data.incident, store)
        get_method("all-at-once", max_step_chars=10).localize(data.incident, store)
    local, ten = scripted.prompts
    assert f"A_Expert: {'y' * LOCAL_STEP_CHARS} …[truncated 50 characters]\n" in local
    assert f"A_Expert: {'y' * 10} …[truncated {LOCAL_STEP_CHARS + 40} characters]\n" in ten


def test_binary_search_seed_decides_ambiguous_halves(tmp_path: Path) -> None:
    data = _run(tmp_path)
    steps = set()
    for seed in range(6):
        with backend_override(Scripted("?", "?")), TelemetryStore.from_incident(data) as store:
            ranking = get_method("binary-search", seed=seed).localize(data.incident, store)
        steps.add(ranking.spans[0].name)
        with backend_override(Scripted("?", "?")), TelemetryStore.from_incident(data) as store:
            again = get_method("binary-search", seed=seed).localize(data.incident, store)
        assert again == ranking
    assert len(steps) > 1
