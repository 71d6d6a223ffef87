"""The step agent's tools: typed functions over one step of an agent run.

Each tool reads the step's text (and, where it must, its neighbours') and returns a
structured result whose evidence is a set of *quotes*: short excerpts of a step's text
with their character offsets and step id, recorded in the evidence ledger so every claim
of the report points at the words it rests on. The patterns are about how agents and
code runners write (exit codes, exceptions, "not found", assumptions, placeholders), never
about who they are.

- `step_text`: who wrote the step, how long it is, whether it is tool output (a code
  runner's reply) or a hand-off (a few words passing the turn), and the code it writes.
- `failure_signals`: error and failure signals in the text: a non-zero exit code, an
  exception, "not found", a time-out, an empty result, a refusal.
- `code_execution`: for a step that writes code, the execution output that follows it
  and whether that output failed.
- `unverified_claims`: assumptions, simulated or placeholder data, hypothetical values:
  a claim the step makes without having checked it.
- `answer_origin`: whether the step first introduces the value the run ends with, and,
  when the reference answer may be read, whether that value agrees with it.
- `contradiction`: whether the step declares success or correctness right after
  execution output that failed (it contradicts the evidence before it).
- `task_statement`: for the first step, whether it states the run's task (the incident's
  question) or a different one.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from tracehound.rclagent.evidence import EvidenceLedger
from tracehound.rclagent.steps.run import AgentRun, Step

#: A step shorter than this that writes no code passes the turn ("TERMINATE", "Agreed").
HANDOFF_CHARS = 300
#: Quotes are cut to this many characters either side of the match.
QUOTE_CONTEXT = 60
#: Share of the question's words the first step must contain to count as stating it.
TASK_COVERAGE = 0.6

CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|sh|bash|shell|console)?[ \t]*\n", re.IGNORECASE)
FAILURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "non-zero exit code",
        re.compile(r"exit\s*code[^0-9\n]{0,12}(?:[1-9][0-9]*)|execution failed", re.IGNORECASE),
    ),
    (
        "exception",
        re.compile(r"Traceback \(most recent call last\)|\b[A-Z]\w*(?:Error|Exception)\b:?"),
    ),
    (
        "not found",
        re.compile(r"\bnot found\b|no such file|does not exist|\b404\b", re.IGNORECASE),
    ),
    ("time-out", re.compile(r"\btimed? ?out\b|\btimeout\b", re.IGNORECASE)),
    (
        "empty result",
        re.compile(
            r"code output:\s*(?:\Z|\n\s*\n)|\bno results? (?:found|returned)\b"
            r"|\breturned (?:no|an empty)\b|\bempty (?:list|result|response|dataframe)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "refusal",
        re.compile(
            r"\bI (?:cannot|can't|can not|am unable to|'m unable to|do not have access|"
            r"don't have access)\b",
            re.IGNORECASE,
        ),
    ),
)
UNVERIFIED = re.compile(
    r"\b(?:assum(?:e|es|ed|ing|ption)|simulat(?:e|ed|es|ing|ion)|hypothetical(?:ly)?|"
    r"placeholders?|mock(?:ed)? data|dummy|sample data|example data|synthetic data|"
    r"for demonstration|fictional|made[- ]up|let's say|suppose)\b",
    re.IGNORECASE,
)
SUCCESS_CLAIM = re.compile(
    r"\b(?:successfully|has been verified|verified|confirmed|is correct|are correct)\b",
    re.IGNORECASE,
)
BOLD = re.compile(r"\*\*([^*\n]{1,80})\*\*")
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w])")
TERMINATION = re.compile(r"\bTERMINATE\b")
WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Quote:
    """An excerpt of one step's text: ``text == step.text[start:end]``."""

    step: int
    span_id: str
    start: int
    end: int
    text: str
    what: str


@dataclass(frozen=True, slots=True)
class StepText:
    agent: str
    chars: int
    tool_output: bool
    handoff: bool
    code: Quote | None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Failures:
    kinds: tuple[str, ...]
    quotes: tuple[Quote, ...]
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Execution:
    """The execution output that follows a step's code (`result_step` None: none ran)."""

    result_step: int | None
    failed: bool
    quotes: tuple[Quote, ...]
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Claims:
    quotes: tuple[Quote, ...]
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AnswerOrigin:
    """The run's final answer value and whether this step first introduced it."""

    value: str | None
    final_step: int | None
    introduces: bool
    #: does the value agree with the reference answer (None: not read, or no value)
    agrees: bool | None
    quotes: tuple[Quote, ...]
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Contradiction:
    """A claim of success right after failed execution output."""

    failed_step: int | None
    quotes: tuple[Quote, ...]
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskStatement:
    coverage: float
    misstated: bool
    quotes: tuple[Quote, ...]
    evidence: tuple[str, ...] = ()


@dataclass
class _Answer:
    value: str | None = None
    final_step: int | None = None
    origin: int | None = None
    agrees: bool | None = None
    quote: Quote | None = None


def quote(step: Step, start: int, end: int, what: str) -> Quote:
    """A quote of `step` around [start, end), widened by `QUOTE_CONTEXT` characters."""
    lo = max(0, start - QUOTE_CONTEXT)
    hi = min(len(step.text), end + QUOTE_CONTEXT)
    return Quote(step.index, step.span_id, lo, hi, step.text[lo:hi], what)


def normalize(text: str) -> str:
    """Lower case, whitespace runs as one space, thousands separators dropped."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.lower())
    return " ".join(text.split())


def final_answer(run: AgentRun) -> tuple[int | None, str | None]:
    """The last agent step that says more than a hand-off, and the value it states: its
    last bold phrase, else its last number."""
    for step in reversed(run.agent_steps()):
        text = TERMINATION.sub("", step.text).strip()
        if len(text) < 20:
            continue
        bold = [b.strip() for b in BOLD.findall(text) if not b.strip().endswith(":")]
        if bold:
            return step.index, bold[-1]
        numbers = NUMBER.findall(text)
        return step.index, (numbers[-1] if numbers else None)
    return None, None


def _value_pattern(value: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(normalize(value)) + r"(?!\w)")


@dataclass
class StepToolbox:
    """The tools bound to one run and the investigation's evidence ledger."""

    run: AgentRun
    ledger: EvidenceLedger
    _answer: _Answer | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- evidence ---------------------------------------------------------------------

    def cite(self, tool: str, quotes: tuple[Quote, ...] | list[Quote]) -> tuple[str, ...]:
        """Record each quote as an evidence item pointing at its log record; their ids."""
        ids = []
        for q in quotes:
            evidence_id = f"quote:{self.run.trace_id}:{q.span_id}:{q.start}-{q.end}:{tool}"
            excerpt = " ".join(q.text.split())
            self.ledger.add(
                evidence_id,
                "quote",
                f'{q.span_id} {q.what}: "{excerpt}" (chars {q.start}-{q.end})',
                table="logs",
                keys={
                    "trace_id": self.run.trace_id,
                    "span_id": q.span_id,
                    "start": q.start,
                    "end": q.end,
                },
                tool=tool,
            )
            ids.append(evidence_id)
        return tuple(ids)

    # -- tools --------------------------------------------------------------------------

    def step_text(self, index: int) -> StepText:
        step = self.run.steps[index]
        match = CODE_BLOCK.search(step.text)
        code = quote(step, match.start(), match.end(), "writes code") if match else None
        handoff = not step.tool_output and code is None and len(step.text) < HANDOFF_CHARS
        return StepText(
            agent=step.agent,
            chars=len(step.text),
            tool_output=step.tool_output,
            handoff=handoff,
            code=code,
            evidence=self.cite("step_text", [code] if code else []),
        )

    def failure_signals(self, index: int) -> Failures:
        step = self.run.steps[index]
        kinds: list[str] = []
        quotes: list[Quote] = []
        for kind, pattern in FAILURES:
            match = pattern.search(step.text)
            if match is not None:
                kinds.append(kind)
                quotes.append(quote(step, match.start(), match.end(), kind))
        return Failures(tuple(kinds), tuple(quotes), self.cite("failure_signals", quotes))

    def code_execution(self, index: int) -> Execution:
        """The tool output right after the step (when it wrote code) and its failures."""
        step = self.run.steps[index]
        following = self.run.steps[index + 1] if index + 1 < len(self.run.steps) else None
        if CODE_BLOCK.search(step.text) is None or following is None or not following.tool_output:
            return Execution(None, False, ())
        failures = self.failure_signals(following.index)
        return Execution(following.index, bool(failures.kinds), failures.quotes, failures.evidence)

    def unverified_claims(self, index: int) -> Claims:
        step = self.run.steps[index]
        if step.tool_output:
            return Claims(())
        quotes = [
            quote(step, m.start(), m.end(), f"unverified claim ({m.group(0).lower()})")
            for m in UNVERIFIED.finditer(step.text)
        ][:3]
        return Claims(tuple(quotes), self.cite("unverified_claims", quotes))

    def answer_origin(self, index: int) -> AnswerOrigin:
        answer = self._final_answer()
        introduces = answer.origin == index
        quotes = (answer.quote,) if introduces and answer.quote is not None else ()
        return AnswerOrigin(
            value=answer.value,
            final_step=answer.final_step,
            introduces=introduces,
            agrees=answer.agrees,
            quotes=quotes,
            evidence=self.cite("answer_origin", quotes),
        )

    def contradiction(self, index: int) -> Contradiction:
        step = self.run.steps[index]
        if step.tool_output or index == 0:
            return Contradiction(None, ())
        before = self.run.steps[index - 1]
        if not before.tool_output:
            return Contradiction(None, ())
        failed = self.failure_signals(before.index)
        claim = SUCCESS_CLAIM.search(step.text)
        if not failed.kinds or claim is None:
            return Contradiction(None, ())
        quotes = (
            *failed.quotes[:1],
            quote(step, claim.start(), claim.end(), "claims success after a failure"),
        )
        return Contradiction(before.index, quotes, self.cite("contradiction", quotes))

    def task_statement(self, index: int) -> TaskStatement:
        step = self.run.steps[index]
        question = self.run.question
        if index != 0 or not question:
            return TaskStatement(1.0, False, ())
        asked = set(WORD.findall(question.lower()))
        said = set(WORD.findall(step.text.lower()))
        coverage = len(asked & said) / len(asked) if asked else 1.0
        if coverage >= TASK_COVERAGE:
            return TaskStatement(coverage, False, ())
        opening = quote(step, 0, min(len(step.text), 120), "states another task")
        quotes = (opening,)
        return TaskStatement(coverage, True, quotes, self.cite("task_statement", quotes))

    # -- run-level facts -----------------------------------------------------------------

    def _final_answer(self) -> _Answer:
        with self._lock:
            if self._answer is None:
                self._answer = self._find_answer()
            return self._answer

    def _find_answer(self) -> _Answer:
        final_step, value = final_answer(self.run)
        if final_step is None or not value or not normalize(value):
            return _Answer(final_step=final_step)
        truth = self.run.ground_truth
        agrees = None if truth is None else normalize(value) == normalize(truth)
        pattern = _value_pattern(value)
        # values in the first step (the task) are given, not introduced
        for step in self.run.steps[1 : final_step + 1]:
            match = pattern.search(normalize(step.text))
            if match is None:
                continue
            found = re.search(re.escape(value), step.text, re.IGNORECASE)
            start, end = (found.start(), found.end()) if found else (0, 0)
            q = quote(step, start, end, f"states the final value {value!r}")
            return _Answer(value, final_step, step.index, agrees, q)
        return _Answer(value, final_step, None, agrees)
