"""Statistics over a sample of traces (`rclagent.sample`, `TelemetryStore.over_arrow`)."""

from __future__ import annotations

import duckdb
import pytest
from handmade import MS, T0, Builder

from tracehound.model import Labels
from tracehound.rclagent import RclAgentMethod
from tracehound.rclagent.facts import new_context
from tracehound.rclagent.sample import SAMPLE_BITS, TraceSample, sample_rate, sample_threshold
from tracehound.simulate import generate_incident, generate_system
from tracehound.store import TelemetryStore

BASE_MS = T0 / MS + 10_000
WINDOW_MS = T0 / MS + 610_000


def _bucket(key: str) -> int:
    """The sample bucket of a trace id or of an unlinked line's key, computed apart
    from the store: the top `SAMPLE_BITS` of DuckDB's hash."""
    found = duckdb.sql(f"SELECT hash({key}) >> {64 - SAMPLE_BITS}").fetchall()
    return int(found[0][0])


def _traffic(traces: int) -> Builder:
    """`traces` requests in each window: front-1 calls db-1, each writes an info line;
    every tenth request also warns; two unlinked info lines per window."""
    b = Builder()
    for k in range(traces):
        for prefix, t in (("b", BASE_MS), ("w", WINDOW_MS)):
            trace = f"{prefix}{k}"
            b.span(trace, "a", None, "front-1", "GET /", t + k * 100, 20)
            b.span(trace, "b", "a", "db-1", "query", t + k * 100 + 1, 10)
            b.log(trace, "b", "db-1", "INFO", f"read {k} rows", t + k * 100 + 2)
            if k % 10 == 0:
                b.log(trace, "a", "front-1", "WARN", "slow client", t + k * 100 + 5)
    for t in (BASE_MS, WINDOW_MS):
        b.log("", "", "db-1", "INFO", "compaction done", t + 50)
        b.log("", "", "db-1", "INFO", "cache warm", t + 60)
    return b


def test_a_sample_holds_whole_traces_below_the_threshold_and_those_included() -> None:
    data = _traffic(40).data(Labels(service="db"))
    with TelemetryStore.from_incident(data) as store:
        threshold = 1 << (SAMPLE_BITS - 2)  # a quarter of the buckets
        sample = TraceSample(store, threshold)
        try:
            traces = {f"{p}{k}" for p in "bw" for k in range(40)}
            drawn = {t for t in traces if _bucket(f"'{t}'") < threshold}
            assert 0 < len(drawn) < len(traces)
            outside = sorted(traces - drawn)[:2]
            for included, kept in (([], drawn), (outside, drawn | set(outside))):
                sample.include(included)
                _check(sample.store, kept, threshold)
            # line ids are the store's
            ids = store.query("SELECT rowid AS id, message FROM logs").to_pylist()
            same = sample.store.query("SELECT rowid AS id, message FROM logs").to_pylist()
            assert {(r["id"], r["message"]) for r in same} <= {(r["id"], r["message"]) for r in ids}
        finally:
            sample.close()


def _check(sample: TelemetryStore, kept: set[str], threshold: int) -> None:
    """`sample` holds exactly the spans and linked info lines of `kept`, every warning,
    and the unlinked lines whose own key falls below `threshold`; no attributes."""
    spans = sample.query("SELECT trace_id, span_id, attributes FROM spans").to_pylist()
    assert sorted((s["trace_id"], s["span_id"]) for s in spans) == sorted(
        (t, s) for t in kept for s in "ab"
    )
    assert all(s["attributes"] is None for s in spans)
    lines = sample.query(
        "SELECT trace_id, level, message FROM logs WHERE trace_id <> ''"
    ).to_pylist()
    info = sorted((r["trace_id"], r["message"]) for r in lines if r["level"] == "INFO")
    assert info == sorted((t, f"read {t[1:]} rows") for t in kept)
    warned = sorted(r["trace_id"] for r in lines if r["level"] == "WARN")
    assert warned == sorted(f"{p}{k}" for p in "bw" for k in range(0, 40, 10))
    unlinked = sample.query("SELECT ts_ns FROM logs WHERE trace_id = '' ORDER BY ts_ns")
    expected = [
        int((t + dt) * MS)
        for t in (BASE_MS, WINDOW_MS)
        for dt, text in ((50, "compaction done"), (60, "cache warm"))
        if _bucket(f"{int((t + dt) * MS)}::BIGINT, 'db-1', '{text}'") < threshold
    ]
    assert unlinked.column("ts_ns").to_pylist() == sorted(expected)
    assert sample.counts()["metrics"] == 0


def test_the_threshold_keeps_about_max_traces_of_the_busier_window() -> None:
    b = _traffic(40)
    for k in range(20):  # the window is busier: 60 requests against 40
        b.span(f"x{k}", "a", None, "front-1", "GET /", WINDOW_MS + 5000 + k * 10, 20)
    data = b.data(Labels(service="db"))
    with TelemetryStore.from_incident(data) as store:
        ctx = new_context(data.incident, store, use_logs=True, use_metrics=True)
        assert sample_threshold(store, ctx, 15) == (15 << SAMPLE_BITS) // 60
        assert sample_rate(sample_threshold(store, ctx, 15)) == pytest.approx(0.25, abs=1e-4)
        assert sample_threshold(store, ctx, 60) is None  # no window holds more
        assert sample_threshold(store, ctx, 0) is None  # 0: every trace
        assert sample_rate(None) == 1.0


def test_a_sampled_investigation_still_finds_the_fault() -> None:
    """A simulated error fault, read whole and over a sample of about 60 of its
    requests per window (43 % of its traces): the same answer, and the report says what
    share was read."""
    data = generate_incident(
        generate_system(20, 3), index=1, seed=3, fault_type="error", target_spans=3000
    )
    labels = data.incident.labels
    assert labels is not None
    with TelemetryStore.from_incident(data) as store:
        whole = RclAgentMethod().investigate(data.incident, store)
        sampled = RclAgentMethod(max_traces=60).investigate(data.incident, store)
    assert whole.stats["traces_read"] == 1.0
    assert 0.2 < sampled.stats["traces_read"] < 0.6
    for result in (whole, sampled):
        assert result.ranking.services[0].name == labels.service
        assert result.ranking.instances[0].name == labels.instance
        assert result.fault_type == "error"
        assert result.stats["requests_analysed"] == 5


def test_reports_say_which_share_of_traces_was_read() -> None:
    from tracehound.report.facts import stat_rows

    assert stat_rows({"traces_read": 0.0714, "requests_analysed": 5}) == [
        ("requests analysed", "5"),
        ("traces read", "7.1% (a sample of traces)"),
    ]
    assert stat_rows({"traces_read": 1.0}) == [("traces read", "all")]


def test_reports_say_what_the_scope_covered() -> None:
    from tracehound.report.facts import stat_rows

    assert stat_rows({"scope": "incident", "services_reached": 16}) == [
        ("scope", "incident (every component of the system)"),
        ("services reached", "16"),
    ]
    assert stat_rows({"scope": "graph"}) == [
        ("scope", "graph (the analysed requests' services, their callees and instances)")
    ]
