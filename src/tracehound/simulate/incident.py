"""Labelled incidents from a simulated system, in memory or written as bundles.

An incident's telemetry covers a normal window followed by the incident window; one fault
starts inside the incident window. Everything random is drawn from `(seed, index)`, so the
same arguments always give byte-identical tables.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import numpy as np

from tracehound.bundle import BundleFormat, write_bundle
from tracehound.errors import BadInput
from tracehound.model import (
    FAULT_TYPES,
    Alert,
    Incident,
    IncidentData,
    Labels,
    Window,
    datetime_from_ns,
    ns_from_datetime,
)
from tracehound.simulate.faults import Fault, choose_fault
from tracehound.simulate.telemetry import build_tables
from tracehound.simulate.topology import (
    System,
    expected_spans_per_request,
    expected_visits,
    generate_system,
)
from tracehound.simulate.traffic import arrivals, simulate_traffic

_NS_PER_S = 1_000_000_000
_EPOCH_NS = ns_from_datetime(datetime(2024, 3, 4, tzinfo=UTC))
_SLOW_FAULTS = ("cpu", "memory", "latency", "network")


def incident_id(seed: int, index: int) -> str:
    """`sim-<seed>-<index>`, the index zero-padded to four digits."""
    return f"sim-{seed}-{index:04d}"


def _alert(system: System, fault: Fault) -> Alert:
    """The page: on the frontend whose requests reach the victim most, a minute in."""
    per_entry = expected_visits(system)[:, system.op_service == fault.service].sum(axis=1)
    entry_service = int(system.op_service[system.entry_ops[int(np.argmax(per_entry))]])
    service = system.services[entry_service]
    symptom = "p99 latency" if fault.fault_type in _SLOW_FAULTS else "error rate"
    return Alert(
        time=datetime_from_ns(fault.start_ns + 60 * _NS_PER_S),
        service=service,
        message=f"{symptom} of {service} above its objective",
    )


def generate_incident(
    system: System,
    *,
    index: int,
    seed: int,
    fault_type: str | None = None,
    requests_per_second: float = 2.0,
    target_spans: int | None = None,
    window_seconds: int = 600,
    normal_seconds: int = 600,
    step_seconds: int = 15,
) -> IncidentData:
    """One labelled incident of `system`, in memory.

    `fault_type` defaults to `FAULT_TYPES` cycled by `index` (1-based). `target_spans`,
    when given, overrides `requests_per_second` with the rate that yields about that many
    spans over both windows.
    """
    if index < 1:
        raise BadInput(f"incident index {index} is not positive", expected="an index >= 1")
    if window_seconds < step_seconds or normal_seconds < 0:
        raise BadInput("windows too short", expected="window_seconds >= step_seconds")
    chosen = fault_type or FAULT_TYPES[(index - 1) % len(FAULT_TYPES)]
    rng = np.random.default_rng([seed, index, 0x1C1D])
    start = _EPOCH_NS + (index * 6 * 3600 + int(rng.integers(0, 6 * 3600))) * _NS_PER_S
    window_start = start + normal_seconds * _NS_PER_S
    end = window_start + window_seconds * _NS_PER_S
    fault = choose_fault(system, rng, chosen, window_start, end)
    rate = requests_per_second
    if target_spans is not None:
        per_request = expected_spans_per_request(system)
        rate = target_spans / per_request / (normal_seconds + window_seconds)
    traffic = simulate_traffic(system, fault, arrivals(rng, start, end, rate), rng)
    ident = incident_id(seed, index)
    tables = build_tables(
        system,
        traffic,
        fault,
        start_ns=start,
        end_ns=end,
        step_s=step_seconds,
        salt=seed * 1_000_003 + index,
        rng=rng,
        source=f"simulated incident {ident}",
    )
    incident = Incident(
        id=ident,
        system=f"sim-{seed}",
        window=Window.from_ns(window_start, end),
        normal_window=Window.from_ns(start, window_start) if normal_seconds else None,
        alert=_alert(system, fault),
        labels=Labels(
            service=system.services[fault.service],
            instance=system.instances[fault.instance],
            fault_type=chosen,
            fault_start=datetime_from_ns(fault.start_ns),
        ),
    )
    return IncidentData(
        incident=incident, spans=tables.spans, metrics=tables.metrics, logs=tables.logs
    )


def simulate_dataset(
    out: Path,
    *,
    services: int,
    incidents: int,
    seed: int,
    fmt: str = "parquet",
    spans_per_incident: int = 5_000,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write `incidents` bundles to `out/<incident id>/`, fault types cycling in order.

    `progress(done, total)` is called after each bundle is written.
    """
    if fmt not in ("parquet", "csv"):
        raise BadInput(f"unknown format {fmt!r}", expected="parquet or csv")
    if incidents < 1:
        raise BadInput(f"cannot simulate {incidents} incidents", expected="at least 1")
    system = generate_system(services, seed)
    paths = []
    for index in range(1, incidents + 1):
        data = generate_incident(system, index=index, seed=seed, target_spans=spans_per_incident)
        paths.append(write_bundle(data, Path(out) / data.incident.id, cast(BundleFormat, fmt)))
        if progress is not None:
            progress(index, incidents)
    return paths
