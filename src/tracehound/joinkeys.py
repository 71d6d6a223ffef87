"""Integer join keys the store computes once per row, so analyses join and group on one
64-bit number instead of several strings.

Spans get `sk` (their trace and span id) and `pk` (their trace and parent span id), so a
child joins its parent with ``c.pk = p.sk``; log lines get `sk` (the span they are linked
to), so lines join spans with ``l.sk = s.sk``; metric points get `sid`, their series
(service, instance, node, name). Spans and log lines also get `tk`, the key a sample of
traces is drawn by (`rclagent.sample.TraceSample`): their trace id's, or for a line without
one, a key of the line itself (its time, instance and message). Each key is DuckDB's
`hash` of the strings it stands for.
A key is never null: a missing id hashes as the empty string, which no span has, so a
root's `pk` and an unlinked line's `sk` match nothing; queries still filter on the id
columns where a null id has a meaning of its own. Two different id pairs share a key only
by a 64-bit hash collision (about one chance in 10^8 for a million spans), which would
read as one extra parent-child pair.
"""

from __future__ import annotations

#: Key of a span: its trace and span id.
SPAN_KEY_SQL = "hash(trace_id, span_id)"
#: Key of a span's parent: its trace and parent span id ('' for a root).
PARENT_KEY_SQL = "hash(trace_id, coalesce(parent_span_id, ''))"
#: Key of the span a log line is linked to ('' ids for an unlinked line).
LOG_SPAN_KEY_SQL = "hash(coalesce(trace_id, ''), coalesce(span_id, ''))"
#: Key of a span's trace (drawing a sample of traces).
TRACE_KEY_SQL = "hash(trace_id)"
#: The same for a log line: its trace's, or for a line without a trace id the line's own.
LOG_TRACE_KEY_SQL = (
    "CASE WHEN coalesce(trace_id, '') = '' "
    "THEN hash(ts_ns, coalesce(instance, ''), coalesce(message, '')) ELSE hash(trace_id) END"
)
#: Key of a metric point's series.
SERIES_KEY_SQL = "hash(coalesce(service, ''), coalesce(instance, ''), coalesce(node, ''), name)"

#: Derived columns per table: name -> (SQL computing it from the row, SQL type).
DERIVED_SPAN_COLUMNS: dict[str, tuple[str, str]] = {
    "sk": (SPAN_KEY_SQL, "UBIGINT"),
    "pk": (PARENT_KEY_SQL, "UBIGINT"),
    "tk": (TRACE_KEY_SQL, "UBIGINT"),
}
DERIVED_LOG_KEY_COLUMNS: dict[str, tuple[str, str]] = {
    "sk": (LOG_SPAN_KEY_SQL, "UBIGINT"),
    "tk": (LOG_TRACE_KEY_SQL, "UBIGINT"),
}
DERIVED_METRIC_COLUMNS: dict[str, tuple[str, str]] = {"sid": (SERIES_KEY_SQL, "UBIGINT")}
