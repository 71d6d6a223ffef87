"""How `rclagent` investigation time scales: failing-request graph versus system size.

    python benchmarks/rclagent_scaling.py [--sizes 10,100,1000,10000] [--services 50,1000]
        [--store-spans 20000,200000] [--repeat 3] [--timeout 300] [--json] [--out FILE]
        [--param NAME=VALUE ...]

For each system size (services) and store size (total simulated spans, `target_spans`),
one `error` incident is simulated. For each failing-trace size N, one synthetic failing
trace of exactly N spans is appended to the simulated spans (and its logs to the logs):
a tree (fan-out `--fanout`, so depth stays under the engine's `max_depth`) of server spans
on existing operations, services and instances, siblings on distinct operations (so the
graph does not collapse them), with error status at one deepest leaf and on the path up to
the root, `RETRIES` error lines linked to each span of that path and one info line
linked to every span. Its root starts in the incident window and is slow, so it is selected.

Each (services, store spans, N) case runs in a forked child process: it builds the store
(timed separately, "store s"), then times `RclAgentMethod().investigate(incident, store)`
`--repeat` times and reports the median. A case that exceeds `--timeout` seconds on one
investigation is killed and reported as a timeout. Per row: services, spans in the store,
failing-trace spans, whether that trace was analysed, the engine's stats
(`requests_analysed`, `agents_run`), the spans of the analysed requests' traces, the
median investigation seconds, the store-build seconds and the child's peak RSS. A second
table breaks the median run into pipeline stages (timed by wrapping the functions that
`rclagent.method` and `rclagent.facts` call, without changing them).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from itertools import pairwise
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pyarrow as pa

import tracehound.rclagent.facts as facts_module
import tracehound.rclagent.method as method_module
from tracehound.model import IncidentData
from tracehound.rclagent import RclAgentMethod
from tracehound.rclagent.sample import TraceSample
from tracehound.simulate import System, generate_incident, generate_system
from tracehound.store import TelemetryStore
from tracehound.tables import from_columns

#: Stages timed inside `investigate`: (module, function name, label).
STAGES: tuple[tuple[Any, str, str], ...] = (
    (method_module, "new_context", "context"),
    (method_module, "select_requests", "select"),
    (method_module, "sample_threshold", "rate"),
    (TraceSample, "__init__", "sample"),
    (TraceSample, "include", "sample"),
    (method_module, "set_scope", "scope"),
    (facts_module, "_operation_baselines", "op_base"),
    (facts_module, "_edge_baselines", "edge_base"),
    (facts_module, "_edge_sides", "edge_side"),
    (facts_module, "_activity", "activity"),
    (facts_module, "_span_logs", "span_logs"),
    (facts_module, "_usual_templates", "usual_tpl"),
    (facts_module, "_metric_shifts", "metrics"),
    (facts_module, "_instance_evidence", "inst_evid"),
    (method_module, "fetch_spans", "fetch"),
    (method_module, "build_graph", "graph"),
    (method_module, "run_agents", "agents"),
    (method_module, "rank_suspects", "rank"),
    (method_module, "build_investigation", "report"),
)
_STAGE_TIMES: dict[str, float] = {}
#: Error lines per span of the failing path (retries).
RETRIES = 3


def _install_stage_timers() -> None:
    """Wrap each stage function in its module so calls accumulate into `_STAGE_TIMES`."""
    for module, name, label in STAGES:
        original: Callable[..., Any] = getattr(module, name)

        def timed(
            *args: Any, _f: Callable[..., Any] = original, _l: str = label, **kwargs: Any
        ) -> Any:
            began = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                _STAGE_TIMES[_l] = _STAGE_TIMES.get(_l, 0.0) + time.perf_counter() - began

        setattr(module, name, wraps(original)(timed))


def _peak_rss_mib() -> float:
    """Peak resident set size of this process (VmHWM), MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- the synthetic failing trace ----------------------------------------------------------


def failing_trace(
    system: System, data: IncidentData, n_spans: int, fanout: int, seed: int
) -> tuple[pa.Table, pa.Table, str]:
    """Spans and logs of one failing request of exactly `n_spans` spans, and its trace id."""
    rng = np.random.default_rng([seed, n_spans, 0x5CA1])
    trace_id = f"{0x5CA1E:05x}{n_spans:011x}" + "".join(rng.choice(list("0123456789abcdef"), 16))
    window = data.incident.window
    root_start = window.start_ns + (window.end_ns - window.start_ns) // 3
    root_duration = 8_000_000_000  # 8 s: far above any simulated operation
    n_ops = len(system.operations)
    parent = np.full(n_spans, -1, dtype=np.int64)
    depth = np.zeros(n_spans, dtype=np.int64)
    slot = np.zeros(n_spans, dtype=np.int64)  # index among siblings
    op = np.zeros(n_spans, dtype=np.int64)
    start = np.zeros(n_spans, dtype=np.int64)
    duration = np.zeros(n_spans, dtype=np.int64)
    op[0] = int(system.entry_ops[0])
    start[0], duration[0] = root_start, root_duration
    # breadth-first: span i > 0 is child number (i - 1) % fanout of span (i - 1) // fanout
    for i in range(1, n_spans):
        p = (i - 1) // fanout
        parent[i], slot[i], depth[i] = p, (i - 1) % fanout, depth[p] + 1
        # the first child draws an operation, its siblings take the next ones: distinct
        # operations among siblings while fanout <= operations
        op[i] = int(rng.integers(0, n_ops)) if slot[i] == 0 else (op[i - 1] + 1) % n_ops
        # children share 90% of the parent's time in sequence, 5% margin either side
        share = duration[p] * 9 // (10 * fanout)
        start[i] = start[p] + duration[p] // 20 + slot[i] * share
        duration[i] = max(1_000, share * 9 // 10)
    service_idx = system.op_service[op]
    first = system.svc_inst_start[service_idx]
    count = system.svc_inst_count[service_idx]
    inst_idx = first + rng.integers(0, 1 << 30, n_spans) % count
    span_ids = [f"{0xFA17:04x}{i:012x}" for i in range(n_spans)]
    services = [system.services[s] for s in service_idx]
    instances = [system.instances[k] for k in inst_idx]
    operations = [system.operations[o] for o in op]
    # error at the deepest, last leaf and on its path to the root
    status = ["ok"] * n_spans
    path = [n_spans - 1]
    while parent[path[-1]] >= 0:
        path.append(int(parent[path[-1]]))
    for i in path:
        status[i] = "error"
    spans = from_columns(
        "spans",
        {
            "trace_id": [trace_id] * n_spans,
            "span_id": span_ids,
            "parent_span_id": [span_ids[p] if p >= 0 else None for p in parent],
            "service": services,
            "instance": instances,
            "operation": operations,
            "kind": ["server"] * n_spans,
            "start_ns": start,
            "duration_ns": duration,
            "status": status,
            "attributes": [None] * n_spans,
        },
        "synthetic failing trace",
    )
    assert data.logs is not None
    log_rows: dict[str, list[Any]] = {k: [] for k in data.logs.schema.names}

    def log(i: int, level: str, message: str, at: int) -> None:
        for key, value in (
            ("ts_ns", at),
            ("service", services[i]),
            ("instance", instances[i]),
            ("level", level),
            ("message", message),
            ("trace_id", trace_id),
            ("span_id", span_ids[i]),
        ):
            log_rows[key].append(value)

    for i in range(n_spans):
        log(i, "INFO", f"{operations[i]}: handled request", int(start[i]) + 1)
    # the failure is retried: each error line of the path is written `RETRIES` times, so
    # its template is frequent in the window (a template seen once has novelty 0)
    leaf = path[0]
    end = start + duration
    for attempt in range(1, RETRIES + 1):
        log(
            leaf,
            "ERROR",
            f"Exception in {operations[leaf]} (attempt {attempt}): ScalingBenchError: "
            "synthetic failure at leaf",
            int(end[leaf]) - RETRIES + attempt,
        )
        for child, i in pairwise(path):
            log(
                i,
                "ERROR",
                f"{operations[i]}: request failed (attempt {attempt}): call to "
                f"{services[child]} failed, returning 500",
                int(end[i]) - RETRIES + attempt,
            )
    logs = from_columns("logs", dict(log_rows), "synthetic failing trace logs")
    return spans, logs, trace_id


def with_trace(data: IncidentData, spans: pa.Table, logs: pa.Table) -> IncidentData:
    """The incident with the synthetic trace appended, schemas unchanged."""
    assert data.spans is not None and data.logs is not None
    return replace(
        data,
        spans=pa.concat_tables([data.spans, spans.cast(data.spans.schema)]),
        logs=pa.concat_tables([data.logs, logs.cast(data.logs.schema)]),
    )


# -- one case in a child process ---------------------------------------------------------


def _case(
    conn: Connection,
    system: System,
    data: IncidentData,
    n: int,
    fanout: int,
    repeat: int,
    params: dict[str, Any],
) -> None:
    """Build the case's store, investigate `repeat` times, send a message per step."""
    _install_stage_timers()
    began = time.perf_counter()
    spans, logs, trace_id = failing_trace(system, data, n, fanout, seed=1)
    full = with_trace(data, spans, logs)
    trace_s = time.perf_counter() - began
    began = time.perf_counter()
    store = TelemetryStore.from_incident(full)
    store_s = time.perf_counter() - began
    total = store.counts()
    conn.send({"step": "store", "trace_s": trace_s, "store_s": store_s, "counts": total})
    method = RclAgentMethod(**params)
    for _ in range(repeat):
        _STAGE_TIMES.clear()
        began = time.perf_counter()
        result = method.investigate(full.incident, store)
        seconds = time.perf_counter() - began
        analysed = sorted(
            str(node.keys["trace_id"])
            for node in result.evidence_graph.nodes
            if node.kind == "request" and "trace_id" in node.keys
        )
        req_spans = store.query(
            "SELECT count(*) AS n FROM spans WHERE trace_id IN (SELECT unnest(?))", [analysed]
        ).to_pylist()[0]["n"]
        conn.send(
            {
                "step": "run",
                "seconds": seconds,
                "stages": dict(_STAGE_TIMES),
                "stats": {k: v for k, v in result.stats.items() if k != "baseline"},
                "synthetic_analysed": trace_id in analysed,
                "analysed_trace_spans": int(req_spans),
                "top": result.ranking.services[0].name if result.ranking.services else None,
                "rss_mib": _peak_rss_mib(),
            }
        )
    store.close()
    conn.send({"step": "done"})


def run_case(
    system: System,
    data: IncidentData,
    n: int,
    *,
    fanout: int,
    repeat: int,
    timeout: float,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row: fork a child for the case and collect its messages, killing it on timeout."""
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_case, args=(send, system, data, n, fanout, repeat, params or {}))
    child.start()
    send.close()
    row: dict[str, Any] = {"failing_trace_spans": n, "status": "ok"}
    runs: list[dict[str, Any]] = []
    # store building gets the same allowance as one investigation, plus a minute
    deadline = time.monotonic() + timeout + 60
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not receive.poll(left):
            child.kill()
            row["status"] = f"timeout>{timeout:.0f}s" if "store_s" in row else "store timeout"
            break
        try:
            message = receive.recv()
        except EOFError:
            row["status"] = f"child died (exit {child.exitcode})"
            break
        if message["step"] == "store":
            row["store_s"] = message["store_s"]
            row["trace_build_s"] = message["trace_s"]
            row["store_spans"] = message["counts"]["spans"]
            row["store_logs"] = message["counts"]["logs"]
            row["store_metrics"] = message["counts"]["metrics"]
        elif message["step"] == "run":
            runs.append(message)
        else:
            break
        deadline = time.monotonic() + timeout
    child.join(5)
    if runs:
        times = [r["seconds"] for r in runs]
        middle = runs[sorted(range(len(runs)), key=lambda k: times[k])[(len(runs) - 1) // 2]]
        row.update(
            investigate_s=statistics.median(times),
            investigate_runs_s=times,
            requests_analysed=middle["stats"].get("requests_analysed"),
            agents_run=middle["stats"].get("agents_run"),
            spans_truncated=middle["stats"].get("spans_truncated"),
            synthetic_analysed=middle["synthetic_analysed"],
            analysed_trace_spans=middle["analysed_trace_spans"],
            top_service=middle["top"],
            stages_s={k: round(v, 4) for k, v in middle["stages"].items()},
            peak_rss_mib=max(r["rss_mib"] for r in runs),
        )
    return row


# -- main ---------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_tables(rows: list[dict[str, Any]]) -> None:
    """The main table, then the per-stage breakdown of each row's median run."""
    head = (
        f"{'services':>8} {'store spans':>11} {'store logs':>10} {'fail spans':>10} "
        f"{'in?':>3} {'reqs':>4} {'agents':>6} {'req spans':>9} {'investigate s':>13} "
        f"{'store s':>7} {'RSS MiB':>7}  status"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['services']:>8} {_fmt(r.get('store_spans'), ',d'):>11} "
            f"{_fmt(r.get('store_logs'), ',d'):>10} {r['failing_trace_spans']:>10,d} "
            f"{'yes' if r.get('synthetic_analysed') else 'no':>3} "
            f"{_fmt(r.get('requests_analysed'), 'd'):>4} {_fmt(r.get('agents_run'), ',d'):>6} "
            f"{_fmt(r.get('analysed_trace_spans'), ',d'):>9} "
            f"{_fmt(r.get('investigate_s'), '.3f'):>13} {_fmt(r.get('store_s'), '.2f'):>7} "
            f"{_fmt(r.get('peak_rss_mib'), '.0f'):>7}  {r['status']}"
        )
    labels = list(dict.fromkeys(label for _, _, label in STAGES))  # a label may time two
    print()
    print("stage seconds of the median run (facts stages are inside fill_context)")
    head = f"{'services':>8} {'store spans':>11} {'fail':>6} " + " ".join(
        f"{label:>9}" for label in labels
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        stages = r.get("stages_s", {})
        print(
            f"{r['services']:>8} {_fmt(r.get('store_spans'), ',d'):>11} "
            f"{r['failing_trace_spans']:>6} "
            + " ".join(f"{_fmt(stages.get(label), '.3f'):>9}" for label in labels)
        )


def main(argv: list[str] | None = None) -> int:
    """Run every case and print the tables (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_ints, default=[10, 100, 1000, 10000])
    parser.add_argument("--services", type=_ints, default=[50, 1000])
    parser.add_argument(
        "--store-spans",
        type=_ints,
        default=[20000, 200000],
        help="simulated spans per incident (target_spans), before the failing trace",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fanout", type=int, default=10, help="children per synthetic span")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per investigation")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an rclagent parameter (VALUE read as JSON, else text), e.g. scope=graph",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON only")
    parser.add_argument("--out", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param {item!r} is not NAME=VALUE")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value

    rows: list[dict[str, Any]] = []
    for services in args.services:
        system = generate_system(services, args.seed)
        if args.fanout > len(system.operations):
            parser.error(f"--fanout exceeds the {len(system.operations)} operations")
        for target in args.store_spans:
            began = time.perf_counter()
            data = generate_incident(
                system, index=1, seed=args.seed, fault_type="error", target_spans=target
            )
            simulate_s = time.perf_counter() - began
            for n in args.sizes:
                row = run_case(
                    system,
                    data,
                    n,
                    fanout=args.fanout,
                    repeat=args.repeat,
                    timeout=args.timeout,
                    params=params,
                )
                row = {"services": services, "target_spans": target, **row}
                row["simulate_s"] = round(simulate_s, 3)
                rows.append(row)
                if not args.json:
                    print(
                        f"# services={services} target_spans={target} fail={n}: "
                        f"{_fmt(row.get('investigate_s'), '.3f')} s ({row['status']})",
                        file=sys.stderr,
                        flush=True,
                    )
    if args.out:
        with open(args.out, "w") as out:
            json.dump(rows, out, indent=2)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_tables(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
