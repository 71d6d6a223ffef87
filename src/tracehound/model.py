"""Typed objects of tracehound (ARCHITECTURE §3).

Small objects are pydantic models, validated at the boundaries. Telemetry is never a list
of Python objects: it stays in Arrow tables (see `tables.py`) and in DuckDB (`store.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

BUNDLE_FORMAT = "tracehound-bundle/1"

#: The fault types the simulator injects and the engine predicts (the engine may also say
#: ``disk``: `PREDICTED_FAULT_TYPES`). Dataset loaders keep the dataset's own fault-type
#: names in `Labels.fault_type` (e.g. Nezha's ``cpu_contention``).
FAULT_TYPES = (
    "cpu",
    "memory",
    "latency",
    "network",
    "error",
    "wrong_return",
    "unavailable",
)
#: What rclagent may name as a fault type: the simulator's, and ``disk`` when disk I/O
#: series explain a component (`metric_ranking.RESOURCE_KINDS`).
PREDICTED_FAULT_TYPES = (*FAULT_TYPES, "disk")


def ns_from_datetime(moment: datetime) -> int:
    """Epoch nanoseconds of an aware datetime (naive datetimes are read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def datetime_from_ns(ns: int) -> datetime:
    """An aware UTC datetime from epoch nanoseconds (microsecond precision)."""
    return datetime.fromtimestamp(ns // 1_000 / 1_000_000, tz=UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Window(_Frozen):
    """A half-open time interval [start, end), timezone-aware."""

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _check(self) -> Window:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window times need an explicit UTC offset (RFC 3339)")
        if self.end <= self.start:
            raise ValueError(
                f"window is empty: end {self.end.isoformat()} is not after "
                f"start {self.start.isoformat()}"
            )
        return self

    @classmethod
    def from_ns(cls, start_ns: int, end_ns: int) -> Window:
        """The window [start_ns, end_ns), widened outwards to whole microseconds."""
        end_us = -(-end_ns // 1_000)
        return cls(start=datetime_from_ns(start_ns), end=datetime_from_ns(end_us * 1_000))

    @property
    def start_ns(self) -> int:
        return ns_from_datetime(self.start)

    @property
    def end_ns(self) -> int:
        return ns_from_datetime(self.end)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class Alert(_Frozen):
    """What paged the on-call engineer, if anything."""

    time: datetime | None = None
    service: str | None = None
    message: str | None = None


class Labels(_Frozen):
    """Ground truth of an incident. Every field is optional."""

    service: str | None = None
    instance: str | None = None
    span: str | None = None
    fault_type: str | None = None
    fault_start: datetime | None = None
    #: For agent runs: the 0-based step index of the decisive mistake.
    step: int | None = None
    #: Finer-grained label the dataset gives (e.g. Nezha's inner-service code region).
    detail: str | None = None


class Incident(_Frozen):
    """An incident's metadata: the `incident.json` of a bundle (ARCHITECTURE §2)."""

    format: str = BUNDLE_FORMAT
    id: str = Field(min_length=1)
    system: str | None = None
    window: Window
    normal_window: Window | None = None
    alert: Alert | None = None
    labels: Labels | None = None
    #: Free-form string attributes (e.g. an agent run's question and reference answer).
    attributes: dict[str, str] = Field(default_factory=dict)


@dataclass
class IncidentData:
    """An incident together with its telemetry tables, as a loader yields it.

    Each table follows the schema in `tables.py`, or is None when the modality is absent.
    `notes` says what was missing or repaired while loading.
    """

    incident: Incident
    spans: pa.Table | None = None
    metrics: pa.Table | None = None
    logs: pa.Table | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def modalities(self) -> list[str]:
        present = []
        if self.spans is not None and self.spans.num_rows:
            present.append("traces")
        if self.logs is not None and self.logs.num_rows:
            present.append("logs")
        if self.metrics is not None and self.metrics.num_rows:
            present.append("metrics")
        return present


@dataclass(frozen=True, slots=True)
class Span:
    """One span, for code that reasons about a handful of rows (an agent's own span).

    Bulk telemetry stays in Arrow tables; `Span.rows(table)` converts a small query result.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    service: str
    instance: str
    operation: str
    kind: str
    start_ns: int
    duration_ns: int
    status: str
    attributes: str | None = None

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @classmethod
    def rows(cls, table: pa.Table) -> list[Span]:
        return [cls(**row) for row in table.select(_SPAN_FIELDS).to_pylist()]


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One metric sample (see `Span` on when to use row objects)."""

    ts_ns: int
    service: str
    instance: str
    node: str
    name: str
    value: float

    @classmethod
    def rows(cls, table: pa.Table) -> list[MetricPoint]:
        return [cls(**row) for row in table.select(_METRIC_FIELDS).to_pylist()]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log line (see `Span` on when to use row objects)."""

    ts_ns: int
    service: str
    instance: str
    level: str
    message: str
    trace_id: str | None = None
    span_id: str | None = None

    @classmethod
    def rows(cls, table: pa.Table) -> list[LogRecord]:
        return [cls(**row) for row in table.select(_LOG_FIELDS).to_pylist()]


_SPAN_FIELDS = list(Span.__dataclass_fields__)
_METRIC_FIELDS = list(MetricPoint.__dataclass_fields__)
_LOG_FIELDS = list(LogRecord.__dataclass_fields__)


CandidateKind = Literal["service", "instance", "span"]


class Candidate(_Frozen):
    """One suspect in a ranking."""

    kind: CandidateKind
    name: str
    score: float
    reason: str = ""


class Ranking(_Frozen):
    """A method's answer: suspects best first, at service and (where possible) finer levels."""

    services: list[Candidate] = Field(default_factory=list)
    instances: list[Candidate] = Field(default_factory=list)
    spans: list[Candidate] = Field(default_factory=list)
    fault_type: str | None = None


class Evidence(_Frozen):
    """A checkable fact: what a tool saw, pointing at the raw rows it came from."""

    id: str
    kind: str
    summary: str
    #: table name ("spans", "logs", "metrics") and the keys of the rows it cites
    table: str | None = None
    keys: dict[str, Any] = Field(default_factory=dict)
    tool: str | None = None
    value: float | None = None
    #: who concluded it, for findings and reports of an investigation a model took part
    #: in: "llm", "rule", or "rule (fallback: <reason>)"; None otherwise
    source: str | None = None


class EvidenceEdge(_Frozen):
    source: str
    target: str
    relation: str


class EvidenceGraph(_Frozen):
    """Findings, tool calls and raw rows, linked by what supports what."""

    nodes: list[Evidence] = Field(default_factory=list)
    edges: list[EvidenceEdge] = Field(default_factory=list)


class Finding(_Frozen):
    """What one span agent concluded about its own span (phase 1)."""

    span_id: str
    service: str
    instance: str
    abnormal: bool
    error_logs: bool = False
    metric_anomaly: bool = False
    symptoms: list[str] = Field(default_factory=list)
    hypothesis: str = ""
    evidence: list[str] = Field(default_factory=list)


class Report(_Frozen):
    """An agent's consolidated local root-cause hypothesis (phase 2), or the final report."""

    span_id: str | None = None
    root_cause: str | None = None
    confidence: float = 0.0
    fault_type: str | None = None
    path: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    summary: str = ""
