"""The live demo, end to end: collector, shop, load, baseline, fault, investigation.

`LiveDemo` is used by `tracehound demo --live` and by the end-to-end test:

1. start `tracehound collect` on a free port, writing a DuckDB store in the work dir;
2. start the shop's processes (`system.py`) exporting OTLP/HTTP to it, and the load;
3. record a normal window (`baseline`), then for each fault switch it on, wait, switch it
   off (`inject`), and let the system settle;
4. `investigate` an injected fault from the store: a snapshot of the normal window and of
   the fault window (nothing in between, so other faults do not leak in), an `Incident`
   with both windows, and rclagent's `investigate`;
5. stop everything by PID (also on failure).

The incident's labels say what was injected; the method never reads them (they are the
ground truth the report is compared with).
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tracehound.errors import BadInput, TracehoundError
from tracehound.investigation import Investigation
from tracehound.model import Alert, Incident, Labels, Window, datetime_from_ns
from tracehound.shop.faults import FAULT_KINDS
from tracehound.shop.system import (
    HOST,
    Proc,
    ShopError,
    ShopSystem,
    free_ports,
    spawn,
    stop_processes,
    wait_listening,
)
from tracehound.shop.topology import entry_service, instance_id, internal_services
from tracehound.store import TelemetryStore
from tracehound.tables import TABLE_NAMES

#: Fault parameters of the demo, per kind: strong enough to matter, as in production
#: incidents (partial failure for errors, a few hundred ms for slowness).
FAULT_PARAMS: dict[str, dict[str, Any]] = {
    "cpu": {"threads": 1},
    "memory": {"rate_mb_s": 25.0, "limit_mb": 300.0},
    "latency": {"delay_ms": 250.0, "share": 1.0},
    "network": {"delay_ms": 150.0},
    "error": {"share": 0.8, "exception": "RuntimeError"},
    "wrong_return": {"share": 0.8},
    "unavailable": {},
}
#: Telemetry reaches the store within this long after it was produced (batch delay,
#: metric export interval, collector flush), with margin for a busy machine.
SETTLE_S = 3.0


def now_ns() -> int:
    return time.time_ns()


@dataclass(frozen=True)
class Injected:
    """A fault that was switched on at `service` during `window`."""

    service: str
    fault: str
    window: Window

    def as_dict(self) -> dict[str, str]:
        return {"service": self.service, "fault": self.fault}


def choose_fault(seed: int, fault: str | None, service: str | None) -> tuple[str, str]:
    """The (fault kind, service) to inject: as given, the rest drawn with `seed`.

    Services the load generator calls directly are not chosen (a fault needs callers to
    propagate to, and the network delay proxy fronts only the internal services).
    """
    rng = random.Random(seed)
    kind = fault or rng.choice(FAULT_KINDS)
    if kind not in FAULT_KINDS:
        raise BadInput(f"unknown fault {kind!r}", column="--fault", expected=", ".join(FAULT_KINDS))
    candidates = internal_services()
    target = service or rng.choice(candidates)
    if target not in candidates:
        raise BadInput(
            f"cannot inject into {target!r}",
            column="--service",
            expected=", ".join(candidates),
            hint=f"The entry service {entry_service().name} has no callers to propagate to.",
        )
    return kind, target


@dataclass
class LiveDemo:
    """Collector + shop + load, as a context manager (see module docstring)."""

    workdir: Path | None = None
    rate: float = 40.0
    seed: int = 0
    #: the command that runs the collector; `{store}` and `{listen}` are filled in
    collector: Sequence[str] = (
        sys.executable,
        "-m",
        "tracehound",
        "collect",
        "--store",
        "{store}",
        "--listen",
        "{listen}",
    )
    start_timeout_s: float = 90.0
    system: ShopSystem | None = None
    _collector: Proc | None = None
    _tmp: Path | None = None
    _baseline: Window | None = None
    injected: list[Injected] = field(default_factory=list)

    @property
    def store_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "telemetry.duckdb"

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self.workdir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="tracehound-live-"))
            self.workdir = self._tmp
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            port = free_ports(1)[0]
            argv = [
                part.format(store=self.store_path, listen=f"{HOST}:{port}")
                for part in self.collector
            ]
            self._collector = spawn("collector", argv, self.workdir / "collector.log")
            wait_listening(port, self._collector, self.start_timeout_s)
            self.system = ShopSystem(
                self.workdir,
                otlp=f"http://{HOST}:{port}",
                rate=self.rate,
                seed=self.seed,
                start_timeout_s=self.start_timeout_s,
            )
            self.system.start()
            self.system.start_load()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the load, the shop and then the collector (so it flushes what it got)."""
        if self.system is not None:
            self.system.stop()
        if self._collector is not None:
            stop_processes([self._collector], grace_s=30.0)
            self._collector = None

    def cleanup(self) -> None:
        """Remove the work dir when it was a temporary one."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def pids(self) -> dict[str, int]:
        pids = self.system.pids() if self.system is not None else {}
        if self._collector is not None:
            pids["collector"] = self._collector.pid
        return pids

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

    # -- the incident --------------------------------------------------------------

    def baseline(self, seconds: float, *, warm_up_s: float = 5.0) -> Window:
        """Let the system warm up, then record `seconds` of normal operation."""
        time.sleep(warm_up_s)
        start = now_ns()
        time.sleep(seconds)
        self._baseline = Window.from_ns(start, now_ns())
        return self._baseline

    def inject(
        self,
        fault: str,
        service: str,
        seconds: float,
        *,
        settle_s: float = 0.0,
        restore: bool = True,
        **params: Any,
    ) -> Injected:
        """Switch `fault` on at `service` for `seconds`, off again, then wait `settle_s`.

        A killed service is started again when `restore` (its telemetry restarts under the
        same instance id).
        """
        system = self._running()
        options = {**FAULT_PARAMS.get(fault, {}), **params}
        start = now_ns()
        system.inject(fault, service, **options)
        time.sleep(seconds)
        end = now_ns()
        if fault != "unavailable" or restore:
            system.clear(fault, service)
        injected = Injected(service, fault, Window.from_ns(start, end))
        self.injected.append(injected)
        time.sleep(settle_s)
        return injected

    @property
    def normal_window(self) -> Window:
        """The window `baseline` recorded (`ShopError` before there is one)."""
        if self._baseline is None:
            raise ShopError("no normal window yet; call baseline() first")
        return self._baseline

    def _running(self) -> ShopSystem:
        if self.system is None:
            raise ShopError("the live demo is not running; call start() first")
        return self.system

    def incident(self, injected: Injected, normal: Window | None = None) -> Incident:
        normal = normal or self._baseline
        entry = entry_service().name
        return Incident(
            id=f"live-{injected.fault}-{injected.service}-{injected.window.start_ns // 10**9}",
            system="tracehound-shop",
            window=injected.window,
            normal_window=normal,
            alert=Alert(
                time=injected.window.start,
                service=entry,
                message="entry requests fail or slow down",
            ),
            labels=Labels(
                service=injected.service,
                instance=instance_id(injected.service),
                fault_type=injected.fault,
                fault_start=datetime_from_ns(injected.window.start_ns),
            ),
        )

    def snapshot(self, injected: Injected, normal: Window | None = None) -> TelemetryStore:
        """An in-memory store with the normal window's and the fault window's telemetry."""
        from tracehound.otlp.filestore import snapshot

        normal = normal or self._baseline
        wait = injected.window.end_ns / 1e9 + SETTLE_S - time.time()
        if wait > 0 and self._collector is not None:
            time.sleep(wait)
        window = injected.window
        store = snapshot(self.store_path, since_ns=window.start_ns, until_ns=window.end_ns)
        if normal is not None:
            with snapshot(
                self.store_path, since_ns=normal.start_ns, until_ns=normal.end_ns
            ) as before:
                for name in TABLE_NAMES:
                    table = before.query(f"SELECT * FROM {name}")
                    if table.num_rows:
                        store.add_table(name, table)
        return store

    def investigate(
        self,
        injected: Injected,
        *,
        normal: Window | None = None,
        method: str = "rclagent",
        params: dict[str, Any] | None = None,
    ) -> Investigation:
        """Investigate an injected fault from the store (see module docstring)."""
        from tracehound.methods import get_method

        incident = self.incident(injected, normal)
        chosen = get_method(method, **(params or {}))
        started = time.perf_counter()
        with self.snapshot(injected, normal) as store:
            loaded = time.perf_counter()
            explain = getattr(chosen, "investigate", None)
            if callable(explain):
                result = explain(incident, store)
            else:
                ranking = chosen.localize(incident, store)
                result = Investigation.from_ranking(
                    incident, method, ranking, modalities=store.modalities()
                )
            counts = store.counts()
        finished = time.perf_counter()
        if not isinstance(result, Investigation):
            raise ShopError(f"method {method!r} returned {type(result).__name__}")
        stats = {
            **result.stats,
            "wall_time_s": round(finished - loaded, 4),
            "load_time_s": round(loaded - started, 4),
            "rows": counts,
        }
        return result.model_copy(update={"stats": stats})


#: Durations of `tracehound demo --live` (seconds).
DEMO_BASELINE_S = 20.0
DEMO_FAULT_S = 15.0


def require_sdk() -> None:
    """`TracehoundError` telling how to install the OpenTelemetry SDK when it is missing."""
    import importlib.util

    missing = [
        name
        for name in (
            "opentelemetry.sdk",
            "opentelemetry.exporter.otlp.proto.http",
            "opentelemetry.instrumentation.asgi",
            "opentelemetry.instrumentation.httpx",
            "psutil",
        )
        if _find(importlib.util.find_spec, name) is None
    ]
    if missing:
        raise TracehoundError(
            f"the live demo needs the OpenTelemetry SDK ({', '.join(missing)} not installed); "
            "install it with: pip install 'tracehound[demo]'"
        )


def _find(find_spec: Any, name: str) -> object:
    try:
        found: object = find_spec(name)
    except ModuleNotFoundError:
        return None
    return found


def run_live_demo(
    *,
    fault: str | None,
    service: str | None,
    seed: int,
    workdir: Path | None = None,
    rate: float = 15.0,
    baseline_s: float = DEMO_BASELINE_S,
    fault_s: float = DEMO_FAULT_S,
    progress: Any = None,
) -> tuple[Investigation, Injected, Path]:
    """Start everything, inject one fault, stop everything, investigate it.

    `progress(message)` is told what happens. Returns the investigation, what was
    injected, and the work dir (the telemetry store and every process's log).
    """
    require_sdk()
    kind, target = choose_fault(seed, fault, service)
    say = progress or (lambda _message: None)
    demo = LiveDemo(workdir, rate=rate, seed=seed)
    say("starting the collector, the shop's services, the delay proxy and the load")
    with demo:
        say(f"started (pids {demo.pids()}); recording {baseline_s:.0f} s of normal traffic")
        normal = demo.baseline(baseline_s)
        say(f"injecting {kind} at {target} for {fault_s:.0f} s")
        injected = demo.inject(kind, target, fault_s, restore=False)
        time.sleep(SETTLE_S)
        say("stopping every process")
    say("investigating with rclagent")
    investigation = demo.investigate(injected, normal=normal)
    assert demo.workdir is not None
    return investigation, injected, demo.workdir


def live_demo_command(
    *,
    fault: str | None,
    service: str | None,
    seed: int,
    fmt: str,
    out: Path | None,
    stdout: Any,
    stderr: Any,
) -> None:
    """`tracehound demo --live`: run the demo and print the report (text or JSON)."""
    import json

    from tracehound.report import print_text
    from tracehound.report.json import report_object

    if fmt not in ("text", "json"):
        raise BadInput(f"unknown format {fmt!r}", column="--format", expected="text or json")
    fault, service = choose_fault(seed, fault, service)
    require_sdk()
    workdir = out if out is not None else Path(tempfile.mkdtemp(prefix="tracehound-live-"))

    def say(message: str) -> None:
        stderr.print(f"[dim]live demo:[/] {message}", highlight=False)

    investigation, injected, workdir = run_live_demo(
        fault=fault, service=service, seed=seed, workdir=workdir, progress=say
    )
    if fmt == "json":
        data = report_object(investigation)
        data["injected"] = injected.as_dict()
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        print_text(investigation, stdout)
        root = investigation.root_cause
        hit = root is not None and root.service == injected.service
        verdict = "[green]matches[/]" if hit else "[red]differs from[/]"
        stdout.print(
            f"\nThe answer {verdict} the injected fault: {injected.fault} at {injected.service}."
        )
    say(f"telemetry store and process logs kept in {workdir}")
