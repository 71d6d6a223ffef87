"""Telemetry export files as a dataset: one file, or a directory of them, is one incident.

Jaeger and Zipkin JSON, OTLP JSON lines and Prometheus ``query_range`` JSON carry no
label and no window. Each format has a parser module (`jaeger`, `zipkin`,
`prometheus`, `otlp_file`) that turns one file into canonical tables; this module
recognises the files, merges what they hold, and finds the incident window from the
data (`tracehound.live.window`, the rule `investigate --store` uses too).

- A single file is an incident whose id is the file name without its extension.
- A directory is one incident made of every export file directly inside it (traces of
  one format and metrics of another may be combined); its id is the directory's name.
  Files that are not a recognised export are left out, and the incident's notes say so.

Parsing reads each file whole: these are downloads and captures, not archives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from tracehound.datasets.base import Dataset
from tracehound.errors import BadInput
from tracehound.model import Incident, IncidentData, Window, ns_from_datetime
from tracehound.tables import TableName, from_columns

#: File name endings read as export files.
SUFFIXES = (".json", ".jsonl", ".ndjson")
#: Bytes read from a file's start to recognise its format.
SNIFF_BYTES = 65536
#: Process or resource tags naming an instance, most specific first.
INSTANCE_TAGS = ("service.instance.id", "k8s.pod.name", "pod", "hostname", "host.name", "ip")


@dataclass
class Columns:
    """Column lists a parser fills, one list per canonical column."""

    name: TableName
    data: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, **row: Any) -> None:
        for key, value in row.items():
            self.data.setdefault(key, []).append(value)

    def table(self, source: str) -> pa.Table | None:
        if not self.data:
            return None
        return from_columns(self.name, dict(self.data), source)


@dataclass
class Parsed:
    """What one export file holds, as canonical tables (None where absent)."""

    spans: pa.Table | None = None
    logs: pa.Table | None = None
    metrics: pa.Table | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportFormat:
    """One export format: a name, a test on a file's first bytes, and a parser."""

    name: str
    modalities: tuple[str, ...]
    sniff: Callable[[str], bool]
    parse: Callable[[Path], Parsed]


def formats() -> list[ExportFormat]:
    """Every export format, in the order they are tried on a file."""
    from tracehound.datasets import jaeger, otlp_file, prometheus, zipkin

    return [otlp_file.FORMAT, prometheus.FORMAT, jaeger.FORMAT, zipkin.FORMAT]


def head(path: Path) -> str:
    """A file's first bytes as text, without leading whitespace."""
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")


def format_of(path: Path) -> ExportFormat | None:
    """The export format of one file, or None when it is not one."""
    if not path.is_file() or not path.name.lower().endswith(SUFFIXES):
        return None
    text = head(path)
    for candidate in formats():
        if candidate.sniff(text):
            return candidate
    return None


def export_files(root: Path) -> list[tuple[Path, ExportFormat]]:
    """The export files of `root` (itself, or the files directly inside it), by name."""
    paths = [root] if root.is_file() else sorted(p for p in root.iterdir() if p.is_file())
    found = [(path, format_of(path)) for path in paths]
    return [(path, fmt) for path, fmt in found if fmt is not None]


def read_json_documents(path: Path) -> Iterator[Any]:
    """The JSON value of a file, or each line's value when the file is JSON lines."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        yield json.loads(text)
        return
    except json.JSONDecodeError as whole_error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            raise BadInput(
                f"is not valid JSON ({whole_error.msg} at line {whole_error.lineno})",
                file=path,
                expected="one JSON document, or one JSON document per line",
            ) from whole_error
    for number, line in lines:
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"line {number} is not valid JSON ({exc.msg})",
                file=path,
                expected="one JSON document per line",
            ) from exc


# -- values shared by the trace formats -------------------------------------------------


def truthy(value: Any) -> bool:
    """A tag value meaning yes: true, "true", 1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in ("true", "1", "yes")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def span_status(tags: dict[str, Any], *, error_if_present: bool = False) -> str:
    """Span status from tags: ``error`` when the ``error`` tag is true (or, for Zipkin,
    present at all), ``otel.status_code`` is ERROR, or the HTTP status is 500 or more;
    ``ok`` when ``otel.status_code`` is OK; else ``unset``."""
    if "error" in tags:
        value = tags["error"]
        if truthy(value) or (error_if_present and str(value).strip().lower() != "false"):
            return "error"
    code = str(tags.get("otel.status_code", "")).strip().upper()
    if code == "ERROR":
        return "error"
    http = _int_or_none(tags.get("http.status_code", tags.get("http.response.status_code")))
    if http is not None and http >= 500:
        return "error"
    return "ok" if code == "OK" else "unset"


def span_kind(value: Any) -> str:
    """A span kind tag (any case) as a canonical kind; ``unset`` when unknown."""
    kind = str(value or "").strip().lower()
    return kind if kind in ("server", "client", "internal", "producer", "consumer") else "unset"


def instance_of(tags: dict[str, Any], fallback: str) -> str:
    """The first instance-naming tag (`INSTANCE_TAGS`), else `fallback` (the service)."""
    for key in INSTANCE_TAGS:
        value = tags.get(key)
        if value not in (None, ""):
            return str(value)
    return fallback


def log_fields(fields: dict[str, Any]) -> tuple[str, str]:
    """(level, message) of a span log / event from its fields.

    Level: the ``level`` field (upper-cased); else ERROR when the ``event`` is error or
    exception or an ``error.kind`` / ``exception.type`` field is present; else INFO.
    Message: ``message``, ``msg``, ``log``, ``error.object``, ``exception.message`` or
    ``event``, the first present; else every field as ``key=value``.
    """
    level = str(fields.get("level") or fields.get("severity") or "").strip().upper()
    if not level:
        event = str(fields.get("event", "")).strip().lower()
        errorish = event in ("error", "exception") or "error.kind" in fields
        level = "ERROR" if errorish or "exception.type" in fields else "INFO"
    for key in ("message", "msg", "log", "error.object", "exception.message", "event"):
        if fields.get(key) not in (None, ""):
            return level, str(fields[key])
    return level, " ".join(f"{k}={v}" for k, v in fields.items())


def attributes_json(tags: dict[str, Any]) -> str | None:
    """Tags as a JSON object string (None when there are none)."""
    return json.dumps(tags, sort_keys=True, default=str) if tags else None


def rfc3339_ns(text: str) -> int:
    """Epoch ns of an RFC 3339 time, keeping every fractional digit (up to ns)."""
    cleaned = text.strip().replace("z", "Z")
    main, dot, rest = cleaned.partition(".")
    fraction, zone = "", ""
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    else:
        for sign in ("Z", "+", "-"):
            at = main.rfind(sign)
            if at > 10:
                main, zone = main[:at], main[at:]
                break
    moment = datetime.fromisoformat(main + (zone.replace("Z", "+00:00") or "+00:00"))
    return ns_from_datetime(moment) + int((fraction + "000000000")[:9] or 0)


def duration_ns(text: str) -> int:
    """Nanoseconds of a protobuf JSON duration such as ``0.001500s``."""
    return int(Decimal(text.strip().removesuffix("s")) * 1_000_000_000)


# -- the dataset ------------------------------------------------------------------------


class ExportDataset(Dataset):
    """Export files of the formats in `accepts`: a file, or a directory of them.

    Subclasses name one format each; `MixedExportDataset` takes a directory combining
    several. The incident is computed once per instance (its window needs the data).
    """

    kind = "exports"
    accepts: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def detect(cls, root: Path) -> bool:
        if root.is_dir() and not any(p.is_file() for p in root.iterdir()):
            return False
        names = {fmt.name for _, fmt in export_files(root)}
        return bool(names) and names <= set(cls.accepts) and cls._shape_ok(names)

    @classmethod
    def _shape_ok(cls, names: set[str]) -> bool:
        return len(names) == 1

    @cached_property
    def _data(self) -> IncidentData:
        files = export_files(self.root)
        if not files:
            raise BadInput(
                "holds no export file tracehound reads",
                file=self.root,
                expected="Jaeger, Zipkin, OTLP or Prometheus JSON files",
            )
        parsed = [fmt.parse(path) for path, fmt in files]
        notes = [note for p in parsed for note in p.notes]
        if self.root.is_dir():
            taken = {path for path, _ in files}
            notes += [
                f"{p.name}: not a recognised export file, left out"
                for p in sorted(self.root.iterdir())
                if p.is_file() and p not in taken
            ]
        tables = {name: _concat([getattr(p, name) for p in parsed]) for name in _TABLES}
        return _incident_from_tables(self._incident_id(), tables, notes, files)

    def _incident_id(self) -> str:
        if self.root.is_file():
            name = self.root.name
            for suffix in SUFFIXES:
                if name.lower().endswith(suffix):
                    name = name[: -len(suffix)]
            return name or "incident"
        return self.root.resolve().name or "incident"

    def incidents(self) -> list[Incident]:
        return [self._data.incident]

    def load(self, incident_id: str) -> IncidentData:
        if incident_id != self._data.incident.id:
            raise BadInput(
                f"unknown incident id {incident_id!r}",
                file=self.root,
                expected=f"the id {self._data.incident.id!r}",
            )
        return self._data

    def modalities(self) -> list[str]:
        present = {m for _, fmt in export_files(self.root) for m in fmt.modalities}
        return [m for m in ("traces", "logs", "metrics") if m in present]


class MixedExportDataset(ExportDataset):
    """A directory combining export files of several formats into one incident."""

    kind = "exports"
    accepts = ("jaeger", "zipkin", "otlp", "prometheus")

    @classmethod
    def _shape_ok(cls, names: set[str]) -> bool:
        return len(names) > 1


_TABLES = ("spans", "logs", "metrics")


def _concat(tables: list[pa.Table | None]) -> pa.Table | None:
    present = [t for t in tables if t is not None and t.num_rows]
    if not present:
        return None
    return pa.concat_tables([t.select(present[0].schema.names) for t in present])


def _incident_from_tables(
    incident_id: str,
    tables: dict[str, pa.Table | None],
    notes: list[str],
    files: list[tuple[Path, ExportFormat]],
) -> IncidentData:
    from tracehound.live.window import find_window

    found = find_window(tables["spans"], tables["metrics"], tables["logs"])
    if found is None:
        raise BadInput(
            "holds no spans, logs or metrics",
            file=files[0][0] if len(files) == 1 else files[0][0].parent,
            expected="export files with at least one span, log record or sample",
        )
    normal = Window.from_ns(*found.normal) if found.normal is not None else None
    incident = Incident(
        id=incident_id,
        window=Window.from_ns(found.start_ns, max(found.end_ns, found.start_ns + 1)),
        normal_window=normal,
        attributes={
            "source": ", ".join(sorted({fmt.name for _, fmt in files})),
            "window": found.reason,
        },
    )
    return IncidentData(
        incident=incident,
        spans=tables["spans"],
        logs=tables["logs"],
        metrics=tables["metrics"],
        notes=[*notes, f"window: {found.reason}"],
    )
