"""Failure attribution accuracy of `rclagent` on Who&When runs (engine-level check).

Usage: python benchmarks/whowhen_rules.py [PATH] [--param k=v ...] [--json] [-v]

PATH defaults to ../shared/datasets/who-and-when. Every run is investigated twice, with
the reference answer (``use_ground_truth=true``) and without it. Scoring follows the
dataset README: a step hit is exact 0-based integer equality of the top span candidate's
``step-<i>`` with `labels.step`; an agent hit compares the top service candidate with
`labels.service` case-insensitively after stripping a trailing ``" (...)"``; step AC@3 is
the share of runs whose labelled step is among the first three span candidates. Figures
are printed for all runs and for odd- and even-numbered files (the split the rules were
tuned and checked on). Times include loading.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from tracehound.datasets import open_dataset
from tracehound.model import Incident, Ranking
from tracehound.rclagent import RclAgentMethod
from tracehound.store import TelemetryStore

DEFAULT_PATH = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "who-and-when"
_SUFFIX = re.compile(r"\s*\([^()]*\)\s*$")


def agent_key(name: str) -> str:
    return _SUFFIX.sub("", name).strip().lower()


def step_of(name: str) -> int | None:
    match = re.fullmatch(r"step-(\d+)", name)
    return int(match.group(1)) if match else None


def score(incident: Incident, ranking: Ranking) -> dict[str, Any]:
    labels = incident.labels
    assert labels is not None
    agent = ranking.services[0].name if ranking.services else ""
    steps = [step_of(c.name) for c in ranking.spans]
    return {
        "id": incident.id,
        "agent_hit": bool(labels.service) and agent_key(agent) == agent_key(labels.service or ""),
        "step_hit": bool(steps) and steps[0] == labels.step,
        "step_hit3": labels.step in steps[:3],
        "agent": agent,
        "step": steps[0] if steps else None,
        "label_agent": labels.service,
        "label_step": labels.step,
    }


def _half(incident_id: str) -> str:
    tail = incident_id.rsplit("-", 1)[-1]
    return ("odd" if int(tail) % 2 else "even") if tail.isdigit() else "other"


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    out: dict[str, Any] = {"n": n}
    for key, name in (("agent_hit", "agent"), ("step_hit", "step"), ("step_hit3", "step_ac3")):
        hits = sum(r[key] for r in rows)
        out[name] = {
            "hits": hits,
            "accuracy": round(hits / n, 4) if n else 0.0,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_PATH))
    parser.add_argument("--param", action="append", default=[], metavar="K=V")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per run")
    args = parser.parse_args(argv)
    params: dict[str, Any] = {}
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = json.loads(value) if value in ("true", "false") or value.isdigit() else value
    dataset = open_dataset(args.path)
    started = time.perf_counter()
    results: dict[str, list[dict[str, Any]]] = {"with_gt": [], "without_gt": []}
    for incident in dataset.incidents():
        data = dataset.load(incident.id)
        with TelemetryStore.from_incident(data) as store:
            for setting, use in (("with_gt", True), ("without_gt", False)):
                method = RclAgentMethod(**{**params, "use_ground_truth": use})
                row = score(data.incident, method.localize(data.incident, store))
                results[setting].append(row)
                if args.verbose and not args.json:
                    print(setting, json.dumps(row), file=sys.stderr)
    seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        "path": str(args.path),
        "params": params,
        "seconds": round(seconds, 2),
    }
    for setting, rows in results.items():
        report[setting] = {
            "all": summary(rows),
            "odd": summary([r for r in rows if _half(r["id"]) == "odd"]),
            "even": summary([r for r in rows if _half(r["id"]) == "even"]),
        }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.path}: {len(results['with_gt'])} runs, {seconds:.1f} s (both settings)")
    for setting in results:
        for part in ("all", "odd", "even"):
            s = report[setting][part]
            print(
                f"{setting:10} {part:4} n={s['n']:<3} agent {s['agent']['accuracy']:.3f} "
                f"({s['agent']['hits']})  step {s['step']['accuracy']:.3f} ({s['step']['hits']})"
                f"  step AC@3 {s['step_ac3']['accuracy']:.3f} ({s['step_ac3']['hits']})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
