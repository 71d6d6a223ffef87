"""Step 1: pick the anomalous requests to investigate (ARCHITECTURE §4.2).

A request is a root span starting in the incident window. It is anomalous when its trace
holds spans with error status, when log lines linked to its trace are errors (or warnings)
that the baseline window did not show as often (their `novelty`; a line without a trace id
counts, at a discount, for the requests with a span of its instance running when it was
written: `context.NEAR_LOG_MS`), when its spans left out
info lines their operation wrote in the baseline and has stopped writing (silence), or
when the root is far slower than the baseline of its *request type*: the excess over
``median + 3 MAD`` must also exceed a floor in natural units (`LATENCY_FLOOR_MS`, and half
the median), so flat baselines do not turn jitter into anomalies. The request type is the
root operation and the first operation of another service in the trace (the endpoint a
gateway routes the request to: one gateway operation often fronts requests that take
60 ms and others that take 600 ms); a type with fewer than `KIND_MIN_BASELINE` baseline
roots has its spread floored by the typical relative spread of all roots, and a type
absent from the baseline falls back to its root operation's baseline. Selection is
telemetry-only: no label or inject time is read.

Up to `max_requests` are picked, diverse in error signature (the most novel error
template of the trace, or "slow") and request type, in tiers (`_diverse`). When nothing
is anomalous, the requests slowest relative to their baseline are taken, and the reason
says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracehound.rclagent.context import (
    ANY_OPERATION,
    NS_PER_MS,
    UNLINKED_SHARE,
    WARN_SHARE,
    IncidentContext,
    near_lines_sql,
    novelty_cte,
    novelty_params,
    rows,
    unlinked_margin,
    wide_silence,
)
from tracehound.store import TelemetryStore

#: A root is slow only if it exceeds its baseline by at least this many milliseconds.
LATENCY_FLOOR_MS = 20.0
#: Requests scoring below this share of the most anomalous one, and below
#: `DIVERSE_TIER_CAP`, wait for the slots the others leave (see `_diverse`). The cap keeps
#: slow requests (latency scores at most 1) in the first tier next to failing ones
#: (2 and more), and faint but genuine ones (a newly frequent warning scores about 0.25)
#: in it too: 0.1 is a root 11 ms beyond its bound, or a tenth of a novel error line.
DIVERSE_TIER = 0.3
DIVERSE_TIER_CAP = 0.1
#: Baseline roots a request type needs before its own spread is trusted; with fewer, the
#: spread is at least the typical relative spread of all baseline roots times its median.
KIND_MIN_BASELINE = 5


@dataclass(frozen=True, slots=True)
class SelectedRequest:
    """A request chosen for investigation, and why."""

    trace_id: str
    span_id: str
    operation: str
    score: float
    signature: str
    reason: str


def select_requests(
    store: TelemetryStore,
    ctx: IncidentContext,
    max_requests: int,
    sample: TelemetryStore | None = None,
) -> list[SelectedRequest]:
    """The anomalous requests of the incident window, at most `max_requests`, diverse.

    Every request of the window is scored; the incident-wide silences it weighs are
    found in `sample` when one is given (`rclagent.sample`)."""
    candidates = _scored_roots(store, ctx, max(1, max_requests), sample)
    anomalous = [c for c in candidates if c.score > 0]
    if not anomalous:
        fallback = sorted(candidates, key=lambda c: (-c.signature_excess, c.trace_id))
        return [c.as_selected(fallback=True) for c in fallback[: max(1, max_requests)]]
    return [c.as_selected(fallback=False) for c in _diverse(anomalous, max_requests)]


@dataclass(frozen=True, slots=True)
class _Root:
    trace_id: str
    span_id: str
    operation: str
    kind: str
    duration_ms: float
    excess_ms: float
    error_spans: int
    log_weight: float
    silence: float
    signature: str
    signature_excess: float

    @property
    def score(self) -> float:
        latency = self.excess_ms / (self.excess_ms + 100.0) if self.excess_ms > 0 else 0.0
        silence = min(self.silence, 2.0)
        return 2.0 * min(self.error_spans, 1) + min(self.log_weight, 3.0) + silence + latency

    def as_selected(self, *, fallback: bool) -> SelectedRequest:
        parts = []
        if self.error_spans:
            parts.append(f"{self.error_spans} span(s) with error status")
        if self.log_weight > 0:
            parts.append(f"novel warning/error logs (weight {self.log_weight:.2f})")
        if self.silence > 0:
            parts.append(f"usual log lines missing (weight {self.silence:.2f})")
        if self.excess_ms > 0:
            parts.append(
                f"root {self.excess_ms:.0f} ms above the baseline of its type ({self.kind})"
            )
        if fallback:
            parts = [
                f"no anomalous request; slowest relative to baseline "
                f"({self.duration_ms:.0f} ms, {self.signature_excess:+.0f} ms vs median)"
            ]
        return SelectedRequest(
            trace_id=self.trace_id,
            span_id=self.span_id,
            operation=self.operation,
            score=self.score,
            signature=self.signature,
            reason="; ".join(parts),
        )


def _scored_roots(
    store: TelemetryStore,
    ctx: IncidentContext,
    limit: int | None = None,
    sample: TelemetryStore | None = None,
) -> list[_Root]:
    """The root spans of the window with their error and latency evidence (one query):
    every one, or with a `limit` those that selection could pick.

    Every root is scored in SQL (`_Root.score`); with a `limit`, only those that
    `_diverse` could take are returned (`_PRUNED_SQL`), so that the rows brought into
    Python do not follow the window's traffic."""
    w, b = ctx.window, ctx.baseline
    margin = unlinked_margin(store, ctx) if ctx.use_logs else None
    # lines without a trace id count for the window's requests with a span of their
    # instance running when they were written (`NEAR_LOG_MS`), at `UNLINKED_SHARE`
    near_sql = (
        f"""
          UNION ALL
          SELECT DISTINCT trace_id, lid, service, level, tpl, {UNLINKED_SHARE}
          FROM ({near_lines_sql("SELECT trace_id FROM r", margin)})"""
        if margin is not None
        else ""
    )
    log_cte = (
        f"""{novelty_cte("nov")},
        tl AS (
          SELECT l.trace_id,
                 sum(nov.novelty * l.share
                     * CASE WHEN l.level = 'error' THEN 1.0 ELSE {WARN_SHARE} END) AS w,
                 first(l.service || ': ' || l.tpl
                       ORDER BY nov.novelty * l.share DESC, l.service || ': ' || l.tpl) AS sig
          FROM (SELECT trace_id, NULL::BIGINT AS lid, service, lvl AS level, tpl, 1.0 AS share
                FROM logs WHERE trace_id IN (SELECT trace_id FROM r){near_sql}) l
          JOIN nov USING (service, tpl)
          WHERE l.level <> 'info' AND nov.novelty > 0
          GROUP BY l.trace_id),"""
        if ctx.use_logs
        else "tl AS (SELECT NULL::VARCHAR AS trace_id, 0.0 AS w, NULL::VARCHAR AS sig),"
    )
    silenced = wide_silence(sample or store, ctx)
    silence_sql = (
        f"""d AS (SELECT unnest(?) AS instance, unnest(?) AS operation, unnest(?) AS tpl,
                         unnest(?) AS strength),
        ssp AS (SELECT trace_id, sk, instance, operation FROM spans
                WHERE trace_id IN (SELECT trace_id FROM r)
                  AND ((instance, operation) IN (SELECT instance, operation FROM d)
                       OR instance IN (SELECT instance FROM d WHERE operation = ?))),
        sbl AS (SELECT DISTINCT sk, tpl FROM logs
                WHERE span_id IS NOT NULL AND sk IN (SELECT sk FROM ssp) AND lvl = 'info'),
        sj AS (  -- silent templates per span; without trace ids once per instance
          SELECT s.trace_id, s.instance, d.tpl, d.strength
          FROM ssp s JOIN d USING (instance, operation)
          LEFT JOIN sbl bl ON bl.sk = s.sk AND bl.tpl = d.tpl
          WHERE bl.tpl IS NULL
          UNION ALL
          SELECT DISTINCT s.trace_id, s.instance, d.tpl, d.strength * {UNLINKED_SHARE}
          FROM ssp s JOIN d ON d.instance = s.instance AND d.operation = ?),
        ts AS (
          SELECT trace_id, sum(strength) AS silence,
                 first(instance || ': silent ' || tpl
                       ORDER BY strength DESC, instance || ': silent ' || tpl) AS sig
          FROM sj GROUP BY trace_id),"""
        if silenced
        else "ts AS (SELECT NULL::VARCHAR AS trace_id, 0.0 AS silence, NULL::VARCHAR AS sig),"
    )
    params: list[object] = [w.start_ns, w.end_ns]
    params += novelty_params(store, ctx) if ctx.use_logs else []
    if silenced:
        params += [list(column) for column in zip(*silenced, strict=True)]
        params += [ANY_OPERATION, ANY_OPERATION]
    params += [b.start_ns, b.end_ns]
    found = rows(
        store,
        f"""
        WITH r AS (SELECT trace_id, span_id, service, operation, duration_ns / {NS_PER_MS} AS d
                   FROM spans WHERE parent_span_id IS NULL AND start_ns >= ? AND start_ns < ?),
        {log_cte}
        {silence_sql}
        rb0 AS (SELECT trace_id, service, operation, duration_ns / {NS_PER_MS} AS d FROM spans
                WHERE parent_span_id IS NULL AND start_ns >= ? AND start_ns < ?),
        ra AS (SELECT trace_id, service FROM r UNION ALL SELECT trace_id, service FROM rb0),
        en AS (SELECT s.trace_id, first(s.operation ORDER BY s.start_ns, s.operation) AS entry
               FROM spans s JOIN ra USING (trace_id)
               WHERE s.service IS DISTINCT FROM ra.service GROUP BY s.trace_id),
        rk AS (SELECT rb0.*, rb0.operation || ' > ' || coalesce(en.entry, '') AS kind
               FROM rb0 LEFT JOIN en USING (trace_id)),
        rbm AS (SELECT operation, median(d) AS md FROM rk GROUP BY operation),
        rb AS (SELECT operation, any_value(md) AS md, median(abs(d - md)) AS mad
               FROM rk JOIN rbm USING (operation) GROUP BY operation),
        rkm AS (SELECT kind, median(d) AS md FROM rk GROUP BY kind),
        rkd AS (SELECT kind, d, md, abs(d - md) AS dev FROM rk JOIN rkm USING (kind)),
        pool AS (SELECT coalesce(median(dev / md) FILTER (WHERE md > 0), 0) AS rel FROM rkd),
        rkb AS (SELECT kind, any_value(md) AS md,
                       CASE WHEN count(*) >= ? THEN median(dev)
                            ELSE greatest(median(dev), any_value(pool.rel) * any_value(md))
                       END AS mad
                FROM rkd, pool GROUP BY kind),
        te AS (SELECT trace_id, count(*) AS n FROM spans
               WHERE status = 'error' AND trace_id IN (SELECT trace_id FROM r) GROUP BY trace_id),
        rr AS (SELECT r.*, r.operation || ' > ' || coalesce(en.entry, '') AS kind
               FROM r LEFT JOIN en USING (trace_id)),
        rx AS (SELECT rr.*, coalesce(rkb.md, rb.md, rr.d) AS md,
                      CASE WHEN rkb.kind IS NOT NULL THEN rkb.mad ELSE coalesce(rb.mad, 0) END
                        AS mad
               FROM rr LEFT JOIN rkb USING (kind) LEFT JOIN rb USING (operation)),
        sx AS (
          SELECT rx.trace_id, rx.span_id, rx.operation, rx.kind, rx.d,
                 rx.d - rx.md AS vs_median,
                 greatest(0.0, rx.d - greatest(rx.md + 3 * 1.4826 * rx.mad, 1.5 * rx.md,
                                               rx.md + ?)) AS excess,
                 coalesce(te.n, 0) AS n_err, coalesce(tl.w, 0.0) AS w,
                 coalesce(ts.silence, 0.0) AS silence, coalesce(tl.sig, ts.sig) AS sig
          FROM rx LEFT JOIN te USING (trace_id)
          LEFT JOIN tl USING (trace_id) LEFT JOIN ts USING (trace_id)),
        sc AS (  -- `_Root.score` and `_Root.signature`, in the same order of operations
          SELECT *,
                 2.0 * least(n_err, 1) + least(w, 3.0) + least(silence, 2.0)
                   + CASE WHEN excess > 0 THEN excess / (excess + 100.0) ELSE 0.0 END AS score,
                 coalesce(nullif(sig, ''), CASE WHEN n_err > 0 THEN 'error status'
                                                WHEN excess > 0 THEN 'slow' ELSE '' END)
                   AS signature
          FROM sx)
        {_PRUNED_SQL if limit is not None else "SELECT * FROM sc"}
        ORDER BY trace_id
        """,
        [
            *params,
            KIND_MIN_BASELINE,
            LATENCY_FLOOR_MS,
            *([DIVERSE_TIER, DIVERSE_TIER_CAP, limit, limit] if limit is not None else []),
        ],
    )
    roots = []
    for r in found:
        excess = float(r["excess"])
        signature = r["signature"]
        roots.append(
            _Root(
                trace_id=r["trace_id"],
                span_id=r["span_id"],
                operation=r["operation"],
                kind=r["kind"],
                duration_ms=float(r["d"]),
                excess_ms=excess,
                error_spans=int(r["n_err"]),
                log_weight=float(r["w"]),
                silence=float(r["silence"]),
                signature=signature,
                signature_excess=float(r["vs_median"]),
            )
        )
    return roots


#: The end of `_scored_roots`' query with a limit: of the scored roots (`sc`), the
#: `limit` best of each tier, signature and request type (`_diverse`'s round-robin
#: takes at most `limit` from one of them, best first), or when no root is anomalous
#: the `limit` slowest relative to their baseline. Parameters: `DIVERSE_TIER`,
#: `DIVERSE_TIER_CAP`, the limit twice.
_PRUNED_SQL = """,
cut AS (SELECT least(? * max(score), ?) AS cut FROM sc WHERE score > 0),
ranked AS (
  SELECT sc.*,
         row_number() OVER (PARTITION BY sc.score >= cut.cut, signature, kind
                            ORDER BY score DESC, trace_id) AS in_kind,
         NULL AS slowest
  FROM sc, cut WHERE sc.score > 0
  UNION ALL
  SELECT sc.*, NULL, row_number() OVER (ORDER BY vs_median DESC, trace_id)
  FROM sc WHERE NOT EXISTS (SELECT 1 FROM sc WHERE score > 0))
SELECT * FROM ranked WHERE in_kind <= ? OR slowest <= ?"""


def _diverse(roots: list[_Root], limit: int) -> list[_Root]:
    """Round-robin over signatures (what a request's strongest evidence says), and within
    a signature over request types, each best first; requests scoring below
    `DIVERSE_TIER` of the best and below `DIVERSE_TIER_CAP` only fill the slots the
    others leave.

    A signature met under many request types (a silence or an error deep in a shared
    service) takes one slot per round, like any other, so one explanation, perhaps a
    chance one, cannot fill every slot while other evidence waits; and a faint one (a
    warning a little more frequent than usual) cannot take a slot from a request many
    times more anomalous.
    """
    if not roots:
        return []
    cut = min(DIVERSE_TIER * max(r.score for r in roots), DIVERSE_TIER_CAP)
    strong = _turns([r for r in roots if r.score >= cut], limit)
    return strong + _turns([r for r in roots if r.score < cut], limit - len(strong))


def _turns(roots: list[_Root], limit: int) -> list[_Root]:
    """The round-robin of `_diverse` within one tier."""
    by_signature: dict[str, dict[str, list[_Root]]] = {}
    for root in sorted(roots, key=lambda r: (-r.score, r.trace_id)):
        by_signature.setdefault(root.signature, {}).setdefault(root.kind, []).append(root)
    groups = [_round_robin(list(ops.values()), len(roots)) for ops in by_signature.values()]
    order = sorted(groups, key=lambda g: (-g[0].score, g[0].trace_id))
    return _round_robin(order, limit)


def _round_robin(groups: list[list[_Root]], limit: int) -> list[_Root]:
    """The first of each group in order, then the second of each, ..., up to `limit`."""
    picked: list[_Root] = []
    depth = 0
    while len(picked) < limit and any(depth < len(g) for g in groups):
        for group in groups:
            if depth < len(group) and len(picked) < limit:
                picked.append(group[depth])
        depth += 1
    return picked
