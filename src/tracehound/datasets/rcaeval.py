"""Loader for RCAEval's fault-injection cases (Pham et al., WWW 2025 / ASE 2024).

Layout (github.com/phamquiluan/RCAEval; anchors §4.5)::

    <dataset>/<system>/<service>_<fault>/<n>/inject_time.txt   fault start, Unix seconds
    <dataset>/<system>/<service>_<fault>/<n>/data.csv          wide metrics (RE1)
                                            metrics.csv        wide metrics (RE2/RE3)
                                            simple_metrics.csv reduced metrics (read when
                                                               neither of the above is there)
                                            traces.csv         spans (RE2/RE3, optional)
                                            logs.csv           log lines (RE2/RE3, optional)

The root may be a case folder, a ``<service>_<fault>`` folder, a system folder (``RE2-OB``)
or the dataset root; cases are found up to four levels below it. The folder name is the
label; faults hold no ``_``, so it splits on its *last* ``_``.

- **Incidents**: one per case, id ``rcaeval-<folders from the root>`` (at least
  ``<service>_<fault>-<n>``); ``system`` = the folder holding the ``<service>_<fault>``
  folders.
- **Labels**: ``service`` from the folder; ``fault_start`` = inject time; ``detail`` =
  RCAEval's fault name as written; ``fault_type`` mapped to tracehound's fault types:
  ``cpu`` → cpu, ``mem`` → memory, ``delay`` → network, ``loss`` → network (RCAEval
  injects both as network faults on the service's pod); ``disk`` and ``socket`` have no
  tracehound type and keep their names, as do the code-level faults of RE3 (``f1`` ...).
- **Window**: RCAEval's own convention (its ``main.py`` takes ``length`` 20 minutes,
  half on each side of the inject time): incident window = [inject, inject + 600 s),
  normal window = [inject - 600 s, inject), both clipped to the data; no normal window
  when no data precedes the inject time.
- **Metrics**: every column ``<service>_<metric>`` becomes points with service =
  instance = the part before the first ``_`` (``carts_container-cpu-usage-seconds-total``
  → ``carts``, ``container-cpu-usage-seconds-total``). Counters: a metric whose last
  ``-``/``_``-separated word is ``total``, ``count``, ``sum`` or ``bucket`` is a
  cumulative counter and becomes a per-second rate under the same name
  (`counters.counter_rates`); as names are only a hint here, a series that goes down in
  more than 10 % of its steps is kept as it is (it is a rate or a gauge already).
  Other values stay in the file's units.
- **Traces** (``traces.csv``: ``traceID, spanID, parentSpanID, serviceName,
  operationName, startTime`` (µs), ``duration`` (µs), ``statusCode``): instance = service,
  kind unset; status from ``statusCode``: 0 ok and 1-16 error (gRPC codes), 100-499 ok
  and 500+ error (HTTP), anything else unset.
- **Logs** (``logs.csv``: ``timestamp`` (ns) or ``time`` (s), ``container_name``,
  ``level``, ``message``): service = instance = the container; without a level (no
  column, or an empty value) the level the line states (`datasets.loglines`: a JSON
  line's severity, logfmt, a level near the start), else INFO, and a JSON line's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tracehound.datasets.base import Dataset
from tracehound.datasets.counters import counter_rates
from tracehound.datasets.loglines import read_lines
from tracehound.datasets.rcd import edge_times, wide_to_long
from tracehound.errors import BadInput
from tracehound.model import Incident, IncidentData, Labels, Window, datetime_from_ns
from tracehound.tables import from_columns

INJECT_FILE = "inject_time.txt"
METRIC_FILES = ("data.csv", "metrics.csv", "simple_metrics.csv", "simple_data.csv")
TRACES_FILE = "traces.csv"
LOGS_FILE = "logs.csv"
#: Seconds on each side of the inject time (RCAEval main.py: length 20 min // 2).
HALF_WINDOW_S = 600
NS_PER_S = 1_000_000_000
NS_PER_US = 1_000
#: Levels below the root searched for cases.
MAX_DEPTH = 4
#: Share of steps a series named like a counter may go down in and still be one.
MAX_DECREASE_SHARE = 0.1
COUNTER_WORDS = frozenset({"total", "count", "sum", "bucket"})
FAULT_TYPES = {"cpu": "cpu", "mem": "memory", "delay": "network", "loss": "network"}


@dataclass(frozen=True)
class Case:
    """One run of one injected fault: a ``<service>_<fault>/<n>`` folder."""

    id: str
    service: str
    fault: str
    run: str
    folder: Path
    system: str | None

    @property
    def metrics_file(self) -> Path:
        for name in METRIC_FILES:
            if (self.folder / name).is_file():
                return self.folder / name
        return self.folder / METRIC_FILES[0]


def _is_case(folder: Path) -> bool:
    return (folder / INJECT_FILE).is_file() and any(
        (folder / name).is_file() for name in METRIC_FILES
    )


def _run_order(path: Path) -> tuple[int, int, str]:
    return (0, int(path.name), path.name) if path.name.isdigit() else (1, 0, path.name)


def find_cases(root: Path) -> list[Case]:
    """Every case folder at most `MAX_DEPTH` levels below `root`, in path order."""
    folders: list[Path] = []
    level = [root]
    for _ in range(MAX_DEPTH + 1):
        folders.extend(f for f in level if _is_case(f))
        level = [c for f in level if not _is_case(f) for c in f.iterdir() if c.is_dir()]
        if not level:
            break
    cases = []
    for folder in sorted(folders, key=lambda f: (str(f.parent), _run_order(f))):
        service, sep, fault = folder.parent.name.rpartition("_")
        if not sep or not service or not fault:
            continue
        relative = folder.relative_to(root).parts if folder != root else ()
        parts = list(relative) if len(relative) >= 2 else [folder.parent.name, folder.name]
        system = folder.parent.parent.name if folder.parent != folder.parent.parent else None
        cases.append(
            Case(
                id="rcaeval-" + "-".join(parts),
                service=service,
                fault=fault,
                run=folder.name,
                folder=folder,
                system=system or None,
            )
        )
    return cases


def inject_time_ns(file: Path) -> int:
    """The inject time (Unix seconds, first line) as epoch ns."""
    text = file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    try:
        return int(float(text[0].strip()) * NS_PER_S)
    except (IndexError, ValueError) as exc:
        raise BadInput(
            "cannot read the inject time", file=file, expected="Unix epoch seconds"
        ) from exc


def windows(inject_ns: int, first_ns: int, last_ns: int) -> tuple[Window, Window | None]:
    """Incident and normal windows around the inject time, clipped to the data."""
    half = HALF_WINDOW_S * NS_PER_S
    end = min(inject_ns + half, max(last_ns + NS_PER_S, inject_ns + 1))
    normal = None
    if first_ns < inject_ns:
        normal = Window.from_ns(max(inject_ns - half, first_ns), inject_ns)
    return Window.from_ns(inject_ns, end), normal


def is_counter(metric: str) -> bool:
    """True for a metric named like a cumulative counter (``...-seconds-total``)."""
    last = metric.replace("_", "-").rsplit("-", 1)[-1].lower()
    return last in COUNTER_WORDS


def metrics_table(file: Path) -> tuple[pa.Table, list[str]]:
    """A wide RCAEval metrics CSV as long canonical rows, counters turned into rates."""
    table, notes = wide_to_long(file)
    if not table.num_rows:
        return table, notes
    keys = pc.binary_join_element_wise(table.column("service"), table.column("name"), "\x1f")
    encoded = pc.dictionary_encode(keys).combine_chunks()
    series = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    names = [str(k).split("\x1f", 1)[1] for k in encoded.dictionary.to_pylist()]
    named = np.asarray([is_counter(n) for n in names], dtype=bool)
    rows, values = counter_rates(
        series,
        table.column("ts_ns").to_numpy(),
        table.column("value").to_numpy(zero_copy_only=False).astype(np.float64),
        named,
        MAX_DECREASE_SHARE,
    )
    out = table.take(pa.array(rows)).set_column(
        table.schema.get_field_index("value"), "value", pa.array(values, pa.float64())
    )
    return out, notes


def _read_csv(file: Path, types: dict[str, pa.DataType]) -> pa.Table:
    with file.open("rb") as handle:
        header = handle.readline().decode("utf-8", errors="replace")
    names = [n.strip().strip('"') for n in header.split(",")]
    options = pacsv.ConvertOptions(
        column_types={k: v for k, v in types.items() if k in names},
        include_columns=[k for k in types if k in names],
        strings_can_be_null=True,
    )
    try:
        return pacsv.read_csv(file, convert_options=options)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"cannot read the CSV: {exc}", file=file) from exc


def _require(table: pa.Table, columns: tuple[str, ...], file: Path) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise BadInput(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
            file=file,
            expected=f"the RCAEval columns {', '.join(columns)}",
        )


def status_from_codes(codes: pa.Array) -> pa.Array:
    """Span status from RCAEval ``statusCode`` strings (gRPC or HTTP codes)."""
    text = pc.utf8_trim_whitespace(pc.cast(codes, pa.string()))
    numeric = pc.fill_null(pc.match_substring_regex(text, r"^\d+(\.0+)?$"), False)
    number = pc.cast(
        pc.if_else(numeric, pc.cast(pc.cast(text, pa.float64(), safe=False), pa.int64()), None),
        pa.int64(),
    )
    ok = pc.or_(pc.equal(number, 0), pc.and_(pc.greater_equal(number, 100), pc.less(number, 500)))
    error = pc.or_(
        pc.and_(pc.greater_equal(number, 1), pc.less_equal(number, 16)),
        pc.greater_equal(number, 500),
    )
    return pc.if_else(
        pc.fill_null(error, False), "error", pc.if_else(pc.fill_null(ok, False), "ok", "unset")
    )


def traces_table(file: Path) -> pa.Table:
    """RCAEval ``traces.csv`` as canonical spans."""
    text = pa.string()
    raw = _read_csv(
        file,
        {
            "traceID": text,
            "spanID": text,
            "parentSpanID": text,
            "serviceName": text,
            "operationName": text,
            "startTime": pa.int64(),
            "duration": pa.int64(),
            "statusCode": text,
        },
    )
    _require(raw, ("traceID", "spanID", "serviceName", "startTime", "duration"), file)
    rows = raw.num_rows
    parent = raw.column("parentSpanID") if "parentSpanID" in raw.column_names else None
    if parent is not None:
        parent = pc.if_else(pc.equal(pc.utf8_trim_whitespace(parent), ""), None, parent)
    codes = raw.column("statusCode") if "statusCode" in raw.column_names else None
    operation = (
        raw.column("operationName")
        if "operationName" in raw.column_names
        else pa.array([""] * rows, pa.string())
    )
    return from_columns(
        "spans",
        {
            "trace_id": raw.column("traceID"),
            "span_id": raw.column("spanID"),
            "parent_span_id": parent if parent is not None else pa.nulls(rows, pa.string()),
            "service": raw.column("serviceName"),
            "instance": raw.column("serviceName"),
            "operation": pc.fill_null(operation, ""),
            "kind": pa.array(["unset"] * rows, pa.string()),
            "start_ns": pc.multiply(raw.column("startTime"), NS_PER_US),
            "duration_ns": pc.multiply(raw.column("duration"), NS_PER_US),
            "status": (
                status_from_codes(codes.combine_chunks())
                if codes is not None
                else pa.array(["unset"] * rows, pa.string())
            ),
        },
        str(file),
    )


def logs_table(file: Path) -> pa.Table:
    """RCAEval ``logs.csv`` as canonical log rows."""
    text = pa.string()
    raw = _read_csv(
        file,
        {
            "time": pa.float64(),
            "timestamp": pa.int64(),
            "container_name": text,
            "message": text,
            "level": text,
        },
    )
    _require(raw, ("container_name", "message"), file)
    rows = raw.num_rows
    if "timestamp" in raw.column_names:
        ts = raw.column("timestamp")
    elif "time" in raw.column_names:
        seconds = raw.column("time").to_numpy(zero_copy_only=False)
        ts = pa.array(np.round(seconds * NS_PER_S).astype(np.int64))
    else:
        raise BadInput("has no time column", file=file, expected="'timestamp' (ns) or 'time' (s)")
    level = raw.column("level") if "level" in raw.column_names else pa.nulls(rows, text)
    level = pc.utf8_upper(pc.utf8_trim_whitespace(pc.fill_null(level, "")))
    message = pc.fill_null(raw.column("message"), "")
    unstated = pc.equal(level, "")
    if pc.any(unstated).as_py():
        # without a level column, or with an empty one: what the line states, else INFO
        stated, said = read_lines(message)
        level = pc.if_else(unstated, pc.fill_null(stated, "INFO"), level)
        message = pc.if_else(unstated, said, message)
    return from_columns(
        "logs",
        {
            "ts_ns": ts,
            "service": raw.column("container_name"),
            "instance": raw.column("container_name"),
            "level": level,
            "message": message,
            "trace_id": pa.nulls(rows, text),
            "span_id": pa.nulls(rows, text),
        },
        str(file),
    )


class RcaEvalDataset(Dataset):
    """RCAEval cases: one incident per ``<service>_<fault>/<n>`` folder."""

    kind = "rcaeval"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return root.is_dir() and bool(find_cases(root))

    def modalities(self) -> list[str]:
        cases = find_cases(self.root)
        present = {"metrics"} if cases else set()
        if any((c.folder / TRACES_FILE).is_file() for c in cases):
            present.add("traces")
        if any((c.folder / LOGS_FILE).is_file() for c in cases):
            present.add("logs")
        return [m for m in ("traces", "logs", "metrics") if m in present]

    def incidents(self) -> list[Incident]:
        """Every case; reads only the inject time and each metrics file's edge rows."""
        return [self._incident(case) for case in find_cases(self.root)]

    def _incident(self, case: Case) -> Incident:
        inject = inject_time_ns(case.folder / INJECT_FILE)
        window, normal = windows(inject, *edge_times(case.metrics_file))
        return Incident(
            id=case.id,
            system=case.system,
            window=window,
            normal_window=normal,
            labels=Labels(
                service=case.service,
                fault_type=FAULT_TYPES.get(case.fault, case.fault),
                fault_start=datetime_from_ns(inject),
                detail=case.fault,
            ),
            attributes={"case": f"{case.folder.parent.name}/{case.run}"},
        )

    def load(self, incident_id: str) -> IncidentData:
        for case in find_cases(self.root):
            if case.id == incident_id:
                break
        else:
            raise BadInput(
                f"unknown incident id {incident_id!r}",
                file=self.root,
                expected="an id such as rcaeval-<service>_<fault>-<n> (`datasets info`)",
            )
        metrics, notes = metrics_table(case.metrics_file)
        spans = logs = None
        if (case.folder / TRACES_FILE).is_file():
            spans = traces_table(case.folder / TRACES_FILE)
        if (case.folder / LOGS_FILE).is_file():
            logs = logs_table(case.folder / LOGS_FILE)
        return IncidentData(
            incident=self._incident(case), spans=spans, metrics=metrics, logs=logs, notes=notes
        )
