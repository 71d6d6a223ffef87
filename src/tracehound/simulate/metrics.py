"""Metrics of a simulated incident: per instance and per node, at a fixed step.

Per instance: `cpu_usage` (%), `memory_usage` (MiB), `latency_p50/p90/p99` (ms, of the
server spans that started in the step; absent when there were none), `error_rate` (share
of server spans with error status) and `request_rate` (server spans per second). Per node,
with empty service and instance: `node_cpu_usage` (%) and `node_memory_usage` (MiB). A
dead instance is not scraped, so its rows are missing while it is down.
"""

from __future__ import annotations

import numpy as np

from tracehound.simulate.arrays import BoolArray, FloatArray, IntArray, take_strings
from tracehound.simulate.faults import Fault, cpu_shift, is_down, memory_shift
from tracehound.simulate.topology import System
from tracehound.simulate.traffic import Traffic

_NS_PER_S = 1_000_000_000
_PERCENTILES = (("latency_p50", 0.50), ("latency_p90", 0.90), ("latency_p99", 0.99))


def _percentiles(key: IntArray, duration_ms: FloatArray, groups: int) -> dict[str, FloatArray]:
    """Nearest-rank percentiles of `duration_ms` per group, NaN for empty groups.

    One lexsort for all groups at once instead of a quantile call per series.
    """
    if not len(key):
        return {name: np.full(groups, np.nan) for name, _ in _PERCENTILES}
    ordered = duration_ms[np.lexsort((duration_ms, key))]
    counts = np.bincount(key, minlength=groups)
    starts = np.cumsum(counts) - counts
    out: dict[str, FloatArray] = {}
    for name, q in _PERCENTILES:
        at = starts + np.floor(q * np.maximum(counts - 1, 0)).astype(np.int64)
        values = ordered[np.minimum(at, len(ordered) - 1)]
        out[name] = np.where(counts > 0, values, np.nan)
    return out


def metric_columns(
    system: System,
    traffic: Traffic,
    fault: Fault,
    *,
    start_ns: int,
    end_ns: int,
    step_s: int,
    rng: np.random.Generator,
) -> dict[str, object]:
    """Long-format metric columns over [start_ns, end_ns) at `step_s` seconds."""
    steps = max(1, (end_ns - start_ns) // (step_s * _NS_PER_S))
    ts = start_ns + np.arange(steps, dtype=np.int64) * step_s * _NS_PER_S
    n_inst = len(system.instances)
    bucket = (traffic.srv_start_ns - start_ns) // (step_s * _NS_PER_S)
    inside = (bucket >= 0) & (bucket < steps)
    key = traffic.srv_inst[inside] * steps + bucket[inside]
    cells = n_inst * steps
    requests = np.bincount(key, minlength=cells).astype(np.float64)
    errors = np.bincount(key, weights=traffic.srv_error[inside], minlength=cells)
    latency = _percentiles(key, traffic.srv_dur_ns[inside] / 1e6, cells)

    inst = np.repeat(np.arange(n_inst, dtype=np.int64), steps)
    cell_ts = np.tile(ts, n_inst)
    rate = requests / step_s
    mean_rate = rate.reshape(n_inst, steps).mean(axis=1)
    load = rate / np.maximum(np.repeat(mean_rate, steps), 1e-9)
    cpu = system.inst_cpu_base[inst] * (0.6 + 0.4 * load) + rng.normal(0.0, 1.0, cells)
    cpu = np.clip(cpu + cpu_shift(fault, inst, cell_ts), 0.5, 100.0)
    drift = np.cumsum(rng.normal(0.0, 2.0, (n_inst, steps)), axis=1).ravel()
    memory = system.inst_mem_base[inst] + drift + 20.0 * load
    memory = memory + memory_shift(fault, inst, cell_ts)
    up = ~is_down(fault, inst, cell_ts)

    per_instance: dict[str, FloatArray] = {
        "cpu_usage": cpu,
        "memory_usage": memory,
        **latency,
        "error_rate": np.where(requests > 0, errors / np.maximum(requests, 1.0), 0.0),
        "request_rate": rate,
    }
    node_cpu, node_memory = _node_series(system, inst, np.where(up, cpu, 0.0), memory, up, steps)
    return _long_format(system, ts, inst, cell_ts, up, per_instance, node_cpu, node_memory)


def _node_series(
    system: System,
    inst: IntArray,
    cpu: FloatArray,
    memory: FloatArray,
    up: BoolArray,
    steps: int,
) -> tuple[FloatArray, FloatArray]:
    """Node cpu and memory: the OS baseline plus what the node's live instances use."""
    n_nodes = len(system.nodes)
    node_cell = system.inst_node[inst] * steps + np.tile(np.arange(steps), len(system.instances))
    used_cpu = np.bincount(node_cell, weights=0.25 * cpu, minlength=n_nodes * steps)
    used_mem = np.bincount(node_cell, weights=np.where(up, memory, 0.0), minlength=n_nodes * steps)
    node_cpu = np.asarray(np.clip(4.0 + used_cpu, 0.0, 100.0), dtype=np.float64)
    return node_cpu, np.asarray(1024.0 + used_mem, dtype=np.float64)


def _long_format(
    system: System,
    ts: IntArray,
    inst: IntArray,
    cell_ts: IntArray,
    up: BoolArray,
    per_instance: dict[str, FloatArray],
    node_cpu: FloatArray,
    node_memory: FloatArray,
) -> dict[str, object]:
    """One row per (time, instance or node, metric); missing values are left out."""
    names = [*per_instance, "node_cpu_usage", "node_memory_usage"]
    name_idx, rows_ts, rows_inst, rows_node, values = [], [], [], [], []
    for k, (_, series) in enumerate(per_instance.items()):
        keep = up & ~np.isnan(series)
        name_idx.append(np.full(int(keep.sum()), k, dtype=np.int64))
        rows_ts.append(cell_ts[keep])
        rows_inst.append(inst[keep])
        rows_node.append(system.inst_node[inst[keep]])
        values.append(series[keep])
    n_nodes, steps = len(system.nodes), len(ts)
    node = np.repeat(np.arange(n_nodes, dtype=np.int64), steps)
    for k, series in ((len(per_instance), node_cpu), (len(per_instance) + 1, node_memory)):
        name_idx.append(np.full(len(node), k, dtype=np.int64))
        rows_ts.append(np.tile(ts, n_nodes))
        rows_inst.append(np.full(len(node), -1, dtype=np.int64))
        rows_node.append(node)
        values.append(series)
    instance = np.concatenate(rows_inst)
    no_instance = len(system.instances)
    instance = np.where(instance < 0, no_instance, instance)
    service_of = np.append(system.inst_service, len(system.services))
    return {
        "ts_ns": np.concatenate(rows_ts),
        "service": take_strings((*system.services, ""), service_of[instance]),
        "instance": take_strings((*system.instances, ""), instance),
        "node": take_strings(system.nodes, np.concatenate(rows_node)),
        "name": take_strings(names, np.concatenate(name_idx)),
        "value": np.concatenate(values),
    }
