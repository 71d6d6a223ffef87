"""Fault injection: one fault per incident, and how it changes each span, call and metric.

ARCHITECTURE §7 table. A fault sits on one instance and starts inside the incident window;
the traffic and telemetry generators ask the functions here, for arrays of spans, what the
fault does to them. A request is judged by its arrival time: requests last milliseconds to
seconds, faults minutes.

| fault        | what it changes                                                         |
|--------------|-------------------------------------------------------------------------|
| cpu          | self-time of the victim's spans x2.5-4; its cpu metric +35-60 points    |
| memory       | memory climbs; GC slows the victim; at the limit an OOM kill + restart  |
| latency      | a fixed delay added to the victim's self-time (slow code path)          |
| network      | delay on every call into and out of the victim, lost packets retried;   |
|              | the gap between client and server spans grows, not the self-time       |
| error        | the victim throws: error status and logs there, calls it would have     |
|              | made are skipped, the error travels up to the root                      |
| wrong_return | the victim answers "ok" with bad data; its caller fails on it           |
| unavailable  | the victim is killed: calls to it are refused, it writes nothing more   |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracehound.errors import BadInput
from tracehound.model import FAULT_TYPES
from tracehound.simulate.arrays import BoolArray, FloatArray, IntArray
from tracehound.simulate.topology import System, expected_visits

_NS_PER_MIN = 60_000_000_000
_NS_PER_S = 1_000_000_000
#: How long an OOM-killed instance is away before its replacement serves again.
RESTART_DOWNTIME_NS = 20 * _NS_PER_S
#: A client gives up on a call after this long and reports a timeout.
CALL_TIMEOUT_MS = 3_000.0
#: A lost packet is resent after this long.
RETRANSMIT_MS = 300.0
EXCEPTIONS = (
    "NullPointerException",
    "IllegalStateException",
    "java.sql.SQLTransientConnectionException",
    "IndexOutOfBoundsException",
    "java.util.ConcurrentModificationException",
)


@dataclass(frozen=True)
class Fault:
    """One injected fault: what, where, from when and how strong."""

    fault_type: str
    service: int
    instance: int
    start_ns: int
    #: cpu: self-time factor; latency: added ms; network: delay ms; memory: MiB per minute
    magnitude: float = 0.0
    #: share of the victim's requests hit (error, wrong_return; packet loss for network)
    share: float = 0.0
    #: memory headroom before the OOM kill, MiB
    headroom_mib: float = 0.0
    #: the instance serves nothing in [down_from_ns, down_until_ns) (None: until the end)
    down_from_ns: int | None = None
    down_until_ns: int | None = None
    exception: str = ""


def _victim(system: System, rng: np.random.Generator) -> tuple[int, int]:
    """A (service, instance) that sees enough traffic for the fault to matter.

    Frontends are avoided so that every fault has callers to propagate to.
    """
    per_service = np.zeros(len(system.services))
    visits = system.entry_weight @ expected_visits(system)
    np.add.at(per_service, system.op_service, visits)
    per_instance = per_service / system.svc_inst_count
    eligible = ~system.is_entry_service if system.levels > 1 else system.is_entry_service
    weight = np.where(eligible, per_instance, 0.0)
    weight = np.where(weight >= 0.4 * weight.max(), weight, 0.0)
    service = int(rng.choice(len(weight), p=weight / weight.sum()))
    replica = int(rng.integers(system.svc_inst_count[service]))
    return service, int(system.svc_inst_start[service]) + replica


def choose_fault(
    system: System,
    rng: np.random.Generator,
    fault_type: str,
    window_start_ns: int,
    window_end_ns: int,
) -> Fault:
    """Draw the victim, start time and strength of a fault of `fault_type`."""
    if fault_type not in FAULT_TYPES:
        raise BadInput(f"unknown fault type {fault_type!r}", expected=f"one of {FAULT_TYPES}")
    service, instance = _victim(system, rng)
    length = window_end_ns - window_start_ns
    start = window_start_ns + int(rng.uniform(0.15, 0.45) * length) // _NS_PER_S * _NS_PER_S
    base = Fault(fault_type=fault_type, service=service, instance=instance, start_ns=start)
    if fault_type == "cpu":
        return _with(base, magnitude=rng.uniform(2.5, 4.0))
    if fault_type == "latency":
        return _with(base, magnitude=rng.uniform(150.0, 600.0))
    if fault_type == "network":
        return _with(base, magnitude=rng.uniform(150.0, 400.0), share=rng.uniform(0.05, 0.15))
    if fault_type in ("error", "wrong_return"):
        exception = EXCEPTIONS[int(rng.integers(len(EXCEPTIONS)))]
        return _with(base, share=rng.uniform(0.6, 0.95), exception=exception)
    if fault_type == "unavailable":
        return _with(base, down_from_ns=start)
    return _memory_fault(base, rng, window_end_ns)


def _with(fault: Fault, **changes: object) -> Fault:
    """A copy of `fault` with some fields replaced (floats from numpy made plain)."""
    values = {**fault.__dict__}
    for key, value in changes.items():
        values[key] = float(value) if isinstance(value, np.floating) else value
    return Fault(**values)


def _memory_fault(base: Fault, rng: np.random.Generator, window_end_ns: int) -> Fault:
    """A leak; when the headroom runs out before the window ends, an OOM kill and restart."""
    rate = rng.uniform(80.0, 200.0)
    headroom = rng.uniform(600.0, 1500.0)
    oom_at = base.start_ns + int(headroom / rate * _NS_PER_MIN)
    if oom_at + RESTART_DOWNTIME_NS < window_end_ns:
        return _with(
            base,
            magnitude=rate,
            headroom_mib=headroom,
            down_from_ns=oom_at,
            down_until_ns=oom_at + RESTART_DOWNTIME_NS,
            exception="java.lang.OutOfMemoryError",
        )
    return _with(base, magnitude=rate, headroom_mib=headroom)


def active(fault: Fault, instance: IntArray, t_ns: IntArray) -> BoolArray:
    """True where the span runs on the victim after the fault started."""
    return np.asarray((instance == fault.instance) & (t_ns >= fault.start_ns), dtype=np.bool_)


def is_down(fault: Fault, instance: IntArray, t_ns: IntArray) -> BoolArray:
    """True where a call would reach the victim while it is dead."""
    if fault.down_from_ns is None:
        return np.zeros(len(instance), dtype=bool)
    down = (instance == fault.instance) & (t_ns >= fault.down_from_ns)
    if fault.down_until_ns is not None:
        down &= t_ns < fault.down_until_ns
    return np.asarray(down, dtype=np.bool_)


def leaked_mib(fault: Fault, t_ns: IntArray) -> FloatArray:
    """Memory a leaking victim has gained by `t_ns`; the restart starts it from zero."""
    since = np.full(len(t_ns), fault.start_ns, dtype=np.int64)
    if fault.down_until_ns is not None:
        since = np.where(t_ns >= fault.down_until_ns, fault.down_until_ns, since)
    minutes = np.maximum(t_ns - since, 0) / _NS_PER_MIN
    return np.asarray(minutes * fault.magnitude, dtype=np.float64)


def scale_self_time(
    fault: Fault, instance: IntArray, t_ns: IntArray, self_ms: FloatArray, rng: np.random.Generator
) -> FloatArray:
    """Self-time after cpu contention, GC pressure or a slow code path on the victim."""
    hit = active(fault, instance, t_ns)
    if not hit.any() or fault.fault_type not in ("cpu", "memory", "latency"):
        return self_ms
    out = self_ms.copy()
    jitter = rng.lognormal(0.0, 0.2, size=int(hit.sum()))
    if fault.fault_type == "cpu":
        out[hit] *= fault.magnitude * jitter
    elif fault.fault_type == "latency":
        out[hit] += fault.magnitude * jitter
    else:
        pressure = leaked_mib(fault, t_ns[hit]) / fault.headroom_mib
        out[hit] *= 1.0 + 1.5 * np.minimum(pressure, 1.0) * jitter
    return out


def throws(fault: Fault, instance: IntArray, t_ns: IntArray, rng: np.random.Generator) -> BoolArray:
    """True where the victim raises an exception while serving the request."""
    if fault.fault_type != "error":
        return np.zeros(len(instance), dtype=bool)
    return active(fault, instance, t_ns) & (rng.random(len(instance)) < fault.share)


def returns_bad(
    fault: Fault, instance: IntArray, t_ns: IntArray, rng: np.random.Generator
) -> BoolArray:
    """True where the victim answers successfully but with a wrong value."""
    if fault.fault_type != "wrong_return":
        return np.zeros(len(instance), dtype=bool)
    return active(fault, instance, t_ns) & (rng.random(len(instance)) < fault.share)


def network_delay(
    fault: Fault,
    caller: IntArray,
    callee: IntArray,
    t_ns: IntArray,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Extra ms on the request leg and the response leg of calls, and which calls retried.

    The victim's egress is delayed: its requests to others (request leg of calls out of it)
    and its responses to callers (response leg of calls into it). Lost packets are resent
    after `RETRANSMIT_MS`.
    """
    zeros = np.zeros(len(caller))
    if fault.fault_type != "network":
        return zeros, zeros.copy(), np.zeros(len(caller), dtype=bool)
    late = t_ns >= fault.start_ns
    outgoing = late & (caller == fault.instance)
    incoming = late & (callee == fault.instance)
    jitter = rng.uniform(0.8, 1.2, size=len(caller))
    lost = (outgoing | incoming) & (rng.random(len(caller)) < fault.share)
    request_leg = np.where(outgoing, fault.magnitude * jitter, 0.0)
    response_leg = np.where(incoming, fault.magnitude * jitter, 0.0)
    response_leg += np.where(lost, RETRANSMIT_MS, 0.0)
    return request_leg, response_leg, lost


def cpu_shift(fault: Fault, instance: IntArray, ts_ns: IntArray) -> FloatArray:
    """Percentage points the fault adds to the cpu_usage metric."""
    hit = active(fault, instance, ts_ns)
    if fault.fault_type == "cpu":
        return np.where(hit, 15.0 * fault.magnitude, 0.0)
    if fault.fault_type == "memory":
        return np.where(hit, 12.0 * np.minimum(leaked_mib(fault, ts_ns) / fault.headroom_mib, 1), 0)
    return np.zeros(len(instance))


def memory_shift(fault: Fault, instance: IntArray, ts_ns: IntArray) -> FloatArray:
    """MiB the fault adds to the memory_usage metric."""
    if fault.fault_type != "memory":
        return np.zeros(len(instance))
    return np.where(active(fault, instance, ts_ns), leaked_mib(fault, ts_ns), 0.0)
