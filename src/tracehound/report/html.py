"""The HTML report: one static, self-contained page that works offline (ARCHITECTURE §6).

The page shows the root cause, the propagation path, the alternatives, supporting and
contradicting evidence, the run's stats, the evidence graph drawn by Cytoscape.js
(MIT licence, vendored in `report/vendor/` and inlined into the page), and the evidence
table. Every text goes through `html.escape`; the graph travels as JSON in a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped, so no
value can close the script element.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from importlib.resources import files
from urllib.parse import quote

from tracehound import __version__
from tracehound.errors import TracehoundError
from tracehound.investigation import Investigation
from tracehound.report.evidence import source_text, statements
from tracehound.report.facts import (
    cause_index,
    confidence_text,
    culprit,
    culprit_detail,
    fault_type_text,
    modalities_text,
    path_title,
    score_text,
    stat_rows,
)
from tracehound.report.graph import graph_elements, legend
from tracehound.report.text import TOP_ALTERNATIVES

GRAPH_LIBRARY = "cytoscape.min.js"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@lru_cache(maxsize=1)
def graph_library() -> str:
    """The Cytoscape.js source to inline, made safe to sit inside a script element."""
    resource = files("tracehound.report").joinpath("vendor", GRAPH_LIBRARY)
    try:
        source = resource.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise TracehoundError(
            f"the HTML report needs {GRAPH_LIBRARY}, which this installation of tracehound "
            "lacks (package data report/vendor/*); reinstall tracehound"
        ) from exc
    return source.replace("</script", "<\\/script")


def _json_for_script(value: object) -> str:
    text = json.dumps(value, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(investigation: Investigation) -> str:
    """The whole page."""
    known = {node.id for node in investigation.evidence_graph.nodes}
    body = "\n".join(
        [
            _header(investigation, known),
            _path(investigation, known),
            _alternatives(investigation, known),
            _statements("Supporting evidence", investigation.supporting, investigation, known),
            _statements(
                "Contradicting evidence", investigation.contradicting, investigation, known
            ),
            _graph_section(investigation),
            _evidence_table(investigation),
            _run(investigation),
        ]
    )
    title = f"tracehound · {investigation.incident.id}"
    return _PAGE.format(
        title=_e(title),
        css=_CSS,
        body=body,
        graph_json=_json_for_script(graph_elements(investigation)),
        library=graph_library(),
        script=_SCRIPT,
        version=_e(__version__),
    )


def _cite(ids: list[str], known: set[str]) -> str:
    if not ids:
        return ""
    links = [
        f'<a href="#ev-{_e(quote(i, safe=""))}">{_e(i)}</a>' if i in known else _e(i) for i in ids
    ]
    return f' <span class="ids">[{", ".join(links)}]</span>'


def _header(investigation: Investigation, known: set[str]) -> str:
    incident = investigation.incident
    root = investigation.root_cause
    facts = [
        ("incident", _e(incident.id)),
        ("system", _e(incident.system or "-")),
        ("window", _e(f"{incident.window.start.isoformat()} → {incident.window.end.isoformat()}")),
        ("method", _e(investigation.method)),
        ("fault type", _e(fault_type_text(investigation))),
        ("confidence", _e(confidence_text(investigation))),
    ]
    if root is None:
        headline = "<h1>No root cause: the method ranked no candidate</h1>"
        why = ""
    else:
        detail = culprit_detail(root)
        headline = (
            f'<h1>Root cause: <span class="culprit">{_e(culprit(root))}</span>'
            + (f" <small>({_e(detail)})</small>" if detail else "")
            + _cite(root.evidence, known)
            + "</h1>"
        )
        why = f'<p class="why">{_e(root.summary)}</p>' if root.summary else ""
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return f'<header>{headline}{why}<dl class="facts">{rows}</dl></header>'


def _none(text: str) -> str:
    return f'<p class="none">{_e(text)}</p>'


def _path(investigation: Investigation, known: set[str]) -> str:
    name, direction = path_title(investigation)
    head = f"<h2>{_e(name)} <small>({_e(direction)})</small></h2>"
    if not investigation.path:
        missing = _none("No propagation path: the method does not trace requests.")
        return f"<section>{head}{missing}</section>"
    items = []
    cause = cause_index(investigation)
    for index, step in enumerate(investigation.path):
        where = (
            step.instance
            if step.instance.startswith(step.service)
            else (f"{step.service} / {step.instance}")
        )
        css = ' class="cause"' if index == cause else ""
        items.append(
            f"<li{css}><b>{_e(where)}</b> <code>{_e(step.operation)}</code> "
            f'<span class="span">span {_e(step.span_id)}</span>'
            + (f" — {_e(step.note)}" if step.note else "")
            + (f' <span class="source">({_e(step.source)})</span>' if step.source else "")
            + _cite(step.evidence, known)
            + "</li>"
        )
    return f'<section>{head}<ol class="path">{"".join(items)}</ol></section>'


def _alternatives(investigation: Investigation, known: set[str]) -> str:
    head = "<h2>Alternatives</h2>"
    alternatives = investigation.alternatives[:TOP_ALTERNATIVES]
    if not alternatives:
        return f"<section>{head}{_none('No alternatives ranked.')}</section>"
    rows = "".join(
        f"<tr><td>{index}</td><td><b>{_e(alt.name)}</b></td><td>{_e(alt.kind)}</td>"
        f'<td class="num">{_e(score_text(alt.score))}</td>'
        f"<td>{_e(alt.why_lower)}{_cite(alt.evidence, known)}</td></tr>"
        for index, alt in enumerate(alternatives, start=2)
    )
    table = (
        "<table><thead><tr><th>#</th><th>candidate</th><th>kind</th><th>score</th>"
        f"<th>why it ranks lower</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return f"<section>{head}{table}</section>"


def _statements(title: str, items: list[str], investigation: Investigation, known: set[str]) -> str:
    lines = statements(items, investigation.evidence_graph)
    if not lines:
        return f"<section><h2>{_e(title)}</h2>{_none('None recorded.')}</section>"
    entries = "".join(f"<li>{_e(line.text)}{_cite(line.ids, known)}</li>" for line in lines)
    return f"<section><h2>{_e(title)}</h2><ul>{entries}</ul></section>"


def _graph_section(investigation: Investigation) -> str:
    head = "<h2>Evidence graph</h2>"
    if not investigation.evidence_graph.nodes:
        return (
            f"<section>{head}"
            f"{_none('No evidence graph: the method gives a ranking only.')}</section>"
        )
    keys = "".join(
        f'<span class="key"><i style="background:{_e(color)}"></i>{_e(kind)}</span>'
        for kind, color in legend(investigation)
    )
    return (
        f'<section>{head}<div class="legend">{keys}</div>'
        '<div id="graph"></div>'
        '<p id="detail" class="none">Click a node to see its evidence.</p></section>'
    )


def _evidence_table(investigation: Investigation) -> str:
    graph = investigation.evidence_graph
    head = "<h2>Evidence</h2>"
    if not graph.nodes:
        return f"<section>{head}{_none('No evidence recorded.')}</section>"
    rows = "".join(
        f'<tr id="ev-{_e(node.id)}"><td><code>{_e(node.id)}</code></td><td>{_e(node.kind)}</td>'
        f"<td>{_e(node.summary)}</td><td>{_e(source_text(node, graph))}</td></tr>"
        for node in graph.nodes
    )
    table = (
        "<table><thead><tr><th>id</th><th>kind</th><th>summary</th><th>source</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )
    return f"<section>{head}{table}</section>"


def _run(investigation: Investigation) -> str:
    rows = [("modalities", modalities_text(investigation)), *stat_rows(investigation.stats)]
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<section><h2>Run</h2><table class="run">{cells}</table></section>'


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;
background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:1.5rem}
header{background:#fff;border-left:6px solid #d62728;padding:1rem 1.25rem;margin-bottom:1rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .5rem}
h1 small,h2 small{font-weight:normal;color:#666}
.culprit{color:#d62728}.why{margin:.3rem 0 .6rem}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:0}
.facts dt{color:#666}.facts dd{margin:0}
section{background:#fff;padding:.2rem 1.25rem 1rem;margin-bottom:1rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.run th{width:12rem;color:#666;font-weight:normal}
.ids{color:#1f77b4;white-space:nowrap}.ids a{color:inherit}
.none{color:#777;font-style:italic}
.path li{margin:.2rem 0}.source{color:#7b61ff}.path li.cause b{color:#d62728}.span{color:#777}
#graph{height:520px;border:1px solid #ddd;background:#fff}
.legend{margin:.3rem 0 .6rem}.key{margin-right:1rem;white-space:nowrap}
.key i{display:inline-block;width:.8rem;height:.8rem;border-radius:50%;margin-right:.3rem;
vertical-align:-1px}
tr:target{background:#fff3c4}
footer{color:#888;font-size:.85rem;text-align:center;padding:1rem}
"""

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("evidence-graph").textContent);
  var container = document.getElementById("graph");
  if (!container || !data.nodes.length || typeof cytoscape !== "function") { return; }
  var elements = data.nodes.map(function (n) { return {group: "nodes", data: n}; })
    .concat(data.edges.map(function (e) { return {group: "edges", data: e}; }));
  var cy = cytoscape({
    container: container,
    elements: elements,
    wheelSensitivity: 0.3,
    style: [
      {selector: "node", style: {"background-color": "data(color)", "label": "data(label)",
        "font-size": 10, "text-valign": "bottom", "text-margin-y": 3, "width": 18,
        "height": 18}},
      {selector: "node[?cited]", style: {"border-width": 3, "border-color": "#d62728"}},
      {selector: "node[?root]", style: {"shape": "star", "width": 36, "height": 36,
        "font-size": 13, "font-weight": "bold", "color": "#d62728"}},
      {selector: "edge", style: {"width": 1.5, "line-color": "#bbb", "curve-style": "bezier",
        "target-arrow-shape": "triangle", "target-arrow-color": "#bbb",
        "label": "data(relation)", "font-size": 8, "color": "#888"}},
      {selector: "node:selected", style: {"border-width": 4, "border-color": "#222"}}
    ],
    layout: {name: "breadthfirst", directed: false, spacingFactor: 1.1, animate: false,
      roots: data.root ? "#" + data.root : undefined}
  });
  var detail = document.getElementById("detail");
  cy.on("tap", "node", function (evt) {
    var d = evt.target.data();
    detail.className = "";
    detail.textContent = d.id + " (" + d.kind + "): " + (d.summary || "") +
      (d.source ? " \\u2014 " + d.source : "");
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tracehound {version}">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main>
{body}
</main>
<footer>tracehound {version} · evidence graph drawn with Cytoscape.js (MIT licence)</footer>
<script type="application/json" id="evidence-graph">{graph_json}</script>
<script>{library}</script>
<script>{script}</script>
</body>
</html>
"""
