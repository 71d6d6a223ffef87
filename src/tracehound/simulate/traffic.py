"""Requests through the system: arrivals with a daily shape, traces walked level by level.

Each request is a trace that starts at an entry operation and walks the call graph. An
execution of an operation is a *server* span on one instance; each call it makes is a
*client* span on the caller's instance whose child server span runs on a randomly chosen
instance of the callee. Everything is generated a call-graph level at a time as arrays:

1. top-down, which calls happen, on which instances, and what the fault does to each
   (exceptions skip the calls a handler would have made; calls to a dead instance are
   refused and have no server span);
2. bottom-up, durations (server = self-time + its calls, made one after another;
   client = request gap + server + response gap) and error status, which travels up;
3. top-down again, start times.

Python loops run over levels only, never over spans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tracehound.simulate.arrays import BoolArray, FloatArray, IntArray, group_first
from tracehound.simulate.faults import (
    CALL_TIMEOUT_MS,
    Fault,
    is_down,
    network_delay,
    returns_bad,
    scale_self_time,
    throws,
)
from tracehound.simulate.topology import System

_NS_PER_S = 1_000_000_000
_SECONDS_PER_DAY = 86_400
#: median one-way network time between a client span and its server span, ms
_GAP_MEDIAN_MS = 0.4


def arrivals(
    rng: np.random.Generator,
    start_ns: int,
    end_ns: int,
    requests_per_second: float,
    *,
    daily_amplitude: float = 0.35,
    noise: float = 0.12,
    noise_step_s: int = 15,
) -> IntArray:
    """Sorted request arrival times: a daily sinusoid times noise, Poisson per second.

    `requests_per_second` is the mean rate over [start, end); the daily shape tilts it
    (busiest mid-afternoon) and a lognormal factor per `noise_step_s` adds burstiness.
    """
    seconds = max(1, (end_ns - start_ns) // _NS_PER_S)
    second_ns = start_ns + np.arange(seconds, dtype=np.int64) * _NS_PER_S
    day_fraction = (second_ns // _NS_PER_S % _SECONDS_PER_DAY) / _SECONDS_PER_DAY
    shape = 1.0 + daily_amplitude * np.sin(2.0 * math.pi * (day_fraction - 0.375))
    bursts = rng.lognormal(0.0, noise, size=seconds // noise_step_s + 1)
    rate = requests_per_second * shape / shape.mean() * np.repeat(bursts, noise_step_s)[:seconds]
    counts = rng.poisson(rate)
    times = np.repeat(second_ns, counts) + rng.integers(0, _NS_PER_S, size=int(counts.sum()))
    return np.sort(times)


@dataclass(frozen=True, eq=False)
class Traffic:
    """All spans of all requests, as arrays; server and client spans kept apart.

    Indices are global: `srv_parent` points into the client arrays, `cli_owner` and
    `cli_child` into the server arrays (-1: root / the call never reached a server).
    """

    trace_start_ns: IntArray
    srv_trace: IntArray
    srv_op: IntArray
    srv_inst: IntArray
    srv_parent: IntArray
    srv_start_ns: IntArray
    srv_dur_ns: IntArray
    srv_self_ms: FloatArray
    srv_error: BoolArray
    #: the span raised the exception (the cause of an `error` fault)
    srv_threw: BoolArray
    #: the span answered with a wrong value (`wrong_return` cause; status stays ok)
    srv_bad_return: BoolArray
    #: the span failed on a child's wrong value (where `wrong_return` surfaces)
    srv_detected_bad: BoolArray
    cli_owner: IntArray
    cli_callee_op: IntArray
    cli_callee_inst: IntArray
    cli_child: IntArray
    cli_start_ns: IntArray
    cli_dur_ns: IntArray
    cli_error: BoolArray
    cli_refused: BoolArray
    cli_timeout: BoolArray
    cli_retried: BoolArray

    @property
    def span_count(self) -> int:
        """Server plus client spans."""
        return len(self.srv_op) + len(self.cli_owner)


@dataclass(eq=False)
class _Level:
    """Server spans on one depth of the trace trees, and the calls they make."""

    trace: IntArray
    op: IntArray
    inst: IntArray
    t_ns: IntArray
    parent: IntArray
    self_ms: FloatArray = field(default_factory=lambda: np.zeros(0))
    pre_share: FloatArray = field(default_factory=lambda: np.zeros(0))
    threw: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    bad: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    dur_ms: FloatArray = field(default_factory=lambda: np.zeros(0))
    err: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    detected: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    start_ms: FloatArray = field(default_factory=lambda: np.zeros(0))
    c_owner: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    c_op: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    c_inst: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    c_child: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    c_refused: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    c_retried: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    c_gap_in: FloatArray = field(default_factory=lambda: np.zeros(0))
    c_gap_out: FloatArray = field(default_factory=lambda: np.zeros(0))
    c_dur_ms: FloatArray = field(default_factory=lambda: np.zeros(0))
    c_err: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    c_timeout: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    c_start_ms: FloatArray = field(default_factory=lambda: np.zeros(0))


def pick_instances(system: System, service: IntArray, rng: np.random.Generator) -> IntArray:
    """A uniformly random instance of each given service (client-side load balancing)."""
    count = system.svc_inst_count[service]
    replica = np.floor(rng.random(len(service)) * count).astype(np.int64)
    return np.asarray(system.svc_inst_start[service] + replica, dtype=np.int64)


def _serve(level: _Level, system: System, fault: Fault, rng: np.random.Generator) -> None:
    """Self-time and fault outcome of each server span on this level."""
    n = len(level.op)
    base = system.op_median_ms[level.op] * np.exp(system.op_sigma[level.op] * rng.normal(size=n))
    self_ms = scale_self_time(fault, level.inst, level.t_ns, base, rng)
    level.threw = throws(fault, level.inst, level.t_ns, rng)
    # An exception cuts the handler short: less work, and no calls after it.
    level.self_ms = np.where(level.threw, self_ms * rng.uniform(0.2, 0.6, size=n), self_ms)
    level.bad = returns_bad(fault, level.inst, level.t_ns, rng)
    level.pre_share = rng.uniform(0.2, 0.6, size=n)


def _call(level: _Level, system: System, fault: Fault, rng: np.random.Generator) -> _Level:
    """The calls this level makes, and the server spans they start on the next level."""
    first_edge = system.op_edge_start[level.op]
    degree = np.where(level.threw, 0, system.op_edge_start[level.op + 1] - first_edge)
    owner = np.repeat(np.arange(len(level.op), dtype=np.int64), degree)
    position = np.arange(len(owner), dtype=np.int64) - (np.cumsum(degree) - degree)[owner]
    edge = first_edge[owner] + position
    made = rng.random(len(edge)) < system.edge_prob[edge]
    owner, edge = owner[made], edge[made]
    callee_op = system.edge_dst[edge]
    callee_inst = pick_instances(system, system.op_service[callee_op], rng)
    t_ns = level.t_ns[owner]
    request_extra, response_extra, retried = network_delay(
        fault, level.inst[owner], callee_inst, t_ns, rng
    )
    level.c_owner, level.c_op, level.c_inst = owner, callee_op, callee_inst
    level.c_refused = is_down(fault, callee_inst, t_ns)
    level.c_retried = retried
    level.c_gap_in = rng.lognormal(math.log(_GAP_MEDIAN_MS), 0.4, len(owner)) + request_extra
    level.c_gap_out = rng.lognormal(math.log(_GAP_MEDIAN_MS), 0.4, len(owner)) + response_extra
    arrived = np.flatnonzero(~level.c_refused)
    level.c_child = np.full(len(owner), -1, dtype=np.int64)
    level.c_child[arrived] = np.arange(len(arrived), dtype=np.int64)
    return _Level(
        trace=level.trace[owner[arrived]],
        op=callee_op[arrived],
        inst=callee_inst[arrived],
        t_ns=t_ns[arrived],
        parent=arrived,
    )


def _finish(level: _Level, below: _Level | None, rng: np.random.Generator) -> None:
    """Durations and status of this level, from the finished level below (bottom-up)."""
    n_calls = len(level.c_owner)
    has_child = level.c_child >= 0
    child = np.where(has_child, level.c_child, 0)
    child_dur = below.dur_ms[child] if below is not None and n_calls else np.zeros(n_calls)
    child_err = below.err[child] if below is not None and n_calls else np.zeros(n_calls, bool)
    child_bad = below.bad[child] if below is not None and n_calls else np.zeros(n_calls, bool)
    connect_ms = rng.uniform(0.5, 3.0, size=n_calls)
    full = level.c_gap_in + np.where(has_child, child_dur, 0.0) + level.c_gap_out
    c_dur = np.where(level.c_refused, connect_ms, full)
    level.c_timeout = c_dur > CALL_TIMEOUT_MS
    level.c_dur_ms = np.minimum(c_dur, CALL_TIMEOUT_MS)
    level.c_err = (has_child & child_err) | level.c_refused | level.c_timeout
    n = len(level.op)
    calls_ms = np.bincount(level.c_owner, weights=level.c_dur_ms, minlength=n)
    level.dur_ms = level.self_ms + calls_ms
    got_bad = has_child & child_bad & ~level.c_err
    level.detected = np.bincount(level.c_owner, weights=got_bad, minlength=n) > 0
    failed_calls = np.bincount(level.c_owner, weights=level.c_err, minlength=n) > 0
    level.err = level.threw | level.detected | failed_calls


def _schedule(level: _Level, below: _Level | None) -> None:
    """Start times of this level's calls and of the server spans below (top-down).

    A handler does part of its own work, then makes its calls one after another.
    """
    if not len(level.c_owner):
        return
    before = np.cumsum(level.c_dur_ms) - level.c_dur_ms
    within = before - before[group_first(level.c_owner)]
    owner = level.c_owner
    level.c_start_ms = (
        level.start_ms[owner] + level.pre_share[owner] * level.self_ms[owner] + within
    )
    if below is not None:
        arrived = level.c_child >= 0
        below.start_ms = (level.c_start_ms + level.c_gap_in)[arrived]


def simulate_traffic(
    system: System, fault: Fault, arrivals_ns: IntArray, rng: np.random.Generator
) -> Traffic:
    """Walk one trace per arrival through the system under `fault`."""
    entry = rng.choice(system.entry_ops, size=len(arrivals_ns), p=system.entry_weight)
    entry_inst = pick_instances(system, system.op_service[entry], rng)
    reachable = ~is_down(fault, entry_inst, arrivals_ns)
    arrivals_ns, entry, entry_inst = arrivals_ns[reachable], entry[reachable], entry_inst[reachable]
    level = _Level(
        trace=np.arange(len(arrivals_ns), dtype=np.int64),
        op=entry.astype(np.int64),
        inst=entry_inst,
        t_ns=arrivals_ns,
        parent=np.full(len(arrivals_ns), -1, dtype=np.int64),
    )
    levels: list[_Level] = []
    while len(level.op):
        _serve(level, system, fault, rng)
        below = _call(level, system, fault, rng)
        levels.append(level)
        level = below
    for depth in reversed(range(len(levels))):
        below_level = levels[depth + 1] if depth + 1 < len(levels) else None
        _finish(levels[depth], below_level, rng)
    levels[0].start_ms = np.zeros(len(levels[0].op)) if levels else np.zeros(0)
    for depth, current in enumerate(levels):
        _schedule(current, levels[depth + 1] if depth + 1 < len(levels) else None)
    return _assemble(arrivals_ns, levels)


def _assemble(trace_start_ns: IntArray, levels: list[_Level]) -> Traffic:
    """Concatenate the levels into global arrays, turning local indices into global ones."""
    srv_base = np.cumsum([0] + [len(lv.op) for lv in levels])
    cli_base = np.cumsum([0] + [len(lv.c_owner) for lv in levels])
    parents = [levels[0].parent] if levels else []
    parents += [lv.parent + cli_base[d] for d, lv in enumerate(levels[1:])]
    children = [
        np.where(lv.c_child >= 0, lv.c_child + srv_base[d + 1], -1) for d, lv in enumerate(levels)
    ]

    def cat(name: str, dtype: type = np.float64) -> np.ndarray:
        return _concat([getattr(lv, name) for lv in levels], dtype)

    srv_trace = cat("trace", np.int64)
    cli_owner = _concat([lv.c_owner + srv_base[d] for d, lv in enumerate(levels)], np.int64)
    cli_trace = srv_trace[cli_owner]
    return Traffic(
        trace_start_ns=trace_start_ns,
        srv_trace=srv_trace,
        srv_op=cat("op", np.int64),
        srv_inst=cat("inst", np.int64),
        srv_parent=_concat(parents, np.int64),
        srv_start_ns=trace_start_ns[srv_trace] + np.round(cat("start_ms") * 1e6).astype(np.int64),
        srv_dur_ns=np.round(cat("dur_ms") * 1e6).astype(np.int64),
        srv_self_ms=cat("self_ms"),
        srv_error=cat("err", np.bool_),
        srv_threw=cat("threw", np.bool_),
        srv_bad_return=cat("bad", np.bool_),
        srv_detected_bad=cat("detected", np.bool_),
        cli_owner=cli_owner,
        cli_callee_op=cat("c_op", np.int64),
        cli_callee_inst=cat("c_inst", np.int64),
        cli_child=_concat(children, np.int64),
        cli_start_ns=trace_start_ns[cli_trace] + np.round(cat("c_start_ms") * 1e6).astype(np.int64),
        cli_dur_ns=np.round(cat("c_dur_ms") * 1e6).astype(np.int64),
        cli_error=cat("c_err", np.bool_),
        cli_refused=cat("c_refused", np.bool_),
        cli_timeout=cat("c_timeout", np.bool_),
        cli_retried=cat("c_retried", np.bool_),
    )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """Concatenate level arrays; an empty list (no requests at all) gives an empty array."""
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)
