"""A small RCAEval-layout dataset written by tests: a clear fault in one service's columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Unix seconds of the first row; rows are 1 s apart.
START_S = 1_700_000_000
ROWS = 1200
#: Row at which the fault is injected (the inject time is START_S + INJECT_ROW).
INJECT_ROW = 600
SERVICES = ("api", "cart", "stock")
#: (folder, run, injected service, column that shows the fault)
CASES = (
    ("cart_cpu", "1", "cart", "cpu"),
    ("cart_cpu", "2", "cart", "cpu"),
    ("stock_mem", "1", "stock", "mem"),
)


def write_case(folder: Path, service: str, metric: str, seed: int) -> None:
    """One case: data.csv with cpu, mem, latency and a CPU-seconds counter per service."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    columns: dict[str, np.ndarray] = {"time": START_S + np.arange(ROWS)}
    for name in SERVICES:
        cpu = 20 + rng.normal(0, 1, ROWS)
        mem = 300e6 + rng.normal(0, 1e6, ROWS)
        latency = 0.05 + rng.normal(0, 0.002, ROWS)
        if name == service and metric == "cpu":
            cpu[INJECT_ROW:] += 60
        if name == service and metric == "mem":
            mem[INJECT_ROW:] += 400e6
        columns[f"{name}_cpu"] = cpu
        columns[f"{name}_mem"] = mem
        columns[f"{name}_latency-90"] = latency
        columns[f"{name}_container-cpu-usage-seconds-total"] = np.cumsum(cpu / 100)
    header = ",".join(columns)
    body = np.column_stack(list(columns.values()))
    np.savetxt(folder / "data.csv", body, delimiter=",", header=header, comments="", fmt="%.6f")
    (folder / "inject_time.txt").write_text(f"{START_S + INJECT_ROW}\n")


def write_tiny_rcaeval(root: Path) -> Path:
    """``root/toy/<service>_<fault>/<n>/`` for every case in `CASES`; returns `root`."""
    for seed, (name, run, service, metric) in enumerate(CASES):
        write_case(root / "toy" / name / run, service, metric, seed)
    return root
