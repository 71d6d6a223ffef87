"""Shared pieces of the trace baselines (`microrank`, `tracerca`).

- Which windows to read: the incident window, and the normal window as the baseline when
  the incident has one *and* spans start inside it. Without it the baselines fall back to
  robust statistics of the incident window itself (each method says how).
- `windowed_spans_cte`: SQL for the spans of every trace that *starts* inside a window
  (whole traces, never cut at the window edge), each span with its self-time and its
  parent's service and instance. Orphans (parent id not in the data) get a null parent,
  as roots do; traces of any size stay in DuckDB.
- Turning scores into `Candidate` lists: best first, ties broken by name, and mapping a
  ranked list of finer nodes to services and instances by first occurrence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from tracehound.model import Candidate, Incident, Window
from tracehound.store import TelemetryStore

#: 1.4826 · MAD estimates the standard deviation of normal data (robust fallback).
MAD_TO_STD = 1.4826
NS_PER_MS = 1_000_000.0


def windowed_spans_cte(name: str = "ws") -> str:
    """CTE definitions (no `WITH`) ending in `<name>`: spans of traces starting in [?, ?).

    Columns: trace_id, span_id, parent_span_id, service, instance, operation, status,
    duration_ns, self_ns (duration minus the children's total, floored at 0),
    parent_service, parent_instance, parent_operation (null for roots and orphans).
    Takes two parameters, the window's start and end in ns. Helper tables are prefixed
    with `<name>_`, so two windows can be defined in one query; `<name>_sp` keeps every
    column of the store's spans, the join keys `sk` and `pk` (`joinkeys`) included.
    """
    return f"""
    {name}_tr AS (
      SELECT trace_id FROM spans GROUP BY trace_id
      HAVING min(start_ns) >= ? AND min(start_ns) < ?),
    {name}_sp AS (SELECT s.* FROM spans s JOIN {name}_tr USING (trace_id)),
    {name}_kids AS (
      SELECT pk, sum(duration_ns) AS child_ns FROM {name}_sp
      WHERE parent_span_id IS NOT NULL GROUP BY pk),
    {name} AS (
      SELECT c.trace_id, c.span_id, c.parent_span_id, c.service, c.instance, c.operation,
             c.status, c.duration_ns,
             greatest(c.duration_ns - coalesce(k.child_ns, 0), 0) AS self_ns,
             p.service AS parent_service, p.instance AS parent_instance,
             p.operation AS parent_operation
      FROM {name}_sp c
      LEFT JOIN {name}_kids k ON k.pk = c.sk
      LEFT JOIN {name}_sp p ON p.sk = c.pk AND c.parent_span_id IS NOT NULL)
    """


def trace_count(store: TelemetryStore, window: Window) -> int:
    """Number of traces whose first span starts inside `window`."""
    row = store.query(
        "SELECT count(*) AS n FROM (SELECT trace_id FROM spans GROUP BY trace_id "
        "HAVING min(start_ns) >= ? AND min(start_ns) < ?)",
        [window.start_ns, window.end_ns],
    ).to_pylist()[0]
    return int(row["n"])


def baseline_window(incident: Incident, store: TelemetryStore) -> Window | None:
    """The normal window when the incident has one with traces in it, else None."""
    normal = incident.normal_window
    if normal is None or trace_count(store, normal) == 0:
        return None
    return normal


@dataclass(frozen=True)
class Scored:
    """A name with its score and the reason for it, before it becomes a Candidate."""

    name: str
    score: float
    reason: str
    #: secondary ordering key among equal scores (larger first), before the name
    tiebreak: float = 0.0


def keep_best(table: dict[str, Scored], item: Scored) -> None:
    """Put `item` in `table` under its name unless an entry scoring at least as much is
    there (items without a name are dropped)."""
    if item.name and (item.name not in table or item.score > table[item.name].score):
        table[item.name] = item


def finite(value: float) -> float:
    """`value`, with NaN as 0 and infinities clipped to ±1e300 (scores must be finite)."""
    if math.isnan(value):
        return 0.0
    return max(-1e300, min(1e300, value))


#: Decimals a score keeps in rankings: sums of the same floats in another order differ in
#: the last bits, which must not reorder candidates (ties then fall to the name).
SCORE_DECIMALS = 12


def ranked_score(value: float) -> float:
    """`finite(value)` rounded to `SCORE_DECIMALS`: the score rankings sort and report."""
    return round(finite(value), SCORE_DECIMALS)


def ordered(items: Iterable[Scored]) -> list[Scored]:
    """Best first: score (rounded, `ranked_score`), then tiebreak (both descending), then
    name (ascending)."""
    return sorted(items, key=lambda s: (-ranked_score(s.score), -s.tiebreak, s.name))


def to_candidates(kind: Literal["service", "instance"], items: Sequence[Scored]) -> list[Candidate]:
    """Candidates in the given (already ordered) order with finite scores."""
    return [
        Candidate(kind=kind, name=item.name, score=ranked_score(item.score), reason=item.reason)
        for item in items
    ]


def first_occurrence(nodes: Sequence[tuple[str, Scored]]) -> list[Scored]:
    """Map ranked (coarser name, node score) pairs to the coarser level, first one wins."""
    seen: set[str] = set()
    out: list[Scored] = []
    for name, node in nodes:
        if name and name not in seen:
            seen.add(name)
            out.append(Scored(name=name, score=node.score, reason=node.reason))
    return out
