"""Loader for Who&When: failure attribution in LLM multi-agent runs.

Source: Zhang, Yin, et al., "Which Agent Causes Task Failures and When? On Automated
Failure Attribution of LLM Multi-Agent Systems", ICML 2025 (arXiv:2505.00212).

Each JSON file is one failed run; its ``history`` lists the steps of a group chat. The
run becomes an incident whose trace has one span per step, so the same root-cause
machinery that blames a span of a request can blame a step of a run: the labelled agent
is the incident's service and the labelled step its span.

- Steps carry no timestamps. Step ``i`` is placed at a fixed synthetic epoch
  (2000-01-01T00:00:00Z) plus ``i`` seconds and lasts 1 s, so ordering is preserved and
  times are reproducible.
- The runs are sequential group chats: every step answers the conversation so far, and
  the nearest thing to "the step it answers" is the previous one. Each span's parent is
  therefore the previous step, making the trace a chain rooted at step 0.
- Two schemas exist. Algorithm-Generated steps name the agent in ``name`` and give an
  AG2 chat role (``assistant``/``user``) in ``role``. Hand-Crafted steps have only
  ``role``, holding the agent with a suffix such as ``"Orchestrator (thought)"``; the
  agent is the role without its trailing ``" (...)"``, and the suffix is kept in the
  span's attributes. Agent names are kept as written; comparing them is the scorer's job.
- ``mistake_step`` is a 0-based index into ``history`` written as a string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from tracehound.datasets.base import Dataset
from tracehound.errors import BadInput
from tracehound.model import Incident, IncidentData, Labels, Window
from tracehound.tables import from_columns

#: Runs carry no timestamps; steps are laid out one second apart from this instant.
SYNTHETIC_EPOCH_NS = 946_684_800 * 1_000_000_000  # 2000-01-01T00:00:00Z
STEP_NS = 1_000_000_000
DEFAULT_FAULT_TYPE = "agent_mistake"
_SUFFIX_RE = re.compile(r"^(?P<agent>.*?)\s*\((?P<suffix>[^()]*)\)\s*$")
_EXPECTED = "a JSON object with a 'history' list of steps"


@dataclass(frozen=True)
class RunFile:
    """One run's JSON file and the subset folder it belongs to."""

    subset: str
    path: Path

    @property
    def id(self) -> str:
        return f"ww-{slugify(self.subset)}-{slugify(self.path.stem)}"


@dataclass(frozen=True)
class Step:
    """One element of ``history``, with the agent resolved across both schemas."""

    agent: str
    role: str
    suffix: str | None
    content: str


def slugify(text: str) -> str:
    """Lower-case, with every run of other characters than letters and digits as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def split_role(role: str) -> tuple[str, str | None]:
    """``"Planner (-> Browser)"`` → (``"Planner"``, ``"-> Browser"``)."""
    match = _SUFFIX_RE.match(role)
    if match is None or not match.group("agent"):
        return role, None
    return match.group("agent"), match.group("suffix")


def _stem_order(path: Path) -> tuple[int, int, str]:
    """Numeric stems in numeric order (so 10 follows 9), any others after them by name."""
    stem = path.stem
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def _json_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("*.json") if p.is_file()), key=_stem_order)


def find_runs(root: Path) -> list[RunFile]:
    """Run files by subset folder name, then numeric stem.

    A root holding JSON files directly is itself one subset, named after the folder.
    """
    runs: list[RunFile] = []
    folders = [root, *(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]
    for folder in sorted(folders, key=lambda p: p.name):
        runs.extend(RunFile(folder.name, path) for path in _json_files(folder))
    return runs


def read_run(path: Path) -> dict[str, Any]:
    """A run file's object, checked to hold a ``history`` list."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(
            f"is not a readable JSON file ({exc})", file=path, expected=_EXPECTED
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("history"), list):
        raise BadInput("has no 'history' list", file=path, expected=_EXPECTED)
    if not data["history"]:
        raise BadInput("'history' is empty", file=path, expected="at least one step")
    return data


def _text(value: object) -> str:
    """Step content as text: null is empty, anything else that is not text is JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_steps(data: dict[str, Any], path: Path) -> list[Step]:
    """Resolve every step's agent: ``name`` when present, else ``role`` minus its suffix."""
    steps: list[Step] = []
    for i, raw in enumerate(data["history"]):
        if not isinstance(raw, dict):
            raise BadInput(
                f"history step {i} is not an object", file=path, expected="{content, role}"
            )
        role = _text(raw.get("role"))
        name = raw.get("name")
        if isinstance(name, str) and name:
            agent, suffix = name, None
        else:
            agent, suffix = split_role(role)
        if not agent:
            raise BadInput(
                f"history step {i} names no agent",
                file=path,
                expected="a 'name' or 'role' on every step",
            )
        steps.append(Step(agent, role, suffix, _text(raw.get("content"))))
    return steps


def mistake_step(data: dict[str, Any], path: Path) -> int | None:
    """The labelled step as an int (the files write it as a string), None when absent."""
    value = data.get("mistake_step")
    if value is None or value == "":
        return None
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise BadInput(
            f"'mistake_step' is {value!r}",
            file=path,
            expected="a 0-based step index (an integer or a string holding one)",
        ) from exc


def _labels(data: dict[str, Any], path: Path) -> Labels:
    step = mistake_step(data, path)
    agent = data.get("mistake_agent")
    fault_type = data.get("mistake_type")
    reason = data.get("mistake_reason")
    return Labels(
        service=str(agent) if agent not in (None, "") else None,
        span=f"step-{step}" if step is not None else None,
        step=step,
        fault_type=str(fault_type) if fault_type not in (None, "") else DEFAULT_FAULT_TYPE,
        detail=str(reason) if reason not in (None, "") else None,
    )


def _attributes(data: dict[str, Any], subset: str) -> dict[str, str]:
    """The run's question and reference answer (the ground truth key changed its name),
    and ``kind: agent-run``, which marks the incident as a run of agents."""
    found = {
        "question": data.get("question"),
        "ground_truth": data.get("ground_truth", data.get("groundtruth")),
        "question_id": data.get("question_ID"),
        "level": data.get("level"),
    }
    attributes = {key: str(value) for key, value in found.items() if value is not None}
    attributes["subset"] = subset
    # what rclagent recognises a run of a multi-agent system by (`rclagent.steps.run`)
    attributes["kind"] = "agent-run"
    return attributes


def _spans(steps: list[Step], trace_id: str, source: Path) -> pa.Table:
    n = len(steps)
    attributes = []
    for i, step in enumerate(steps):
        attrs: dict[str, object] = {"step": i, "role": step.role, "chars": len(step.content)}
        if step.suffix is not None:
            attrs["suffix"] = step.suffix
        attributes.append(json.dumps(attrs, ensure_ascii=False))
    agents = [s.agent for s in steps]
    return from_columns(
        "spans",
        {
            "trace_id": [trace_id] * n,
            "span_id": [f"step-{i}" for i in range(n)],
            "parent_span_id": [None, *(f"step-{i}" for i in range(n - 1))],
            "service": agents,
            "instance": agents,
            "operation": [s.role for s in steps],
            "kind": ["internal"] * n,
            "start_ns": [SYNTHETIC_EPOCH_NS + i * STEP_NS for i in range(n)],
            "duration_ns": [STEP_NS] * n,
            "status": ["unset"] * n,
            "attributes": attributes,
        },
        str(source),
    )


def _logs(steps: list[Step], trace_id: str, source: Path) -> pa.Table:
    n = len(steps)
    agents = [s.agent for s in steps]
    return from_columns(
        "logs",
        {
            "ts_ns": [SYNTHETIC_EPOCH_NS + i * STEP_NS for i in range(n)],
            "service": agents,
            "instance": agents,
            "level": ["INFO"] * n,
            "message": [s.content for s in steps],
            "trace_id": [trace_id] * n,
            "span_id": [f"step-{i}" for i in range(n)],
        },
        str(source),
    )


class WhoWhenDataset(Dataset):
    """Who&When logs: one incident per run file, its steps as spans and log lines."""

    kind = "who-and-when"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        # Parsed files and the id → file index, kept so iterating a dataset reads each once.
        self._parsed: dict[Path, dict[str, Any]] = {}
        self._runs: dict[str, RunFile] | None = None

    @classmethod
    def detect(cls, root: Path) -> bool:
        """True when the first run file found parses and holds a ``history`` list."""
        if not root.is_dir():
            return False
        runs = find_runs(root)
        if not runs:
            return False
        try:
            read_run(runs[0].path)
        except BadInput:
            return False
        return True

    def modalities(self) -> list[str]:
        return ["traces", "logs"]

    def _data(self, path: Path) -> dict[str, Any]:
        if path not in self._parsed:
            self._parsed[path] = read_run(path)
        return self._parsed[path]

    def _incident(self, run: RunFile) -> Incident:
        data = self._data(run.path)
        n = len(data["history"])
        return Incident(
            id=run.id,
            system=slugify(run.subset),
            window=Window.from_ns(SYNTHETIC_EPOCH_NS, SYNTHETIC_EPOCH_NS + n * STEP_NS),
            labels=_labels(data, run.path),
            attributes=_attributes(data, run.subset),
        )

    def incidents(self) -> list[Incident]:
        """Every run's metadata; parses each file once and keeps it for `load`."""
        return [self._incident(run) for run in find_runs(self.root)]

    def _run(self, incident_id: str) -> RunFile:
        if self._runs is None:
            self._runs = {run.id: run for run in find_runs(self.root)}
        if incident_id in self._runs:
            return self._runs[incident_id]
        raise BadInput(
            f"unknown incident id {incident_id!r}",
            file=self.root,
            expected="an id such as ww-<subset>-<n> listed by `datasets info`",
        )

    def load(self, incident_id: str) -> IncidentData:
        run = self._run(incident_id)
        incident = self._incident(run)
        steps = parse_steps(self._data(run.path), run.path)
        return IncidentData(
            incident=incident,
            spans=_spans(steps, incident.id, run.path),
            logs=_logs(steps, incident.id, run.path),
        )
