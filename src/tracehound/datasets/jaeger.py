"""Jaeger JSON traces: the Jaeger UI's "Download JSON" and the query API's answer.

Layout (jaegertracing.io; anchors §4.2)::

    {"data": [{"traceID": "...", "spans": [...], "processes": {"p1": {...}}}], ...}

A span: ``traceID, spanID, operationName, references[{refType, traceID, spanID}],
startTime`` (µs since the epoch), ``duration`` (µs), ``tags[{key, type, value}]``,
``logs[{timestamp, fields[]}]`` and ``processID``, a key into the trace's ``processes``
(``serviceName`` and process ``tags``).

Mapping:

- ``parent_span_id``: the span's ``CHILD_OF`` reference, else its first
  ``FOLLOWS_FROM`` reference, else a non-zero ``parentSpanID`` field; none for roots.
- ``service``: the process's ``serviceName``; ``instance``: the first process tag of
  ``service.instance.id``, ``k8s.pod.name``, ``pod``, ``hostname``, ``host.name``,
  ``ip``, else the service.
- times: µs x 1000; ``kind`` from the ``span.kind`` tag.
- ``status``: ``error`` when the ``error`` tag is true, ``otel.status_code`` is ERROR or
  ``http.status_code`` (or ``http.response.status_code``) is 500 or more; ``ok`` when
  ``otel.status_code`` is OK; else ``unset``.
- ``attributes``: the span's tags as a JSON object.
- Span logs become log rows of the span's service and instance, linked by trace and span
  id; level and message come from their fields (see `exports.log_fields`).

The api_v2 (protobuf JSON) variant is read too: ``{"result": {"spans": [...]}}`` per line
or document, with base64 ``traceId``/``spanId`` (turned into hex), RFC 3339
``startTime``, ``duration`` strings such as ``"0.001500s"``, typed tag values
(``vStr``, ``vInt64``, ...) and an inline ``process``.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from tracehound.datasets.exports import (
    Columns,
    ExportDataset,
    ExportFormat,
    Parsed,
    attributes_json,
    duration_ns,
    instance_of,
    log_fields,
    read_json_documents,
    rfc3339_ns,
    span_kind,
    span_status,
)
from tracehound.errors import BadInput

NS_PER_US = 1_000


def sniff(text: str) -> bool:
    """A JSON object holding Jaeger spans (classic ``traceID`` or api_v2 ``spanId`` with
    ``operationName``)."""
    if not text.startswith("{"):
        return False
    return '"traceID"' in text or ('"spanId"' in text and '"operationName"' in text)


def tag_value(tag: dict[str, Any]) -> Any:
    """One Jaeger tag's value, typed: classic ``{type, value}`` or api_v2 ``vStr``..."""
    if "value" in tag:
        value = tag["value"]
        kind = str(tag.get("type", "")).lower()
        if kind == "bool" and isinstance(value, str):
            return value.strip().lower() == "true"
        if kind == "int64" and isinstance(value, str):
            return int(value)
        if kind == "float64" and isinstance(value, str):
            return float(value)
        return value
    for key, convert in (("vStr", str), ("vBool", bool), ("vInt64", int), ("vFloat64", float)):
        if key in tag:
            return convert(tag[key])
    if "vBinary" in tag:
        return tag["vBinary"]
    kind = str(tag.get("vType", "STRING")).upper()
    return {"BOOL": False, "INT64": 0, "FLOAT64": 0.0}.get(kind, "")


def tags_of(items: Any) -> dict[str, Any]:
    """A Jaeger tag list as a dict (a repeated key keeps its last value)."""
    if not isinstance(items, list):
        return {}
    return {str(t["key"]): tag_value(t) for t in items if isinstance(t, dict) and "key" in t}


def hex_id(value: Any) -> str:
    """A Jaeger id as lower-case hex: classic ids are hex already, api_v2 ids base64."""
    text = str(value or "")
    if not text:
        return ""
    if all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text


def _time_ns(value: Any) -> int:
    """µs integer (classic) or RFC 3339 text (api_v2) as epoch ns."""
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return rfc3339_ns(value)
    return int(value) * NS_PER_US


def _duration_ns(value: Any) -> int:
    if isinstance(value, str) and value.strip().endswith("s"):
        return duration_ns(value)
    return int(value or 0) * NS_PER_US


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span.get("references") or [] if isinstance(r, dict)]
    for wanted in ("CHILD_OF", "FOLLOWS_FROM"):
        for ref in refs:
            if str(ref.get("refType", "CHILD_OF")).upper() == wanted:
                parent = hex_id(ref.get("spanID", ref.get("spanId")))
                if parent:
                    return parent
    legacy = hex_id(span.get("parentSpanID"))
    return legacy if legacy and set(legacy) != {"0"} else None


def _traces(document: Any, path: Path) -> list[tuple[list[Any], dict[str, Any]]]:
    """(spans, processes) of every trace in one document, classic or api_v2."""
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        document = document["result"]
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return [
            (t.get("spans") or [], t.get("processes") or {})
            for t in document["data"]
            if isinstance(t, dict)
        ]
    if isinstance(document, dict) and isinstance(document.get("spans"), list):
        return [(document["spans"], document.get("processes") or {})]
    raise BadInput(
        "is not a Jaeger trace document",
        file=path,
        expected='{"data": [{"traceID", "spans", "processes"}]} or {"result": {"spans"}}',
    )


def parse(path: Path) -> Parsed:
    """Every span (and span log) of a Jaeger JSON file as canonical tables."""
    spans = Columns("spans")
    logs = Columns("logs")
    count = 0
    for document in read_json_documents(path):
        for trace_spans, processes in _traces(document, path):
            for span in trace_spans:
                count += 1
                _add_span(span, processes, spans, logs, path, count)
    return Parsed(spans=spans.table(str(path)), logs=logs.table(str(path)))


def _add_span(
    span: Any,
    processes: dict[str, Any],
    spans: Columns,
    logs: Columns,
    path: Path,
    number: int,
) -> None:
    if not isinstance(span, dict):
        raise BadInput(f"span {number} is not an object", file=path, expected="a Jaeger span")
    process = span.get("process") or processes.get(str(span.get("processID", ""))) or {}
    service = str(process.get("serviceName") or "unknown_service")
    instance = instance_of(tags_of(process.get("tags")), service)
    tags = tags_of(span.get("tags"))
    trace_id = hex_id(span.get("traceID", span.get("traceId")))
    span_id = hex_id(span.get("spanID", span.get("spanId")))
    try:
        start = _time_ns(span["startTime"])
        length = _duration_ns(span.get("duration", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(
            f"span {number} ({span_id or 'no id'}) has no readable startTime/duration",
            file=path,
            expected="µs integers, or an RFC 3339 time and a duration such as '0.5s'",
        ) from exc
    spans.add(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=_parent(span),
        service=service,
        instance=instance,
        operation=str(span.get("operationName", "")),
        kind=span_kind(tags.get("span.kind")),
        start_ns=start,
        duration_ns=length,
        status=span_status(tags),
        attributes=attributes_json(tags),
    )
    for entry in span.get("logs") or []:
        if not isinstance(entry, dict):
            continue
        level, message = log_fields(tags_of(entry.get("fields")))
        logs.add(
            ts_ns=_time_ns(entry.get("timestamp", span["startTime"])),
            service=service,
            instance=instance,
            level=level,
            message=message,
            trace_id=trace_id,
            span_id=span_id,
        )


FORMAT = ExportFormat(name="jaeger", modalities=("traces", "logs"), sniff=sniff, parse=parse)


class JaegerDataset(ExportDataset):
    """A Jaeger JSON file, or a directory of them: one incident (see `exports`)."""

    kind = "jaeger"
    accepts = ("jaeger",)
