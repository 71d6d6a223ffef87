from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from tiny import tiny_incident

from tracehound.bundle import read_bundle, write_bundle
from tracehound.datasets import open_dataset
from tracehound.errors import BadInput
from tracehound.model import IncidentData


def _assert_same(a: IncidentData, b: IncidentData) -> None:
    assert a.incident == b.incident
    for name in ("spans", "metrics", "logs"):
        left, right = getattr(a, name), getattr(b, name)
        assert (left is None) == (right is None)
        if left is not None:
            assert left.equals(right), name


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_then_read_gives_back_the_same_data(tmp_path: Path, fmt: str) -> None:
    data = tiny_incident()
    write_bundle(data, tmp_path / "b", fmt)  # type: ignore[arg-type]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
        ["incident.json", f"spans.{fmt}", f"metrics.{fmt}", f"logs.{fmt}"]
    )
    _assert_same(read_bundle(tmp_path / "b"), data)


def test_absent_tables_stay_absent(tmp_path: Path) -> None:
    data = tiny_incident()
    data.logs = None
    write_bundle(data, tmp_path)
    back = read_bundle(tmp_path)
    assert back.logs is None
    assert back.incident.labels is not None and back.incident.labels.instance == "db-1"


def test_rewriting_in_another_format_leaves_one_file_per_table(tmp_path: Path) -> None:
    data = tiny_incident()
    write_bundle(data, tmp_path, "csv")
    write_bundle(data, tmp_path, "parquet")
    assert not (tmp_path / "spans.csv").exists()
    _assert_same(read_bundle(tmp_path), data)


def test_missing_incident_json(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        read_bundle(tmp_path)
    assert "bundle is missing incident.json" in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_empty_window_is_rejected_naming_the_field(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path)
    raw = json.loads((tmp_path / "incident.json").read_text())
    raw["window"]["end"] = raw["window"]["start"]
    (tmp_path / "incident.json").write_text(json.dumps(raw))
    with pytest.raises(BadInput) as info:
        read_bundle(tmp_path)
    assert info.value.column == "window"
    assert "window is empty" in str(info.value)


def test_time_without_offset_in_incident_json_is_rejected(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path)
    raw = json.loads((tmp_path / "incident.json").read_text())
    raw["window"]["start"] = "2023-11-14 22:13:20"
    (tmp_path / "incident.json").write_text(json.dumps(raw))
    with pytest.raises(BadInput) as info:
        read_bundle(tmp_path)
    assert "explicit UTC offset" in str(info.value)


def test_invalid_json_names_line(tmp_path: Path) -> None:
    (tmp_path / "incident.json").write_text('{\n  "id": "x",\n  oops\n}')
    with pytest.raises(BadInput) as info:
        read_bundle(tmp_path)
    assert info.value.row == 3
    assert "is not valid JSON" in str(info.value)


def test_truncated_csv_names_file_and_row(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path, "csv")
    lines = (tmp_path / "spans.csv").read_text().splitlines()
    (tmp_path / "spans.csv").write_text("\n".join([*lines[:4], lines[4][:20]]) + "\n")
    with pytest.raises(BadInput) as info:
        read_bundle(tmp_path)
    assert info.value.file == str(tmp_path / "spans.csv")
    assert info.value.row == 4
    assert "truncated" in str(info.value)


def test_wrong_column_type_in_csv(tmp_path: Path) -> None:
    write_bundle(tiny_incident(), tmp_path, "csv")
    table = pacsv.read_csv(tmp_path / "metrics.csv")
    values = table.column("value").to_pylist()
    values[2] = "high"
    table = table.set_column(
        table.column_names.index("value"), "value", pa.array([str(v) for v in values])
    )
    pacsv.write_csv(table, tmp_path / "metrics.csv")
    with pytest.raises(BadInput) as info:
        read_bundle(tmp_path)
    assert (info.value.row, info.value.column) == (3, "value")


def test_span_with_parent_in_another_trace_is_an_error(tmp_path: Path) -> None:
    data = tiny_incident()
    assert data.spans is not None
    # Globally unique span ids, and span 5 (trace t2) names span 1 (trace t1) as parent.
    span_ids = ["a1", "b1", "c1", "a2", "b2", "c2"]
    parents = [None, "a1", "b1", None, "a1", "b2"]
    data.spans = data.spans.set_column(1, "span_id", pa.array(span_ids)).set_column(
        2, "parent_span_id", pa.array(parents)
    )
    write_bundle(data, tmp_path)
    with pytest.raises(BadInput) as info:
        read_bundle(tmp_path)
    assert (info.value.row, info.value.column) == (5, "parent_span_id")
    assert "belongs to another trace" in str(info.value)


def test_orphan_span_is_a_note_not_an_error(tmp_path: Path) -> None:
    data = tiny_incident()
    assert data.spans is not None
    parents = data.spans.column("parent_span_id").to_pylist()
    parents[2] = "lost"
    data.spans = data.spans.set_column(2, "parent_span_id", pa.array(parents))
    write_bundle(data, tmp_path)
    back = read_bundle(tmp_path)
    assert back.notes == [
        f"1 span(s) name a parent absent from {tmp_path / 'spans.parquet'} (partial traces)"
    ]


def test_duplicate_span_and_self_parent_are_errors(tmp_path: Path) -> None:
    data = tiny_incident()
    assert data.spans is not None
    ids = data.spans.column("span_id").to_pylist()
    ids[1] = "a"
    bad = data.spans.set_column(1, "span_id", pa.array(ids))
    write_bundle(IncidentData(data.incident, spans=bad), tmp_path)
    with pytest.raises(BadInput, match="appears more than once"):
        read_bundle(tmp_path)
    parents = data.spans.column("parent_span_id").to_pylist()
    parents[1] = "b"
    bad = data.spans.set_column(2, "parent_span_id", pa.array(parents))
    write_bundle(IncidentData(data.incident, spans=bad), tmp_path)
    with pytest.raises(BadInput, match="is its own parent"):
        read_bundle(tmp_path)


def test_directory_of_bundles_is_a_dataset(tmp_path: Path) -> None:
    data = tiny_incident()
    write_bundle(data, tmp_path / "one")
    other = IncidentData(data.incident.model_copy(update={"id": "tiny-0002"}), metrics=data.metrics)
    write_bundle(other, tmp_path / "two", "csv")
    dataset = open_dataset(tmp_path)
    info = dataset.info()
    assert (info.kind, info.incidents, info.fault_types) == ("bundles", 2, {"cpu": 2})
    assert info.modalities == ["traces", "logs", "metrics"]
    assert [d.incident.id for d in dataset] == ["tiny-0001", "tiny-0002"]
    _assert_same(dataset.load("tiny-0002"), other)


def test_documented_example_bundle_reads() -> None:
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "incident-0001"
    data = read_bundle(example)
    assert data.incident.id == "shop-2024-05-01-checkout"
    assert data.spans is not None and data.spans.column("status").to_pylist() == ["error"] * 3
    assert data.spans.column("duration_ns").to_pylist() == [250_000_000, 240_000_000, 230_000_000]
    assert data.logs is not None and data.logs.column("span_id").to_pylist() == ["c"]
    assert data.metrics is not None and data.metrics.column("value").to_pylist() == [97.5]
