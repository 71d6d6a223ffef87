"""Start and stop the demo shop: one process per service, the delay proxy, the load.

`ShopSystem` picks free ports on 127.0.0.1, starts every process in its own session
(so a whole process group can be killed on failure), waits for each to answer
`GET /_health` (bounded), and stops everything by PID: SIGTERM first so that the
services flush their telemetry, SIGKILL for whatever is still alive after a grace
period. Faults are set through the control endpoints (`faults.py`); `unavailable` kills
the service's process with SIGKILL.

Each process writes its own output to `<workdir>/<name>.log`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from tracehound.errors import TracehoundError
from tracehound.shop.faults import SERVICE_KINDS, FaultSpec
from tracehound.shop.topology import SERVICES, entry_service, instance_id, internal_services

HOST = "127.0.0.1"
#: Seconds a process has to flush its telemetry and exit after SIGTERM.
STOP_GRACE_S = 8.0


class ShopError(TracehoundError):
    """The demo system could not start, or a fault could not be set."""


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Proc:
    """One started process."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


def spawn(name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    """Start `argv` in a new session, output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    return Proc(name, popen, log)


def stop_processes(procs: Sequence[Proc], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every live process, wait up to `grace_s` in all, then SIGKILL the group."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        # the process leads its own session: its group id is its pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=2.0)


def wait_ready(url: str, proc: Proc, timeout_s: float) -> None:
    """Poll `url` until it answers 200; `ShopError` if the process died or time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ShopError(f"{proc.name} exited at start; see {proc.log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise ShopError(f"{proc.name} did not answer {url} within {timeout_s:.0f} s; see {proc.log}")


def wait_listening(port: int, proc: Proc, timeout_s: float) -> None:
    """Wait until something accepts TCP connections on `port` (a bounded wait)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ShopError(f"{proc.name} exited at start; see {proc.log}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ShopError(f"{proc.name} did not listen on port {port} within {timeout_s:.0f} s")


@dataclass
class ShopSystem:
    """The running shop. Use as a context manager: everything stops on exit."""

    workdir: Path
    #: OTLP/HTTP base URL the services export to ("" for no telemetry)
    otlp: str = ""
    rate: float = 40.0
    seed: int = 0
    python: str = sys.executable
    start_timeout_s: float = 90.0
    ports: dict[str, int] = field(default_factory=dict)
    proxy_ports: dict[str, int] = field(default_factory=dict)
    control_port: int = 0
    procs: dict[str, Proc] = field(default_factory=dict)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the proxy and every service; return when all answer (or raise)."""
        internal = internal_services()
        ports = free_ports(len(SERVICES) + len(internal) + 1)
        self.ports = {s.name: ports.pop() for s in SERVICES}
        self.proxy_ports = {name: ports.pop() for name in internal}
        self.control_port = ports.pop()
        try:
            self._start_proxy()
            for svc in SERVICES:
                self._start_service(svc.name)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def _start_proxy(self) -> None:
        routes = [f"--route={n}={p}:{self.ports[n]}" for n, p in self.proxy_ports.items()]
        argv = [self.python, "-m", "tracehound.shop.proxy", f"--control-port={self.control_port}"]
        self.procs["proxy"] = spawn("proxy", [*argv, *routes], self.workdir / "proxy.log")

    def _start_service(self, name: str) -> None:
        argv = [
            self.python,
            "-m",
            "tracehound.shop.service",
            f"--name={name}",
            f"--port={self.ports[name]}",
            f"--peers={json.dumps(self.peers())}",
            f"--otlp={self.otlp}",
            f"--instance={instance_id(name)}",
            f"--seed={self.seed}",
        ]
        self.procs[name] = spawn(name, argv, self.workdir / f"{name}.log")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        for name, proc in self.procs.items():
            if name == "load":
                continue
            port = self.control_port if name == "proxy" else self.ports[name]
            wait_ready(f"http://{HOST}:{port}/_health", proc, deadline - time.monotonic())
        for port in self.proxy_ports.values():
            wait_listening(port, self.procs["proxy"], deadline - time.monotonic())

    def peers(self) -> dict[str, str]:
        """Base URL of every internal service, as callers reach it (through the proxy)."""
        return {name: f"http://{HOST}:{port}" for name, port in self.proxy_ports.items()}

    @property
    def entry_url(self) -> str:
        return f"http://{HOST}:{self.ports[entry_service().name]}"

    def start_load(self, rate: float | None = None) -> None:
        argv = [
            self.python,
            "-m",
            "tracehound.shop.load",
            f"--url={self.entry_url}",
            f"--rate={rate or self.rate}",
            f"--seed={self.seed}",
        ]
        self.procs["load"] = spawn("load", argv, self.workdir / "load.log")

    def stop_load(self) -> None:
        proc = self.procs.pop("load", None)
        if proc is not None:
            stop_processes([proc])

    def stop(self) -> None:
        """Stop the load first, then the services and the proxy (by PID, see module doc)."""
        self.stop_load()
        stop_processes(list(self.procs.values()))
        self.procs.clear()

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults --------------------------------------------------------------------

    def inject(self, kind: str, service: str, **params: Any) -> None:
        """Switch a fault on at `service` (see `faults.py` for kinds and parameters)."""
        if service not in self.ports:
            raise ShopError(f"no service {service!r}; the shop has {', '.join(self.ports)}")
        if kind == "unavailable":
            self.kill(service)
        elif kind == "network":
            if service not in self.proxy_ports:
                raise ShopError(f"{service} is not behind the delay proxy; choose another")
            self._control(self.control_port, FaultSpec(kind="network", service=service, **params))
        elif kind in SERVICE_KINDS:
            self._control(self.ports[service], FaultSpec(kind=kind, **params))  # type: ignore[arg-type]
        else:
            raise ShopError(f"unknown fault kind {kind!r}")

    def clear(self, kind: str, service: str) -> None:
        """Switch the fault off again (a killed service is started again)."""
        if kind == "unavailable":
            self.restart(service)
        elif kind == "network":
            self._control(self.control_port, FaultSpec(kind="none", service=service))
        else:
            self._control(self.ports[service], FaultSpec(kind="none"))

    def kill(self, service: str) -> None:
        """SIGKILL the service's process: no flush, no goodbye."""
        proc = self.procs[service]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10.0)

    def restart(self, service: str) -> None:
        proc = self.procs.get(service)
        if proc is not None and proc.alive():
            return
        self._start_service(service)
        wait_ready(
            f"http://{HOST}:{self.ports[service]}/_health",
            self.procs[service],
            self.start_timeout_s,
        )

    def _control(self, port: int, spec: FaultSpec) -> None:
        url = f"http://{HOST}:{port}/_fault"
        try:
            response = httpx.post(url, content=spec.model_dump_json(), timeout=15.0)
        except httpx.HTTPError as exc:
            raise ShopError(f"cannot reach {url}: {exc}") from exc
        if response.status_code != 200:
            raise ShopError(f"{url} refused {spec.kind}: {response.text}")
