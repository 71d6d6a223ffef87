from __future__ import annotations

import pyarrow as pa
import pytest

from tracehound.errors import BadInput
from tracehound.tables import conform


def _spans(**overrides: list[object]) -> pa.Table:
    columns: dict[str, list[object]] = {
        "trace_id": ["t", "t"],
        "span_id": ["a", "b"],
        "parent_span_id": [None, "a"],
        "service": ["s", "s"],
        "operation": ["op", "op"],
        "start_ns": ["1700000000000000000", "2023-11-14T22:13:20.5Z"],
        "duration_ns": ["10", "20"],
    }
    columns.update(overrides)
    return pa.table(columns)


def test_conform_parses_int_and_rfc3339_times_and_fills_defaults() -> None:
    table = conform(_spans(), "spans", "spans.csv")
    assert table.column("start_ns").to_pylist() == [
        1_700_000_000_000_000_000,
        1_700_000_000_500_000_000,
    ]
    assert table.column("kind").to_pylist() == ["unset", "unset"]
    assert table.column("status").to_pylist() == ["unset", "unset"]
    assert table.column("instance").to_pylist() == ["", ""]
    assert table.schema.field("duration_ns").type == pa.int64()


def test_naive_time_is_utc_and_offsets_are_applied() -> None:
    table = conform(
        _spans(start_ns=["2023-11-14 22:13:20", "2023-11-15T06:13:20+08:00"]), "spans", "x"
    )
    assert table.column("start_ns").to_pylist() == [1_700_000_000 * 10**9] * 2


def test_extra_columns_are_kept_after_canonical_ones() -> None:
    table = conform(_spans(extra=["1", "2"]), "spans", "x")
    assert table.column_names[-1] == "extra"
    assert table.column_names[:11] == [
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
    ]


def test_missing_column_is_named() -> None:
    table = _spans().drop_columns(["operation"])
    with pytest.raises(BadInput) as info:
        conform(table, "spans", "spans.csv")
    assert str(info.value).startswith("file spans.csv: missing required column 'operation'")


def test_unparsable_time_names_row_and_column() -> None:
    with pytest.raises(BadInput) as info:
        conform(_spans(start_ns=["1", "yesterday"]), "spans", "spans.csv")
    assert info.value.row == 2
    assert info.value.column == "start_ns"
    assert "yesterday" in str(info.value)


def test_wrong_type_names_row_and_column() -> None:
    with pytest.raises(BadInput) as info:
        conform(_spans(duration_ns=["10", "ten"]), "spans", "spans.csv")
    assert (info.value.row, info.value.column) == (2, "duration_ns")
    assert "expected an integer" in str(info.value)


def test_negative_duration_and_unknown_status_are_rejected() -> None:
    with pytest.raises(BadInput) as info:
        conform(_spans(duration_ns=["10", "-1"]), "spans", "x")
    assert (info.value.row, info.value.column) == (2, "duration_ns")
    with pytest.raises(BadInput) as info:
        conform(_spans(status=["OK", "broken"]), "spans", "x")
    assert (info.value.row, info.value.column) == (2, "status")
    assert "one of ok, error, unset" in str(info.value)


def test_missing_required_value_names_row() -> None:
    with pytest.raises(BadInput) as info:
        conform(_spans(service=["s", None]), "spans", "x")
    assert (info.value.row, info.value.column) == (2, "service")


def test_float_time_must_be_whole() -> None:
    metrics = pa.table(
        {"ts_ns": [1.0, 2.5], "service": ["s", "s"], "name": ["m", "m"], "value": [1.0, 2.0]}
    )
    with pytest.raises(BadInput) as info:
        conform(metrics, "metrics", "m")
    assert (info.value.row, info.value.column) == (2, "ts_ns")
