"""Logs of a simulated incident: chatter, warnings and errors, linked to spans.

Each operation has its own few INFO templates, some written when a request arrives and
some when it completes, each with a probability; their counts therefore scale with
traffic. An exception cuts a handler short, so the completion lines of the throwing
operation go missing at the faulty instance: "silence is evidence" (ARCHITECTURE §4.3).
WARN lines mark slow requests, retried calls, GC pressure and a little background noise;
ERROR lines carry stack-like text (`Exception in ...` then `  at pkg.Class.method(...)`).
A row points at its span by span-table row number (-1: not tied to a request).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tracehound.simulate.arrays import (
    BoolArray,
    FloatArray,
    IntArray,
    int_strings,
    join_strings,
    take_strings,
)
from tracehound.simulate.faults import Fault, active, leaked_mib
from tracehound.simulate.topology import System
from tracehound.simulate.traffic import Traffic

LEVELS = ("INFO", "WARN", "ERROR")
INFO, WARN, ERROR = 0, 1, 2
_NS_PER_MS = 1_000_000

#: (text before the value, text after it, value is the span's duration in ms)
_START_TEMPLATES = (
    ("accepted request, queue depth ", "", False),
    ("validating payload with ", " fields", False),
    ("loaded ", " records from store", False),
    ("acquired db connection, pool active=", "", False),
    ("cache lookup for ", " keys", False),
)
_END_TEMPLATES = (
    ("response sent in ", " ms", True),
    ("committed transaction in ", " ms", True),
    ("serialized ", " bytes", False),
    ("request completed, items=", "", False),
    ("published ", " events", False),
)


@dataclass(frozen=True, eq=False)
class LogRows:
    """Log lines as arrays; `level` indexes `LEVELS`, `span_row` the spans table."""

    ts_ns: IntArray
    inst: IntArray
    level: IntArray
    message: pa.Array
    span_row: IntArray


@dataclass(frozen=True, eq=False)
class _Templates:
    """Every operation's INFO templates; those of operation o are `first[o]:first[o+1]`."""

    first: IntArray
    prefix: list[str]
    suffix: list[str]
    at_end: BoolArray
    probability: FloatArray
    shows_duration: BoolArray


def _templates(system: System) -> _Templates:
    """One or two arrival and one or two completion templates per operation.

    Drawn from the system's seed, so an operation logs the same way in every incident.
    """
    rng = np.random.default_rng([system.seed, 0x106])
    prefix: list[str] = []
    suffix: list[str] = []
    at_end: list[bool] = []
    shows: list[bool] = []
    counts: list[int] = []
    for name in system.operations:
        chosen = [
            (pool, int(k), pool is _END_TEMPLATES)
            for pool in (_START_TEMPLATES, _END_TEMPLATES)
            for k in rng.choice(len(pool), size=int(rng.integers(1, 3)), replace=False)
        ]
        for pool, k, end in chosen:
            before, after, duration = pool[k]
            prefix.append(f"{name}: {before}")
            suffix.append(after)
            at_end.append(end)
            shows.append(duration)
        counts.append(len(chosen))
    return _Templates(
        first=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        prefix=prefix,
        suffix=suffix,
        at_end=np.array(at_end, dtype=bool),
        probability=rng.uniform(0.4, 1.0, size=len(prefix)),
        shows_duration=np.array(shows, dtype=bool),
    )


def _frames(system: System) -> list[str]:
    """Stack-like frames per operation: controller, service class, dispatcher."""
    frames = []
    for op, name in enumerate(system.operations):
        verb, route = name.split(" ", 1)
        resource = route.rsplit("/", 1)[-1].capitalize()
        service = system.services[int(system.op_service[op])]
        package = "com.sim." + service.replace("-", ".")
        noun = service.split("-")[1].capitalize()
        frames.append(
            f"\n  at {package}.{resource}Controller.{verb.lower()}{resource}"
            f"({resource}Controller.java:{40 + op * 37 % 300})"
            f"\n  at {package}.{noun}Service.process({noun}Service.java:{60 + op * 13 % 200})"
            "\n  at com.sim.core.RequestDispatcher.dispatch(RequestDispatcher.java:112)"
        )
    return frames


def _rows(
    ts_ns: IntArray, inst: IntArray, level: int, message: pa.Array, span_row: IntArray
) -> LogRows:
    """A batch of lines of one level."""
    return LogRows(ts_ns, inst, np.full(len(ts_ns), level, dtype=np.int64), message, span_row)


def _chatter(
    system: System, traffic: Traffic, templates: _Templates, rng: np.random.Generator
) -> list[LogRows]:
    """INFO lines: each template of the span's operation, with its probability."""
    per_op = np.diff(templates.first)
    batches = []
    for slot in range(int(per_op.max(initial=0))):
        span = np.flatnonzero(per_op[traffic.srv_op] > slot)
        tpl = templates.first[traffic.srv_op[span]] + slot
        end = templates.at_end[tpl]
        keep = rng.random(len(span)) < templates.probability[tpl]
        keep &= ~(end & traffic.srv_threw[span])
        span, tpl, end = span[keep], tpl[keep], end[keep]
        start = traffic.srv_start_ns[span]
        duration = traffic.srv_dur_ns[span]
        ts = np.where(end, start + duration, start + duration // 20)
        value = np.where(
            templates.shows_duration[tpl],
            duration // _NS_PER_MS,
            rng.integers(1, 500, size=len(span)),
        )
        message = join_strings(
            take_strings(templates.prefix, tpl),
            int_strings(value),
            take_strings(templates.suffix, tpl),
        )
        batches.append(_rows(ts, traffic.srv_inst[span], INFO, message, span))
    return batches


def _warnings(system: System, traffic: Traffic, rng: np.random.Generator) -> list[LogRows]:
    """Slow requests (own work beyond ~p99 x1.5), retried calls and background noise."""
    ops = traffic.srv_op
    slow_ms = 1.5 * system.op_median_ms[ops] * np.exp(2.33 * system.op_sigma[ops])
    slow = np.flatnonzero((traffic.srv_self_ms > slow_ms) & (rng.random(len(ops)) < 0.5))
    names = list(system.operations)
    batches = [
        _rows(
            traffic.srv_start_ns[slow] + traffic.srv_dur_ns[slow],
            traffic.srv_inst[slow],
            WARN,
            join_strings(
                take_strings(names, ops[slow]),
                ": slow request, handler took ",
                int_strings(np.round(traffic.srv_self_ms[slow]).astype(np.int64)),
                " ms",
            ),
            slow,
        )
    ]
    retried = np.flatnonzero(traffic.cli_retried)
    owner = traffic.cli_owner[retried]
    callee = system.op_service[traffic.cli_callee_op[retried]]
    batches.append(
        _rows(
            traffic.cli_start_ns[retried] + 300 * _NS_PER_MS,
            traffic.srv_inst[owner],
            WARN,
            join_strings(
                take_strings([f"{n}: call to " for n in names], ops[owner]),
                take_strings(system.services, callee),
                " timed out after 300 ms, retrying (attempt 2)",
            ),
            retried + len(ops),
        )
    )
    noise = np.flatnonzero(rng.random(len(ops)) < 0.002)
    usage = rng.integers(80, 96, size=len(noise))
    batches.append(
        _rows(
            traffic.srv_start_ns[noise],
            traffic.srv_inst[noise],
            WARN,
            join_strings(
                take_strings([f"{n}: connection pool usage high (" for n in names], ops[noise]),
                int_strings(usage),
                "%)",
            ),
            noise,
        )
    )
    return batches


def _memory_lines(
    system: System, traffic: Traffic, fault: Fault, rng: np.random.Generator
) -> list[LogRows]:
    """GC-pressure warnings at a leaking victim, and the OOM error when it is killed."""
    if fault.fault_type != "memory":
        return []
    hit = np.flatnonzero(active(fault, traffic.srv_inst, traffic.srv_start_ns))
    pressure: FloatArray = np.minimum(
        leaked_mib(fault, traffic.srv_start_ns[hit]) / fault.headroom_mib, 1.0
    )
    chosen = rng.random(len(hit)) < 0.3 * pressure
    hit, pressure = hit[chosen], pressure[chosen]
    pause = np.round(50 + 400 * pressure * rng.uniform(0.5, 1.5, len(hit))).astype(np.int64)
    heap = np.round(60 + 38 * pressure).astype(np.int64)
    batches = [
        _rows(
            traffic.srv_start_ns[hit],
            traffic.srv_inst[hit],
            WARN,
            join_strings(
                "GC pause of ",
                int_strings(pause),
                " ms, heap usage ",
                int_strings(heap),
                "%",
            ),
            hit,
        )
    ]
    if fault.down_from_ns is not None:
        text = (
            "java.lang.OutOfMemoryError: Java heap space"
            "\n  at java.util.Arrays.copyOf(Arrays.java:3236)"
            "\n  at com.sim.core.RequestDispatcher.dispatch(RequestDispatcher.java:112)"
        )
        batches.append(
            _rows(
                np.array([fault.down_from_ns], dtype=np.int64),
                np.array([fault.instance], dtype=np.int64),
                ERROR,
                pa.array([text]),
                np.array([-1], dtype=np.int64),
            )
        )
    return batches


def _errors(system: System, traffic: Traffic, fault: Fault, frames: list[str]) -> list[LogRows]:
    """ERROR lines: the exception at the cause, failed calls, and failures up the chain."""
    names = list(system.operations)
    ops = traffic.srv_op
    threw = np.flatnonzero(traffic.srv_threw)
    exception = [
        f"Exception in {n}: {fault.exception}: unexpected state while handling request{f}"
        for n, f in zip(names, frames, strict=True)
    ]
    batches = [
        _rows(
            traffic.srv_start_ns[threw] + traffic.srv_dur_ns[threw],
            traffic.srv_inst[threw],
            ERROR,
            take_strings(exception, ops[threw]),
            threw,
        )
    ]
    batches.extend(_failed_call_errors(system, traffic, frames))
    # Where a wrong value surfaces: the caller that received it fails on it.
    failing = traffic.cli_child >= 0
    got_bad = failing & traffic.srv_bad_return[np.where(failing, traffic.cli_child, 0)]
    got_bad &= traffic.srv_detected_bad[traffic.cli_owner]
    batches.append(
        _first_call_per_owner(
            system,
            traffic,
            got_bad,
            [f"Exception in {n}: IllegalStateException: invalid response from " for n in names],
            [f": required field 'id' is null{f}" for f in frames],
        )
    )
    passed_on = traffic.cli_error & ~traffic.srv_threw[traffic.cli_owner]
    passed_on &= ~traffic.srv_detected_bad[traffic.cli_owner]
    batches.append(
        _first_call_per_owner(
            system,
            traffic,
            passed_on,
            [f"{n}: request failed: call to " for n in names],
            [" failed, returning HTTP 500" for _ in names],
        )
    )
    return batches


def _failed_call_errors(system: System, traffic: Traffic, frames: list[str]) -> list[LogRows]:
    """Connection refused and timed-out calls, logged by the caller on its client span."""
    batches = []
    n_srv = len(traffic.srv_op)
    for mask, head, tail in (
        (traffic.cli_refused, "java.net.ConnectException: Connection refused (", ")"),
        (traffic.cli_timeout, "java.net.SocketTimeoutException: Read timed out (", ")"),
    ):
        calls = np.flatnonzero(mask)
        owner_op = traffic.srv_op[traffic.cli_owner[calls]]
        message = join_strings(
            head,
            take_strings(system.instances, traffic.cli_callee_inst[calls]),
            take_strings(
                [
                    f"{tail}\n  at com.sim.http.PooledClient.execute(PooledClient.java:88){f}"
                    for f in frames
                ],
                owner_op,
            ),
        )
        batches.append(
            _rows(
                traffic.cli_start_ns[calls] + traffic.cli_dur_ns[calls],
                traffic.srv_inst[traffic.cli_owner[calls]],
                ERROR,
                message,
                calls + n_srv,
            )
        )
    return batches


def _first_call_per_owner(
    system: System,
    traffic: Traffic,
    calls_mask: BoolArray,
    head_by_op: list[str],
    tail_by_op: list[str],
) -> LogRows:
    """One ERROR line per server span, naming the first of its calls in `calls_mask`."""
    calls = np.flatnonzero(calls_mask)
    _, first = np.unique(traffic.cli_owner[calls], return_index=True)
    calls = calls[first]
    owner = traffic.cli_owner[calls]
    op = traffic.srv_op[owner]
    message = join_strings(
        take_strings(head_by_op, op),
        take_strings(system.services, system.op_service[traffic.cli_callee_op[calls]]),
        take_strings(tail_by_op, op),
    )
    end = traffic.srv_start_ns[owner] + traffic.srv_dur_ns[owner]
    return _rows(end, traffic.srv_inst[owner], ERROR, message, owner)


def log_rows(system: System, traffic: Traffic, fault: Fault, rng: np.random.Generator) -> LogRows:
    """Every log line of the incident, unordered."""
    frames = _frames(system)
    batches = [
        *_chatter(system, traffic, _templates(system), rng),
        *_warnings(system, traffic, rng),
        *_memory_lines(system, traffic, fault, rng),
        *_errors(system, traffic, fault, frames),
    ]
    return LogRows(
        ts_ns=np.concatenate([b.ts_ns for b in batches]).astype(np.int64),
        inst=np.concatenate([b.inst for b in batches]).astype(np.int64),
        level=np.concatenate([b.level for b in batches]),
        message=pa.concat_arrays([b.message.cast(pa.string()) for b in batches]),
        span_row=np.concatenate([b.span_row for b in batches]).astype(np.int64),
    )
