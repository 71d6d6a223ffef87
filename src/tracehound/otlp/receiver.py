"""The OTLP/HTTP receiver: a Starlette app for `POST /v1/traces`, `/v1/logs`, `/v1/metrics`.

Responses follow the OTLP specification (opentelemetry.io/docs/specs/otlp, OTLP/HTTP):

- 200 with an `Export<Signal>ServiceResponse` in the request's encoding; when some items
  were rejected (e.g. a span without a valid trace id) `partial_success` carries their
  count and the reason, and the rest is stored. An empty request is a success.
- 400 with a `google.rpc.Status` when the body cannot be decoded, or when every item in
  it was rejected (nothing to store: a 400 tells the exporter loudly, where a partial
  success is often only logged). Nothing of such a request is stored.
- 413 when the body, before or after gzip decompression, exceeds `max_body_bytes`.
- 415 for a content type other than `application/x-protobuf` / `application/json`, or a
  content encoding other than gzip / identity.
- 503 with `Retry-After` when the writer's queue is full (a retryable code in OTLP).

A request is decoded completely before its rows are queued, so a malformed request
leaves the store as it was.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tracehound.errors import BadInput
from tracehound.otlp.decode import TABLE_OF, Decoded, Signal, decode_export
from tracehound.otlp.metrics import SeriesMemory
from tracehound.otlp.writer import QueueFull
from tracehound.tables import TableName

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

#: OTLP's recommended default limit is 20 MiB; collectors batch larger, so allow more.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

# google.rpc.Code values for the Status body (OTLP clients do not act on them).
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14

_RESPONSES: dict[Signal, tuple[Any, Any, str]] = {
    "traces": (
        trace_service_pb2.ExportTraceServiceResponse,
        trace_service_pb2.ExportTracePartialSuccess,
        "rejected_spans",
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceResponse,
        logs_service_pb2.ExportLogsPartialSuccess,
        "rejected_log_records",
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceResponse,
        metrics_service_pb2.ExportMetricsPartialSuccess,
        "rejected_data_points",
    ),
}

Sink = Callable[[TableName, Any], None]
"""Where decoded tables go (`FileWriter.submit`); raises `QueueFull` to shed load."""


@dataclass
class ReceiverStats:
    """Counts since start, by signal: requests, accepted and rejected items, and by
    HTTP status code."""

    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


class _TooLarge(Exception):
    pass


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def status_body(code: int, message: str, *, as_json: bool) -> bytes:
    """A `google.rpc.Status {code, message}`, encoded by hand (two scalar fields) so the
    receiver needs no googleapis package."""
    if as_json:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _media_type(request: Request) -> str | None:
    value = request.headers.get("content-type", "")
    media = value.split(";", 1)[0].strip().lower()
    return media if media in (PROTOBUF, JSON) else None


def _failure(status: int, code: int, message: str, *, as_json: bool) -> Response:
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(
        status_body(code, message, as_json=as_json),
        status_code=status,
        media_type=JSON if as_json else PROTOBUF,
        headers=headers,
    )


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip (possibly several members) up to `limit` bytes; `_TooLarge` beyond,
    `BadInput` for a corrupt stream."""
    out = bytearray()
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=31)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise _TooLarge
            if not inflater.eof:
                raise BadInput("the gzip body is truncated")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise BadInput(f"the body is not valid gzip ({exc})") from exc
    return bytes(out)


def _success(signal: Signal, decoded: Decoded, *, as_json: bool) -> Response:
    response_type, partial_type, rejected_field = _RESPONSES[signal]
    message = response_type()
    if decoded.rejected or decoded.message:
        message.partial_success.CopyFrom(
            partial_type(**{rejected_field: decoded.rejected, "error_message": decoded.message})
        )
    if as_json:
        return Response(json_format.MessageToJson(message, indent=None), media_type=JSON)
    return Response(message.SerializeToString(), media_type=PROTOBUF)


def create_app(
    sink: Sink,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    stats: ReceiverStats | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """The receiver app; decoded tables go to `sink` (e.g. `FileWriter.submit`).

    The app remembers each metric series' last cumulative point (see `SeriesMemory`).
    `GET /health` answers `{"status": "ok", ...}` with the counters (and `health()`'s
    fields), for readiness checks.
    """
    counters = stats if stats is not None else ReceiverStats()
    memory = SeriesMemory()

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise _TooLarge
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > max_body_bytes:
                raise _TooLarge
        return bytes(chunks)

    async def export(request: Request, signal: Signal) -> Response:
        counters.requests[signal] += 1
        media = _media_type(request)
        as_json = media == JSON
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if media is None or encoding not in ("gzip", "identity", ""):
            what = (
                f"content type {request.headers.get('content-type', '(none)')!r}"
                if media is None
                else f"content encoding {encoding!r}"
            )
            return _failure(
                415,
                _INVALID_ARGUMENT,
                f"unsupported {what}; send {PROTOBUF} or {JSON}, optionally with "
                "Content-Encoding: gzip",
                as_json=as_json,
            )
        try:
            body = await read_body(request)
            if encoding == "gzip":
                body = await run_in_threadpool(_gunzip, body, max_body_bytes)
            decoded = await run_in_threadpool(
                decode_export, signal, body, json=as_json, memory=memory
            )
        except _TooLarge:
            return _failure(
                413,
                _RESOURCE_EXHAUSTED,
                f"the request body exceeds the limit of {max_body_bytes} bytes (before or "
                "after decompression); send smaller batches",
                as_json=as_json,
            )
        except BadInput as exc:
            return _failure(400, _INVALID_ARGUMENT, str(exc), as_json=as_json)
        if decoded.rejected and not decoded.table.num_rows:
            counters.rejected[signal] += decoded.rejected
            return _failure(
                400, _INVALID_ARGUMENT, f"nothing accepted: {decoded.message}", as_json=as_json
            )
        try:
            sink(TABLE_OF[signal], decoded.table)
        except QueueFull as exc:
            return _failure(
                503, _UNAVAILABLE, f"the store is behind ({exc}); retry later", as_json=as_json
            )
        counters.accepted[signal] += decoded.table.num_rows
        counters.rejected[signal] += decoded.rejected
        return _success(signal, decoded, as_json=as_json)

    def route(signal: Signal) -> Route:
        async def endpoint(request: Request) -> Response:
            response = await export(request, signal)
            counters.statuses[response.status_code] += 1
            return response

        return Route(f"/v1/{signal}", endpoint, methods=["POST"])

    async def health_endpoint(request: Request) -> Response:
        body: dict[str, Any] = {
            "status": "ok",
            "accepted": dict(counters.accepted),
            "rejected": dict(counters.rejected),
            "requests": dict(counters.requests),
        }
        if health is not None:
            body.update(health())
        return JSONResponse(body)

    routes = [route(signal) for signal in ("traces", "logs", "metrics")]
    routes.append(Route("/health", health_endpoint, methods=["GET"]))
    return Starlette(routes=routes)
