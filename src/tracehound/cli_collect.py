"""`tracehound collect`: receive OTLP/HTTP into a DuckDB file (docs/opentelemetry.md)."""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console

from tracehound.errors import BadInput, TracehoundError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

_UNITS_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration_ns(text: str) -> int:
    """Nanoseconds of a duration such as `2h`, `90m`, `1h30m`, `45s`, `7d`."""
    cleaned = text.strip().lower()
    parts = _PART.findall(cleaned)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != cleaned:
        raise BadInput(
            f"cannot read the duration {text!r}",
            column="--retention",
            expected="a number with a unit ms, s, m, h or d, e.g. 2h, 90m or 1h30m",
        )
    total = sum(int(float(n) * _UNITS_NS[u]) for n, u in parts)
    if total <= 0:
        raise BadInput("the duration must be positive", column="--retention", expected="e.g. 2h")
    return total


def parse_listen(text: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT` (IPv6 hosts in brackets: `[::1]:4318`)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise BadInput(
            f"cannot read the address {text!r}",
            column="--listen",
            expected="HOST:PORT, e.g. 127.0.0.1:4318 (port 0 picks a free port)",
        )
    return host.strip("[]"), int(port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BadInput(
            f"cannot listen on {host}:{port} ({exc.strerror})",
            column="--listen",
            hint="Is another collector running? Choose another port.",
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def collect(
    store: Annotated[
        Path, typer.Option("--store", help="DuckDB file to append to (created if missing).")
    ],
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to serve OTLP/HTTP on (port 0: any).")
    ] = "127.0.0.1:4318",
    max_body_mb: Annotated[
        float,
        typer.Option(
            "--max-body-mb",
            min=0.001,
            help="Largest request body, before and after gzip decompression (413 above).",
        ),
    ] = 32.0,
    retention: Annotated[
        str | None,
        typer.Option(
            "--retention", help="Drop rows older than this, e.g. 2h (checked each minute)."
        ),
    ] = None,
    flush_interval: Annotated[
        float,
        typer.Option("--flush-interval", min=0.01, help="Seconds between flushes to the file."),
    ] = 0.5,
    as_json: Annotated[
        bool, typer.Option("--json", help="On exit, print one JSON object with the counts.")
    ] = False,
) -> None:
    """Receive OpenTelemetry data over OTLP/HTTP and append it to a DuckDB file.

    Accepts POST /v1/traces, /v1/logs and /v1/metrics in protobuf or JSON, gzip or not —
    point an SDK or an OpenTelemetry Collector at http://HOST:PORT. Rows are flushed in
    transactions every --flush-interval; between flushes the file is free for readers
    (`tracehound investigate --store FILE`). Ctrl-C or SIGTERM flushes and exits.

    Example: tracehound collect --store live.duckdb --retention 2h
    """
    import uvicorn

    from tracehound.otlp.receiver import ReceiverStats, create_app
    from tracehound.otlp.writer import FileWriter

    host, port = parse_listen(listen)
    retention_ns = parse_duration_ns(retention) if retention is not None else None
    max_body_bytes = int(max_body_mb * 1024 * 1024)
    writer = FileWriter(
        store,
        flush_interval_s=flush_interval,
        retention_ns=retention_ns,
        retention_every_s=min(60.0, retention_ns / 10**9 / 10) if retention_ns else 60.0,
    )
    writer.start()
    stats = ReceiverStats()

    def health() -> dict[str, Any]:
        return {"pending_rows": writer.pending_rows, "written": dict(writer.stats.written)}

    app = create_app(writer.submit, max_body_bytes=max_body_bytes, stats=stats, health=health)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)

    def stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True
        server.should_exit = True

    handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
    try:
        thread.start()
        shown = f"[{host}]" if ":" in host else host
        stderr.print(
            f"Listening on http://{shown}:{bound_port} (OTLP/HTTP: /v1/traces, /v1/logs, "
            f"/v1/metrics), writing to {store}. Ctrl-C stops."
        )
        while thread.is_alive():
            thread.join(0.5)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        sock.close()
        left = writer.close()
    dumped = writer.dump_pending(store.parent) if left else []
    summary = {
        "store": str(store),
        "seconds": round(time.monotonic() - started, 3),
        "accepted": dict(stats.accepted),
        "rejected": dict(stats.rejected),
        "requests": dict(stats.requests),
        "responses": {str(code): n for code, n in sorted(stats.statuses.items())},
        "written": dict(writer.stats.written),
        "flushes": writer.stats.flushes,
        "deleted_by_retention": writer.stats.deleted_by_retention,
    }
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        written = ", ".join(f"{n} {name}" for name, n in writer.stats.written.items())
        stderr.print(f"Stopped; wrote {written} to {store} in {writer.stats.flushes} flush(es).")
    if dumped:
        raise TracehoundError(
            f"the store {store} stayed locked at shutdown; {left} rows were saved to "
            + ", ".join(str(p) for p in dumped)
        )
