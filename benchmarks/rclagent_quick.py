"""Quick accuracy and speed of `rclagent` on a dataset (until `bench` registers it).

Usage: python benchmarks/rclagent_quick.py PATH [--param k=v ...] [-v]

For each incident: load it, build a store, run `RclAgentMethod.investigate`, and record
the rank of `labels.service` / `labels.instance` (exact match) and whether the predicted
fault type matches the label (dataset names mapped to tracehound's: see `FAULT_NAMES`).
Times include loading. Prints AC@1/3/5 and Avg@5 at both levels, per fault type, fault
type accuracy, and the median/max seconds per incident.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from tracehound.datasets import open_dataset
from tracehound.model import Candidate
from tracehound.rclagent import RclAgentMethod
from tracehound.store import TelemetryStore

#: Dataset fault-type names mapped to tracehound's (evaluation only, never in the engine).
FAULT_NAMES = {
    "return": "wrong_return",
    "exception": "error",
    "cpu_contention": "cpu",
    "cpu_consumed": "cpu",
    "network_delay": "network",
    "mem": "memory",
    "delay": "latency",
    "loss": "network",
}


def _rank(candidates: list[Candidate], label: str | None) -> int | None:
    if not label:
        return None
    for position, candidate in enumerate(candidates, start=1):
        if candidate.name == label:
            return position
    return 0


def _acc(ranks: list[int]) -> str:
    if not ranks:
        return "n=0"
    n = len(ranks)
    acc = {k: sum(1 for r in ranks if 0 < r <= k) / n for k in range(1, 6)}
    avg5 = sum(acc.values()) / 5
    return f"n={n:<3} AC@1 {acc[1]:.3f} AC@3 {acc[3]:.3f} AC@5 {acc[5]:.3f} Avg@5 {avg5:.3f}"


def _value(text: str) -> object:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    method = RclAgentMethod(**{k: _value(v) for k, v in params.items()})  # type: ignore[arg-type]
    dataset = open_dataset(args.path)
    svc: dict[str, list[int]] = defaultdict(list)
    ins: dict[str, list[int]] = defaultdict(list)
    times: list[float] = []
    fault_hits: list[bool] = []
    incidents = dataset.incidents()
    if args.limit:
        incidents = incidents[: args.limit]
    for incident in incidents:
        started = time.perf_counter()
        data = dataset.load(incident.id)
        with TelemetryStore.from_incident(data) as store:
            result = method.investigate(data.incident, store)
        times.append(time.perf_counter() - started)
        labels = data.incident.labels
        fault = (labels.fault_type if labels else None) or "?"
        s = _rank(result.ranking.services, labels.service if labels else None)
        i = _rank(result.ranking.instances, labels.instance if labels else None)
        for key in ("all", fault):
            if s is not None:
                svc[key].append(s)
            if i is not None:
                ins[key].append(i)
        fault_hits.append(FAULT_NAMES.get(fault, fault) == result.fault_type)
        if args.verbose:
            top = result.ranking.services[0] if result.ranking.services else None
            print(
                f"{incident.id} {fault:>14} svc#{s} inst#{i} pred={result.fault_type} "
                f"top={top.name if top else None} t={times[-1]:.2f}s "
                f"req={result.stats.get('requests_analysed')}"
            )
            if s != 1 and top is not None:
                print("   ", top.reason[:300])
    for key in sorted(svc, key=lambda k: (k != "all", k)):
        print(f"service  {key:>14}: {_acc(svc[key])}")
    for key in sorted(ins, key=lambda k: (k != "all", k)):
        print(f"instance {key:>14}: {_acc(ins[key])}")
    print(f"fault type accuracy: {sum(fault_hits) / max(1, len(fault_hits)):.3f}")
    print(
        f"seconds per incident (incl. loading): median {statistics.median(times):.3f} "
        f"max {max(times):.3f}"
    )


if __name__ == "__main__":
    main()
