"""A seeded, deterministic simulator of labelled incidents (ARCHITECTURE §7).

`generate_system` draws a synthetic microservice system; `generate_incident` injects one
fault into it and returns the incident with its spans, metrics and logs in memory;
`simulate_dataset` writes a series of incidents as bundles, fault types cycling through
`tracehound.model.FAULT_TYPES`.

Modules: `topology` (services, instances, call graph), `traffic` (arrivals and traces),
`faults` (injection and propagation), `telemetry` / `metrics` / `logs` (canonical tables),
`incident` (labelled incidents and bundles).
"""

from tracehound.simulate.incident import generate_incident, incident_id, simulate_dataset
from tracehound.simulate.topology import System, expected_spans_per_request, generate_system

__all__ = [
    "System",
    "expected_spans_per_request",
    "generate_incident",
    "generate_system",
    "incident_id",
    "simulate_dataset",
]
