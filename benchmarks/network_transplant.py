"""Network delays transplanted onto real, fault-free traces: does rclagent find them?

    python benchmarks/network_transplant.py DATASET OUT [--incident ID] [--delay-ms 100,300]
        [--loss P] [--leaf-calls] [--incident-first] [--no-metrics] [--min-edges 5]
        [--seed 0]
    tracehound bench --method rclagent --dataset OUT --workers 2

The development sets hold no network-delay fault, while real systems (and the held-out
data) do. This builds labelled network-delay incidents from a dataset incident's *normal
window* (fault-free traffic of a real system): its traces rooted in the first half become
the baseline, those rooted in the second half the incident window (`--incident-first`:
the other way round), and in the incident half one instance's egress is delayed, as a
`netem` delay on a pod would do:

- a call out of the victim (its span -> a span of another instance): the request leg is
  late, so the callee's span and everything under it start `delay` later, and the call
  ends `delay` later;
- a call into the victim: the response leg is late, so the caller's span ends `delay`
  later while the victim's own span is unchanged;
- with `--leaf-calls`, each leaf span of the victim (on real traces mostly database
  calls to an untraced server) also lasts `delay` longer;
- with `--loss P`, packet loss instead of a steady delay: each such leg is delayed only
  with probability P, by `delay` (set it to a retransmission timeout, 200 ms on Linux).

Every extension moves what follows: a sibling that started after an extended span ended
starts later by that much, and a parent ends as much later as its last child now ends
past the old end of its last child. Each delay gets a seeded jitter of x0.8-1.2. Log
lines linked to a moved span move with it. Metrics are kept as they are (a network delay
rarely moves CPU or memory).
One incident is written per victim instance (any instance with at least `--min-edges`
calls to or from other instances in the incident half) and per delay, as bundles with
the victim's service, instance and fault type `network` as labels.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracehound.bundle import write_bundle
from tracehound.datasets import open_dataset
from tracehound.model import Incident, IncidentData, Labels, Window


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000) * 1000


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _rooted_in(spans: pa.Table, lo: int, hi: int) -> pa.Table:
    """Spans of the traces whose earliest span starts in [lo, hi)."""
    first = spans.group_by("trace_id").aggregate([("start_ns", "min")])
    keep = first.filter(
        pc.and_(pc.greater_equal(first["start_ns_min"], lo), pc.less(first["start_ns_min"], hi))
    )["trace_id"]
    return spans.filter(pc.is_in(spans["trace_id"], value_set=keep))


def delay_traces(
    spans: pa.Table,
    victim: str,
    delay_ms: float,
    leaf_calls: bool,
    rng: np.random.Generator,
    loss: float | None = None,
) -> tuple[pa.Table, dict[tuple[str, str], int]]:
    """The spans with the victim's egress delayed, and each moved span's shift in ns."""
    trace = spans["trace_id"].to_pylist()
    sid = spans["span_id"].to_pylist()
    parent = spans["parent_span_id"].to_pylist()
    inst = spans["instance"].to_pylist()
    start = spans["start_ns"].to_numpy().astype(np.int64)
    dur = spans["duration_ns"].to_numpy().astype(np.int64)
    end = start + dur
    index = {(t, s): i for i, (t, s) in enumerate(zip(trace, sid, strict=True))}
    children: dict[int, list[int]] = {}
    roots = []
    for i, (t, p) in enumerate(zip(trace, parent, strict=True)):
        j = index.get((t, p)) if p else None
        if j is None or j == i:
            roots.append(i)
        else:
            children.setdefault(j, []).append(i)
    shift = np.zeros(len(start), dtype=np.int64)
    extend = np.zeros(len(start), dtype=np.int64)

    def late() -> int:
        jitter = rng.uniform(0.8, 1.2)
        if loss is not None and rng.random() >= loss:
            return 0
        return int(delay_ms * 1e6 * jitter)

    def walk(i: int, moved: int) -> int:
        shift[i] = moved
        done: list[tuple[int, int]] = []
        for k in sorted(children.get(i, []), key=lambda c: (start[c], c)):
            carried = max((e for finished, e in done if finished <= start[k]), default=0)
            request = late() if inst[i] == victim and inst[k] != victim else 0
            inner = walk(k, moved + carried + request)
            response = late() if inst[k] == victim and inst[i] != victim else 0
            done.append((int(end[k]), carried + request + inner + response))
        # the span ends as much later as its last child now ends past the last child's
        # old end (children that overlapped need not all move the end)
        longest = max(0, max(f + e for f, e in done) - max(f for f, _ in done)) if done else 0
        if leaf_calls and inst[i] == victim and i not in children and i not in roots:
            longest += late()
        extend[i] = longest
        return longest

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for r in roots:
        walk(r, 0)
    out = spans.set_column(
        spans.schema.get_field_index("start_ns"), "start_ns", pa.array(start + shift)
    )
    out = out.set_column(
        out.schema.get_field_index("duration_ns"), "duration_ns", pa.array(dur + extend)
    )
    moved = {(trace[i], sid[i]): int(shift[i]) for i in np.flatnonzero(shift).tolist()}
    return out, moved


def _move_logs(logs: pa.Table, moved: dict[tuple[str, str], int]) -> pa.Table:
    if not moved or logs.num_rows == 0:
        return logs
    ts = logs["ts_ns"].to_numpy().copy()
    for n, (t, s) in enumerate(
        zip(logs["trace_id"].to_pylist(), logs["span_id"].to_pylist(), strict=True)
    ):
        ts[n] += moved.get((t or "", s or ""), 0)
    return logs.set_column(logs.schema.get_field_index("ts_ns"), "ts_ns", pa.array(ts))


def _victims(spans: pa.Table, min_edges: int) -> list[tuple[str, str]]:
    """(service, instance) with at least `min_edges` calls to or from other instances."""
    inst = dict(
        zip(
            zip(spans["trace_id"].to_pylist(), spans["span_id"].to_pylist(), strict=True),
            spans["instance"].to_pylist(),
            strict=True,
        )
    )
    service = dict(zip(spans["instance"].to_pylist(), spans["service"].to_pylist(), strict=True))
    counts: dict[str, int] = {}
    for t, p, i in zip(
        spans["trace_id"].to_pylist(),
        spans["parent_span_id"].to_pylist(),
        spans["instance"].to_pylist(),
        strict=True,
    ):
        caller = inst.get((t, p))
        if caller is not None and caller != i:
            counts[i] = counts.get(i, 0) + 1
            counts[caller] = counts.get(caller, 0) + 1
    return sorted((service[i], i) for i, n in counts.items() if n >= min_edges)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="a dataset whose incidents have a normal window")
    parser.add_argument("out", help="directory for the bundles")
    parser.add_argument("--incident", help="incident whose normal window is used (first)")
    parser.add_argument("--delay-ms", default="100,300", help="delays, comma-separated")
    parser.add_argument(
        "--loss", type=float, help="delay a leg only with this probability (packet loss)"
    )
    parser.add_argument("--leaf-calls", action="store_true", help="delay the victim's leaves")
    parser.add_argument(
        "--incident-first", action="store_true", help="the first half is the incident"
    )
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="leave the metrics out (the window's own may hold a real, unlabelled shift)",
    )
    parser.add_argument("--min-edges", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dataset = open_dataset(args.dataset)
    incident_id = args.incident or next(iter(dataset.incidents())).id
    data = dataset.load(incident_id)
    normal = data.incident.normal_window
    if normal is None or data.spans is None:
        print(f"{incident_id} has no normal window or no traces", file=sys.stderr)
        return 2
    lo, hi = _ns(normal.start), _ns(normal.end)
    mid = lo + (hi - lo) // 2
    (b0, b1), (w0, w1) = ((mid, hi), (lo, mid)) if args.incident_first else ((lo, mid), (mid, hi))
    before = _rooted_in(data.spans, b0, b1)
    during = _rooted_in(data.spans, w0, w1)
    logs = data.logs
    if logs is not None:
        logs = logs.filter(pc.and_(pc.greater_equal(logs["ts_ns"], lo), pc.less(logs["ts_ns"], hi)))
    victims = _victims(during, args.min_edges)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for delay in (float(d) for d in args.delay_ms.split(",")):
        for n, (service, instance) in enumerate(victims):
            rng = np.random.default_rng([args.seed, n, int(delay)])
            late, moved = delay_traces(
                during, instance, delay, args.leaf_calls, rng, loss=args.loss
            )
            incident = Incident(
                id=(f"loss{round(args.loss * 100)}-" if args.loss is not None else "net-")
                + f"{int(delay)}ms-{n:02d}",
                system=data.incident.system,
                window=Window(start=_dt(w0), end=_dt(w1)),
                normal_window=Window(start=_dt(b0), end=_dt(b1)),
                labels=Labels(
                    service=service, instance=instance, fault_type="network", fault_start=_dt(w0)
                ),
            )
            bundle = IncidentData(
                incident=incident,
                spans=pa.concat_tables([before, late]),
                metrics=None if args.no_metrics else data.metrics,
                logs=_move_logs(logs, moved) if logs is not None else None,
            )
            write_bundle(bundle, out / incident.id)
            written += 1
    print(f"{written} incidents ({len(victims)} victims) from {incident_id} in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
