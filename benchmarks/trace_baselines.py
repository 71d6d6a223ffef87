"""Accuracy and speed of one method over every incident of a dataset (until `bench` exists).

Usage: python benchmarks/trace_baselines.py PATH [--method microrank|tracerca|...] [-v]

Loads each incident with `tracehound.datasets.open_dataset(PATH)`, runs the method on a
fresh in-memory `TelemetryStore`, and prints AC@1, AC@3, AC@5 and Avg@5 (ARCHITECTURE §10)
at service level (rank of `labels.service` in `ranking.services`, exact match) and instance
level (`labels.instance` in `ranking.instances`), overall and per fault type, and the median
and max seconds of `localize` per case. A case that raises counts as a miss.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from tracehound.datasets import open_dataset
from tracehound.methods.registry import available_methods
from tracehound.model import Candidate
from tracehound.store import TelemetryStore

KS = (1, 2, 3, 4, 5)


def _method_class(name: str) -> type:
    methods = available_methods()
    if name in methods:
        return methods[name]
    # not registered yet (entry points pending): import the trace baselines directly
    from tracehound.methods.microrank import MicroRankMethod
    from tracehound.methods.tracerca import TraceRCAMethod

    local = {"microrank": MicroRankMethod, "tracerca": TraceRCAMethod}
    return local[name]


def _rank(candidates: list[Candidate], label: str | None) -> int | None:
    if label is None:
        return None
    for position, candidate in enumerate(candidates, start=1):
        if candidate.name == label:
            return position
    return 0  # not ranked


def _metrics(ranks: list[int]) -> str:
    n = len(ranks)
    if not n:
        return "n=0"
    acc = {k: sum(1 for r in ranks if 0 < r <= k) / n for k in KS}
    avg5 = sum(acc.values()) / len(KS)
    return f"n={n:<3} AC@1 {acc[1]:.3f}  AC@3 {acc[3]:.3f}  AC@5 {acc[5]:.3f}  Avg@5 {avg5:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--method", default="microrank")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args(argv)

    dataset = open_dataset(args.path)
    method = _method_class(args.method)()
    service_ranks: dict[str, list[int]] = defaultdict(list)
    instance_ranks: dict[str, list[int]] = defaultdict(list)
    seconds: list[float] = []
    errors = 0
    for incident in dataset.incidents():
        data = dataset.load(incident.id)
        labels = data.incident.labels
        fault = (labels.fault_type if labels else None) or "unknown"
        with TelemetryStore.from_incident(data) as store:
            started = time.perf_counter()
            try:
                ranking = method.localize(data.incident, store)
            except Exception as exc:  # a failing case is a miss, reported
                errors += 1
                print(f"ERROR {incident.id}: {type(exc).__name__}: {exc}")
                ranking = None
            seconds.append(time.perf_counter() - started)
        srank = _rank(ranking.services, labels.service) if ranking and labels else 0
        irank = _rank(ranking.instances, labels.instance) if ranking and labels else 0
        if srank is not None:
            service_ranks[fault].append(srank)
            service_ranks["ALL"].append(srank)
        if irank is not None:
            instance_ranks[fault].append(irank)
            instance_ranks["ALL"].append(irank)
        if args.verbose:
            top = ranking.services[0].name if ranking and ranking.services else "-"
            print(
                f"{incident.id:<28} {fault:<15} service rank {srank} instance rank {irank}"
                f"  top={top}  {seconds[-1]:.2f}s"
            )
    print(f"method {args.method} on {args.path} ({len(seconds)} cases, {errors} errors)")
    for level, table in (("service", service_ranks), ("instance", instance_ranks)):
        for fault in ["ALL", *sorted(k for k in table if k != "ALL")]:
            print(f"  {level:<8} {fault:<15} {_metrics(table[fault])}")
    if seconds:
        print(
            f"  seconds per case: median {statistics.median(seconds):.3f}, max {max(seconds):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
