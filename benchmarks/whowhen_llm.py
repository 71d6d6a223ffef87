"""Calls and tokens per run of the Who&When LLM protocols (all-at-once, step-by-step,
binary-search), with their predictions, on the first N runs of an agent-run dataset.

    .venv/bin/python benchmarks/whowhen_llm.py ../shared/datasets/who-and-when \\
        --limit 5 --llm local [--ground-truth both] [--record-dir DIR]

One local model server (`--llm local`) serves every call; `--record-dir` writes one
transcript per protocol (`<protocol>.jsonl`) for replaying. Prints one JSON object: per
protocol and setting, each run's prediction, label, calls and tokens, and the means.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tracehound.bench.case import without_ground_truth
from tracehound.datasets import open_dataset
from tracehound.methods import get_method
from tracehound.store import TelemetryStore

PROTOCOLS = ("all-at-once", "step-by-step", "binary-search")
SETTINGS = {"both": (True, False), "with": (True,), "without": (False,)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--llm", default="local")
    parser.add_argument("--ground-truth", choices=sorted(SETTINGS), default="both")
    parser.add_argument("--method", action="append", choices=PROTOCOLS)
    parser.add_argument("--record-dir", type=Path)
    args = parser.parse_args()
    dataset = open_dataset(args.dataset)
    incidents = dataset.incidents()[: args.limit]
    out: dict[str, Any] = {"dataset": str(args.dataset), "runs": [i.id for i in incidents]}
    with ExitStack() as stack:
        if args.llm == "local":
            from tracehound.llm.local import local_server

            stack.enter_context(local_server())
        for name in args.method or PROTOCOLS:
            for setting in SETTINGS[args.ground_truth]:
                params: dict[str, Any] = {"llm": args.llm, "use_ground_truth": setting}
                if args.record_dir is not None:
                    params["llm_record"] = str(args.record_dir / f"{name}.jsonl")
                method = get_method(name, **params)
                rows = []
                for incident in incidents:
                    data = dataset.load(incident.id)
                    run = data.incident if setting else without_ground_truth(data.incident)
                    started = time.perf_counter()
                    with TelemetryStore.from_incident(data) as store:
                        result = method.investigate(run, store)  # type: ignore[attr-defined]
                    llm = result.stats["llm"]
                    labels = incident.labels
                    rows.append(
                        {
                            "run": incident.id,
                            "steps": int(data.spans.num_rows) if data.spans is not None else 0,
                            "predicted": [
                                result.stats["attribution"]["agent"],
                                result.stats["attribution"]["step"],
                            ],
                            "label": [labels.service, labels.step] if labels else None,
                            "calls": llm["calls"],
                            "prompt_tokens": llm["prompt_tokens"],
                            "completion_tokens": llm["completion_tokens"],
                            "seconds": round(time.perf_counter() - started, 1),
                        }
                    )
                    print(name, setting, rows[-1], file=sys.stderr, flush=True)
                out[f"{name} ({'with' if setting else 'without'} GT)"] = {
                    "runs": rows,
                    "mean": {
                        key: statistics.fmean(r[key] for r in rows)
                        for key in ("calls", "prompt_tokens", "completion_tokens", "seconds")
                    },
                }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
