"""The rule reasoner for agent runs: documented rules with named weights (`StepWeights`).

Phase 1 (`verify`) scores each agent step's *suspicion* from its own tools' results:

- `position` 0.5: later steps are less likely the decisive mistake; the score falls by
  ``position * log2(1 + min(k, POSITION_CAP))``, k the step's rank among agent steps
  (beyond the first few steps, position says nothing more, so long runs are not blamed
  on their opening by default).
- `task_relay` -2.0: the first step relays the task; relaying is rarely the mistake...
- `task_misstated` +5.0: ...unless it states another task than the run's question
  (`task_statement`).
- `writes_code` +0.6: the step writes code, which decides what the run computes
  (`step_text`).
- `unverified_claim` +1.0: the step assumes, simulates or fills in data instead of
  checking it (`unverified_claims`).
- `handoff` -1.0: a few words passing the turn, no code (`step_text`).
- `failed_execution` +0.2: its code's execution output failed: an exit code, an
  exception, "not found", ... (`code_execution`).
- `ignored_failure` +0.2: it claims success right after failed execution output
  (`contradiction`).
- `answer_origin` +0.2: it first states the value the run ends with, and that value is
  not the reference answer when the reference answer is read (`answer_origin`).

Tool output (a code runner's reply, recognised by how it reads, see `run`) is not an
agent's decision: it is never blamed itself, and what it shows belongs to the step whose
code produced it.

Phase 2 (`consolidate`) walks the chain from the last step to the first: a tool-output
step hands the answer it first printed to the agent step that wrote its code, and each
step's report carries the most suspicious step at or after it, the earlier one on a tie,
so blame moves toward the earliest step whose content carries the decisive evidence.

Synthesis ranks steps by suspicion (tool output last), and agents by their most suspicious
step. Weights were chosen on odd-numbered Who&When runs and checked on even-numbered ones
(docs/rclagent.md); no rule names an agent, a question or a dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tracehound.model import Finding, Report
from tracehound.rclagent.steps.run import AgentRun
from tracehound.rclagent.steps.tools import StepToolbox

#: Agent steps after which the position rule stops lowering the score.
POSITION_CAP = 8


@dataclass(frozen=True)
class StepWeights:
    """Named weights of the step rules (see the module docstring)."""

    position: float = 0.5
    task_relay: float = 2.0
    task_misstated: float = 5.0
    writes_code: float = 0.6
    unverified_claim: float = 1.0
    handoff: float = 1.0
    failed_execution: float = 0.2
    ignored_failure: float = 0.2
    answer_origin: float = 0.2


@dataclass(frozen=True, slots=True)
class StepSignals:
    """What the tools found about one step."""

    tool_output: bool = False
    rank: int = 0
    first: bool = False
    task_misstated: bool = False
    writes_code: bool = False
    unverified_claim: bool = False
    handoff: bool = False
    failed_execution: bool = False
    ignored_failure: bool = False
    #: the step first stated the final value (for tool output: its output did)
    introduces_answer: bool = False
    #: that value agrees with the reference answer (None: not read)
    answer_agrees: bool | None = None
    failures: tuple[str, ...] = ()
    #: evidence ids per rule name
    evidence: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepFinding:
    """Phase 1's output for one step."""

    index: int
    span_id: str
    agent: str
    finding: Finding
    signals: StepSignals
    #: "llm", "rule", "rule (fallback: ...)" when a model took part; None for the rules
    source: str | None = None


@dataclass(frozen=True, slots=True)
class StepReport:
    """Phase 2's output for one step: its own suspicion and the best blame at or after it."""

    index: int
    span_id: str
    agent: str
    #: None for tool output, which is never blamed itself
    score: float | None
    rules: tuple[str, ...]
    evidence: tuple[str, ...]
    best: int | None
    best_score: float | None
    #: answer-origin evidence a tool output passes to the step whose code produced it
    carried: tuple[str, ...] = ()
    report: Report = field(default_factory=Report)
    source: str | None = None


@dataclass(frozen=True, slots=True)
class StepScore:
    """One step's final score and why (from `synthesize`)."""

    index: int
    span_id: str
    agent: str
    score: float
    reason: str
    evidence: tuple[str, ...]


RULE_TEXT = {
    "task_misstated": "states another task than the question",
    "writes_code": "writes the code the run relies on",
    "unverified_claim": "assumes or fills in data instead of checking it",
    "failed_execution": "its code's execution output failed",
    "ignored_failure": "claims success right after a failure",
    "answer_origin": "first states the value the run ends with",
    "handoff": "only passes the turn",
    "task_relay": "relays the task",
}


class StepRuleReasoner:
    """The deterministic reasoner for agent runs (module docstring)."""

    def __init__(self, weights: StepWeights | None = None) -> None:
        self.weights = weights or StepWeights()

    # -- phase 1 -------------------------------------------------------------------

    def verify(self, index: int, tools: StepToolbox) -> StepFinding:
        run = tools.run
        step = run.steps[index]
        text = tools.step_text(index)
        failures = tools.failure_signals(index)
        answer = tools.answer_origin(index)
        evidence: dict[str, tuple[str, ...]] = {}
        if answer.introduces and answer.agrees is not True:
            evidence["answer_origin"] = answer.evidence
        if step.tool_output:
            signals = StepSignals(
                tool_output=True,
                introduces_answer="answer_origin" in evidence,
                answer_agrees=answer.agrees,
                failures=failures.kinds,
                evidence={**evidence, "failures": failures.evidence},
            )
            return self._finding(run, index, signals)
        task = tools.task_statement(index)
        claims = tools.unverified_claims(index)
        execution = tools.code_execution(index)
        contradiction = tools.contradiction(index)
        for name, ids in (
            ("task_misstated", task.evidence),
            ("writes_code", text.evidence),
            ("unverified_claim", claims.evidence),
            ("failed_execution", execution.evidence if execution.failed else ()),
            ("ignored_failure", contradiction.evidence),
        ):
            if ids:
                evidence[name] = ids
        signals = StepSignals(
            rank=sum(1 for s in run.steps[:index] if not s.tool_output),
            first=index == 0,
            task_misstated=task.misstated,
            writes_code=text.code is not None,
            unverified_claim=bool(claims.quotes),
            handoff=text.handoff,
            failed_execution=execution.failed,
            ignored_failure=contradiction.failed_step is not None,
            introduces_answer="answer_origin" in evidence,
            answer_agrees=answer.agrees,
            failures=failures.kinds,
            evidence=evidence,
        )
        return self._finding(run, index, signals)

    def suspicion(self, s: StepSignals) -> tuple[float, tuple[str, ...]]:
        """An agent step's own score and the rules that fired (tool output has none)."""
        w = self.weights
        score = -w.position * math.log2(1 + min(s.rank, POSITION_CAP))
        fired: list[str] = []
        terms = (
            ("task_relay", s.first and not s.task_misstated, -w.task_relay),
            ("task_misstated", s.task_misstated, w.task_misstated),
            ("writes_code", s.writes_code, w.writes_code),
            ("unverified_claim", s.unverified_claim, w.unverified_claim),
            ("handoff", s.handoff, -w.handoff),
            ("failed_execution", s.failed_execution, w.failed_execution),
            ("ignored_failure", s.ignored_failure, w.ignored_failure),
            ("answer_origin", s.introduces_answer, w.answer_origin),
        )
        for name, on, weight in terms:
            if on:
                score += weight
                fired.append(name)
        return score, tuple(fired)

    def _finding(self, run: AgentRun, index: int, s: StepSignals) -> StepFinding:
        step = run.steps[index]
        if s.tool_output:
            symptoms = [f"execution output: {k}" for k in s.failures]
            if s.introduces_answer:
                symptoms.append("prints the value the run ends with")
            hypothesis = "tool output; blame goes to the step whose code produced it"
            abnormal = bool(s.failures)
        else:
            _, fired = self.suspicion(s)
            symptoms = [RULE_TEXT[name] for name in fired]
            symptoms += [f"mentions: {k}" for k in s.failures]
            hypothesis = "; ".join(RULE_TEXT[n] for n in fired if n not in ("handoff",)) or (
                "no sign of a mistake"
            )
            abnormal = any(n not in ("handoff", "task_relay") for n in fired)
        ids = [i for ids in s.evidence.values() for i in ids]
        finding = Finding(
            span_id=step.span_id,
            service=step.agent,
            instance=step.agent,
            abnormal=abnormal,
            error_logs=bool(s.failures),
            symptoms=symptoms,
            hypothesis=hypothesis,
            evidence=list(dict.fromkeys(ids)),
        )
        return StepFinding(index, step.span_id, step.agent, finding, s)

    # -- phase 2 -------------------------------------------------------------------

    def consolidate(self, finding: StepFinding, later: StepReport | None) -> StepReport:
        """Merge the step's own suspicion with the best blame after it (see module)."""
        s = finding.signals
        carried = later.carried if later is not None else ()
        if s.tool_output:
            own_answer = s.evidence.get("answer_origin", ())
            passed = own_answer or carried
            return self._report(finding, None, (), (), later, passed)
        if carried and not s.introduces_answer:
            s = _with_answer(s, carried)
        score, fired = self.suspicion(s)
        ids = tuple(dict.fromkeys(i for name in fired for i in s.evidence.get(name, ())))
        return self._report(finding, score, fired, ids, later, ())

    def _report(
        self,
        finding: StepFinding,
        score: float | None,
        fired: tuple[str, ...],
        evidence: tuple[str, ...],
        later: StepReport | None,
        carried: tuple[str, ...],
    ) -> StepReport:
        best, best_score = (later.best, later.best_score) if later is not None else (None, None)
        if score is not None and (best_score is None or score >= best_score):
            best, best_score = finding.index, score
        summary = (
            f"most suspicious from here on: step-{best} ({best_score:.2f})"
            if best is not None and best_score is not None
            else "nothing to blame from here on"
        )
        report = Report(
            span_id=finding.span_id,
            root_cause=f"step-{best}" if best is not None else None,
            confidence=_confidence(best_score),
            fault_type="agent_mistake" if best is not None else None,
            evidence=list(evidence),
            summary=summary,
        )
        return StepReport(
            index=finding.index,
            span_id=finding.span_id,
            agent=finding.agent,
            score=score,
            rules=fired,
            evidence=evidence,
            best=best,
            best_score=best_score,
            carried=carried,
            report=report,
            source=finding.source,
        )

    # -- synthesis -----------------------------------------------------------------

    def synthesize(self, reports: list[StepReport], run: AgentRun) -> list[StepScore]:
        """Every step, most suspicious first (ties: earlier first), tool output last."""
        scored = [r for r in reports if r.score is not None]
        floor = min((r.score for r in scored if r.score is not None), default=0.0) - 1.0
        out = []
        for r in reports:
            raw = r.score if r.score is not None else floor
            reason = (
                "; ".join(RULE_TEXT[n] for n in r.rules)
                if r.score is not None
                else "tool output (blame goes to the step whose code produced it)"
            ) or "no sign of a mistake"
            out.append(StepScore(r.index, r.span_id, r.agent, math.exp(raw), reason, r.evidence))
        return sorted(out, key=lambda s: (-s.score, s.index))


def _with_answer(s: StepSignals, ids: tuple[str, ...]) -> StepSignals:
    from dataclasses import replace

    return replace(s, introduces_answer=True, evidence={**s.evidence, "answer_origin": ids})


def _confidence(score: float | None) -> float:
    """A suspicion score squashed into [0, 1] for the report."""
    if score is None:
        return 0.0
    return 1.0 / (1.0 + math.exp(-score))
