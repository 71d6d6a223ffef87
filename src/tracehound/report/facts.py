"""Wording shared by every renderer: how the root cause, its confidence and the stats read.

Keeping it in one place makes the text, Markdown and HTML reports say the same thing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tracehound.investigation import Investigation, RootCause

#: Stats every engine reports, in display order, with their labels (ARCHITECTURE §6).
STAT_LABELS = {
    "requests_analysed": "requests analysed",
    "agents_run": "agents run",
    "wall_time_s": "wall time",
    "load_time_s": "load time",
}


def culprit(root: RootCause) -> str:
    """The blamed component: the instance when known, else the service."""
    return root.instance or root.service


def culprit_detail(root: RootCause) -> str:
    """What else is known about the culprit: its service, operation and span."""
    parts = []
    if root.instance and root.instance != root.service:
        parts.append(f"service {root.service}")
    if root.operation:
        parts.append(f"operation {root.operation}")
    if root.span_id:
        parts.append(f"span {root.span_id}")
    return ", ".join(parts)


def confidence_text(investigation: Investigation) -> str:
    """`0.82`, or a note that the method gives a ranking without a confidence.

    `Investigation.from_ranking` sets confidence 0 and cites no evidence; saying "0.00"
    there would read as "surely wrong".
    """
    root = investigation.root_cause
    if root is None:
        return "none"
    if root.confidence == 0.0 and not root.evidence and not investigation.evidence_graph.nodes:
        return "not estimated (ranking only)"
    return f"{root.confidence:.2f}"


def fault_type_text(investigation: Investigation) -> str:
    return investigation.fault_type or "not determined"


def modalities_text(investigation: Investigation) -> str:
    return ", ".join(investigation.modalities) or "not reported"


def stat_rows(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs: the standard stats first, then any others by name."""
    ordered = [k for k in STAT_LABELS if k in stats] + [k for k in stats if k not in STAT_LABELS]
    return [(STAT_LABELS.get(k, k.replace("_", " ")), _stat_value(k, stats[k])) for k in ordered]


def _stat_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if key.endswith("_s") and math.isfinite(value):
            return f"{value:.3f} s"
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def score_text(score: float) -> str:
    return f"{score:.3g}"
