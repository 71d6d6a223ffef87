"""`tracehound.otlp.decode`: OTLP export requests (protobuf and OTLP JSON) to canonical tables."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from otlp_requests import (
    T0,
    kv,
    logs_request,
    metrics_request,
    otlp_json,
    resource,
    span,
    span_id,
    trace_id,
    traces_request,
)

from tracehound.errors import BadInput
from tracehound.otlp.decode import Decoded, decode_export, signal_of_json
from tracehound.otlp.metrics import SeriesMemory
from tracehound.tables import SCHEMAS, conform

RES = resource(service_name="checkout", k8s_pod_name="checkout-7f9-abc", k8s_node_name="node-1")


def _three_spans() -> list[Span]:
    return [
        span(1, 1, name="GET /cart", duration=5_000_000, kind=Span.SPAN_KIND_SERVER),
        span(
            1,
            2,
            1,
            name="SELECT",
            start=T0 + 1_000,
            duration=2_000_000,
            kind=Span.SPAN_KIND_CLIENT,
            code=Status.STATUS_CODE_ERROR,
            **{"db.system": "postgresql", "retries": 2},
        ),
        span(1, 3, 1, name="render", start=T0 + 3_000_000, kind=Span.SPAN_KIND_INTERNAL),
    ]


def _rows(decoded: Decoded) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = decoded.table.to_pylist()
    return rows


def test_spans_from_protobuf_are_canonical_rows() -> None:
    body = traces_request(_three_spans(), RES).SerializeToString()
    decoded = decode_export("traces", body, json=False)
    assert decoded.rejected == 0
    assert decoded.message == ""
    assert decoded.table.schema == SCHEMAS["spans"]
    rows = _rows(decoded)
    tid = "00000000000000000000000000000001"
    assert [(r["span_id"], r["parent_span_id"]) for r in rows] == [
        ("0000000000000001", None),
        ("0000000000000002", "0000000000000001"),
        ("0000000000000003", "0000000000000001"),
    ]
    assert {r["trace_id"] for r in rows} == {tid}
    assert [r["kind"] for r in rows] == ["server", "client", "internal"]
    assert [r["status"] for r in rows] == ["unset", "error", "unset"]
    assert [r["start_ns"] for r in rows] == [T0, T0 + 1_000, T0 + 3_000_000]
    assert [r["duration_ns"] for r in rows] == [5_000_000, 2_000_000, 1_000_000]
    assert {(r["service"], r["instance"]) for r in rows} == {("checkout", "checkout-7f9-abc")}
    assert [r["operation"] for r in rows] == ["GET /cart", "SELECT", "render"]
    assert rows[0]["attributes"] is None
    assert json.loads(str(rows[1]["attributes"])) == {"db.system": "postgresql", "retries": 2}
    # The table passes the same validation as any loaded file.
    assert conform(decoded.table, "spans", "otlp").equals(decoded.table)


@pytest.mark.parametrize("hex_ids", [True, False], ids=["hex-ids", "base64-ids"])
def test_otlp_json_decodes_like_protobuf(hex_ids: bool) -> None:
    request = traces_request(_three_spans(), RES)
    body = otlp_json(request, hex_ids=hex_ids)
    assert b'"startTimeUnixNano": "' in body  # int64 written as strings, as OTLP JSON does
    if hex_ids:
        assert b'"traceId": "00000000000000000000000000000001"' in body
    from_json = decode_export("traces", body, json=True)
    from_proto = decode_export("traces", request.SerializeToString(), json=False)
    assert from_json.table.equals(from_proto.table)
    assert from_json.rejected == 0


def test_json_accepts_int64_as_numbers_and_uppercase_hex() -> None:
    obj = json.loads(otlp_json(traces_request(_three_spans()[:1], RES)))
    item = obj["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    item["startTimeUnixNano"] = int(item["startTimeUnixNano"])
    item["traceId"] = item["traceId"].upper().replace("1", "A")
    decoded = decode_export("traces", json.dumps(obj).encode(), json=True)
    assert _rows(decoded)[0]["trace_id"] == "0000000000000000000000000000000a"
    assert _rows(decoded)[0]["start_ns"] == T0


def test_invalid_spans_are_rejected_and_counted() -> None:
    spans = [
        *_three_spans(),
        span(0, 4),  # no trace id
        Span(trace_id=trace_id(1), span_id=bytes(8), name="zero", start_time_unix_nano=T0),
        span(1, 6, duration=-5),  # ends before it starts
        Span(trace_id=trace_id(1), span_id=span_id(7), parent_span_id=b"\x01\x02", name="p"),
    ]
    decoded = decode_export("traces", traces_request(spans, RES).SerializeToString(), json=False)
    assert decoded.rejected == 4
    assert decoded.table.num_rows == 3
    assert "rejected 4 spans" in decoded.message
    assert "1 without a valid trace id" in decoded.message
    assert "1 ending before they start" in decoded.message


def test_all_zero_parent_is_a_root() -> None:
    item = span(1, 1)
    item.parent_span_id = bytes(8)
    rows = _rows(decode_export("traces", traces_request([item]).SerializeToString(), json=False))
    assert rows[0]["parent_span_id"] is None


@pytest.mark.parametrize(
    ("attrs", "instance", "node"),
    [
        (
            {"service.instance.id": "i-1", "k8s.pod.name": "pod", "host.name": "h", "x": 1},
            "i-1",
            "h",
        ),
        ({"k8s.pod.name": "pod", "host.name": "h", "k8s.node.name": "n"}, "pod", "n"),
        ({"host.name": "h", "process.pid": 42}, "h:42", "h"),
        ({"host.name": "h"}, "h", "h"),
        ({}, "svc", ""),
    ],
)
def test_instance_and_node_from_resource(
    attrs: dict[str, object], instance: str, node: str
) -> None:
    res = resource(service_name="svc")
    res.attributes.extend(kv(k, v) for k, v in attrs.items())
    body = metrics_request([_gauge("cpu", 0.5)], res).SerializeToString()
    rows = _rows(decode_export("metrics", body, json=False))
    assert [(r["service"], r["instance"], r["node"]) for r in rows] == [("svc", instance, node)]


def test_missing_service_name_is_unknown_service() -> None:
    body = traces_request([span(1, 1)], resource()).SerializeToString()
    rows = _rows(decode_export("traces", body, json=False))
    assert (rows[0]["service"], rows[0]["instance"]) == ("unknown_service", "unknown_service")


def test_exception_events_and_status_message_go_into_attributes() -> None:
    item = span(1, 1, code=Status.STATUS_CODE_ERROR, **{"http.route": "/pay"})
    item.status.message = "boom"
    event = item.events.add(name="exception", time_unix_nano=T0 + 10)
    event.attributes.extend([kv("exception.type", "ValueError"), kv("exception.message", "bad")])
    item.events.add(name="retry", time_unix_nano=T0 + 20)
    rows = _rows(decode_export("traces", traces_request([item]).SerializeToString(), json=False))
    assert json.loads(str(rows[0]["attributes"])) == {
        "http.route": "/pay",
        "otel.status_description": "boom",
        "exceptions": [
            {"time_ns": T0 + 10, "exception.type": "ValueError", "exception.message": "bad"}
        ],
    }


def _log(**fields: object) -> LogRecord:
    return LogRecord(**fields)  # type: ignore[arg-type]


def test_logs_map_level_body_and_ids() -> None:
    records = [
        _log(
            time_unix_nano=T0,
            severity_text="WARNING",
            severity_number=13,
            body=AnyValue(string_value="slow query"),
            trace_id=trace_id(9),
            span_id=span_id(3),
        ),
        _log(observed_time_unix_nano=T0 + 1, severity_number=17, body=AnyValue(int_value=5)),
        _log(time_unix_nano=T0 + 2, body=AnyValue(string_value="hello")),
        _log(
            time_unix_nano=T0 + 3,
            severity_number=9,
            body=AnyValue(string_value="failed"),
            attributes=[kv("exception.type", "KeyError"), kv("exception.message", "'x'")],
            trace_id=b"\x01\x02\x03",
        ),
        _log(severity_text="INFO", body=AnyValue(string_value="no time")),
    ]
    decoded = decode_export("logs", logs_request(records, RES).SerializeToString(), json=False)
    assert decoded.table.schema == SCHEMAS["logs"]
    assert decoded.rejected == 1
    assert "kept 1 log records with changes: 1 with an invalid trace id dropped" in decoded.message
    rows = _rows(decoded)
    assert [(r["ts_ns"], r["level"], r["message"]) for r in rows] == [
        (T0, "WARNING", "slow query"),
        (T0 + 1, "ERROR", "5"),
        (T0 + 2, "UNSPECIFIED", "hello"),
        (T0 + 3, "INFO", "failed\nKeyError: 'x'"),
    ]
    assert (rows[0]["trace_id"], rows[0]["span_id"]) == (
        "00000000000000000000000000000009",
        "0000000000000003",
    )
    assert [r["trace_id"] for r in rows[1:]] == [None, None, None]
    assert {(r["service"], r["instance"]) for r in rows} == {("checkout", "checkout-7f9-abc")}


def test_logs_from_otlp_json_with_hex_ids() -> None:
    record = _log(
        time_unix_nano=T0,
        severity_text="ERROR",
        body=AnyValue(string_value="x"),
        trace_id=trace_id(0xABC),
        span_id=span_id(0xDEF),
    )
    request = logs_request([record])
    body = otlp_json(request)
    assert b'"traceId": "00000000000000000000000000000abc"' in body
    decoded = decode_export("logs", body, json=True)
    assert decoded.table.equals(
        decode_export("logs", request.SerializeToString(), json=False).table
    )
    assert _rows(decoded)[0]["span_id"] == "0000000000000def"


def _gauge(name: str, value: float, **attrs: object) -> m.Metric:
    point = m.NumberDataPoint(time_unix_nano=T0, as_double=value)
    point.attributes.extend(kv(k, v) for k, v in attrs.items())
    return m.Metric(name=name, gauge=m.Gauge(data_points=[point]))


def test_gauges_and_sums_fold_attributes_into_the_name() -> None:
    counter = m.Metric(
        name="http.server.requests",
        sum=m.Sum(
            data_points=[
                m.NumberDataPoint(
                    time_unix_nano=T0 + 5,
                    as_int=12,
                    attributes=[kv("http.route", "/x"), kv("http.request.method", "GET")],
                ),
                m.NumberDataPoint(
                    time_unix_nano=T0 + 5,
                    as_int=3,
                    attributes=[kv("http.method", "GET"), kv("rpc.method", "Pay")],
                ),
            ],
            is_monotonic=True,
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
        ),
    )
    body = metrics_request([_gauge("cpu", 0.25), counter], RES).SerializeToString()
    decoded = decode_export("metrics", body, json=False)
    assert decoded.table.schema == SCHEMAS["metrics"]
    assert [(r["ts_ns"], r["name"], r["value"]) for r in _rows(decoded)] == [
        (T0, "cpu", 0.25),
        (T0 + 5, "http.server.requests{method=GET,route=/x}", 12.0),
        (T0 + 5, "http.server.requests{http.method=GET,rpc.method=Pay}", 3.0),
    ]
    assert {(r["instance"], r["node"]) for r in _rows(decoded)} == {("checkout-7f9-abc", "node-1")}


def test_histograms_become_quantiles_and_count() -> None:
    hist = m.Metric(
        name="latency",
        histogram=m.Histogram(
            data_points=[
                m.HistogramDataPoint(
                    time_unix_nano=T0,
                    count=20,
                    sum=600.0,
                    explicit_bounds=[10.0, 20.0, 50.0],
                    bucket_counts=[0, 10, 10, 0],
                ),
                m.HistogramDataPoint(time_unix_nano=T0 + 1, count=0, bucket_counts=[]),
            ]
        ),
    )
    exp = m.Metric(
        name="size",
        exponential_histogram=m.ExponentialHistogram(
            data_points=[
                m.ExponentialHistogramDataPoint(
                    time_unix_nano=T0,
                    count=2,
                    scale=0,
                    positive=m.ExponentialHistogramDataPoint.Buckets(
                        offset=0, bucket_counts=[1, 1]
                    ),
                )
            ]
        ),
    )
    summary = m.Metric(
        name="gc",
        summary=m.Summary(
            data_points=[
                m.SummaryDataPoint(
                    time_unix_nano=T0,
                    count=7,
                    quantile_values=[
                        m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=1.5),
                        m.SummaryDataPoint.ValueAtQuantile(quantile=0.999, value=9.0),
                    ],
                )
            ]
        ),
    )
    body = metrics_request([hist, exp, summary]).SerializeToString()
    rows = {
        (r["ts_ns"], r["name"]): r["value"]
        for r in _rows(decode_export("metrics", body, json=False))
    }
    assert rows == {
        (T0, "latency_p50"): pytest.approx(20.0),
        (T0, "latency_p90"): pytest.approx(44.0),
        (T0, "latency_p99"): pytest.approx(49.4),
        (T0, "latency_count"): 20.0,
        (T0 + 1, "latency_count"): 0.0,
        (T0, "size_p50"): pytest.approx(2.0),
        (T0, "size_p90"): pytest.approx(3.6),
        (T0, "size_p99"): pytest.approx(3.96),
        (T0, "size_count"): 2.0,
        (T0, "gc_p50"): 1.5,
        (T0, "gc_p99.9"): 9.0,
        (T0, "gc_count"): 7.0,
    }


def test_histogram_quantiles_stay_inside_min_and_max() -> None:
    point = m.HistogramDataPoint(
        time_unix_nano=T0, count=4, explicit_bounds=[100.0], bucket_counts=[0, 4], min=150, max=170
    )
    metric = m.Metric(name="h", histogram=m.Histogram(data_points=[point]))
    rows = _rows(
        decode_export("metrics", metrics_request([metric]).SerializeToString(), json=False)
    )
    values = {r["name"]: r["value"] for r in rows}
    # The overflow bucket is (150, 170]: clipped to the point's min and max.
    assert values["h_p50"] == pytest.approx(160.0)
    assert values["h_p99"] == pytest.approx(169.8)


def test_metric_points_without_time_are_rejected_and_gaps_skipped() -> None:
    metric = m.Metric(
        name="cpu",
        gauge=m.Gauge(
            data_points=[
                m.NumberDataPoint(time_unix_nano=T0, as_double=1.0),
                m.NumberDataPoint(as_double=2.0),
                m.NumberDataPoint(time_unix_nano=T0, flags=1),
                m.NumberDataPoint(time_unix_nano=T0 + 1),
            ]
        ),
    )
    decoded = decode_export("metrics", metrics_request([metric]).SerializeToString(), json=False)
    assert decoded.rejected == 2
    assert [r["value"] for r in _rows(decoded)] == [1.0]
    assert decoded.message == "rejected 2 data points: 1 without a time, 1 without a value."


def test_empty_body_is_an_empty_request() -> None:
    for signal, table in (("traces", "spans"), ("logs", "logs"), ("metrics", "metrics")):
        for as_json in (False, True):
            decoded = decode_export(signal, b"", json=as_json)  # type: ignore[arg-type]
            assert decoded.table.num_rows == 0
            assert decoded.table.schema == SCHEMAS[table]  # type: ignore[index]
            assert decoded.rejected == 0


@pytest.mark.parametrize(
    ("body", "as_json", "problem"),
    [
        (traces_request(_three_spans()).SerializeToString()[:-7], False, "not a valid protobuf"),
        (b"\xff\xff\xff", False, "not a valid protobuf"),
        (b'{"resourceSpans": [', True, "not valid JSON"),
        (b"[1, 2]", True, "not an object"),
        (b'{"resourceSpans": [{"scopeSpans": 5}]}', True, "not a valid OTLP traces request"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "x"}]}]}]}',
            True,
            "not a valid OTLP traces request",
        ),
        (b'{"resourceLogs": []}', True, "this is an OTLP logs request"),
    ],
)
def test_malformed_bodies_raise_bad_input(body: bytes, as_json: bool, problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        decode_export("traces", body, json=as_json)


def test_signal_of_json() -> None:
    assert signal_of_json({"resourceSpans": []}) == "traces"
    assert signal_of_json({"resourceLogs": []}) == "logs"
    assert signal_of_json({"resourceMetrics": []}) == "metrics"
    with pytest.raises(BadInput, match="not an OTLP JSON export request"):
        signal_of_json({"spans": []})
    with pytest.raises(BadInput):
        signal_of_json({"resourceSpans": [], "resourceLogs": []})


def test_decoded_is_frozen() -> None:
    decoded = decode_export("traces", b"", json=False)
    with pytest.raises(AttributeError):
        decoded.rejected = 3  # type: ignore[misc]


def _cumulative_histogram(ts: int, start: int, counts: list[int], **attrs: object) -> m.Metric:
    point = m.HistogramDataPoint(
        start_time_unix_nano=start,
        time_unix_nano=ts,
        count=sum(counts),
        explicit_bounds=[10.0, 100.0],
        bucket_counts=counts,
    )
    point.attributes.extend(kv(k, v) for k, v in attrs.items())
    return m.Metric(
        name="latency",
        histogram=m.Histogram(
            data_points=[point], aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE
        ),
    )


def _values(body: bytes, memory: SeriesMemory | None) -> dict[str, float]:
    decoded = decode_export("metrics", body, json=False, memory=memory)
    return {str(r["name"]): float(r["value"]) for r in _rows(decoded)}  # type: ignore[arg-type]


def test_series_memory_turns_cumulative_histograms_into_intervals() -> None:
    memory = SeriesMemory()
    start = T0 - 10**9
    first = metrics_request([_cumulative_histogram(T0, start, [100, 0, 0], route="/x")])
    # 10 s later: 10 more observations, all in (10, 100].
    second = metrics_request([_cumulative_histogram(T0 + 10**10, start, [100, 10, 0], route="/x")])
    assert _values(first.SerializeToString(), memory) == {
        "latency_p50{route=/x}": pytest.approx(5.0),
        "latency_p90{route=/x}": pytest.approx(9.0),
        "latency_p99{route=/x}": pytest.approx(9.9),
        "latency_count{route=/x}": 100.0,
    }
    assert _values(second.SerializeToString(), memory) == {
        "latency_p50{route=/x}": pytest.approx(55.0),
        "latency_p90{route=/x}": pytest.approx(91.0),
        "latency_p99{route=/x}": pytest.approx(99.1),
        "latency_count{route=/x}": 10.0,
    }
    # Without memory the second point describes everything since the start.
    assert _values(second.SerializeToString(), None)["latency_count{route=/x}"] == 110.0
    # A restart (new start time) stands alone.
    restart = metrics_request([_cumulative_histogram(T0 + 2 * 10**10, T0 + 10**10, [0, 0, 3])])
    assert _values(restart.SerializeToString(), memory)["latency_count"] == 3.0


def test_series_memory_gives_counter_rates() -> None:
    memory = SeriesMemory()

    def counter(ts: int, value: int) -> bytes:
        point = m.NumberDataPoint(start_time_unix_nano=T0 - 1, time_unix_nano=ts, as_int=value)
        point.attributes.append(kv("http.route", "/x"))
        data = m.Sum(
            data_points=[point],
            is_monotonic=True,
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
        )
        return metrics_request([m.Metric(name="requests", sum=data)]).SerializeToString()

    assert _values(counter(T0, 100), memory) == {"requests{route=/x}": 100.0}
    assert _values(counter(T0 + 5 * 10**9, 150), memory) == {
        "requests{route=/x}": 150.0,
        "requests_rate{route=/x}": 10.0,
    }
    # An older point (out of order) gets no rate and does not disturb the memory.
    assert _values(counter(T0 + 10**9, 120), memory) == {"requests{route=/x}": 120.0}
    assert _values(counter(T0 + 10 * 10**9, 250), memory)["requests_rate{route=/x}"] == 20.0
