"""Benchmark reports: the JSON object, the Markdown tables, and the files in `--out`.

The JSON object is what `tracehound bench --json` prints and `results.json` holds:

    {"version", "seed", "dataset",
     "results": [{"method", "dataset", "ground_truth", "n",
                  "service": LEVEL, "instance": LEVEL, "span": LEVEL,
                  "fault_type": {"accuracy", "n"},
                  "by_fault_type": {type: {"n", "service", "instance", "span",
                                           "fault_type"}},
                  "by_system": {...},
                  "time_s": {"median", "max"}, "load_time_s": {"median", "max"},
                  "peak_rss_mb", "errors": [{"incident", "message"}]}],
     "cases": [one row per case]}

where LEVEL is {"ac@1", "ac@3", "ac@5", "avg@5", "mrr", "n"}; scores are null when no
case is labelled at that level. "fault_type" is the share of cases whose predicted fault
type is in the class of the labelled one (`metrics.FAULT_CLASSES`), over the `n` cases
whose label has a class. For agent runs (Who&When), "service" is the agent level and
"span" the step level, and "ac@1" is the paper's accuracy; "ground_truth" is "with" or
"without" when the method ran with or without the runs' reference answer, else null.
Tables show the span level only when some case is labelled with a span.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from tracehound.bench.case import CaseResult
from tracehound.bench.metrics import GroupScores, LevelScores, MethodSummary, Spread, TypeScores
from tracehound.bench.plots import accuracy_chart
from tracehound.bench.runner import BenchRun

#: The AC@k columns reported (Avg@5 still averages AC@1..AC@5).
REPORTED_K = (1, 3, 5)
#: Shown for a score or time that does not exist (no labelled case, no finished case).
MISSING = "n/a"


@dataclass(frozen=True)
class ReportFiles:
    """Where `write_report` put its files."""

    json: Path
    markdown: Path
    chart: Path


# --- JSON ---------------------------------------------------------------------------------


def level_json(scores: LevelScores) -> dict[str, Any]:
    """{"ac@1", "ac@3", "ac@5", "avg@5", "mrr", "n"} of one level."""
    row: dict[str, Any] = {f"ac@{k}": scores.ac_at(k) for k in REPORTED_K}
    row |= {"avg@5": scores.avg5, "mrr": scores.mrr, "n": scores.n}
    return row


def group_json(scores: GroupScores) -> dict[str, Any]:
    """{"n", "service", "instance", "span", "fault_type"} of a group of cases."""
    return {
        "n": scores.n,
        "service": level_json(scores.service),
        "instance": level_json(scores.instance),
        "span": level_json(scores.span),
        "fault_type": type_json(scores.fault_type),
    }


def type_json(scores: TypeScores) -> dict[str, Any]:
    """{"accuracy", "n"} of the fault-type scores."""
    return {"accuracy": scores.accuracy, "n": scores.n}


def ground_truth_json(setting: bool | None) -> str | None:
    """The JSON value of a ground-truth setting: "with", "without" or None."""
    return None if setting is None else "with" if setting else "without"


def spread_json(spread: Spread) -> dict[str, float | None]:
    return {"median": spread.median, "max": spread.max}


def summary_json(summary: MethodSummary) -> dict[str, Any]:
    """One entry of "results"."""
    return {
        "method": summary.method,
        "dataset": summary.dataset,
        "ground_truth": ground_truth_json(summary.ground_truth),
        **group_json(summary.overall),
        "by_fault_type": {k: group_json(v) for k, v in summary.by_fault_type.items()},
        "by_system": {k: group_json(v) for k, v in summary.by_system.items()},
        "time_s": spread_json(summary.time_s),
        "load_time_s": spread_json(summary.load_time_s),
        "peak_rss_mb": summary.peak_rss_mb,
        "errors": [{"incident": i, "message": m} for i, m in summary.errors],
    }


def case_json(case: CaseResult) -> dict[str, Any]:
    """One entry of "cases"."""
    return {
        "method": case.method,
        "dataset": case.dataset,
        "incident": case.incident,
        "system": case.system,
        "fault_type": case.labels.fault_type,
        "labels": {
            "service": case.labels.service,
            "instance": case.labels.instance,
            "fault_type": case.labels.fault_type,
            "span": case.labels.span,
            "step": case.labels.step,
        },
        "ground_truth": ground_truth_json(case.ground_truth),
        "params": dict(case.params),
        "service_rank": case.service_rank,
        "instance_rank": case.instance_rank,
        "span_rank": case.span_rank,
        "top_services": list(case.top_services),
        "top_instances": list(case.top_instances),
        "top_spans": list(case.top_spans),
        "predicted_fault_type": case.predicted_fault_type,
        "load_s": case.load_seconds,
        "localize_s": case.localize_seconds,
        "peak_rss_mb": case.peak_rss_mb,
        "error": case.error,
    }


def bench_json(run: BenchRun) -> dict[str, Any]:
    """The whole benchmark as one JSON-ready object."""
    return {
        "version": run.version,
        "seed": run.seed,
        "dataset": run.dataset,
        "results": [summary_json(s) for s in run.summaries],
        "cases": [case_json(c) for c in run.cases],
    }


# --- tables -------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def _level_cells(scores: LevelScores) -> list[str]:
    cells = [_number(scores.ac_at(k)) for k in REPORTED_K]
    return [*cells, _number(scores.avg5), _number(scores.mrr), str(scores.n)]


def _level_headers(prefix: str) -> list[str]:
    names = [f"AC@{k}" for k in REPORTED_K] + ["Avg@5", "MRR", "n"]
    return [f"{prefix} {name}" for name in names]


SCORE_HEADERS = [*_level_headers("svc"), *_level_headers("inst")]
SPAN_HEADERS = _level_headers("span")
TYPE_HEADERS = ["type acc.", "type n"]


def has_spans(run: BenchRun) -> bool:
    """Whether any case is labelled with a span (agent runs): tables then show that level."""
    return any(case.labels.span is not None for case in run.cases)


def _score_headers(run: BenchRun) -> list[str]:
    levels = [*SCORE_HEADERS, *SPAN_HEADERS] if has_spans(run) else SCORE_HEADERS
    return [*levels, *TYPE_HEADERS]


def _score_cells(scores: GroupScores, spans: bool = False) -> list[str]:
    cells = [*_level_cells(scores.service), *_level_cells(scores.instance)]
    if spans:
        cells += _level_cells(scores.span)
    return [*cells, _number(scores.fault_type.accuracy), str(scores.fault_type.n)]


def overview_table(run: BenchRun) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the main table: one row per method, ground-truth setting and
    dataset."""
    spans = has_spans(run)
    headers = ["method", "dataset", "cases", *_score_headers(run), "median s", "max s", "errors"]
    rows = [
        [
            s.label,
            s.dataset,
            str(s.overall.n),
            *_score_cells(s.overall, spans),
            _number(s.time_s.median),
            _number(s.time_s.max),
            str(len(s.errors)),
        ]
        for s in run.summaries
    ]
    return headers, rows


def breakdown_table(run: BenchRun, by: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the scores per fault type (`by="fault_type"`) or per system."""
    if by not in ("fault_type", "system"):
        raise ValueError(f"cannot break down by {by!r}; use 'fault_type' or 'system'")
    label = "fault type" if by == "fault_type" else "system"
    spans = has_spans(run)
    rows = []
    for s in run.summaries:
        groups = s.by_fault_type if by == "fault_type" else s.by_system
        rows += [[s.label, name, str(g.n), *_score_cells(g, spans)] for name, g in groups.items()]
    return ["method", label, "cases", *_score_headers(run)], rows


def error_table(run: BenchRun) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the cases that raised, with their messages."""
    rows = [[s.label, incident, message] for s in run.summaries for incident, message in s.errors]
    return ["method", "incident", "message"], rows


def accuracy_table(run: BenchRun) -> Table:
    """Accuracy for a terminal: one row per method and level (results.md has it all)."""
    headers = ["method", "level", "n", *(f"AC@{k}" for k in REPORTED_K), "Avg@5", "MRR"]
    table = Table(*headers, title=f"accuracy on {run.dataset}", box=box.SIMPLE_HEAD)
    spans = has_spans(run)
    blank = [""] * (len(REPORTED_K) + 1)
    for s in run.summaries:
        levels = [("service", s.overall.service), ("instance", s.overall.instance)]
        if spans:
            levels.append(("span", s.overall.span))
        for level, scores in levels:
            cells = _level_cells(scores)  # the scores, then n
            table.add_row(s.label if level == "service" else "", level, cells[-1], *cells[:-1])
        kind = s.overall.fault_type
        if kind.n:  # the share of right fault types, in the AC@1 column
            table.add_row("", "fault type", str(kind.n), _number(kind.accuracy), *blank)
    return _right_aligned(table, first=2)


def cost_table(run: BenchRun) -> Table:
    """Time, memory and errors for a terminal: one row per method."""
    headers = ["method", "cases", "median s", "max s", "load median s", "peak MiB", "errors"]
    table = Table(*headers, title="cost per case", box=box.SIMPLE_HEAD)
    for s in run.summaries:
        table.add_row(
            s.label,
            str(s.overall.n),
            _number(s.time_s.median),
            _number(s.time_s.max),
            _number(s.load_time_s.median),
            MISSING if s.peak_rss_mb is None else f"{s.peak_rss_mb:.0f}",
            str(len(s.errors)),
        )
    return _right_aligned(table, first=1)


def _right_aligned(table: Table, first: int) -> Table:
    for column in table.columns[first:]:
        column.justify = "right"
    return table


# --- Markdown -----------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(run: BenchRun) -> str:
    """The Markdown report: overview, per fault type, per system, then error rows."""
    parts = [
        "# tracehound bench",
        f"tracehound {run.version} · seed {run.seed} · dataset `{run.dataset}` · "
        f"{len(run.cases)} cases. svc = service level, inst = instance level; "
        "AC@k and Avg@5 over the cases labelled at that level (n), errors count as misses; "
        "type acc. = share of the type n cases whose label has a fault class "
        "(latency and network are one) that got a predicted fault type of that class; "
        "times are seconds of `localize` per case."
        + (
            " For agent runs svc is the agent level and span the step level (0-based step "
            "index); a case without a prediction counts as a miss."
            if has_spans(run)
            else ""
        ),
        markdown_table(*overview_table(run)),
        "## By fault type",
        markdown_table(*breakdown_table(run, "fault_type")),
        "## By system",
        markdown_table(*breakdown_table(run, "system")),
        "## Errors",
    ]
    headers, rows = error_table(run)
    parts.append(markdown_table(headers, rows) if rows else "No case raised an error.")
    return "\n\n".join(parts) + "\n"


def write_report(run: BenchRun, out: Path) -> ReportFiles:
    """Write results.json, results.md and acc.png into `out` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        json=out / "results.json", markdown=out / "results.md", chart=out / "acc.png"
    )
    files.json.write_text(json.dumps(bench_json(run), indent=2) + "\n")
    files.markdown.write_text(markdown(run))
    accuracy_chart(run.summaries, files.chart)
    return files
