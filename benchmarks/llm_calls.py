"""LLM calls, tokens and accuracy of `rclagent` with an LLM reasoner, per incident.

Usage:
    python benchmarks/llm_calls.py PATH [--reasoner hybrid --reasoner llm] [--llm local]
        [--max-calls N] [--skip N] [--limit N] [--json FILE]

For each incident of the dataset at PATH and each reasoner: load it, build a store, run
`RclAgentMethod(reasoner=..., llm=..., llm_max_calls=...).investigate` and record
`stats.llm` (calls, prompt and completion tokens, wall time, agents answered by the model
and fallbacks) and the rank of the labelled service (exact match). With `--llm local`,
one local server (llama.cpp with the packaged model) is started for the whole run and
stopped at the end; every investigation reuses it. Prints one table per reasoner and
the totals; `--json` writes every row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import ExitStack
from typing import Any

from tracehound.datasets import open_dataset
from tracehound.rclagent import RclAgentMethod
from tracehound.store import TelemetryStore


def _rank(names: list[str], label: str | None) -> int:
    return names.index(label) + 1 if label and label in names else 0


def _row(reasoner: str, incident_id: str, result: Any, label: str | None) -> dict[str, Any]:
    llm = result.stats.get("llm", {})
    return {
        "reasoner": reasoner,
        "incident": incident_id,
        "rank": _rank([c.name for c in result.ranking.services], label),
        "calls": int(llm.get("calls", 0)),
        "prompt_tokens": int(llm.get("prompt_tokens", 0)),
        "completion_tokens": int(llm.get("completion_tokens", 0)),
        "llm_wall_s": float(llm.get("wall_time_s", 0.0)),
        "agents_llm": int(llm.get("agents_llm", 0)),
        "agents_fallback": int(llm.get("agents_fallback", 0)),
        "budget_exhausted": bool(llm.get("budget_exhausted", False)),
        "agents_run": int(result.stats.get("agents_run", 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--reasoner", action="append", choices=["llm", "hybrid"])
    parser.add_argument("--llm", default="local", help="'local' or a base URL")
    parser.add_argument("--max-calls", type=int, default=None, help="call budget (llm_max_calls)")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N incidents")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", default=None, help="write every row to this file")
    args = parser.parse_args()
    reasoners = args.reasoner or ["hybrid", "llm"]
    dataset = open_dataset(args.path)
    incidents = dataset.incidents()[args.skip :]
    incidents = incidents[: args.limit] if args.limit else incidents
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        llm = args.llm
        if llm == "local":
            from tracehound.llm.local import local_server

            stack.enter_context(local_server())  # one server for the run, reused below
        for reasoner in reasoners:
            for incident in incidents:
                data = dataset.load(incident.id)
                label = data.incident.labels.service if data.incident.labels else None
                method = RclAgentMethod(reasoner=reasoner, llm=llm, llm_max_calls=args.max_calls)
                started = time.perf_counter()
                with TelemetryStore.from_incident(data) as store:
                    result = method.investigate(data.incident, store)
                row = _row(reasoner, incident.id, result, label)
                row["seconds"] = round(time.perf_counter() - started, 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    for reasoner in reasoners:
        mine = [r for r in rows if r["reasoner"] == reasoner]
        if not mine:
            continue
        n = len(mine)
        ac1 = sum(1 for r in mine if r["rank"] == 1) / n
        avg5 = sum(sum(1 for r in mine if 0 < r["rank"] <= k) / n for k in range(1, 6)) / 5
        calls = [r["calls"] for r in mine]
        print(
            f"{reasoner:7} n={n} AC@1 {ac1:.3f} Avg@5 {avg5:.3f} calls/inv median "
            f"{statistics.median(calls):.0f} mean {statistics.mean(calls):.1f} max {max(calls)} "
            f"prompt tokens/inv {statistics.mean(r['prompt_tokens'] for r in mine):.0f} "
            f"completion tokens/inv {statistics.mean(r['completion_tokens'] for r in mine):.0f} "
            f"budget exhausted {sum(r['budget_exhausted'] for r in mine)}/{n} "
            f"s/inv median {statistics.median(r['seconds'] for r in mine):.1f}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
