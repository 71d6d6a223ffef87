"""A TCP delay proxy in front of services: `python -m tracehound.shop.proxy ...`.

Callers reach every internal service of the shop through this proxy, as they would
through a sidecar or a load balancer. It copies bytes both ways unchanged; when a
`network` fault is set for a service, every chunk to and from that service waits
`delay_ms` before it is passed on (each leg of a call is delayed, like `netem delay`
on the service's interface). The delay is on the wire: callers' client spans get longer,
while the service's own server span does not, so the time shows on the edges into the
service, not in its handler.

When the service behind a route is gone (killed), the proxy accepts the caller's
connection, fails to reach the service and closes the connection: the caller sees the
server disconnect without an answer.

Control: `POST /_fault` on the control port with `{"kind": "network", "service": NAME,
"delay_ms": 200}`; `{"kind": "none"}` clears every delay (or only NAME's, with
`"service"`); `GET /_fault` shows the delays; `GET /_health` answers when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette

#: Bytes read at once from either side.
CHUNK = 65_536


@dataclass
class Route:
    """One service behind the proxy: where callers connect, where the service listens."""

    name: str
    listen_port: int
    upstream_port: int


@dataclass
class DelayProxy:
    """The proxy's listeners and its per-service delays (seconds)."""

    routes: list[Route]
    host: str = "127.0.0.1"
    delays: dict[str, float] = field(default_factory=dict)
    _servers: list[asyncio.Server] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        """Listen on every route; a route with listen port 0 gets a free port, recorded."""
        for route in self.routes:
            server = await asyncio.start_server(
                functools.partial(self._accept, route), self.host, route.listen_port
            )
            route.listen_port = server.sockets[0].getsockname()[1]
            self._servers.append(server)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers = []

    def set_delay(self, service: str, delay_ms: float) -> None:
        if service not in {r.name for r in self.routes}:
            raise KeyError(f"the proxy has no route for {service!r}")
        self.delays[service] = delay_ms / 1000.0

    def clear(self, service: str | None = None) -> None:
        if service is None:
            self.delays.clear()
        else:
            self.delays.pop(service, None)

    async def _accept(
        self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._connect(route, reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _connect(
        self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, route.upstream_port)
        except OSError:
            await _close(writer)
            return
        legs = [
            asyncio.create_task(self._pipe(route.name, reader, up_writer)),
            asyncio.create_task(self._pipe(route.name, up_reader, writer)),
        ]
        try:
            await asyncio.wait(legs, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for leg in legs:
                leg.cancel()
            await _close(up_writer)
            await _close(writer)

    async def _pipe(self, name: str, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Copy src to dst; each chunk leaves `delay` after it arrived, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            while True:
                try:
                    chunk = await src.read(CHUNK)
                except (ConnectionError, OSError):
                    chunk = b""
                await queue.put((time.monotonic(), chunk))
                if not chunk:
                    return

        reading = asyncio.create_task(read())
        try:
            while True:
                arrived, chunk = await queue.get()
                wait = arrived + self.delays.get(name, 0.0) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    return
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, OSError):
            return
        finally:
            reading.cancel()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


def control_app(proxy: DelayProxy) -> Starlette:
    """The Starlette app of the control port (see module docstring)."""
    from pydantic import ValidationError
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route as HttpRoute

    from tracehound.shop.faults import FaultSpec

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def get_fault(_request: Request) -> Response:
        return JSONResponse(
            {
                "delays_ms": {k: v * 1000.0 for k, v in proxy.delays.items()},
                "routes": {r.name: r.listen_port for r in proxy.routes},
            }
        )

    async def set_fault(request: Request) -> Response:
        try:
            spec = FaultSpec.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        try:
            if spec.kind == "none":
                proxy.clear(spec.service)
            elif spec.kind == "network" and spec.service is not None:
                proxy.set_delay(spec.service, spec.delay_ms)
            else:
                return JSONResponse(
                    {"error": "the proxy injects kind 'network' with a 'service'"},
                    status_code=422,
                )
        except KeyError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return await get_fault(request)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await proxy.start()
        try:
            yield
        finally:
            await proxy.stop()

    return Starlette(
        routes=[
            HttpRoute("/_health", health, methods=["GET"]),
            HttpRoute("/_fault", get_fault, methods=["GET"]),
            HttpRoute("/_fault", set_fault, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def parse_route(text: str) -> Route:
    """`NAME=LISTEN_PORT:UPSTREAM_PORT` as a `Route`."""
    name, _, ports = text.partition("=")
    listen, _, upstream = ports.partition(":")
    if not name or not listen.isdigit() or not upstream.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=LISTEN_PORT:UPSTREAM_PORT, got {text!r}")
    return Route(name, int(listen), int(upstream))


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="TCP delay proxy in front of shop services.")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument(
        "--route", type=parse_route, action="append", default=[], help="NAME=LISTEN:UPSTREAM"
    )
    args = parser.parse_args(argv)
    proxy = DelayProxy(list(args.route))
    config = uvicorn.Config(
        control_app(proxy),
        host="127.0.0.1",
        port=args.control_port,
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
