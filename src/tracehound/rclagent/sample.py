"""Statistics over a sample of traces when the windows hold many requests.

The facts (`facts`) compare the incident window with the baseline window: latency and
self-time of operations, time on edges, which share of calls were slow, which lines
operations wrote, how many spans each instance ran. Read whole, their cost follows the
system's traffic. Above `max_traces` requests in either window they are computed over a
sample of traces instead (`TraceSample`), drawn by a hash of the trace id: deterministic,
the same rate in both windows (so counts compared across windows stay comparable), and
whole traces (so a span's children and its log lines come with it). The analysed
requests are chosen from every request of the window, and their traces are then added
to the sample. Warning and error lines, the novelty of their templates and the metric
series are read whole: they are evidence, not traffic.
"""

from __future__ import annotations

import pyarrow as pa

from tracehound.rclagent.context import IncidentContext, rows
from tracehound.store import TelemetryStore

#: Requests per window that the statistics read before they sample (``max_traces``).
MAX_TRACES = 1000
#: A trace falls in one of 2**SAMPLE_BITS buckets: the top bits of its key (`tk`).
SAMPLE_BITS = 16
_BUCKET = f"(tk >> {64 - SAMPLE_BITS})"
#: The keys (`joinkeys.TRACE_KEY_SQL`) of a list of trace ids (one parameter).
_KEYS = "(SELECT hash(unnest(?::VARCHAR[])))"


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


class TraceSample:
    """A sample of a store's traces, as a store of its own (`TelemetryStore.over_arrow`).

    It holds the spans of the traces whose key falls in the lowest `threshold` buckets
    and their log lines, the lines without a trace id whose own key (`joinkeys`) falls
    there, and every warning and error line; no metric points, and no span attributes
    (statistics do not read them). Lines keep the store's `rowid` (a column of the
    sample's view), so line ids mean the same in both. `include` adds whole traces.
    """

    def __init__(self, source: TelemetryStore, threshold: int) -> None:
        self.source = source
        self.threshold = threshold
        self.spans = self._spans(f"{_BUCKET} < ?", [threshold])
        self.logs = self._logs(f"lvl <> 'info' OR {_BUCKET} < ?", [threshold])
        self.store = TelemetryStore.over_arrow({"spans": self.spans, "logs": self.logs})

    def include(self, trace_ids: list[str]) -> None:
        """Add the spans and lines of `trace_ids` that the sample lacks."""
        outside = f"{_BUCKET} >= ? AND tk IN {_KEYS}"
        spans = self._spans(outside, [self.threshold, trace_ids])
        logs = self._logs(f"lvl = 'info' AND {outside}", [self.threshold, trace_ids])
        if spans.num_rows:
            self.spans = pa.concat_tables([self.spans, spans])
            self.store.show_arrow("spans", self.spans)
        if logs.num_rows:
            self.logs = pa.concat_tables([self.logs, logs])
            self.store.show_arrow("logs", self.logs)

    def close(self) -> None:
        self.store.close()

    def _spans(self, where: str, params: list[object]) -> pa.Table:
        return self.source.query(
            f"SELECT * REPLACE (NULL::VARCHAR AS attributes) FROM spans WHERE {where}", params
        )

    def _logs(self, where: str, params: list[object]) -> pa.Table:
        return self.source.query(f"SELECT rowid AS rowid, * FROM logs WHERE {where}", params)
