"""The three LLM failure-attribution protocols of Who&When, as faithful baselines.

Source: Zhang, Yin, et al., "Which Agent Causes Task Failures and When? On Automated
Failure Attribution of LLM Multi-Agent Systems", ICML 2025 (arXiv:2505.00212), and its
code, github.com/mingyin1/Agents_Failure_Attribution, ``Automated_FA/Lib/utils.py``
(functions ``all_at_once``, ``step_by_step``, ``binary_search``). Given the log of a
failed run (`methods.agent_run`) they name the agent responsible and the step of the
decisive mistake (0-based):

- **all-at-once** (`all_at_once`): one prompt with the whole log as ``name: content``
  lines; the answer is parsed from ``Agent Name:`` and ``Step Number:``.
- **step-by-step** (`step_by_step`): a growing prefix of ``Step i - name: content``
  lines; at each step the model answers whether the latest step is a mistake; the first
  answer starting with "1. Yes" stops the walk and names that step and its agent. Never
  Yes: no prediction.
- **binary-search** (`binary_search`): the model says whether the mistake lies in the
  upper or the lower half of a segment (``name: content`` lines) until one step remains;
  that step and its agent are the prediction. An answer naming neither half picks one
  at random (seeded here).

The prompts are the upstream ones, byte for byte, in ``llm/prompts/whowhen_*.md``; the
line giving the reference answer is there only with ``use_ground_truth``. Deviations from
upstream are listed in ``docs/whowhen.md``.
"""

from __future__ import annotations

import hashlib
import random
import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from string import Template
from typing import Any

from tracehound.errors import BudgetExceeded
from tracehound.investigation import Investigation
from tracehound.llm.backend import Backend
from tracehound.llm.method_session import session_for
from tracehound.llm.prompts import template_text
from tracehound.llm.session import LLMSession
from tracehound.llm.types import Completion, Message, Request
from tracehound.methods.agent_run import RunStep, attribution_ranking, read_history, resolve_agent
from tracehound.methods.base import Method, Tags
from tracehound.model import Incident, Ranking
from tracehound.store import TelemetryStore

#: `max_tokens` of every upstream call (``inference.py --max_tokens``, default 1024); the
#: session caps it at the configured `max_tokens`.
UPSTREAM_MAX_TOKENS = 1024
#: With the packaged local model (``llm="local"``), steps and the question are cut to this
#: many characters unless `max_step_chars` says otherwise, so a whole run fits its context
#: of 4,096 tokens; and answers are capped at `LOCAL_MAX_TOKENS` tokens.
LOCAL_STEP_CHARS = 400
LOCAL_MAX_TOKENS = 64

#: The parsers of upstream's scorer (``Automated_FA/evaluate.py``).
AGENT_NAME = re.compile(r"Agent Name:\s*([\w_]+)")
STEP_NUMBER = re.compile(r"Step Number:\s*(\d+)")
_AGENT_LINE = re.compile(r"Agent Name:[ \t]*([^\n]*)")
_NAME_DECORATION = " \t*`'\"“”.,;:"


@dataclass(frozen=True)
class RunQuestion:
    """What the protocols are given: the steps, the task, and (or not) its answer."""

    history: list[RunStep]
    problem: str
    ground_truth: str | None = None


@dataclass(frozen=True)
class Attribution:
    """A protocol's answer: the predicted agent and 0-based step (None: no prediction),
    the model's answers in order, and for binary search the segments it looked at."""

    agent: str | None
    step: int | None
    answers: tuple[str, ...] = ()
    segments: tuple[tuple[int, int], ...] = ()
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "step": self.step,
            "answers": list(self.answers),
            "segments": [list(s) for s in self.segments],
            "note": self.note,
        }


# --- prompts ------------------------------------------------------------------------------


def fill(name: str, **values: str) -> str:
    """Template `name` filled in exactly: unlike `llm.prompts.render` nothing is stripped,
    because upstream's prompts end where they end."""
    return Template(template_text(name)).substitute(values)


def ground_truth_line(question: RunQuestion) -> str:
    """``The Answer for the problem is: ...`` and a newline, or nothing without one."""
    if question.ground_truth is None:
        return ""
    return fill("whowhen_ground_truth", ground_truth=question.ground_truth)


def conversation(steps: list[RunStep]) -> str:
    """``name: content`` lines (all-at-once, binary search)."""
    return "\n".join(f"{s.speaker}: {s.content}" for s in steps)


def numbered_conversation(steps: list[RunStep]) -> str:
    """``Step i - name: content`` lines, each ending in a newline (step-by-step)."""
    return "".join(f"Step {s.index} - {s.speaker}: {s.content}\n" for s in steps)


def all_at_once_prompt(question: RunQuestion) -> str:
    return fill(
        "whowhen_all_at_once",
        problem=question.problem,
        ground_truth_line=ground_truth_line(question),
        conversation=conversation(question.history),
    )


def step_by_step_prompt(question: RunQuestion, upto: int) -> str:
    latest = question.history[upto]
    return fill(
        "whowhen_step_by_step",
        problem=question.problem,
        ground_truth_line=ground_truth_line(question),
        conversation=numbered_conversation(question.history[: upto + 1]),
        step=str(upto),
        agent=latest.speaker,
    )


def binary_search_prompt(question: RunQuestion, start: int, end: int) -> str:
    mid = start + (end - start) // 2
    return fill(
        "whowhen_binary_search",
        problem=question.problem,
        ground_truth_line=ground_truth_line(question),
        range_description=f"from step {start} to step {end}",
        conversation=conversation(question.history[start : end + 1]),
        upper_half=f"from step {start} to step {mid}",
        lower_half=f"from step {mid + 1} to step {end}",
    )


# --- the protocols ------------------------------------------------------------------------


def ask(session: LLMSession, system: str, prompt: str, *, agent: str) -> str | None:
    """One call as upstream's ``_make_api_call`` makes it: the stripped answer, or None
    when there is none (an empty answer, or the call budget is spent)."""
    request = Request(
        messages=(
            Message(role="system", content=fill(system)),
            Message(role="user", content=prompt),
        ),
        max_tokens=UPSTREAM_MAX_TOKENS,
    )
    try:
        completion = session.complete(request, agent=agent)
    except BudgetExceeded:
        return None
    return completion.content.strip() or None


def parse_all_at_once(answer: str, history: list[RunStep]) -> tuple[str | None, int | None]:
    """The run's agent and the step an all-at-once answer names (None where it names
    none). The agent is upstream's ``Agent Name:`` token matched to the run's agents by
    `agent_key`; when that token names none (an agent name with characters outside
    ``\\w``, such as ``-``), the whole rest of the line, without decoration, is tried."""
    agent = None
    token = AGENT_NAME.search(answer)
    if token is not None:
        agent = resolve_agent(token.group(1), history)
    line = _AGENT_LINE.search(answer)
    if agent is None and line is not None:
        agent = resolve_agent(line.group(1).strip(_NAME_DECORATION), history)
    number = STEP_NUMBER.search(answer)
    return agent, int(number.group(1)) if number is not None else None


def all_at_once(session: LLMSession, question: RunQuestion) -> Attribution:
    """One call with the whole log; agent and step parsed from the answer."""
    answer = ask(
        session, "whowhen_all_at_once_system", all_at_once_prompt(question), agent="all-at-once"
    )
    if answer is None:
        return Attribution(None, None, note="no answer")
    agent, step = parse_all_at_once(answer, question.history)
    note = "" if agent is not None and step is not None else "answer partly unparsable"
    return Attribution(agent, step, (answer,), note=note)


def step_by_step(session: LLMSession, question: RunQuestion) -> Attribution:
    """Yes/No per step over a growing prefix; stop at the first Yes."""
    answers: list[str] = []
    for step in question.history:
        prompt = step_by_step_prompt(question, step.index)
        answer = ask(session, "whowhen_step_by_step_system", prompt, agent="step-by-step")
        if answer is None:
            return Attribution(None, None, tuple(answers), note=f"no answer at step {step.index}")
        answers.append(answer)
        if answer.lower().strip().startswith("1. yes"):
            return Attribution(step.agent, step.index, tuple(answers))
    return Attribution(None, None, tuple(answers), note="no step judged a mistake")


def binary_search(
    session: LLMSession, question: RunQuestion, coin: Callable[[], bool]
) -> Attribution:
    """Halve the segment the model points at until one step remains. `coin()` true picks
    the upper half when an answer names neither."""
    start, end = 0, len(question.history) - 1
    answers: list[str] = []
    segments: list[tuple[int, int]] = []
    note = ""
    while start < end:
        segments.append((start, end))
        mid = start + (end - start) // 2
        prompt = binary_search_prompt(question, start, end)
        answer = ask(session, "whowhen_binary_search_system", prompt, agent="binary-search")
        if answer is None:
            return Attribution(
                None, None, tuple(answers), tuple(segments), f"no answer for {start}-{end}"
            )
        answers.append(answer)
        lowered = answer.lower()
        if "upper half" in lowered:
            upper = True
        elif "lower half" in lowered:
            upper = False
        else:
            upper = coin()
            note += f"ambiguous answer for {start}-{end}: chose the {_half(upper)}; "
        start, end = (start, mid) if upper else (min(mid + 1, end), end)
    step = question.history[start]
    return Attribution(step.agent, step.index, tuple(answers), tuple(segments), note.strip())


def _half(upper: bool) -> str:
    return "upper half" if upper else "lower half"


# --- the methods --------------------------------------------------------------------------


class _Protocol(Method):
    """What the three protocol methods share: parameters, reading the run, the session."""

    tags = Tags(modalities=frozenset({"traces", "logs"}), uses_llm=True, deterministic=False)

    def __init__(
        self,
        *,
        use_ground_truth: bool = True,
        max_step_chars: int | None = None,
        llm: str | None = None,
        llm_model: str | None = None,
        llm_config: str | None = None,
        llm_record: str | None = None,
        llm_replay: str | None = None,
        llm_max_calls: int | None = None,
    ) -> None:
        self.use_ground_truth = use_ground_truth
        self.max_step_chars = max_step_chars
        self.llm = llm
        self.llm_model = llm_model
        self.llm_config = llm_config
        self.llm_record = llm_record
        self.llm_replay = llm_replay
        self.llm_max_calls = llm_max_calls

    @abstractmethod
    def attribute(
        self, session: LLMSession, question: RunQuestion, incident: Incident
    ) -> Attribution:
        """Run the protocol on `question` (the run of `incident`) with `session`."""

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        return self.investigate(incident, store).ranking

    def investigate(self, incident: Incident, store: TelemetryStore) -> Investigation:
        """Run the protocol; `stats` holds the prediction and the LLM accounting."""
        self.check_inputs(incident, store)
        question = self.question(incident, store)
        with session_for(self, local_max_tokens=LOCAL_MAX_TOKENS) as session:
            attribution = self.attribute(session, question, incident)
            llm_stats = session.stats()
        ranking = attribution_ranking(
            question.history, attribution.agent, attribution.step, f"{self.name} prediction"
        )
        stats = {"attribution": attribution.as_dict(), "llm": llm_stats}
        return Investigation.from_ranking(
            incident, self.name, ranking, modalities=["traces", "logs"], stats=stats
        )

    def question(self, incident: Incident, store: TelemetryStore) -> RunQuestion:
        """The run as the prompts show it, cut to `step_chars` per step and question."""
        limit = self.step_chars()
        history = [
            RunStep(s.index, s.span_id, s.agent, s.speaker, _cut(s.content, limit))
            for s in read_history(store)
        ]
        answer = incident.attributes.get("ground_truth") if self.use_ground_truth else None
        return RunQuestion(history, _cut(incident.attributes.get("question", ""), limit), answer)

    def step_chars(self) -> int | None:
        """`max_step_chars`, or `LOCAL_STEP_CHARS` for the local model when it is None."""
        if self.max_step_chars is None and self.llm == "local":
            return LOCAL_STEP_CHARS
        return self.max_step_chars

    @classmethod
    def conformance_model(cls) -> Backend | None:
        """A scripted model that answers every protocol: "Yes" at once, the upper half,
        and the first speaker of the conversation at step 0."""
        return _FirstSpeakerModel()


def _cut(text: str, limit: int | None) -> str:
    """`text`, or its first `limit` characters and a marker saying how many were cut."""
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]} …[truncated {len(text) - limit} characters]"


class AllAtOnceMethod(_Protocol):
    """Who&When's all-at-once protocol (module docstring): one call per run."""

    name = "all-at-once"

    def attribute(
        self, session: LLMSession, question: RunQuestion, incident: Incident
    ) -> Attribution:
        return all_at_once(session, question)


class StepByStepMethod(_Protocol):
    """Who&When's step-by-step protocol (module docstring): one call per step judged."""

    name = "step-by-step"

    def attribute(
        self, session: LLMSession, question: RunQuestion, incident: Incident
    ) -> Attribution:
        return step_by_step(session, question)


class BinarySearchMethod(_Protocol):
    """Who&When's binary-search protocol (module docstring): about log2(steps) calls.

    `seed` (with the incident id) seeds the coin tossed for an answer that names neither
    half, where upstream calls Python's unseeded `random.randint`.
    """

    name = "binary-search"

    def __init__(
        self,
        *,
        use_ground_truth: bool = True,
        max_step_chars: int | None = None,
        seed: int = 0,
        llm: str | None = None,
        llm_model: str | None = None,
        llm_config: str | None = None,
        llm_record: str | None = None,
        llm_replay: str | None = None,
        llm_max_calls: int | None = None,
    ) -> None:
        super().__init__(
            use_ground_truth=use_ground_truth,
            max_step_chars=max_step_chars,
            llm=llm,
            llm_model=llm_model,
            llm_config=llm_config,
            llm_record=llm_record,
            llm_replay=llm_replay,
            llm_max_calls=llm_max_calls,
        )
        self.seed = seed

    def attribute(
        self, session: LLMSession, question: RunQuestion, incident: Incident
    ) -> Attribution:
        digest = hashlib.sha256(f"{self.seed}:{incident.id}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "little"))
        return binary_search(session, question, lambda: rng.randint(0, 1) == 0)


class _FirstSpeakerModel(Backend):
    """The conformance suite's scripted model (`_Protocol.conformance_model`)."""

    name = "first-speaker"

    def complete(self, request: Request) -> Completion:
        prompt = request.messages[-1].content
        found = re.search(r"conversation:\n\n(.+?): ", prompt)
        speaker = found.group(1) if found else "unknown"
        text = f"1. Yes.\n2. Reason: upper half.\nAgent Name: {speaker}\nStep Number: 0"
        return Completion(text)
