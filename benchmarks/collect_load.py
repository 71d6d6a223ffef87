"""Load the OTLP/HTTP receiver: concurrent exporters against `tracehound collect`.

    python benchmarks/collect_load.py --seconds 60 --exporters 8 --spans 500 [--json]

Starts `tracehound collect` as a subprocess on 127.0.0.1 (a free port) writing to a
temporary DuckDB file, runs N exporter processes that each send protobuf
`ExportTraceServiceRequest`s of `--spans` spans (traces of 10 spans; every request has
fresh trace ids) back to back for `--seconds`, then stops the collector with SIGTERM
and compares what was sent with what is in the file: the stored count, the distinct
(trace_id, span_id) count and the number of acknowledged spans must all be equal. Prints
the acknowledged spans per second over the sending window (first request to last
response, exporters started together) and the machine's 1-minute load average.

Exporters build one request template and patch an 8-byte nonce into its trace ids per
request, so sending costs them next to nothing and the figure is the receiver's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PLACEHOLDER = b"\xa5\x5a\xc3\x3c\x96\x69\x0f\xf0"


def template(spans: int) -> bytes:
    """One request of `spans` spans in traces of 10; every trace id starts with PLACEHOLDER."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for key, value in (("service.name", "loadgen"), ("k8s.pod.name", "loadgen-0")):
        rs.resource.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    scope = rs.scope_spans.add()
    t0 = time.time_ns()
    for i in range(spans):
        trace, position = divmod(i, 10)
        item = scope.spans.add()
        item.trace_id = PLACEHOLDER + struct.pack(">Q", trace + 1)
        item.span_id = struct.pack(">Q", i + 1)
        if position:
            item.parent_span_id = struct.pack(">Q", trace * 10 + 1)
        item.name = f"GET /api/{position}"
        item.kind = Span.SPAN_KIND_SERVER if position == 0 else Span.SPAN_KIND_CLIENT
        item.start_time_unix_nano = t0 + i * 1000
        item.end_time_unix_nano = t0 + i * 1000 + 250_000
        item.attributes.append(KeyValue(key="http.route", value=AnyValue(string_value="/api")))
        item.attributes.append(KeyValue(key="http.status_code", value=AnyValue(int_value=200)))
    body: bytes = request.SerializeToString()
    assert body.count(PLACEHOLDER) == spans, "the placeholder must occur only in trace ids"
    return body


def exporter(
    worker: int, url: str, body: bytes, spans: int, seconds: float, go: Any, out: Any
) -> None:
    """Once `go` is set, send requests for `seconds`; report acknowledged spans, responses
    and the (system-wide monotonic) times of the first request and the last response."""
    import httpx
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    acked = requests = retried = 0
    headers = {"content-type": "application/x-protobuf"}
    with httpx.Client(base_url=url, timeout=60) as client:
        out.put({"ready": worker})
        go.wait()
        began = time.monotonic()
        deadline = began + seconds
        while time.monotonic() < deadline:
            nonce = struct.pack(">II", worker + 1, requests + 1)
            payload = body.replace(PLACEHOLDER, nonce)
            while True:
                response = client.post("/v1/traces", content=payload, headers=headers)
                if response.status_code in (429, 503):
                    retried += 1
                    time.sleep(0.2)
                    continue
                break
            requests += 1
            if response.status_code != 200:
                raise SystemExit(f"exporter {worker}: HTTP {response.status_code}")
            reply = ExportTraceServiceResponse.FromString(response.content)
            acked += spans - reply.partial_success.rejected_spans
    out.put(
        {
            "worker": worker,
            "acked": acked,
            "requests": requests,
            "retried": retried,
            "began": began,
            "ended": time.monotonic(),
        }
    )


def _start_collector(store: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "tracehound", "collect", "--store", str(store)]
    cmd += ["--listen", "127.0.0.1:0", "--json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            line = proc.stderr.readline()
            if "Listening on " in line:
                return proc, line.split("Listening on ", 1)[1].split(" ", 1)[0]
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("tracehound collect did not start")


def _count(store: Path) -> tuple[int, int]:
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        row = con.sql("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").fetchall()[
            0
        ]
    finally:
        con.close()
    assert row is not None
    return int(row[0]), int(row[1])


def run(seconds: float, exporters: int, spans: int, directory: Path) -> dict[str, Any]:
    """One load run; returns its figures (see the module docstring)."""
    store = directory / "load.duckdb"
    body = template(spans)
    proc, url = _start_collector(store)
    try:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        go = ctx.Event()
        workers = [
            ctx.Process(target=exporter, args=(w, url, body, spans, seconds, go, out))
            for w in range(exporters)
        ]
        for worker in workers:
            worker.start()
        for _ in workers:
            out.get(timeout=300)  # every exporter is connected and waits for `go`
        go.set()
        reports = [out.get(timeout=seconds + 300) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        began = min(r["began"] for r in reports)
        sending_s = max(r["ended"] for r in reports) - began
        load = os.getloadavg()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=600)
        flushed_s = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"collect exited with {proc.returncode}: {stderr}")
    summary = json.loads(stdout)
    stored, distinct = _count(store)
    acked = sum(r["acked"] for r in reports)
    return {
        "exporters": exporters,
        "spans_per_request": spans,
        "seconds": seconds,
        "requests": sum(r["requests"] for r in reports),
        "retried_503": sum(r["retried"] for r in reports),
        "acked": acked,
        "accepted_by_receiver": summary["accepted"].get("traces", 0),
        "stored": stored,
        "distinct": distinct,
        "exact": acked == stored == distinct,
        "sending_s": round(sending_s, 2),
        "until_flushed_s": round(flushed_s, 2),
        "spans_per_s": round(acked / sending_s),
        "load_avg_1m": round(load[0], 2),
        "cpus": os.cpu_count(),
        "store_mib": round(store.stat().st_size / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--exporters", type=int, default=8)
    parser.add_argument("--spans", type=int, default=500, help="spans per request")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="collect-load-") as tmp:
        result = run(args.seconds, args.exporters, args.spans, Path(tmp))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:22} {value}")
    return 0 if result["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
