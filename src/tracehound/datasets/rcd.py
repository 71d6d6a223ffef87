"""Loader for RCD's Sock Shop fault-injection set (metrics only).

Layout (Ikram et al., "Root Cause Analysis of Failures in Microservices through Causal
Discovery", NeurIPS 2022; the "Sock Shop 1" set of Pham et al., ASE 2024)::

    sock-shop-data/<service>-<fault>/<rep>/normal.csv      fault-free recording
    sock-shop-data/<service>-<fault>/<rep>/anomalous.csv   recording with the fault active

The folder name is the label. Container names contain hyphens themselves, so the name is
split on its *last* hyphen. No injection time is published: the split between the two
files is the label, so the fault start is the first anomalous timestamp.

The two files are separate recordings, often days apart, and in some cases the normal one
comes *after* the anomalous one. They are therefore kept as two windows and never sorted
or concatenated into one series by time.

Each CSV is wide: a ``time`` column (Unix epoch seconds) and one column per
``<container>_<metric>``. Values stay in the file's units, as the collector wrote them:

- ``cpu``: percent of one core (a rate over 45 s, times 100);
- ``mem``: bytes (container memory usage);
- ``lod``: requests per second (a rate over 45 s);
- ``lat_50`` / ``lat_90`` / ``lat_99``: seconds (histogram quantiles of request duration).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tracehound.datasets.base import Dataset
from tracehound.errors import BadInput
from tracehound.model import Incident, IncidentData, Labels, Window
from tracehound.tables import from_columns

DATA_FOLDER = "sock-shop-data"
NORMAL_FILE = "normal.csv"
ANOMALOUS_FILE = "anomalous.csv"
TIME_COLUMN = "time"
SYSTEM = "sock-shop"
NS_PER_S = 1_000_000_000
#: Bytes read from the end of a CSV to find its last line; doubled until a line fits.
_TAIL_BLOCK = 4096


@dataclass(frozen=True)
class Case:
    """One repetition of one injected fault: a ``<service>-<fault>/<rep>`` folder."""

    service: str
    fault: str
    rep: str
    folder: Path

    @property
    def id(self) -> str:
        return f"rcd-{self.service}-{self.fault}-{self.rep}"

    @property
    def name(self) -> str:
        return f"{self.service}-{self.fault}/{self.rep}"

    @property
    def normal(self) -> Path:
        return self.folder / NORMAL_FILE

    @property
    def anomalous(self) -> Path:
        return self.folder / ANOMALOUS_FILE


def data_folder(root: Path) -> Path:
    """The folder holding the case folders: ``root/sock-shop-data`` or `root` itself."""
    nested = root / DATA_FOLDER
    return nested if nested.is_dir() else root


def split_case_name(name: str) -> tuple[str, str] | None:
    """``shop-db-cpu`` → (``shop-db``, ``cpu``): services may hold hyphens, faults not."""
    service, sep, fault = name.rpartition("-")
    if not sep or not service or not fault:
        return None
    return service, fault


def _rep_order(rep: str) -> tuple[int, int, str]:
    """Numeric repetitions in numeric order (so 10 follows 9), any others after them."""
    return (0, int(rep), rep) if rep.isdigit() else (1, 0, rep)


def find_cases(root: Path) -> list[Case]:
    """Every case folder holding at least one of the two CSVs, by folder name then rep.

    Only directory listings are read, never a file.
    """
    base = data_folder(root)
    cases: list[Case] = []
    for case_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        parsed = split_case_name(case_dir.name)
        if parsed is None:
            continue
        reps = [
            p
            for p in case_dir.iterdir()
            if p.is_dir() and ((p / NORMAL_FILE).is_file() or (p / ANOMALOUS_FILE).is_file())
        ]
        for rep_dir in sorted(reps, key=lambda p: _rep_order(p.name)):
            cases.append(Case(parsed[0], parsed[1], rep_dir.name, rep_dir))
    return cases


def _seconds_to_ns(text: str, file: Path, where: str) -> int:
    """Exact epoch ns from a CSV cell holding epoch seconds (integer or decimal)."""
    cell = text.strip().strip('"')
    try:
        return int(Decimal(cell) * NS_PER_S)
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise BadInput(
            f"cannot read time {cell!r} in the {where} data row",
            file=file,
            column=TIME_COLUMN,
            expected="Unix epoch seconds",
        ) from exc


def _time_index(header: str, file: Path) -> int:
    names = [n.strip().strip('"') for n in header.split(",")]
    if TIME_COLUMN not in names:
        raise BadInput(
            "has no 'time' column",
            file=file,
            expected="a wide metrics CSV: time, then <container>_<metric> columns",
        )
    return names.index(TIME_COLUMN)


def _last_line(handle: BinaryIO, size: int) -> bytes:
    """The last non-empty line of a binary file, read from its end only."""
    block = _TAIL_BLOCK
    while True:
        start = max(0, size - block)
        handle.seek(start)
        lines = [line for line in handle.read().splitlines() if line.strip()]
        # A complete line needs a line break before it, unless the block reached the start.
        if start == 0 or len(lines) > 1:
            return lines[-1] if lines else b""
        block *= 2


def edge_times(file: Path) -> tuple[int, int]:
    """First and last ``time`` of a CSV in epoch ns, reading its first and last line only.

    The collector writes rows in time order at a 1 s step. Should a file ever end earlier
    than it starts, the whole ``time`` column is read instead to get its true range.
    """
    with file.open("rb") as handle:
        header = handle.readline().decode("utf-8", errors="replace")
        first = handle.readline().decode("utf-8", errors="replace")
        if not first.strip():
            raise BadInput("has no data rows", file=file, expected="one row per second")
        size = handle.seek(0, 2)
        last = _last_line(handle, size).decode("utf-8", errors="replace")
    column = _time_index(header, file)
    first_ns = _seconds_to_ns(first.split(",")[column], file, "first")
    last_ns = _seconds_to_ns(last.split(",")[column], file, "last")
    if last_ns >= first_ns:
        return first_ns, last_ns
    times = _read_wide(file).column(TIME_COLUMN)
    ns = _times_to_ns(times.to_numpy(), file)
    return int(ns.min()), int(ns.max())


def _window(first_ns: int, last_ns: int) -> Window:
    """Half-open window covering every 1 s sample: [first, last + 1 s)."""
    return Window.from_ns(first_ns, last_ns + NS_PER_S)


def _read_wide(file: Path) -> pa.Table:
    """Read a wide CSV with every value column as float64 (the time column as float64 too).

    Types are fixed up front so a bad cell fails here, with pyarrow naming its row and
    column, instead of silently turning a column into strings.
    """
    with file.open("rb") as handle:
        header = handle.readline().decode("utf-8", errors="replace")
    names = [n.strip().strip('"') for n in header.split(",")]
    options = pacsv.ConvertOptions(column_types={name: pa.float64() for name in names})
    try:
        return pacsv.read_csv(file, convert_options=options)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(
            f"cannot read the CSV: {exc}",
            file=file,
            expected="numbers in every column of a wide metrics CSV",
        ) from exc


def _times_to_ns(seconds: np.ndarray, file: Path) -> np.ndarray:
    """Epoch seconds (float64) to int64 ns; exact for whole seconds until 2106."""
    if np.isnan(seconds).any():
        row = int(np.flatnonzero(np.isnan(seconds))[0]) + 1
        raise BadInput("time is missing", file=file, row=row, column=TIME_COLUMN)
    return np.round(seconds * NS_PER_S).astype(np.int64)


def split_metric_column(column: str) -> tuple[str, str] | None:
    """``shop-db_lat_90`` → (``shop-db``, ``lat_90``): the container ends at the first ``_``."""
    container, sep, metric = column.partition("_")
    if not sep or not container or not metric:
        return None
    return container, metric


def wide_to_long(file: Path) -> tuple[pa.Table, list[str]]:
    """One wide CSV as canonical long metric rows, plus notes on skipped columns.

    Rows come series by series (all times of the first column, then the next), built with
    numpy repeat/tile and Arrow takes: no Python loop over rows.
    """
    wide = _read_wide(file)
    if TIME_COLUMN not in wide.column_names:
        raise BadInput("has no 'time' column", file=file, expected="a 'time' column")
    ts_ns = _times_to_ns(wide.column(TIME_COLUMN).to_numpy(), file)
    parsed = [(c, split_metric_column(c)) for c in wide.column_names if c != TIME_COLUMN]
    kept = [(c, p) for c, p in parsed if p is not None]
    notes = [
        f"{file}: column {c!r} skipped (not <container>_<metric>)" for c, p in parsed if p is None
    ]
    rows = wide.num_rows
    series = np.repeat(np.arange(len(kept), dtype=np.int64), rows)
    containers = pa.array([p[0] for _, p in kept], pa.string()).take(series)
    names = pa.array([p[1] for _, p in kept], pa.string()).take(series)
    chunks = [chunk for c, _ in kept for chunk in wide.column(c).chunks]
    values = pa.concat_arrays(chunks) if chunks else pa.array([], pa.float64())
    table = from_columns(
        "metrics",
        {
            "ts_ns": np.tile(ts_ns, len(kept)),
            "service": containers,
            "instance": containers,
            "node": pa.nulls(len(values), pa.string()),
            "name": names,
            "value": values,
        },
        str(file),
    )
    return table, notes


class RcdSockShopDataset(Dataset):
    """RCD's Sock Shop set: one incident per ``<service>-<fault>/<rep>`` folder."""

    kind = "rcd"

    @classmethod
    def detect(cls, root: Path) -> bool:
        base = data_folder(root)
        if not base.is_dir():
            return False
        for case_dir in base.iterdir():
            if (
                case_dir.is_dir()
                and split_case_name(case_dir.name) is not None
                and any(case_dir.glob(f"*/{ANOMALOUS_FILE}"))
            ):
                return True
        return False

    def modalities(self) -> list[str]:
        return ["metrics"]

    def missing(self) -> list[str]:
        lines = []
        for case in find_cases(self.root):
            for file in (case.normal, case.anomalous):
                if not file.is_file():
                    lines.append(f"{case.name}: {file.name} is missing")
        return lines

    def incidents(self) -> list[Incident]:
        """Cases with an anomalous recording; reads only each CSV's first and last line."""
        return [self._incident(case) for case in find_cases(self.root) if case.anomalous.is_file()]

    def _incident(self, case: Case) -> Incident:
        start_ns, end_ns = edge_times(case.anomalous)
        window = _window(start_ns, end_ns)
        normal = _window(*edge_times(case.normal)) if case.normal.is_file() else None
        return Incident(
            id=case.id,
            system=SYSTEM,
            window=window,
            normal_window=normal,
            labels=Labels(service=case.service, fault_type=case.fault, fault_start=window.start),
            attributes={"case": case.name},
        )

    def _case(self, incident_id: str) -> Case:
        for case in find_cases(self.root):
            if case.id == incident_id and case.anomalous.is_file():
                return case
        raise BadInput(
            f"unknown incident id {incident_id!r}",
            file=self.root,
            expected="an id such as rcd-<service>-<fault>-<rep> listed by `datasets info`",
        )

    def load(self, incident_id: str) -> IncidentData:
        """Both recordings as long metric rows: normal.csv's rows first, then anomalous.csv's."""
        case = self._case(incident_id)
        incident = self._incident(case)
        files = [f for f in (case.normal, case.anomalous) if f.is_file()]
        notes = [] if case.normal.is_file() else [f"{case.name}: {NORMAL_FILE} is missing"]
        tables = []
        for file in files:
            table, skipped = wide_to_long(file)
            tables.append(table)
            notes.extend(skipped)
        return IncidentData(
            incident=incident,
            metrics=pa.concat_tables(tables),
            notes=notes,
        )
