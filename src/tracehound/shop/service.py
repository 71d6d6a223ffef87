"""One service of the demo shop: `python -m tracehound.shop.service --name NAME ...`.

The same program runs every service; `topology.py` says what NAME serves and calls. An
endpoint logs that it starts, waits on its own storage, does a little pure-Python work,
calls its downstream services in order over HTTP (through the delay proxy), checks each
answer, logs that it is done and answers `{field: value}`.

Instrumentation is the official OpenTelemetry Python one: `OpenTelemetryMiddleware`
(ASGI) makes a server span per request, `AsyncOpenTelemetryTransport` (httpx) a client
span per outgoing call, with the W3C trace context propagated in headers; logs go through
the SDK's `LoggingHandler`, so each line carries its request's trace and span ids.

Failure handling is what a careful service does: an unexpected exception is logged with
its traceback and answered 500; a callee that fails, cannot be reached or answers a
value that does not make sense is logged as an error naming that callee, and the request
fails with 502. Faults are switched at run time through `POST /_fault` (see `faults.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tracehound.shop.faults import SERVICE_KINDS, FaultSpec, FaultState, exception_class
from tracehound.shop.topology import Call, Endpoint, Service, instance_id, service

log = logging.getLogger("shop")

#: A call to another service gives up after this long.
CALL_TIMEOUT_S = 3.0
#: Paths that are not traced: the control and readiness endpoints.
UNTRACED = "/_fault,/_health"


class CalleeFailed(Exception):
    """A downstream call failed or answered something unusable (already logged)."""


class ShopService:
    """The handlers of one service, with its fault state and its HTTP client."""

    def __init__(
        self,
        svc: Service,
        peers: dict[str, str],
        *,
        seed: int = 0,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self.svc = svc
        self.peers = peers
        self.fault = FaultState(seed=seed)
        self._rng = random.Random(seed)
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self.client: httpx.AsyncClient | None = None

    # -- lifecycle -----------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            Route(ep.path, self._handler(ep), methods=[ep.method]) for ep in self.svc.endpoints
        ]
        routes += [
            Route("/_health", self.health, methods=["GET"]),
            Route("/_fault", self.get_fault, methods=["GET"]),
            Route("/_fault", self.set_fault, methods=["POST"]),
        ]
        app = Starlette(routes=routes, lifespan=self._lifespan)
        if self._tracer_provider is not None:
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

            app.add_middleware(
                OpenTelemetryMiddleware,
                excluded_urls=UNTRACED,
                tracer_provider=self._tracer_provider,
                meter_provider=self._meter_provider,
                exclude_spans=["receive", "send"],
            )
        return app

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport()
        if self._tracer_provider is not None:
            from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

            transport = AsyncOpenTelemetryTransport(
                transport,
                tracer_provider=self._tracer_provider,
                meter_provider=self._meter_provider,
                request_hook=_client_span_namer(self.peers),
            )
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with httpx.AsyncClient(
            transport=transport, timeout=CALL_TIMEOUT_S, limits=limits
        ) as client:
            self.client = client
            yield
        self.client = None
        self.fault.clear()

    # -- control -------------------------------------------------------------------

    async def health(self, _request: Request) -> Response:
        return PlainTextResponse("ok")

    async def get_fault(self, _request: Request) -> Response:
        body = self.fault.spec.model_dump()
        body["leaked_mb"] = round(self.fault.leaked_mb, 1)
        return JSONResponse(body)

    async def set_fault(self, request: Request) -> Response:
        from pydantic import ValidationError

        try:
            spec = FaultSpec.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        if spec.kind not in ("none", *SERVICE_KINDS):
            return JSONResponse(
                {"error": f"a service injects {', '.join(SERVICE_KINDS)}, not {spec.kind}"},
                status_code=422,
            )
        await asyncio.to_thread(self.fault.set, spec)
        return JSONResponse(spec.model_dump())

    # -- requests ------------------------------------------------------------------

    def _handler(self, ep: Endpoint) -> Any:
        async def handle(request: Request) -> Response:
            return await self.serve(ep, request)

        return handle

    async def serve(self, ep: Endpoint, request: Request) -> Response:
        """One request: the endpoint's work and calls, failures handled as described above."""
        try:
            item = int(request.query_params.get("item", ""))
        except ValueError:
            item = self._rng.randrange(1, 500)
        log.info("%s for item %d", ep.start_line, item)
        try:
            value = await self._work(ep, item)
        except CalleeFailed:
            return JSONResponse({"error": "a downstream service failed"}, status_code=502)
        except Exception as exc:
            _record_exception(exc)
            log.exception("unhandled %s in %s %s: %s", type(exc).__name__, ep.method, ep.path, exc)
            return JSONResponse({"error": "internal error"}, status_code=500)
        log.info("%s for item %d", ep.done_line, item)
        return JSONResponse({ep.field: value, "service": self.svc.name})

    async def _work(self, ep: Endpoint, item: int) -> float:
        fault = self.fault
        if fault.hits("latency"):
            await asyncio.sleep(fault.spec.delay_ms / 1000.0)
        await asyncio.sleep(ep.io_ms / 1000.0 * self._rng.lognormvariate(0.0, 0.3))
        if fault.hits("error"):
            raise exception_class(fault.spec.exception)(
                f"invariant violated while reading item {item}"
            )
        own = _compute(ep.cpu_rounds, item)
        total = own
        for call in ep.calls:
            total += await self._call(call, item)
        if fault.hits("wrong_return"):
            return -round(total, 2)
        return round(total, 2)

    async def _call(self, call: Call, item: int) -> float:
        """Call a downstream endpoint and return its checked value (`CalleeFailed` else)."""
        assert self.client is not None, "the HTTP client lives for the app's lifespan"
        target = service(call.service).endpoint(call.method, call.path)
        url = f"{self.peers[call.service]}{call.path}"
        try:
            response = await self.client.request(call.method, url, params={"item": item})
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            log.error("call to %s %s %s failed: %s", call.service, call.method, call.path, reason)
            raise CalleeFailed from exc
        if response.status_code >= 400:
            log.error(
                "%s answered %s %s with status %d",
                call.service,
                call.method,
                call.path,
                response.status_code,
            )
            raise CalleeFailed
        value = _field(response, target.field)
        if value is None or value < 0:
            log.error(
                "%s returned an invalid %s (%s) for item %d; request rejected",
                call.service,
                target.field,
                value,
                item,
            )
            raise CalleeFailed
        return value


def _record_exception(exc: Exception) -> None:
    """Add the exception as an event of the request's server span (when traced)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return
    trace.get_current_span().record_exception(exc)


def _field(response: httpx.Response, name: str) -> float | None:
    """The numeric field `name` of a JSON answer, or None when absent or not a number."""
    try:
        value = response.json().get(name)
    except (ValueError, AttributeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _compute(rounds: int, item: int) -> float:
    """The endpoint's own pure-Python work (a few hundred microseconds), and its value."""
    h = item
    for i in range(rounds):
        h = (h * 1_103_515_245 + i) & 0xFFFFFFFF
    return 1.0 + h % 10_000 / 100.0


def _client_span_namer(peers: dict[str, str]) -> Any:
    """A request hook naming client spans `METHOD /path`, like the server spans they call
    (the httpx instrumentation names them by method only), with `peer.service` set."""
    by_port = {httpx.URL(url).port: name for name, url in peers.items()}

    async def hook(span: Any, request: Any) -> None:
        method = request.method.decode() if isinstance(request.method, bytes) else request.method
        url = request.url
        if isinstance(url, tuple):  # the raw transport form (scheme, host, port, target)
            port, path = url[2], url[3].decode().partition("?")[0]
        else:
            port, path = url.port, url.path
        span.update_name(f"{method} {path}")
        peer = by_port.get(port)
        if peer is not None:
            span.set_attribute("peer.service", peer)

    return hook


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run one service of the demo shop.")
    parser.add_argument("--name", required=True, help="service name (see topology.py)")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--peers", default="{}", help="JSON {service: base URL} it calls")
    parser.add_argument("--otlp", default="", help="OTLP/HTTP base URL, 'console' or empty")
    parser.add_argument("--instance", default="", help="service.instance.id")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.name, args.port, json.loads(args.peers), args.otlp, args.instance, args.seed)


def run(name: str, port: int, peers: dict[str, str], otlp: str, instance: str, seed: int) -> None:
    """Serve until SIGTERM/SIGINT, then flush the telemetry."""
    import uvicorn

    from tracehound.shop.telemetry import setup_telemetry

    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("opentelemetry").propagate = False
    telemetry = None
    if otlp:
        telemetry = setup_telemetry(name, instance or instance_id(name), otlp)
    shop = ShopService(
        service(name),
        peers,
        seed=seed,
        tracer_provider=telemetry.tracer_provider if telemetry else None,
        meter_provider=telemetry.meter_provider if telemetry else None,
    )
    config = uvicorn.Config(
        shop.app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    try:
        uvicorn.Server(config).run()
    finally:
        if telemetry is not None:
            telemetry.shutdown()


if __name__ == "__main__":
    main()
