"""Decode OTLP export requests (protobuf or JSON) into canonical tables (ARCHITECTURE §2).

`decode_export("traces", body, json=False)` reads one `ExportTraceServiceRequest` and
returns a `Decoded`: the spans as one Arrow table in the canonical `spans` schema, the
number of spans rejected (e.g. a missing or all-zero trace id) and a message saying why.
A body that is not a valid request raises `BadInput` and yields nothing: a request is
decoded completely before anything of it is kept.

Decoding walks the protobuf messages once, appending to one Python list per column,
and builds one Arrow table at the end; no row is ever a Python object of its own.
docs/opentelemetry.md lists the field mapping.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tracehound.errors import BadInput
from tracehound.otlp.attributes import any_value, key_values, resource_identity
from tracehound.otlp.ids import SPAN_ID_BYTES, TRACE_ID_BYTES, hex_ids_to_base64, valid_id
from tracehound.otlp.metrics import SeriesMemory, metric_columns
from tracehound.otlp.tally import MAX_NS, Tally
from tracehound.tables import SCHEMAS, TableName

Signal = Literal["traces", "logs", "metrics"]
SIGNALS: tuple[Signal, ...] = ("traces", "logs", "metrics")

#: The canonical table each signal fills.
TABLE_OF: dict[Signal, TableName] = {"traces": "spans", "logs": "logs", "metrics": "metrics"}
#: The top-level key of each signal's export request in OTLP JSON.
JSON_KEY: dict[Signal, str] = {
    "traces": "resourceSpans",
    "logs": "resourceLogs",
    "metrics": "resourceMetrics",
}
#: What one rejected item is called in messages (and in OTLP's `rejected_<items>`).
ITEMS: dict[Signal, str] = {"traces": "spans", "logs": "log records", "metrics": "data points"}

_REQUEST_TYPES: dict[Signal, Any] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
}

_KINDS = ("unset", "internal", "server", "client", "producer", "consumer")
_STATUSES = ("unset", "ok", "error")
_SEVERITIES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_EMPTY_SPAN_ID = bytes(SPAN_ID_BYTES)


@dataclass(frozen=True)
class Decoded:
    """One decoded export request: its rows, and what was rejected and why.

    `table` is in the canonical schema of the signal's table (spans, logs or metrics);
    `rejected` counts rejected spans / log records / data points; `message` explains
    rejections and amendments in English ("" when there are none).
    """

    table: pa.Table
    rejected: int
    message: str


def signal_of_json(obj: dict[str, Any]) -> Signal:
    """The signal of a parsed OTLP JSON document, by its top-level key."""
    found = [signal for signal in SIGNALS if JSON_KEY[signal] in obj]
    if len(found) != 1:
        raise BadInput(
            "not an OTLP JSON export request",
            expected="an object with exactly one of the keys resourceSpans, resourceLogs "
            "or resourceMetrics",
        )
    return found[0]


def parse_request(signal: Signal, body: bytes, *, json: bool) -> Any:
    """The `Export<Signal>ServiceRequest` message of a body; `BadInput` when malformed.

    An empty body is an empty request in either encoding.
    """
    message = _REQUEST_TYPES[signal]()
    if not body:
        return message
    if not json:
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise BadInput(
                f"the body is not a valid protobuf {type(message).__name__} ({exc})"
            ) from exc
        return message
    try:
        obj = jsonlib.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadInput(f"the body is not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise BadInput(
            "the JSON body is not an object", expected=f"{{{JSON_KEY[signal]!r}: [...]}}"
        )
    others = [s for s in SIGNALS if s != signal and JSON_KEY[s] in obj]
    if others and JSON_KEY[signal] not in obj:
        raise BadInput(
            f"this is an OTLP {others[0]} request, sent where {signal} were expected",
            hint=f"Send it to /v1/{others[0]}.",
        )
    hex_ids_to_base64(obj)
    try:
        json_format.ParseDict(obj, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise BadInput(f"the JSON body is not a valid OTLP {signal} request ({exc})") from exc
    return message


def decode_export(
    signal: Signal, body: bytes, *, json: bool, memory: SeriesMemory | None = None
) -> Decoded:
    """Decode one OTLP export request body (already decompressed) into a canonical table.

    `json=False` reads binary protobuf (`application/x-protobuf`), `json=True` OTLP JSON
    (`application/json`; hex or base64 ids, 64-bit integers as numbers or strings).
    `memory` (metrics only) remembers each series' last cumulative point across calls,
    turning cumulative histograms into per-interval ones and adding counter rates; a
    receiver keeps one, a one-off import leaves it None. Raises `BadInput` when the body
    is not a valid request of that signal.
    """
    request = parse_request(signal, body, json=json)
    return decode_request(signal, request, memory=memory)


def decode_request(signal: Signal, request: Any, *, memory: SeriesMemory | None = None) -> Decoded:
    """Decode an already parsed `Export<Signal>ServiceRequest` message."""
    tally = Tally(ITEMS[signal])
    if signal == "traces":
        columns = _span_columns(request, tally)
    elif signal == "logs":
        columns = _log_columns(request, tally)
    else:
        columns = metric_columns(request, tally, memory)
    table = pa.table(columns, schema=SCHEMAS[TABLE_OF[signal]])
    return Decoded(table=table, rejected=tally.rejected_count, message=tally.message())


# -- spans ---------------------------------------------------------------------------


_to_json = jsonlib.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _span_attributes(span: Any) -> str | None:
    """The attributes JSON: span attributes, status message, exception events."""
    attrs = key_values(span.attributes) if span.attributes else {}
    if span.status.message:
        attrs["otel.status_description"] = span.status.message
    if span.events:
        exceptions = [
            {"time_ns": int(event.time_unix_nano), **key_values(event.attributes)}
            for event in span.events
            if event.name == "exception"
        ]
        if exceptions:
            attrs["exceptions"] = exceptions
    if not attrs:
        return None
    text: str = _to_json(attrs)
    return text


def _span_columns(request: Any, tally: Tally) -> dict[str, list[Any]]:
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parents: list[str | None] = []
    services: list[str] = []
    instances: list[str] = []
    operations: list[str] = []
    kinds: list[str] = []
    starts: list[int] = []
    durations: list[int] = []
    statuses: list[str] = []
    attributes: list[str | None] = []
    for resource_spans in request.resource_spans:
        who = resource_identity(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                if not valid_id(trace_id, TRACE_ID_BYTES):
                    tally.reject("without a valid trace id (16 bytes, not all zero)")
                    continue
                if not valid_id(span_id, SPAN_ID_BYTES):
                    tally.reject("without a valid span id (8 bytes, not all zero)")
                    continue
                parent = span.parent_span_id
                if parent and len(parent) != SPAN_ID_BYTES:
                    tally.reject("with an invalid parent span id (not 8 bytes)")
                    continue
                start = int(span.start_time_unix_nano)
                end = int(span.end_time_unix_nano)
                if start == 0 or end > MAX_NS:
                    tally.reject("without a start time or with an end beyond year 2262")
                    continue
                if end < start:
                    tally.reject("ending before they start")
                    continue
                trace_ids.append(trace_id.hex())
                span_ids.append(span_id.hex())
                parents.append(parent.hex() if parent and parent != _EMPTY_SPAN_ID else None)
                services.append(who.service)
                instances.append(who.instance)
                operations.append(span.name)
                kind = span.kind
                kinds.append(_KINDS[kind] if 0 <= kind < len(_KINDS) else "unset")
                starts.append(start)
                durations.append(end - start)
                code = span.status.code
                statuses.append(_STATUSES[code] if 0 <= code < len(_STATUSES) else "unset")
                attributes.append(_span_attributes(span))
    return {
        "trace_id": trace_ids,
        "span_id": span_ids,
        "parent_span_id": parents,
        "service": services,
        "instance": instances,
        "operation": operations,
        "kind": kinds,
        "start_ns": starts,
        "duration_ns": durations,
        "status": statuses,
        "attributes": attributes,
    }


# -- logs ----------------------------------------------------------------------------


def severity_level(text: str, number: int) -> str:
    """The level: severityText as sent, else the name of severityNumber's range
    (1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL), else
    UNSPECIFIED."""
    if text:
        return text
    if 1 <= number <= 24:
        return _SEVERITIES[(number - 1) // 4]
    return "UNSPECIFIED"


def _log_message(record: Any) -> str:
    """The body as text (structured bodies as JSON), with an exception's stack trace
    (`exception.stacktrace`, else `exception.type: exception.message`) appended."""
    kind = record.body.WhichOneof("value")
    if kind == "string_value":
        message: str = record.body.string_value
    elif kind is None:
        message = ""
    else:
        message = _to_json(any_value(record.body))
    if not record.attributes:
        return message
    attrs = key_values(record.attributes)
    trace = attrs.get("exception.stacktrace")
    if not trace and ("exception.type" in attrs or "exception.message" in attrs):
        trace = f"{attrs.get('exception.type', '')}: {attrs.get('exception.message', '')}"
    if trace and str(trace) not in message:
        message = f"{message}\n{trace}" if message else str(trace)
    return message


def _optional_id(raw: bytes, size: int, tally: Tally, what: str) -> str | None:
    if not raw or raw.count(0) == len(raw):
        return None
    if len(raw) != size:
        tally.amend(f"with an invalid {what} dropped")
        return None
    return raw.hex()


def _log_columns(request: Any, tally: Tally) -> dict[str, list[Any]]:
    times: list[int] = []
    services: list[str] = []
    instances: list[str] = []
    levels: list[str] = []
    messages: list[str] = []
    trace_ids: list[str | None] = []
    span_ids: list[str | None] = []
    for resource_logs in request.resource_logs:
        who = resource_identity(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                ts = int(record.time_unix_nano) or int(record.observed_time_unix_nano)
                if ts == 0 or ts > MAX_NS:
                    tally.reject("without a valid time or observed time")
                    continue
                times.append(ts)
                services.append(who.service)
                instances.append(who.instance)
                levels.append(severity_level(record.severity_text, record.severity_number))
                messages.append(_log_message(record))
                trace_ids.append(_optional_id(record.trace_id, TRACE_ID_BYTES, tally, "trace id"))
                span_ids.append(_optional_id(record.span_id, SPAN_ID_BYTES, tally, "span id"))
    return {
        "ts_ns": times,
        "service": services,
        "instance": instances,
        "level": levels,
        "message": messages,
        "trace_id": trace_ids,
        "span_id": span_ids,
    }
