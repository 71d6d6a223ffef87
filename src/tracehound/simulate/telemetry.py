"""From simulated traffic to the three canonical telemetry tables (ARCHITECTURE §2).

Spans are built here; metrics and logs in `metrics.py` and `logs.py`. Span rows are the
server spans followed by the client spans, so server span `i` is row `i` and client span
`j` is row `n_server + j`; logs point at spans by that row number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tracehound.simulate.arrays import IntArray, hex_ids, mix64, take_strings
from tracehound.simulate.faults import Fault
from tracehound.simulate.logs import LEVELS, log_rows
from tracehound.simulate.metrics import metric_columns
from tracehound.simulate.topology import System
from tracehound.simulate.traffic import Traffic
from tracehound.tables import from_columns


@dataclass(frozen=True, eq=False)
class Tables:
    """The canonical spans, metrics and logs tables of one simulated incident."""

    spans: pa.Table
    metrics: pa.Table
    logs: pa.Table


def _peer_attributes(system: System) -> list[str]:
    """The JSON attributes of a client span, per callee instance: who it called."""
    return [
        json.dumps({"peer.service": system.services[s], "peer.instance": name})
        for name, s in zip(system.instances, system.inst_service.tolist(), strict=True)
    ]


def span_table(system: System, traffic: Traffic, salt: int, source: str) -> pa.Table:
    """The spans table: ids derived from `salt`, so each incident has its own."""
    n_srv, n_cli = len(traffic.srv_op), len(traffic.cli_owner)
    rows = np.arange(n_srv + n_cli, dtype=np.uint64)
    span_ids = hex_ids(mix64(rows + np.uint64(salt) * np.uint64(0x100000000)))
    traces = np.arange(len(traffic.trace_start_ns), dtype=np.uint64)
    words = np.stack(
        [mix64(traces ^ np.uint64(salt)), mix64(traces + np.uint64(salt) * np.uint64(7919))],
        axis=1,
    )
    trace_ids = hex_ids(words, words=2)
    cli_trace = traffic.srv_trace[traffic.cli_owner]
    parent_row = np.concatenate(
        [np.where(traffic.srv_parent >= 0, traffic.srv_parent + n_srv, -1), traffic.cli_owner]
    )
    caller_inst = traffic.srv_inst[traffic.cli_owner]
    instance = np.concatenate([traffic.srv_inst, caller_inst])
    attributes = pa.concat_arrays(
        [
            pa.nulls(n_srv, pa.string()),
            take_strings(_peer_attributes(system), traffic.cli_callee_inst),
        ]
    )
    columns: dict[str, object] = {
        "trace_id": trace_ids.take(pa.array(np.concatenate([traffic.srv_trace, cli_trace]))),
        "span_id": span_ids,
        "parent_span_id": span_ids.take(pa.array(parent_row, mask=parent_row < 0)),
        "service": take_strings(system.services, system.inst_service[instance]),
        "instance": take_strings(system.instances, instance),
        "operation": take_strings(
            system.operations, np.concatenate([traffic.srv_op, traffic.cli_callee_op])
        ),
        "kind": take_strings(("server", "client"), np.repeat(np.array([0, 1]), [n_srv, n_cli])),
        "start_ns": np.concatenate([traffic.srv_start_ns, traffic.cli_start_ns]),
        "duration_ns": np.concatenate([traffic.srv_dur_ns, traffic.cli_dur_ns]),
        "status": take_strings(
            ("ok", "error"),
            np.concatenate([traffic.srv_error, traffic.cli_error]).astype(np.int64),
        ),
        "attributes": attributes,
    }
    return from_columns("spans", columns, source)


def build_tables(
    system: System,
    traffic: Traffic,
    fault: Fault,
    *,
    start_ns: int,
    end_ns: int,
    step_s: int,
    salt: int,
    rng: np.random.Generator,
    source: str,
) -> Tables:
    """All three tables of an incident whose telemetry covers [start_ns, end_ns)."""
    spans = span_table(system, traffic, salt, source)
    metrics = from_columns(
        "metrics",
        metric_columns(
            system, traffic, fault, start_ns=start_ns, end_ns=end_ns, step_s=step_s, rng=rng
        ),
        source,
    )
    return Tables(
        spans=spans, metrics=metrics, logs=_logs(system, traffic, fault, spans, rng, source)
    )


def _logs(
    system: System,
    traffic: Traffic,
    fault: Fault,
    spans: pa.Table,
    rng: np.random.Generator,
    source: str,
) -> pa.Table:
    """The logs table, in time order, with trace and span ids looked up from the spans."""
    rows = log_rows(system, traffic, fault, rng)
    order: IntArray = np.argsort(rows.ts_ns, kind="stable")
    span_row = rows.span_row[order]
    linked = pa.array(span_row, mask=span_row < 0)
    inst = rows.inst[order]
    columns: dict[str, object] = {
        "ts_ns": rows.ts_ns[order],
        "service": take_strings(system.services, system.inst_service[inst]),
        "instance": take_strings(system.instances, inst),
        "level": take_strings(LEVELS, rows.level[order]),
        "message": rows.message.take(pa.array(order)),
        "trace_id": spans.column("trace_id").take(linked),
        "span_id": spans.column("span_id").take(linked),
    }
    return from_columns("logs", columns, source)
