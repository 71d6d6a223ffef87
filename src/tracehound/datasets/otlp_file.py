"""OTLP JSON files, as the OpenTelemetry Collector's ``file`` exporter writes them.

Each line is one export request: ``{"resourceSpans": [...]}``, ``{"resourceLogs": [...]}``
or ``{"resourceMetrics": [...]}`` (the top key says the signal). A file may mix signals.
Lines are decoded by `tracehound.otlp.decode` — the decoder behind ``tracehound
collect`` — so a file and a live collector give the same rows: hex or base64 ids,
int64s written as strings, and the same field mapping (docs/opentelemetry.md).

Items the decoder rejects (a span without an id, ...) are counted in the notes; a line
that is not JSON, or not an export request, is bad input naming the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from tracehound.datasets.exports import ExportDataset, ExportFormat, Parsed
from tracehound.errors import BadInput

#: The canonical table each OTLP signal decodes into.
TABLE_OF_SIGNAL = {"traces": "spans", "spans": "spans", "logs": "logs", "metrics": "metrics"}
TOP_KEYS = ('"resourceSpans"', '"resourceLogs"', '"resourceMetrics"')


def sniff(text: str) -> bool:
    """An OTLP export request: a JSON object with a ``resource*`` top key."""
    return text.startswith("{") and any(key in text for key in TOP_KEYS)


def parse(path: Path) -> Parsed:
    """Every export request of an OTLP JSON-lines file as canonical tables."""
    from tracehound.otlp.decode import decode_export, signal_of_json

    parts: dict[str, list[pa.Table]] = {"spans": [], "logs": [], "metrics": []}
    rejected = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(
                    f"line {number} is not valid JSON ({exc.msg})",
                    file=path,
                    expected="one OTLP JSON export request per line",
                ) from exc
            try:
                signal = signal_of_json(document)
                decoded = decode_export(signal, line, json=True)
            except BadInput as exc:
                raise BadInput(
                    f"line {number}: {exc.problem}",
                    file=path,
                    expected=exc.expected or "an OTLP JSON export request",
                ) from exc
            rejected += int(decoded.rejected or 0)
            if decoded.table is not None and decoded.table.num_rows:
                parts[TABLE_OF_SIGNAL[str(signal)]].append(decoded.table)
    notes = [f"{path.name}: {rejected} item(s) rejected by the OTLP decoder"] if rejected else []
    return Parsed(
        spans=_concat(parts["spans"]),
        logs=_concat(parts["logs"]),
        metrics=_concat(parts["metrics"]),
        notes=notes,
    )


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    return pa.concat_tables(tables, promote_options="default") if tables else None


FORMAT = ExportFormat(
    name="otlp", modalities=("traces", "logs", "metrics"), sniff=sniff, parse=parse
)


class OtlpFileDataset(ExportDataset):
    """OTLP JSON files (file exporter output): a file, or a directory of them."""

    kind = "otlp"
    accepts = ("otlp",)
