"""Builders of OTLP export requests with the published protobuf messages (for tests)."""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

T0 = 1_700_000_000_000_000_000


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def resource(**attrs: Any) -> Resource:
    return Resource(attributes=[kv(k.replace("_", "."), v) for k, v in attrs.items()])


def trace_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def span(
    trace: int,
    sid: int,
    parent: int | None = None,
    *,
    name: str = "GET /x",
    start: int = T0,
    duration: int = 1_000_000,
    kind: int = Span.SPAN_KIND_SERVER,
    code: int = Status.STATUS_CODE_UNSET,
    **attrs: Any,
) -> Span:
    return Span(
        trace_id=trace_id(trace) if trace else b"",
        span_id=span_id(sid),
        parent_span_id=span_id(parent) if parent else b"",
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration,
        status=Status(code=code),
        attributes=[kv(k, v) for k, v in attrs.items()],
    )


def traces_request(spans: list[Span], res: Resource | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.CopyFrom(res if res is not None else resource(service_name="checkout"))
    rs.scope_spans.add().spans.extend(spans)
    return req


def logs_request(records: list[LogRecord], res: Resource | None = None) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.CopyFrom(res if res is not None else resource(service_name="checkout"))
    rl.scope_logs.add().log_records.extend(records)
    return req


def metrics_request(
    metrics: list[metrics_pb2.Metric], res: Resource | None = None
) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.CopyFrom(res if res is not None else resource(service_name="checkout"))
    rm.scope_metrics.add().metrics.extend(metrics)
    return req


def _hexify(node: Any) -> None:
    """Rewrite base64 ids (protobuf JSON mapping) as hex (OTLP JSON)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hexify(value)
    elif isinstance(node, list):
        for item in node:
            _hexify(item)


def otlp_json(message: Any, *, hex_ids: bool = True) -> bytes:
    """OTLP JSON of a message: MessageToJson (integer enums), ids hex as OTLP says."""
    obj = json.loads(json_format.MessageToJson(message, use_integers_for_enums=True))
    if hex_ids:
        _hexify(obj)
    return json.dumps(obj).encode()
