"""Incident-wide silence: a partial drop must clear a bound that grows with the rows tested."""

from __future__ import annotations

import string

from tiny import SECOND, T0

from tracehound.model import Alert, Incident, IncidentData, Labels, Window
from tracehound.rclagent.context import wide_silence
from tracehound.rclagent.facts import new_context
from tracehound.store import TelemetryStore
from tracehound.tables import from_columns

INCIDENT = Incident(
    id="silence-0001",
    system="t",
    window=Window.from_ns(T0 + 600 * SECOND, T0 + 1200 * SECOND),
    normal_window=Window.from_ns(T0, T0 + 600 * SECOND),
    alert=Alert(service="a", message="errors"),
    labels=Labels(service="a"),
)


def _word(i: int) -> str:
    """Distinct letters-only words, so templates do not collapse (numbers are masked)."""
    letters = string.ascii_lowercase
    return letters[i // 26 % 26] + letters[i % 26]


def _incident(filler_ops: int) -> IncidentData:
    """Instance a-1's `work` writes "wrote the ledger" in 20 of 25 normal-window spans and
    7 of 25 incident-window spans (z = 3.69, a 65 % fall); `filler_ops` operations of f-1
    (10 + 5 spans each) write 20 lines each in every span, all steady."""
    spans: dict[str, list[object]] = {
        k: []
        for k in (
            "trace_id",
            "span_id",
            "parent_span_id",
            "service",
            "instance",
            "operation",
            "kind",
            "start_ns",
            "duration_ns",
            "status",
            "attributes",
        )
    }
    logs: dict[str, list[object]] = {
        k: [] for k in ("ts_ns", "service", "instance", "level", "message", "trace_id", "span_id")
    }

    def span(trace: str, service: str, instance: str, operation: str, at: int) -> None:
        for key, value in (
            ("trace_id", trace),
            ("span_id", "s"),
            ("parent_span_id", None),
            ("service", service),
            ("instance", instance),
            ("operation", operation),
            ("kind", "server"),
            ("start_ns", at),
            ("duration_ns", 10_000_000),
            ("status", "ok"),
            ("attributes", None),
        ):
            spans[key].append(value)

    def line(trace: str, service: str, instance: str, message: str, at: int) -> None:
        for key, value in (
            ("ts_ns", at + 5_000_000),
            ("service", service),
            ("instance", instance),
            ("level", "INFO"),
            ("message", message),
            ("trace_id", trace),
            ("span_id", "s"),
        ):
            logs[key].append(value)

    for window, (start, writes) in enumerate(((T0, 20), (T0 + 600 * SECOND, 7))):
        for k in range(25):
            trace, at = f"a{window}-{k}", start + (k + 1) * 10 * SECOND
            span(trace, "a", "a-1", "work", at)
            if k < writes:
                line(trace, "a", "a-1", "work: wrote the ledger", at)
    for op in range(filler_ops):
        for window, (start, count) in enumerate(((T0, 10), (T0 + 600 * SECOND, 5))):
            for k in range(count):
                trace, at = f"f{op}-{window}-{k}", start + (k + 1) * 20 * SECOND + op
                span(trace, "f", "f-1", f"op {_word(op)}", at)
                for t in range(20):
                    line(trace, "f", "f-1", f"op {_word(op)}: step {_word(t)} done", at)
    return IncidentData(
        incident=INCIDENT,
        spans=from_columns("spans", dict(spans.items()), "silence spans"),
        logs=from_columns("logs", dict(logs.items()), "silence logs"),
    )


def _silenced(filler_ops: int) -> list[tuple[str, str, str]]:
    data = _incident(filler_ops)
    with TelemetryStore.from_incident(data) as store:
        ctx = new_context(data.incident, store, use_logs=True, use_metrics=False)
        return [(i, o, t) for i, o, t, _ in wide_silence(store, ctx)]


def test_a_partial_drop_counts_when_few_rows_are_tested() -> None:
    # 1 + 2 x 20 rows tested: the bound is SILENCE_Z_WIDE (3.1) and z = 3.69 clears it
    assert _silenced(2) == [("a-1", "work", "work: wrote the ledger")]


def test_the_same_drop_is_chance_among_two_thousand_rows() -> None:
    # 1 + 100 x 20 rows tested: one-sided p must be below 0.05 / 2,001 (z ~ 4.05)
    assert _silenced(100) == []
