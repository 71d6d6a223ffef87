"""The terminal report (rich): what an SRE on call reads first (ARCHITECTURE §6).

Sections, top to bottom: the incident, the root cause with its confidence and fault type,
the propagation path from the failing request's root span to the cause, the top five
alternatives with why each ranks lower, supporting and contradicting evidence, modalities
and stats, and the evidence list that maps each cited id to its summary and source. Every
claim ends with the ids it rests on, e.g. ``[e12, e31]``. It reads in 80 columns; all data
goes through `Text`, never through markup, so a log line cannot restyle the report.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from rich import box
from rich.console import Console, Group, RenderableType
from rich.rule import Rule
from rich.table import Column, Table
from rich.text import Text

from tracehound.investigation import Investigation, PathStep
from tracehound.report.evidence import cite, evidence_listing, source_text, statements
from tracehound.report.facts import (
    cause_index,
    confidence_text,
    culprit,
    culprit_detail,
    fault_type_text,
    modalities_text,
    path_title,
    score_text,
    source_note,
    stat_rows,
)

#: Alternatives shown; the issue asks for the top five.
TOP_ALTERNATIVES = 5
DEFAULT_WIDTH = 80


def print_text(investigation: Investigation, console: Console) -> None:
    """Print the report to a rich console (the terminal, or stdout when piped)."""
    for part in renderables(investigation):
        console.print(part, highlight=False)


def render_text(investigation: Investigation, width: int = DEFAULT_WIDTH) -> str:
    """The report as plain text, laid out for `width` columns."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False)
    print_text(investigation, console)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def renderables(investigation: Investigation) -> Iterator[RenderableType]:
    """The report's sections, in order."""
    yield _header(investigation)
    yield _heading("Root cause")
    yield _root_cause(investigation)
    title, direction = path_title(investigation)
    yield _heading(f"{title} ({direction})")
    yield _path(investigation.path, cause_index(investigation))
    yield _heading("Alternatives (why each ranks lower)")
    yield _alternatives(investigation)
    yield _heading("Supporting evidence")
    yield _statements(investigation.supporting, investigation)
    yield _heading("Contradicting evidence")
    yield _statements(investigation.contradicting, investigation)
    yield _heading("Run")
    yield _run(investigation)
    yield _heading("Evidence")
    yield _evidence(investigation)


def _heading(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def _header(investigation: Investigation) -> RenderableType:
    incident = investigation.incident
    grid = Table.grid(Column(style="dim", no_wrap=True), Column(overflow="fold"), padding=(0, 2))
    grid.add_row("incident", Text(incident.id))
    if incident.system:
        grid.add_row("system", Text(incident.system))
    window = incident.window
    grid.add_row("window", Text(f"{window.start.isoformat()} → {window.end.isoformat()}"))
    if incident.alert is not None and (incident.alert.service or incident.alert.message):
        alert = f"{incident.alert.service or '?'}: {incident.alert.message or ''}"
        grid.add_row("alert", Text(alert))
    grid.add_row("method", Text(investigation.method))
    return Group(Rule(Text(f"tracehound · {incident.id}"), style="cyan"), grid)


def _claim(text: str, ids: list[str]) -> Text:
    """A claim followed by the ids of its evidence, dimmed."""
    claim = Text(text)
    if ids:
        claim.append(f"  {cite(ids)}", style="cyan")
    return claim


def _none(text: str) -> Text:
    return Text(f"  {text}", style="dim italic")


def _root_cause(investigation: Investigation) -> RenderableType:
    root = investigation.root_cause
    if root is None:
        return _none("no root cause: the method ranked no candidate")
    grid = Table.grid(Column(style="dim", no_wrap=True), Column(overflow="fold"), padding=(0, 2))
    name = Text(culprit(root), style="bold red")
    detail = culprit_detail(root)
    if detail:
        name.append(f" ({detail})")
    if root.evidence:
        name.append(f"  {cite(root.evidence)}", style="cyan")
    grid.add_row("culprit", name)
    grid.add_row("confidence", Text(confidence_text(investigation), style="bold"))
    grid.add_row("fault type", Text(fault_type_text(investigation), style="bold"))
    if root.summary:
        grid.add_row("why", Text(root.summary))
    return _indent(grid)


def _indent(renderable: RenderableType) -> RenderableType:
    grid = Table.grid(Column(width=2), Column(ratio=1), expand=True)
    grid.add_row("", renderable)
    return grid


def _where(step: PathStep) -> str:
    if step.instance.startswith(step.service):
        return step.instance
    return f"{step.service} / {step.instance}"


def _path(path: list[PathStep], cause: int) -> RenderableType:
    if not path:
        return _none("no propagation path: the method does not trace requests")
    table = Table(
        Column("#", justify="right", no_wrap=True),
        Column("instance", overflow="fold", ratio=2),
        Column("operation (span)", overflow="fold", ratio=2),
        Column("what happened", overflow="fold", ratio=3),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        expand=True,
        padding=(0, 1),
    )
    last = len(path) - 1
    for index, step in enumerate(path):
        marker = "✖" if index == cause else ("→" if index < last else "")
        table.add_row(
            f"{index + 1}{marker}",
            Text(_where(step), style="bold red" if index == cause else ""),
            Text(f"{step.operation} ({step.span_id})"),
            _claim((step.note + source_note(step.source)).strip(), step.evidence),
        )
    return table


def _alternatives(investigation: Investigation) -> RenderableType:
    alternatives = investigation.alternatives[:TOP_ALTERNATIVES]
    if not alternatives:
        return _none("no alternatives ranked")
    table = Table(
        Column("#", justify="right", no_wrap=True),
        Column("candidate", overflow="fold", ratio=3),
        Column("kind", no_wrap=True),
        Column("score", justify="right", no_wrap=True),
        Column("why it ranks lower", overflow="fold", ratio=4),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        expand=True,
        padding=(0, 1),
    )
    for index, alt in enumerate(alternatives, start=2):
        table.add_row(
            str(index),
            Text(alt.name),
            Text(alt.kind),
            score_text(alt.score),
            _claim(alt.why_lower, alt.evidence),
        )
    return table


def _statements(items: list[str], investigation: Investigation) -> RenderableType:
    lines = statements(items, investigation.evidence_graph)
    if not lines:
        return _none("none recorded")
    grid = Table.grid(Column(no_wrap=True), Column(overflow="fold"), padding=(0, 1))
    for line in lines:
        grid.add_row(" •", _claim(line.text, line.ids))
    return grid


def _run(investigation: Investigation) -> RenderableType:
    grid = Table.grid(Column(style="dim", no_wrap=True), Column(overflow="fold"), padding=(0, 2))
    grid.add_row("modalities", Text(modalities_text(investigation)))
    for label, value in stat_rows(investigation.stats):
        grid.add_row(label, Text(value))
    return _indent(grid)


def _evidence(investigation: Investigation) -> RenderableType:
    listing = evidence_listing(investigation)
    graph = investigation.evidence_graph
    if not listing.items and not listing.missing:
        return _none("no evidence recorded: the method gives a ranking only")
    grid = Table.grid(Column(style="cyan", no_wrap=True), Column(overflow="fold"), padding=(0, 2))
    for item in listing.items:
        body = Text(item.summary)
        body.append(f"\n{item.kind} · {source_text(item, graph)}", style="dim")
        grid.add_row(item.id, body)
    for missing in listing.missing:
        grid.add_row(missing, Text("cited, but not in the evidence graph", style="yellow"))
    if listing.omitted:
        more = f"… and {listing.omitted} more item(s); --format json or html shows them all"
        grid.add_row("", Text(more, style="dim"))
    return _indent(grid)
