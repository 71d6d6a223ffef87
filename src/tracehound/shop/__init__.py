"""A live, instrumented demo system: a small web shop of HTTP services.

Eight services, each its own process, call each other over HTTP on 127.0.0.1 and export
traces, logs and metrics with the official OpenTelemetry SDK over OTLP/HTTP to
`tracehound collect`. Faults are switched on at run time; `tracehound demo --live`
runs the whole loop: start, load, fault, investigation, report, stop.

- `topology` — the services, their endpoints and calls
- `service` — one generic service process, driven by the topology
- `telemetry` — OpenTelemetry SDK setup (resource, exporters, process metrics)
- `faults` — the fault state each process holds, switched through `POST /_fault`
- `proxy` — a TCP delay proxy in front of the internal services (network faults)
- `load` — the open-loop load generator
- `system` — starting and stopping the processes by PID
- `live_demo` — orchestration: collector, system, baseline, faults, investigation

examples/shop/README.md shows how to run it by hand.
"""
