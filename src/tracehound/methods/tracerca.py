"""`tracerca`: invocation anomalies, suspicious-set mining and a propagation heuristic.

After Zeyan Li, Junjie Chen, Rui Jiao, Nengwen Zhao, Zhijun Wang, Shuwei Zhang, Yanjun Wu,
Long Jiang, Leiqin Yan, Zikai Wang, Zhekang Chen, Wenchi Zhang, Xiaohui Nie, Kaixin Sui,
Dan Pei. *Practical Root Cause Localization for Microservice Systems via Trace Analysis.*
IWQoS 2021, https://doi.org/10.1109/IWQOS52092.2021.9521340 (authors' code:
github.com/NetManAIOps/TraceRCA; its defaults SIGMA=1, FISHER=3, SUPPORT=0.1 are ours).

Steps:

1. **Invocation anomaly detection.** An invocation is a span with its caller: key
   (caller service, callee service, operation); a root's caller is the outside world.
   Features: latency (ms) and error status (1 for `error`). Per key and feature the
   normal window gives mean and std. *Feature selection* keeps a feature of a key only
   when it changed: the mean |x-mean|/std over the incident window exceeds the same over
   the normal window by more than `fisher` times it plus 1 (the code's stderr
   criterion). An invocation is anomalous when a kept feature is more than `sigma` stds
   from its mean. A trace is anomalous when one of its invocations is.
2. **Suspicious set mining.** Each trace is a transaction whose items are the services
   (or instances) it touches. For an item X, support = P(X | anomalous trace) and
   confidence = P(anomalous | X in trace); items with support below `min_support` are
   not frequent. The pattern score is their Jaccard combination
   1 / (1/support + 1/confidence - 1).
3. **Propagation.** Anomalies travel upstream, so blame moves to the deepest anomalous
   item: `in` counts anomalous traces where X receives an anomalous invocation, `out`
   those where X makes one, and X's score is Jaccard · max(in - out, 0). An outgoing
   anomalous call does not count against X when X's own calling span has anomalous
   self-time (duration minus children, against its (service, operation) baseline, same
   selection and threshold): the parent's unexplained time keeps the blame on it.
   Items rank by that score, then by Jaccard, then by name; services and instances are
   mined separately.

Deviations from the paper and its code:
- Features are latency and error status only (the released configuration's default,
  `latency` and `http_status`); the paper's extra resource metrics per invocation are
  not in traces. Spans without a status (Nezha) simply never carry the error feature.
- The invocation key adds the callee's operation to (caller, callee) services.
- Std floors: latency std at least `std_floor_ms` and 1% of the mean, error std at
  least 0.1 (the code floors at 0.1 and, for selection, at 1% of the mean + 0.01).
- Without a normal window (or no traces in it), the reference is the incident window
  itself with median and 1.4826·MAD, feature selection is skipped (nothing to compare
  against) and the threshold is `fallback_sigma` instead of `sigma`.
- Only single-item patterns are mined: the released code scores items only through
  single-item patterns; its top-k cut over larger patterns (FP-growth) is dropped, so
  every frequent item is scored.
- `|in - out|` becomes `max(in - out, 0)`: with the absolute value an entry service
  (no caller, so `in` = 0) scores high from its outgoing calls alone, which the code
  avoids by a hard-coded list of forbidden services ("gateway"). No name list here:
  root spans (and orphans) are invocations for trace anomaly only, not for `in`/`out`,
  so an entry service scores 0 and ranks by its Jaccard score among the zeros.
- The self-time exception to moving blame downstream is ours (ARCHITECTURE §4.3).
- Invocations within one item (a service's client span under its own server span) count
  for trace anomaly but not for `in`/`out`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tracehound.methods.base import Method, Tags
from tracehound.methods.trace_common import (
    MAD_TO_STD,
    Scored,
    baseline_window,
    ordered,
    to_candidates,
    windowed_spans_cte,
)
from tracehound.model import Incident, Ranking, Window
from tracehound.store import TelemetryStore

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: Lower bound on support and confidence inside the Jaccard combination (as in the code).
_JACCARD_FLOOR = 1e-4


def jaccard_score(support: float, confidence: float) -> float:
    """1 / (1/support + 1/confidence - 1): the pattern score of the released code."""
    s = max(support, _JACCARD_FLOOR)
    c = max(confidence, _JACCARD_FLOOR)
    return 1.0 / (1.0 / s + 1.0 / c - 1.0)


class TraceRCAMethod(Method):
    """TraceRCA (Li et al., IWQoS 2021): anomalous-invocation mining over traces."""

    name = "tracerca"
    tags = Tags(modalities=frozenset({"traces"}), deterministic=True)

    def __init__(
        self,
        *,
        sigma: float = 1.0,
        fisher: float = 3.0,
        min_support: float = 0.1,
        fallback_sigma: float = 3.0,
        std_floor_ms: float = 0.1,
    ) -> None:
        self.sigma = sigma
        self.fisher = fisher
        self.min_support = min_support
        self.fallback_sigma = fallback_sigma
        self.std_floor_ms = std_floor_ms

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        self.check_inputs(incident, store)
        baseline = baseline_window(incident, store)
        spans = _flag_spans(
            store,
            incident.window,
            baseline,
            sigma=self.sigma if baseline is not None else self.fallback_sigma,
            fisher=self.fisher,
            floor_ms=self.std_floor_ms,
        )
        if spans.num_rows == 0:
            return Ranking()
        flags = _Flags.of(spans)
        services = _rank_items(
            flags, spans.column("service"), spans.column("parent_service"), self.min_support
        )
        instances = _rank_items(
            flags, spans.column("instance"), spans.column("parent_instance"), self.min_support
        )
        return Ranking(
            services=to_candidates("service", services),
            instances=to_candidates("instance", [i for i in instances if i.name]),
        )


# --------------------------------------------------------------------------- step 1


def _reference_defs(robust: bool, floor_ms: float) -> str:
    """CTE definitions `ref` (per invocation key) and `sref` (per operation, self-time)."""
    floor = float(floor_ms)
    if not robust:
        return f"""
        ref AS (
          SELECT caller, service, operation, avg(lat) AS lat_mu,
                 greatest(coalesce(stddev_pop(lat), 0), {floor}, 0.01 * avg(lat)) AS lat_sd,
                 avg(err) AS err_mu, greatest(coalesce(stddev_pop(err), 0), 0.1) AS err_sd
          FROM bx GROUP BY caller, service, operation),
        sref AS (
          SELECT service, operation, avg(slf) AS slf_mu,
                 greatest(coalesce(stddev_pop(slf), 0), {floor}, 0.01 * avg(slf)) AS slf_sd
          FROM bx GROUP BY service, operation)"""
    return f"""
        refm AS (
          SELECT caller, service, operation, median(lat) AS lat_mu, median(err) AS err_mu
          FROM bx GROUP BY caller, service, operation),
        ref AS (
          SELECT caller, service, operation, any_value(lat_mu) AS lat_mu,
                 greatest({MAD_TO_STD} * median(abs(lat - lat_mu)), {floor},
                          0.01 * any_value(lat_mu)) AS lat_sd,
                 any_value(err_mu) AS err_mu,
                 greatest({MAD_TO_STD} * median(abs(err - err_mu)), 0.1) AS err_sd
          FROM bx JOIN refm USING (caller, service, operation)
          GROUP BY caller, service, operation),
        srefm AS (
          SELECT service, operation, median(slf) AS slf_mu FROM bx GROUP BY service, operation),
        sref AS (
          SELECT service, operation, any_value(slf_mu) AS slf_mu,
                 greatest({MAD_TO_STD} * median(abs(slf - slf_mu)), {floor},
                          0.01 * any_value(slf_mu)) AS slf_sd
          FROM bx JOIN srefm USING (service, operation) GROUP BY service, operation)"""


def _selection_defs(robust: bool, fisher: float) -> str:
    """CTE definitions `use` and `suse`: which features changed (the stderr criterion)."""
    if robust:
        return """
        use AS (SELECT caller, service, operation, true AS use_lat, true AS use_err FROM ref),
        suse AS (SELECT service, operation, true AS use_slf FROM sref)"""
    f = float(fisher)
    return f"""
        rr AS (
          SELECT caller, service, operation, avg(abs(lat - lat_mu) / lat_sd) AS lat_r,
                 avg(abs(err - err_mu) / err_sd) AS err_r
          FROM bx JOIN ref USING (caller, service, operation) GROUP BY ALL),
        er AS (
          SELECT caller, service, operation, avg(abs(lat - lat_mu) / lat_sd) AS lat_r,
                 avg(abs(err - err_mu) / err_sd) AS err_r
          FROM ix JOIN ref USING (caller, service, operation) GROUP BY ALL),
        use AS (
          SELECT caller, service, operation,
                 er.lat_r - rr.lat_r > {f} * rr.lat_r + 1 AS use_lat,
                 er.err_r - rr.err_r > {f} * rr.err_r + 1 AS use_err
          FROM rr JOIN er USING (caller, service, operation)),
        srr AS (
          SELECT service, operation, avg(abs(slf - slf_mu) / slf_sd) AS slf_r
          FROM bx JOIN sref USING (service, operation) GROUP BY ALL),
        ser AS (
          SELECT service, operation, avg(abs(slf - slf_mu) / slf_sd) AS slf_r
          FROM ix JOIN sref USING (service, operation) GROUP BY ALL),
        suse AS (
          SELECT service, operation, ser.slf_r - srr.slf_r > {f} * srr.slf_r + 1 AS use_slf
          FROM srr JOIN ser USING (service, operation))"""


_FEATURES = """
    SELECT *, coalesce(parent_service, '') AS caller, duration_ns / 1e6 AS lat,
           CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END AS err, self_ns / 1e6 AS slf
    FROM {source}"""


def _flag_spans(
    store: TelemetryStore,
    window: Window,
    baseline: Window | None,
    *,
    sigma: float,
    fisher: float,
    floor_ms: float,
) -> pa.Table:
    """Incident-window spans with `abnormal` (invocation) and `self_anom` flags (step 1)."""
    robust = baseline is None
    reference = window if baseline is None else baseline
    k = float(sigma)
    sql = f"""
    WITH {windowed_spans_cte("bw")}, {windowed_spans_cte("iw")},
    bx AS ({_FEATURES.format(source="bw")}),
    ix AS ({_FEATURES.format(source="iw")}),
    {_reference_defs(robust, floor_ms)},
    {_selection_defs(robust, fisher)},
    flagged AS (
      SELECT ix.trace_id, ix.span_id, ix.parent_span_id, ix.service, ix.instance,
             ix.parent_service, ix.parent_instance,
             coalesce((use.use_lat AND abs(ix.lat - ref.lat_mu) > {k} * ref.lat_sd)
                      OR (use.use_err AND abs(ix.err - ref.err_mu) > {k} * ref.err_sd),
                      false) AS abnormal,
             coalesce(suse.use_slf AND ix.slf - sref.slf_mu > {k} * sref.slf_sd, false)
               AS self_anom
      FROM ix
      LEFT JOIN ref USING (caller, service, operation)
      LEFT JOIN use USING (caller, service, operation)
      LEFT JOIN sref USING (service, operation)
      LEFT JOIN suse USING (service, operation))
    SELECT c.trace_id, c.service, c.instance, c.parent_service, c.parent_instance,
           c.abnormal, coalesce(p.self_anom, false) AS parent_self_anom
    FROM flagged c
    LEFT JOIN flagged p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
    ORDER BY c.trace_id, c.span_id
    """
    params = [reference.start_ns, reference.end_ns, window.start_ns, window.end_ns]
    return store.query(sql, params)


# --------------------------------------------------------------------------- steps 2-3


@dataclass(frozen=True)
class _Flags:
    """Per incident span: trace index, anomalous invocation, parent's self-time anomaly."""

    trace: IntArray
    abnormal: BoolArray
    parent_self_anom: BoolArray
    trace_abnormal: BoolArray  # per trace index

    @classmethod
    def of(cls, spans: pa.Table) -> _Flags:
        ids = np.asarray(spans.column("trace_id").to_pylist(), dtype=object)
        _, trace = np.unique(ids, return_inverse=True)
        trace = np.asarray(trace, dtype=np.int64).reshape(-1)
        abnormal = np.asarray(spans.column("abnormal").to_pylist(), dtype=bool)
        per_trace = np.zeros(int(trace.max()) + 1, dtype=bool)
        np.logical_or.at(per_trace, trace, abnormal)
        return cls(
            trace=trace,
            abnormal=abnormal,
            parent_self_anom=np.asarray(spans.column("parent_self_anom").to_pylist(), dtype=bool),
            trace_abnormal=per_trace,
        )


def _distinct_count(trace: IntArray, item: IntArray, n_items: int) -> IntArray:
    """Per item, the number of distinct traces among the (trace, item) pairs."""
    if trace.size == 0:
        return np.zeros(n_items, dtype=np.int64)
    pairs = np.unique(np.stack([trace, item]), axis=1)
    return np.bincount(pairs[1], minlength=n_items).astype(np.int64)


def _rank_items(
    flags: _Flags, own: pa.ChunkedArray, parent: pa.ChunkedArray, min_support: float
) -> list[Scored]:
    """Score every item (service or instance) of the incident's traces (steps 2 and 3)."""
    own_names = np.asarray(own.to_pylist(), dtype=object)
    parent_list = parent.to_pylist()
    has_parent = np.asarray([p is not None for p in parent_list], dtype=bool)
    parent_names = np.asarray(["" if p is None else p for p in parent_list], dtype=object)
    names, codes = np.unique(np.concatenate([own_names, parent_names]), return_inverse=True)
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    n = own_names.size
    item, parent_item = codes[:n], codes[n:]
    k = names.size
    trace = flags.trace
    in_trace_abnormal = flags.trace_abnormal[trace]
    contains = _distinct_count(trace, item, k)
    abnormal_contains = _distinct_count(trace[in_trace_abnormal], item[in_trace_abnormal], k)
    into = flags.abnormal & has_parent & (parent_item != item)
    onward = flags.abnormal & has_parent & (parent_item != item) & ~flags.parent_self_anom
    in_count = _distinct_count(trace[into], item[into], k)
    out_count = _distinct_count(trace[onward], parent_item[onward], k)
    n_abnormal = int(flags.trace_abnormal.sum())
    scored: list[Scored] = []
    for i in np.unique(item).tolist():
        support = abnormal_contains[i] / n_abnormal if n_abnormal else 0.0
        confidence = abnormal_contains[i] / contains[i] if contains[i] else 0.0
        pattern = jaccard_score(support, confidence) if n_abnormal else 0.0
        frequent = n_abnormal > 0 and support >= min_support
        diff = max(int(in_count[i]) - int(out_count[i]), 0)
        score = pattern * diff if frequent else 0.0
        reason = (
            f"Jaccard {pattern:.2f} (support {support:.2f}, confidence {confidence:.2f}"
            f"{'' if frequent else ', below min support'}): anomalous calls into it in "
            f"{int(in_count[i])} traces, onward anomalous calls in {int(out_count[i])}; "
            f"{n_abnormal} of {flags.trace_abnormal.size} traces anomalous"
        )
        scored.append(Scored(name=str(names[i]), score=score, reason=reason, tiebreak=pattern))
    return ordered(scored)
