"""The benchmark harness behind `tracehound bench` (ARCHITECTURE §10).

`runner` plans (method, incident) cases and fans them out over Dask distributed; `case`
is what a worker runs for one case; `metrics` scores the results (AC@k, Avg@5, MRR, per
fault type and system, time, memory); `report` and `plots` write results.json,
results.md and acc.png.
"""

from tracehound.bench.case import CaseLabels, CaseResult, CaseSpec, run_case
from tracehound.bench.metrics import (
    GroupScores,
    LevelScores,
    MethodSummary,
    level_scores,
    summarize,
)
from tracehound.bench.report import ReportFiles, bench_json, markdown, write_report
from tracehound.bench.runner import (
    BenchConfig,
    BenchRun,
    dask_client,
    parse_params,
    plan_cases,
    run_bench,
    run_cases,
    run_planned,
)

__all__ = [
    "BenchConfig",
    "BenchRun",
    "CaseLabels",
    "CaseResult",
    "CaseSpec",
    "GroupScores",
    "LevelScores",
    "MethodSummary",
    "ReportFiles",
    "bench_json",
    "dask_client",
    "level_scores",
    "markdown",
    "parse_params",
    "plan_cases",
    "run_bench",
    "run_case",
    "run_cases",
    "run_planned",
    "summarize",
    "write_report",
]
