"""Finding incident windows in unlabelled telemetry, and `investigate --store`."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from cli_helpers import assert_bad_input, run_cli

from tracehound.errors import BadInput
from tracehound.live import DEFAULT_RULE, find_window, live_incident, parse_moment
from tracehound.live.window import last_stretch, normal_before
from tracehound.otlp.filestore import create_tables
from tracehound.tables import from_columns

S = 1_000_000_000
MINUTE = 60 * S
#: 2023-11-14T22:13:20Z
T0 = 1_700_000_000 * S


def burst_spans(n: int = 3600, first_minute: int = 100, last_minute: int = 110) -> pa.Table:
    """One request every 2 s for two hours; all fail in minutes [first, last)."""
    start = T0 + np.arange(n, dtype=np.int64) * 2 * S
    minute = (start - T0) // MINUTE
    failing = (minute >= first_minute) & (minute < last_minute)
    return from_columns(
        "spans",
        {
            "trace_id": [f"t{i}" for i in range(n)],
            "span_id": [f"s{i}" for i in range(n)],
            "parent_span_id": pa.nulls(n, pa.string()),
            "service": ["web"] * n,
            "instance": ["web-0"] * n,
            "operation": ["GET /"] * n,
            "start_ns": start,
            "duration_ns": np.full(n, 10_000_000),
            "status": np.where(failing, "error", "ok"),
        },
        "test",
    )


def step_metrics() -> pa.Table:
    """Three series sampled every 15 s for two hours; one jumps 10 -> 50 at minute 110."""
    ts = T0 + np.arange(480, dtype=np.int64) * 15 * S
    values = [np.full(480, 10.0), np.full(480, 3.0), np.full(480, 7.0)]
    values[0][ts >= T0 + 110 * MINUTE] = 50.0
    return from_columns(
        "metrics",
        {
            "ts_ns": np.tile(ts, 3),
            "service": np.repeat(["cart", "api", "stock"], 480),
            "instance": np.repeat(["cart", "api", "stock"], 480),
            "name": ["cpu"] * 1440,
            "value": np.concatenate(values),
        },
        "test",
    )


def write_store(path: Path, spans: pa.Table | None, metrics: pa.Table | None = None) -> Path:
    con = duckdb.connect(str(path))
    create_tables(con)
    for name, table in (("spans", spans), ("metrics", metrics)):
        if table is not None:
            con.register("incoming", table)
            con.execute(f"INSERT INTO {name} SELECT * FROM incoming")
            con.unregister("incoming")
    con.close()
    return path


# -- the pure rule -----------------------------------------------------------------------


def test_last_stretch_joins_small_gaps_and_takes_the_last() -> None:
    flags = np.array([1, 0, 0, 0, 1, 1, 0, 1, 0, 0], dtype=bool)
    assert last_stretch(flags, DEFAULT_RULE) == (4, 7)
    assert last_stretch(np.array([0, 1, 0, 0, 0, 1], dtype=bool), DEFAULT_RULE, 2) is None
    assert last_stretch(np.zeros(4, dtype=bool), DEFAULT_RULE) is None


def test_normal_window_is_as_long_and_clipped() -> None:
    assert normal_before(100, 160, 0) == (40, 100)
    assert normal_before(100, 160, 70) == (70, 100)
    assert normal_before(100, 160, 100) is None


def test_error_burst_in_spans() -> None:
    found = find_window(burst_spans(), None)
    assert found is not None and found.found
    assert (found.start_ns, found.end_ns) == (T0 + 100 * MINUTE, T0 + 110 * MINUTE)
    assert found.normal == (T0 + 90 * MINUTE, T0 + 100 * MINUTE)


def test_latency_burst_in_spans() -> None:
    spans = burst_spans(first_minute=0, last_minute=0)
    start = spans.column("start_ns").to_numpy()
    slow = (start >= T0 + 30 * MINUTE) & (start < T0 + 33 * MINUTE)
    spans = spans.set_column(
        spans.schema.get_field_index("duration_ns"),
        "duration_ns",
        pa.array(np.where(slow, 80_000_000, 10_000_000)),
    )
    found = find_window(spans, None)
    assert found is not None and found.found
    assert (found.start_ns, found.end_ns) == (T0 + 30 * MINUTE, T0 + 33 * MINUTE)
    assert found.normal == (T0 + 27 * MINUTE, T0 + 30 * MINUTE)


def test_step_in_metrics_without_spans() -> None:
    found = find_window(None, step_metrics())
    assert found is not None and found.found
    last_sample = T0 + 479 * 15 * S
    assert (found.start_ns, found.end_ns) == (T0 + 110 * MINUTE, last_sample + 1)
    assert found.normal == (T0 + 110 * MINUTE - (585 * S + 1), T0 + 110 * MINUTE)


def test_quiet_data_gives_the_whole_range() -> None:
    found = find_window(burst_spans(first_minute=0, last_minute=0), None)
    assert found is not None and not found.found
    assert (found.start_ns, found.end_ns) == (T0, T0 + 3599 * 2 * S + 10_000_000 + 1)
    assert found.normal is None


def test_moments() -> None:
    assert parse_moment("15m", 10_000 * S, "--since") == 10_000 * S - 900 * S
    assert parse_moment("90s", 10_000 * S, "--since") == 10_000 * S - 90 * S
    assert parse_moment("2h", 10_000 * S, "--since") == 10_000 * S - 7200 * S
    assert parse_moment("2023-11-14T22:13:20Z", 0, "--since") == T0
    assert parse_moment("2023-11-14T23:13:20+01:00", 0, "--since") == T0
    with pytest.raises(BadInput, match="--since"):
        parse_moment("yesterday", 0, "--since")


# -- a store file ------------------------------------------------------------------------


def test_store_window_found_in_the_data(tmp_path: Path) -> None:
    store_file = write_store(tmp_path / "live.duckdb", burst_spans())
    live = live_incident(store_file, alert_service="web")
    with live.store:
        incident = live.incident
        assert incident.id == "live-2023-11-14T23:53:20Z"
        assert (incident.window.start_ns, incident.window.end_ns) == (
            T0 + 100 * MINUTE,
            T0 + 110 * MINUTE,
        )
        assert incident.normal_window is not None
        assert incident.normal_window.start_ns == T0 + 90 * MINUTE
        assert incident.alert is not None and incident.alert.service == "web"
        assert live.store.counts()["spans"] == 3600


def test_store_window_given(tmp_path: Path) -> None:
    store_file = write_store(tmp_path / "live.duckdb", burst_spans())
    newest = T0 + 3599 * 2 * S + 10_000_000 + 1
    live = live_incident(store_file, since="15m")
    with live.store:
        window = live.incident.window
        # Windows widen outwards to whole microseconds.
        assert window.start_ns == (newest - 900 * S) // 1000 * 1000
        assert window.end_ns == -(-newest // 1000) * 1000
        assert live.incident.normal_window is not None
        assert live.incident.normal_window.end_ns == window.start_ns
    live = live_incident(store_file, since="2023-11-14T23:00:00Z", until="2023-11-14T23:10:00Z")
    with live.store:
        window = live.incident.window
        assert (window.start_ns, window.end_ns) == (T0 + 2800 * S, T0 + 3400 * S)
        assert live.incident.id == "live-2023-11-14T23:00:00Z"
        normal = live.incident.normal_window
        assert normal is not None and (normal.start_ns, normal.end_ns) == (
            T0 + 2200 * S,
            T0 + 2800 * S,
        )
        # Only the rows of the normal and incident windows are read.
        assert live.store.counts()["spans"] == 600


def test_store_errors(tmp_path: Path) -> None:
    empty = write_store(tmp_path / "empty.duckdb", None)
    with pytest.raises(BadInput, match="holds no spans"):
        live_incident(empty)
    with pytest.raises(BadInput, match="does not exist"):
        live_incident(tmp_path / "missing.duckdb")
    full = write_store(tmp_path / "full.duckdb", burst_spans())
    with pytest.raises(BadInput, match="window is empty"):
        live_incident(full, since="10m", until="20m")


def test_cli_investigate_store(tmp_path: Path) -> None:
    store_file = write_store(tmp_path / "live.duckdb", burst_spans())
    result = run_cli(
        "investigate", "--store", str(store_file), "--alert-service", "web", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["incident"]["id"] == "live-2023-11-14T23:53:20Z"
    assert report["incident"]["alert"]["service"] == "web"
    assert report["incident"]["window"]["start"] == "2023-11-14T23:53:20Z"
    assert_bad_input(run_cli("investigate"), "either PATH or --store")
    assert_bad_input(
        run_cli("investigate", str(tmp_path), "--store", str(store_file)), "both PATH and --store"
    )
    assert_bad_input(run_cli("investigate", str(tmp_path), "--since", "5m"), "--since")
    assert_bad_input(
        run_cli("investigate", "--store", str(store_file), "--since", "soon"), "cannot read 'soon'"
    )
