"""Service-level accuracy of the metric baselines (nsigma, baro) on a dataset.

Usage: python benchmarks/metric_baselines.py PATH [--method nsigma|baro ...] [--set k=v ...]

Loads every incident of the dataset at PATH with `tracehound.datasets.open_dataset`, runs
each method on a fresh in-memory `TelemetryStore`, and prints AC@1, AC@3, Avg@5 at service
level (the rank of `labels.service` among `ranking.services`, exact name match), overall
and per fault type, and the median and max seconds per case (localize only, not loading).
A case that raises counts as a miss and is listed. Stand-in until `tracehound bench`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tracehound.datasets import open_dataset
from tracehound.methods.baro import BaroMethod
from tracehound.methods.base import Method
from tracehound.methods.nsigma import NSigmaMethod
from tracehound.store import TelemetryStore

METHODS: dict[str, type[Method]] = {"nsigma": NSigmaMethod, "baro": BaroMethod}


def _value(text: str) -> Any:
    """A --set value as bool, int, float or str."""
    if text in ("true", "false", "True", "False"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def accuracy(ranks: list[int | None]) -> dict[str, float]:
    """AC@1, AC@3 and Avg@5 (mean of AC@1..AC@5) of 1-based ranks (None = not ranked)."""
    n = len(ranks)

    def ac(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / n if n else 0.0

    return {"AC@1": ac(1), "AC@3": ac(3), "Avg@5": sum(ac(k) for k in range(1, 6)) / 5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--method", action="append", choices=sorted(METHODS))
    parser.add_argument("--set", action="append", default=[], help="method parameter k=v")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    params = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}

    dataset = open_dataset(args.path)
    incidents = dataset.incidents()
    loaded = [dataset.load(incident.id) for incident in incidents]
    for method_name in args.method or sorted(METHODS):
        method = METHODS[method_name](**params)
        ranks: dict[str, list[int | None]] = defaultdict(list)
        seconds: list[float] = []
        errors: list[str] = []
        for data in loaded:
            labels = data.incident.labels
            truth = labels.service if labels else None
            fault = (labels.fault_type if labels else None) or "?"
            rank: int | None = None
            with TelemetryStore.from_incident(data) as store:
                started = time.perf_counter()
                try:
                    ranking = method.localize(data.incident, store)
                except Exception as exc:
                    errors.append(f"{data.incident.id}: {type(exc).__name__}: {exc}")
                    ranking = None
                seconds.append(time.perf_counter() - started)
            if ranking is not None:
                names = [c.name for c in ranking.services]
                rank = names.index(truth) + 1 if truth in names else None
                if args.verbose:
                    top = ", ".join(names[:3])
                    print(f"  {data.incident.id:<40} rank {rank}  top: {top}")
            ranks["all"].append(rank)
            ranks[fault].append(rank)
        print(f"{method!r} on {args.path} ({len(loaded)} incidents)")
        print(f"  {'fault':<16} {'n':>3} {'AC@1':>6} {'AC@3':>6} {'Avg@5':>6}")
        for fault in ["all", *sorted(k for k in ranks if k != "all")]:
            acc = accuracy(ranks[fault])
            print(
                f"  {fault:<16} {len(ranks[fault]):>3} {acc['AC@1']:>6.3f} "
                f"{acc['AC@3']:>6.3f} {acc['Avg@5']:>6.3f}"
            )
        print(
            f"  seconds per case: median {statistics.median(seconds):.3f}, "
            f"max {max(seconds):.3f}; errors: {len(errors)}"
        )
        for line in errors:
            print(f"  error {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
