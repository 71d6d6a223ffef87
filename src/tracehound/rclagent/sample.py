"""Statistics over a sample of traces when the windows hold many requests.

The facts (`facts`) compare the incident window with the baseline window: latency and
self-time of operations, time on edges, which share of calls were slow, which lines
operations wrote, how many spans each instance ran. Read whole, their cost follows the
system's traffic. Above `max_traces` requests in either window they are computed over a
sample of traces instead, drawn by a hash of the trace id (`TelemetryStore.sample`):
deterministic, the same rate in both windows (so counts compared across windows stay
comparable), and whole traces (so a span's children and its log lines come with it). The
analysed requests are chosen from every request of the window first, and their traces
are always in the sample. Warning and error lines, the novelty of their templates and
the metric series are read whole: they are evidence, not traffic.
"""

from __future__ import annotations

from tracehound.rclagent.context import IncidentContext, rows
from tracehound.store import SAMPLE_BITS, TelemetryStore

#: Requests per window that the statistics read before they sample (``max_traces``).
MAX_TRACES = 1000


def sample_threshold(store: TelemetryStore, ctx: IncidentContext, max_traces: int) -> int | None:
    """How many of the 2**SAMPLE_BITS trace-key buckets to keep so that neither window
    holds much more than `max_traces` requests (root spans), or None to read every trace
    (`max_traces` <= 0, or no window holds more)."""
    if max_traces <= 0:
        return None
    w, b = ctx.window, ctx.baseline
    found = rows(
        store,
        """
        SELECT count(*) FILTER (WHERE start_ns >= ? AND start_ns < ?) AS nw,
               count(*) FILTER (WHERE start_ns >= ? AND start_ns < ?) AS nb
        FROM spans WHERE parent_span_id IS NULL
        """,
        [w.start_ns, w.end_ns, b.start_ns, b.end_ns],
    )[0]
    most = max(int(found["nw"]), int(found["nb"]))
    if most <= max_traces:
        return None
    return max(1, (max_traces << SAMPLE_BITS) // most)


def sample_rate(threshold: int | None) -> float:
    """The share of traces a threshold keeps (1.0: all)."""
    return 1.0 if threshold is None else threshold / (1 << SAMPLE_BITS)
