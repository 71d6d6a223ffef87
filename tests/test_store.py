from __future__ import annotations

from pathlib import Path

import pytest
from tiny import SECOND, T0, tiny_incident

from tracehound.model import IncidentData, Window
from tracehound.store import TelemetryStore


@pytest.fixture
def store(tiny: IncidentData) -> TelemetryStore:
    return TelemetryStore.from_incident(tiny)


def test_counts_and_modalities(store: TelemetryStore) -> None:
    assert store.counts() == {"spans": 6, "metrics": 40, "logs": 3}
    assert store.modalities() == ["traces", "logs", "metrics"]


def test_trace_queries(store: TelemetryStore) -> None:
    assert store.trace_spans("t2").column("span_id").to_pylist() == ["a", "b", "c"]
    assert store.children("t2", "a").column("span_id").to_pylist() == ["b"]
    assert store.children("t2", "c").num_rows == 0
    assert store.span("t1", "c").column("attributes").to_pylist() == ['{"db": "x"}']
    incident = tiny_incident().incident
    roots = store.root_spans(incident.window)
    assert roots.column("trace_id").to_pylist() == ["t2"]


def test_operation_baseline(store: TelemetryStore) -> None:
    whole = Window.from_ns(T0, T0 + 1200 * SECOND)
    rows = {(r["service"], r["operation"]): r for r in store.operation_baseline(whole).to_pylist()}
    select = rows[("db", "SELECT")]
    assert select["n"] == 2
    assert select["median_ns"] == 38_500_000
    assert select["mad_ns"] == 31_500_000
    assert rows[("front", "GET /")]["error_rate"] == 0.5


def test_instance_logs_filters(store: TelemetryStore) -> None:
    start, end = T0, T0 + 1200 * SECOND
    assert store.instance_logs("db-1", start, end).num_rows == 2
    errors = store.instance_logs("db-1", start, end, levels=["error"])
    assert errors.column("message").to_pylist() == ["timeout, retrying"]
    linked = store.instance_logs("db-1", start, end, trace_id="t1", span_id="c")
    assert linked.column("message").to_pylist() == ["select ok"]
    assert store.instance_logs("db-1", T0 + 650 * SECOND, end).num_rows == 1
    assert store.span_logs("t2", "c").num_rows == 1


def test_metric_series_and_shift(store: TelemetryStore) -> None:
    incident = tiny_incident().incident
    assert incident.normal_window is not None
    series = store.metric_series(incident.window, instance="db-1", names=["cpu"])
    assert series.num_rows == 10
    assert store.metric_series(incident.window, node="n1").num_rows == 20
    shift = {
        r["instance"]: r
        for r in store.metric_shift(incident.normal_window, incident.window).to_pylist()
    }
    assert shift["db-1"]["normal_median"] == 10.5
    assert shift["db-1"]["incident_median"] == 90.5
    assert shift["db-1"]["shift"] == 80.0
    assert shift["db-1"]["normal_mad"] == 0.5
    assert shift["front-1"]["shift"] == 0.0
    baseline = store.metric_baseline(incident.normal_window).to_pylist()
    assert [(r["instance"], r["n"], r["median"]) for r in baseline] == [
        ("db-1", 10, 10.5),
        ("front-1", 10, 20.0),
    ]


def test_file_store_persists(tmp_path: Path, tiny: IncidentData) -> None:
    path = tmp_path / "t.duckdb"
    with TelemetryStore.from_incident(tiny, path) as store:
        assert store.counts()["spans"] == 6
    with TelemetryStore(path, read_only=True) as again:
        assert again.counts() == {"spans": 6, "metrics": 40, "logs": 3}
        window = again.time_range()
        assert window is not None and window.start_ns == T0


def test_empty_store_queries_return_empty_tables() -> None:
    store = TelemetryStore()
    assert store.time_range() is None
    assert store.modalities() == []
    assert store.trace_spans("x").num_rows == 0
    assert store.operation_baseline(Window.from_ns(0, 10)).num_rows == 0


def test_row_objects_from_query_results(store: TelemetryStore) -> None:
    from tracehound.model import LogRecord, MetricPoint, Span
    from tracehound.tables import LOGS_SCHEMA, METRICS_SCHEMA, SPANS_SCHEMA

    assert list(Span.__dataclass_fields__) == SPANS_SCHEMA.names
    assert list(MetricPoint.__dataclass_fields__) == METRICS_SCHEMA.names
    assert list(LogRecord.__dataclass_fields__) == LOGS_SCHEMA.names
    spans = Span.rows(store.trace_spans("t2"))
    assert [(s.span_id, s.parent_span_id, s.status) for s in spans] == [
        ("a", None, "error"),
        ("b", "a", "error"),
        ("c", "b", "ok"),
    ]
    assert spans[2].end_ns == T0 + 700 * SECOND + 2000 + 70_000_000
    logs = LogRecord.rows(store.span_logs("t2", "c"))
    assert logs == [
        LogRecord(T0 + 700 * SECOND, "db", "db-1", "ERROR", "timeout, retrying", "t2", "c")
    ]
    incident = tiny_incident().incident
    points = MetricPoint.rows(store.metric_series(incident.window, instance="db-1"))
    assert [p.value for p in points[:2]] == [90.0, 91.0]


def test_join_keys_link_children_parents_lines_and_series(store: TelemetryStore) -> None:
    """Each child's `pk` is its parent's `sk`, a linked line's `sk` is its span's, roots
    and unlinked lines match no span, and every point of a series shares one `sid`."""
    pairs = store.query(
        "SELECT c.span_id AS child, p.span_id AS parent FROM spans c JOIN spans p "
        "ON p.sk = c.pk WHERE c.trace_id = 't2' ORDER BY child"
    ).to_pylist()
    assert pairs == [{"child": "b", "parent": "a"}, {"child": "c", "parent": "b"}]
    roots = store.query(
        "SELECT count(*) AS n FROM spans c JOIN spans p ON p.sk = c.pk "
        "WHERE c.parent_span_id IS NULL"
    ).to_pylist()
    assert roots == [{"n": 0}]
    linked = store.query(
        "SELECT l.message, s.trace_id, s.span_id FROM logs l JOIN spans s ON s.sk = l.sk "
        "ORDER BY l.message"
    ).to_pylist()
    assert linked == [
        {"message": "select ok", "trace_id": "t1", "span_id": "c"},
        {"message": "timeout, retrying", "trace_id": "t2", "span_id": "c"},
    ]
    series = store.query(
        "SELECT count(DISTINCT sid) AS sids, "
        "count(DISTINCT (service, instance, node, name)) AS names FROM metrics"
    ).to_pylist()
    # the tiny incident has 40 points in 2 series
    assert series == [{"sids": 2, "names": 2}]
    assert store.query(
        "SELECT count(DISTINCT sid) AS n FROM metrics GROUP BY service, instance, node, name"
    ).column("n").to_pylist() == [1, 1]


def test_derived_log_keys_are_filled_for_rows_other_writers_appended(tmp_path: Path) -> None:
    """Rows appended with plain SQL (as the collector's writer does) get their level and
    template from `derive`; a read-only store that lacks them is refused, not misread."""
    from tracehound.errors import BadInput

    path = tmp_path / "s.duckdb"
    with TelemetryStore(path) as store:
        store.con.execute(
            "INSERT INTO logs (ts_ns, service, instance, level, message) "
            "VALUES (1, 'a', 'a-1', 'Error', 'took 12 ms for 0xdeadbeefcafe')"
        )
    with TelemetryStore(path, read_only=True) as store, pytest.raises(BadInput, match="derived"):
        store.derive()
    with TelemetryStore(path) as store:
        store.derive()
        assert store.query(
            "SELECT lvl, tpl, sk = hash('', '') AS unlinked FROM logs"
        ).to_pylist() == [{"lvl": "error", "tpl": "took 0 ms for 0x<id>", "unlinked": True}]
    with TelemetryStore(path, read_only=True) as store:
        store.derive()  # nothing lacking: no error
