"""Wording shared by every renderer: how the root cause, its confidence and the stats read.

Keeping it in one place makes the text, Markdown and HTML reports say the same thing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tracehound.investigation import Investigation, RootCause
from tracehound.rclagent.steps.run import is_agent_run as is_run

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


def is_agent_run(investigation: Investigation) -> bool:
    """The investigated incident is a run of agents (`rclagent.steps.run.is_agent_run`)."""
    return is_run(investigation.incident)


def path_title(investigation: Investigation) -> tuple[str, str]:
    """The path section's title and its direction: an agent run's chain of steps goes from
    the blamed step to the end of the run; a request's path from its root span to the
    cause."""
    if is_agent_run(investigation):
        return "Chain of steps", "mistake → failure"
    return "Propagation path", "root span → cause"


def cause_index(investigation: Investigation) -> int:
    """Where the blamed item is on the path: first on an agent run's chain, else last."""
    return 0 if is_agent_run(investigation) else len(investigation.path) - 1


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
    """(label, value) pairs: the standard stats first, then any others by name; the LLM
    accounting (`stats.llm`) as the summary lines of `llm_rows`, last."""
    ordered = [k for k in STAT_LABELS if k in stats] + [
        k for k in stats if k not in STAT_LABELS and k != "llm"
    ]
    rows = [(STAT_LABELS.get(k, k.replace("_", " ")), _stat_value(k, stats[k])) for k in ordered]
    llm = stats.get("llm")
    if isinstance(llm, dict):
        rows.extend(llm_rows(llm))
    return rows


#: Ambiguous spans a report lists by name at most (the JSON report has them all).
LISTED_SPANS = 10


def llm_rows(llm: dict[str, Any]) -> list[tuple[str, str]]:
    """The LLM accounting in a line, e.g. ``37 calls, 41,200 prompt + 3,100 completion
    tokens, 52.1 s, 30 agents answered by the model, 4 fallbacks (smollm2)``; the hybrid
    reasoner's ambiguous spans on a second line."""
    parts = [
        f"{_count(llm.get('calls'))} calls",
        f"{_count(llm.get('prompt_tokens'))} prompt + "
        f"{_count(llm.get('completion_tokens'))} completion tokens",
        f"{float(llm.get('wall_time_s') or 0.0):.1f} s",
    ]
    cost = llm.get("cost_usd")
    if isinstance(cost, int | float) and cost > 0:
        parts.append(f"${cost:.4f}")
    if "agents_llm" in llm:
        parts.append(f"{_count(llm.get('agents_llm'))} agents answered by the model")
    fallbacks = llm.get("agents_fallback")
    parts.append(f"{_count(fallbacks)} fallback{'' if fallbacks == 1 else 's'}")
    line = ", ".join(parts)
    if llm.get("budget_exhausted"):
        line += ", budget exhausted"
    model = llm.get("model")
    if model:
        line += f" ({model})"
    reasoner = llm.get("reasoner")
    rows = [(f"LLM ({reasoner})" if reasoner else "LLM", line)]
    spans = llm.get("ambiguous_spans")
    if isinstance(spans, list):
        listed = ", ".join(str(s) for s in spans[:LISTED_SPANS]) or "none"
        more = len(spans) - LISTED_SPANS
        rows.append(
            (
                "ambiguous spans",
                f"{len(spans)} sent to the model: {listed}"
                + (f", … {more} more" if more > 0 else ""),
            )
        )
    return rows


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "0"


#: What rclagent's `stats.scope` values mean, as reports print them.
SCOPE_TEXT = {
    "incident": "incident (every component of the system)",
    "graph": "graph (the analysed requests' services, their callees and instances)",
}


def _stat_value(key: str, value: Any) -> str:
    if key == "scope" and value in SCOPE_TEXT:
        return SCOPE_TEXT[value]
    if key == "traces_read" and isinstance(value, int | float):
        # rclagent's facts read a sample of traces above `max_traces` requests a window
        return "all" if value >= 1.0 else f"{value:.1%} (a sample of traces)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if key.endswith("_s") and math.isfinite(value):
            return f"{value:.3f} s"
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def source_note(source: str | None) -> str:
    """`` (llm)`` after a finding's text when a model took part, else nothing."""
    return f" ({source})" if source else ""


def score_text(score: float) -> str:
    return f"{score:.3g}"
