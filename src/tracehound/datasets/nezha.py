"""Loader for the Nezha RCA benchmark layout (Yu et al., ESEC/FSE 2023).

Nezha (https://github.com/IntelligentDDS/Nezha) publishes, per day, a fault list and
per-minute trace and log files, plus wide per-pod metric files::

    rca_data/<day>/<day>-fault_list.json       {"HH": [{inject_time, inject_pod, inject_type}]}
    rca_data/<day>/trace/HH_MM_trace.csv        one row per span
    rca_data/<day>/log/HH_MM_log.csv            one row per log line (Docker JSON in `Log`)
    rca_data/<day>/metric/<pod>_metric.csv      one row per pod per minute, wide
    rca_data/<day>/metric/front_service.csv     one row per minute, per front service
    construct_data/<day>/{trace,log,metric}/    a fault-free baseline (optional)
    construct_data/root_cause_ts.json           inner-service labels {service: {type: label}}

Choices, and the timing traps behind them (numbers refer to the dataset README):

- **Fault start** is `inject_time` read as UTC. `inject_timestamp` is wrong for most
  incidents (8 h early plus jitter), so it is ignored (trap 3).
- **Analysis files.** The original analysis reads the minute file tagged with the inject
  minute + 2 (seconds dropped; trap 6). A file `HH_MM` covers the ~60 s *ending* at the
  collector tick inside minute HH:MM (trap 4), and some files are longer (trap 5). We always
  use the +2 file and also the +0 and +1 files when present; only a missing +2 trace or log
  file is reported (in `missing()` and in `IncidentData.notes`). Spans are de-duplicated on
  (trace_id, span_id) and log lines on (time, pod, raw text), since adjacent files share
  boundary traces. Files are looked up in the incident's own day folder.
- **Window.** `incidents()` reads no CSV, so its window is an estimate from file names:
  start = inject minute (one minute earlier when a +0 file exists, since that file starts
  up to a minute before its tag), end = inject minute + 3 min, which bounds the +2 file's
  coverage. `load()` refines it to the data actually used: first span start to just after
  the last span end of the analysis files (log times when there are no spans; the estimate
  when there is neither). The refined window can start after `fault_start`: with only the
  +2 file it starts 9-67 s after injection, exactly as the original analysis saw it.
- **Normal window.** The baseline minute files in `construct_data/<day>/trace` (else `log`)
  give the estimate [first tag - 3 min, last tag + 1 min): baseline files can be longer
  than a minute and begin earlier (trap 5). `load()` refines it to the baseline spans' first
  start and last end, like the window. Days without `construct_data` have none.
- **Metrics.** `Time` carries Go's monotonic suffix and is ignored; `TimeStamp` (epoch
  seconds) is the collector tick. A metric row summarises the minute *before* its tick
  (trap 7): the row at 13:33:09 is the first to show a fault injected at 13:31:54. Each
  point is therefore stamped at the middle of the minute it describes, tick - 30 s, so it
  falls inside whichever window covers most of that minute (a point stamped at its tick
  would land after the one-minute analysis window whose data it summarises). Kept rows
  are those within [window.start - 10 min, window.end + 2 min] and those inside the normal
  window, from the day's `rca_data` and `construct_data` metric files alike, de-duplicated
  (the two copies hold identical rows). A pod's `node` is its node IP as seen in the
  loaded logs. CSV files of a metric folder whose header lacks `TimeStamp` with
  `PodName` or `ServiceName` (a call graph, an edge list) are not time series of this
  layout: they are skipped and named in `IncidentData.notes`.
- **Logs.** `ts_ns` comes from `Timestamp` (RFC 3339, 5-9 fractional digits, UTC when it
  has no offset), never from `TimeUnixNano`, which holds garbage in some rows (trap 9).
  The level and message come from the app line inside the Docker JSON record:
  Train-Ticket's `HH:MM:SS.mmm LEVEL ...` line, else what the line states as
  `datasets.loglines` reads it (a JSON app line's `severity` / `level`, pino's numbers
  too, and `message` / `msg`; a level near the start of a plain line; a `level=` field;
  .NET's `fail:`-style prefixes); a line without any is ``UNKNOWN`` (read as info). Rows
  whose `Log` is not valid JSON, or whose CSV quoting is broken so the row has too many
  fields (both in the real data, trap 9), are kept: the message is the raw text and the
  level is found by regex, else ``UNKNOWN``. The app line's own clock is UTC+8 (trap 2), unused.
- **Labels.** `instance` is `inject_pod`; `service` is the pod minus its last two `-`
  parts; `fault_type` is `inject_type` verbatim; `detail` is the inner-service label from
  `root_cause_ts.json`. The system is inferred per day from the pod names (Train-Ticket
  pods carry the `ts-` prefix; anything else is taken as Online Boutique).

Telemetry is parsed with pyarrow (CSV, compute) and DuckDB SQL (JSON); Python loops run
over files and columns, never over rows, except to repair the few rows the CSV parser
rejects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
from pydantic import BaseModel, ConfigDict, ValidationError

from tracehound.datasets.base import Dataset
from tracehound.datasets.loglines import stated_level_sql, stated_message_sql
from tracehound.errors import BadInput
from tracehound.model import Incident, IncidentData, Labels, Window, ns_from_datetime
from tracehound.store import relation_to_arrow
from tracehound.tables import METRICS_SCHEMA, cast_or_raise, conform

MINUTE = timedelta(minutes=1)
#: Offsets (minutes after the inject minute) of the files an incident uses; the last one is
#: the original analysis minute and the only one whose absence is reported.
FILE_OFFSETS = (0, 1, 2)
ANALYSIS_OFFSET = 2
#: Metric rows kept around the incident window (before, after).
METRIC_MARGIN_BEFORE = timedelta(minutes=10)
METRIC_MARGIN_AFTER = timedelta(minutes=2)
#: A metric row describes the minute before its tick; points are stamped mid-minute.
METRIC_STAMP_SHIFT_NS = 30 * 1_000_000_000

TRAIN_TICKET = "train-ticket"
ONLINE_BOUTIQUE = "online-boutique"
SYSTEM_SHORT = {TRAIN_TICKET: "tt", ONLINE_BOUTIQUE: "ob"}
#: Layout convention: every Train-Ticket pod name starts with this prefix.
TRAIN_TICKET_POD_PREFIX = "ts-"

TRACE_COLUMNS = (
    "TraceID",
    "SpanID",
    "ParentID",
    "PodName",
    "OperationName",
    "StartTimeUnixNano",
    "EndTimeUnixNano",
)
LOG_REQUIRED = ("Timestamp", "PodName", "Log")
LOG_OPTIONAL = ("Node", "TraceID", "SpanID")
LOG_STRING_COLUMNS = (*LOG_REQUIRED, *LOG_OPTIONAL, "TimeUnixNano", "Container")
METRIC_KEY_COLUMNS = ("Time", "TimeStamp", "PodName", "ServiceName")
ROOT_PARENT = "root"

_MINUTE_TAG = re.compile(r"^(\d{2})_(\d{2})_")
_OFFSET_RE = r"([Zz]|[+-]\d\d:?\d\d)$"
_SERVICE_OF_POD = r"^(.+)-[^-]+-[^-]+$"


# --------------------------------------------------------------------------- metadata


class _FaultEntry(BaseModel):
    """One fault-list record; `inject_timestamp` is deliberately not read (trap 3)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    inject_time: datetime
    inject_pod: str
    inject_type: str


@dataclass(frozen=True)
class _Plan:
    """An incident and the files its telemetry comes from."""

    incident: Incident
    traces: list[Path]
    logs: list[Path]
    baseline_traces: list[Path]
    baseline_logs: list[Path]
    metrics: list[Path]
    missing: list[str] = field(default_factory=list)


def service_of_pod(pod: str) -> str:
    """The service of a Kubernetes pod name: the name minus its last two `-` parts."""
    parts = pod.rsplit("-", 2)
    if len(parts) == 3 and all(parts):
        return parts[0]
    return pod


def _as_utc(moment: datetime) -> datetime:
    """A naive time read as UTC wall clock; an aware one converted to UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read JSON: {exc}", file=path) from exc


def _read_fault_list(path: Path) -> list[_FaultEntry]:
    """Fault-list entries ordered by inject time (stable for equal times)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise BadInput("fault list is not a JSON object", file=path, expected='{"HH": [entries]}')
    entries: list[_FaultEntry] = []
    for hour, items in data.items():
        if not isinstance(items, list):
            raise BadInput(f"hour {hour!r} does not hold a list", file=path)
        for position, item in enumerate(items):
            try:
                entries.append(_FaultEntry.model_validate(item))
            except ValidationError as exc:
                first = exc.errors()[0]
                raise BadInput(
                    f"entry {position + 1} of hour {hour!r}: {first['msg']}",
                    file=path,
                    column=".".join(str(p) for p in first["loc"]) or None,
                    expected="inject_time (YYYY-MM-DD HH:MM:SS), inject_pod, inject_type",
                ) from exc
    return sorted(entries, key=lambda e: _as_utc(e.inject_time))


def _read_inner_labels(path: Path) -> dict[str, dict[str, str]]:
    """`root_cause_ts.json` as {service: {fault_type: label}}, empty when absent."""
    if not path.is_file():
        return {}
    data = _read_json(path)
    if not isinstance(data, dict):
        raise BadInput("not a JSON object", file=path, expected="{service: {fault_type: label}}")
    return {
        str(service): {str(k): str(v) for k, v in types.items()}
        for service, types in data.items()
        if isinstance(types, dict)
    }


def _minute_files(folder: Path, suffix: str) -> list[Path]:
    """`HH_MM_<suffix>.csv` files of a folder, in name (time) order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*_{suffix}.csv") if _MINUTE_TAG.match(p.name))


def _tag_time(path: Path, day: date) -> datetime:
    match = _MINUTE_TAG.match(path.name)
    assert match is not None  # _minute_files only lists tagged names
    return datetime(day.year, day.month, day.day, int(match[1]), int(match[2]), tzinfo=UTC)


def _infer_system(metric_dir: Path, pods: Sequence[str]) -> str:
    """Train-Ticket when the day's pods carry its prefix, else Online Boutique."""
    names = [p.name.removesuffix("_metric.csv") for p in metric_dir.glob("*_metric.csv")]
    names = names or list(pods)
    if any(name.startswith(TRAIN_TICKET_POD_PREFIX) for name in names):
        return TRAIN_TICKET
    return ONLINE_BOUTIQUE


def _day_date(day: str, entries: Sequence[_FaultEntry]) -> date:
    """The calendar date of a day folder (its name, else its first injection's date)."""
    try:
        return date.fromisoformat(day)
    except ValueError:
        return _as_utc(entries[0].inject_time).date()


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


# --------------------------------------------------------------------------- CSV reading


def _line_of(path: Path, text: str) -> int | None:
    """Error path only: the 1-based data row whose text is `text`."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    wanted = text.rstrip("\r\n")
    for number, line in enumerate(lines):
        if line == wanted:
            return number
    return None


def _split_overflow(text: str, names: Sequence[str], path: Path) -> list[str]:
    """Repair a row whose last (free-text) field has broken quoting and spills over.

    The leading fields must be plain (no quotes); everything after them is the last field.
    Its outer quotes are removed and doubled quotes undone, so the raw text is kept.
    """
    parts = text.rstrip("\r\n").split(",", len(names) - 1)
    if len(parts) < len(names) or any('"' in part for part in parts[:-1]):
        raise BadInput(
            f"row has the wrong number of fields: {text[:120]!r}",
            file=path,
            row=_line_of(path, text),
            expected=f"{len(names)} fields ({', '.join(names)})",
        )
    last = parts[-1]
    if last.startswith('"'):
        last = last[1:-1] if len(last) > 1 and last.endswith('"') else last[1:]
        last = last.replace('""', '"')
    return [*parts[:-1], last]


def _read_csv(
    path: Path,
    *,
    strings: Sequence[str],
    numbers: dict[str, pa.DataType] | None = None,
    repair_last_field: bool = False,
) -> pa.Table:
    """A CSV file as an Arrow table, with `BadInput` naming the file on any problem.

    Columns in `strings` are read as text (so that conversion errors can name the row).
    With `repair_last_field`, rows with too many fields are repaired by
    `_split_overflow`; otherwise any row with the wrong field count is an error.
    """
    rejected: list[str] = []

    def on_invalid(row: Any) -> str:
        rejected.append(str(row.text))
        return "skip"

    types = {name: pa.string() for name in strings}
    types.update(numbers or {})
    try:
        table = pv.read_csv(
            path,
            read_options=pv.ReadOptions(use_threads=False),
            parse_options=pv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        if numbers and "conversion error" in str(exc):
            _locate_bad_number(path, strings, numbers)
        raise BadInput(f"cannot read CSV ({exc})", file=path) from exc
    if not rejected:
        return table
    if not repair_last_field:
        text = rejected[0]
        raise BadInput(
            f"row has the wrong number of fields: {text[:120]!r}",
            file=path,
            row=_line_of(path, text),
            expected=f"{table.num_columns} fields ({', '.join(table.column_names)})",
        )
    rows = [_split_overflow(text, table.column_names, path) for text in rejected]
    repaired = pa.table(
        {
            name: pa.array([row[i] for row in rows], pa.string())
            for i, name in enumerate(table.column_names)
        }
    )
    try:
        return pa.concat_tables([table, repaired.cast(table.schema)])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BadInput(f"cannot repair a row with too many fields ({exc})", file=path) from exc


def _locate_bad_number(path: Path, strings: Sequence[str], numbers: dict[str, pa.DataType]) -> None:
    """Error path only: re-read `numbers` columns as text to name the bad row and column."""
    table = _read_csv(path, strings=[*strings, *numbers])
    for name, target in numbers.items():
        if name in table.column_names:
            cast_or_raise(_column(table, name), target, path, name, f"a {target} value")


def _require(table: pa.Table, names: Sequence[str], path: Path) -> None:
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise BadInput(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            file=path,
            expected=f"a header with {', '.join(names)}",
        )


def _ns_from_rfc3339(values: pa.Array, path: Path, column: str) -> pa.Array:
    """Epoch ns of RFC 3339 strings; a string without an offset is UTC."""
    expected = "an RFC 3339 time such as 2024-05-01T12:00:00.123456789Z"
    has_offset = pc.fill_null(pc.match_substring_regex(values, _OFFSET_RE), False)
    null = pa.scalar(None, pa.string())
    aware = pc.if_else(has_offset, values, null)
    naive = pc.if_else(has_offset, null, values)
    aware_ns = cast_or_raise(aware, pa.timestamp("ns", tz="UTC"), path, column, expected)
    naive_ns = cast_or_raise(naive, pa.timestamp("ns"), path, column, expected)
    return pc.coalesce(aware_ns.cast(pa.int64()), naive_ns.cast(pa.int64()))


def _column(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _service_column(pods: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(pods, _SERVICE_OF_POD, r"\1")


def _first_of_each(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Rows of `table` keeping the first occurrence of each key, in the original order."""
    if table.num_rows == 0:
        return table
    order = pa.array(np.arange(table.num_rows, dtype=np.int64))
    keyed = table.select(list(keys)).append_column("_row", order)
    firsts = keyed.group_by(list(keys), use_threads=False).aggregate([("_row", "min")])
    rows = firsts.column("_row_min")
    return table.take(pc.take(rows, pc.sort_indices(rows)))


def _sql(connection: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    """A DuckDB query result as an Arrow table, whatever the DuckDB version."""
    return relation_to_arrow(connection.sql(query))


# --------------------------------------------------------------------------- spans


def _read_trace_file(path: Path, baseline: bool) -> pa.Table:
    raw = _read_csv(path, strings=TRACE_COLUMNS)
    _require(raw, TRACE_COLUMNS, path)
    start = cast_or_raise(
        _column(raw, "StartTimeUnixNano"),
        pa.int64(),
        path,
        "StartTimeUnixNano",
        "integer epoch nanoseconds",
    )
    end = cast_or_raise(
        _column(raw, "EndTimeUnixNano"),
        pa.int64(),
        path,
        "EndTimeUnixNano",
        "integer epoch nanoseconds",
    )
    duration = pc.subtract(end, start)
    negative = pc.less(duration, 0)
    if pc.any(negative).as_py():
        row = int(pc.index(negative, True).as_py()) + 1
        raise BadInput(
            "span ends before it starts",
            file=path,
            row=row,
            column="EndTimeUnixNano",
            expected="EndTimeUnixNano >= StartTimeUnixNano",
        )
    parent = _column(raw, "ParentID")
    no_parent = pc.or_(pc.equal(parent, ROOT_PARENT), pc.equal(parent, ""))
    pods = _column(raw, "PodName")
    return pa.table(
        {
            "trace_id": _column(raw, "TraceID"),
            "span_id": _column(raw, "SpanID"),
            "parent_span_id": pc.if_else(no_parent, pa.scalar(None, pa.string()), parent),
            "service": _service_column(pods),
            "instance": pods,
            "operation": _column(raw, "OperationName"),
            "start_ns": start,
            "duration_ns": duration,
            "_baseline": pa.repeat(pa.scalar(baseline), raw.num_rows),
        }
    )


def _covered(start_ns: pa.Array, end_ns: pa.Array) -> Window | None:
    """The window from the first start to just after the last end (µs grid), if any."""
    if len(start_ns) == 0:
        return None
    first = int(pc.min(start_ns).as_py())
    last = int(pc.max(end_ns).as_py())
    return Window.from_ns(first, (last // 1_000 + 1) * 1_000)


def _split_coverage(
    table: pa.Table, start: str, end: str | None
) -> tuple[Window | None, Window | None]:
    """Coverage of the analysis rows and of the baseline rows of a loaded table."""
    windows: list[Window | None] = []
    for baseline in (False, True):
        part = table.filter(pc.equal(table.column("_baseline"), baseline))
        starts = _column(part, start)
        ends = pc.add(starts, _column(part, end)) if end else starts
        windows.append(_covered(starts, ends))
    return windows[0], windows[1]


# --------------------------------------------------------------------------- logs


def _read_log_file(path: Path, baseline: bool) -> pa.Table:
    raw = _read_csv(path, strings=LOG_STRING_COLUMNS, repair_last_field=True)
    _require(raw, LOG_REQUIRED, path)
    empty = pa.repeat(pa.scalar("", pa.string()), raw.num_rows)
    return pa.table(
        {
            "ts_ns": _ns_from_rfc3339(_column(raw, "Timestamp"), path, "Timestamp"),
            "pod": _column(raw, "PodName"),
            "node": _column(raw, "Node") if "Node" in raw.column_names else empty,
            "trace": _column(raw, "TraceID") if "TraceID" in raw.column_names else empty,
            "span": _column(raw, "SpanID") if "SpanID" in raw.column_names else empty,
            "raw": _column(raw, "Log"),
            "_baseline": pa.repeat(pa.scalar(baseline), raw.num_rows),
        }
    )


#: Parses the Docker json-file record `{"log": "<app line>", ...}`. Train-Ticket's app
#: line reads `HH:MM:SS.mmm LEVEL <Class>#<line> TraceID: .. SpanID: .. message`; other
#: services' lines are read as `loglines` reads them (a JSON object's severity and
#: message, logfmt, a level near the start of the line, .NET prefixes).
_LOG_SQL = rf"""
WITH decoded AS (
    SELECT *,
           CASE WHEN json_valid(raw) THEN json_extract_string(raw, '$.log') END AS app
    FROM raw_logs
), parsed AS (
    SELECT *,
           regexp_extract(app, '^\d{{2}}:\d{{2}}:\d{{2}}\.\d+\s+([A-Z]+)\s', 1) AS app_level,
           regexp_extract(app, '(?s)^\d{{2}}:\d{{2}}:\d{{2}}\.\d+\s+([A-Z]+\s.*)$', 1)
             AS app_message,
           regexp_extract(raw, '\d{{2}}:\d{{2}}:\d{{2}}\.\d+\s+([A-Z]+)\s', 1) AS raw_level
    FROM decoded
), other AS (  -- lines that are not Train-Ticket's: read only those
    SELECT *,
           CASE WHEN app IS NOT NULL AND app_level = '' THEN {stated_level_sql("app")} END
             AS stated_level,
           CASE WHEN app IS NOT NULL AND app_level = '' THEN {stated_message_sql("app")} END
             AS stated_message
    FROM parsed
)
SELECT
    ts_ns,
    regexp_replace(pod, '^(.+)-[^-]+-[^-]+$', '\1') AS service,
    pod AS instance,
    CASE
        WHEN app IS NOT NULL AND app_level <> '' THEN app_level
        WHEN app IS NOT NULL AND stated_level IS NOT NULL THEN stated_level
        WHEN app IS NULL AND raw_level <> '' THEN raw_level
        ELSE 'UNKNOWN'
    END AS level,
    CASE
        WHEN app IS NULL THEN raw
        WHEN app_level <> '' THEN rtrim(app_message, chr(13) || chr(10))
        ELSE stated_message
    END AS message,
    nullif(trace, '') AS trace_id,
    nullif(span, '') AS span_id,
    node,
    _baseline
FROM other
"""


def _parse_logs(raw: pa.Table) -> pa.Table:
    with duckdb.connect() as connection:
        connection.register("raw_logs", raw)
        return _sql(connection, _LOG_SQL)


# --------------------------------------------------------------------------- metrics


def _read_metric_file(path: Path) -> pa.Table:
    """One wide metric file as (TimeStamp, service, instance, <metric columns>).

    Pod files give `instance` = PodName and a null `service` (derived later for all files
    at once); service files give `service` = ServiceName and `instance` = "". Metric
    columns must be numeric; the per-file work is kept to the CSV read, since a day has
    dozens of small files and each compute call costs more than its rows.
    """
    raw = _read_csv(
        path, strings=("Time", "PodName", "ServiceName"), numbers={"TimeStamp": pa.int64()}
    )
    _require(raw, ("TimeStamp",), path)
    rows = raw.num_rows
    if "PodName" in raw.column_names:
        instance, service = raw.column("PodName"), pa.nulls(rows, pa.string())
    elif "ServiceName" in raw.column_names:
        instance, service = pa.repeat(pa.scalar("", pa.string()), rows), raw.column("ServiceName")
    else:
        raise BadInput("missing column PodName or ServiceName", file=path)
    columns: dict[str, Any] = {
        "TimeStamp": raw.column("TimeStamp"),
        "service": service,
        "instance": instance,
    }
    for name in raw.column_names:
        if name in METRIC_KEY_COLUMNS:
            continue
        values = raw.column(name)
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
            values = cast_or_raise(values.combine_chunks(), pa.float64(), path, name, "a number")
        columns[name] = values
    return pa.table(columns)


def _within(ts_ns: pa.Array, ranges: Sequence[tuple[int, int]]) -> pa.Array:
    """Mask of times inside any of the inclusive `ranges`."""
    keep = pa.repeat(pa.scalar(False), len(ts_ns))
    for low, high in ranges:
        keep = pc.or_(keep, pc.and_(pc.greater_equal(ts_ns, low), pc.less_equal(ts_ns, high)))
    return keep


def _long_metrics(wide: pa.Table) -> pa.Table:
    """Wide metric rows to long (ts_ns, service, instance, name, value) rows, NaNs dropped."""
    keys = ("ts_ns", "service", "instance")
    names = [name for name in wide.column_names if name not in keys]
    parts = []
    for name in names:
        parts.append(
            pa.table(
                {
                    **{key: wide.column(key) for key in keys},
                    "name": pa.repeat(pa.scalar(name), wide.num_rows),
                    "value": wide.column(name).cast(pa.float64()),
                }
            )
        )
    if not parts:
        return pa.schema([METRICS_SCHEMA.field(n) for n in (*keys, "name", "value")]).empty_table()
    long = pa.concat_tables(parts)
    value = long.column("value")
    present = pc.and_(pc.is_valid(value), pc.invert(pc.fill_null(pc.is_nan(value), True)))
    return long.filter(present)


def _attach_nodes(metrics: pa.Table, logs: pa.Table) -> pa.Table:
    """Add each pod's node IP, as the loaded logs report it, else ''."""
    pods = logs.filter(pc.not_equal(logs.column("node"), "")).select(["instance", "node"])
    nodes = pods.group_by("instance", use_threads=False).aggregate([("node", "min")])
    nodes = nodes.rename_columns(["instance", "node"])
    joined = metrics.join(nodes, keys="instance", join_type="left outer", use_threads=False)
    joined = joined.set_column(
        joined.schema.get_field_index("node"), "node", pc.fill_null(joined.column("node"), "")
    )
    order = pc.sort_indices(
        joined,
        sort_keys=[
            ("ts_ns", "ascending"),
            ("instance", "ascending"),
            ("service", "ascending"),
            ("name", "ascending"),
        ],
    )
    return joined.take(order)


# --------------------------------------------------------------------------- the loader


class NezhaDataset(Dataset):
    """The Nezha RCA benchmark: `rca_data/<day>/` fault lists and telemetry (see module doc)."""

    kind: ClassVar[str] = "nezha"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self._plans: dict[str, _Plan] | None = None

    @classmethod
    def detect(cls, root: Path) -> bool:
        rca = root / "rca_data"
        return rca.is_dir() and any(rca.glob("*/*-fault_list.json"))

    def incidents(self) -> list[Incident]:
        return [plan.incident for plan in self._all_plans().values()]

    def missing(self) -> list[str]:
        return [line for plan in self._all_plans().values() for line in plan.missing]

    def modalities(self) -> list[str]:
        present = []
        for modality, folder in (("traces", "trace"), ("logs", "log"), ("metrics", "metric")):
            patterns = (f"rca_data/*/{folder}/*.csv", f"construct_data/*/{folder}/*.csv")
            if any(any(self.root.glob(pattern)) for pattern in patterns):
                present.append(modality)
        return present

    def load(self, incident_id: str) -> IncidentData:
        plans = self._all_plans()
        plan = plans.get(incident_id)
        if plan is None:
            raise BadInput(
                f"unknown incident id {incident_id!r}",
                file=self.root,
                hint=f"This dataset has {len(plans)} incidents, e.g. "
                f"{', '.join(list(plans)[:3]) or 'none'}.",
            )
        return _load_plan(plan)

    # -- planning: JSON files and directory listings only

    def _all_plans(self) -> dict[str, _Plan]:
        if self._plans is None:
            inner = _read_inner_labels(self.root / "construct_data" / "root_cause_ts.json")
            plans: dict[str, _Plan] = {}
            for fault_list in sorted((self.root / "rca_data").glob("*/*-fault_list.json")):
                for plan in self._plan_day(fault_list, inner):
                    plans[plan.incident.id] = plan
            self._plans = plans
        return self._plans

    def _plan_day(self, fault_list: Path, inner: dict[str, dict[str, str]]) -> list[_Plan]:
        entries = _read_fault_list(fault_list)
        if not entries:
            return []
        day_dir = fault_list.parent
        day = day_dir.name
        system = _infer_system(day_dir / "metric", [e.inject_pod for e in entries])
        calendar = _day_date(day, entries)
        baseline_dir = self.root / "construct_data" / day
        baseline_traces = _minute_files(baseline_dir / "trace", "trace")
        baseline_logs = _minute_files(baseline_dir / "log", "log")
        normal = _baseline_estimate(baseline_traces or baseline_logs, calendar)
        metrics = sorted((day_dir / "metric").glob("*.csv"))
        metrics += sorted((baseline_dir / "metric").glob("*.csv"))
        has_metrics = any((day_dir / "metric").glob("*.csv"))
        day_missing = [] if has_metrics else [f"{day_dir / 'metric'} (day {day}: no metric files)"]
        plans = []
        for number, entry in enumerate(entries, start=1):
            incident_id = f"nezha-{SYSTEM_SHORT[system]}-{day}-{number:02d}"
            traces, logs, missing = _analysis_files(day_dir, entry, incident_id)
            incident = Incident(
                id=incident_id,
                system=system,
                window=_window_estimate(entry, traces, logs, day_dir),
                normal_window=normal,
                labels=_labels(entry, inner),
            )
            plans.append(
                _Plan(
                    incident=incident,
                    traces=traces,
                    logs=logs,
                    baseline_traces=baseline_traces,
                    baseline_logs=baseline_logs,
                    metrics=metrics,
                    missing=day_missing + missing if number == 1 else missing,
                )
            )
        return plans


def _labels(entry: _FaultEntry, inner: dict[str, dict[str, str]]) -> Labels:
    service = service_of_pod(entry.inject_pod)
    return Labels(
        service=service,
        instance=entry.inject_pod,
        fault_type=entry.inject_type,
        fault_start=_as_utc(entry.inject_time),
        detail=inner.get(service, {}).get(entry.inject_type),
    )


def _tag(moment: datetime) -> str:
    return moment.strftime("%H_%M")


def _analysis_files(
    day_dir: Path, entry: _FaultEntry, incident_id: str
) -> tuple[list[Path], list[Path], list[str]]:
    """Existing trace and log files of minutes +0..+2, and lines for a missing +2 file."""
    inject_minute = _floor_minute(_as_utc(entry.inject_time))
    traces: list[Path] = []
    logs: list[Path] = []
    missing: list[str] = []
    for offset in FILE_OFFSETS:
        tag = _tag(inject_minute + offset * MINUTE)
        for folder, found in (("trace", traces), ("log", logs)):
            path = day_dir / folder / f"{tag}_{folder}.csv"
            if path.is_file():
                found.append(path)
            elif offset == ANALYSIS_OFFSET:
                missing.append(f"{path} ({incident_id}: no {folder} file for the analysis minute)")
    return traces, logs, missing


def _window_estimate(
    entry: _FaultEntry, traces: list[Path], logs: list[Path], day_dir: Path
) -> Window:
    """[inject minute (- 1 min with a +0 file), inject minute + 3 min), from names only."""
    inject_minute = _floor_minute(_as_utc(entry.inject_time))
    first_tag = _tag(inject_minute)
    has_first = any(p.name.startswith(first_tag + "_") for p in (*traces, *logs))
    start = inject_minute - MINUTE if has_first else inject_minute
    return Window(start=start, end=inject_minute + (ANALYSIS_OFFSET + 1) * MINUTE)


def _baseline_estimate(files: list[Path], day: date) -> Window | None:
    """[first baseline tag - 3 min, last tag + 1 min), or None without baseline files."""
    if not files:
        return None
    tags = [_tag_time(path, day) for path in files]
    return Window(start=min(tags) - 3 * MINUTE, end=max(tags) + MINUTE)


# --------------------------------------------------------------------------- loading


_T = TypeVar("_T")

#: Threads reading an incident's CSV files: pyarrow parses without the GIL, and a Nezha
#: incident reads about a hundred small files, each costing more in fixed overhead than
#: in rows, so a few at a time keep both cores busy.
READ_THREADS = 4


def _read_each(read: Callable[[Path], _T], paths: Sequence[Path]) -> list[_T]:
    """`read` of every path, in order, a few files at a time (the first error wins)."""
    if len(paths) < 2:
        return [read(path) for path in paths]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return list(pool.map(read, paths))


def _load_plan(plan: _Plan) -> IncidentData:
    incident = plan.incident
    notes = list(plan.missing)
    source = f"nezha incident {incident.id}"

    span_parts = [_read_trace_file(p, False) for p in plan.traces]
    span_parts += [_read_trace_file(p, True) for p in plan.baseline_traces]
    spans = (
        _first_of_each(pa.concat_tables(span_parts), ("trace_id", "span_id"))
        if span_parts
        else None
    )

    log_parts = [_read_log_file(p, False) for p in plan.logs]
    log_parts += [_read_log_file(p, True) for p in plan.baseline_logs]
    logs = None
    if log_parts:
        raw_logs = _first_of_each(pa.concat_tables(log_parts), ("ts_ns", "pod", "raw"))
        logs = _parse_logs(raw_logs)

    window, normal = _refined_windows(incident, spans, logs)
    if normal is not None and normal.start < window.end and window.start < normal.end:
        notes.append(
            f"the baseline data ({normal.start.isoformat()} to {normal.end.isoformat()}) "
            "overlaps the incident window"
        )
    incident = incident.model_copy(update={"window": window, "normal_window": normal})

    metrics, skipped = _load_metrics(plan.metrics, _metric_ranges(window, normal))
    notes += [
        f"{path}: skipped, not a metric file of this layout (its header lacks TimeStamp "
        "with PodName or ServiceName)"
        for path in skipped
    ]
    if metrics is not None:
        node_source = logs if logs is not None else _empty_node_map()
        metrics = conform(_attach_nodes(metrics, node_source), "metrics", source)

    return IncidentData(
        incident=incident,
        spans=conform(spans.drop_columns(["_baseline"]), "spans", source)
        if spans is not None
        else None,
        logs=conform(logs.drop_columns(["_baseline"]), "logs", source)
        if logs is not None
        else None,
        metrics=metrics,
        notes=notes,
    )


def _empty_node_map() -> pa.Table:
    return pa.table({"instance": pa.array([], pa.string()), "node": pa.array([], pa.string())})


def _refined_windows(
    incident: Incident, spans: pa.Table | None, logs: pa.Table | None
) -> tuple[Window, Window | None]:
    """Windows of the data actually loaded: spans first, else logs, else the estimates."""
    window, normal = incident.window, incident.normal_window
    from_logs = _split_coverage(logs, "ts_ns", None) if logs is not None else (None, None)
    from_spans = (
        _split_coverage(spans, "start_ns", "duration_ns") if spans is not None else (None, None)
    )
    window = from_spans[0] or from_logs[0] or window
    if normal is not None:
        normal = from_spans[1] or from_logs[1] or normal
    return window, normal


def _metric_ranges(window: Window, normal: Window | None) -> list[tuple[int, int]]:
    ranges = [
        (
            ns_from_datetime(window.start - METRIC_MARGIN_BEFORE),
            ns_from_datetime(window.end + METRIC_MARGIN_AFTER),
        )
    ]
    if normal is not None:
        ranges.append((normal.start_ns, normal.end_ns))
    return ranges


def _is_metric_file(path: Path) -> bool:
    """Whether the file's header names `TimeStamp` and `PodName` or `ServiceName`: a
    per-pod or per-service metric file. A metric folder can hold other tables too (call
    graphs, edge lists), which are not time series of this layout."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    names = {name.strip().strip('"') for name in header.strip().split(",")}
    return "TimeStamp" in names and bool(names & {"PodName", "ServiceName"})


def _load_metrics(
    files: list[Path], ranges: list[tuple[int, int]]
) -> tuple[pa.Table | None, list[Path]]:
    """Long metric rows of all metric `files` within `ranges`, de-duplicated across
    copies, and the files skipped as not metric files (`_is_metric_file`)."""
    skipped = [path for path in files if not _is_metric_file(path)]
    files = [path for path in files if path not in skipped]
    if not files:
        return None, skipped
    wide = pa.concat_tables(
        _read_each(_read_metric_file, files), promote_options="permissive"
    ).combine_chunks()
    ticks_ns = pc.multiply(_column(wide, "TimeStamp").cast(pa.int64()), 1_000_000_000)
    ts_ns = pc.subtract(ticks_ns, METRIC_STAMP_SHIFT_NS)
    wide = wide.set_column(0, "ts_ns", ts_ns).filter(_within(ts_ns, ranges))
    instance = _column(wide, "instance")
    service = pc.coalesce(_column(wide, "service"), _service_column(instance))
    wide = wide.set_column(wide.schema.get_field_index("service"), "service", service)
    long = _long_metrics(wide)
    return _first_of_each(long, ("ts_ns", "service", "instance", "name")), skipped


__all__ = ["NezhaDataset", "service_of_pod"]
