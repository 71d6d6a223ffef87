"""A tiny hand-made incident for tests that need exact, known telemetry."""

from __future__ import annotations

from pathlib import Path

from tracehound.model import Alert, Incident, IncidentData, Labels, Window
from tracehound.tables import from_columns

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND
SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def tiny_incident() -> IncidentData:
    """Two traces of three spans, with logs and metrics, and full labels."""
    incident = Incident(
        id="tiny-0001",
        system="tiny",
        window=Window.from_ns(T0 + 600 * SECOND, T0 + 1200 * SECOND),
        normal_window=Window.from_ns(T0, T0 + 600 * SECOND),
        alert=Alert(service="front", message="p99 latency"),
        labels=Labels(service="db", instance="db-1", fault_type="cpu"),
        attributes={"note": "hand-made"},
    )
    start = [T0 + 10 * SECOND, T0 + 10 * SECOND + 1000, T0 + 10 * SECOND + 2000]
    start += [T0 + 700 * SECOND, T0 + 700 * SECOND + 1000, T0 + 700 * SECOND + 2000]
    spans = from_columns(
        "spans",
        {
            "trace_id": ["t1", "t1", "t1", "t2", "t2", "t2"],
            "span_id": ["a", "b", "c", "a", "b", "c"],
            "parent_span_id": [None, "a", "b", None, "a", "b"],
            "service": ["front", "front", "db"] * 2,
            "instance": ["front-1", "front-1", "db-1"] * 2,
            "operation": ["GET /", "query", "SELECT"] * 2,
            "kind": ["server", "client", "server"] * 2,
            "start_ns": start,
            "duration_ns": [9_000_000, 8_000_000, 7_000_000, 90_000_000, 80_000_000, 70_000_000],
            "status": ["ok", "ok", "ok", "error", "error", "ok"],
            "attributes": [None, None, '{"db": "x"}', None, None, None],
        },
        "tiny spans",
    )
    logs = from_columns(
        "logs",
        {
            "ts_ns": [T0 + 10 * SECOND, T0 + 700 * SECOND, T0 + 701 * SECOND],
            "service": ["db", "db", "front"],
            "instance": ["db-1", "db-1", "front-1"],
            "level": ["INFO", "ERROR", "WARN"],
            "message": ["select ok", "timeout, retrying", ""],
            "trace_id": ["t1", "t2", None],
            "span_id": ["c", "c", None],
        },
        "tiny logs",
    )
    metric_ts = [T0 + k * 60 * SECOND for k in range(20)]
    metrics = from_columns(
        "metrics",
        {
            "ts_ns": metric_ts * 2,
            "service": ["db"] * 20 + ["front"] * 20,
            "instance": ["db-1"] * 20 + ["front-1"] * 20,
            "node": ["n1"] * 40,
            "name": ["cpu"] * 40,
            "value": [10.0 + (k % 2) for k in range(10)]
            + [90.0 + (k % 2) for k in range(10)]
            + [20.0] * 20,
        },
        "tiny metrics",
    )
    return IncidentData(incident=incident, spans=spans, metrics=metrics, logs=logs)
