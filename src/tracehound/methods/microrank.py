"""`microrank`: PageRank-weighted spectrum analysis of anomalous against normal traces.

After Guangba Yu, Pengfei Chen, Hongyang Chen, Zijie Guan, Zicheng Huang, Linxiao Jing,
Tianjun Weng, Xinmeng Sun, Xiaoyun Li. *MicroRank: End-to-End Latency Issue Localization
with Extended Spectrum Analysis in Microservice Environments.* WWW 2021, pp. 3087-3098,
https://doi.org/10.1145/3442381.3449905 (authors' code: github.com/IntelligentDDS/MicroRank).

Steps, as in the paper:

1. **Trace anomaly detection.** Each operation's expected latency is its mean plus
   `sigma_k` standard deviations of *self-time* over normal data; a trace whose real
   latency (its longest span) exceeds the sum of the expected latencies of its spans is
   anomalous, the others are normal. Statistics come from the normal window when the
   incident has one with traces; else from the incident window itself, robustly (median
   and 1.4826·MAD), so that the faulty traces do not inflate their own baseline.
2. **Graphs.** For the anomalous and for the normal traces separately: operation nodes
   (an operation on one instance of a service), call edges between them, trace nodes,
   and coverage edges between a trace and the operations it passes through.
3. **Personalized PageRank** on each graph (the paper's two-part update, as one block
   matrix): operations receive rank from the traces covering them and, weighted by
   `omega`, from their callers; traces receive rank from their operations and from the
   preference vector. The preference favours rare trace kinds (kind = the set of
   operations a trace covers): 1/(traces of its kind), normalised, for normal traces;
   for anomalous ones the mean of that and of 1/(operations it covers), normalised,
   since short anomalous traces point more sharply at the culprit.
4. **Extended spectrum analysis.** Each operation's spectrum counts are weighted by its
   PageRank score (scaled to max 1): ef = θa·(anomalous traces covering it),
   nf = θa·(anomalous traces not covering it), ep/np likewise with θn over normal traces.
   The suspiciousness is DStar2 = ef²/(ep + nf) by default, the formula of the authors'
   released code; Ochiai and others are available through `spectrum`.
5. **Ranking.** Operations by suspiciousness (ties by name); services and instances by
   the first operation of theirs in that order.

Deviations from the paper and its code:
- Self-time (duration minus children) per operation, not raw span duration: a trace's
  expected latency sums over its spans, which only adds up without double counting when
  each span contributes its own time. Parallel children can push self-time below zero;
  it is floored at 0.
- Without a normal window the statistics are the incident window's median and
  1.4826·MAD (the paper always has a normal period); operations never seen in the
  baseline contribute nothing to the expected latency (as in the authors' code).
- No system-level trigger: the method runs because an incident was declared. When no
  trace exceeds its expectation, the `fallback_share` of traces with the highest
  real/expected ratio (at least one) are taken as anomalous, so a ranking still exists.
  When every incident trace is anomalous, the baseline window's traces are the normal set.
- PageRank is solved by bounded power iteration (`max_iter`, tolerance 1e-10) of
  x = d·A·x + (1-d)·u on the block matrix, not the released code's 25 fixed iterations
  with per-block max-normalisation; scores are then scaled to max 1 as in the code.
- Spectrum entries missing on one side (an operation seen only in anomalous, or only in
  normal traces) get 1e-7, as in the released code; every denominator also gets 1e-7
  so scores stay finite.
- Operation nodes are (service, instance, operation) so the ranking resolves instances;
  the released code keys by service and operation name only.
- Kind, status and span kinds are not used (latency only, as in the paper), so spans
  without kind or status (Nezha) need no special handling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tracehound.errors import BadInput
from tracehound.methods.base import Method, Tags
from tracehound.methods.trace_common import (
    MAD_TO_STD,
    Scored,
    baseline_window,
    first_occurrence,
    ordered,
    to_candidates,
    windowed_spans_cte,
)
from tracehound.model import Incident, Ranking, Window
from tracehound.store import TelemetryStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Stand-in for a spectrum entry that does not exist (authors' code uses the same value).
EPSILON = 1e-7


def dstar2(ef: float, ep: float, nf: float, np_: float) -> float:
    """DStar with star 2: ef² / (ep + nf)."""
    return ef * ef / (ep + nf + EPSILON)


def ochiai(ef: float, ep: float, nf: float, np_: float) -> float:
    """Ochiai: ef / sqrt((ef + ep)(ef + nf))."""
    return ef / (math.sqrt((ef + ep) * (ef + nf)) + EPSILON)


def jaccard(ef: float, ep: float, nf: float, np_: float) -> float:
    """Jaccard: ef / (ef + ep + nf)."""
    return ef / (ef + ep + nf + EPSILON)


def tarantula(ef: float, ep: float, nf: float, np_: float) -> float:
    """Tarantula: failed ratio over the sum of failed and passed ratios."""
    failed = ef / (ef + nf + EPSILON)
    passed = ep / (ep + np_ + EPSILON)
    return failed / (failed + passed + EPSILON)


SPECTRUM_FORMULAS: dict[str, Callable[[float, float, float, float], float]] = {
    "dstar2": dstar2,
    "ochiai": ochiai,
    "jaccard": jaccard,
    "tarantula": tarantula,
}
_FORMULA_LABEL = {"dstar2": "DStar2", "ochiai": "Ochiai", "jaccard": "Jaccard"}


def personalized_pagerank(
    rows: IntArray,
    cols: IntArray,
    weights: FloatArray,
    preference: FloatArray,
    *,
    damping: float = 0.85,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> FloatArray:
    """Solve x = d·M·x + (1-d)·u by power iteration, M given sparsely (M[rows, cols]).

    Stops after `max_iter` steps or when no entry moves more than `tol`.
    """
    n = preference.shape[0]
    x = preference.copy()
    for _ in range(max_iter):
        spread = np.bincount(rows, weights=weights * x[cols], minlength=n)
        updated = damping * spread + (1.0 - damping) * preference
        if float(np.max(np.abs(updated - x), initial=0.0)) <= tol:
            return updated
        x = updated
    return x


@dataclass(frozen=True)
class _Graph:
    """One side (anomalous or normal): PageRank weight and trace coverage per node."""

    weight: FloatArray  # θ per global node index (0 when absent), max 1
    covered: FloatArray  # traces of this side covering each global node
    traces: int


def _side_graph(
    n_nodes: int,
    member_trace: IntArray,
    member_node: IntArray,
    edge_parent: IntArray,
    edge_child: IntArray,
    trace_kind: IntArray,
    anomalous: bool,
    *,
    omega: float,
    damping: float,
    max_iter: int,
) -> _Graph:
    """PageRank over one side's traces; `member_*` pairs are distinct (trace, node)."""
    if member_trace.size == 0:
        return _Graph(np.zeros(n_nodes), np.zeros(n_nodes), 0)
    traces, t_local = np.unique(member_trace, return_inverse=True)
    nodes, n_local = np.unique(member_node, return_inverse=True)
    m, k = traces.size, nodes.size
    ops_per_trace = np.bincount(t_local, minlength=m).astype(np.float64)
    traces_per_node = np.bincount(n_local, minlength=k).astype(np.float64)
    # coverage: operation <- trace (1/|ops of trace|), trace <- operation (1/|traces of op|)
    rows = [n_local, k + t_local]
    cols = [k + t_local, n_local]
    weights = [1.0 / ops_per_trace[t_local], 1.0 / traces_per_node[n_local]]
    # calls: child <- parent, 1/out-degree, scaled by omega
    position = np.full(n_nodes, -1, dtype=np.int64)
    position[nodes] = np.arange(k)
    parent, child = position[edge_parent], position[edge_child]
    keep = (parent >= 0) & (child >= 0)
    parent, child = parent[keep], child[keep]
    if parent.size:
        out_degree = np.bincount(parent, minlength=k).astype(np.float64)
        rows.append(child)
        cols.append(parent)
        weights.append(omega / out_degree[parent])
    preference = np.zeros(k + m)
    preference[k:] = _trace_preference(trace_kind[traces], ops_per_trace, anomalous)
    scores = personalized_pagerank(
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(weights),
        preference,
        damping=damping,
        max_iter=max_iter,
    )[:k]
    top = float(scores.max(initial=0.0))
    weight = np.zeros(n_nodes)
    covered = np.zeros(n_nodes)
    weight[nodes] = scores / top if top > 0 else 0.0
    covered[nodes] = traces_per_node
    return _Graph(weight, covered, m)


def _trace_preference(kinds: IntArray, ops_per_trace: FloatArray, anomalous: bool) -> FloatArray:
    """The paper's preference vector over traces: rare kinds (and short anomalous traces)."""
    _, kind_index, kind_counts = np.unique(kinds, return_inverse=True, return_counts=True)
    rarity = 1.0 / kind_counts[kind_index].astype(np.float64)
    rarity /= rarity.sum()
    if not anomalous:
        return rarity
    shortness = 1.0 / ops_per_trace
    shortness /= shortness.sum()
    return 0.5 * shortness + 0.5 * rarity


class MicroRankMethod(Method):
    """MicroRank (Yu et al., WWW 2021): PageRank-weighted spectrum analysis over traces."""

    name = "microrank"
    tags = Tags(modalities=frozenset({"traces"}), deterministic=True)

    def __init__(
        self,
        *,
        sigma_k: float = 1.5,
        spectrum: str = "dstar2",
        damping: float = 0.85,
        omega: float = 0.01,
        max_iter: int = 100,
        fallback_share: float = 0.05,
    ) -> None:
        self.sigma_k = sigma_k
        self.spectrum = spectrum
        self.damping = damping
        self.omega = omega
        self.max_iter = max_iter
        self.fallback_share = fallback_share

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        self.check_inputs(incident, store)
        formula = SPECTRUM_FORMULAS.get(self.spectrum)
        if formula is None:
            raise BadInput(
                f"unknown spectrum formula {self.spectrum!r}",
                expected=f"one of {', '.join(SPECTRUM_FORMULAS)}",
            )
        window = incident.window
        baseline = baseline_window(incident, store)
        labels = _label_traces(store, window, baseline, self.sigma_k, self.fallback_share)
        nodes = _node_table(store, window, labels)
        if not nodes.names:
            return Ranking()
        graphs = [
            _side_graph(
                len(nodes.names),
                nodes.member_trace[nodes.member_side == side],
                nodes.member_node[nodes.member_side == side],
                nodes.edge_parent[nodes.edge_side == side],
                nodes.edge_child[nodes.edge_side == side],
                nodes.trace_kind,
                side == 1,
                omega=self.omega,
                damping=self.damping,
                max_iter=self.max_iter,
            )
            for side in (1, 0)
        ]
        ranked = _spectrum(nodes.names, graphs[0], graphs[1], formula, self.spectrum)
        services = first_occurrence([(nodes.names[i][0], s) for i, s in ranked])
        instances = first_occurrence([(nodes.names[i][1], s) for i, s in ranked])
        return Ranking(
            services=to_candidates("service", services),
            instances=to_candidates("instance", instances),
        )


# --------------------------------------------------------------------------- step 1


def _baseline_defs(baseline: Window | None) -> str:
    """CTE definitions ending in `base`: per (service, operation) self-time mu and sd.

    Over the baseline window: mean and population std (the paper). Without one, over the
    incident window: median and 1.4826·MAD, robust to the faulty traces themselves.
    """
    spans = windowed_spans_cte("bw")
    if baseline is not None:
        return (
            spans
            + """,
        base AS (
          SELECT service, operation, avg(self_ns) AS mu,
                 coalesce(stddev_pop(self_ns), 0) AS sd
          FROM bw GROUP BY service, operation)"""
        )
    return (
        spans
        + f""",
        med AS (SELECT service, operation, median(self_ns) AS mu FROM bw GROUP BY ALL),
        base AS (
          SELECT bw.service, bw.operation, any_value(med.mu) AS mu,
                 {MAD_TO_STD} * median(abs(bw.self_ns - med.mu)) AS sd
          FROM bw JOIN med USING (service, operation) GROUP BY ALL)"""
    )


@dataclass(frozen=True)
class _Labels:
    """Incident-window traces judged anomalous, and where the normal set comes from."""

    anomalous: list[str]
    normal_count: int
    #: the baseline window, when the incident window has no normal trace to compare with
    normal_window: Window | None


def _label_traces(
    store: TelemetryStore,
    window: Window,
    baseline: Window | None,
    sigma_k: float,
    fallback_share: float,
) -> _Labels:
    """Split the incident window's traces by real against expected latency (step 1)."""
    stats = baseline if baseline is not None else window
    sql = f"""
    WITH {_baseline_defs(baseline)}, {windowed_spans_cte("iw")}
    SELECT iw.trace_id, max(iw.duration_ns) AS real_ns,
           sum(coalesce(base.mu + {float(sigma_k)} * base.sd, 0)) AS expected_ns
    FROM iw LEFT JOIN base USING (service, operation)
    GROUP BY iw.trace_id ORDER BY iw.trace_id
    """
    rows = store.query(sql, [stats.start_ns, stats.end_ns, window.start_ns, window.end_ns])
    ids = rows.column("trace_id").to_pylist()
    real = np.asarray(rows.column("real_ns").to_pylist(), dtype=np.float64)
    expected = np.asarray(rows.column("expected_ns").to_pylist(), dtype=np.float64)
    flag = real > expected
    if ids and not flag.any():
        ratio = real / np.maximum(expected, 1.0)
        count = max(1, math.ceil(fallback_share * len(ids)))
        order = np.lexsort((np.arange(len(ids)), -ratio))
        flag[order[:count]] = True
    anomalous = [t for t, f in zip(ids, flag, strict=True) if f]
    normal_count = len(ids) - len(anomalous)
    return _Labels(anomalous, normal_count, baseline if normal_count == 0 else None)


# --------------------------------------------------------------------------- step 2


@dataclass(frozen=True)
class _Nodes:
    """Operation nodes and, per side (1 anomalous, 0 normal), coverage and call edges."""

    names: list[tuple[str, str, str]]  # (service, instance, operation) by node index
    member_trace: IntArray
    member_node: IntArray
    member_side: IntArray
    edge_parent: IntArray
    edge_child: IntArray
    edge_side: IntArray
    trace_kind: IntArray  # per global trace index: id of the set of nodes it covers


def _node_table(store: TelemetryStore, window: Window, labels: _Labels) -> _Nodes:
    """Nodes, distinct (trace, node) coverage and distinct call edges, per side."""
    defs = windowed_spans_cte("iw")
    union = "SELECT *, CASE WHEN trace_id IN (SELECT unnest(?)) THEN 1 ELSE 0 END AS side FROM iw"
    params: list[object] = [window.start_ns, window.end_ns]
    if labels.normal_window is not None:
        defs += ", " + windowed_spans_cte("nw")
        union += " UNION ALL SELECT *, 0 AS side FROM nw"
        params += [labels.normal_window.start_ns, labels.normal_window.end_ns]
    params.append(labels.anomalous)
    sql = f"""
    WITH {defs},
    alls AS ({union}),
    nid AS (
      SELECT service, instance, operation,
             row_number() OVER (ORDER BY service, instance, operation) - 1 AS node
      FROM (SELECT DISTINCT service, instance, operation FROM alls))
    SELECT DISTINCT a.trace_id, a.side, n.node, p.node AS parent_node,
           n.service, n.instance, n.operation
    FROM alls a JOIN nid n USING (service, instance, operation)
    LEFT JOIN nid p ON p.service = a.parent_service AND p.instance = a.parent_instance
                   AND p.operation = a.parent_operation
    ORDER BY a.trace_id, n.node, parent_node NULLS FIRST
    """
    rows = store.query(sql, params)
    node = np.asarray(rows.column("node").to_pylist(), dtype=np.int64)
    n_nodes = int(node.max()) + 1 if node.size else 0
    names: list[tuple[str, str, str]] = [("", "", "")] * n_nodes
    for i, svc, inst, op in zip(
        node.tolist(),
        rows.column("service").to_pylist(),
        rows.column("instance").to_pylist(),
        rows.column("operation").to_pylist(),
        strict=True,
    ):
        names[i] = (svc, inst, op)
    _, trace = np.unique(
        np.asarray(rows.column("trace_id").to_pylist(), dtype=object), return_inverse=True
    )
    trace = trace.astype(np.int64)
    side = np.asarray(rows.column("side").to_pylist(), dtype=np.int64)
    parent_raw = rows.column("parent_node").to_pylist()
    parent = np.asarray([-1 if p is None else p for p in parent_raw], dtype=np.int64)
    pairs = np.unique(np.stack([trace, node, side]), axis=1) if node.size else np.zeros((3, 0))
    has_edge = parent >= 0
    edges = (
        np.unique(np.stack([parent[has_edge], node[has_edge], side[has_edge]]), axis=1)
        if has_edge.any()
        else np.zeros((3, 0), dtype=np.int64)
    )
    return _Nodes(
        names=names,
        member_trace=pairs[0].astype(np.int64),
        member_node=pairs[1].astype(np.int64),
        member_side=pairs[2].astype(np.int64),
        edge_parent=edges[0].astype(np.int64),
        edge_child=edges[1].astype(np.int64),
        edge_side=edges[2].astype(np.int64),
        trace_kind=_trace_kinds(pairs[0].astype(np.int64), pairs[1].astype(np.int64)),
    )


def _trace_kinds(trace: IntArray, node: IntArray) -> IntArray:
    """Per trace, an id shared by exactly the traces covering the same set of nodes.

    Sets are compared by two independent 64-bit random signatures summed over members
    (a collision needs two 64-bit coincidences at once).
    """
    if trace.size == 0:
        return np.zeros(0, dtype=np.int64)
    n_traces = int(trace.max()) + 1
    rng = np.random.default_rng(20210419)
    signature = np.zeros((n_traces, 2), dtype=np.uint64)
    for column in range(2):
        draws = rng.integers(0, 2**63, size=int(node.max()) + 1, dtype=np.uint64)
        np.add.at(signature[:, column], trace, draws[node])
    _, kind = np.unique(signature, axis=0, return_inverse=True)
    return np.asarray(kind, dtype=np.int64).reshape(-1)


# --------------------------------------------------------------------------- step 4


def _spectrum(
    names: list[tuple[str, str, str]],
    anomalous: _Graph,
    normal: _Graph,
    formula: Callable[[float, float, float, float], float],
    label: str,
) -> list[tuple[int, Scored]]:
    """Suspiciousness per node from PageRank-weighted spectrum counts, best first."""
    title = _FORMULA_LABEL.get(label, label.capitalize())
    scored: list[tuple[int, Scored]] = []
    for i, (service, instance, operation) in enumerate(names):
        ef, nf = _weighted(anomalous, i)
        ep, np_ = _weighted(normal, i)
        score = formula(ef, ep, nf, np_)
        reason = (
            f"{title} {score:.3g}: {operation} on {instance or service} in "
            f"{int(anomalous.covered[i])}/{anomalous.traces} anomalous and "
            f"{int(normal.covered[i])}/{normal.traces} normal traces "
            f"(PageRank weight {anomalous.weight[i]:.2f} anomalous, {normal.weight[i]:.2f} normal)"
        )
        key = f"{service}\x1f{instance}\x1f{operation}"
        scored.append((i, Scored(name=key, score=score, reason=reason)))
    order = ordered(s for _, s in scored)
    index = {s.name: i for i, s in scored}
    return [(index[s.name], s) for s in order]


def _weighted(graph: _Graph, node: int) -> tuple[float, float]:
    """(covering, not covering) trace counts weighted by the node's PageRank weight."""
    covered = float(graph.covered[node])
    if covered == 0:
        return EPSILON, EPSILON
    theta = float(graph.weight[node])
    return theta * covered, theta * (graph.traces - covered)
