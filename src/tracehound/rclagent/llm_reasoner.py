"""The LLM reasoner and the hybrid reasoner behind the rclagent agents (ARCHITECTURE §5).

Both implement the `Reasoner` protocol with a model in the loop, and both keep the rule
reasoner (`rules.RuleReasoner`) as their ground and their fallback: numbers come from the
tools, the model judges them. Prompts are the template files in `llm/prompts/`.

**Phase 1 (`verify`).** One span agent per span. It gets a system prompt and its own
span only (service, instance, operation, kind, duration, status, member count), and is
offered the tools as OpenAI tool definitions, all without arguments (the agent can only
look at its own span): `span_timing`, `instance_logs` (when logs are in use),
`edge_timing` (only when a call leads into the span), `instance_metrics` and
`node_metrics` (when metrics are in use), in that order. It runs at most
`max_tool_rounds` rounds: with ``tool_choice="auto"`` the model picks the tools; with
``"each"`` (`llm_loop.EACH`, for models that cannot pick, like the packaged local one)
round *i* forces the *i*-th tool offered (the loop is `llm_loop`'s, shared with the step
reasoners). The tools run through the `Toolbox` and come back as
tool messages (`llm_tools.SpanTools`): compact text citing short evidence ids (``E1``,
``E2``, … standing for the ledger's ids), capped by the session. On the final turn no
tools are offered and the answer must be a `SpanVerdict` (JSON, validated, one repair
round); an answer given earlier without tool calls that already is a valid verdict ends
the loop. Evidence ids the tools did not return are dropped. Where the answer must name
something it was shown (evidence ids here, candidate and suspect keys below), the JSON
schema sent lists the allowed values as an enum, so a server that constrains answers by
the schema (the local llama.cpp server does) cannot produce any other.

The numeric `Signals` the later phases weigh stay grounded: they are computed exactly
as the rule reasoner computes them, and the verdict can only switch evidence off, never
invent it: ``abnormal: false`` zeroes every signal (status included); ``error_logs:
false`` zeroes the error-log strength, the crash flag and the names the error lines
mention (an error *status* stays); ``metric_anomaly: false`` zeroes the resource shift.
The `Finding`'s abnormal / error_logs / metric_anomaly flags, symptoms, hypothesis and
evidence are the model's.

**Phase 2 (`consolidate`).** The rule reasoner computes the blame structure (who is
blamed below this span, with scores, notes and evidence). The model gets the span's own
finding, its callees' reports and the top `MAX_CANDIDATES` blame candidates, and answers
a `LocalVerdict`. A candidate key becomes the subtree's top blame: unless it already is
the top, its score is raised to the best score * (1 + `LOCAL_BOOST` * confidence), just
above the best, so the choice changes the order, not the scale (raising only a
non-top candidate keeps the boost from compounding up the tree). The report takes the
model's root cause, confidence, fault type and summary; the blamed items keep their
rule fault types. ``"none"`` leaves the blame as the rules computed it and reports no
cause. A key that is not a candidate is an invalid answer. A span with no blame at all
has nothing to decide: no call, source "rule (nothing to consolidate)".

**Synthesis (`synthesize`).** The rule reasoner scores the suspects. The model gets the
root-level reports of every analysed request and a compact evidence graph (the top
`SUMMARY_SUSPECTS` suspects with scores, fault types and reasons) and answers a
`SynthesisVerdict`. The re-ordering is bounded: only the *window* of the best
`RERANK_MAX` suspects scoring at least `RERANK_FLOOR` * the best score can move; the
window's suspects are put in the model's order (those it did not name keep their order,
after the named ones) and take over the window's scores in that order, so the set of
scores, and every suspect outside the window, stays as it was. The top suspect takes the
model's fault type. A ranking that names none of the suspects shown is invalid.

**Fallback.** A failed call (`LLMError`), an exhausted budget (`BudgetExceeded`: every
later agent falls back without calling) or an invalid answer never stops the
investigation: that agent keeps the rule reasoner's result, with source
``"rule (fallback: <reason>)"``. Every agent's outcome is recorded (thread-safe) for
`stats.llm`.

**Hybrid (`HybridReasoner`).** The rules screen; the model reasons only where the rules'
evidence is ambiguous. Phase 1 asks the model about a span only when `ambiguous` holds
for its rule signals; phase 2 only where `contested` holds (the top two blame candidates
are close, and this span is where they first meet); the synthesis only when the top two
suspects are within `SYNTHESIS_MARGIN` of each other. Everything else keeps the rules'
result with source "rule". The ambiguous span keys are listed in `stats.llm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from tracehound.llm.prompts import render
from tracehound.llm.session import LLMSession
from tracehound.llm.types import Message
from tracehound.model import PREDICTED_FAULT_TYPES, Finding
from tracehound.rclagent.context import IncidentContext
from tracehound.rclagent.llm_loop import (
    LLM,
    RULE,
    InvalidAnswer,
    ModelAgents,
    Outcomes,
    SentToModel,
    cited_evidence,
    hybrid_stats,
)
from tracehound.rclagent.llm_tools import SpanTools, flat
from tracehound.rclagent.reasoner import (
    Blame,
    LocalReport,
    Signals,
    SpanContext,
    SpanFinding,
    SuspectScore,
    Toolbox,
)
from tracehound.rclagent.rules import RuleReasoner

#: Blame candidates, callee reports and suspects shown to the model at most.
MAX_CANDIDATES = 8
MAX_CHILDREN = 8
SUMMARY_SUSPECTS = 10
#: A chosen local root cause is raised to the best score * (1 + LOCAL_BOOST * confidence).
LOCAL_BOOST = 0.1
#: The synthesis may re-order only the best RERANK_MAX suspects scoring at least
#: RERANK_FLOOR * the best score.
RERANK_MAX = 5
RERANK_FLOOR = 0.5

NOTHING_TO_CONSOLIDATE = "rule (nothing to consolidate)"
NOTHING_TO_SYNTHESIZE = "rule (nothing to synthesize)"


# -- the typed answers ---------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def _clipped(limit: int) -> BeforeValidator:
    """Cut a string or list to `limit` before validation: an answer a little too long is
    still an answer, not worth a repair round."""

    def clip(value: Any) -> Any:
        return value[:limit] if isinstance(value, str | list) else value

    return BeforeValidator(clip)


#: Bounds on answers: the schema sent states them (the local server turns them into its
#: grammar, so a small model cannot ramble until `max_tokens`), and longer answers are
#: cut to them.
Symptom = Annotated[str, StringConstraints(max_length=120), _clipped(120)]
Sentence = Annotated[str, StringConstraints(max_length=300), _clipped(300)]
Key = Annotated[str, StringConstraints(max_length=200), _clipped(200)]
EvidenceRef = Annotated[str, StringConstraints(max_length=40), _clipped(40)]
Symptoms = Annotated[list[Symptom], Field(max_length=5), _clipped(5)]
EvidenceRefs = Annotated[list[EvidenceRef], Field(max_length=12), _clipped(12)]
Keys = Annotated[list[Key], Field(max_length=SUMMARY_SUSPECTS), _clipped(SUMMARY_SUSPECTS)]


class SpanVerdict(_Answer):
    """A span agent's answer (phase 1)."""

    abnormal: bool
    error_logs: bool
    metric_anomaly: bool
    key_symptoms: Symptoms
    hypothesis: Sentence
    evidence: EvidenceRefs


class LocalVerdict(_Answer):
    """A consolidating agent's answer (phase 2): a candidate key or "none"."""

    root_cause: Key
    confidence: float = Field(ge=0.0, le=1.0)
    fault_type: str = Field(json_schema_extra={"enum": list(PREDICTED_FAULT_TYPES)})
    summary: Sentence

    @field_validator("fault_type")
    @classmethod
    def _known_fault(cls, value: str) -> str:
        return _fault_type(value)


class SynthesisVerdict(_Answer):
    """The synthesizer's answer: suspect keys best first, and the fault type."""

    ranking: Keys
    fault_type: str = Field(json_schema_extra={"enum": list(PREDICTED_FAULT_TYPES)})

    @field_validator("fault_type")
    @classmethod
    def _known_fault(cls, value: str) -> str:
        return _fault_type(value)


def _fault_type(value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in PREDICTED_FAULT_TYPES:
        raise ValueError(f"fault_type must be one of {', '.join(PREDICTED_FAULT_TYPES)}")
    return lowered


def _agent(kind: str, span_finding: SpanFinding) -> str:
    return f"{kind}:{span_finding.node.span.trace_id}:{span_finding.key}"


# -- the LLM reasoner ----------------------------------------------------------------


class LLMReasoner(ModelAgents[RuleReasoner]):
    """The rclagent reasoner with a model judging the rules' evidence (module docstring)."""

    # -- phase 1 -------------------------------------------------------------------

    def verify(self, ctx: SpanContext, tools: Toolbox) -> SpanFinding:
        return self.verify_with(ctx, tools, self.fallback.verify(ctx, tools))

    def verify_with(self, ctx: SpanContext, tools: Toolbox, rule: SpanFinding) -> SpanFinding:
        """Ask the model about the span the rules verified as `rule`."""
        agent = _agent("verify", rule)
        answer = self._guarded(lambda: self._span_verdict(ctx, tools, agent))
        if isinstance(answer, str):
            return replace(rule, source=self._fall_back(agent, answer))
        verdict, aliases = answer
        span = ctx.node.span
        finding = Finding(
            span_id=rule.finding.span_id,
            service=span.service,
            instance=span.instance,
            abnormal=verdict.abnormal,
            error_logs=verdict.error_logs,
            metric_anomaly=verdict.metric_anomaly,
            symptoms=[s for s in verdict.key_symptoms if s],
            hypothesis=verdict.hypothesis,
            evidence=cited_evidence(verdict.evidence, aliases),
        )
        self.outcomes.record(agent, LLM)
        return replace(rule, finding=finding, signals=gate(rule.signals, verdict), source=LLM)

    def _span_verdict(
        self, ctx: SpanContext, tools: Toolbox, agent: str
    ) -> tuple[SpanVerdict, dict[str, str]]:
        span = ctx.node.span
        user = render(
            "span_user",
            service=span.service,
            instance=span.instance or "(none)",
            operation=span.operation,
            kind=span.kind or ("client (calls another instance)" if ctx.node.is_client else "-"),
            duration_ms=f"{span.duration_ms:.1f}",
            status=span.status or "not recorded",
            members=str(ctx.node.count),
        )
        messages = [Message("system", render("span_system")), Message("user", user)]
        box = SpanTools(ctx, tools)
        return self._verdict_with_tools(messages, box, "span_answer", SpanVerdict, agent)

    # -- phase 2 -------------------------------------------------------------------

    def consolidate(self, finding: SpanFinding, child_reports: list[LocalReport]) -> LocalReport:
        rule = self.fallback.consolidate(finding, child_reports)
        return self.consolidate_with(finding, child_reports, rule)

    def consolidate_with(
        self, finding: SpanFinding, child_reports: list[LocalReport], rule: LocalReport
    ) -> LocalReport:
        """Ask the model to pick the local root cause among the rules' blame candidates."""
        agent = _agent("consolidate", finding)
        if not rule.blame:
            self.outcomes.record(agent, NOTHING_TO_CONSOLIDATE)
            return replace(rule, source=NOTHING_TO_CONSOLIDATE)
        candidates = sorted(rule.blame.items(), key=lambda kv: (-kv[1].score, kv[0]))
        candidates = candidates[:MAX_CANDIDATES]
        answer = self._guarded(
            lambda: self._local_verdict(finding, child_reports, candidates, agent)
        )
        if isinstance(answer, str):
            return replace(rule, source=self._fall_back(agent, answer))
        self.outcomes.record(agent, LLM)
        return apply_local(rule, answer)

    def _local_verdict(
        self,
        finding: SpanFinding,
        children: list[LocalReport],
        candidates: list[tuple[str, Blame]],
        agent: str,
    ) -> LocalVerdict:
        span = finding.node.span
        f = finding.finding
        own = (
            f"abnormal: {'yes' if f.abnormal else 'no'}; symptoms: "
            f"{flat('; '.join(f.symptoms)) or 'none'}; hypothesis: {flat(f.hypothesis) or '-'}"
        )
        lines = [
            f"- {c.instance or c.service} {c.key}: root cause {c.report.root_cause or 'none'} "
            f"(confidence {c.report.confidence:.2f}, {c.report.fault_type or '-'}): "
            f"{flat(c.report.summary)}"
            for c in children[:MAX_CHILDREN]
        ]
        if len(children) > MAX_CHILDREN:
            lines.append(f"- ... and {len(children) - MAX_CHILDREN} more")
        user = render(
            "consolidate_user",
            span=f"{span.instance or span.service} {span.operation}",
            finding=own,
            children="\n".join(lines) or "- none (a leaf span)",
            candidates="\n".join(
                f"- {key}: {b.score:.2f}, {b.fault_type}, {flat(b.note)}" for key, b in candidates
            ),
        )
        system = render("consolidate_system", fault_types=", ".join(PREDICTED_FAULT_TYPES))
        messages = [Message("system", system), Message("user", user)]
        schema = LocalVerdict.model_json_schema()
        schema["properties"]["root_cause"]["enum"] = [key for key, _ in candidates] + ["none"]
        verdict = self._json(messages, LocalVerdict, agent, schema=schema)
        keys = {key for key, _ in candidates}
        choice = verdict.root_cause
        if choice.lower() == "none":
            return verdict.model_copy(update={"root_cause": "none"})
        if choice not in keys:
            raise InvalidAnswer(f"root_cause {choice[:60]!r} is not a candidate")
        return verdict

    # -- synthesis -----------------------------------------------------------------

    def synthesize(
        self, root_reports: list[tuple[str, LocalReport]], ctx: IncidentContext
    ) -> list[SuspectScore]:
        suspects = self.fallback.synthesize(root_reports, ctx)
        return self.synthesize_with(root_reports, suspects)

    def synthesize_with(
        self, root_reports: list[tuple[str, LocalReport]], suspects: list[SuspectScore]
    ) -> list[SuspectScore]:
        """Ask the model to order the rules' best suspects (bounded, see module doc)."""
        agent = "synthesize"
        shown = best_first(suspects)[:SUMMARY_SUSPECTS]
        if not shown or shown[0].score <= 0:
            self.outcomes.record(agent, NOTHING_TO_SYNTHESIZE)
            return suspects
        answer = self._guarded(lambda: self._synthesis_verdict(root_reports, shown, agent))
        if isinstance(answer, str):
            self._fall_back(agent, answer)
            return suspects
        self.outcomes.record(agent, LLM)
        return apply_synthesis(suspects, answer)

    def _synthesis_verdict(
        self, root_reports: list[tuple[str, LocalReport]], shown: list[SuspectScore], agent: str
    ) -> SynthesisVerdict:
        reports = "\n".join(
            f"- request {trace_id[:16]}: root cause {r.report.root_cause or 'none'} "
            f"(confidence {r.report.confidence:.2f}, {r.report.fault_type or '-'}): "
            f"{flat(r.report.summary)}"
            for trace_id, r in root_reports
        )
        suspects = "\n".join(
            f"- {suspect_key(s)}: {s.score:.2f}, {s.fault_type}, {flat(s.reason)}" for s in shown
        )
        system = render("synthesize_system", fault_types=", ".join(PREDICTED_FAULT_TYPES))
        user = render("synthesize_user", reports=reports or "- none", suspects=suspects)
        schema = SynthesisVerdict.model_json_schema()
        schema["properties"]["ranking"]["items"]["enum"] = [suspect_key(s) for s in shown]
        verdict = self._json(
            [Message("system", system), Message("user", user)],
            SynthesisVerdict,
            agent,
            schema=schema,
        )
        known = {suspect_key(s) for s in shown}
        if not any(key in known for key in verdict.ranking):
            raise InvalidAnswer("the ranking names none of the suspects shown")
        return verdict


# -- applying verdicts ---------------------------------------------------------------


def gate(signals: Signals, verdict: SpanVerdict) -> Signals:
    """The rule signals the verdict leaves on (it can switch evidence off, not on)."""
    if not verdict.abnormal:
        return Signals(
            is_client=signals.is_client,
            has_children=signals.has_children,
            evidence=signals.evidence,
        )
    gated = signals
    if not verdict.error_logs:
        gated = replace(gated, error=0.0, crashed=False, mentions=(), status_mentions=())
    if not verdict.metric_anomaly:
        gated = replace(gated, resource=0.0, resource_kind=None)
    return gated


def apply_local(rule: LocalReport, verdict: LocalVerdict) -> LocalReport:
    """The rules' report with the model's local root cause (see module docstring)."""
    if verdict.root_cause == "none":
        report = rule.report.model_copy(
            update={
                "root_cause": None,
                "confidence": verdict.confidence,
                "fault_type": None,
                "evidence": [],
                "summary": verdict.summary,
            }
        )
        return replace(rule, report=report, source=LLM)
    blame = dict(rule.blame)
    chosen = blame[verdict.root_cause]
    if verdict.root_cause != rule.report.root_cause:
        best = max(b.score for b in blame.values())
        raised = best * (1.0 + LOCAL_BOOST * verdict.confidence) + 1e-9
        blame[verdict.root_cause] = replace(chosen, score=max(chosen.score, raised))
    report = rule.report.model_copy(
        update={
            "root_cause": verdict.root_cause,
            "confidence": verdict.confidence,
            "fault_type": verdict.fault_type,
            "evidence": list(chosen.evidence),
            "summary": verdict.summary or chosen.note,
        }
    )
    return replace(rule, report=report, blame=blame, source=LLM)


def suspect_key(suspect: SuspectScore) -> str:
    """A suspect's key, as blame keys read: the instance, else ``service:<name>``."""
    return suspect.instance or f"service:{suspect.service}"


def best_first(suspects: Sequence[SuspectScore]) -> list[SuspectScore]:
    return sorted(suspects, key=lambda s: (-s.score, suspect_key(s)))


def apply_synthesis(suspects: list[SuspectScore], verdict: SynthesisVerdict) -> list[SuspectScore]:
    """The suspects with the window re-ordered as the model says (see module docstring)."""
    ordered = best_first(suspects)
    if not ordered:
        return suspects
    floor = RERANK_FLOOR * ordered[0].score
    window = [s for s in ordered[:RERANK_MAX] if s.score >= floor]
    by_key = {suspect_key(s): s for s in window}
    named = [by_key[k] for k in dict.fromkeys(verdict.ranking) if k in by_key]
    order = named + [s for s in window if s not in named]
    moved: dict[int, SuspectScore] = {}
    for position, (suspect, slot) in enumerate(zip(order, window, strict=True)):
        before = window.index(suspect)
        update = suspect
        if before != position:
            update = replace(
                suspect,
                score=slot.score,
                reason=f"{suspect.reason}; the model moved it from #{before + 1} to "
                f"#{position + 1}",
            )
        if position == 0:
            update = replace(update, fault_type=verdict.fault_type)
        moved[id(suspect)] = update
    return [moved.get(id(s), s) for s in suspects]


# -- the hybrid reasoner -------------------------------------------------------------

#: A span's own evidence (the strongest of its error-log, silence, self-time and edge
#: signals, each in [0, 1]) is ambiguous between these two strengths.
AMBIGUOUS_LOW = 0.25
AMBIGUOUS_HIGH = 0.6
#: Two blame candidates are close when the second scores at least this share of the top.
CONTESTED_RATIO = 0.8
#: The synthesis asks the model when the second suspect is within this share of the top.
SYNTHESIS_MARGIN = 0.15


def ambiguous(signals: Signals) -> bool:
    """Whether the rules' evidence about a span is too unclear to stand alone.

    Ambiguous: the span's strongest own evidence (error logs, silence, self-time, edge
    delay) is moderate, between `AMBIGUOUS_LOW` and `AMBIGUOUS_HIGH`: neither clearly
    abnormal nor clearly noise. Or the evidence conflicts: the span failed (error
    status) at a leaf, yet wrote no error line, no usual line went missing and no usual
    callee is missing, so nothing says whether the fault is its own. A resource shift
    alone does not make a span ambiguous: it is a fact about the instance, the same for
    every span of it, and the synthesis weighs it once per instance anyway.
    """
    s = signals
    own = max(s.error, s.silence, s.self_time, s.edge)
    conflicting = (
        s.status_error
        and not s.has_children
        and s.error == 0
        and s.silence == 0
        and not s.missing_callee
    )
    return conflicting or AMBIGUOUS_LOW <= own < AMBIGUOUS_HIGH


def _top_two(blame: dict[str, Blame]) -> list[tuple[str, float]]:
    ranked = sorted(((k, b.score) for k, b in blame.items()), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:2]


def contested(report: LocalReport, child_reports: list[LocalReport]) -> bool:
    """Whether the top two blame candidates are close (the second at least
    `CONTESTED_RATIO` of the top) and meet here first: no callee's report already had
    the same two on top (that callee's agent decided between them)."""
    top = _top_two(report.blame)
    if len(top) < 2 or top[0][1] <= 0 or top[1][1] < CONTESTED_RATIO * top[0][1]:
        return False
    pair = {top[0][0], top[1][0]}
    return not any({k for k, _ in _top_two(c.blame)} == pair for c in child_reports)


def close_call(suspects: Sequence[SuspectScore]) -> bool:
    """Whether the two best suspects are within `SYNTHESIS_MARGIN` of each other."""
    ordered = best_first(suspects)
    return (
        len(ordered) >= 2
        and ordered[0].score > 0
        and ordered[1].score >= (1.0 - SYNTHESIS_MARGIN) * ordered[0].score
    )


class HybridReasoner:
    """Rules screen every span; the model reasons only about ambiguous evidence."""

    def __init__(
        self,
        session: LLMSession,
        fallback: RuleReasoner,
        *,
        max_tool_rounds: int = 2,
        tool_choice: str = "auto",
    ) -> None:
        self.fallback = fallback
        self.llm = LLMReasoner(
            session, fallback, max_tool_rounds=max_tool_rounds, tool_choice=tool_choice
        )
        self._sent = SentToModel()

    @property
    def outcomes(self) -> Outcomes:
        return self.llm.outcomes

    def ambiguous_spans(self) -> list[str]:
        """``<trace id>:<span key>`` of every span sent to the model, sorted."""
        return self._sent.keys()

    def llm_stats(self) -> dict[str, Any]:
        return hybrid_stats(self.outcomes, self._sent)

    def verify(self, ctx: SpanContext, tools: Toolbox) -> SpanFinding:
        rule = self.fallback.verify(ctx, tools)
        if not ambiguous(rule.signals):
            self.outcomes.record(_agent("verify", rule), RULE)
            return replace(rule, source=RULE)
        self._sent.add(f"{ctx.trace_id}:{rule.key}")
        return self.llm.verify_with(ctx, tools, rule)

    def consolidate(self, finding: SpanFinding, child_reports: list[LocalReport]) -> LocalReport:
        rule = self.fallback.consolidate(finding, child_reports)
        if not contested(rule, child_reports):
            self.outcomes.record(_agent("consolidate", finding), RULE)
            return replace(rule, source=RULE)
        return self.llm.consolidate_with(finding, child_reports, rule)

    def synthesize(
        self, root_reports: list[tuple[str, LocalReport]], ctx: IncidentContext
    ) -> list[SuspectScore]:
        suspects = self.fallback.synthesize(root_reports, ctx)
        if not close_call(suspects):
            self.outcomes.record("synthesize", RULE)
            return suspects
        return self.llm.synthesize_with(root_reports, suspects)
