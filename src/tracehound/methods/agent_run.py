"""An incident read as the run of an LLM multi-agent system, for failure attribution.

A run is a trace whose spans are the agents' steps (`datasets.whowhen`): each span's
service is the speaking agent and its linked log lines are what the agent said. The
history is every span ordered by start time (then trace and span id), so step ``i`` is
the ``i``-th span, 0-based, as Who&When's ``mistake_step`` counts. On other incidents the
same reading applies: a step is a span and its content the span's log lines.

`attribution_ranking` turns one predicted (agent, step) pair into a `Ranking` whose tail
makes AC@k meaningful: the other steps by distance from the predicted step, and the other
agents in the order their steps appear there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tracehound.model import Candidate, Ranking
from tracehound.store import TelemetryStore

_TRAILING_PARENTHESIS = re.compile(r"\s*\([^()]*\)\s*$")

_HISTORY_SQL = """
SELECT s.span_id, s.service, s.attributes,
       coalesce(string_agg(l.message, chr(10) ORDER BY l.ts_ns, l.message), '') AS content
FROM spans s
LEFT JOIN logs l ON l.trace_id = s.trace_id AND l.span_id = s.span_id
GROUP BY s.trace_id, s.span_id, s.service, s.attributes, s.start_ns
ORDER BY s.start_ns, s.trace_id, s.span_id
"""


@dataclass(frozen=True)
class RunStep:
    """One step: its 0-based index, span id, agent (the span's service), the name the
    agent spoke under (the agent with its role suffix, e.g. ``"Planner (thought)"``, when
    the span records one) and what it said."""

    index: int
    span_id: str
    agent: str
    speaker: str
    content: str


def read_history(store: TelemetryStore) -> list[RunStep]:
    """The run's steps in order (module docstring)."""
    table = store.query(_HISTORY_SQL)
    rows = zip(
        table.column("span_id").to_pylist(),
        table.column("service").to_pylist(),
        table.column("attributes").to_pylist(),
        table.column("content").to_pylist(),
        strict=True,
    )
    steps = []
    for index, (span_id, agent, attributes, content) in enumerate(rows):
        suffix = _suffix(attributes)
        speaker = f"{agent} ({suffix})" if suffix else agent
        steps.append(RunStep(index, span_id, agent, speaker, content or ""))
    return steps


def _suffix(attributes: str | None) -> str | None:
    """The ``suffix`` attribute of a span (the role suffix of a Hand-Crafted step)."""
    if not attributes:
        return None
    try:
        data = json.loads(attributes)
    except ValueError:
        return None
    suffix = data.get("suffix") if isinstance(data, dict) else None
    return suffix if isinstance(suffix, str) and suffix else None


def agent_key(name: str) -> str:
    """An agent name compared as Who&When's labels need: without a trailing
    ``" (...)"``, case-folded."""
    return _TRAILING_PARENTHESIS.sub("", name).strip().casefold()


def resolve_agent(name: str, history: list[RunStep]) -> str | None:
    """The run's agent that `name` names (by `agent_key`), or None."""
    wanted = agent_key(name)
    for step in history:
        if agent_key(step.agent) == wanted:
            return step.agent
    return None


def steps_by_distance(history: list[RunStep], step: int) -> list[RunStep]:
    """Every step, nearest to `step` first; the earlier one first on a tie."""
    return sorted(history, key=lambda s: (abs(s.index - step), s.index))


def attribution_ranking(
    history: list[RunStep], agent: str | None, step: int | None, reason: str
) -> Ranking:
    """The ranking of one prediction.

    - Spans: the predicted step, then the other steps by distance from it (earlier first
      on ties). No step predicted (or one outside the run): no spans.
    - Services: the predicted agent, then the other agents in the order of their first
      step in the span order above (in history order when no step was predicted). No
      agent predicted: no services. Nothing predicted: an empty ranking (a miss).

    Scores count down from the number of candidates, so they are ordered best first.
    """
    has_step = step is not None and 0 <= step < len(history)
    ordered = steps_by_distance(history, step) if has_step and step is not None else history
    spans = [s.span_id for s in ordered] if has_step else []
    services: list[str] = []
    if agent is not None:
        services = [agent, *dict.fromkeys(s.agent for s in ordered if s.agent != agent)]
    return Ranking(
        services=_candidates("service", services, reason),
        spans=_candidates("span", spans, reason),
    )


def _candidates(kind: str, names: list[str], reason: str) -> list[Candidate]:
    n = len(names)
    return [
        Candidate(
            kind=kind,  # type: ignore[arg-type]
            name=name,
            score=float(n - rank),
            reason=reason if rank == 0 else "ranked after the prediction",
        )
        for rank, name in enumerate(names)
    ]
