"""The JSON report: one object, for scripts and dashboards (ARCHITECTURE §6, §8).

Keys: `version`, `method`, `incident`, `ranking` (services, then instances, then spans,
each `{kind, name, score, reason}`), `root_cause`, `fault_type`, `path`, `alternatives`,
`supporting`, `contradicting`, `evidence_graph` (`nodes`, `edges`), `modalities`, `stats`.
Non-finite numbers become null so that the output is strict JSON. When a model took part
in the investigation (`--reasoner llm` or `hybrid`), path steps and the evidence graph's
finding and report nodes carry `source` ("llm", "rule" or "rule (fallback: <reason>)"),
and `stats.llm` holds the LLM accounting; otherwise `source` is left out.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tracehound import __version__
from tracehound.investigation import Investigation


def report_object(investigation: Investigation) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    ranking = investigation.ranking
    candidates = [*ranking.services, *ranking.instances, *ranking.spans]
    root = investigation.root_cause
    data: dict[str, Any] = {
        "version": __version__,
        "method": investigation.method,
        "incident": investigation.incident.model_dump(mode="json"),
        "ranking": [c.model_dump(mode="json") for c in candidates],
        "root_cause": root.model_dump(mode="json") if root is not None else None,
        "fault_type": investigation.fault_type,
        "path": [step.model_dump(mode="json", exclude_none=True) for step in investigation.path],
        "alternatives": [alt.model_dump(mode="json") for alt in investigation.alternatives],
        "supporting": list(investigation.supporting),
        "contradicting": list(investigation.contradicting),
        "evidence_graph": _graph(investigation),
        "modalities": list(investigation.modalities),
        "stats": dict(investigation.stats),
    }
    finite: dict[str, Any] = _finite(data)
    return finite


def _graph(investigation: Investigation) -> dict[str, Any]:
    """The evidence graph; a node's `source` only where one is recorded."""
    graph: dict[str, Any] = investigation.evidence_graph.model_dump(mode="json")
    for node in graph["nodes"]:
        if node.get("source") is None:
            node.pop("source", None)
    return graph


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render_json(investigation: Investigation, *, indent: int | None = 2) -> str:
    """The report as one JSON object (with a trailing newline)."""
    text = json.dumps(report_object(investigation), indent=indent, default=str, allow_nan=False)
    return text + "\n"
