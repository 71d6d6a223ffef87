"""Report renderers: exact content of each format for a hand-built investigation."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from report_sample import sample_investigation
from tiny import tiny_incident

from tracehound.errors import BadInput
from tracehound.investigation import Alternative, Investigation
from tracehound.model import Candidate, Evidence, EvidenceGraph, Ranking
from tracehound.report import FORMATS, render, render_text
from tracehound.report.evidence import evidence_listing, source_text
from tracehound.report.html import graph_library
from tracehound.report.markdown import code, escape

SOURCES = {
    "e1": "tool span_timing · spans (trace_id=t2, span_id=c)",
    "e2": "tool instance_metrics · metrics (instance=db-1, name=cpu)",
    "e3": "tool instance_logs · logs (trace_id=t2, span_id=c)",
    "e4": "tool span_timing",
    "e5": "based on e1 (supports), e2 (supports), e3 (supports), e4 (context)",
    "e6": "tool instance_metrics · metrics (instance=front-1, name=cpu)",
}


def baseline_investigation() -> Investigation:
    ranking = Ranking(
        services=[
            Candidate(kind="service", name="db", score=3.0, reason="cpu shifted"),
            Candidate(kind="service", name="front", score=1.0, reason="latency"),
        ],
        instances=[Candidate(kind="instance", name="db-1", score=3.0, reason="cpu shifted")],
    )
    return Investigation.from_ranking(
        tiny_incident().incident,
        "baro",
        ranking,
        modalities=["metrics"],
        stats={"wall_time_s": 0.5},
    )


def graph_json(page: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="evidence-graph">(.*?)</script>', page, re.S
    )
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


# -- shared pieces -------------------------------------------------------------------


def test_source_text_names_tool_table_and_keys() -> None:
    investigation = sample_investigation()
    graph = investigation.evidence_graph
    texts = {node.id: source_text(node, graph) for node in graph.nodes}
    assert texts["e1"] == SOURCES["e1"]
    assert texts["e4"] == "tool span_timing"
    assert texts["e5"] == SOURCES["e5"]
    assert texts["e6"] == SOURCES["e6"]


def test_a_large_graph_lists_cited_items_first_and_counts_the_rest() -> None:
    nodes = [Evidence(id=f"x{i}", kind="log", summary=f"line {i}") for i in range(60)]
    investigation = sample_investigation().model_copy(
        update={"evidence_graph": EvidenceGraph(nodes=nodes), "supporting": ["x59", "x3"]}
    )
    listing = evidence_listing(investigation, limit=10)
    assert [item.id for item in listing.items] == ["x59", "x3"]
    assert listing.missing == ["e5", "e1", "e2", "e4", "e3", "e6"]
    assert listing.omitted == 58


# -- text --------------------------------------------------------------------------


def test_text_shows_every_section_with_its_evidence_ids() -> None:
    text = render_text(sample_investigation())
    for line in text.splitlines():
        assert len(line) <= 80, line
    assert "culprit     db-1 (service db, operation SELECT, span c)  [e5, e1, e2]" in text
    assert "confidence  0.82" in text
    assert "fault type  cpu" in text
    assert "why         db-1 runs hot and its SELECT is slow" in text
    flat = " ".join(text.split())
    assert "1→ front-1 GET / (a) slow, but its time is in its child [e4]" in flat
    assert "3✖ db-1 SELECT (c) self-time 63 ms over baseline [e1, e3]" in flat
    assert "2 front-1 instance 0.2 its latency is its child's; cpu flat [e4, e6]" in flat
    assert "3 cache service 0.05 no anomaly seen" in flat
    assert "• cpu of db-1 rose from 10.5 to 90.5 [e2]" in flat
    assert "• ERROR timeout, retrying <script>alert(1)</script> [e3]" in flat
    assert "• cpu of front-1 flat at 20 [e6]" in flat
    assert "• no network anomaly was checked" in flat
    assert "modalities traces, logs, metrics" in flat
    assert "requests analysed 2 agents run 6 wall time 0.421 s" in flat
    evidence = flat[flat.index("Evidence e1") :]
    for node in sample_investigation().evidence_graph.nodes:
        assert f"{node.id} {node.summary} {node.kind} · " in evidence
    for source in SOURCES.values():
        assert source in evidence


def test_text_shows_the_top_five_alternatives_only() -> None:
    alternatives = [
        Alternative(kind="service", name=f"svc-{i}", score=1.0 / i, why_lower="lower")
        for i in range(1, 9)
    ]
    investigation = sample_investigation().model_copy(update={"alternatives": alternatives})
    text = render_text(investigation)
    assert "svc-5" in text
    assert "svc-6" not in text


def test_text_of_a_baseline_degrades_gracefully() -> None:
    text = render_text(baseline_investigation())
    flat = " ".join(text.split())
    # A plain ranking does not pair instances with services, so the culprit is the service.
    assert "culprit db confidence" in flat
    assert "confidence not estimated (ranking only)" in flat
    assert "fault type not determined" in flat
    assert "no propagation path: the method does not trace requests" in flat
    assert "2 front service 1 score 1 below 3" in flat
    assert "Supporting evidence none recorded" in flat
    assert "modalities metrics wall time 0.500 s" in flat
    assert "no evidence recorded: the method gives a ranking only" in flat


def test_text_without_any_candidate() -> None:
    empty = Investigation.from_ranking(tiny_incident().incident, "random", Ranking())
    flat = " ".join(render_text(empty).split())
    assert "no root cause: the method ranked no candidate" in flat
    assert "no alternatives ranked" in flat
    assert "modalities not reported" in flat


def test_text_does_not_read_markup_in_data() -> None:
    investigation = sample_investigation()
    node = Evidence(id="e9", kind="log", summary="[bold]oops[/bold] [red]x")
    graph = EvidenceGraph(nodes=[*investigation.evidence_graph.nodes, node])
    text = render_text(investigation.model_copy(update={"evidence_graph": graph}))
    assert "[bold]oops[/bold] [red]x" in text


# -- markdown ----------------------------------------------------------------------


def test_markdown_headings_and_claims() -> None:
    md = render(sample_investigation(), "md")
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert headings == [
        "# Investigation of incident `tiny-0001`",
        "## Root cause",
        "## Propagation path (root span → cause)",
        "## Alternatives",
        "## Supporting evidence",
        "## Contradicting evidence",
        "## Run",
        "## Evidence",
    ]
    assert "- **Culprit:** **`db-1`** (service db, operation SELECT, span c) \\[e5, e1, e2\\]" in md
    assert "- **Confidence:** 0.82" in md
    assert "- **Fault type:** cpu" in md
    assert "3. `db-1` `SELECT` (span `c`) — self-time 63 ms over baseline \\[e1, e3\\]" in md
    assert (
        "| 2 | `front-1` | instance | 0.2 | its latency is its child's; cpu flat \\[e4, e6\\] |"
        in md
    )
    assert "- ERROR timeout, retrying \\<script\\>alert(1)\\</script\\> \\[e3\\]" in md
    assert "| requests analysed | 2 |" in md
    assert (
        "| `e1` | span | SELECT on db-1 took 70 ms, baseline 7 ms "
        "| tool span\\_timing · spans (trace\\_id=t2, span\\_id=c) |"
    ) in md
    assert "<script>" not in md


def test_markdown_escaping() -> None:
    assert escape("a|b *c* [d](e) <f>\nnext") == "a\\|b \\*c\\* \\[d\\](e) \\<f\\> next"
    assert code("a`b") == "``a`b``"
    assert code("`x") == "`` `x ``"
    assert code("a|b", cell=True) == "`a\\|b`"


def test_markdown_of_a_baseline() -> None:
    md = render(baseline_investigation(), "md")
    assert "- **Confidence:** not estimated (ranking only)" in md
    assert "_No propagation path: the method does not trace requests._" in md
    assert "_No evidence recorded: the method gives a ranking only._" in md
    assert "| 2 | `front` | service | 1 | score 1 below 3 |" in md


# -- json --------------------------------------------------------------------------


def test_json_is_one_object_with_the_documented_keys() -> None:
    text = render(sample_investigation(), "json")
    data = json.loads(text)
    assert set(data) == {
        "version",
        "method",
        "incident",
        "ranking",
        "root_cause",
        "fault_type",
        "path",
        "alternatives",
        "supporting",
        "contradicting",
        "evidence_graph",
        "modalities",
        "stats",
    }
    assert data["method"] == "rclagent"
    assert data["incident"]["id"] == "tiny-0001"
    assert data["incident"]["labels"]["service"] == "db"
    assert data["ranking"] == [
        {"kind": "service", "name": "db", "score": 0.9, "reason": "cpu and slow SELECT"},
        {"kind": "service", "name": "front", "score": 0.2, "reason": "caller of db"},
        {"kind": "instance", "name": "db-1", "score": 0.9, "reason": "cpu and slow SELECT"},
        {"kind": "instance", "name": "front-1", "score": 0.2, "reason": "caller"},
    ]
    assert data["root_cause"] == {
        "service": "db",
        "instance": "db-1",
        "span_id": "c",
        "operation": "SELECT",
        "confidence": 0.82,
        "summary": "db-1 runs hot and its SELECT is slow",
        "evidence": ["e5", "e1", "e2"],
    }
    assert data["fault_type"] == "cpu"
    assert [step["span_id"] for step in data["path"]] == ["a", "b", "c"]
    assert data["alternatives"][0]["why_lower"] == "its latency is its child's; cpu flat"
    assert data["supporting"] == ["e2", "e3"]
    assert data["contradicting"] == ["e6", "no network anomaly was checked"]
    assert [n["id"] for n in data["evidence_graph"]["nodes"]] == [f"e{i}" for i in range(1, 7)]
    assert data["evidence_graph"]["nodes"][0] == {
        "id": "e1",
        "kind": "span",
        "summary": "SELECT on db-1 took 70 ms, baseline 7 ms",
        "table": "spans",
        "keys": {"trace_id": "t2", "span_id": "c"},
        "tool": "span_timing",
        "value": 70.0,
    }
    assert data["evidence_graph"]["edges"][0] == {
        "source": "e1",
        "target": "e5",
        "relation": "supports",
    }
    assert data["modalities"] == ["traces", "logs", "metrics"]
    assert data["stats"] == {"requests_analysed": 2, "agents_run": 6, "wall_time_s": 0.4213}


def test_json_turns_non_finite_numbers_into_null() -> None:
    ranking = Ranking(services=[Candidate(kind="service", name="a", score=float("inf"))])
    investigation = Investigation.from_ranking(
        tiny_incident().incident, "x", ranking, stats={"ratio": float("nan")}
    )
    data = json.loads(render(investigation, "json"))
    assert data["ranking"][0]["score"] is None
    assert data["stats"] == {"ratio": None}


def test_json_of_a_baseline() -> None:
    data = json.loads(render(baseline_investigation(), "json"))
    assert data["root_cause"]["confidence"] == 0.0
    assert data["path"] == []
    assert data["evidence_graph"] == {"nodes": [], "edges": []}
    assert [c["name"] for c in data["ranking"]] == ["db", "front", "db-1"]


# -- html --------------------------------------------------------------------------


def test_html_is_self_contained() -> None:
    page = render(sample_investigation(), "html")
    library = graph_library()
    assert "The Cytoscape Consortium" in library
    assert library in page
    assert page.count("<script") == 3
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link\b", page)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_html_draws_the_evidence_graph_with_the_root_cause_highlighted() -> None:
    page = render(sample_investigation(), "html")
    data = graph_json(page)
    nodes = {n["id"]: n for n in data["nodes"]}
    assert list(nodes) == ["e1", "e2", "e3", "e4", "e5", "e6", "root-cause"]
    assert data["root"] == "root-cause"
    root = nodes["root-cause"]
    assert (root["label"], root["root"], root["color"]) == ("db-1", True, "#d62728")
    assert [nodes[i]["cited"] for i in ("e1", "e2", "e5", "e3")] == [True, True, True, False]
    assert nodes["e3"]["color"] == "#ff7f0e"  # log
    assert nodes["e2"]["color"] == "#2ca02c"  # metric
    assert nodes["e5"]["color"] == "#7b61ff"  # finding
    assert nodes["e4"]["color"] == "#1f77b4"  # tool call
    assert nodes["e1"]["color"] == "#17becf"  # span
    pairs = [(e["source"], e["target"]) for e in data["edges"]]
    assert ("e6", "gone") not in pairs  # an edge to a missing node is dropped
    assert pairs[-3:] == [("e5", "root-cause"), ("e1", "root-cause"), ("e2", "root-cause")]
    assert 'id="graph"' in page


def test_html_escapes_text_everywhere() -> None:
    page = render(sample_investigation(), "html")
    assert "<script>alert(1)" not in page
    assert "ERROR timeout, retrying &lt;script&gt;alert(1)&lt;/script&gt;" in page
    block = re.search(r'id="evidence-graph">(.*?)</script>', page, re.S)
    assert block is not None
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in block.group(1)
    assert graph_json(page)["nodes"][2]["summary"].endswith("<script>alert(1)</script>")


def test_html_shows_the_claims_with_linked_evidence_ids() -> None:
    page = render(sample_investigation(), "html")
    assert 'Root cause: <span class="culprit">db-1</span>' in page
    assert '[<a href="#ev-e5">e5</a>, <a href="#ev-e1">e1</a>, <a href="#ev-e2">e2</a>]' in page
    assert '<tr id="ev-e1"><td><code>e1</code></td><td>span</td>' in page
    assert "<td>tool span_timing · spans (trace_id=t2, span_id=c)</td>" in page
    assert "its latency is its child&#x27;s; cpu flat" in page
    assert "<dt>confidence</dt><dd>0.82</dd>" in page


def test_html_of_a_baseline() -> None:
    page = render(baseline_investigation(), "html")
    assert "No evidence graph: the method gives a ranking only." in page
    assert graph_json(page) == {"nodes": [], "edges": [], "root": None}
    assert "<dt>confidence</dt><dd>not estimated (ranking only)</dd>" in page


# -- all formats -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_a_plain_ranking(fmt: str) -> None:
    text = render(baseline_investigation(), fmt)
    assert "tiny-0001" in text
    assert "cpu shifted" in text
    assert "score 1 below 3" in text
    empty = Investigation.from_ranking(tiny_incident().incident, "random", Ranking())
    assert "tiny-0001" in render(empty, fmt)


def test_format_names() -> None:
    assert render(sample_investigation(), "markdown") == render(sample_investigation(), "md")
    with pytest.raises(BadInput, match="unknown report format 'pdf'"):
        render(sample_investigation(), "pdf")
