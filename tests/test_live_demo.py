"""The live demo system (tracehound.shop): topology, faults, the delay proxy, and end to end.

The end-to-end test starts the real thing: `tracehound collect`, eight services
instrumented with the OpenTelemetry SDK exporting OTLP/HTTP to it, the delay proxy and the
load generator, all on 127.0.0.1. It records one normal window, injects each of the seven
fault kinds in turn (one system start for all), and investigates every fault from the
collected store with rclagent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
import time
import warnings
from pathlib import Path

import pytest

from tracehound.errors import BadInput
from tracehound.shop import topology
from tracehound.shop.faults import FAULT_KINDS, FaultSpec, FaultState
from tracehound.shop.live_demo import LiveDemo, choose_fault
from tracehound.shop.proxy import DelayProxy, Route
from tracehound.shop.service import ShopService
from tracehound.shop.system import free_ports, spawn, stop_processes

with warnings.catch_warnings():
    # starlette's test client warns that it prefers httpx2; httpx serves it fine here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

# -- topology -------------------------------------------------------------------------


def test_topology_has_six_services_three_levels_and_consistent_calls() -> None:
    names = topology.service_names()
    assert len(names) >= 6 and len(set(names)) == len(names)
    assert topology.depth() >= 3
    for svc in topology.SERVICES:
        for ep in svc.endpoints:
            for call in ep.calls:
                target = topology.service(call.service)
                assert target.endpoint(call.method, call.path).field
                assert not target.entry
    assert [s.name for s in topology.SERVICES if s.entry] == [topology.entry_service().name]
    for method, path, _ in topology.LOAD_MIX:
        assert topology.entry_service().endpoint(method, path)
    assert set(topology.callers_of("inventory")) == {"catalog", "shipping"}
    assert topology.instance_id("cart") == "cart-0"
    with pytest.raises(KeyError, match="no service"):
        topology.service("nope")


def test_choose_fault_is_seeded_and_checks_its_input() -> None:
    assert choose_fault(3, None, None) == choose_fault(3, None, None)
    kind, service = choose_fault(3, None, None)
    assert kind in FAULT_KINDS and service in topology.internal_services()
    assert choose_fault(0, "network", "cart") == ("network", "cart")
    with pytest.raises(BadInput, match="--fault"):
        choose_fault(0, "meteor", None)
    with pytest.raises(BadInput, match="--service"):
        choose_fault(0, "cpu", topology.entry_service().name)


def test_demo_live_refuses_bad_options_before_starting_anything() -> None:
    from cli_helpers import assert_bad_input, run_cli

    assert_bad_input(run_cli("demo", "--live", "--fault", "gremlins"), "--fault", "unavailable")
    assert_bad_input(run_cli("demo", "--live", "--service", "frontend"), "--service", "pricing")
    assert_bad_input(run_cli("demo", "--live", "--format", "html"), "--format", "text or json")


# -- faults ---------------------------------------------------------------------------


def test_fault_state_runs_and_stops_cpu_and_memory_work() -> None:
    state = FaultState()
    before = {t.name for t in threading.enumerate()}
    state.set(FaultSpec(kind="cpu", threads=1))
    assert any(t.name.startswith("fault-") for t in threading.enumerate())
    state.clear()
    assert {t.name for t in threading.enumerate()} <= before | {"MainThread"}

    state.set(FaultSpec(kind="memory", rate_mb_s=40.0, limit_mb=6.0))
    deadline = time.monotonic() + 10.0
    while state.leaked_mb < 4.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert 4.0 <= state.leaked_mb <= 6.0  # grows, and stays under its limit
    state.clear()
    assert state.leaked_mb == 0.0


def test_fault_state_hits_only_its_kind_at_its_share() -> None:
    state = FaultState(seed=1)
    state.set(FaultSpec(kind="error", share=0.5))
    hits = sum(state.hits("error") for _ in range(2000))
    assert 850 < hits < 1150
    assert not state.hits("latency")
    state.clear()
    assert not state.hits("error")


def _leaf_client() -> TestClient:
    shop = ShopService(topology.service("pricing"), {})
    return TestClient(shop.app())


def test_faults_toggle_at_run_time_through_the_control_endpoint() -> None:
    with _leaf_client() as client:
        ok = client.get("/price", params={"item": 7})
        assert ok.status_code == 200 and ok.json()["price"] > 0

        assert client.post("/_fault", json={"kind": "error"}).status_code == 200
        assert client.get("/_fault").json()["kind"] == "error"
        assert client.get("/price", params={"item": 7}).status_code == 500

        client.post("/_fault", json={"kind": "wrong_return"})
        wrong = client.get("/price", params={"item": 7})
        assert wrong.status_code == 200 and wrong.json()["price"] < 0

        client.post("/_fault", json={"kind": "latency", "delay_ms": 200})
        started = time.perf_counter()
        assert client.get("/price").status_code == 200
        assert time.perf_counter() - started >= 0.2

        client.post("/_fault", json={"kind": "none"})
        assert client.get("/price", params={"item": 7}).json() == ok.json()

        assert client.post("/_fault", json={"kind": "network"}).status_code == 422
        assert client.post("/_fault", json={"kind": "cpu", "bogus": 1}).status_code == 422


# -- the delay proxy ------------------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65_536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(port: int, payload: bytes) -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(payload)
    await writer.drain()
    received = await reader.readexactly(len(payload))
    elapsed = time.perf_counter() - started
    writer.close()
    return received, elapsed


def test_proxy_delays_both_legs_and_keeps_bytes_intact() -> None:
    async def scenario() -> None:
        upstream = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = upstream.sockets[0].getsockname()[1]
        proxy = DelayProxy([Route("echo", 0, port)])
        await proxy.start()
        front = proxy.routes[0].listen_port
        payload = os.urandom(300_000)
        try:
            received, fast = await _round_trip(front, payload)
            assert received == payload
            proxy.set_delay("echo", 150.0)
            received, slow = await _round_trip(front, payload)
            assert received == payload
            assert slow >= 0.3  # 150 ms on the way in, 150 ms on the way out
            assert slow - fast >= 0.25
            proxy.clear()
            received, again = await _round_trip(front, b"x")
            assert received == b"x" and again < 0.25
            with pytest.raises(KeyError):
                proxy.set_delay("nope", 10.0)
        finally:
            await proxy.stop()
            upstream.close()

    asyncio.run(asyncio.wait_for(scenario(), 30.0))


def test_proxy_closes_the_connection_when_the_service_is_gone() -> None:
    async def scenario() -> None:
        upstream = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = upstream.sockets[0].getsockname()[1]
        upstream.close()
        await upstream.wait_closed()
        proxy = DelayProxy([Route("gone", 0, port)])
        await proxy.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.routes[0].listen_port)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            assert await asyncio.wait_for(reader.read(100), 5.0) == b""
            writer.close()
        finally:
            await proxy.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30.0))


# -- end to end -----------------------------------------------------------------------

#: Which service gets which fault, in this order (a killed instance last: it stays dead).
PLAN = (
    ("cpu", "catalog"),
    ("memory", "payment"),
    ("latency", "shipping"),
    ("network", "inventory"),
    ("error", "cart"),
    ("wrong_return", "pricing"),
    ("unavailable", "payment"),
)
BASELINE_S = 20.0
FAULT_S = 12.0
SETTLE_S = 4.0
#: Requests per second of the load generator (the machine is small and shared).
RATE = 15.0

needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.sdk") is None,
    reason="the OpenTelemetry SDK (tracehound[demo]) is not installed",
)


@pytest.mark.integration
@needs_sdk
def test_live_demo_ranks_the_injected_service_first(tmp_path: Path) -> None:
    # TRACEHOUND_LIVE_KEEP=DIR keeps the store, the windows, the results and the logs there
    keep = os.environ.get("TRACEHOUND_LIVE_KEEP")
    if keep:
        tmp_path = Path(keep)
        tmp_path.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    demo = LiveDemo(tmp_path / "live", rate=RATE)
    try:
        demo.start()
        demo.baseline(BASELINE_S)
        injected = [
            demo.inject(kind, service, FAULT_S, settle_s=SETTLE_S, restore=False)
            for kind, service in PLAN
        ]
        time.sleep(2.0)  # the last fault's telemetry reaches the collector
    finally:
        demo.stop()
    results = []
    for item in injected:
        investigation = demo.investigate(item)
        top3 = [(c.name, round(c.score, 3)) for c in investigation.ranking.services[:3]]
        results.append(
            {
                "fault": item.fault,
                "service": item.service,
                "first": bool(top3) and top3[0][0] == item.service,
                "top3": top3,
                "fault_type": investigation.fault_type,
                "rows": investigation.stats.get("rows"),
            }
        )
    elapsed = time.monotonic() - started
    windows = {
        "normal": [demo.normal_window.start_ns, demo.normal_window.end_ns],
        "inj": [[i.service, i.fault, i.window.start_ns, i.window.end_ns] for i in injected],
    }
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    summary = json.dumps({"seconds": round(elapsed, 1), "results": results}, indent=1)
    (tmp_path / "results.json").write_text(summary)
    print(summary)
    for item in results:
        rows = item["rows"]
        assert isinstance(rows, dict) and rows["spans"] and rows["logs"] and rows["metrics"]
    hits = sum(bool(item["first"]) for item in results)
    assert hits >= 6, f"injected service ranked first for {hits} of 7 faults:\n{summary}"


# -- processes ------------------------------------------------------------------------


def test_free_ports_are_distinct_and_bindable() -> None:
    import socket

    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_stop_processes_ends_the_process_group(tmp_path: Path) -> None:
    import sys

    psutil = pytest.importorskip("psutil")

    # a parent that ignores SIGTERM and has a child: both must be gone afterwards
    code = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('up', flush=True); time.sleep(60)"
    )
    proc = spawn("stubborn", [sys.executable, "-c", code], tmp_path / "stubborn.log")
    deadline = time.monotonic() + 20.0
    while "up" not in (tmp_path / "stubborn.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    stop_processes([proc], grace_s=0.5)
    assert not proc.alive() and time.monotonic() - started < 10.0
    time.sleep(0.2)
    left = [
        p
        for p in psutil.process_iter(["pid", "status"])
        if _group(p.info["pid"]) == proc.pid and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert left == []


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
