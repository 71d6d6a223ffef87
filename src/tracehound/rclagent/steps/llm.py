"""The LLM and hybrid reasoners for agent runs (ARCHITECTURE §5, `rclagent.llm_reasoner`).

They implement `StepReasoner` with a model in the loop and keep the step rule reasoner
(`steps.rules`) as their ground and fallback, exactly as the span reasoners do:

- **Phase 1.** A step agent gets a system prompt and its own step only (span id,
  position, agent, length, the run's task), and is offered the step tools as OpenAI tool
  definitions without arguments (`StepTools`: `step_text`, `task_statement` for the
  first step, `unverified_claims`, `code_execution`, `contradiction`, `answer_origin`,
  `failure_signals`). `step_text` comes first, then the tools whose evidence a rule
  used, then the rest: with ``tool_choice="each"`` (`EACH`, for models that cannot
  pick tools, like the packaged local one) round *i* forces the *i*-th tool, so the
  rounds go to what the rules saw. At most `max_tool_rounds` rounds; tool results are
  compact text citing short evidence ids (``E1``, ``E2``...), capped by the session;
  `step_text` shows at most `TEXT_HEAD` + `TEXT_TAIL` characters of the step
  (`excerpt`), so a prompt stays far below a small model's context. The final turn
  offers no tools and the answer must be a `StepVerdict` (JSON, validated, one repair
  round; the schema lists the evidence ids the tools returned); an answer given
  earlier without tool calls that already is a valid verdict ends the loop.
- **The verdict can switch the rules' evidence off, never invent it:** ``mistake:
  false`` clears every rule that would raise the step's suspicion (`gate`); ``mistake:
  true`` leaves the rules' signals as they are. The finding's flag, symptoms,
  hypothesis and evidence (ids the tools did not return are dropped) are the model's.
- **Tool output** (a code runner's reply) is not an agent's decision: no step agent is
  asked about it, and its finding keeps source ``"rule"``.
- **Phase 2 and the synthesis** are the rules' (consolidation along a chain has
  nothing to decide that the scores do not; see `steps.rules`): reports have source
  ``"rule"``.
- **Fallback.** A failed call, an exhausted budget (every later step agent falls back
  without calling) or an invalid answer keeps the rules' finding for that step, with
  source ``"rule (fallback: <reason>)"``.
- **Hybrid** (`StepHybridReasoner`) asks the model only about steps where the rules
  are ambiguous (`ambiguous`): a rule raised the step's suspicion, but not a misstated
  task (decisive on its own). The steps sent are listed in
  ``stats.llm.ambiguous_spans``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from tracehound.errors import LLMError
from tracehound.llm.prompts import render
from tracehound.llm.session import BudgetExceeded, LLMSession
from tracehound.llm.types import Message, Request, ToolSpec
from tracehound.model import Finding
from tracehound.rclagent.llm_reasoner import (
    EACH,
    LLM,
    RULE,
    EvidenceRefs,
    InvalidAnswer,
    Outcomes,
    Sentence,
    Symptoms,
    _Answer,
    fallback_source,
)
from tracehound.rclagent.llm_tools import flat
from tracehound.rclagent.steps.rules import (
    StepFinding,
    StepReport,
    StepRuleReasoner,
    StepScore,
    StepSignals,
)
from tracehound.rclagent.steps.run import AgentRun
from tracehound.rclagent.steps.tools import Quote, StepToolbox

#: `step_text` shows the step's first TEXT_HEAD and last TEXT_TAIL characters (about
#: 250 tokens together), with how much was cut between them: the packaged local model
#: reads about 45 prompt tokens a second in a 4,096-token context, and Who&When steps
#: reach 46,000 characters. The head holds the plan or the code, the tail the
#: conclusion and the value handed on.
TEXT_HEAD = 700
TEXT_TAIL = 300
#: The run's task shown in the first prompt, in characters at most.
QUESTION_CHARS = 300

#: The tool that shows each rule's evidence (`StepSignals.evidence` keys).
RULE_TOOLS = {
    "task_misstated": "task_statement",
    "writes_code": "step_text",
    "unverified_claim": "unverified_claims",
    "failed_execution": "code_execution",
    "ignored_failure": "contradiction",
    "answer_origin": "answer_origin",
    "failures": "failure_signals",
}


class StepVerdict(_Answer):
    """A step agent's answer (phase 1)."""

    mistake: bool
    key_symptoms: Symptoms
    hypothesis: Sentence
    evidence: EvidenceRefs


def excerpt(text: str, head: int = TEXT_HEAD, tail: int = TEXT_TAIL) -> str:
    """`text`, or its first `head` and last `tail` characters and how many were cut."""
    if len(text) <= head + tail:
        return text
    cut = len(text) - head - tail
    return f"{text[:head]}\n…[{cut} characters cut]…\n{text[len(text) - tail :]}"


class StepTools:
    """The tools one step agent is offered, run without arguments, citing short ids.

    `first` names tools to offer right after `step_text` (the ones whose evidence the
    rules used); the others follow in their usual order.
    """

    def __init__(self, index: int, tools: StepToolbox, first: Iterable[str] = ()) -> None:
        self.index = index
        self.tools = tools
        #: alias (``E1``) -> evidence id, for the ids the model cites
        self.aliases: dict[str, str] = {}
        self._alias_of: dict[str, str] = {}
        runners: dict[str, tuple[str, Callable[[], str]]] = {
            "step_text": ("The step's text (cut) and whether it writes code.", self._text),
        }
        if index == 0:
            runners["task_statement"] = (
                "Whether this first step states the run's task or another one.",
                self._task,
            )
        runners["unverified_claims"] = (
            "Assumptions, simulated or placeholder data the step uses.",
            self._claims,
        )
        runners["code_execution"] = (
            "The execution output of the step's code, and whether it failed.",
            self._execution,
        )
        runners["contradiction"] = (
            "Whether the step claims success right after failed execution output.",
            self._contradiction,
        )
        runners["answer_origin"] = (
            "Whether the step first states the value the run ends with.",
            self._answer,
        )
        runners["failure_signals"] = (
            "Error and failure signals in the step's text.",
            self._failures,
        )
        front = {name for name in first if name in runners}
        order = sorted(runners, key=lambda n: (n != "step_text", n not in front))
        self._runners = {name: runners[name] for name in order}
        self.specs = tuple(
            ToolSpec(name, text, {"type": "object", "properties": {}})
            for name, (text, _) in self._runners.items()
        )

    def run(self, name: str) -> str:
        entry = self._runners.get(name)
        if entry is None:
            return f"unknown tool {name!r}; tools: {', '.join(self._runners)}"
        return entry[1]()

    def _cite(self, ids: Iterable[str]) -> str:
        names = []
        for evidence_id in ids:
            alias = self._alias_of.get(evidence_id)
            if alias is None:
                alias = self._alias_of[evidence_id] = f"E{len(self._alias_of) + 1}"
                self.aliases[alias] = evidence_id
            names.append(alias)
        return f" [{', '.join(names)}]" if names else ""

    def _quotes(self, quotes: tuple[Quote, ...], ids: tuple[str, ...]) -> str:
        return "\n".join(
            f'- {q.what}: "{flat(q.text)}"{self._cite((i,))}'
            for q, i in zip(quotes, ids, strict=False)
        )

    def _text(self) -> str:
        step = self.tools.run.steps[self.index]
        found = self.tools.step_text(self.index)
        kind = "tool output" if found.tool_output else "agent step"
        head = f"{kind}, {found.chars} characters" + (", writes code" if found.code else "")
        return f"{head}{self._cite(found.evidence)}\n{excerpt(step.text)}"

    def _failures(self) -> str:
        found = self.tools.failure_signals(self.index)
        return self._quotes(found.quotes, found.evidence) or "no failure signals"

    def _execution(self) -> str:
        found = self.tools.code_execution(self.index)
        if found.result_step is None:
            return "no execution output follows this step"
        state = "failed" if found.failed else "succeeded"
        quotes = self._quotes(found.quotes, found.evidence)
        return f"step-{found.result_step} ran its code: {state}" + (f"\n{quotes}" if quotes else "")

    def _claims(self) -> str:
        found = self.tools.unverified_claims(self.index)
        return self._quotes(found.quotes, found.evidence) or "no unverified claims"

    def _answer(self) -> str:
        found = self.tools.answer_origin(self.index)
        if found.value is None:
            return "the run states no final value"
        agrees = {None: "unknown", True: "yes", False: "no"}[found.agrees]
        first = "yes" if found.introduces else "no"
        quotes = self._quotes(found.quotes, found.evidence)
        return (
            f"final value {flat(found.value, 80)!r} (step-{found.final_step}); first stated "
            f"here: {first}; agrees with the reference answer: {agrees}"
            + (f"\n{quotes}" if quotes else "")
        )

    def _contradiction(self) -> str:
        found = self.tools.contradiction(self.index)
        if found.failed_step is None:
            return "no claim of success after a failure"
        return self._quotes(found.quotes, found.evidence)

    def _task(self) -> str:
        found = self.tools.task_statement(self.index)
        state = "states another task" if found.misstated else "states the task"
        quotes = self._quotes(found.quotes, found.evidence)
        return f"{state} ({found.coverage:.0%} of the question's words)" + (
            f"\n{quotes}" if quotes else ""
        )


def rule_tools(signals: StepSignals) -> list[str]:
    """The tools that show the evidence the rules used for a step."""
    return [RULE_TOOLS[name] for name, ids in signals.evidence.items() if ids]


def gate(signals: StepSignals, verdict: StepVerdict) -> StepSignals:
    """The rule signals the verdict leaves on: ``mistake: false`` clears the rules that
    would raise the step's suspicion."""
    if verdict.mistake:
        return signals
    return replace(
        signals,
        task_misstated=False,
        writes_code=False,
        unverified_claim=False,
        failed_execution=False,
        ignored_failure=False,
        introduces_answer=False,
    )


def ambiguous(signals: StepSignals) -> bool:
    """Whether the rules' evidence about an agent step is too unclear to stand alone: a
    rule raised its suspicion (code, an assumption, a failed execution, a claim of
    success after it, the first mention of the final value: all common in good steps
    too), but not a misstated task, which outweighs every other rule on its own."""
    if signals.tool_output or signals.task_misstated:
        return False
    return (
        signals.writes_code
        or signals.unverified_claim
        or signals.failed_execution
        or signals.ignored_failure
        or signals.introduces_answer
    )


def _alias_keys(cited: Iterable[str]) -> list[str]:
    """Cited ids as alias keys: ``e3``, ``[E3]`` and ``E3`` all read ``E3``."""
    return [c.strip().strip("[]").strip().upper() for c in cited]


def _inline_verdict(content: str) -> StepVerdict | None:
    """A verdict the model gave before its final turn, when the content is one."""
    text = content.strip()
    if not text.startswith("{"):
        return None
    try:
        return StepVerdict.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None


def _agent(run: AgentRun, span_id: str) -> str:
    return f"verify:{run.trace_id}:{span_id}"


class StepLLMReasoner:
    """A model judges each agent step's evidence (module docstring)."""

    def __init__(
        self,
        session: LLMSession,
        fallback: StepRuleReasoner,
        *,
        max_tool_rounds: int = 2,
        tool_choice: str = "auto",
    ) -> None:
        if tool_choice not in ("auto", EACH):
            raise LLMError(f"tool_choice must be 'auto' or {EACH!r}, not {tool_choice!r}")
        self.session = session
        self.fallback = fallback
        self.max_tool_rounds = max_tool_rounds
        self.tool_choice = tool_choice
        self.outcomes = Outcomes()
        self._exhausted = threading.Event()

    def llm_stats(self) -> dict[str, Any]:
        """The reasoner's part of `stats.llm`."""
        return {"reasoner": "llm", **self.outcomes.summary()}

    # -- phase 1 -------------------------------------------------------------------

    def verify(self, index: int, tools: StepToolbox) -> StepFinding:
        rule = self.fallback.verify(index, tools)
        if rule.signals.tool_output:
            return self._by_rule(tools.run, rule)
        return self.verify_with(index, tools, rule)

    def verify_with(self, index: int, tools: StepToolbox, rule: StepFinding) -> StepFinding:
        """Ask the model about the step the rules verified as `rule`."""
        agent = _agent(tools.run, rule.span_id)
        answer = self._guarded(lambda: self._verdict(index, tools, rule, agent))
        if isinstance(answer, str):
            source = fallback_source(answer)
            self.outcomes.record(agent, source)
            return replace(rule, source=source)
        verdict, aliases = answer
        evidence = [aliases[e] for e in _alias_keys(verdict.evidence) if e in aliases]
        finding = Finding(
            span_id=rule.span_id,
            service=rule.agent,
            instance=rule.agent,
            abnormal=verdict.mistake,
            error_logs=rule.finding.error_logs,
            symptoms=[s for s in verdict.key_symptoms if s],
            hypothesis=verdict.hypothesis,
            evidence=list(dict.fromkeys(evidence)),
        )
        self.outcomes.record(agent, LLM)
        return replace(rule, finding=finding, signals=gate(rule.signals, verdict), source=LLM)

    def _by_rule(self, run: AgentRun, rule: StepFinding) -> StepFinding:
        self.outcomes.record(_agent(run, rule.span_id), RULE)
        return replace(rule, source=RULE)

    # -- phases 2 and synthesis: the rules' -----------------------------------------

    def consolidate(self, finding: StepFinding, later: StepReport | None) -> StepReport:
        return replace(self.fallback.consolidate(finding, later), source=RULE)

    def synthesize(self, reports: list[StepReport], run: AgentRun) -> list[StepScore]:
        return self.fallback.synthesize(reports, run)

    # -- plumbing ------------------------------------------------------------------

    def _verdict(
        self, index: int, tools: StepToolbox, rule: StepFinding, agent: str
    ) -> tuple[StepVerdict, dict[str, str]]:
        run = tools.run
        step = run.steps[index]
        user = render(
            "step_user",
            span_id=step.span_id,
            index=str(index),
            steps=str(len(run.steps)),
            agent=step.agent,
            chars=str(len(step.text)),
            question=flat(run.question or "(not given)", QUESTION_CHARS),
        )
        messages = [Message("system", render("step_system")), Message("user", user)]
        box = StepTools(index, tools, first=rule_tools(rule.signals))
        for turn in range(self.max_tool_rounds):
            choice = self.tool_choice
            if choice == EACH:
                if turn >= len(box.specs):
                    break
                choice = box.specs[turn].name
            completion = self.session.complete(
                Request(
                    tuple(messages),
                    max_tokens=self.session.max_tokens,
                    tools=box.specs,
                    tool_choice=choice,
                ),
                agent=agent,
            )
            if not completion.tool_calls:
                early = _inline_verdict(completion.content)
                if early is not None:
                    return early, box.aliases
                if completion.content.strip():
                    messages.append(Message("assistant", completion.content[:1000]))
                break
            # the turn also says in words what it called: chat templates that ignore
            # `tool_calls` (the packaged local model's) would show an empty turn
            said = completion.content or "Calling " + ", ".join(
                c.name for c in completion.tool_calls
            )
            messages.append(Message("assistant", said, tool_calls=completion.tool_calls))
            for call in completion.tool_calls:
                output = self.session.cap_tool_output(box.run(call.name))
                messages.append(Message("tool", output, tool_call_id=call.id, name=call.name))
        messages.append(Message("user", render("step_answer")))
        schema = StepVerdict.model_json_schema()
        cited = schema["properties"]["evidence"]
        if box.aliases:
            cited["items"]["enum"] = list(box.aliases)
        else:
            cited["maxItems"] = 0
        request = Request(
            tuple(messages),
            max_tokens=self.session.max_tokens,
            tool_choice="none",
            json_schema=schema,
        )
        verdict = self.session.complete_json(request, StepVerdict, agent=agent)
        if not isinstance(verdict, StepVerdict):
            raise InvalidAnswer(f"the session returned {type(verdict).__name__}")
        return verdict, box.aliases

    def _guarded(
        self, ask: Callable[[], tuple[StepVerdict, dict[str, str]]]
    ) -> tuple[StepVerdict, dict[str, str]] | str:
        """`ask()`, or the reason it failed (budget, call, answer) as a string."""
        if self._exhausted.is_set():
            return "budget exhausted"
        try:
            return ask()
        except BudgetExceeded:
            self._exhausted.set()
            return "budget exhausted"
        except InvalidAnswer as exc:
            return f"invalid answer: {flat(str(exc))}"
        except LLMError as exc:
            return f"LLMError: {flat(str(exc))}"
        except ValidationError as exc:
            return f"invalid answer: {flat(str(exc.errors()[0].get('msg', exc)))}"


class StepHybridReasoner(StepLLMReasoner):
    """Rules screen every step; the model judges only ambiguous ones (`ambiguous`)."""

    def __init__(
        self,
        session: LLMSession,
        fallback: StepRuleReasoner,
        *,
        max_tool_rounds: int = 2,
        tool_choice: str = "auto",
    ) -> None:
        super().__init__(
            session, fallback, max_tool_rounds=max_tool_rounds, tool_choice=tool_choice
        )
        self._lock = threading.Lock()
        self._ambiguous: set[str] = set()

    def ambiguous_spans(self) -> list[str]:
        """``<trace id>:<span id>`` of every step sent to the model, sorted."""
        with self._lock:
            return sorted(self._ambiguous)

    def llm_stats(self) -> dict[str, Any]:
        return {
            **super().llm_stats(),
            "reasoner": "hybrid",
            "ambiguous_spans": self.ambiguous_spans(),
        }

    def verify(self, index: int, tools: StepToolbox) -> StepFinding:
        rule = self.fallback.verify(index, tools)
        if not ambiguous(rule.signals):
            return self._by_rule(tools.run, rule)
        with self._lock:
            self._ambiguous.add(f"{tools.run.trace_id}:{rule.span_id}")
        return self.verify_with(index, tools, rule)
