"""Faults of the demo system, switched on and off at run time without a restart.

Each service process (and the delay proxy) holds a `FaultState`, set through
`POST /_fault` with a `FaultSpec` as JSON; `{"kind": "none"}` clears it. What each kind
does, and so which signals it leaves (ARCHITECTURE §7):

| kind         | where            | what happens                                              |
|--------------|------------------|-----------------------------------------------------------|
| latency      | service          | the handler sleeps `delay_ms` more (its own self-time)    |
| error        | service          | the handler raises: 500, error status, traceback logged   |
| wrong_return | service          | it answers 200 with a negative value; its caller rejects  |
| cpu          | service          | `threads` busy loops in the process: CPU up, handlers slow|
| memory       | service          | allocations grow by `rate_mb_s` up to `limit_mb`: RSS up  |
| network      | proxy            | bytes to and from the service wait `delay_ms` per leg     |
| unavailable  | system           | the process is killed (SIGKILL): callers fail to connect  |

`unavailable` is not a state a process can hold: `system.py` kills the process.
"""

from __future__ import annotations

import builtins
import random
import threading
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Every fault kind, in the order of `tracehound.model.FAULT_TYPES`.
FAULT_KINDS = ("cpu", "memory", "latency", "network", "error", "wrong_return", "unavailable")
#: Kinds a service process injects into itself.
SERVICE_KINDS = ("cpu", "memory", "latency", "error", "wrong_return")

FaultKind = Literal[
    "none", "cpu", "memory", "latency", "network", "error", "wrong_return", "unavailable"
]


class FaultSpec(BaseModel):
    """A fault as the control endpoint takes it (JSON); unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind = "none"
    #: latency: extra ms in the handler; network: ms added to each leg of a connection
    delay_ms: float = Field(default=250.0, ge=0.0, le=10_000.0)
    #: error, wrong_return, latency: share of requests hit
    share: float = Field(default=1.0, ge=0.0, le=1.0)
    #: cpu: busy threads
    threads: int = Field(default=1, ge=1, le=8)
    #: memory: growth rate and bound
    rate_mb_s: float = Field(default=20.0, gt=0.0, le=500.0)
    limit_mb: float = Field(default=300.0, gt=0.0, le=2_000.0)
    #: network: the service behind the proxy (the proxy fronts several)
    service: str | None = None
    #: error: the exception class name raised in the handler
    exception: str = "RuntimeError"


class HandlerFailure(Exception):
    """Base of the exceptions an `error` fault raises (named after the spec's class)."""


def exception_class(name: str) -> type[Exception]:
    """A built-in exception class by name, or a `HandlerFailure` subclass of that name."""
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        return builtin
    return type(name, (HandlerFailure,), {})


class FaultState:
    """The fault a service process currently has, and the machinery that runs it.

    Handlers ask `hits()` whether this request is affected; cpu and memory faults run in
    background threads that `set` starts and stops. Thread-safe.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._spec = FaultSpec()
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._leak: list[bytes] = []

    @property
    def spec(self) -> FaultSpec:
        return self._spec

    def set(self, spec: FaultSpec) -> None:
        """Replace the current fault; background work of the old one stops first."""
        with self._lock:
            self._stop_background()
            self._spec = spec
            if spec.kind == "cpu":
                self._start(spec.threads, _burn)
            elif spec.kind == "memory":
                self._start(1, self._grow)

    def clear(self) -> None:
        self.set(FaultSpec())

    def hits(self, kind: str) -> bool:
        """Whether the current request is hit by a fault of `kind`."""
        spec = self._spec
        if spec.kind != kind:
            return False
        with self._lock:
            return self._rng.random() < spec.share

    @property
    def leaked_mb(self) -> float:
        return sum(len(chunk) for chunk in self._leak) / 1e6

    def _start(self, count: int, target: Callable[[threading.Event], None]) -> None:
        self._stop = threading.Event()
        for i in range(count):
            thread = threading.Thread(
                target=target, args=(self._stop,), name=f"fault-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _stop_background(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads = []
        self._leak = []

    def _grow(self, stop: threading.Event) -> None:
        """Keep 1 MB chunks (every page written, so they count in RSS) up to the limit."""
        spec = self._spec
        tick = 0.1
        per_tick = max(1, round(spec.rate_mb_s * tick))
        while not stop.wait(tick):
            if self.leaked_mb + per_tick > spec.limit_mb:
                continue
            for _ in range(per_tick):
                self._leak.append(bytes([len(self._leak) % 251]) * 1_000_000)


def _burn(stop: threading.Event) -> None:
    """A runaway pure-Python computation: holds a core and competes for the GIL."""
    value = 0
    while not stop.is_set():
        for i in range(10_000):
            value = (value * 31 + i) % 1_000_003
