"""The LLM and hybrid reasoners for agent runs (ARCHITECTURE §5, `rclagent.llm_reasoner`).

They implement `StepReasoner` with a model in the loop and keep the step rule reasoner
(`steps.rules`) as their ground and fallback, exactly as the span reasoners do:

- **Phase 1.** A step agent is offered the step tools as OpenAI tool definitions without
  arguments (`StepTools`: `step_text`, `failure_signals`, `code_execution`,
  `unverified_claims`, `answer_origin`, `contradiction`, and `task_statement` for the
  first step), runs at most `max_tool_rounds` rounds (``tool_choice="each"`` forces them
  in order for models that cannot pick), and answers a `StepVerdict`. The verdict can
  switch the rules' evidence off (``mistake: false`` clears every rule that would raise
  the step's suspicion), never invent it. Tool output steps are not asked about.
- **Phases 2 and synthesis** are the rules' (consolidation along a chain has nothing to
  decide that the scores do not; see the module docstring of `steps.rules`).
- **Fallback.** A failed call, an exhausted budget or an invalid answer keeps the rules'
  finding for that step, with source ``"rule (fallback: <reason>)"``.
- **Hybrid** asks the model only about steps where the rules are ambiguous
  (`ambiguous`): some rule raised the step's suspicion, but not a misstated task.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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

#: Characters of the step's text `step_text` shows the model.
TEXT_LIMIT = 2000


class StepVerdict(_Answer):
    """A step agent's answer (phase 1)."""

    mistake: bool
    key_symptoms: Symptoms
    hypothesis: Sentence
    evidence: EvidenceRefs


class StepTools:
    """The tools one step agent is offered, run without arguments, citing short ids."""

    def __init__(self, index: int, tools: StepToolbox) -> None:
        self.index = index
        self.tools = tools
        self.aliases: dict[str, str] = {}
        self._alias_of: dict[str, str] = {}
        runners: dict[str, tuple[str, Callable[[], str]]] = {
            "step_text": ("The step's text (cut) and whether it writes code.", self._text),
            "failure_signals": (
                "Error and failure signals in the step's text.",
                self._failures,
            ),
            "code_execution": (
                "The execution output of the step's code, and whether it failed.",
                self._execution,
            ),
            "unverified_claims": (
                "Assumptions, simulated or placeholder data the step uses.",
                self._claims,
            ),
            "answer_origin": (
                "Whether the step first states the value the run ends with.",
                self._answer,
            ),
            "contradiction": (
                "Whether the step claims success right after failed execution output.",
                self._contradiction,
            ),
        }
        if index == 0:
            runners["task_statement"] = (
                "Whether this first step states the run's task or another one.",
                self._task,
            )
        self._runners = runners
        self.specs = tuple(
            ToolSpec(name, text, {"type": "object", "properties": {}})
            for name, (text, _) in runners.items()
        )

    def run(self, name: str) -> str:
        entry = self._runners.get(name)
        if entry is None:
            return f"unknown tool {name!r}; tools: {', '.join(self._runners)}"
        return entry[1]()

    def _cite(self, ids: tuple[str, ...]) -> str:
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
        return f"{head}{self._cite(found.evidence)}\n{step.text[:TEXT_LIMIT]}"

    def _failures(self) -> str:
        found = self.tools.failure_signals(self.index)
        return self._quotes(found.quotes, found.evidence) or "no failure signals"

    def _execution(self) -> str:
        found = self.tools.code_execution(self.index)
        if found.result_step is None:
            return "no execution output follows this step"
        state = "failed" if found.failed else "succeeded"
        return f"step-{found.result_step} ran its code: {state}\n" + self._quotes(
            found.quotes, found.evidence
        )

    def _claims(self) -> str:
        found = self.tools.unverified_claims(self.index)
        return self._quotes(found.quotes, found.evidence) or "no unverified claims"

    def _answer(self) -> str:
        found = self.tools.answer_origin(self.index)
        if found.value is None:
            return "the run states no final value"
        agrees = {None: "unknown", True: "yes", False: "no"}[found.agrees]
        first = "yes" if found.introduces else "no"
        return (
            f"final value {found.value!r} (step-{found.final_step}); first stated here: "
            f"{first}; agrees with the reference answer: {agrees}\n"
            + self._quotes(found.quotes, found.evidence)
        )

    def _contradiction(self) -> str:
        found = self.tools.contradiction(self.index)
        if found.failed_step is None:
            return "no claim of success after a failure"
        return self._quotes(found.quotes, found.evidence)

    def _task(self) -> str:
        found = self.tools.task_statement(self.index)
        state = "states another task" if found.misstated else "states the task"
        return f"{state} ({found.coverage:.0%} of the question's words)\n" + self._quotes(
            found.quotes, found.evidence
        )


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
    """Some rule raised the step's suspicion, but not a misstated task."""
    if signals.tool_output or signals.task_misstated:
        return False
    return (
        signals.writes_code
        or signals.unverified_claim
        or signals.failed_execution
        or signals.ignored_failure
        or signals.introduces_answer
    )


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
        return {"reasoner": "llm", **self.outcomes.summary()}

    def verify(self, index: int, tools: StepToolbox) -> StepFinding:
        rule = self.fallback.verify(index, tools)
        if rule.signals.tool_output:
            return rule
        return self.verify_with(index, tools, rule)

    def verify_with(self, index: int, tools: StepToolbox, rule: StepFinding) -> StepFinding:
        agent = f"verify:{tools.run.trace_id}:{rule.span_id}"
        answer = self._guarded(lambda: self._verdict(index, tools, agent))
        if isinstance(answer, str):
            source = fallback_source(answer)
            self.outcomes.record(agent, source)
            return replace(rule, source=source)
        verdict, aliases = answer
        evidence = [aliases[e] for e in verdict.evidence if e in aliases]
        finding = Finding(
            span_id=rule.span_id,
            service=rule.agent,
            instance=rule.agent,
            abnormal=verdict.mistake,
            error_logs=rule.finding.error_logs,
            symptoms=[s for s in verdict.key_symptoms if s],
            hypothesis=verdict.hypothesis,
            evidence=list(dict.fromkeys(evidence)) or rule.finding.evidence,
        )
        self.outcomes.record(agent, LLM)
        return replace(rule, finding=finding, signals=gate(rule.signals, verdict), source=LLM)

    def consolidate(self, finding: StepFinding, later: StepReport | None) -> StepReport:
        return self.fallback.consolidate(finding, later)

    def synthesize(self, reports: list[StepReport], run: AgentRun) -> list[StepScore]:
        return self.fallback.synthesize(reports, run)

    def _verdict(
        self, index: int, tools: StepToolbox, agent: str
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
            question=flat(run.question or "(not given)", 300),
        )
        messages = [Message("system", render("step_system")), Message("user", user)]
        box = StepTools(index, tools)
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
                if completion.content.strip():
                    messages.append(Message("assistant", completion.content[:1000]))
                break
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
        if self._exhausted.is_set():
            return "budget exhausted"
        try:
            return ask()
        except BudgetExceeded:
            self._exhausted.set()
            return "budget exhausted"
        except LLMError as exc:
            return f"LLMError: {flat(str(exc))}"
        except ValidationError as exc:
            return f"invalid answer: {flat(str(exc.errors()[0].get('msg', exc)))}"


class StepHybridReasoner(StepLLMReasoner):
    """Rules screen; the model judges only ambiguous steps (`ambiguous`)."""

    def llm_stats(self) -> dict[str, Any]:
        return {**super().llm_stats(), "reasoner": "hybrid"}

    def verify(self, index: int, tools: StepToolbox) -> StepFinding:
        rule = self.fallback.verify(index, tools)
        if not ambiguous(rule.signals):
            self.outcomes.record(f"verify:{tools.run.trace_id}:{rule.span_id}", RULE)
            return replace(rule, source=RULE)
        return self.verify_with(index, tools, rule)
