"""`tracehound collect`: the OTLP/HTTP receiver, its writer, the shared file and the CLI.

Every server here listens on 127.0.0.1 (an ephemeral port) and is stopped in `finally`.
Each rejected request is checked for its exact status code and for an unchanged store.
"""

from __future__ import annotations

import gzip
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
import uvicorn
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from otlp_requests import T0, logs_request, metrics_request, otlp_json, span, traces_request

from tracehound.cli_collect import parse_duration_ns, parse_listen
from tracehound.errors import BadInput
from tracehound.otlp.filestore import StoreLocked, snapshot
from tracehound.otlp.receiver import create_app
from tracehound.otlp.writer import FileWriter, QueueFull

PROTO = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Running:
    url: str
    writer: FileWriter
    path: Path

    def counts(self) -> dict[str, int]:
        """Rows in the file, after flushing everything queued."""
        assert self.writer.flush(timeout_s=10)
        assert self.writer.pending_rows == 0
        with snapshot(self.path) as store:
            return store.counts()


def _serve(app: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    path = tmp_path / "live.duckdb"
    writer = FileWriter(path, flush_interval_s=0.05)
    writer.start()
    server, thread, url = _serve(create_app(writer.submit, max_body_bytes=1_000_000))
    try:
        yield Running(url, writer, path)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        writer.close()
    assert not thread.is_alive()


def _post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=30)


def _spans(first: int, n: int) -> bytes:
    return traces_request([span(first + i, 1) for i in range(n)]).SerializeToString()


def _seed(running: Running) -> dict[str, int]:
    """Store two spans so that "unchanged" means more than "still empty"."""
    assert _post(running.url + "/v1/traces", _spans(1000, 2), PROTO).status_code == 200
    before = running.counts()
    assert before == {"spans": 2, "metrics": 0, "logs": 0}
    return before


def _status(response: httpx.Response) -> status_pb2.Status:
    status = status_pb2.Status()
    if response.headers["content-type"] == "application/json":
        obj = json.loads(response.content)
        status.code, status.message = obj["code"], obj["message"]
    else:
        status.ParseFromString(response.content)
    return status


# -- success -----------------------------------------------------------------------


def test_protobuf_traces_are_stored(running: Running) -> None:
    response = _post(running.url + "/v1/traces", _spans(1, 3), PROTO)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert not reply.HasField("partial_success")
    assert running.counts() == {"spans": 3, "metrics": 0, "logs": 0}


def test_json_traces_are_stored_and_answered_in_json(running: Running) -> None:
    body = otlp_json(traces_request([span(1, 1), span(1, 2, 1)]))
    response = _post(running.url + "/v1/traces", body, JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    assert running.counts()["spans"] == 2
    with snapshot(running.path) as store:
        rows = store.trace_spans("00000000000000000000000000000001").to_pylist()
    assert [(r["span_id"], r["parent_span_id"]) for r in rows] == [
        ("0000000000000001", None),
        ("0000000000000002", "0000000000000001"),
    ]


@pytest.mark.parametrize("as_json", [False, True], ids=["protobuf", "json"])
def test_gzip_bodies_are_accepted(running: Running, as_json: bool) -> None:
    request = traces_request([span(7, i + 1) for i in range(4)])
    body = otlp_json(request) if as_json else request.SerializeToString()
    headers = {**(JSON if as_json else PROTO), "content-encoding": "gzip"}
    response = _post(running.url + "/v1/traces", gzip.compress(body), headers)
    assert response.status_code == 200
    assert running.counts()["spans"] == 4


def test_logs_and_metrics_endpoints(running: Running) -> None:
    records = [
        LogRecord(time_unix_nano=T0, severity_text="ERROR", body=AnyValue(string_value="x")),
        LogRecord(time_unix_nano=T0 + 1, severity_number=9, body=AnyValue(string_value="y")),
    ]
    response = _post(running.url + "/v1/logs", logs_request(records).SerializeToString(), PROTO)
    assert response.status_code == 200
    assert not ExportLogsServiceResponse.FromString(response.content).HasField("partial_success")
    gauge = m.Metric(
        name="cpu", gauge=m.Gauge(data_points=[m.NumberDataPoint(time_unix_nano=T0, as_double=1)])
    )
    body = otlp_json(metrics_request([gauge]))
    response = _post(running.url + "/v1/metrics", body, JSON)
    assert response.status_code == 200
    assert response.json() == {}
    assert running.counts() == {"spans": 0, "metrics": 1, "logs": 2}


@pytest.mark.parametrize("as_json", [False, True], ids=["protobuf", "json"])
def test_empty_body_is_success_and_stores_nothing(running: Running, as_json: bool) -> None:
    before = _seed(running)
    response = _post(running.url + "/v1/traces", b"", JSON if as_json else PROTO)
    assert response.status_code == 200
    assert response.content == (b"{}" if as_json else b"")
    assert running.counts() == before


# -- partial success and rejection --------------------------------------------------


def test_span_without_trace_id_is_a_partial_success(running: Running) -> None:
    before = _seed(running)
    body = traces_request([span(1, 1), span(0, 2), span(1, 3), span(1, 4)]).SerializeToString()
    response = _post(running.url + "/v1/traces", body, PROTO)
    assert response.status_code == 200
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_spans == 1
    assert "without a valid trace id" in reply.partial_success.error_message
    assert running.counts()["spans"] == before["spans"] + 3


def test_partial_success_in_json(running: Running) -> None:
    body = otlp_json(metrics_request([_gauge_without_time()]))
    response = _post(running.url + "/v1/metrics", body, JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "1"  # int64 is a string in protobuf JSON
    assert partial["errorMessage"] == "rejected 1 data points: 1 without a time."
    assert running.counts()["metrics"] == 1


def _gauge_without_time() -> m.Metric:
    points = [m.NumberDataPoint(time_unix_nano=T0, as_double=1), m.NumberDataPoint(as_double=2)]
    return m.Metric(name="cpu", gauge=m.Gauge(data_points=points))


def test_request_of_only_invalid_spans_is_400(running: Running) -> None:
    before = _seed(running)
    body = traces_request([span(0, 1)]).SerializeToString()
    response = _post(running.url + "/v1/traces", body, PROTO)
    assert response.status_code == 400
    status = _status(response)
    assert status.message.startswith("nothing accepted: rejected 1 spans")
    assert running.counts() == before


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (_spans(1, 5)[:-9], PROTO, 400),
        (b"\x0a\xff\xff\xff\xff\x0f", PROTO, 400),
        (b'{"resourceSpans": [{"scopeSpans": [', JSON, 400),
        (b'{"resourceSpans": 3}', JSON, 400),
        (gzip.compress(_spans(1, 5))[:-20], {**PROTO, "content-encoding": "gzip"}, 400),
        (b"not gzip at all", {**PROTO, "content-encoding": "gzip"}, 400),
        (_spans(1, 5), {"content-type": "text/plain"}, 415),
        (_spans(1, 5), {}, 415),
        (_spans(1, 5), {**PROTO, "content-encoding": "br"}, 415),
    ],
    ids=[
        "truncated-protobuf",
        "corrupt-protobuf",
        "invalid-json",
        "json-wrong-shape",
        "truncated-gzip",
        "not-gzip",
        "text-plain",
        "no-content-type",
        "brotli",
    ],
)
def test_bad_requests_store_nothing(
    running: Running, body: bytes, headers: dict[str, str], code: int
) -> None:
    before = _seed(running)
    response = _post(running.url + "/v1/traces", body, headers)
    assert response.status_code == code
    assert _status(response).message
    json_reply = headers.get("content-type") == "application/json"
    assert response.headers["content-type"] == (
        "application/json" if json_reply else "application/x-protobuf"
    )
    assert running.counts() == before


def test_body_over_the_limit_is_413(running: Running) -> None:
    before = _seed(running)
    just_over = b"\x00" * 1_000_001
    response = _post(running.url + "/v1/traces", just_over, PROTO)
    assert response.status_code == 413
    assert "exceeds the limit of 1000000 bytes" in _status(response).message
    # A small gzip body that inflates beyond the limit is refused as well.
    bomb = gzip.compress(b"\x00" * 5_000_000)
    assert len(bomb) < 10_000
    response = _post(running.url + "/v1/traces", bomb, {**PROTO, "content-encoding": "gzip"})
    assert response.status_code == 413
    # A body at the limit is read (and here rejected as malformed, not as too large).
    response = _post(running.url + "/v1/traces", b"\xff" * 1_000_000, PROTO)
    assert response.status_code == 400
    assert running.counts() == before


def test_fifty_megabytes_is_413(running: Running) -> None:
    before = _seed(running)
    body = b"\x00" * (50 * 1024 * 1024)
    response = _post(running.url + "/v1/traces", body, PROTO)
    assert response.status_code == 413
    assert running.counts() == before


def test_other_paths_and_methods(running: Running) -> None:
    assert httpx.post(running.url + "/v1/profiles", content=b"", headers=PROTO).status_code == 404
    assert httpx.get(running.url + "/v1/traces").status_code == 405
    health = httpx.get(running.url + "/health").json()
    assert health["status"] == "ok"


# -- the OpenTelemetry SDK ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_opentelemetry_sdk_exports_are_stored_exactly(running: Running) -> None:
    import logging

    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, StatusCode

    resource = Resource.create(
        {"service.name": "shop", "service.instance.id": "shop-1", "host.name": "node-a"}
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=running.url + "/v1/traces"))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=running.url + "/v1/logs"))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=running.url + "/v1/metrics"), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    pylog = logging.getLogger("tracehound.test.sdk")
    pylog.propagate = False
    handler = LoggingHandler(logger_provider=logger_provider)
    pylog.addHandler(handler)
    try:
        tracer = tracer_provider.get_tracer("test")
        with (
            tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root,
            tracer.start_as_current_span("SELECT cart", kind=SpanKind.CLIENT) as child,
        ):
            child.set_attribute("db.system", "postgresql")
            child.set_status(StatusCode.ERROR, "timeout")
            pylog.warning("slow query %s", "cart")
        meter = meter_provider.get_meter("test")
        requests = meter.create_counter("requests")
        requests.add(3, {"http.route": "/cart"})
        requests.add(2, {"http.route": "/cart"})
        latency = meter.create_histogram("latency", unit="ms")
        for value in (10, 20, 30):
            latency.record(value)
        assert logger_provider.force_flush()
        assert tracer_provider.force_flush()
    finally:
        pylog.removeHandler(handler)
        # Shutting down exports the metrics once (a flush and then a shutdown would
        # export the cumulative points twice, at two times).
        meter_provider.shutdown()
        logger_provider.shutdown()
        tracer_provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    root_id = format(root.get_span_context().span_id, "016x")
    child_id = format(child.get_span_context().span_id, "016x")
    assert running.counts() == {"spans": 2, "metrics": 5, "logs": 1}
    with snapshot(running.path) as store:
        spans = store.trace_spans(trace_id).to_pylist()
        logs = store.query("SELECT * FROM logs").to_pylist()
        metrics = store.query("SELECT * FROM metrics ORDER BY name").to_pylist()
    assert [
        (s["span_id"], s["parent_span_id"], s["operation"], s["kind"], s["status"]) for s in spans
    ] == [
        (root_id, None, "GET /cart", "server", "unset"),
        (child_id, root_id, "SELECT cart", "client", "error"),
    ]
    assert {(s["service"], s["instance"]) for s in spans} == {("shop", "shop-1")}
    assert json.loads(spans[1]["attributes"]) == {
        "db.system": "postgresql",
        "otel.status_description": "timeout",
    }
    assert [(r["level"], r["message"], r["trace_id"], r["span_id"]) for r in logs] == [
        ("WARN", "slow query cart", trace_id, child_id)
    ]
    assert [(r["name"], r["value"], r["instance"], r["node"]) for r in metrics] == [
        ("latency_count", 3.0, "shop-1", "node-a"),
        ("latency_p50", pytest.approx(17.5), "shop-1", "node-a"),
        ("latency_p90", pytest.approx(28.5), "shop-1", "node-a"),
        ("latency_p99", pytest.approx(29.85), "shop-1", "node-a"),
        ("requests{route=/cart}", 5.0, "shop-1", "node-a"),
    ]


# -- concurrency ---------------------------------------------------------------------


def test_concurrent_exporters_lose_and_duplicate_nothing(running: Running) -> None:
    def export(worker: int) -> int:
        sent = 0
        with httpx.Client(base_url=running.url, timeout=30) as client:
            for batch in range(15):
                first = worker * 1_000_000 + batch * 1000 + 1
                body = _spans(first, 40)
                assert client.post("/v1/traces", content=body, headers=PROTO).status_code == 200
                sent += 40
                bad = client.post("/v1/traces", content=body[:-3], headers=PROTO)
                assert bad.status_code == 400
        return sent

    with ThreadPoolExecutor(8) as pool:
        sent = sum(pool.map(export, range(8)))
    assert sent == 8 * 15 * 40
    assert running.counts()["spans"] == sent
    with snapshot(running.path) as store:
        distinct = store.query("SELECT count(DISTINCT (trace_id, span_id)) FROM spans")
    assert distinct.column(0)[0].as_py() == sent


def test_full_queue_answers_503(tmp_path: Path) -> None:
    writer = FileWriter(tmp_path / "s.duckdb", max_pending_rows=5, flush_interval_s=60)
    writer.start()
    server, thread, url = _serve(create_app(writer.submit))
    try:
        assert _post(url + "/v1/traces", _spans(1, 4), PROTO).status_code == 200
        response = _post(url + "/v1/traces", _spans(10, 4), PROTO)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert writer.pending_rows == 4
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        writer.close()
    with snapshot(tmp_path / "s.duckdb") as store:
        assert store.counts()["spans"] == 4


# -- the writer and the shared file ---------------------------------------------------


def _table(first: int, n: int, start_ns: int = T0) -> pa.Table:
    from tracehound.otlp.decode import decode_export

    spans = [span(first + i, 1, start=start_ns) for i in range(n)]
    return decode_export("traces", traces_request(spans).SerializeToString(), json=False).table


def _hold(path: Path, seconds: float, *, read_only: bool) -> subprocess.Popen[str]:
    """Another process holding the DuckDB file; returns once it has it."""
    code = (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(path)!r}, read_only={read_only})\n"
        "print('holding', flush=True)\n"
        f"time.sleep({seconds})\n"
        "con.close()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_writer_keeps_rows_while_a_reader_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    writer = FileWriter(path, flush_interval_s=3600)
    writer.start()
    reader = _hold(path, 1.5, read_only=True)
    try:
        writer.submit("spans", _table(1, 5))
        assert writer.flush(timeout_s=0.0) is False
        assert writer.pending_rows == 5
        assert writer.flush(timeout_s=20) is True
        assert writer.pending_rows == 0
    finally:
        reader.wait(timeout=30)
        writer.close()
    assert writer.stats.written["spans"] == 5
    with snapshot(path) as store:
        assert store.counts()["spans"] == 5


def test_snapshot_waits_for_the_writer_and_ranges_by_time(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    writer = FileWriter(path)
    writer.start()
    writer.submit("spans", _table(1, 3, T0))
    writer.submit("spans", _table(10, 2, T0 + 10**9))
    writer.close()
    holder = _hold(path, 1.0, read_only=False)
    try:
        with pytest.raises(StoreLocked, match="stayed locked"):
            snapshot(path, timeout_s=0.1)
        with snapshot(path, since_ns=T0 + 1, timeout_s=20) as store:
            assert store.counts() == {"spans": 2, "metrics": 0, "logs": 0}
    finally:
        holder.wait(timeout=30)
    with snapshot(path, until_ns=T0 + 1) as store:
        assert store.counts()["spans"] == 3
    with pytest.raises(BadInput, match="does not exist"):
        snapshot(tmp_path / "missing.duckdb")


def test_retention_drops_old_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    now = time.time_ns()
    writer = FileWriter(path, retention_ns=3600 * 10**9, retention_every_s=0.0)
    writer.start()
    writer.submit("spans", _table(1, 4, now - 2 * 3600 * 10**9))
    writer.submit("spans", _table(10, 3, now - 60 * 10**9))
    assert writer.flush(timeout_s=10)  # inserts, then drops what is older than 1 h
    assert writer.flush(timeout_s=10)  # a retention pass without new rows
    writer.close()
    assert writer.stats.deleted_by_retention == 4
    with snapshot(path) as store:
        assert store.counts()["spans"] == 3


def test_queue_full_is_raised_by_submit(tmp_path: Path) -> None:
    writer = FileWriter(tmp_path / "s.duckdb", max_pending_rows=3)
    writer.submit("spans", _table(1, 2))
    with pytest.raises(QueueFull):
        writer.submit("spans", _table(5, 2))
    assert writer.pending_rows == 2


# -- the command line ----------------------------------------------------------------


def test_parse_duration_and_listen() -> None:
    assert parse_duration_ns("2h") == 7200 * 10**9
    assert parse_duration_ns("1h30m") == 5400 * 10**9
    assert parse_duration_ns("250ms") == 250 * 10**6
    for bad in ("2", "h", "2 hours", "0s", "-1h"):
        with pytest.raises(BadInput):
            parse_duration_ns(bad)
    assert parse_listen("127.0.0.1:4318") == ("127.0.0.1", 4318)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("4318", "host:", "host:99999"):
        with pytest.raises(BadInput):
            parse_listen(bad)


def _tracehound() -> list[str]:
    script = REPO / ".venv" / "bin" / "tracehound"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tracehound"]


def _wait_for_url(proc: subprocess.Popen[str], timeout_s: float = 30) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            line = proc.stderr.readline()
            seen += line
            if "Listening on " in line:
                return line.split("Listening on ", 1)[1].split(" ", 1)[0]
        assert proc.poll() is None, f"collect exited early: {seen}"
    raise AssertionError(f"collect did not start: {seen}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_collect_flushes_on_signal_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    path = tmp_path / "live.duckdb"
    cmd = [*_tracehound(), "collect", "--store", str(path), "--listen", "127.0.0.1:0", "--json"]
    cmd += ["--flush-interval", "30"]  # nothing is flushed before the signal
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = _wait_for_url(proc)
        with httpx.Client(base_url=url, timeout=30) as client:
            for batch in range(5):
                body = _spans(batch * 100 + 1, 20)
                assert client.post("/v1/traces", content=body, headers=PROTO).status_code == 200
            logs = logs_request([LogRecord(time_unix_nano=T0, body=AnyValue(string_value="x"))])
            response = client.post("/v1/logs", content=logs.SerializeToString(), headers=PROTO)
            assert response.status_code == 200
            assert client.get("/health").json()["written"]["spans"] == 0
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["accepted"] == {"traces": 100, "logs": 1}
    assert summary["written"] == {"spans": 100, "metrics": 0, "logs": 1}
    with snapshot(path) as store:
        assert store.counts() == {"spans": 100, "metrics": 0, "logs": 1}


def test_short_load_run_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/collect_load.py in short: 8 exporter processes for 3 s, every
    acknowledged span stored exactly once."""
    import importlib

    # importable by name, so that the spawned exporter processes find it too
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    module = importlib.import_module("collect_load")
    result = module.run(3.0, 8, 200, tmp_path)
    assert result["acked"] > 0
    assert result["acked"] % 200 == 0
    assert result["acked"] == result["accepted_by_receiver"] == result["stored"]
    assert result["stored"] == result["distinct"]
    assert result["exact"] is True


def test_writer_appends_to_a_store_made_by_telemetry_store(tmp_path: Path) -> None:
    """A file a `TelemetryStore` created (indexes, derived columns) takes appends too."""
    from tracehound.otlp.decode import decode_export
    from tracehound.store import TelemetryStore

    path = tmp_path / "s.duckdb"
    TelemetryStore(path).close()
    records = [LogRecord(time_unix_nano=T0, severity_text="ERROR", body=AnyValue(string_value="x"))]
    logs = decode_export("logs", logs_request(records).SerializeToString(), json=False).table
    writer = FileWriter(path)
    writer.start()
    writer.submit("logs", logs)
    writer.submit("spans", _table(1, 2))
    assert writer.close() == 0
    with snapshot(path) as store:
        assert store.counts() == {"spans": 2, "metrics": 0, "logs": 1}
        assert store.query("SELECT level, message FROM logs").to_pylist() == [
            {"level": "ERROR", "message": "x"}
        ]
