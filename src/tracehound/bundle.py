"""Read and write incident bundles (ARCHITECTURE §2).

A bundle is a directory holding `incident.json` and up to three telemetry tables, each
as Parquet or CSV. Reading validates everything and raises `BadInput` naming the file,
the row and the column of the first problem. Writing then reading gives back the same
incident and the same tables.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import ValidationError

from tracehound.errors import BadInput
from tracehound.model import BUNDLE_FORMAT, Incident, IncidentData
from tracehound.tables import SCHEMAS, TABLE_NAMES, TableName, conform

INCIDENT_FILE = "incident.json"
BundleFormat = Literal["parquet", "csv"]


def is_bundle(directory: Path) -> bool:
    """True when `directory` holds an `incident.json`."""
    return (directory / INCIDENT_FILE).is_file()


def read_incident(directory: Path) -> Incident:
    """Only the metadata of the bundle at `directory`, validated."""
    if not directory.exists():
        raise BadInput("path does not exist", file=directory)
    path = directory / INCIDENT_FILE
    if not path.is_file():
        raise BadInput(
            f"bundle is missing {INCIDENT_FILE}",
            file=directory,
            expected=f"a directory with {INCIDENT_FILE} and spans/metrics/logs tables "
            "(see docs/bundle-format.md)",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BadInput("is not UTF-8 text", file=path, expected="a JSON object") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            file=path,
            row=exc.lineno,
            expected="a JSON object",
        ) from exc
    if not isinstance(raw, dict):
        raise BadInput("top level is not an object", file=path, expected="a JSON object")
    fmt = raw.get("format", BUNDLE_FORMAT)
    if fmt != BUNDLE_FORMAT:
        raise BadInput(
            f"unsupported bundle format {fmt!r}",
            file=path,
            column="format",
            expected=repr(BUNDLE_FORMAT),
        )
    try:
        return Incident.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise BadInput(
            f"invalid incident: {first['msg']}",
            file=path,
            column=field,
            expected=_expected_for(field),
        ) from exc


def _expected_for(field: str | None) -> str | None:
    if field is None:
        return None
    if field.endswith(("start", "end", "time", "fault_start")):
        return "an RFC 3339 time with an offset, such as 2024-05-01T12:00:00Z"
    if field == "id":
        return "a non-empty string"
    return None


def table_path(directory: Path, name: TableName) -> Path | None:
    """The file holding table `name` in a bundle, or None when the table is absent."""
    parquet = directory / f"{name}.parquet"
    text = directory / f"{name}.csv"
    if parquet.is_file() and text.is_file():
        raise BadInput(
            f"both {parquet.name} and {text.name} exist",
            file=directory,
            expected="one file per table; remove one of them",
        )
    if parquet.is_file():
        return parquet
    if text.is_file():
        return text
    return None


def read_table(path: Path, name: TableName) -> pa.Table:
    """One telemetry table from Parquet or CSV, validated into canonical form."""
    raw = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    return conform(raw, name, str(path))


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(
            f"cannot read Parquet ({exc})", file=path, expected="a Parquet file"
        ) from exc


def _read_csv(path: Path) -> pa.Table:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise BadInput("is not UTF-8 text", file=path, expected="a CSV file") from exc
    if not header:
        raise BadInput("is empty", file=path, expected="a CSV file with a header row")
    try:
        return pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        row = _bad_csv_row(path, len(header))
        raise BadInput(
            f"cannot parse CSV ({str(exc).splitlines()[0]})",
            file=path,
            row=row,
            expected=f"{len(header)} comma-separated fields in every row, as in the header",
            hint="The file may be truncated.",
        ) from exc


def _bad_csv_row(path: Path, width: int) -> int | None:
    """Error path only: the first data row (1-based) whose field count is wrong."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for number, fields in enumerate(reader, start=1):
            if len(fields) != width:
                return number
    return None


def check_span_links(spans: pa.Table, file: str) -> list[str]:
    """Checks parent links; raises for broken ones, returns notes for harmless ones.

    A span whose parent is simply absent (a partial trace) is common in real telemetry
    and only noted. It matters, and is an error, when a span id repeats within a trace,
    a span is its own parent, or, where span ids are unique across the whole table (as
    random 64-bit ids are), the parent id belongs to a span of another trace: the two
    traces were split or their ids mangled.
    """
    con = duckdb.connect()
    con.register("spans", spans.select(["trace_id", "span_id", "parent_span_id"]))
    duplicates = con.execute(
        """
        SELECT rn, trace_id, span_id FROM (
          SELECT row_number() OVER () AS rn, trace_id, span_id,
                 count(*) OVER (PARTITION BY trace_id, span_id) AS n FROM spans)
        WHERE n > 1 ORDER BY rn LIMIT 1
        """
    ).fetchall()
    if duplicates:
        duplicate = duplicates[0]
        raise BadInput(
            f"span {duplicate[2]!r} appears more than once in trace {duplicate[1]!r}",
            file=file,
            row=int(duplicate[0]),
            column="span_id",
            expected="span ids unique within a trace",
        )
    self_parents = con.execute(
        """
        SELECT rn, span_id FROM (SELECT row_number() OVER () AS rn, * FROM spans)
        WHERE parent_span_id = span_id ORDER BY rn LIMIT 1
        """
    ).fetchall()
    if self_parents:
        self_parent = self_parents[0]
        raise BadInput(
            f"span {self_parent[1]!r} is its own parent",
            file=file,
            row=int(self_parent[0]),
            column="parent_span_id",
            expected="the id of another span of the same trace, or empty for a root",
        )
    orphans = con.execute(
        """
        WITH s AS (SELECT row_number() OVER () AS rn, * FROM spans)
        SELECT c.rn, c.span_id, c.parent_span_id, c.trace_id,
               (SELECT min(p.trace_id) FROM spans p WHERE p.span_id = c.parent_span_id)
        FROM s c
        WHERE c.parent_span_id IS NOT NULL AND NOT EXISTS (
          SELECT 1 FROM spans p
          WHERE p.trace_id = c.trace_id AND p.span_id = c.parent_span_id)
        ORDER BY c.rn
        """
    ).fetchall()
    globally_unique = con.execute(
        "SELECT count(DISTINCT span_id) = count(*) FROM spans"
    ).fetchall()[0][0]
    con.close()
    for rn, span_id, parent, _trace, other_trace in orphans:
        if other_trace is not None and globally_unique:
            raise BadInput(
                f"span {span_id!r} names parent {parent!r}, which belongs to another "
                f"trace ({other_trace!r})",
                file=file,
                row=int(rn),
                column="parent_span_id",
                expected="a parent in the same trace",
            )
    if orphans:
        return [f"{len(orphans)} span(s) name a parent absent from {file} (partial traces)"]
    return []


def read_bundle(directory: str | Path) -> IncidentData:
    """The bundle at `directory`: its incident and validated tables."""
    directory = Path(directory)
    incident = read_incident(directory)
    data = IncidentData(incident=incident)
    for name in TABLE_NAMES:
        path = table_path(directory, name)
        if path is None:
            continue
        table = read_table(path, name)
        if name == "spans":
            data.notes.extend(check_span_links(table, str(path)))
        setattr(data, name, table)
    return data


def write_bundle(data: IncidentData, directory: str | Path, fmt: BundleFormat = "parquet") -> Path:
    """Write `data` as a bundle in `directory` (created if needed); returns the directory.

    Tables that are None are not written. An existing table file of the other format is
    removed so the bundle stays unambiguous.
    """
    if fmt not in ("parquet", "csv"):
        raise BadInput(f"unknown bundle table format {fmt!r}", expected="parquet or csv")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = data.incident.model_dump_json(indent=2, exclude_none=True)
    (directory / INCIDENT_FILE).write_text(text + "\n", encoding="utf-8")
    for name in TABLE_NAMES:
        table: pa.Table | None = getattr(data, name)
        for suffix in ("parquet", "csv"):
            (directory / f"{name}.{suffix}").unlink(missing_ok=True)
        if table is None:
            continue
        table = conform(table, name, f"{name} table of incident {data.incident.id}")
        target = directory / f"{name}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, target, compression="zstd")
        else:
            pacsv.write_csv(table, target)
    return directory


def empty_tables() -> dict[TableName, pa.Table]:
    """Canonical empty tables, keyed by name."""
    return {name: SCHEMAS[name].empty_table() for name in TABLE_NAMES}
