"""The layer every LLM caller goes through: limits, budget, accounting, JSON answers.

Backends only move requests and completions (`llm.backend`). What an investigation
needs on top is the same for every backend, so it lives here once:

- a process-wide concurrency limit (`global_limiter`), so a thread pool of span agents
  does not flood a small local server;
- a per-investigation budget of calls and tokens, checked *before* each call
  (`BudgetExceeded`), so a runaway investigation stops instead of running up a bill;
- a per-call cap on `max_tokens` and on tool output fed back to the model;
- accounting of calls, tokens, wall time, cost, failures and repairs, per agent and in
  total (`stats()`, reported as `stats.llm`);
- JSON answers validated with pydantic, with one repair round, because small models
  often wrap the object in prose or cut it off.

Sessions are thread-safe: agents call `complete` from a thread pool, and all counters
change under one lock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tracehound.errors import BudgetExceeded, LLMError
from tracehound.llm.backend import Backend, create_backend
from tracehound.llm.config import LLMConfig, require_endpoint
from tracehound.llm.replay import RecordingBackend, ReplayBackend
from tracehound.llm.textcalls import json_candidates
from tracehound.llm.types import Completion, Message, Request

__all__ = [
    "Budget",
    "BudgetExceeded",
    "LLMSession",
    "global_limiter",
    "open_session",
]

M = TypeVar("M", bound=BaseModel)

REPAIR_INSTRUCTION = "Answer again with only the JSON object."
_MAX_CANDIDATES = 20


@dataclass
class Budget:
    """Limits for one investigation; None means no limit.

    The token limit is checked against tokens already used, so calls in flight when it
    is reached may overshoot it by their own usage.
    """

    max_calls: int | None = None
    max_total_tokens: int | None = None


@dataclass
class _Tally:
    """Counters of one agent."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_time_s: float = 0.0
    failures: int = 0
    repairs: int = 0


class LLMSession:
    """Budgeted, rate-limited, accounted access to one backend (module docstring).

    `limiter` is shared by every session that should share a concurrency limit (see
    `global_limiter`); `max_tokens` caps each request's `max_tokens`; prices are USD
    per 1,000 tokens; `model` names the model in `stats()` (else the last answer's).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        budget: Budget | None = None,
        limiter: threading.Semaphore | None = None,
        max_tokens: int = 512,
        max_tool_output_chars: int = 2000,
        price_prompt_per_1k: float = 0.0,
        price_completion_per_1k: float = 0.0,
        model: str = "",
    ) -> None:
        self.backend = backend
        self.budget = budget if budget is not None else Budget()
        self.limiter = limiter
        self.max_tokens = max_tokens
        self.max_tool_output_chars = max_tool_output_chars
        self.price_prompt_per_1k = price_prompt_per_1k
        self.price_completion_per_1k = price_completion_per_1k
        self.model = model
        self._lock = threading.Lock()
        self._agents: dict[str, _Tally] = {}
        self._started = 0
        self._text_tool_calls = 0
        self._budget_exhausted = False
        self._last_model = ""

    def complete(self, request: Request, *, agent: str) -> Completion:
        """One call for `agent`: budget check, concurrency limit, accounting.

        Raises `BudgetExceeded` without calling when the budget is spent; an error from
        the backend is counted as a failure of `agent` and re-raised.
        """
        if request.max_tokens > self.max_tokens:
            request = replace(request, max_tokens=self.max_tokens)
        self._admit()
        with self.limiter if self.limiter is not None else contextlib.nullcontext():
            start = time.perf_counter()
            try:
                completion = self.backend.complete(request)
            except Exception:
                self._record(agent, None, time.perf_counter() - start)
                raise
            self._record(agent, completion, time.perf_counter() - start)
        return completion

    def complete_json(self, request: Request, model: type[M], *, agent: str) -> M:
        """A `model` instance from the answer to `request`, with one repair round.

        The schema is sent with the request (unless it has one). The first JSON object
        in the answer that validates is used (fenced and prose-wrapped answers are
        fine). Otherwise the answer and the validation error go back to the model once;
        a second invalid answer raises `LLMError`, counted as a failure of `agent`.
        """
        if request.json_schema is None:
            request = replace(request, json_schema=model.model_json_schema())
        completion = self.complete(request, agent=agent)
        answer, problem = _validate(completion, model)
        if answer is not None:
            return answer
        with self._lock:
            self._tally(agent).repairs += 1
        repair = replace(
            request,
            messages=(
                *request.messages,
                Message(role="assistant", content=completion.content),
                Message(
                    role="user",
                    content=f"That answer is not valid: {problem}. {REPAIR_INSTRUCTION}",
                ),
            ),
        )
        completion = self.complete(repair, agent=agent)
        answer, problem = _validate(completion, model)
        if answer is not None:
            return answer
        with self._lock:
            self._tally(agent).failures += 1
        raise LLMError(
            f"the LLM's answer for agent {agent!r} is not a valid {model.__name__} even "
            f"after a repair round: {problem}"
        )

    def cap_tool_output(self, text: str) -> str:
        """`text` cut to `max_tool_output_chars`, with a marker saying how much was cut."""
        limit = self.max_tool_output_chars
        if len(text) <= limit:
            return text
        return f"{text[:limit]}\n…[truncated {len(text) - limit} characters]"

    def stats(self) -> dict[str, Any]:
        """Totals and per-agent counters (`stats.llm` of a report).

        `wall_time_s` sums the time calls spent in the backend, so with concurrent
        agents it can exceed the investigation's elapsed time.
        """
        with self._lock:
            agents = {name: _Tally(**vars(t)) for name, t in sorted(self._agents.items())}
            text_calls, exhausted, last_model = (
                self._text_tool_calls,
                self._budget_exhausted,
                self._last_model,
            )
        prompt = sum(t.prompt_tokens for t in agents.values())
        completion = sum(t.completion_tokens for t in agents.values())
        cost = (
            prompt / 1000 * self.price_prompt_per_1k
            + completion / 1000 * self.price_completion_per_1k
        )
        return {
            "calls": sum(t.calls for t in agents.values()),
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "wall_time_s": round(sum(t.wall_time_s for t in agents.values()), 6),
            "cost_usd": round(cost, 6),
            "failures": sum(t.failures for t in agents.values()),
            "repairs": sum(t.repairs for t in agents.values()),
            "text_tool_calls": text_calls,
            "budget_exhausted": exhausted,
            "budget": {
                "max_calls": self.budget.max_calls,
                "max_total_tokens": self.budget.max_total_tokens,
            },
            "model": self.model or last_model,
            "per_agent": {
                name: {
                    "calls": t.calls,
                    "prompt_tokens": t.prompt_tokens,
                    "completion_tokens": t.completion_tokens,
                    "wall_time_s": round(t.wall_time_s, 6),
                    "failures": t.failures,
                    "repairs": t.repairs,
                }
                for name, t in agents.items()
            },
        }

    def close(self) -> None:
        """Close the backend (its connections)."""
        self.backend.close()

    def _admit(self) -> None:
        """Count a call against the budget, or raise `BudgetExceeded`."""
        with self._lock:
            calls, tokens = self.budget.max_calls, self.budget.max_total_tokens
            used = sum(t.prompt_tokens + t.completion_tokens for t in self._agents.values())
            if calls is not None and self._started >= calls:
                self._budget_exhausted = True
                raise BudgetExceeded(
                    f"LLM budget spent: all {calls} calls of this investigation are used "
                    "(raise max_calls: --llm-max-calls, TRACEHOUND_LLM_MAX_CALLS or [llm])"
                )
            if tokens is not None and used >= tokens:
                self._budget_exhausted = True
                raise BudgetExceeded(
                    f"LLM budget spent: {used} of {tokens} tokens used (raise "
                    "max_total_tokens: TRACEHOUND_LLM_MAX_TOTAL_TOKENS "
                    "or [llm])"
                )
            self._started += 1

    def _record(self, agent: str, completion: Completion | None, seconds: float) -> None:
        with self._lock:
            tally = self._tally(agent)
            tally.calls += 1
            tally.wall_time_s += seconds
            if completion is None:
                tally.failures += 1
                return
            tally.prompt_tokens += completion.usage.prompt_tokens
            tally.completion_tokens += completion.usage.completion_tokens
            self._text_tool_calls += int(completion.tool_calls_from_text)
            self._last_model = completion.model or self._last_model

    def _tally(self, agent: str) -> _Tally:
        tally = self._agents.get(agent)
        if tally is None:
            tally = self._agents[agent] = _Tally()
        return tally


def _validate(completion: Completion, model: type[M]) -> tuple[M | None, str]:
    """The first JSON object in the answer valid as `model`, or None and why not."""
    problem = ""
    for candidate in islice(json_candidates(completion.content), _MAX_CANDIDATES):
        try:
            return model.model_validate(candidate), ""
        except ValidationError as exc:
            problem = problem or _describe_errors(exc)
    if not problem:
        problem = "no JSON object found in the answer"
    if completion.finish_reason == "length":
        problem += " (the answer was cut off at the max_tokens limit; be brief)"
    return None, problem


def _describe_errors(exc: ValidationError, shown: int = 5) -> str:
    errors = exc.errors()
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '(object)'}: {err['msg']}"
        for err in errors[:shown]
    ]
    if len(errors) > shown:
        parts.append(f"and {len(errors) - shown} more")
    return "; ".join(parts)


_LIMITERS: dict[int, threading.Semaphore] = {}
_LIMITERS_LOCK = threading.Lock()


def global_limiter(concurrency: int) -> threading.Semaphore:
    """The process-wide semaphore for `concurrency`, created on first use.

    A module-level registry on purpose: the limit protects the LLM server, which every
    session in the process shares, so sessions opened independently (one per
    investigation) must draw from the same semaphore.
    """
    if concurrency < 1:
        raise LLMError(f"LLM concurrency must be at least 1, not {concurrency}")
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(concurrency)
        if limiter is None:
            limiter = _LIMITERS[concurrency] = threading.Semaphore(concurrency)
        return limiter


def open_session(config: LLMConfig) -> LLMSession:
    """A session for `config`: the replay backend when `config.replay` is set, else the
    configured backend (after `require_endpoint`), recording when `config.record` is set.
    """
    backend: Backend
    if config.replay:
        backend = ReplayBackend(path=config.replay)
    elif config.backend == "replay":
        raise LLMError(
            "the replay backend needs a transcript: set --replay, TRACEHOUND_LLM_REPLAY, "
            "or replay under [llm] in the config file"
        )
    else:
        require_endpoint(config)
        backend = create_backend(
            config.backend,
            base_url=config.base_url,
            model=config.model,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            json_mode=config.json_mode,
        )
    if config.record:
        backend = RecordingBackend(backend, path=config.record)
    return LLMSession(
        backend,
        budget=Budget(max_calls=config.max_calls, max_total_tokens=config.max_total_tokens),
        limiter=global_limiter(config.concurrency),
        max_tokens=config.max_tokens,
        max_tool_output_chars=config.max_tool_output_chars,
        price_prompt_per_1k=config.price_prompt_per_1k,
        price_completion_per_1k=config.price_completion_per_1k,
        model=config.model or "",
    )
