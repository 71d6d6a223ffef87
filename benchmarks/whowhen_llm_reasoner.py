"""Calls, tokens and agent/step hits of rclagent's LLM and hybrid reasoners on Who&When runs.

Usage:
    .venv/bin/python benchmarks/whowhen_llm_reasoner.py [PATH] [--runs 38,93,19,47,12]
        [--reasoner hybrid --reasoner llm] [--llm local] [--max-calls 40]
        [--record-dir DIR] [--json FILE]

PATH defaults to ../shared/datasets/who-and-when; `--runs` names Algorithm-Generated
files by number (the default: the five with the fewest characters of step text). For
each reasoner and run: `RclAgentMethod(reasoner=..., llm=..., llm_max_calls=...)`
investigates it (with the reference answer, as `whowhen_rules.py`'s first setting) and
the row records `stats.llm` (calls, prompt and completion tokens, agents the model
answered, fallbacks, budget exhausted), the run's steps, and agent and step hits scored
as `whowhen_rules.py` scores them (exact step index, normalised agent name). The rule
reasoner's prediction is listed beside it. With `--llm local` one local server
(llama.cpp with the packaged model) serves the whole run; `--record-dir` writes one
transcript per reasoner and run (`<reasoner>-<run>.jsonl`) to replay. Prints one JSON
line per row, then a table and the totals per reasoner.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from whowhen_rules import DEFAULT_PATH, score

from tracehound.datasets import open_dataset
from tracehound.rclagent import RclAgentMethod
from tracehound.store import TelemetryStore

#: Algorithm-Generated files with the fewest characters of step text (2,851-3,545).
SHORTEST = "38,93,19,47,12"


def _row(
    reasoner: str, run: str, result: Any, rule: Any, incident: Any, seconds: float
) -> dict[str, Any]:
    llm = result.stats.get("llm", {})
    hit = score(incident, result.ranking)
    rule_hit = score(incident, rule.ranking)
    return {
        "reasoner": reasoner,
        "run": run,
        "steps": int(result.stats.get("steps", 0)),
        "calls": int(llm.get("calls", 0)),
        "prompt_tokens": int(llm.get("prompt_tokens", 0)),
        "completion_tokens": int(llm.get("completion_tokens", 0)),
        "repairs": int(llm.get("repairs", 0)),
        "agents_llm": int(llm.get("agents_llm", 0)),
        "agents_fallback": int(llm.get("agents_fallback", 0)),
        "budget_exhausted": bool(llm.get("budget_exhausted", False)),
        "agent": hit["agent"],
        "step": hit["step"],
        "agent_hit": hit["agent_hit"],
        "step_hit": hit["step_hit"],
        "rule_agent_hit": rule_hit["agent_hit"],
        "rule_step_hit": rule_hit["step_hit"],
        "label": f"{hit['label_agent']} step {hit['label_step']}",
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_PATH))
    parser.add_argument("--runs", default=SHORTEST, help="file numbers, comma-separated")
    parser.add_argument("--reasoner", action="append", choices=["llm", "hybrid"])
    parser.add_argument("--llm", default="local", help="'local' or a base URL")
    parser.add_argument("--max-calls", type=int, default=40, help="call budget per run")
    parser.add_argument("--record-dir", default=None, help="write one transcript per run here")
    parser.add_argument("--json", default=None, help="write every row to this file")
    args = parser.parse_args(argv)
    reasoners = args.reasoner or ["hybrid", "llm"]
    dataset = open_dataset(args.path)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        if args.llm == "local":
            from tracehound.llm.local import local_server

            stack.enter_context(local_server())  # one server for the run, reused below
        for reasoner in reasoners:
            for run in runs:
                data = dataset.load(f"ww-algorithm-generated-{run}")
                record = (
                    str(Path(args.record_dir) / f"{reasoner}-{run}.jsonl")
                    if args.record_dir
                    else None
                )
                method = RclAgentMethod(
                    reasoner=reasoner, llm=args.llm, llm_max_calls=args.max_calls, llm_record=record
                )
                started = time.perf_counter()
                with TelemetryStore.from_incident(data) as store:
                    result = method.investigate(data.incident, store)
                    rule = RclAgentMethod().investigate(data.incident, store)
                row = _row(
                    reasoner, run, result, rule, data.incident, time.perf_counter() - started
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    _table(rows, reasoners)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


def _table(rows: list[dict[str, Any]], reasoners: list[str]) -> None:
    print(
        "| reasoner | run | steps | calls | prompt tok | completion tok | model / fallback "
        "agents | predicted (agent, step) | hit agent / step | rules hit agent / step | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['reasoner']} | {r['run']} | {r['steps']} | {r['calls']} | "
            f"{r['prompt_tokens']:,} | {r['completion_tokens']:,} | {r['agents_llm']} / "
            f"{r['agents_fallback']} | {r['agent']}, {r['step']} | "
            f"{_yes(r['agent_hit'])} / {_yes(r['step_hit'])} | "
            f"{_yes(r['rule_agent_hit'])} / {_yes(r['rule_step_hit'])} | {r['seconds']} |"
        )
    for reasoner in reasoners:
        mine = [r for r in rows if r["reasoner"] == reasoner]
        if not mine:
            continue
        n = len(mine)
        print(
            f"{reasoner}: {n} runs, calls {sum(r['calls'] for r in mine)} "
            f"({sum(r['calls'] for r in mine) / n:.1f}/run), prompt tokens "
            f"{sum(r['prompt_tokens'] for r in mine):,}, completion tokens "
            f"{sum(r['completion_tokens'] for r in mine):,}, agent hits "
            f"{sum(r['agent_hit'] for r in mine)}/{n}, step hits "
            f"{sum(r['step_hit'] for r in mine)}/{n} (rules: "
            f"{sum(r['rule_agent_hit'] for r in mine)}/{n}, "
            f"{sum(r['rule_step_hit'] for r in mine)}/{n}), budget exhausted "
            f"{sum(r['budget_exhausted'] for r in mine)}/{n}, "
            f"{sum(r['seconds'] for r in mine):.0f} s"
        )


def _yes(hit: bool) -> str:
    return "yes" if hit else "no"


if __name__ == "__main__":
    main()
