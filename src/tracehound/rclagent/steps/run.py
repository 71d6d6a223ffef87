"""An agent run read from the store: its steps, in order, with their text.

A run of an LLM multi-agent system is stored as one trace whose spans are the agents'
steps (the span's service is the agent, its parent the previous step) and whose log
records linked by span id hold each step's text (ARCHITECTURE §1, the Who&When loader).
Whether an incident is such a run is a property of the data the loader sets, the incident
attribute ``kind: agent-run`` (`AGENT_RUN`), never which dataset it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracehound.model import Incident
from tracehound.store import TelemetryStore

#: The incident attribute (`KIND_ATTRIBUTE`) value that marks an agent run.
KIND_ATTRIBUTE = "kind"
AGENT_RUN = "agent-run"

#: What execution output looks like at the start of a step (a code runner's reply): an
#: exit code, a traceback, a "code output" header, or a note that there was nothing to run.
EXECUTION_OUTPUT = re.compile(
    r"\A\s*(?:exit\s*code|exitcode|traceback \(most recent call last\)|code output\s*:"
    r"|there is no code|no code (?:block )?(?:was )?found)"
    r"|\A[^\n]{0,120}\bexit(?:ed)? (?:with )?(?:an? )?(?:error )?\(?(?:posix )?exit\s*code",
    re.IGNORECASE,
)
#: An agent most of whose steps are execution output is a code runner: all its steps are
#: tool output, whatever they say.
EXECUTOR_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a run: its 0-based index, span id, agent and text."""

    index: int
    span_id: str
    agent: str
    operation: str
    text: str
    #: the step is a tool's (code runner's) output, not an agent's own words
    tool_output: bool


@dataclass(frozen=True)
class AgentRun:
    """A run's steps in order, with the task and (only when allowed) the reference answer."""

    trace_id: str
    steps: tuple[Step, ...]
    question: str | None
    ground_truth: str | None

    def agent_steps(self) -> list[Step]:
        """Steps written by agents (not tool output), in order."""
        return [s for s in self.steps if not s.tool_output]


def is_agent_run(incident: Incident) -> bool:
    """True when the loader marked the incident as a run of a multi-agent system."""
    return incident.attributes.get(KIND_ATTRIBUTE) == AGENT_RUN


def load_run(incident: Incident, store: TelemetryStore, *, use_ground_truth: bool) -> AgentRun:
    """The run's longest trace as steps, in start order, each with its linked log text.

    The reference answer is read only when `use_ground_truth` is true.
    """
    table = store.query(
        """
        WITH t AS (
          SELECT trace_id FROM spans GROUP BY trace_id ORDER BY count(*) DESC, trace_id LIMIT 1)
        SELECT s.trace_id, s.span_id, s.service, s.operation, s.start_ns,
               coalesce(string_agg(l.message, chr(10) ORDER BY l.ts_ns), '') AS text
        FROM spans s JOIN t USING (trace_id)
        LEFT JOIN logs l ON l.trace_id = s.trace_id AND l.span_id = s.span_id
        GROUP BY ALL ORDER BY s.start_ns, s.span_id
        """
        if "logs" in store.modalities()
        else """
        WITH t AS (
          SELECT trace_id FROM spans GROUP BY trace_id ORDER BY count(*) DESC, trace_id LIMIT 1)
        SELECT s.trace_id, s.span_id, s.service, s.operation, s.start_ns, '' AS text
        FROM spans s JOIN t USING (trace_id) ORDER BY s.start_ns, s.span_id
        """
    )
    rows = table.to_pylist()
    looks = [bool(EXECUTION_OUTPUT.search(str(r["text"]))) for r in rows]
    executors = _executors([str(r["service"]) for r in rows], looks)
    steps = tuple(
        Step(
            index=i,
            span_id=str(r["span_id"]),
            agent=str(r["service"]),
            operation=str(r["operation"] or ""),
            text=str(r["text"]),
            tool_output=looks[i] or str(r["service"]) in executors,
        )
        for i, r in enumerate(rows)
    )
    attributes = incident.attributes
    return AgentRun(
        trace_id=str(rows[0]["trace_id"]) if rows else "",
        steps=steps,
        question=attributes.get("question"),
        ground_truth=attributes.get("ground_truth") if use_ground_truth else None,
    )


def _executors(agents: list[str], looks: list[bool]) -> set[str]:
    """Agents whose steps are mostly execution output (`EXECUTOR_SHARE`)."""
    seen: dict[str, list[int]] = {}
    for agent, look in zip(agents, looks, strict=True):
        counts = seen.setdefault(agent, [0, 0])
        counts[0] += 1
        counts[1] += look
    return {a for a, (n, k) in seen.items() if k > EXECUTOR_SHARE * n}
