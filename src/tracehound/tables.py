"""The three telemetry tables: their Arrow schemas, and validation of untrusted tables.

Schemas follow ARCHITECTURE §2. `conform` takes a table read from a file (any column
order, CSV strings, extra columns) and returns one with the canonical columns first, in
canonical types, followed by any extra columns unchanged. Every problem raises `BadInput`
naming the file, the 1-based data row and the column, and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from tracehound.errors import BadInput

TableName = Literal["spans", "metrics", "logs"]
TABLE_NAMES: tuple[TableName, ...] = ("spans", "metrics", "logs")

SPAN_KINDS = ("server", "client", "internal", "producer", "consumer", "unset")
SPAN_STATUSES = ("ok", "error", "unset")

SPANS_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("service", pa.string()),
        ("instance", pa.string()),
        ("operation", pa.string()),
        ("kind", pa.string()),
        ("start_ns", pa.int64()),
        ("duration_ns", pa.int64()),
        ("status", pa.string()),
        ("attributes", pa.string()),
    ]
)
METRICS_SCHEMA = pa.schema(
    [
        ("ts_ns", pa.int64()),
        ("service", pa.string()),
        ("instance", pa.string()),
        ("node", pa.string()),
        ("name", pa.string()),
        ("value", pa.float64()),
    ]
)
LOGS_SCHEMA = pa.schema(
    [
        ("ts_ns", pa.int64()),
        ("service", pa.string()),
        ("instance", pa.string()),
        ("level", pa.string()),
        ("message", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
    ]
)
SCHEMAS: dict[TableName, pa.Schema] = {
    "spans": SPANS_SCHEMA,
    "metrics": METRICS_SCHEMA,
    "logs": LOGS_SCHEMA,
}


@dataclass(frozen=True)
class ColumnRule:
    """How one canonical column is validated."""

    required: bool
    nullable: bool
    default: str | None = None
    is_time: bool = False
    allowed: tuple[str, ...] | None = None
    non_negative: bool = False


RULES: dict[TableName, dict[str, ColumnRule]] = {
    "spans": {
        "trace_id": ColumnRule(required=True, nullable=False),
        "span_id": ColumnRule(required=True, nullable=False),
        "parent_span_id": ColumnRule(required=True, nullable=True),
        "service": ColumnRule(required=True, nullable=False),
        "instance": ColumnRule(required=False, nullable=False, default=""),
        "operation": ColumnRule(required=True, nullable=False),
        "kind": ColumnRule(required=False, nullable=False, default="unset", allowed=SPAN_KINDS),
        "start_ns": ColumnRule(required=True, nullable=False, is_time=True),
        "duration_ns": ColumnRule(required=True, nullable=False, non_negative=True),
        "status": ColumnRule(
            required=False, nullable=False, default="unset", allowed=SPAN_STATUSES
        ),
        "attributes": ColumnRule(required=False, nullable=True),
    },
    "metrics": {
        "ts_ns": ColumnRule(required=True, nullable=False, is_time=True),
        "service": ColumnRule(required=True, nullable=False),
        "instance": ColumnRule(required=False, nullable=False, default=""),
        "node": ColumnRule(required=False, nullable=False, default=""),
        "name": ColumnRule(required=True, nullable=False),
        "value": ColumnRule(required=True, nullable=True),
    },
    "logs": {
        "ts_ns": ColumnRule(required=True, nullable=False, is_time=True),
        "service": ColumnRule(required=True, nullable=False),
        "instance": ColumnRule(required=False, nullable=False, default=""),
        "level": ColumnRule(required=True, nullable=False),
        # A null message is an empty one (CSV cannot tell the two apart).
        "message": ColumnRule(required=True, nullable=False, default=""),
        "trace_id": ColumnRule(required=False, nullable=True),
        "span_id": ColumnRule(required=False, nullable=True),
    },
}

_INT_RE = r"^\s*[-+]?\d+\s*$"
_OFFSET_RE = r"([Zz]|[+-]\d\d:?\d\d)\s*$"


def empty_table(name: TableName) -> pa.Table:
    """A table with the canonical schema and no rows."""
    return SCHEMAS[name].empty_table()


def _first_row(mask: pa.Array) -> int:
    """1-based index of the first true value in a boolean mask (nulls count as false)."""
    filled = pc.fill_null(mask, False)
    return int(pc.index(filled, True).as_py()) + 1


def _bad_row_by_scalar(values: pa.Array, convert: Callable[[pa.Scalar], object]) -> int:
    """Error path only: find the first row whose scalar conversion fails."""
    for i in range(len(values)):
        scalar = values[i]
        if not scalar.is_valid:
            continue
        try:
            convert(scalar)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError):
            return i + 1
    return 1


def cast_or_raise(
    values: pa.Array, target: pa.DataType, file: str | Path, column: str, expected: str
) -> pa.Array:
    """Cast a column; on failure raise `BadInput` naming the file, row and column of the
    first value that does not cast."""
    try:
        return pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        row = _bad_row_by_scalar(values, lambda s: s.cast(target))
        shown = values[row - 1].as_py() if len(values) else None
        raise BadInput(
            f"cannot read {shown!r}", file=file, row=row, column=column, expected=expected
        ) from exc


def _time_from_strings(values: pa.Array, file: str, column: str) -> pa.Array:
    """Integer nanoseconds from strings holding integer ns or RFC 3339 times.

    A time without an offset is read as UTC.
    """
    stripped = pc.utf8_trim_whitespace(values)
    is_int = pc.fill_null(pc.match_substring_regex(stripped, _INT_RE), False)
    has_offset = pc.fill_null(pc.match_substring_regex(stripped, _OFFSET_RE), False)
    null = pa.scalar(None, pa.string())
    as_int = pc.if_else(is_int, stripped, null)
    aware = pc.if_else(pc.and_(pc.invert(is_int), has_offset), stripped, null)
    naive = pc.if_else(pc.and_(pc.invert(is_int), pc.invert(has_offset)), stripped, null)
    expected = "integer epoch nanoseconds or an RFC 3339 time such as 2024-05-01T12:00:00Z"

    def parse(part: pa.Array, target: pa.DataType) -> pa.Array:
        try:
            return pc.cast(part, target).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            row = _bad_row_by_scalar(part, lambda s: s.cast(target))
            raise BadInput(
                f"cannot parse time {values[row - 1].as_py()!r}",
                file=file,
                row=row,
                column=column,
                expected=expected,
            ) from exc

    ints = parse(as_int, pa.int64())
    aware_ns = parse(aware, pa.timestamp("ns", tz="UTC"))
    naive_ns = parse(naive, pa.timestamp("ns"))
    return pc.coalesce(ints, aware_ns, naive_ns)


def _to_time(values: pa.Array, file: str, column: str) -> pa.Array:
    kind = values.type
    if pa.types.is_timestamp(kind):
        return pc.cast(pc.cast(values, pa.timestamp("ns", tz=kind.tz)), pa.int64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _time_from_strings(values, file, column)
    return _to_number(values, pa.int64(), file, column, "integer epoch nanoseconds")


def _to_number(
    values: pa.Array, target: pa.DataType, file: str, column: str, expected: str
) -> pa.Array:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = pc.utf8_trim_whitespace(values)
        # An empty CSV cell is a missing value, not a parse error.
        values = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
    if pa.types.is_integer(target) and pa.types.is_floating(values.type):
        fractional = pc.not_equal(values, pc.floor(values))
        if pc.any(pc.fill_null(fractional, False)).as_py():
            row = _first_row(fractional)
            raise BadInput(
                f"value {values[row - 1].as_py()!r} is not a whole number",
                file=file,
                row=row,
                column=column,
                expected=expected,
            )
    try:
        return pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        row = _bad_row_by_scalar(values, lambda s: s.cast(target))
        shown = values[row - 1].as_py() if len(values) else None
        raise BadInput(
            f"cannot read {shown!r} as a number",
            file=file,
            row=row,
            column=column,
            expected=expected,
        ) from exc


def _to_string(values: pa.Array) -> pa.Array:
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), pa.string())
    return pc.cast(values, pa.string())


def conform(table: pa.Table, name: TableName, file: str) -> pa.Table:
    """Validate `table` as telemetry table `name` read from `file`, in canonical form."""
    rules = RULES[name]
    schema = SCHEMAS[name]
    missing = [c for c, rule in rules.items() if rule.required and c not in table.column_names]
    if missing:
        raise BadInput(
            f"missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)}",
            file=file,
            expected=f"the {name} columns {', '.join(schema.names)}",
        )
    table = table.combine_chunks()
    columns: list[pa.Array] = []
    for field in schema:
        rule = rules[field.name]
        if field.name in table.column_names:
            raw = table.column(field.name)
            values = raw.chunk(0) if raw.num_chunks == 1 else pa.concat_arrays(raw.chunks)
            if raw.num_chunks == 0:
                values = pa.array([], type=raw.type)
        else:
            values = pa.nulls(table.num_rows, field.type)
        columns.append(_conform_column(values, field, rule, file))
    extras = [c for c in table.column_names if c not in schema.names]
    out = pa.Table.from_arrays(columns, schema=schema)
    for extra in extras:
        out = out.append_column(extra, table.column(extra))
    return out


def _conform_column(values: pa.Array, field: pa.Field, rule: ColumnRule, file: str) -> pa.Array:
    column = field.name
    if rule.is_time:
        values = _to_time(values, file, column)
    elif pa.types.is_integer(field.type):
        values = _to_number(values, field.type, file, column, "an integer")
    elif pa.types.is_floating(field.type):
        values = _to_number(values, field.type, file, column, "a number")
    else:
        values = _to_string(values)
        if rule.allowed is not None:
            values = pc.utf8_lower(pc.utf8_trim_whitespace(values))
            values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    if rule.default is not None and values.null_count:
        values = pc.fill_null(values, pa.scalar(rule.default, field.type))
    if not rule.nullable and values.null_count:
        row = _first_row(pc.is_null(values))
        raise BadInput(
            "value is missing",
            file=file,
            row=row,
            column=column,
            expected=f"a {'time' if rule.is_time else str(field.type)} value in every row",
        )
    if rule.allowed is not None:
        ok = pc.is_in(values, value_set=pa.array(rule.allowed))
        if not pc.all(ok).as_py():
            row = _first_row(pc.invert(ok))
            raise BadInput(
                f"unknown value {values[row - 1].as_py()!r}",
                file=file,
                row=row,
                column=column,
                expected=f"one of {', '.join(rule.allowed)}",
            )
    if rule.non_negative and len(values):
        negative = pc.less(values, 0)
        if pc.any(pc.fill_null(negative, False)).as_py():
            row = _first_row(negative)
            raise BadInput(
                f"negative value {values[row - 1].as_py()}",
                file=file,
                row=row,
                column=column,
                expected="a value >= 0",
            )
    return values


def from_columns(name: TableName, columns: dict[str, object], source: str) -> pa.Table:
    """Build and validate a table from a dict of column arrays (numpy arrays or lists).

    Loaders and the simulator use this to produce canonical tables.
    """
    table = pa.table(columns)
    return conform(table, name, source)
