"""The Markdown report: the text report's content, for tickets, chat and postmortems.

Free text (summaries, notes, log lines) is escaped so that it cannot open a link, emphasis
or raw HTML; names and ids are written as code spans. Evidence ids are cited as
``\\[e12, e31\\]``, which renders as ``[e12, e31]``.
"""

from __future__ import annotations

import re

from tracehound.investigation import Investigation
from tracehound.report.evidence import cite, evidence_listing, source_text, statements
from tracehound.report.facts import (
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
from tracehound.report.text import TOP_ALTERNATIVES

_SPECIAL = re.compile(r"([\\`*_\[\]<>|&#])")


def escape(text: str) -> str:
    """Markdown-inert text on one line: punctuation Markdown acts on is backslash-escaped."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def code(text: str, *, cell: bool = False) -> str:
    """A code span that holds any text, backticks included (`cell`: inside a table row,
    where GFM needs a pipe escaped even in a code span)."""
    flat = " ".join(text.split())
    if cell:
        flat = flat.replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _ids(ids: list[str]) -> str:
    return f" {escape(cite(ids))}" if ids else ""


def render_markdown(investigation: Investigation) -> str:
    """The whole report as one Markdown document."""
    sections = [
        _header(investigation),
        _root_cause(investigation),
        _path(investigation),
        _alternatives(investigation),
        _statements("Supporting evidence", investigation.supporting, investigation),
        _statements("Contradicting evidence", investigation.contradicting, investigation),
        _run(investigation),
        _evidence(investigation),
    ]
    return "\n\n".join(sections) + "\n"


def _header(investigation: Investigation) -> str:
    incident = investigation.incident
    lines = [f"# Investigation of incident {code(incident.id)}", ""]
    if incident.system:
        lines.append(f"- **System:** {code(incident.system)}")
    window = incident.window
    lines.append(f"- **Window:** {window.start.isoformat()} → {window.end.isoformat()}")
    if incident.alert is not None and (incident.alert.service or incident.alert.message):
        service = code(incident.alert.service) if incident.alert.service else "?"
        lines.append(f"- **Alert:** {service}: {escape(incident.alert.message or '')}")
    lines.append(f"- **Method:** {code(investigation.method)}")
    return "\n".join(lines)


def _root_cause(investigation: Investigation) -> str:
    root = investigation.root_cause
    if root is None:
        return "## Root cause\n\n_No root cause: the method ranked no candidate._"
    detail = culprit_detail(root)
    name = f"**{code(culprit(root))}**" + (f" ({escape(detail)})" if detail else "")
    lines = [
        "## Root cause",
        "",
        f"- **Culprit:** {name}{_ids(root.evidence)}",
        f"- **Confidence:** {escape(confidence_text(investigation))}",
        f"- **Fault type:** {escape(fault_type_text(investigation))}",
    ]
    if root.summary:
        lines.append(f"- **Why:** {escape(root.summary)}")
    return "\n".join(lines)


def _path(investigation: Investigation) -> str:
    name, direction = path_title(investigation)
    title = f"## {name} ({direction})"
    if not investigation.path:
        return f"{title}\n\n_No propagation path: the method does not trace requests._"
    lines = [title, ""]
    for index, step in enumerate(investigation.path, start=1):
        where = code(step.instance)
        if not step.instance.startswith(step.service):
            where = f"{code(step.service)} / {where}"
        text = (step.note + source_note(step.source)).strip()
        note = f" — {escape(text)}" if text else ""
        lines.append(
            f"{index}. {where} {code(step.operation)} (span {code(step.span_id)})"
            f"{note}{_ids(step.evidence)}"
        )
    return "\n".join(lines)


def _alternatives(investigation: Investigation) -> str:
    title = "## Alternatives"
    alternatives = investigation.alternatives[:TOP_ALTERNATIVES]
    if not alternatives:
        return f"{title}\n\n_No alternatives ranked._"
    lines = [
        title,
        "",
        "| # | candidate | kind | score | why it ranks lower |",
        "|--:|---|---|--:|---|",
    ]
    for index, alt in enumerate(alternatives, start=2):
        lines.append(
            f"| {index} | {code(alt.name, cell=True)} | {escape(alt.kind)} "
            f"| {score_text(alt.score)} | {escape(alt.why_lower)}{_ids(alt.evidence)} |"
        )
    return "\n".join(lines)


def _statements(title: str, items: list[str], investigation: Investigation) -> str:
    lines = statements(items, investigation.evidence_graph)
    if not lines:
        return f"## {title}\n\n_None recorded._"
    return "\n".join(
        [f"## {title}", "", *(f"- {escape(line.text)}{_ids(line.ids)}" for line in lines)]
    )


def _run(investigation: Investigation) -> str:
    lines = ["## Run", "", "| | |", "|---|---|"]
    lines.append(f"| modalities | {escape(modalities_text(investigation))} |")
    lines.extend(
        f"| {escape(label)} | {escape(value)} |" for label, value in stat_rows(investigation.stats)
    )
    return "\n".join(lines)


def _evidence(investigation: Investigation) -> str:
    listing = evidence_listing(investigation)
    graph = investigation.evidence_graph
    if not listing.items and not listing.missing:
        return "## Evidence\n\n_No evidence recorded: the method gives a ranking only._"
    lines = ["## Evidence", "", "| id | kind | summary | source |", "|---|---|---|---|"]
    for item in listing.items:
        lines.append(
            f"| {code(item.id, cell=True)} | {escape(item.kind)} | {escape(item.summary)} "
            f"| {escape(source_text(item, graph))} |"
        )
    for missing in listing.missing:
        lines.append(f"| {code(missing, cell=True)} | | _cited, but not in the evidence graph_ | |")
    if listing.omitted:
        more = f"… and {listing.omitted} more item(s); the JSON and HTML reports list all."
        lines += ["", f"_{more}_"]
    return "\n".join(lines)
