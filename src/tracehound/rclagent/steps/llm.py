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

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from tracehound.llm.prompts import render
from tracehound.llm.session import LLMSession
from tracehound.llm.types import Message
from tracehound.model import Finding
from tracehound.rclagent.llm_loop import (
    LLM,
    RULE,
    ModelAgents,
    SentToModel,
    cited_evidence,
    hybrid_stats,
)
from tracehound.rclagent.llm_reasoner import EvidenceRefs, Sentence, Symptoms, _Answer
from tracehound.rclagent.llm_tools import CitingTools, flat
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


class StepTools(CitingTools):
    """The tools one step agent is offered, run without arguments, citing short ids.

    `first` names tools to offer right after `step_text` (the ones whose evidence the
    rules used); the others follow in their usual order.
    """

    def __init__(self, index: int, tools: StepToolbox, first: Iterable[str] = ()) -> None:
        self.index = index
        self.tools = tools
        runners: dict[str, tuple[str, Callable[[], str]]] = {
            "step_text": ("The step's text (cut) and whether it writes code.", self._text),
            "task_statement": (
                "Whether this first step states the run's task or another one.",
                self._task,
            ),
            "unverified_claims": (
                "Assumptions, simulated or placeholder data the step uses.",
                self._claims,
            ),
            "code_execution": (
                "The execution output of the step's code, and whether it failed.",
                self._execution,
            ),
            "contradiction": (
                "Whether the step claims success right after failed execution output.",
                self._contradiction,
            ),
            "answer_origin": (
                "Whether the step first states the value the run ends with.",
                self._answer,
            ),
            "failure_signals": ("Error and failure signals in the step's text.", self._failures),
        }
        if index != 0:
            del runners["task_statement"]
        front = {name for name in first if name in runners}
        order = sorted(runners, key=lambda n: (n != "step_text", n not in front))
        super().__init__({name: runners[name] for name in order})

    def _quotes(self, quotes: tuple[Quote, ...], ids: tuple[str, ...]) -> str:
        return "\n".join(
            f'- {q.what}: "{flat(q.text)}"{self._cite(i)}'
            for q, i in zip(quotes, ids, strict=False)
        )

    def _text(self) -> str:
        step = self.tools.run.steps[self.index]
        found = self.tools.step_text(self.index)
        kind = "tool output" if found.tool_output else "agent step"
        head = f"{kind}, {found.chars} characters" + (", writes code" if found.code else "")
        return f"{head}{self._cite(*found.evidence)}\n{excerpt(step.text)}"

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


def _agent(run: AgentRun, span_id: str) -> str:
    return f"verify:{run.trace_id}:{span_id}"


class StepLLMReasoner(ModelAgents[StepRuleReasoner]):
    """A model judges each agent step's evidence (module docstring)."""

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
            return replace(rule, source=self._fall_back(agent, answer))
        verdict, aliases = answer
        finding = Finding(
            span_id=rule.span_id,
            service=rule.agent,
            instance=rule.agent,
            abnormal=verdict.mistake,
            error_logs=rule.finding.error_logs,
            symptoms=[s for s in verdict.key_symptoms if s],
            hypothesis=verdict.hypothesis,
            evidence=cited_evidence(verdict.evidence, aliases),
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
        return self._verdict_with_tools(messages, box, "step_answer", StepVerdict, agent)


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
        self._sent = SentToModel()

    def ambiguous_spans(self) -> list[str]:
        """``<trace id>:<span id>`` of every step sent to the model, sorted."""
        return self._sent.keys()

    def llm_stats(self) -> dict[str, Any]:
        return hybrid_stats(self.outcomes, self._sent)

    def verify(self, index: int, tools: StepToolbox) -> StepFinding:
        rule = self.fallback.verify(index, tools)
        if not ambiguous(rule.signals):
            return self._by_rule(tools.run, rule)
        self._sent.add(f"{tools.run.trace_id}:{rule.span_id}")
        return self.verify_with(index, tools, rule)
