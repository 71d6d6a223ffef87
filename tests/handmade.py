"""Hand-made traces and logs for tests that need exact, known telemetry."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracehound.model import Incident, IncidentData, Labels, Window
from tracehound.tables import LOGS_SCHEMA, SPANS_SCHEMA, from_columns

MS = 1_000_000
SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


@dataclass
class Builder:
    """Spans and logs of hand-made traces, one column list each. An instance's service
    is its name up to the first "-"; `data` puts them in an incident whose normal window
    is [T0, T0 + 600 s) and incident window the 600 s after."""

    spans: dict[str, list[object]] = field(
        default_factory=lambda: {k: [] for k in SPANS_SCHEMA.names if k != "attributes"}
    )
    logs: dict[str, list[object]] = field(
        default_factory=lambda: {k: [] for k in LOGS_SCHEMA.names}
    )

    def span(
        self,
        trace: str,
        span: str,
        parent: str | None,
        instance: str,
        operation: str,
        start_ms: float,
        duration_ms: float,
        status: str = "unset",
    ) -> None:
        values = (
            trace,
            span,
            parent,
            instance.split("-")[0],
            instance,
            operation,
            "unset",
            int(start_ms * MS),
            int(duration_ms * MS),
            status,
        )
        for key, value in zip(self.spans, values, strict=True):
            self.spans[key].append(value)

    def log(
        self, trace: str, span: str, instance: str, level: str, message: str, t_ms: float
    ) -> None:
        values = (int(t_ms * MS), instance.split("-")[0], instance, level, message, trace, span)
        for key, value in zip(self.logs, values, strict=True):
            self.logs[key].append(value)

    def data(self, labels: Labels) -> IncidentData:
        incident = Incident(
            id="hand-0001",
            window=Window.from_ns(T0 + 600 * SECOND, T0 + 1200 * SECOND),
            normal_window=Window.from_ns(T0, T0 + 600 * SECOND),
            labels=labels,
        )
        logs = from_columns("logs", self.logs, "logs") if self.logs["ts_ns"] else None
        return IncidentData(
            incident=incident, spans=from_columns("spans", self.spans, "spans"), logs=logs
        )
