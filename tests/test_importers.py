"""File importers: Jaeger, Zipkin, Prometheus, OTLP JSON and RCAEval, row by row."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from cli_helpers import assert_bad_input, run_cli
from google.protobuf import json_format
from layouts_rcaeval import INJECT_ROW, START_S, write_tiny_rcaeval
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracehound.bundle import read_bundle
from tracehound.datasets import open_dataset
from tracehound.errors import BadInput
from tracehound.model import datetime_from_ns

DATA = Path(__file__).parent / "data" / "exports"
S = 1_000_000_000
T0 = 1_700_000_000 * S


def _rows(table: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "attributes"} for row in table.to_pylist()]


# -- Jaeger ------------------------------------------------------------------------------


def test_jaeger_ui_download_rows() -> None:
    dataset = open_dataset(DATA / "jaeger-checkout.json")
    assert dataset.kind == "jaeger"
    assert [i.id for i in dataset.incidents()] == ["jaeger-checkout"]
    data = dataset.load("jaeger-checkout")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    frontend = ("frontend", "frontend-7d9f-abcde")
    assert data.spans is not None and data.logs is not None and data.metrics is None
    assert [
        (
            r["span_id"],
            r["parent_span_id"],
            (r["service"], r["instance"]),
            r["operation"],
            r["kind"],
            r["start_ns"],
            r["duration_ns"],
            r["status"],
        )
        for r in _rows(data.spans)
    ] == [
        ("00f067aa0ba902b7", None, frontend, "GET /checkout", "server", T0, 250_000_000, "error"),
        (
            "53995c3f42cd8ad8",
            "00f067aa0ba902b7",
            frontend,
            "charge",
            "client",
            T0 + 10_000_000,
            200_000_000,
            "error",
        ),
        (
            "a1b2c3d4e5f60718",
            "53995c3f42cd8ad8",
            ("payment", "payment-5c6b-x2x2x"),
            "Charge",
            "server",
            T0 + 20_000_000,
            180_000_000,
            "error",
        ),
        (
            "0000000000000abc",
            "00f067aa0ba902b7",
            frontend,
            "audit",
            "unset",
            T0 + 240_000_000,
            5_000_000,
            "ok",
        ),
    ]
    assert set(data.spans.column("trace_id").to_pylist()) == {trace}
    assert json.loads(data.spans.column("attributes")[0].as_py()) == {
        "http.status_code": 500,
        "span.kind": "server",
    }
    assert _rows(data.logs) == [
        {
            "ts_ns": T0 + 150_000_000,
            "service": "frontend",
            "instance": "frontend-7d9f-abcde",
            "level": "ERROR",
            "message": "card declined: timeout",
            "trace_id": trace,
            "span_id": "53995c3f42cd8ad8",
        },
        {
            "ts_ns": T0 + 190_000_000,
            "service": "payment",
            "instance": "payment-5c6b-x2x2x",
            "level": "WARN",
            "message": "retrying gateway",
            "trace_id": trace,
            "span_id": "a1b2c3d4e5f60718",
        },
    ]
    # Four spans in one 10 s bucket: nothing stands out, the window is the whole trace.
    assert data.incident.window.start_ns == T0
    assert data.incident.window.end_ns == T0 + 250_001_000
    assert data.incident.normal_window is None
    assert data.incident.labels is None


def test_jaeger_api_v2_rows() -> None:
    data = open_dataset(DATA / "jaeger-apiv2.json").load("jaeger-apiv2")
    assert data.spans is not None
    assert _rows(data.spans) == [
        {
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "parent_span_id": None,
            "service": "cart",
            "instance": "cart-1",
            "operation": "GET /cart",
            "kind": "server",
            "start_ns": T0 + 1_500,
            "duration_ns": 2_500_000,
            "status": "error",
        },
        {
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "53995c3f42cd8ad8",
            "parent_span_id": "00f067aa0ba902b7",
            "service": "cart",
            "instance": "cart-1",
            "operation": "redis GET",
            "kind": "client",
            "start_ns": T0 + 1_000_000,
            "duration_ns": 1_000_000,
            "status": "unset",
        },
    ]


# -- Zipkin ------------------------------------------------------------------------------


def test_zipkin_v2_rows_with_a_shared_span() -> None:
    dataset = open_dataset(DATA / "zipkin-orders.json")
    assert dataset.kind == "zipkin"
    data = dataset.load("zipkin-orders")
    base = 1_700_000_100 * S
    assert data.spans is not None and data.logs is not None
    assert [
        (
            r["span_id"],
            r["parent_span_id"],
            r["service"],
            r["instance"],
            r["kind"],
            r["start_ns"] - base,
            r["duration_ns"],
            r["status"],
        )
        for r in _rows(data.spans)
    ] == [
        ("6b221d5bc9e6496c", None, "orders", "10.0.1.7:8080", "server", 0, 120_000_000, "error"),
        (
            "352bff9a74ca9ad2",
            "6b221d5bc9e6496c",
            "orders",
            "10.0.1.7:8080",
            "client",
            5_000_000,
            100_000_000,
            "error",
        ),
        (
            "352bff9a74ca9ad2-shared",
            "352bff9a74ca9ad2",
            "inventory",
            "inventory-0",
            "server",
            10_000_000,
            90_000_000,
            "unset",
        ),
        (
            "c7ae1c6b9a2d4e01",
            "352bff9a74ca9ad2-shared",
            "inventory",
            "10.0.2.9",
            "client",
            20_000_000,
            0,
            "unset",
        ),
    ]
    assert json.loads(data.spans.column("attributes")[1].as_py()) == {
        "error": "timeout",
        "peer.service": "inventory",
    }
    assert [(r["level"], r["message"], r["span_id"]) for r in _rows(data.logs)] == [
        ("ERROR", "error: upstream unavailable", "6b221d5bc9e6496c"),
        ("INFO", "cache miss", "352bff9a74ca9ad2-shared"),
    ]


# -- Prometheus --------------------------------------------------------------------------


def test_prometheus_matrix_rows_and_counter_rates() -> None:
    dataset = open_dataset(DATA / "prometheus-cpu.json")
    assert dataset.kind == "prometheus"
    data = dataset.load("prometheus-cpu")
    assert data.metrics is not None and data.spans is None
    rows = [
        (r["ts_ns"] - T0, r["service"], r["instance"], r["node"], r["name"], r["value"])
        for r in data.metrics.to_pylist()
    ]
    cpu = "container_cpu_usage_seconds_total"
    memory = "container_memory_working_set_bytes"
    # The counter: 100 -> 101.5 -> 104.5 over 15 s steps, then a reset to 1.5.
    assert rows[:5] == [
        (15 * S, "payment", "payment-5c6b-x2x2x", "node-a", cpu, 0.1),
        (30 * S, "payment", "payment-5c6b-x2x2x", "node-a", cpu, 0.2),
        (45 * S, "payment", "payment-5c6b-x2x2x", "node-a", cpu, 0.1),
        (0, "frontend", "frontend-7d9f-abcde", "node-b", memory, 2048.0),
        (15 * S, "frontend", "frontend-7d9f-abcde", "node-b", memory, 4096.0),
    ]
    assert rows[5][:5] == (500_000_000, "orders", "10.0.1.7:9090", "", "prometheus-cpu")
    assert rows[5][5] == 0.25
    assert rows[6][0] == 15_500_000_000 and rows[6][5] != rows[6][5]  # NaN kept


def test_prometheus_failed_query_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "q.json"
    bad.write_text(
        json.dumps(
            {
                "status": "error",
                "errorType": "bad_data",
                "error": "parse error",
                "data": {"resultType": "matrix", "result": []},
            }
        )
    )
    with pytest.raises(BadInput, match="failed query"):
        open_dataset(bad).incidents()


# -- OTLP JSON (the collector's file exporter) --------------------------------------------

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def _trace_request(span_id: str, parent: str, start_ns: int, error: bool) -> str:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="checkout"))
    )
    resource.resource.attributes.append(
        KeyValue(key="k8s.pod.name", value=AnyValue(string_value="checkout-0"))
    )
    span = resource.scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex(TRACE_ID)
    span.span_id = bytes.fromhex(span_id)
    if parent:
        span.parent_span_id = bytes.fromhex(parent)
    span.name = "PlaceOrder"
    span.kind = Span.SPAN_KIND_SERVER
    span.start_time_unix_nano = start_ns
    span.end_time_unix_nano = start_ns + 300_000_000
    span.status.code = Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK
    return json_format.MessageToJson(request, indent=None)


def _logs_request() -> str:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="checkout"))
    )
    record = resource.scope_logs.add().log_records.add()
    record.time_unix_nano = T0 + 100_000_000
    record.severity_text = "ERROR"
    record.body.string_value = "payment failed"
    record.trace_id = bytes.fromhex(TRACE_ID)
    record.span_id = bytes.fromhex("b7ad6b7169203331")
    return json_format.MessageToJson(request, indent=None)


def _to_hex_ids(line: str) -> str:
    """What the collector's file exporter writes: OTLP/JSON's hex ids, not base64."""

    def convert(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64decode(v).hex()
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str)
                else convert(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [convert(v) for v in node]
        return node

    return json.dumps(convert(json.loads(line)))


@pytest.mark.parametrize("ids", ["hex", "base64"])
def test_otlp_file_exporter_lines(tmp_path: Path, ids: str) -> None:
    lines = [
        _trace_request("b7ad6b7169203331", "", T0, error=True),
        _trace_request("00000000000000a1", "b7ad6b7169203331", T0 + 50_000_000, error=False),
        _logs_request(),
    ]
    if ids == "hex":
        lines = [_to_hex_ids(line) for line in lines]
        assert f'"traceId": "{TRACE_ID}"' in lines[0]
    file = tmp_path / "otel-export.json"
    file.write_text("\n".join(lines) + "\n")
    dataset = open_dataset(file)
    assert dataset.kind == "otlp"
    data = dataset.load("otel-export")
    assert data.spans is not None and data.logs is not None
    assert [
        (
            r["trace_id"],
            r["span_id"],
            r["parent_span_id"],
            r["service"],
            r["instance"],
            r["kind"],
            r["start_ns"],
            r["duration_ns"],
            r["status"],
        )
        for r in _rows(data.spans)
    ] == [
        (
            TRACE_ID,
            "b7ad6b7169203331",
            None,
            "checkout",
            "checkout-0",
            "server",
            T0,
            300_000_000,
            "error",
        ),
        (
            TRACE_ID,
            "00000000000000a1",
            "b7ad6b7169203331",
            "checkout",
            "checkout-0",
            "server",
            T0 + 50_000_000,
            300_000_000,
            "ok",
        ),
    ]
    assert [
        (r["ts_ns"], r["service"], r["level"], r["message"], r["trace_id"], r["span_id"])
        for r in data.logs.to_pylist()
    ] == [(T0 + 100_000_000, "checkout", "ERROR", "payment failed", TRACE_ID, "b7ad6b7169203331")]


# -- windows from the data, and mixed directories ----------------------------------------


def _jaeger_with_burst(path: Path) -> None:
    """Two hours of one request every 2 s; every request fails in minutes 100 to 109."""
    spans = []
    for i in range(3600):
        start_us = 1_700_000_000_000_000 + i * 2_000_000
        minute = i * 2 // 60
        tags = [{"key": "error", "type": "bool", "value": True}] if 100 <= minute < 110 else []
        spans.append(
            {
                "traceID": f"{i:032x}",
                "spanID": f"{i:016x}",
                "operationName": "GET /",
                "references": [],
                "startTime": start_us,
                "duration": 10_000,
                "tags": tags,
                "logs": [],
                "processID": "p1",
            }
        )
    document = {
        "data": [
            {
                "traceID": "0" * 32,
                "spans": spans,
                "processes": {"p1": {"serviceName": "web", "tags": []}},
            }
        ]
    }
    path.write_text(json.dumps(document))


def test_window_found_in_an_export(tmp_path: Path) -> None:
    _jaeger_with_burst(tmp_path / "burst.json")
    incident = open_dataset(tmp_path / "burst.json").incidents()[0]
    assert incident.id == "burst"
    assert incident.window.start_ns == T0 + 100 * 60 * S
    assert incident.window.end_ns == T0 + 110 * 60 * S
    assert incident.normal_window is not None
    assert incident.normal_window.start_ns == T0 + 90 * 60 * S
    assert incident.normal_window.end_ns == T0 + 100 * 60 * S


def test_directory_combines_traces_and_metrics(tmp_path: Path) -> None:
    folder = tmp_path / "incident-7"
    folder.mkdir()
    shutil.copy(DATA / "jaeger-checkout.json", folder)
    shutil.copy(DATA / "prometheus-cpu.json", folder)
    (folder / "notes.txt").write_text("not telemetry")
    dataset = open_dataset(folder)
    assert dataset.kind == "exports"
    assert dataset.modalities() == ["traces", "logs", "metrics"]
    data = dataset.load("incident-7")
    assert (data.spans.num_rows, data.logs.num_rows, data.metrics.num_rows) == (4, 2, 7)  # type: ignore[union-attr]
    assert data.incident.attributes["source"] == "jaeger, prometheus"


def test_unreadable_export_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "traces.json"
    bad.write_text('{"data": [{"traceID": "ab", "spans": [{"spanID": 1}]')
    result = run_cli("investigate", str(bad))
    assert_bad_input(result, str(bad), "not valid JSON")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    assert_bad_input(run_cli("investigate", str(other)), "not a telemetry file")


# -- RCAEval -----------------------------------------------------------------------------


def test_rcaeval_cases_labels_and_windows(tmp_path: Path) -> None:
    dataset = open_dataset(write_tiny_rcaeval(tmp_path / "re"))
    assert dataset.kind == "rcaeval"
    incidents = dataset.incidents()
    assert [i.id for i in incidents] == [
        "rcaeval-toy-cart_cpu-1",
        "rcaeval-toy-cart_cpu-2",
        "rcaeval-toy-stock_mem-1",
    ]
    inject = (START_S + INJECT_ROW) * S
    first = incidents[0]
    assert first.system == "toy"
    assert first.labels is not None
    assert (first.labels.service, first.labels.fault_type, first.labels.detail) == (
        "cart",
        "cpu",
        "cpu",
    )
    assert first.labels.fault_start == datetime_from_ns(inject)
    assert incidents[2].labels.fault_type == "memory"  # type: ignore[union-attr]
    assert (first.window.start_ns, first.window.end_ns) == (inject, inject + 600 * S)
    assert first.normal_window is not None
    assert (first.normal_window.start_ns, first.normal_window.end_ns) == (inject - 600 * S, inject)
    # A case folder alone is a dataset of one.
    alone = open_dataset(tmp_path / "re" / "toy" / "stock_mem" / "1")
    assert [i.id for i in alone.incidents()] == ["rcaeval-stock_mem-1"]


def test_rcaeval_metrics_and_counter_rates(tmp_path: Path) -> None:
    dataset = open_dataset(write_tiny_rcaeval(tmp_path / "re"))
    metrics = dataset.load("rcaeval-toy-cart_cpu-1").metrics
    assert metrics is not None
    # 3 services x (3 gauges x 1200 rows + 1 counter x 1199 rates)
    assert metrics.num_rows == 3 * (3 * 1200 + 1199)
    cart = metrics.filter(pc.equal(metrics["service"], "cart"))
    gauge = cart.filter(pc.equal(cart["name"], "cpu")).column("value").to_numpy()
    counter = cart.filter(pc.equal(cart["name"], "container-cpu-usage-seconds-total"))
    rates = counter.column("value").to_numpy()
    assert counter.column("ts_ns")[0].as_py() == (START_S + 1) * S
    # The counter accumulates cpu/100 each second, so its rate is the next cpu sample / 100.
    assert abs(rates - gauge[1:] / 100).max() < 1e-5
    assert set(cart.column("instance").to_pylist()) == {"cart"}


def test_rcaeval_logs_without_a_level_column_take_the_level_their_lines_state(
    tmp_path: Path,
) -> None:
    root = write_tiny_rcaeval(tmp_path / "re")
    case = root / "toy" / "cart_cpu" / "1"
    lines = [
        '"{""severity"":""error"",""message"":""charge failed""}"',
        "2024-01-23 10:00:00.123  WARN 1 --- [main] c.s.Cart : retrying",
        "level=error msg=boom",
        "GetCart called",
    ]
    (case / "logs.csv").write_text(
        "time,timestamp,container_name,message\n"
        + "".join(
            f"{START_S + 700 + k},{(START_S + 700 + k) * S},cart,{line}\n"
            for k, line in enumerate(lines)
        )
    )
    data = open_dataset(root).load("rcaeval-toy-cart_cpu-1")
    assert data.logs is not None
    assert [(r["level"], r["message"]) for r in _rows(data.logs)] == [
        ("ERROR", "charge failed"),
        ("WARN", "2024-01-23 10:00:00.123  WARN 1 --- [main] c.s.Cart : retrying"),
        ("ERROR", "level=error msg=boom"),
        ("INFO", "GetCart called"),
    ]


def test_rcaeval_traces_and_logs(tmp_path: Path) -> None:
    root = write_tiny_rcaeval(tmp_path / "re")
    case = root / "toy" / "cart_cpu" / "1"
    start_us = (START_S + 700) * 1_000_000
    (case / "traces.csv").write_text(
        "time,traceID,spanID,serviceName,methodName,operationName,startTimeMillis,startTime,"
        "duration,statusCode,parentSpanID\n"
        f"1,t1,s1,api,GET,/cart,{start_us // 1000},{start_us},5000,200,\n"
        f"1,t1,s2,cart,GET,GetCart,{start_us // 1000},{start_us + 100},4000,2,s1\n"
        f"1,t1,s3,cart,GET,Redis,{start_us // 1000},{start_us + 200},100,,s2\n"
        f"1,t2,s4,api,GET,/cart,{start_us // 1000},{start_us + 300},100,503,\n"
    )
    (case / "logs.csv").write_text(
        "time,timestamp,container_name,message,level,req_path,error\n"
        f"{START_S + 700},{(START_S + 700) * S},cart,boom,error,/cart,1\n"
        f"{START_S + 701},{(START_S + 701) * S},api,hello,,/,\n"
    )
    dataset = open_dataset(root)
    assert dataset.modalities() == ["traces", "logs", "metrics"]
    data = dataset.load("rcaeval-toy-cart_cpu-1")
    assert data.spans is not None and data.logs is not None
    assert [
        (
            r["span_id"],
            r["parent_span_id"],
            r["service"],
            r["instance"],
            r["operation"],
            r["start_ns"],
            r["duration_ns"],
            r["status"],
        )
        for r in _rows(data.spans)
    ] == [
        ("s1", None, "api", "api", "/cart", start_us * 1000, 5_000_000, "ok"),
        ("s2", "s1", "cart", "cart", "GetCart", start_us * 1000 + 100_000, 4_000_000, "error"),
        ("s3", "s2", "cart", "cart", "Redis", start_us * 1000 + 200_000, 100_000, "unset"),
        ("s4", None, "api", "api", "/cart", start_us * 1000 + 300_000, 100_000, "error"),
    ]
    assert [(r["ts_ns"], r["service"], r["level"], r["message"]) for r in _rows(data.logs)] == [
        ((START_S + 700) * S, "cart", "ERROR", "boom"),
        ((START_S + 701) * S, "api", "INFO", "hello"),
    ]


def test_rcaeval_bench_scores_every_case(tmp_path: Path) -> None:
    root = write_tiny_rcaeval(tmp_path / "re")
    result = run_cli(
        "bench",
        "-m",
        "rclagent",
        "-m",
        "baro",
        "-d",
        str(root),
        "--out",
        str(tmp_path / "out"),
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    cases = json.loads(result.stdout)["cases"]
    assert len(cases) == 6
    assert [c["error"] for c in cases] == [None] * 6
    assert [(c["method"], c["incident"], c["service_rank"]) for c in cases] == [
        (method, incident, 1)
        for method in ("baro", "rclagent")
        for incident in (
            "rcaeval-toy-cart_cpu-1",
            "rcaeval-toy-cart_cpu-2",
            "rcaeval-toy-stock_mem-1",
        )
    ]


# -- through the command line ------------------------------------------------------------


def _otlp_file(path: Path) -> None:
    lines = [
        _trace_request("b7ad6b7169203331", "", T0, error=True),
        _trace_request("00000000000000a1", "b7ad6b7169203331", T0 + 50_000_000, error=False),
    ]
    path.write_text("\n".join(_to_hex_ids(line) for line in lines) + "\n")


@pytest.mark.parametrize(
    ("name", "kind", "incident"),
    [
        ("jaeger-checkout.json", "jaeger", "jaeger-checkout"),
        ("zipkin-orders.json", "zipkin", "zipkin-orders"),
        ("prometheus-cpu.json", "prometheus", "prometheus-cpu"),
        ("otel-export.json", "otlp", "otel-export"),
        ("re", "rcaeval", "rcaeval-toy-stock_mem-1"),
    ],
)
def test_convert_and_investigate(tmp_path: Path, name: str, kind: str, incident: str) -> None:
    if name == "otel-export.json":
        _otlp_file(tmp_path / name)
        source = tmp_path / name
    elif name == "re":
        source = write_tiny_rcaeval(tmp_path / "re")
    else:
        source = DATA / name
    converted = run_cli("datasets", "convert", str(source), str(tmp_path / "out"), "--json")
    assert converted.returncode == 0, converted.stderr
    listing = json.loads(converted.stdout)
    assert listing["kind"] == kind
    assert incident in [b["id"] for b in listing["bundles"]]
    bundle = read_bundle(tmp_path / "out" / incident)
    original = open_dataset(source).load(incident)
    assert bundle.incident == original.incident
    args = ["investigate", str(source), "--format", "json"]
    if kind == "rcaeval":
        args += ["--incident", incident]
    report = run_cli(*args)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["incident"]["id"] == incident


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
