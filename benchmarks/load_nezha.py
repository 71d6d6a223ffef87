"""Time `NezhaDataset(path).load(id)` for every incident of a Nezha layout.

Usage: python benchmarks/load_nezha.py [PATH] [--repeat N]

PATH defaults to the development copy at ../shared/datasets/nezha beside the repository.
Each load builds a fresh `NezhaDataset`, as a one-shot CLI call would, and then puts the
incident's tables into a fresh in-memory `TelemetryStore` (the "store s" column; "total s"
is both). Prints one line per incident (median seconds over N repeats; traces/spans/log
rows inside the incident window, then whole-table rows including the baseline) and the
median and max over all incidents.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tracehound.datasets.nezha import NezhaDataset
from tracehound.model import IncidentData
from tracehound.store import TelemetryStore

DEFAULT_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nezha"


def _in_window(table: pa.Table | None, column: str, data: IncidentData) -> pa.Table | None:
    if table is None:
        return None
    window = data.incident.window
    times = table.column(column)
    mask = pc.and_(pc.greater_equal(times, window.start_ns), pc.less(times, window.end_ns))
    return table.filter(mask)


def _rows(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--repeat", type=int, default=3, help="loads per incident (default 3)")
    args = parser.parse_args(argv)

    incidents = NezhaDataset(args.path).incidents()
    print(f"{len(incidents)} incidents in {args.path}, {args.repeat} load(s) each")
    print(
        f"{'incident':<28} {'load s':>7} {'store s':>7} {'total s':>7}"
        f" {'traces':>7} {'spans':>6} {'logs':>6}"
        f" | {'spans':>6} {'logs':>6} {'metrics':>7}"
    )
    medians = []
    for incident in incidents:
        load_s, store_s, seconds = [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            data = NezhaDataset(args.path).load(incident.id)
            loaded = time.perf_counter()
            TelemetryStore.from_incident(data).close()
            stored = time.perf_counter()
            load_s.append(loaded - started)
            store_s.append(stored - loaded)
            seconds.append(stored - started)
        median = statistics.median(seconds)
        medians.append(median)
        spans = _in_window(data.spans, "start_ns", data)
        logs = _in_window(data.logs, "ts_ns", data)
        traces = 0 if spans is None else len(pc.unique(spans.column("trace_id")))
        print(
            f"{incident.id:<28} {statistics.median(load_s):>7.3f}"
            f" {statistics.median(store_s):>7.3f} {median:>7.3f}"
            f" {traces:>7} {_rows(spans):>6} {_rows(logs):>6}"
            f" | {_rows(data.spans):>6} {_rows(data.logs):>6} {_rows(data.metrics):>7}"
        )
    if medians:
        print(
            f"load + store: median {statistics.median(medians):.3f} s, "
            f"max {max(medians):.3f} s per incident"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
