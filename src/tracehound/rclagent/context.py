"""Everything the agents need about one incident, computed once in SQL before they run.

Agents run concurrently and must not share a DuckDB connection, so the engine queries the
store up front (a handful of SQL statements) and hands the agents in-memory slices:
operation and edge baselines, the log lines linked to the selected requests with their
templates and novelty, which log templates each operation normally writes, instance
activity, and metric shifts. Queries touch the incident and baseline windows, and
per-span detail only for the selected traces, so cost follows the failing requests.

Baselines come from the normal window when it holds spans; otherwise from robust
statistics (median, MAD) of the incident window itself (`IncidentContext.baseline`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tracehound.methods.trace_common import baseline_window
from tracehound.model import Incident, Window
from tracehound.store import TelemetryStore

NS_PER_MS = 1_000_000.0

#: Weight of a novel warning line relative to a novel error line (selection scores and
#: incident-wide evidence).
WARN_SHARE = 0.3
#: Log lines that carry no trace id are matched to spans by instance and time: a line
#: counts for a span of its instance when it was written from this long before the span
#: started to this long after it ended, or within the lines' timestamp resolution when
#: that is coarser (whole seconds, whole milliseconds). On the Nezha development day,
#: 99.9 % of the warning and error lines linked by trace id fall within 1 ms of their
#: span (timestamps in ms).
NEAR_LOG_MS = 10.0
#: Such a line counts this share of a linked one: concurrent spans of the instance could
#: have written it.
UNLINKED_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class OpBaseline:
    """Latency and self-time of one (service, operation) in the baseline window, in ms."""

    n: int
    median_ms: float
    mad_ms: float
    self_median_ms: float
    self_mad_ms: float


@dataclass(frozen=True, slots=True)
class EdgeBaseline:
    """Client-minus-server time of calls from one operation to another, in ms."""

    n: int
    median_ms: float
    mad_ms: float
    #: calls beyond the robust bound `tools.excess_ms` uses (the pair's background rate
    #: of slow calls)
    slow: int = 0


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line linked to a selected request, with its template and novelty.

    `novelty` (0..1) says how new its (service, template) is: 1 when the baseline window
    never showed it, less when it was already that frequent before.
    """

    ts_ns: int
    service: str
    instance: str
    level: str
    template: str
    message: str
    trace_id: str
    span_id: str
    novelty: float
    #: False for a line without a trace id, matched to the span by instance and time
    #: (`NEAR_LOG_MS`); it then weighs `UNLINKED_SHARE` of a linked line
    linked: bool = True

    @property
    def weight(self) -> float:
        """Its novelty, discounted when it is matched by time rather than trace id."""
        return self.novelty * (1.0 if self.linked else UNLINKED_SHARE)


@dataclass(frozen=True, slots=True)
class MetricShift:
    """One metric series' shift against its baseline, in natural units and robust units."""

    service: str
    instance: str
    node: str
    name: str
    normal: float
    #: the incident window's peak
    value: float
    score: float
    #: the incident window's sustained level (its median, or its last quarter's)
    level: float = math.nan
    #: the baseline had no spread and no level (a series flat at zero): `score` is then
    #: the rise over a floor of 1e-9, capped, and says only that it rose
    flat: bool = False


@dataclass(frozen=True, slots=True)
class InstanceEvidence:
    """Incident-wide evidence about one instance, each strength in [0, 1]."""

    errors: float
    silence: float
    #: how far its span count fell below what its service's traffic predicts
    vanished: float
    resource: float
    resource_kind: str | None
    note: str
    #: novel error lines of other services that name it (or its service)
    named: float = 0.0
    #: share (0..1) of its own novel error weight in lines that complain, without a crash
    #: of their own, about a component its spans called in the window: failures it
    #: passed on from a callee it reached
    passes_on: float = 0.0


@dataclass
class IncidentContext:
    """Precomputed, read-only facts about one incident (see module docstring)."""

    incident: Incident
    window: Window
    baseline: Window
    has_normal: bool
    use_logs: bool
    use_metrics: bool
    op_base: dict[tuple[str, str], OpBaseline] = field(default_factory=dict)
    edge_base: dict[tuple[str, str, str, str], EdgeBaseline] = field(default_factory=dict)
    #: log lines of the selected traces, by (trace_id, span_id)
    span_logs: dict[tuple[str, str], list[LogLine]] = field(default_factory=dict)
    #: templates each (instance, operation) wrote in most of its baseline spans and now
    #: writes less often, with the drop in per-span share
    usual_templates: dict[tuple[str, str], list[tuple[str, float]]] = field(default_factory=dict)
    #: incident-wide silenced lines (instance, operation, template, strength), computed
    #: once by `wide_silence` for request selection and incident-wide evidence
    wide_silence: list[tuple[str, str, str, float]] | None = None
    #: the columns (service, tpl, novelty) of `novelty_cte`'s table, computed once by
    #: `novelty_params`
    novelty: list[list[Any]] | None = None
    #: margin (ns) matching lines without a trace id to spans; None: every line has one
    unlinked_margin: int | None = None
    #: the same for info lines without a trace id (`_instance_silence`)
    unlinked_info_margin: int | None = None
    unlinked_checked: bool = False
    #: spans each instance started in the incident and baseline windows
    activity: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: distinct traces that reached each instance in the incident and baseline windows
    activity_traces: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: per instance, the share of its outgoing and of its incoming calls in the incident
    #: window whose client-minus-server time exceeds the baseline (see `facts._edge_sides`)
    edge_sides: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: per operation pair (as `edge_base`): calls in the incident window beyond the
    #: bound, and calls
    edge_pairs: dict[tuple[str, str, str, str], tuple[int, int]] = field(default_factory=dict)

    instance_metrics: dict[str, list[MetricShift]] = field(default_factory=dict)
    node_metrics: dict[str, list[MetricShift]] = field(default_factory=dict)
    #: shifts of series that name a service but neither an instance nor a node
    service_metrics: dict[str, list[MetricShift]] = field(default_factory=dict)
    instance_node: dict[str, str] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    instance_service: dict[str, str] = field(default_factory=dict)
    #: incident-wide evidence per instance (the global evidence the synthesis weighs)
    instance_evidence: dict[str, InstanceEvidence] = field(default_factory=dict)
    #: ``scope="graph"``, or ``"auto"`` above ``max_services`` (`method`): facts are
    #: gathered for the components of the analysed requests' graphs only, and requests
    #: are chosen without the whole system's silences, so the cost does not follow the
    #: number of services
    graph_scope: bool = False
    #: with `graph_scope`, once the requests are chosen: the instances examined (every
    #: instance of a service with a span in an analysed request); None: every instance
    scope: tuple[str, ...] | None = None
    #: spans all instances started in the incident and baseline windows, when `activity`
    #: holds only the scope's instances
    activity_total: tuple[int, int] | None = None
    #: the facts about spans and lines are computed over a sample of traces
    #: (`rclagent.sample`): a line gone completely from an operation's spans is then
    #: held to the incident-wide scans' multiple-testing bound like a partial drop
    #: (`silence_cte`), as the sample's few spans per operation make a complete drop
    #: far likelier by chance
    sampled: bool = False

    _callees: dict[tuple[str, str], tuple[str, ...]] | None = None

    def usual_callees(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(service, operation) → the services its calls reach in the baseline (from
        `edge_base`), built once."""
        if self._callees is None:
            found: dict[tuple[str, str], set[str]] = {}
            for ps, po, cs, _ in self.edge_base:
                found.setdefault((ps, po), set()).add(cs)
            self._callees = {key: tuple(sorted(names)) for key, names in found.items()}
        return self._callees

    def edge_side(self, instance: str) -> tuple[float, float]:
        """`edge_sides` of the instance; for one with no call in the window, the prior's
        even (0.5, 0.5): nothing says either way."""
        return self.edge_sides.get(instance, (0.5, 0.5))

    @property
    def base_seconds(self) -> float:
        return max(self.baseline.seconds, 1e-9)

    @property
    def window_seconds(self) -> float:
        return max(self.window.seconds, 1e-9)


def choose_baseline(incident: Incident, store: TelemetryStore) -> tuple[Window, bool]:
    """The normal window when it holds spans (True), else the incident window (False)."""
    normal = baseline_window(incident, store)
    if normal is not None:
        return normal, True
    if incident.normal_window is not None and not store.counts()["spans"]:
        return incident.normal_window, True
    return incident.window, False


def rows(store: TelemetryStore, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """A query's rows as dicts (only for small, already aggregated results)."""
    result: list[dict[str, Any]] = store.query(sql, params).to_pylist()
    return result


#: The novelty table of `novelty_cte`; parameters: see `novelty_params`.
_NOVELTY_SQL = """
WITH l AS (SELECT service, tpl, ts_ns FROM logs WHERE lvl <> 'info'),
work AS (
  SELECT service,
         count(*) FILTER (WHERE start_ns >= ? AND start_ns < ?) AS si,
         count(*) FILTER (WHERE start_ns >= ? AND start_ns < ?) AS sb
  FROM spans WHERE service IN (SELECT service FROM l) GROUP BY service),
c AS (
  SELECT l.service, l.tpl,
         count(*) FILTER (WHERE l.ts_ns >= ? AND l.ts_ns < ?) AS ci,
         count(*) FILTER (WHERE l.ts_ns >= ? AND l.ts_ns < ?)
           * CASE WHEN any_value(w.sb) > 0 THEN any_value(w.si) / any_value(w.sb)
                  ELSE ? END AS expected
  FROM l LEFT JOIN work w USING (service) GROUP BY l.service, l.tpl)
SELECT service, tpl,
       CASE WHEN ? = 0 THEN 1.0
            ELSE greatest(0.0, 1.0 - (expected + 2 * sqrt(expected) + 1) / greatest(ci, 1))
       END AS novelty
FROM c ORDER BY service, tpl
"""


def novelty_cte(name: str = "nov") -> str:
    """CTE `<name>`: per (service, template) of warn/error logs, how new it is (0..1).

    The baseline count is scaled by how much the service worked in each window (its
    spans, else the windows' lengths), and given a Poisson margin (``+ 2 sqrt + 1``), so
    a warning that merely follows traffic is not news: novelty is
    ``max(0, 1 - (expected + 2 sqrt(expected) + 1) / observed)``, 1 - 1/observed for a
    template the baseline never showed, and 1 without a separate normal window.
    Columns: service, tpl, novelty. The table is computed once per incident
    (`novelty_params` caches it on the context) and handed to each query that needs it
    as parameters, so the logs and spans are scanned for it once.
    """
    return (
        f"{name} AS (SELECT unnest(?::VARCHAR[]) AS service, unnest(?::VARCHAR[]) AS tpl, "
        "unnest(?::DOUBLE[]) AS novelty)"
    )


def silence_cte(name: str = "sil", scope: str | None = None) -> str:
    """CTE `<name>`: info templates an operation writes less often now than in the baseline.

    Per (instance, operation, template): the share of baseline spans of the operation that
    wrote it (`base_share`, at least `SILENCE_MIN_SHARE`, over at least 10 spans), the
    share of incident-window spans that did (`inc_share`), `drop` = the difference,
    `rel` = drop / base_share, `z` = the two-proportion z statistic of the drop, and
    `strength` = rel, scaled down while z < `SILENCE_Z_FULL` and for lines written early
    in their span (`SILENCE_LATE`). Kept: rel >= `SILENCE_REL`
    and z >= the caller's bound (`SILENCE_Z_SPAN` for a line gone completely); a line
    that thinned with the request mix is not silence, and neither is a vanished line
    that too few spans could show. Shares are per span, so they are scaled by how often
    the operation ran. Also defines
    `<name>_bl`: (sk, tpl) of info lines in both windows (`joinkeys`), and `<name>_sp`:
    spans of both windows with `win` 'b' or 'i'. Parameters: see `silence_params`.
    With `scope`, the name of a CTE of (instance, operation) pairs defined before this
    one, only those operations are examined, so the cost follows them, not the store.
    """
    within = f"AND (instance, operation) IN (SELECT instance, operation FROM {scope})"
    return f"""
    {name}_sp AS (
      SELECT * FROM (
        SELECT sk, instance, operation, start_ns, duration_ns,
               CASE WHEN start_ns >= ? AND start_ns < ? THEN 'i'
                    WHEN start_ns >= ? AND start_ns < ? THEN 'b' END AS win
        FROM spans) WHERE win IS NOT NULL {within if scope else ""}),
    {name}_opn AS (SELECT instance, operation, win, count(*) AS n FROM {name}_sp GROUP BY ALL),
    {name}_bl AS (
      SELECT sk, tpl, min(ts_ns) AS ts_ns FROM logs
      WHERE span_id IS NOT NULL AND lvl = 'info' AND sk IN (SELECT sk FROM {name}_sp)
      GROUP BY ALL),
    {name}_pres AS (
      SELECT s.instance, s.operation, s.win, bl.tpl, count(*) AS k,
             median(greatest(0, bl.ts_ns - s.start_ns) / greatest(s.duration_ns, 1)) AS pos
      FROM {name}_sp s JOIN {name}_bl bl USING (sk) GROUP BY ALL),
    {name}_d AS (
      SELECT p.instance, p.operation, p.tpl, p.k / nb.n AS base_share,
             coalesce(q.k, 0) / ni.n AS inc_share,
             p.k / nb.n - coalesce(q.k, 0) / ni.n AS drop, ni.n AS n_inc,
             (p.k + coalesce(q.k, 0)) / (nb.n + ni.n) AS pooled, nb.n AS n_base,
             least(1.0, p.pos / ?) AS late
      FROM {name}_pres p
      JOIN {name}_opn nb ON nb.instance = p.instance AND nb.operation = p.operation
                         AND nb.win = 'b'
      JOIN {name}_opn ni ON ni.instance = p.instance AND ni.operation = p.operation
                         AND ni.win = 'i'
      LEFT JOIN {name}_pres q ON q.instance = p.instance AND q.operation = p.operation
                              AND q.tpl = p.tpl AND q.win = 'i'
      WHERE p.win = 'b' AND nb.n >= 10 AND ni.n >= 5 AND p.k / nb.n >= ?),
    {name}_z AS (
      SELECT *, drop / base_share AS rel,
             drop / sqrt(greatest(pooled * (1 - pooled), 1e-9) * (1.0 / n_base + 1.0 / n_inc))
               AS z,
             count(*) OVER () AS tests
      FROM {name}_d),
    {name} AS (
      SELECT *, rel * least(1.0, z / ?) * late AS strength FROM {name}_z
      WHERE drop > 0 AND rel >= ? AND z >= CASE WHEN inc_share = 0 THEN ? ELSE ? END
        AND ((inc_share = 0 AND ? = 0) OR ? = 0
             OR z * z / 2 + ln(z * 2.5066282746) >= ln(tests / ?)))
    """


#: Silence: least baseline share of an operation's spans that wrote a template, least
#: relative fall of that share (the line must have mostly vanished, not merely thinned
#: with the request mix), and the z at which the evidence counts in full.
SILENCE_MIN_SHARE = 0.25
#: Where in its span a line is usually written (0: at the start, 1: at the end) bounds
#: what its absence can say: only work done before the line can have been cut short. A
#: line written at least this far into its span counts in full, earlier ones in
#: proportion; the first line a handler writes says almost nothing when it goes missing.
SILENCE_LATE = 0.25
SILENCE_REL = 0.6
SILENCE_Z_FULL = 3.0
#: Least two-proportion z statistic of the fall: for the few operations of the selected
#: requests (one-sided p ~ 0.02), and for incident-wide scans, which test every
#: operation and template of every instance and so need a multiple-testing margin
#: (p ~ 0.001, a Bonferroni bound for about 50 tests at 0.05). A line that vanished
#: completely needs only `SILENCE_Z_SPAN` everywhere: a code path cut short silences
#: its lines in every request, while chance and a changed request mix merely thin them
#: (over a sample of traces, `IncidentContext.sampled`, incident-wide scans hold it to
#: their bound too: a sample's few spans per operation can lose a line by chance).
SILENCE_Z_SPAN = 2.0
SILENCE_Z_WIDE = 3.1
#: Family-wise error of the incident-wide scan: a partial drop must also clear the
#: Bonferroni bound for the rows the scan actually tests (one-sided p <= alpha / rows,
#: through the normal tail bound exp(-z^2/2) / (z sqrt(2 pi))), which is `SILENCE_Z_WIDE`
#: at about 50 rows and rises with the system (z ~ 4.0 at 2,400 rows).
SILENCE_ALPHA = 0.05


def silence_params(ctx: IncidentContext, z_min: float, *, per_test: bool = False) -> list[Any]:
    """Parameters of `silence_cte`, in order, keeping drops with z >= `z_min`."""
    w, b = ctx.window, ctx.baseline
    return [
        w.start_ns,
        w.end_ns,
        b.start_ns,
        b.end_ns,
        SILENCE_LATE,
        SILENCE_MIN_SHARE,
        SILENCE_Z_FULL,
        SILENCE_REL,
        SILENCE_Z_SPAN,
        z_min,
        1 if ctx.sampled else 0,
        1 if per_test else 0,
        SILENCE_ALPHA,
    ]


_UNLINKED_SQL = """
SELECT count(*) AS n, count(*) FILTER (WHERE lvl = 'info') AS n_info,
       count(*) FILTER (WHERE ts_ns % 1000000000 = 0) AS whole_s,
       count(*) FILTER (WHERE ts_ns % 1000000 = 0) AS whole_ms
FROM logs WHERE trace_id IS NULL OR trace_id = ''
"""


def unlinked_margin(
    store: TelemetryStore, ctx: IncidentContext, *, info: bool = False
) -> int | None:
    """The margin (ns) within which lines without a trace id count for a span of their
    instance (`NEAR_LOG_MS`, or the lines' timestamp resolution when coarser), or None
    when there are no such lines: warning and error lines, or with `info` info lines.
    Computed once per incident."""
    if not ctx.unlinked_checked:
        ctx.unlinked_checked = True
        found = rows(store, _UNLINKED_SQL, [])[0]
        n, n_info = int(found["n"]), int(found["n_info"])
        if n:
            resolution = (
                1_000_000_000
                if found["whole_s"] >= 0.99 * n
                else 1_000_000
                if found["whole_ms"] >= 0.99 * n
                else 0
            )
            margin = max(int(NEAR_LOG_MS * NS_PER_MS), resolution)
            ctx.unlinked_margin = margin if n > n_info else None
            ctx.unlinked_info_margin = margin if n_info else None
    return ctx.unlinked_info_margin if info else ctx.unlinked_margin


def near_lines_sql(trace_filter: str, margin: int) -> str:
    """SQL pairing each warning or error line without a trace id with every span of its
    instance that was running when it was written (within `margin` ns, `unlinked_margin`).
    `trace_filter` is an SQL set of trace ids (``SELECT trace_id FROM r``, ``SELECT
    unnest(?)``) whose spans are paired. Columns: trace_id, span_id (the span's), lid (the
    line's row id), ts_ns, service, instance, level, tpl, message (the line's)."""
    return f"""
        SELECT s.trace_id, s.span_id, u.lid, u.ts_ns, u.service, u.instance, u.level, u.tpl,
               u.message
        FROM (SELECT trace_id, span_id, instance, start_ns, start_ns + duration_ns AS end_ns
              FROM spans WHERE trace_id IN ({trace_filter})) s
        JOIN (SELECT rowid AS lid, ts_ns, service, instance, lvl AS level, tpl, message
              FROM logs WHERE (trace_id IS NULL OR trace_id = '') AND lvl <> 'info') u
          ON s.instance = u.instance
         AND u.ts_ns >= s.start_ns - {margin} AND u.ts_ns <= s.end_ns + {margin}"""


def novelty_params(store: TelemetryStore, ctx: IncidentContext) -> list[Any]:
    """Parameters of `novelty_cte`: the novelty table's columns, computed on first use."""
    if ctx.novelty is None:
        w, b = ctx.window, ctx.baseline
        ratio = ctx.window_seconds / ctx.base_seconds
        table = store.query(
            _NOVELTY_SQL,
            [
                w.start_ns,
                w.end_ns,
                b.start_ns,
                b.end_ns,
                w.start_ns,
                w.end_ns,
                b.start_ns,
                b.end_ns,
                ratio,
                1 if ctx.has_normal else 0,
            ],
        )
        ctx.novelty = [table.column(name).to_pylist() for name in ("service", "tpl", "novelty")]
    return list(ctx.novelty)


def wide_silence(store: TelemetryStore, ctx: IncidentContext) -> list[tuple[str, str, str, float]]:
    """Silenced lines of every operation (`silence_cte` at `SILENCE_Z_WIDE`), and those
    of lines without a trace id (`_instance_silence`), cached on ctx.

    Empty without a separate normal window or without logs.
    """
    if ctx.wide_silence is None:
        ctx.wide_silence = []
        if ctx.use_logs and ctx.has_normal and not (ctx.graph_scope and ctx.scope is None):
            # with a scope, the operations of its instances only
            scope = (
                "scope AS (SELECT DISTINCT instance, operation FROM spans "
                "WHERE instance IN (SELECT unnest(?))),"
                if ctx.scope is not None
                else ""
            )
            found = rows(
                store,
                f"""
                WITH {scope}
                {silence_cte("sil", scope="scope" if ctx.scope is not None else None)}
                SELECT instance, operation, tpl, strength FROM sil
                ORDER BY instance, operation, tpl
                """,
                [
                    *([list(ctx.scope)] if ctx.scope is not None else []),
                    *silence_params(ctx, SILENCE_Z_WIDE, per_test=True),
                ],
            )
            ctx.wide_silence = [
                (r["instance"], r["operation"], r["tpl"], float(r["strength"])) for r in found
            ]
            ctx.wide_silence += _instance_silence(store, ctx)
    return ctx.wide_silence


#: The operation a silence of lines without a trace id names (`_instance_silence`).
ANY_OPERATION = "(any operation)"

_INSTANCE_SILENCE_SQL = """
WITH ul AS (
  SELECT instance, tpl, ts_ns FROM logs
  WHERE (trace_id IS NULL OR trace_id = '') AND lvl = 'info' AND instance <> ''
    AND (? OR instance IN (SELECT unnest(?::VARCHAR[])))),
sp AS (
  SELECT instance, operation, start_ns, start_ns + duration_ns AS end_ns,
         CASE WHEN start_ns >= ? AND start_ns < ? THEN 'i'
              WHEN start_ns >= ? AND start_ns < ? THEN 'b' END AS win
  FROM spans WHERE instance IN (SELECT instance FROM ul)),
opn AS (SELECT instance, operation,
               count(*) FILTER (WHERE win = 'i') AS si, count(*) FILTER (WHERE win = 'b') AS sb
        FROM sp WHERE win IS NOT NULL GROUP BY ALL),
hits AS (
  SELECT ul.instance, ul.tpl, sp.operation, count(*) AS n
  FROM ul JOIN sp ON sp.instance = ul.instance AND sp.win = 'b'
   AND ul.ts_ns >= sp.start_ns - ? AND ul.ts_ns <= sp.end_ns + ?
  GROUP BY ALL),
writer AS (
  SELECT h.instance, h.tpl, first(h.operation ORDER BY h.n / o.sb DESC, h.operation)
           AS operation
  FROM hits h JOIN opn o USING (instance, operation) WHERE o.sb > 0 GROUP BY ALL),
u AS (
  SELECT instance, tpl,
         count(*) FILTER (WHERE ts_ns >= ? AND ts_ns < ?) AS ki,
         count(*) FILTER (WHERE ts_ns >= ? AND ts_ns < ?) AS kb
  FROM ul GROUP BY ALL),
e AS (
  SELECT u.instance, u.tpl, u.ki, u.kb * o.si / o.sb AS expected
  FROM u JOIN writer USING (instance, tpl) JOIN opn o USING (instance, operation)
  WHERE o.sb >= 10 AND o.si >= 5 AND u.kb >= 10 AND u.kb / o.sb >= ?),
z AS (
  SELECT *, 1 - ki / expected AS rel, (expected - ki) / sqrt(expected) AS z,
         count(*) OVER () AS tests
  FROM e)
SELECT instance, tpl, rel * least(1.0, z / ?) AS strength FROM z
WHERE rel >= ? AND z >= CASE WHEN ki = 0 THEN ? ELSE ? END
  AND ((ki = 0 AND ? = 0) OR z * z / 2 + ln(z * 2.5066282746) >= ln(tests / ?))
ORDER BY instance, tpl
"""


def _instance_silence(
    store: TelemetryStore, ctx: IncidentContext
) -> list[tuple[str, str, str, float]]:
    """Info templates without a trace id that their writer stopped writing.

    Such lines cannot be attributed to spans one by one: matched by time, a span also
    "writes" the lines of the requests running beside it, so its share of a template
    follows the instance's concurrency. Per (instance, template) instead: the *writer*
    is the operation of that instance whose baseline spans the template's baseline lines
    overlap most often relative to how often it ran (so an inner operation that writes
    it every time beats an outer one that fronts several kinds of request), and the
    template's expected incident count is its baseline count scaled by the writer's
    spans in the two windows (so a change in request mix is not silence). As for lines
    linked to spans, the template must have been written by at least
    `SILENCE_MIN_SHARE` of the writer's baseline spans (over at least 10, and 10 lines),
    the fall must be at least `SILENCE_REL` of the expectation, and clear
    `SILENCE_Z_SPAN` for a line gone completely, else `SILENCE_Z_WIDE` and the
    Bonferroni bound over the rows tested (z is the Poisson deviate). Rows name
    `ANY_OPERATION`: the agents cannot tell which span left the line out.
    """
    margin = unlinked_margin(store, ctx, info=True)
    if margin is None:
        return []
    w, b = ctx.window, ctx.baseline
    found = rows(
        store,
        _INSTANCE_SILENCE_SQL,
        [
            ctx.scope is None,
            list(ctx.scope or ()),
            *(w.start_ns, w.end_ns, b.start_ns, b.end_ns, margin, margin),
            *(w.start_ns, w.end_ns, b.start_ns, b.end_ns, SILENCE_MIN_SHARE),
            *(SILENCE_Z_FULL, SILENCE_REL, SILENCE_Z_SPAN, SILENCE_Z_WIDE),
            *(1 if ctx.sampled else 0, SILENCE_ALPHA),
        ],
    )
    return [(r["instance"], ANY_OPERATION, r["tpl"], float(r["strength"])) for r in found]
