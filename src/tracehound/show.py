"""Terminal views of datasets and incidents (rich), used by `datasets info` and `demo`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Column, Table
from rich.tree import Tree

from tracehound.datasets.base import DatasetInfo
from tracehound.model import IncidentData, Window
from tracehound.store import TelemetryStore

_MAX_TREE_NODES = 40


def render_dataset_info(info: DatasetInfo, console: Console) -> None:
    """The `datasets info` view."""
    summary = Table.grid(padding=(0, 2))
    summary.add_row("kind", info.kind)
    summary.add_row("path", info.path)
    summary.add_row("incidents", str(info.incidents))
    summary.add_row("systems", ", ".join(info.systems) or "-")
    summary.add_row("modalities", ", ".join(info.modalities) or "-")
    if info.time_span is not None:
        summary.add_row("time span", _window_text(info.time_span))
    console.print(Panel(summary, title="dataset", expand=False))
    faults = Table("fault type", "incidents", title="fault types")
    for name, count in info.fault_types.items():
        faults.add_row(name, str(count))
    console.print(faults)
    if info.missing:
        console.print(f"[yellow]absent from the layout ({len(info.missing)}):[/]")
        for line in info.missing:
            console.print(f"  - {line}", highlight=False)


def _window_text(window: Window) -> str:
    return f"{window.start.isoformat()} → {window.end.isoformat()}"


def render_incident(data: IncidentData, store: TelemetryStore, console: Console) -> None:
    """Incident header, telemetry counts, per-service behaviour and one failing request."""
    incident = data.incident
    grid = Table.grid(padding=(0, 2))
    grid.add_row("id", incident.id)
    grid.add_row("system", incident.system or "-")
    grid.add_row("window", _window_text(incident.window))
    if incident.normal_window is not None:
        grid.add_row("normal window", _window_text(incident.normal_window))
    if incident.alert is not None:
        grid.add_row("alert", f"{incident.alert.service or '?'}: {incident.alert.message or ''}")
    if incident.labels is not None:
        labels = incident.labels
        grid.add_row(
            "ground truth",
            f"{labels.fault_type or '?'} at {labels.instance or labels.service or '?'}",
        )
    counts = store.counts()
    grid.add_row("telemetry", ", ".join(f"{n:,} {name}" for name, n in counts.items()))
    console.print(Panel(grid, title="incident", expand=False))
    if counts["spans"]:
        console.print(_service_table(store, incident.window, incident.normal_window))
        tree = _failing_request_tree(store, incident.window)
        if tree is not None:
            console.print(tree)
    for note in data.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _service_table(store: TelemetryStore, window: Window, normal: Window | None) -> Table:
    """Per service: spans, error share and p95 latency, in the incident vs normal window."""
    reference = normal or window
    rows = store.query(
        """
        WITH s AS (
          SELECT service, duration_ns, status = 'error' AS err,
                 start_ns >= ? AND start_ns < ? AS in_incident,
                 start_ns >= ? AND start_ns < ? AS in_normal
          FROM spans),
        l AS (
          SELECT service, count(*) AS errors FROM logs
          WHERE upper(level) IN ('ERROR', 'FATAL', 'SEVERE') AND ts_ns >= ? AND ts_ns < ?
          GROUP BY service)
        SELECT s.service,
               count(*) FILTER (WHERE in_incident) AS spans,
               avg(err::INT) FILTER (WHERE in_incident) AS error_share,
               quantile_cont(duration_ns, 0.95) FILTER (WHERE in_normal) / 1e6 AS p95_normal,
               quantile_cont(duration_ns, 0.95) FILTER (WHERE in_incident) / 1e6 AS p95_incident,
               coalesce(any_value(l.errors), 0) AS error_logs
        FROM s LEFT JOIN l USING (service)
        GROUP BY s.service
        ORDER BY error_share DESC NULLS LAST, p95_incident DESC NULLS LAST
        LIMIT 12
        """,
        [
            window.start_ns,
            window.end_ns,
            reference.start_ns,
            reference.end_ns,
            window.start_ns,
            window.end_ns,
        ],
    ).to_pylist()
    table = Table(
        Column("service", min_width=22, no_wrap=True),
        Column("spans", justify="right"),
        Column("errors", justify="right"),
        Column("p95 normal ms", justify="right"),
        Column("p95 now ms", justify="right"),
        Column("error logs", justify="right"),
        title="services in the incident window (top 12)",
    )
    for row in rows:
        table.add_row(
            row["service"],
            f"{row['spans']:,}",
            _fmt(row["error_share"], "{:.1%}"),
            _fmt(row["p95_normal"], "{:.1f}"),
            _fmt(row["p95_incident"], "{:.1f}"),
            str(row["error_logs"]),
        )
    return table


def _on_error_paths(
    spans: list[dict[str, Any]], by_parent: dict[str | None, list[dict[str, Any]]]
) -> set[str]:
    """Span ids that have error status or an erroring descendant (empty: no errors)."""
    keep: set[str] = set()

    def visit(span: dict[str, Any]) -> bool:
        below = [visit(child) for child in by_parent.get(span["span_id"], [])]
        if span["status"] == "error" or any(below):
            keep.add(span["span_id"])
            return True
        return False

    for root in by_parent.get(None, []):
        visit(root)
    return keep


def _fmt(value: Any, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _failing_request_tree(store: TelemetryStore, window: Window) -> Tree | None:
    """The trace of the slowest failing request in the window, else the slowest request."""
    roots = store.query(
        """
        SELECT r.trace_id, r.span_id,
               (SELECT count(*) FROM spans e
                WHERE e.trace_id = r.trace_id AND e.status = 'error') AS errors
        FROM spans r
        WHERE r.parent_span_id IS NULL AND r.start_ns >= ? AND r.start_ns < ?
        ORDER BY errors DESC, r.duration_ns DESC, r.trace_id LIMIT 1
        """,
        [window.start_ns, window.end_ns],
    ).to_pylist()
    if not roots:
        return None
    trace_id = roots[0]["trace_id"]
    spans = store.trace_spans(trace_id).to_pylist()
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    known = {span["span_id"] for span in spans}
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in known else None
        by_parent.setdefault(parent, []).append(span)
    failing = _on_error_paths(spans, by_parent)
    shown = "the error paths" if failing else "all calls"
    tree = Tree(f"[bold]request {trace_id}[/] ({len(spans)} spans; showing {shown})")
    budget = [_MAX_TREE_NODES]

    def attach(node: Tree, parent: str | None) -> None:
        children = by_parent.get(parent, [])
        hidden = 0
        for span in children:
            if failing and span["span_id"] not in failing:
                hidden += 1
                continue
            if budget[0] <= 0:
                node.add("…")
                return
            budget[0] -= 1
            status = "[red]error[/]" if span["status"] == "error" else span["status"]
            label = (
                f"{span['service']} [dim]{span['instance']}[/] {span['operation']} "
                f"{span['duration_ns'] / 1e6:.1f} ms {status}"
            )
            attach(node.add(label), span["span_id"])
        if hidden:
            node.add(f"[dim]+ {hidden} healthy call(s)[/]")

    attach(tree, None)
    return tree
