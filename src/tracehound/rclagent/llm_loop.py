"""What the rclagent LLM reasoners share: the agent's tool loop, typed answers, fallback.

Both the span reasoners (`llm_reasoner`) and the step reasoners (`steps.llm`) ask the
model the same way: an agent is offered tools without arguments (`llm_tools.CitingTools`)
for at most `max_tool_rounds` rounds (``tool_choice="each"``, `EACH`, forces the offered
tools one per round), then answers a pydantic model as JSON whose schema lists the
evidence ids the tools returned; an answer given earlier without tool calls that already
is a valid verdict ends the loop. A failed call, an exhausted budget (every later agent
falls back without calling) or an invalid answer makes that agent keep the rules'
result, with source ``"rule (fallback: <reason>)"``; every agent's outcome is recorded
(thread-safe) for `stats.llm`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tracehound.errors import LLMError
from tracehound.llm.prompts import render
from tracehound.llm.session import BudgetExceeded, LLMSession
from tracehound.llm.types import Message, Request
from tracehound.rclagent.llm_tools import CitingTools, flat

#: `tool_choice` that forces the offered tools one per round, in the order offered, for
#: models that cannot choose tools themselves (the packaged local model ignores tools
#: unless one is forced); the model still judges what they return.
EACH = "each"

LLM = "llm"
RULE = "rule"
#: Fallback reasons listed in `stats.llm.fallbacks` at most.
LISTED_FALLBACKS = 20

_T = TypeVar("_T")
_A = TypeVar("_A", bound=BaseModel)
_F = TypeVar("_F")


def fallback_source(reason: str) -> str:
    """The source of a result the rules supplied because the model's failed."""
    return f"rule (fallback: {reason})"


class InvalidAnswer(LLMError):
    """An answer that fits the schema but names something the model was not offered."""


class Outcomes:
    """Who produced each agent's result: "llm", "rule…" or "rule (fallback: …)"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_agent: dict[str, str] = {}

    def record(self, agent: str, source: str) -> None:
        with self._lock:
            self._by_agent[agent] = source

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(sorted(self._by_agent.items()))

    def summary(self) -> dict[str, Any]:
        """Counts and the first `LISTED_FALLBACKS` fallbacks, sorted by agent."""
        items = self.snapshot()
        prefix = fallback_source("")[:-1]
        fallbacks = [
            {"agent": agent, "reason": source[len(prefix) : -1]}
            for agent, source in items.items()
            if source.startswith(prefix)
        ]
        return {
            "agents_llm": sum(1 for s in items.values() if s == LLM),
            "agents_fallback": len(fallbacks),
            "agents_rule": len(items) - len(fallbacks) - sum(1 for s in items.values() if s == LLM),
            "fallbacks": fallbacks[:LISTED_FALLBACKS],
        }


class SentToModel:
    """The ``<trace id>:<key>`` of every agent a hybrid reasoner sent to the model, for
    ``stats.llm.ambiguous_spans`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()

    def add(self, key: str) -> None:
        with self._lock:
            self._keys.add(key)

    def keys(self) -> list[str]:
        """The keys, sorted."""
        with self._lock:
            return sorted(self._keys)


def hybrid_stats(outcomes: Outcomes, sent: SentToModel) -> dict[str, Any]:
    """A hybrid reasoner's part of `stats.llm`."""
    return {"reasoner": "hybrid", **outcomes.summary(), "ambiguous_spans": sent.keys()}


class ModelAgents(Generic[_F]):
    """A session, the rule reasoner `fallback` (of type `_F`), the tool-loop settings and
    the outcomes of the agents that use them (module docstring); the reasoners add their
    prompts and how verdicts apply."""

    def __init__(
        self,
        session: LLMSession,
        fallback: _F,
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

    def _verdict_with_tools(
        self,
        messages: list[Message],
        box: CitingTools,
        answer_prompt: str,
        model: type[_A],
        agent: str,
    ) -> tuple[_A, dict[str, str]]:
        """The tool rounds after `messages`, then the `answer_prompt` template and the
        `model` answer (its ``evidence`` limited to the ids the tools returned), with
        the aliases of those ids."""
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
                early = inline_verdict(completion.content, model)
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
        messages.append(Message("user", render(answer_prompt)))
        schema = model.model_json_schema()
        cited = schema["properties"]["evidence"]
        if box.aliases:
            cited["items"]["enum"] = list(box.aliases)
        else:
            cited["maxItems"] = 0
        verdict = self._json(messages, model, agent, schema=schema)
        return verdict, box.aliases

    def _json(
        self,
        messages: Sequence[Message],
        model: type[_A],
        agent: str,
        *,
        schema: dict[str, Any] | None = None,
    ) -> _A:
        request = Request(
            tuple(messages),
            max_tokens=self.session.max_tokens,
            tool_choice="none",
            json_schema=schema if schema is not None else model.model_json_schema(),
        )
        answer = self.session.complete_json(request, model, agent=agent)
        if not isinstance(answer, model):
            raise InvalidAnswer(f"the session returned {type(answer).__name__}")
        return answer

    def _guarded(self, ask: Callable[[], _T]) -> _T | str:
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

    def _fall_back(self, agent: str, reason: str) -> str:
        """Record that `agent` keeps the rules' result because of `reason`; its source."""
        source = fallback_source(reason)
        self.outcomes.record(agent, source)
        return source


def cited_evidence(cited: Iterable[str], aliases: dict[str, str]) -> list[str]:
    """The evidence ids behind the aliases a verdict cites, once each, in order; ids the
    tools did not return are dropped. ``e3``, ``[E3]`` and ``E3`` all read ``E3``."""
    keys = (c.strip().strip("[]").strip().upper() for c in cited)
    return list(dict.fromkeys(aliases[k] for k in keys if k in aliases))


def inline_verdict(content: str, model: type[_A]) -> _A | None:
    """A verdict the model gave before its final turn, when the content is one."""
    text = content.strip()
    if not text.startswith("{"):
        return None
    try:
        return model.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None
