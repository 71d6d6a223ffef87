"""SQL that fills an `IncidentContext` once per incident (see `context`).

One query per kind of fact; each returns a small aggregated Arrow table that becomes a
dict. Per-span detail is fetched only for the selected traces.
"""

from __future__ import annotations

import math

import numpy as np

from tracehound.methods.metric_ranking import RESOURCE_KINDS, fault_type_of
from tracehound.methods.trace_common import windowed_spans_cte
from tracehound.model import Incident
from tracehound.rclagent.context import (
    ANY_OPERATION,
    NS_PER_MS,
    SILENCE_Z_SPAN,
    WARN_SHARE,
    EdgeBaseline,
    IncidentContext,
    InstanceEvidence,
    LogLine,
    MetricShift,
    OpBaseline,
    choose_baseline,
    near_lines_sql,
    novelty_cte,
    novelty_params,
    rows,
    silence_cte,
    silence_params,
    unlinked_margin,
    wide_silence,
)
from tracehound.rclagent.tools import (
    CRASH_PATTERN,
    EDGE_FLOOR_MS,
    MAD_K,
    RELATIVE_FLOOR,
    edge_surprise,
)
from tracehound.store import TelemetryStore

_INT64_MIN = -(2**63)
#: Relative floor of a metric's spread: a shift smaller than a tenth of its own normal
#: level, however flat the series was, is not a shift worth reporting.
METRIC_RELATIVE_FLOOR = 0.10
#: Floor of a spread relative to the typical level of the same metric across all series
#: (half of it): a natural-unit scale learnt from the peers, so a series that was flat
#: or merely noisy cannot outrank one that moved by many of the metric's usual units.
PEER_FLOOR = 0.5
#: A series that rises through the incident window this steadily up to its peak
#: (Kendall's tau of its rows against time, over at least `TREND_ROWS` rows on each
#: side; rows after the peak, a restart after an OOM kill, do not count) and ends above the
#: whole range it wandered in the baseline is measured against its own baseline spread
#: (IQR, MAD) and a small share of its level (`TREND_FLOOR`), not against the relative
#: and peer floors: a leak's steady climb is not noise, however small against the
#: series' level or its peers'; a drifting series rarely leaves its baseline range.
TREND_TAU = 0.6
TREND_ROWS = 6
TREND_FLOOR = 0.02
#: Least fall in an instance's share of spans that counts as having vanished.
VANISHED_DROP = 0.5
#: ... and the fall must be unlikely by chance: the Poisson probability of seeing as few
#: traces reach the instance as now, given the expected count, below this family-wise
#: level divided by the number of instances compared (Bonferroni). An instance that 10
#: requests reached before and 4 now fell by 60 %, which happens by chance 3 % of the
#: time: among hundreds of instances, several do in any window.
VANISHED_ALPHA = 0.05
#: Weight of a vanished instance that no other component's error lines name (its callers
#: would report refused connections if it had died).
UNNAMED_VANISHED = 0.3


def new_context(
    incident: Incident,
    store: TelemetryStore,
    *,
    use_logs: bool,
    use_metrics: bool,
    graph_scope: bool = False,
) -> IncidentContext:
    """A context with windows and candidate names; facts are added by `fill_context`.

    With `graph_scope` the candidate names are left for `set_scope`, once the requests
    are chosen."""
    store.derive()
    baseline, has_normal = choose_baseline(incident, store)
    modalities = set(store.modalities())
    ctx = IncidentContext(
        incident=incident,
        window=incident.window,
        baseline=baseline,
        has_normal=has_normal,
        use_logs=use_logs and "logs" in modalities,
        use_metrics=use_metrics and "metrics" in modalities,
        graph_scope=graph_scope,
    )
    if not graph_scope:
        _set_names(store, ctx, None)
    return ctx


def _names_sql(tables: tuple[str, ...], within: str) -> str:
    """The distinct (service, instance) pairs the tables name (rows matching `within`)."""
    parts = " UNION ".join(
        f"SELECT DISTINCT service, instance FROM {table} WHERE {within}" for table in tables
    )
    return (
        f"SELECT service, instance FROM ({parts}) "
        "WHERE service IS NOT NULL AND service <> '' ORDER BY service, instance"
    )


def _set_names(
    store: TelemetryStore,
    ctx: IncidentContext,
    services: list[str] | None,
    sample: TelemetryStore | None = None,
) -> None:
    """Candidate services and instances: every one, or those of `services`; with a
    `sample` (`rclagent.sample.TraceSample`), those its spans and lines name and the
    store's metric series name."""
    within = "service IN (SELECT unnest(?::VARCHAR[]))" if services is not None else "true"
    params = [services] if services is not None else []
    if sample is None or sample is store:
        names = rows(store, _names_sql(("spans", "logs", "metrics"), within), params * 3)
    else:
        names = rows(sample, _names_sql(("spans", "logs"), within), params * 2)
        names += rows(store, _names_sql(("metrics",), within), params)
        names.sort(key=lambda r: (r["service"], r["instance"] is None, r["instance"] or ""))
    ctx.services = sorted({r["service"] for r in names})
    ctx.instances = sorted({r["instance"] for r in names if r["instance"]})
    ctx.instance_service = {r["instance"]: r["service"] for r in names if r["instance"]}


def services_reached(spans: TelemetryStore, ctx: IncidentContext) -> int:
    """How many services have a span in either window of `spans` (the store, or the
    sample of its traces that the facts read: `rclagent.sample`), the size of the system
    as the `auto` scope weighs it; the count costs what the sample costs, not what the
    system's telemetry does."""
    w, b = ctx.window, ctx.baseline
    found = rows(
        spans,
        """
        SELECT count(DISTINCT service) AS n FROM spans
        WHERE service IS NOT NULL AND service <> ''
          AND ((start_ns >= ? AND start_ns < ?) OR (start_ns >= ? AND start_ns < ?))
        """,
        [w.start_ns, w.end_ns, b.start_ns, b.end_ns],
    )
    return int(found[0]["n"])


def examine_every_component(store: TelemetryStore, ctx: IncidentContext) -> None:
    """Leave the graph scope before any fact is gathered: every service and instance is
    a candidate, as `new_context` makes them without `graph_scope`."""
    ctx.graph_scope = False
    _set_names(store, ctx, None)


def set_scope(
    store: TelemetryStore,
    ctx: IncidentContext,
    trace_ids: list[str],
    sample: TelemetryStore | None = None,
) -> None:
    """With `graph_scope`: examine the services with a span in the analysed requests and
    the services their spans called in the baseline window (a callee that stopped
    serving has no span in them), and every instance of these (a replica the requests
    missed may be the one at fault). Without a request there is no graph to follow:
    every component is examined, as with the incident scope. Spans and lines are read
    from `sample` when one is given (`fill_context`), metric series from `store`."""
    sample = sample or store
    if not trace_ids:
        ctx.graph_scope = False
        _set_names(store, ctx, None)
        ctx.wide_silence = None
        return
    b = ctx.baseline
    found = rows(
        sample,
        """
        WITH g AS (SELECT DISTINCT service FROM spans WHERE trace_id IN (SELECT unnest(?))),
        p AS (SELECT sk FROM spans WHERE start_ns >= ? AND start_ns < ?
                                     AND service IN (SELECT service FROM g)),
        c AS (SELECT DISTINCT service FROM spans
              WHERE start_ns >= ? AND start_ns < ? AND pk IN (SELECT sk FROM p))
        SELECT service FROM (SELECT service FROM g UNION SELECT service FROM c)
        WHERE service IS NOT NULL AND service <> '' ORDER BY service
        """,
        [trace_ids, b.start_ns, b.end_ns, b.start_ns, b.end_ns],
    )
    _set_names(store, ctx, [r["service"] for r in found], sample)
    ctx.scope = tuple(ctx.instances)
    ctx.wide_silence = None  # computed again, for the scope


def fill_context(
    store: TelemetryStore,
    ctx: IncidentContext,
    trace_ids: list[str],
    sample: TelemetryStore | None = None,
) -> None:
    """Add baselines, logs, activity and metric shifts for the selected traces.

    With a `sample` of the store's traces (`rclagent.sample`, holding `trace_ids`), the
    facts about spans and lines are computed over it and the metric shifts over `store`.
    """
    spans = sample or store
    if trace_ids:
        _operation_baselines(spans, ctx, trace_ids)
        _edge_baselines(spans, ctx, trace_ids)
        _edge_sides(spans, ctx)
        _activity(spans, ctx)
        if ctx.use_logs:
            _span_logs(spans, ctx, trace_ids)
            _usual_templates(spans, ctx, trace_ids)
    if ctx.use_metrics:
        _metric_shifts(store, ctx)
    _instance_evidence(spans, ctx)


#: With a scope: the baseline spans of the selected traces' operations (started in the
#: baseline window, rather than in traces that started in it), with their self-time,
#: found without grouping the whole store by trace (`_operation_baselines`).
_SCOPED_BASE_SQL = """
b_ops AS (SELECT DISTINCT service, operation FROM spans WHERE trace_id IN (SELECT unnest(?))),
b0 AS (SELECT sk, service, operation, duration_ns FROM spans
       WHERE start_ns >= ? AND start_ns < ?
         AND (service, operation) IN (SELECT service, operation FROM b_ops)),
b0k AS (SELECT pk, sum(duration_ns) AS child_ns FROM spans
        WHERE parent_span_id IS NOT NULL AND pk IN (SELECT sk FROM b0) GROUP BY pk),
b AS (SELECT service, operation, duration_ns,
             greatest(duration_ns - coalesce(child_ns, 0), 0) AS self_ns
      FROM b0 LEFT JOIN b0k ON b0k.pk = b0.sk)"""


#: With a scope: the spans that started in a window (two parameters), `w_c` those of them
#: that are calls into or out of the scope's services (one parameter: the services),
#: `w_p` their parents.
_SCOPED_CALLS_SQL = """
w_all AS (SELECT sk, pk, parent_span_id, service, operation, instance, duration_ns
          FROM spans WHERE start_ns >= ? AND start_ns < ?),
w_in AS (SELECT * FROM w_all WHERE service IN (SELECT unnest(?::VARCHAR[]))),
w_c AS (SELECT * FROM w_in WHERE parent_span_id IS NOT NULL
        UNION ALL
        SELECT * FROM w_all
        WHERE parent_span_id IS NOT NULL AND pk IN (SELECT sk FROM w_in)
          AND sk NOT IN (SELECT sk FROM w_in)),
w_p AS (SELECT * FROM w_all WHERE sk IN (SELECT pk FROM w_c))"""


def _operation_baselines(store: TelemetryStore, ctx: IncidentContext, trace_ids: list[str]) -> None:
    b = ctx.baseline
    scoped = ctx.scope is not None
    found = rows(
        store,
        f"""
        WITH {_SCOPED_BASE_SQL if scoped else windowed_spans_cte("b")},
        ops AS (SELECT DISTINCT service, operation FROM spans
                WHERE trace_id IN (SELECT unnest(?))),
        x AS (SELECT b.service, b.operation, b.duration_ns / {NS_PER_MS} AS d,
                     b.self_ns / {NS_PER_MS} AS s FROM b JOIN ops USING (service, operation)),
        m AS (SELECT service, operation, median(d) AS md, median(s) AS ms FROM x GROUP BY ALL)
        SELECT service, operation, count(*) AS n, any_value(md) AS md,
               median(abs(d - md)) AS mad, any_value(ms) AS ms, median(abs(s - ms)) AS smad
        FROM x JOIN m USING (service, operation) GROUP BY service, operation
        """,
        [*([trace_ids] if scoped else []), b.start_ns, b.end_ns, trace_ids],
    )
    ctx.op_base = {
        (r["service"], r["operation"]): OpBaseline(
            n=int(r["n"]),
            median_ms=float(r["md"]),
            mad_ms=float(r["mad"]),
            self_median_ms=float(r["ms"]),
            self_mad_ms=float(r["smad"]),
        )
        for r in found
    }


def _edge_baselines(store: TelemetryStore, ctx: IncidentContext, trace_ids: list[str]) -> None:
    """Client-minus-server time of single-child cross-instance calls, per operation pair:
    median, MAD, calls, and calls beyond the bound `tools.excess_ms` uses (`slow`).

    All pairs of the baseline window are kept (they are few); `trace_ids` is unused.
    """
    b = ctx.baseline
    if ctx.scope is not None:
        calls = f"""{_SCOPED_CALLS_SQL},
        kids AS (SELECT pk, count(*) AS k FROM w_all
                 WHERE parent_span_id IS NOT NULL AND pk IN (SELECT sk FROM w_p) GROUP BY pk)"""
        params: list[object] = [b.start_ns, b.end_ns, ctx.services]
    else:
        calls = f"""{windowed_spans_cte("b")},
        w_c AS (SELECT * FROM b_sp), w_p AS (SELECT * FROM b_sp),
        kids AS (SELECT pk, count(*) AS k FROM b_sp
                 WHERE parent_span_id IS NOT NULL GROUP BY pk)"""
        params = [b.start_ns, b.end_ns]
    found = rows(
        store,
        f"""
        WITH {calls},
        e AS (
          SELECT p.service AS ps, p.operation AS po, c.service AS cs, c.operation AS co,
                 (p.duration_ns - c.duration_ns) / {NS_PER_MS} AS g
          FROM w_c c
          JOIN w_p p ON p.sk = c.pk
          JOIN kids ON kids.pk = p.sk
          WHERE c.parent_span_id IS NOT NULL AND p.instance <> c.instance AND kids.k = 1),
        m AS (SELECT ps, po, cs, co, median(g) AS mg FROM e GROUP BY ALL),
        md AS (SELECT ps, po, cs, co, count(*) AS n, any_value(mg) AS mg,
                      median(abs(g - mg)) AS mad
               FROM e JOIN m USING (ps, po, cs, co) GROUP BY ALL)
        SELECT md.ps, md.po, md.cs, md.co, any_value(md.n) AS n, any_value(md.mg) AS mg,
               any_value(md.mad) AS mad,
               count(*) FILTER (WHERE e.g > greatest(md.mg + ? * 1.4826 * md.mad,
                                                     md.mg * (1 + ?), md.mg + ?)) AS slow
        FROM md JOIN e USING (ps, po, cs, co) GROUP BY md.ps, md.po, md.cs, md.co
        """,
        [*params, MAD_K, RELATIVE_FLOOR, EDGE_FLOOR_MS],
    )
    del trace_ids  # edges are few; all pairs of the baseline are kept
    ctx.edge_base = {
        (r["ps"], r["po"], r["cs"], r["co"]): EdgeBaseline(
            n=int(r["n"]),
            median_ms=float(r["mg"]),
            mad_ms=float(r["mad"]),
            slow=int(r["slow"]),
        )
        for r in found
    }


#: Pseudo-calls, half of them slow, added to an instance's calls in the incident window
#: before its share of slow calls is taken (the mean of a Jeffreys prior): an instance
#: with two calls, both slow, shows 0.83, not 1.0 or "too few to tell", and one with
#: none of 40 slow shows 0.012.
EDGE_SIDE_PRIOR = 1.0


def _edge_sides(store: TelemetryStore, ctx: IncidentContext) -> None:
    """Per instance: which share of its outgoing calls, and of its incoming calls, were
    slow on the wire in the incident window.

    A call is a cross-instance parent with a single child (as in `_edge_baselines`, whose
    per-pair baselines it reuses); it is slow when its client-minus-server time exceeds
    the bound `tools.excess_ms` uses. Network trouble at an instance slows every call into
    (or out of) it while its peers' other calls stay normal, so these shares tell which
    end of a slow call the delay belongs to (`tools.edge_timing`). Also per operation
    pair: its slow calls and calls in the window (`ctx.edge_pairs`), against which
    `tools.edge_surprise` weighs a slow call; in the shares a slow call counts at that
    weight, so a pair that is slow now and then anyway does not make its ends look slow.
    """
    if not ctx.edge_base:
        return
    w = ctx.window
    pairs = sorted(ctx.edge_base.items())
    scoped = ctx.scope is not None
    if scoped:  # the calls into and out of the scope's services only
        calls = f"{_SCOPED_CALLS_SQL},"
        c_sql = "SELECT pk, service, operation, instance, duration_ns FROM w_c"
        k_sql = "SELECT pk, count(*) AS k FROM w_all WHERE parent_span_id IS NOT NULL "
        k_sql += "AND pk IN (SELECT sk FROM w_p) GROUP BY pk"
        p_sql = "SELECT sk, service, operation, instance, duration_ns FROM w_p"
    else:
        calls = ""
        c_sql = """SELECT pk, service, operation, instance, duration_ns
              FROM spans WHERE start_ns >= ? AND start_ns < ? AND parent_span_id IS NOT NULL"""
        k_sql = "SELECT pk, count(*) AS k FROM c GROUP BY pk"
        p_sql = """SELECT sk, service, operation, instance, duration_ns
                FROM spans WHERE start_ns >= ? AND start_ns < ?"""
    found = rows(
        store,
        f"""
        WITH {calls}
        bs AS (SELECT unnest(?) AS ps, unnest(?) AS po, unnest(?) AS cs, unnest(?) AS co,
                           unnest(?) AS mg, unnest(?) AS mad),
        c AS ({c_sql}),
        k AS ({k_sql}),
        ix AS (
          SELECT p.instance AS pi, c.instance AS ci, p.service AS ps, p.operation AS po,
                 c.service AS cs, c.operation AS co,
                 CASE WHEN (p.duration_ns - c.duration_ns) / {NS_PER_MS}
                           > greatest(bs.mg + ? * 1.4826 * bs.mad, bs.mg * (1 + ?), bs.mg + ?)
                      THEN 1 ELSE 0 END AS slow
          FROM c
          JOIN k USING (pk)
          JOIN ({p_sql}) p
            ON p.sk = c.pk
          JOIN bs ON bs.ps = p.service AND bs.po = p.operation AND bs.cs = c.service
                 AND bs.co = c.operation
          WHERE k.k = 1 AND p.instance <> c.instance),
        SELECT pi, ci, ps, po, cs, co, sum(slow) AS slow, count(*) AS n
        FROM ix GROUP BY ALL ORDER BY pi, ci, ps, po, cs, co
        """,
        [
            *([w.start_ns, w.end_ns, ctx.services] if scoped else []),
            *(list(column) for column in zip(*(key for key, _ in pairs), strict=True)),
            [base.median_ms for _, base in pairs],
            [base.mad_ms for _, base in pairs],
            *([] if scoped else [w.start_ns, w.end_ns]),
            MAD_K,
            RELATIVE_FLOOR,
            EDGE_FLOOR_MS,
            *([] if scoped else [w.start_ns, w.end_ns]),
        ],
    )

    counts: dict[tuple[str, str, str, str], tuple[int, int]] = {}
    for r in found:
        key = (r["ps"], r["po"], r["cs"], r["co"])
        slow, n = counts.get(key, (0, 0))
        counts[key] = (slow + int(r["slow"]), n + int(r["n"]))
    ctx.edge_pairs = counts
    # a slow call counts for its ends as much as its pair's slowness is new
    # (`tools.edge_surprise`): chance-slow pairs do not make an instance look slow
    sides: dict[str, list[float]] = {}
    for r in found:
        weighted = int(r["slow"]) * edge_surprise(ctx, (r["ps"], r["po"], r["cs"], r["co"]))
        out, into = sides.setdefault(r["pi"], [0.0] * 4), sides.setdefault(r["ci"], [0.0] * 4)
        out[0] += weighted
        out[1] += int(r["n"])
        into[2] += weighted
        into[3] += int(r["n"])

    def share(slow: float, n: float) -> float:
        return (slow + EDGE_SIDE_PRIOR / 2) / (n + EDGE_SIDE_PRIOR)

    ctx.edge_sides = {
        instance: (share(v[0], v[1]), share(v[2], v[3])) for instance, v in sorted(sides.items())
    }


def _activity(store: TelemetryStore, ctx: IncidentContext) -> None:
    w, b = ctx.window, ctx.baseline
    counts = """
        SELECT {key},
               count(*) FILTER (WHERE start_ns >= ? AND start_ns < ?) AS ni,
               count(*) FILTER (WHERE start_ns >= ? AND start_ns < ?) AS nb
        FROM spans {where}
        """
    windows = [w.start_ns, w.end_ns, b.start_ns, b.end_ns]
    if ctx.scope is not None:
        found = rows(
            store,
            counts.format(
                key="instance", where="WHERE instance IN (SELECT unnest(?)) GROUP BY instance"
            ),
            [*windows, list(ctx.scope)],
        )
        total = rows(store, counts.format(key="1 AS one", where=""), windows)[0]
        ctx.activity_total = (int(total["ni"]), int(total["nb"]))
    else:
        found = rows(store, counts.format(key="instance", where="GROUP BY instance"), windows)
    ctx.activity = {r["instance"]: (int(r["ni"]), int(r["nb"])) for r in found}
    # distinct traces only where spans fell enough to matter (`_vanished`)
    fell = [i for i, (drop, _) in _span_drops(ctx).items() if drop >= VANISHED_DROP]
    if fell:
        traced = rows(
            store,
            """
            SELECT instance,
                   count(DISTINCT trace_id) FILTER (WHERE start_ns >= ? AND start_ns < ?) AS ti,
                   count(DISTINCT trace_id) FILTER (WHERE start_ns >= ? AND start_ns < ?) AS tb
            FROM spans WHERE instance IN (SELECT unnest(?)) GROUP BY instance
            """,
            [w.start_ns, w.end_ns, b.start_ns, b.end_ns, fell],
        )
        ctx.activity_traces = {r["instance"]: (int(r["ti"]), int(r["tb"])) for r in traced}


def _span_logs(store: TelemetryStore, ctx: IncidentContext, trace_ids: list[str]) -> None:
    """The selected traces' log lines by span: those linked by trace id, and warning and
    error lines without one written on a span's instance while it ran (`NEAR_LOG_MS`)."""
    margin = unlinked_margin(store, ctx)
    near = (
        f"""
        UNION ALL
        SELECT ts_ns, service, instance, level, tpl, message, trace_id, span_id, false
        FROM ({near_lines_sql("SELECT unnest(?)", margin)})"""
        if margin is not None
        else ""
    )
    found = store.query(
        f"""
        WITH {novelty_cte("nov")},
        l AS (SELECT ts_ns, service, instance, lvl AS level, tpl,
                     message, trace_id, coalesce(span_id, '') AS span_id, true AS linked
              FROM logs WHERE trace_id IN (SELECT unnest(?)){near})
        SELECT l.*, CASE WHEN l.level = 'info' THEN 0.0 ELSE coalesce(nov.novelty, 1.0) END
               AS novelty
        FROM l LEFT JOIN nov USING (service, tpl)
        ORDER BY l.trace_id, l.span_id, l.linked DESC, l.ts_ns, l.tpl
        """,
        [*novelty_params(store, ctx), trace_ids, *([trace_ids] if margin is not None else [])],
    ).to_pylist()
    grouped: dict[tuple[str, str], list[LogLine]] = {}
    for r in found:
        line = LogLine(
            ts_ns=int(r["ts_ns"]),
            service=r["service"],
            instance=r["instance"],
            level=r["level"],
            template=r["tpl"],
            message=r["message"] or "",
            trace_id=r["trace_id"],
            span_id=r["span_id"],
            novelty=float(r["novelty"]),
            linked=bool(r["linked"]),
        )
        grouped.setdefault((line.trace_id, line.span_id), []).append(line)
    ctx.span_logs = grouped


def _usual_templates(store: TelemetryStore, ctx: IncidentContext, trace_ids: list[str]) -> None:
    """Info templates that the operations of the selected traces stopped writing."""
    if not ctx.has_normal:
        return
    found = rows(
        store,
        f"""
        WITH scope AS (SELECT DISTINCT instance, operation FROM spans
                       WHERE trace_id IN (SELECT unnest(?))),
        {silence_cte("sil", scope="scope")}
        SELECT instance, operation, tpl, strength FROM sil ORDER BY instance, operation, tpl
        """,
        [trace_ids, *silence_params(ctx, SILENCE_Z_SPAN)],
    )
    usual: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for r in found:
        usual.setdefault((r["instance"], r["operation"]), []).append(
            (r["tpl"], min(1.0, float(r["strength"])))
        )
    # what instances stopped writing in lines without a trace id (`_instance_silence`)
    for instance, operation, tpl, strength in wide_silence(store, ctx):
        if operation == ANY_OPERATION:
            usual.setdefault((instance, operation), []).append((tpl, min(1.0, strength)))
    ctx.usual_templates = usual


def _instance_evidence(store: TelemetryStore, ctx: IncidentContext) -> None:
    """Incident-wide evidence per instance: novel errors, silenced templates, resources.

    Error and warning lines that name another service count for the one they name
    (`_novel_lines`), not for their writer, as a failed call is passed on by the
    span agents (`rules.RuleReasoner._redirect`); the share of its writer's novel error
    weight held by such lines that blame a callee it reached is kept
    (`InstanceEvidence.passes_on`), so that the silence that follows from a failure it
    passed on can be discounted as the span agents discount it.
    """
    errors: dict[str, tuple[float, str]] = {}
    silence: dict[str, tuple[float, str]] = {}
    named: dict[str, float] = {}
    passed: dict[str, float] = {}
    if ctx.use_logs:
        own, named, passed = _novel_lines(store, ctx)
        errors.update(own)
        for instance, operation, tpl, strength in wide_silence(store, ctx):
            if strength > silence.get(instance, (0.0, ""))[0]:
                silence[instance] = (strength, f"{operation}: {tpl}")
    blamed = named if ctx.use_logs else {}
    drops = _vanished(ctx)
    vanished = {i: v if named.get(i, 0.0) > 0 else UNNAMED_VANISHED * v for i, v in drops.items()}
    names = set(errors) | set(silence) | set(ctx.instance_metrics) | set(vanished) | set(blamed)
    for instance in sorted(names):
        error, error_tpl = errors.get(instance, (0.0, ""))
        quiet, quiet_tpl = silence.get(instance, (0.0, ""))
        resource, kind = 0.0, None
        for shift in ctx.instance_metrics.get(instance, []):
            shift_kind = fault_type_of(shift.name)
            if shift_kind in RESOURCE_KINDS and shift.score > resource:
                resource, kind = shift.score, shift_kind
        notes = []
        if error:
            notes.append(f"{error:.1f} novel error line(s), e.g. {error_tpl[:120]}")
        if quiet:
            notes.append(f"stopped writing {quiet_tpl[:120]} (drop {quiet:.2f})")
        if kind:
            notes.append(f"{kind} up {resource:.1f} spreads")
        gone = vanished.get(instance, 0.0)
        if gone:
            notes.append(f"{drops[instance]:.0%} fewer spans than its service's traffic predicts")
        pointed = blamed.get(instance, 0.0)
        if pointed:
            notes.append(f"named by {pointed:.1f} novel error line(s) of other services")
        passing = passed.get(instance, 0.0)
        if passing:
            notes.append(f"{passing:.0%} of its novel error lines blame a callee it reached")
        ctx.instance_evidence[instance] = InstanceEvidence(
            errors=error / (error + 3.0),
            silence=min(1.0, quiet),
            vanished=gone,
            resource=resource / (resource + 10.0) if resource >= 5.0 else 0.0,
            resource_kind=kind,
            note="; ".join(notes),
            named=pointed / (pointed + 3.0),
            passes_on=passing,
        )


#: Words of a log line that may be a service or instance name (names are compared
#: whole, so the cost follows the lines, not lines times names).
NAME_TOKEN = "[A-Za-z0-9][A-Za-z0-9_-]*"


def _novel_lines(
    store: TelemetryStore, ctx: IncidentContext
) -> tuple[dict[str, tuple[float, str]], dict[str, float], dict[str, float]]:
    """Novel warning/error lines of the window: per writer, and per instance they name.

    Each line weighs its novelty (warnings `WARN_SHARE` of it). A line that names another
    service, or an instance of one, as a whole word in any case (`CartService` names
    `cartservice`) counts for every instance it names
    (`named`) and not for its writer (`own`: weight and strongest template per writer).
    The third table is, per writer, the share (0..1) of its novel lines' weight held by
    lines that complain about an instance its spans called in the window, without
    reporting a crash of their own (`tools.CRASH_PATTERN`): failures that came back
    from a callee it reached (`passed`). Lines naming a component it never reached (a
    callee that is gone) or reporting its own exception ("No instances available for X"
    thrown in the writer) pass nothing on.
    """
    pairs = sorted(ctx.instance_service.items())
    w = ctx.window
    found = rows(
        store,
        f"""
        WITH {novelty_cte("nov")},
        n AS (SELECT instance, service, lower(instance) AS li, lower(service) AS ls
              FROM (SELECT unnest(?) AS instance, unnest(?) AS service)),
        l AS (SELECT service, instance, message, tpl,
                     CASE WHEN lvl = 'error' THEN 1.0 ELSE {WARN_SHARE} END AS share
              FROM logs WHERE ts_ns >= ? AND ts_ns < ? AND lvl <> 'info'
                AND (? OR instance IN (SELECT unnest(?::VARCHAR[])))),
        e AS (SELECT row_number() OVER () AS id, l.service, l.instance, l.message, l.tpl,
                     nov.novelty * l.share AS weight
              FROM l JOIN nov USING (service, tpl) WHERE nov.novelty > 0),
        t AS (SELECT DISTINCT id, lower(token) AS token
              FROM (SELECT id, unnest(regexp_extract_all(message, '{NAME_TOKEN}')) AS token
                    FROM e)),
        hit AS (SELECT t.id, n.instance, n.service FROM t JOIN n ON t.token = n.li
                UNION SELECT t.id, n.instance, n.service FROM t JOIN n ON t.token = n.ls),
        other AS (SELECT DISTINCT hit.id, hit.instance FROM hit JOIN e USING (id)
                  WHERE hit.service <> e.service),
        reached AS (  -- instances the writers' spans called in the window
          SELECT DISTINCT p.instance AS writer, c.instance AS callee
          FROM spans p JOIN spans c ON c.pk = p.sk
          WHERE p.start_ns >= ? AND p.start_ns < ? AND c.instance <> p.instance
            AND p.instance IN (SELECT e.instance FROM e JOIN other USING (id))),
        relayed AS (SELECT DISTINCT other.id FROM other JOIN e USING (id)
                    JOIN reached ON reached.writer = e.instance
                                AND reached.callee = other.instance
                    WHERE NOT regexp_matches(e.message, ?))
        SELECT 'own' AS kind, instance, sum(weight) AS w,
               first(tpl ORDER BY weight DESC, tpl) AS tpl
        FROM e WHERE instance <> '' AND id NOT IN (SELECT id FROM other) GROUP BY instance
        UNION ALL
        SELECT 'named' AS kind, other.instance, sum(e.weight) AS w, NULL AS tpl
        FROM other JOIN e USING (id) GROUP BY other.instance
        UNION ALL
        SELECT 'passed' AS kind, instance, sum(weight) AS w, NULL AS tpl
        FROM e WHERE instance <> '' AND id IN (SELECT id FROM relayed) GROUP BY instance
        UNION ALL
        SELECT 'wrote' AS kind, instance, sum(weight) AS w, NULL AS tpl
        FROM e WHERE instance <> '' AND instance IN (SELECT instance FROM e
                                                     WHERE id IN (SELECT id FROM relayed))
        GROUP BY instance
        """,
        [
            *novelty_params(store, ctx),
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            w.start_ns,
            w.end_ns,
            ctx.scope is None,
            list(ctx.scope or ()),
            w.start_ns,
            w.end_ns,
            "(?m)" + CRASH_PATTERN.pattern,
        ],
    )
    own = {r["instance"]: (float(r["w"]), r["tpl"]) for r in found if r["kind"] == "own"}
    named = {r["instance"]: float(r["w"]) for r in found if r["kind"] == "named"}
    wrote = {r["instance"]: float(r["w"]) for r in found if r["kind"] == "wrote"}
    passed = {
        r["instance"]: float(r["w"]) / wrote[r["instance"]] for r in found if r["kind"] == "passed"
    }
    return own, named, passed


def _vanished(ctx: IncidentContext) -> dict[str, float]:
    """Instances that started far fewer spans than their peers' traffic predicts.

    A killed instance writes nothing: its share of its service's spans falls (for a
    service with one instance, its share of all spans). Needs at least 10 baseline spans;
    drops under `VANISHED_DROP`, or that chance explains (`VANISHED_ALPHA`, judged on the
    distinct traces that reached the instance, which arrive independently while one
    trace's spans come in clumps), are ignored.
    """
    out: dict[str, float] = {}
    level = VANISHED_ALPHA / max(1, len(ctx.activity))
    for instance, (drop, ratio) in _span_drops(ctx).items():
        if drop < VANISHED_DROP:
            continue
        # requests arrive independently, spans in clumps of a request's calls: chance is
        # judged on the requests (traces) that reached the instance
        traces_now, traces_before = ctx.activity_traces.get(instance, ctx.activity[instance])
        if poisson_cdf(traces_now, traces_before * ratio) < level:
            out[instance] = min(1.0, drop)
    return out


def _peer_ratios(ctx: IncidentContext) -> dict[str, float]:
    """Per instance, how its peers' span count changed (now / before): the other
    instances of its service, or the whole system for a service with one instance;
    0.0 when the peers ran nothing before."""
    totals: dict[str, tuple[int, int]] = {}
    replicas: dict[str, int] = {}
    for instance, (now, before) in ctx.activity.items():
        service = ctx.instance_service.get(instance, "")
        total = totals.get(service, (0, 0))
        totals[service] = (total[0] + now, total[1] + before)
        replicas[service] = replicas.get(service, 0) + 1
    system_now, system_before = ctx.activity_total or (
        sum(n for n, _ in ctx.activity.values()),
        sum(b for _, b in ctx.activity.values()),
    )
    out = {}
    for instance in ctx.activity:
        service = ctx.instance_service.get(instance, "")
        peers_now, peers_before = totals[service]
        if replicas[service] == 1:
            peers_now, peers_before = system_now, system_before
        out[instance] = peers_now / peers_before if peers_before > 0 else 0.0
    return out


def _span_drops(ctx: IncidentContext) -> dict[str, tuple[float, float]]:
    """Per instance with at least 10 baseline spans: how far its span count fell below
    what its peers' traffic predicts (1: it ran none), and that traffic ratio."""
    out = {}
    for instance, ratio in _peer_ratios(ctx).items():
        now, before = ctx.activity[instance]
        expected = before * ratio
        if before >= 10 and expected > 0:
            out[instance] = (1.0 - now / expected, ratio)
    return out


def poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean), summed in log space; the normal approximation
    (continuity-corrected) above a mean of 1,000, where the sum would be long."""
    if mean > 1000:
        return 0.5 * math.erfc(-(k + 0.5 - mean) / math.sqrt(2 * mean))
    term = -mean  # log P(X = 0)
    total = math.exp(term)
    for i in range(1, int(k) + 1):
        term += math.log(mean) - math.log(i)
        total += math.exp(term)
    return min(1.0, total)


def metric_segments(store: TelemetryStore, ctx: IncidentContext) -> list[tuple[int, int]]:
    """Baseline then incident segment for metrics: the normal window, else everything before."""
    w = ctx.window
    normal = ctx.incident.normal_window
    if normal is not None:
        n = rows(
            store,
            "SELECT count(*) AS n FROM metrics WHERE ts_ns >= ? AND ts_ns < ?",
            [normal.start_ns, normal.end_ns],
        )[0]["n"]
        if n:
            return [(normal.start_ns, normal.end_ns), (w.start_ns, w.end_ns)]
    return [(_INT64_MIN, w.start_ns), (w.start_ns, w.end_ns)]


def _kendall_tau(values: np.ndarray) -> np.ndarray:
    """Per column, Kendall's tau of the rows against their order (1: strictly rising)."""
    rows_n = values.shape[0]
    upper = np.triu(np.ones((rows_n, rows_n), dtype=bool), k=1)
    signs = np.sign(values[None, :, :] - values[:, None, :])[upper]
    return np.asarray(signs.sum(axis=0) / upper.sum(), dtype=np.float64)


#: With a scope: the series of its instances, of its services without an instance, and
#: of its instances' nodes without an instance (parameters: instances, services,
#: instances).
_SCOPED_SERIES_SQL = """
WITH own AS (SELECT DISTINCT sid, node FROM metrics
             WHERE instance IN (SELECT unnest(?::VARCHAR[]))),
bare AS (SELECT DISTINCT sid, service, node FROM metrics WHERE coalesce(instance, '') = '')
SELECT sid FROM own
UNION SELECT sid FROM bare WHERE service IN (SELECT unnest(?::VARCHAR[]))
UNION SELECT sid FROM bare WHERE node IN (SELECT node FROM own WHERE coalesce(node, '') <> '')
ORDER BY sid"""

_SERIES_SQL = """
WITH {scope} k AS (
  SELECT * FROM (
    SELECT sid, ts_ns, value,
           CASE WHEN ts_ns >= ? AND ts_ns < ? THEN 0 WHEN ts_ns >= ? AND ts_ns < ? THEN 1 END
             AS seg
    FROM metrics WHERE value IS NOT NULL AND isfinite(value) {within})
  WHERE seg IS NOT NULL),
q AS (SELECT sid, seg, quantile_cont(value, [0.25, 0.5, 0.75]) AS qs, count(*) AS n,
             min(value) AS lo, max(value) AS hi,
             median(value) FILTER (WHERE ts_ns >= ?) AS tail
      FROM k GROUP BY sid, seg),
b AS (SELECT sid, qs[2] AS med, qs[1] AS q25, qs[3] AS q75, hi - lo AS wander, n AS nb
      FROM q WHERE seg = 0),
i AS (SELECT sid, qs[2] AS i50, tail, hi AS peak, n AS ni FROM q WHERE seg = 1),
d AS (SELECT sid, median(abs(value - b.med)) AS mad FROM k JOIN b USING (sid)
      WHERE seg = 0 GROUP BY sid),
names AS (SELECT DISTINCT ON (sid) sid, coalesce(service, '') AS service,
                 coalesce(instance, '') AS instance, coalesce(node, '') AS node, name
          FROM metrics {where}),
a AS (SELECT names.*, b.med, b.q25, b.q75, d.mad, b.wander, b.nb, i.i50, i.tail, i.peak, i.ni
      FROM i JOIN b USING (sid) JOIN d USING (sid) JOIN names USING (sid))
SELECT *,
       median(abs(med)) OVER (PARTITION BY name) AS peer,
       count(*) OVER (PARTITION BY node, name, round(med, 9), round(peak, 9)) > 1
         AND instance <> '' AND node <> '' AS shared
FROM a WHERE ni > 0
ORDER BY service, instance, node, name
"""


def _series_stats(store: TelemetryStore, ctx: IncidentContext) -> dict[str, np.ndarray]:
    """Per metric series: baseline quantiles, spread and range; incident level and peak.

    One query over the points of the two segments (no time grid), grouped by series key
    (`joinkeys`), with the quantiles of a segment taken in one pass: the
    baseline's median, quartiles, MAD, range and row count, the incident window's
    median, the median of its last quarter (by time), its peak and row count, the typical
    normal level of the same metric across all series (`peer`), and whether several
    instances of one node report the series with identical values (`shared`: node-level
    series repeated on every pod row, which say nothing about one pod).
    """
    (b0, b1), (w0, w1) = metric_segments(store, ctx)
    tail_from = w0 + (w1 - w0) * 3 // 4
    if ctx.scope is not None:
        found = store.query(_SCOPED_SERIES_SQL, [list(ctx.scope), ctx.services])
        sids = found.column("sid").to_pylist()
        sql = _SERIES_SQL.format(
            scope="sc AS (SELECT unnest(?::UBIGINT[]) AS sid),",
            within="AND sid IN (SELECT sid FROM sc)",
            where="WHERE sid IN (SELECT sid FROM sc)",
        )
        table = store.query(sql, [sids, b0, b1, w0, w1, tail_from])
    else:
        sql = _SERIES_SQL.format(scope="", within="", where="")
        table = store.query(sql, [b0, b1, w0, w1, tail_from])
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        column = table.column(name)
        if name in ("service", "instance", "node", "name"):
            out[name] = np.asarray(column.to_pylist(), dtype=object)
        elif name == "sid":
            out[name] = column.to_numpy(zero_copy_only=False)
        else:
            out[name] = column.to_numpy(zero_copy_only=False).astype(np.float64)
    return out


def _steady(store: TelemetryStore, ctx: IncidentContext, sids: list[int]) -> set[int]:
    """Which of the series (by `sid`, see `joinkeys`) rise steadily in the window, up to
    their peak: what follows a leak's peak is the restart after the kill, and a sawtooth
    of climbs and restarts is a leak, not noise. Returns positions in `sids`."""
    if not sids:
        return set()
    w = ctx.window
    found = store.query(
        """
        WITH c AS (SELECT unnest(?::UBIGINT[]) AS sid, unnest(?) AS j)
        SELECT c.j, m.value FROM metrics m JOIN c USING (sid)
        WHERE m.ts_ns >= ? AND m.ts_ns < ? AND m.value IS NOT NULL AND isfinite(m.value)
        ORDER BY c.j, m.ts_ns
        """,
        [sids, list(range(len(sids))), w.start_ns, w.end_ns],
    )
    index = found.column("j").to_numpy()
    values = found.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
    cuts = np.flatnonzero(np.diff(index)) + 1
    steady = set()
    for group, series in zip(np.split(index, cuts), np.split(values, cuts), strict=True):
        climb = series[: int(np.argmax(series)) + 1]  # a leak climbs until the OOM kill
        if len(climb) >= TREND_ROWS and _kendall_tau(climb[:, None])[0] >= TREND_TAU:
            steady.add(int(group[0]))
    return steady


def _metric_shifts(store: TelemetryStore, ctx: IncidentContext) -> None:
    """Each series' rise over its baseline, in spreads floored in the series' own units.

    The spread is the largest of the baseline's MAD (scaled to a standard deviation),
    `METRIC_RELATIVE_FLOOR` of its level and `PEER_FLOOR` of its peers' level; the rise
    is the incident window's sustained level (its median, or the median of its last
    quarter, as a fault may start late and a leak keeps growing) minus the baseline
    median. Both are medians so that bursts do not count as shifts: a series that spikes
    now and then has a wide interquartile range and an upper quartile that follows how
    often it spiked, so a sustained rise on it scored low while more frequent bursts on
    a quiet series scored high (on a simulated 120-service system, three of ten CPU
    faults lost to such bursts).
    Series that rise steadily out of their baseline range are measured against their own
    spread (see `TREND_TAU`).
    All statistics are aggregates in SQL; only series that a steady rise could lift are
    fetched point by point, so the cost follows the number of series, not their points.
    """
    st = _series_stats(store, ctx)
    if not len(st["name"]):
        return
    median = st["med"]
    tiny = np.full(median.shape, 1e-9)
    scale = np.maximum.reduce(
        [
            st["mad"] * 1.4826,
            METRIC_RELATIVE_FLOOR * np.abs(median),
            PEER_FLOOR * st["peer"],
            tiny,
        ]
    )
    level = np.fmax(st["i50"], st["tail"])
    score = (level - median) / scale
    own = np.maximum.reduce(
        [st["q75"] - st["q25"], st["mad"] * 1.4826, TREND_FLOOR * np.abs(median), tiny]
    )
    trend = (level - median) / own
    could = (
        (level - median > st["wander"])
        & (trend > np.maximum(score, 1.0))
        & (st["nb"] >= TREND_ROWS)
        & (st["ni"] >= TREND_ROWS)
    )
    candidates = np.flatnonzero(could).tolist()
    sids = [int(st["sid"][j]) for j in candidates]
    for position in _steady(store, ctx, sids):
        j = candidates[position]
        score[j] = trend[j]
    for j in np.flatnonzero(score > 0).tolist():
        shift = MetricShift(
            service=str(st["service"][j]),
            instance=str(st["instance"][j]),
            node=str(st["node"][j]),
            name=str(st["name"][j]),
            normal=float(median[j]),
            value=float(st["peak"][j]),
            score=float(min(score[j], 1e6)),
            level=float(level[j]),
            flat=bool(scale[j] <= tiny[j]),
        )
        if shift.instance and not st["shared"][j]:
            ctx.instance_metrics.setdefault(shift.instance, []).append(shift)
            if shift.node:
                ctx.instance_node.setdefault(shift.instance, shift.node)
        elif shift.node:
            ctx.node_metrics.setdefault(shift.node, []).append(shift)
            if shift.instance:
                ctx.instance_node.setdefault(shift.instance, shift.node)
        elif not shift.instance:
            ctx.service_metrics.setdefault(shift.service, []).append(shift)
    for shifts in (
        *ctx.instance_metrics.values(),
        *ctx.node_metrics.values(),
        *ctx.service_metrics.values(),
    ):
        shifts.sort(key=lambda s: (-s.score, s.name))
