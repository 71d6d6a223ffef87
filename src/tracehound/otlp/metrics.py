"""OTLP metrics as canonical metric points (ARCHITECTURE §2: one row per time, series, value).

- Gauges and sums: one point per data point, the value as sent (a cumulative counter
  stays cumulative). With a `SeriesMemory`, a monotonic cumulative sum also gives
  `<name>_rate`: the increase per second since the series' previous point.
- Histograms and exponential histograms: `<name>_p50`, `<name>_p90`, `<name>_p99` estimated
  from the bucket counts (linear interpolation inside the bucket holding the rank, as
  Prometheus' `histogram_quantile` does, bucket edges clipped to the point's min/max when
  sent), and `<name>_count`. A point with no observations gives `_count` only. With a
  `SeriesMemory`, a cumulative histogram is first turned into the interval since the
  series' previous point (bucket counts minus the previous ones), so the quantiles and
  the count describe that interval rather than everything since the process started.
- Summaries: one point per sent quantile (`_p50`, `_p99.9`, ...) and `_count`.

Data point attributes distinguish series, so they are folded into the name after the
suffix: `http.server.duration_p99{method=GET,route=/x}` — keys sorted, each key
shortened to its last dot-separated segment unless two keys of the point would then
collide.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from tracehound.otlp.attributes import Identity, key_values, resource_identity
from tracehound.otlp.tally import MAX_NS, Tally

#: Quantiles estimated from histogram buckets.
HISTOGRAM_QUANTILES = (0.5, 0.9, 0.99)
#: `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the point marks a gap, it carries no value.
_NO_RECORDED_VALUE = 1
#: `AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE`.
_CUMULATIVE = 2

Bucket = tuple[float, float, int]  # (lower, upper, count), in ascending value order
BucketKey = Hashable
Layout = tuple[Any, ...]  # ("explicit", bounds) or ("exponential", scale)


def quantile_suffix(q: float) -> str:
    """`_p50` for 0.5, `_p99.9` for 0.999."""
    return f"_p{round(q * 100, 6):g}"


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def labels(attributes: dict[str, Any]) -> str:
    """`{k=v,...}` of a point's attributes ("" without any); see the module docstring."""
    if not attributes:
        return ""
    keys = sorted(attributes)
    short = [key.rsplit(".", 1)[-1] for key in keys]
    clashes = {s for s in short if short.count(s) > 1}
    text = ",".join(
        f"{s if s not in clashes else key}={_label(attributes[key])}"
        for key, s in zip(keys, short, strict=True)
    )
    return f"{{{text}}}"


def series_name(name: str, attributes: dict[str, Any], suffix: str = "") -> str:
    """The metric name, a suffix such as `_p99`, then the point's attributes folded in."""
    return f"{name}{suffix}{labels(attributes)}"


def quantile(buckets: Sequence[Bucket], q: float) -> float | None:
    """The q-quantile of observations spread over `buckets`, or None when there are none."""
    total = sum(count for _, _, count in buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for lower, upper, count in buckets:
        if count <= 0:
            continue
        if seen + count >= rank:
            share = (rank - seen) / count
            return lower + (upper - lower) * share
        seen += count
    return buckets[-1][1]


# -- histogram buckets -----------------------------------------------------------------


@dataclass(frozen=True)
class HistogramCounts:
    """A histogram point's counts by bucket key, independent of min/max clipping, so
    that two cumulative points of one series can be subtracted."""

    layout: Layout
    counts: dict[BucketKey, int]
    count: int
    sum: float


def histogram_counts(kind: str, point: Any) -> HistogramCounts:
    """The counts of a `HistogramDataPoint` (kind "histogram", keys = bucket index) or an
    `ExponentialHistogramDataPoint` (keys ("n"|"p", index) and ("z", 0))."""
    if kind == "histogram":
        bounds = tuple(point.explicit_bounds)
        counts = list(point.bucket_counts)
        if bounds and len(counts) != len(bounds) + 1:
            raise ValueError("bucket_counts must have one more entry than explicit_bounds")
        by_key: dict[BucketKey, int] = {i: int(c) for i, c in enumerate(counts)}
        if not bounds:
            by_key = {0: int(point.count)}
        return HistogramCounts(("explicit", bounds), by_key, int(point.count), point.sum)
    by_key = {("z", 0): int(point.zero_count)}
    for sign, buckets in (("p", point.positive), ("n", point.negative)):
        for i, c in enumerate(buckets.bucket_counts):
            if c:
                by_key[(sign, buckets.offset + i)] = int(c)
    return HistogramCounts(("exponential", point.scale), by_key, int(point.count), point.sum)


def _explicit_buckets(h: HistogramCounts, low: float | None, high: float | None) -> list[Bucket]:
    bounds: tuple[float, ...] = h.layout[1]
    if not bounds:
        mean = h.sum / h.count if h.count else 0.0
        lo = low if low is not None else mean
        return [(lo, high if high is not None else mean, h.counts.get(0, 0))]
    first_low = low if low is not None else (0.0 if bounds[0] > 0 else bounds[0])
    last_high = high if high is not None else bounds[-1]
    edges = [min(first_low, bounds[0]), *bounds, max(last_high, bounds[-1])]
    if low is not None:
        edges = [max(edge, low) for edge in edges]
    if high is not None:
        edges = [min(edge, high) for edge in edges]
    return [(edges[i], edges[i + 1], h.counts.get(i, 0)) for i in range(len(bounds) + 1)]


def _exponential_buckets(h: HistogramCounts) -> list[Bucket]:
    """Positive bucket index k covers (base**k, base**(k+1)] with base = 2**(2**-scale);
    negative buckets mirror it; the zero bucket sits at 0."""
    base = 2.0 ** (2.0 ** -h.layout[1])
    out: list[Bucket] = []
    for key, count in h.counts.items():
        sign, k = cast(tuple[str, int], key)
        if sign == "z":
            out.append((0.0, 0.0, count))
        elif sign == "p":
            out.append((base**k, base ** (k + 1), count))
        else:
            out.append((-(base ** (k + 1)), -(base**k), count))
    out.sort()
    return out


def buckets(
    h: HistogramCounts, low: float | None = None, high: float | None = None
) -> list[Bucket]:
    """The buckets of `h` in ascending value order, with finite edges.

    Explicit buckets: the first starts at `low` (else at 0 when its upper bound is
    positive, else at that bound); the overflow bucket ends at `high` (else at the last
    bound), as `histogram_quantile` does; every edge is clipped to [low, high].
    """
    if h.layout[0] == "explicit":
        return _explicit_buckets(h, low, high)
    return _exponential_buckets(h)


# -- memory of cumulative series ---------------------------------------------------------


@dataclass(frozen=True)
class _Previous:
    start_ns: int
    ts_ns: int
    value: Any


class SeriesMemory:
    """The last cumulative point of each series, shared by concurrent decodes.

    A point is compared with the previous one only when both share the series' start
    time and it is later; otherwise (first point, restart, out of order) it stands alone.
    At most `max_series` series are remembered; beyond that the memory starts afresh.
    """

    def __init__(self, max_series: int = 200_000) -> None:
        self.max_series = max_series
        self._last: dict[Hashable, _Previous] = {}
        self._lock = threading.Lock()

    def exchange(self, key: Hashable, start_ns: int, ts_ns: int, value: Any) -> Any | None:
        """Remember `value` for `key`; return the previous value when it is comparable."""
        with self._lock:
            previous = self._last.get(key)
            if previous is not None and ts_ns <= previous.ts_ns:
                return None
            if previous is None and len(self._last) >= self.max_series:
                self._last.clear()
            self._last[key] = _Previous(start_ns, ts_ns, value)
        if previous is None or previous.start_ns != start_ns:
            return None
        return previous.value, previous.ts_ns


def _interval(current: HistogramCounts, previous: HistogramCounts) -> HistogramCounts | None:
    """`current - previous` of one cumulative series, or None after a reset."""
    if previous.layout != current.layout or current.count < previous.count:
        return None
    delta = {key: c - previous.counts.get(key, 0) for key, c in current.counts.items()}
    if any(c < 0 for c in delta.values()) or set(previous.counts) - set(current.counts):
        return None
    return HistogramCounts(
        current.layout, delta, current.count - previous.count, current.sum - previous.sum
    )


# -- columns -------------------------------------------------------------------------------


class MetricColumns:
    """Column lists of the canonical metrics table, filled one data point at a time."""

    def __init__(self) -> None:
        self.ts_ns: list[int] = []
        self.service: list[str] = []
        self.instance: list[str] = []
        self.node: list[str] = []
        self.name: list[str] = []
        self.value: list[float] = []

    def add(self, ts: int, who: Identity, name: str, value: float) -> None:
        self.ts_ns.append(ts)
        self.service.append(who.service)
        self.instance.append(who.instance)
        self.node.append(who.node)
        self.name.append(name)
        self.value.append(value)

    def as_dict(self) -> dict[str, list[Any]]:
        return {
            "ts_ns": self.ts_ns,
            "service": self.service,
            "instance": self.instance,
            "node": self.node,
            "name": self.name,
            "value": self.value,
        }


@dataclass
class _Context:
    out: MetricColumns
    who: Identity
    tally: Tally
    memory: SeriesMemory | None


def _point_time(point: Any, tally: Tally) -> int | None:
    ts = int(point.time_unix_nano)
    if ts == 0:
        tally.reject("without a time")
        return None
    if ts > MAX_NS:
        tally.reject("with a time beyond year 2262")
        return None
    return ts


def _add_number(ctx: _Context, metric: Any, kind: str, point: Any) -> None:
    ts = _point_time(point, ctx.tally)
    if ts is None:
        return
    which = point.WhichOneof("value")
    if which is None:
        ctx.tally.reject("without a value")
        return
    value = float(point.as_double if which == "as_double" else point.as_int)
    attrs = key_values(point.attributes)
    ctx.out.add(ts, ctx.who, series_name(metric.name, attrs), value)
    if ctx.memory is None or kind != "sum":
        return
    if not metric.sum.is_monotonic or metric.sum.aggregation_temporality != _CUMULATIVE:
        return
    name = series_name(metric.name, attrs, "_rate")
    found = ctx.memory.exchange((ctx.who, name), int(point.start_time_unix_nano), ts, value)
    if found is not None:
        before, before_ts = found
        if value >= before:
            ctx.out.add(ts, ctx.who, name, (value - before) * 1e9 / (ts - before_ts))


def _clamp(value: float, low: float | None, high: float | None) -> float:
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


def _add_histogram(ctx: _Context, metric: Any, kind: str, point: Any) -> None:
    ts = _point_time(point, ctx.tally)
    if ts is None:
        return
    try:
        counts = histogram_counts(kind, point)
    except ValueError:
        ctx.tally.reject("with inconsistent histogram buckets")
        return
    attrs = key_values(point.attributes)
    data = getattr(metric, kind)
    if ctx.memory is not None and data.aggregation_temporality == _CUMULATIVE:
        key = (ctx.who, kind, series_name(metric.name, attrs))
        found = ctx.memory.exchange(key, int(point.start_time_unix_nano), ts, counts)
        if found is not None:
            counts = _interval(counts, found[0]) or counts
    low = point.min if point.HasField("min") else None
    high = point.max if point.HasField("max") else None
    try:
        spread = buckets(counts, low, high)
    except OverflowError:
        spread = []
    if not all(math.isfinite(edge) for lo, hi, _ in spread for edge in (lo, hi)):
        ctx.tally.reject("with non-finite histogram bounds")
        return
    for q in HISTOGRAM_QUANTILES:
        value = quantile(spread, q)
        if value is not None:
            name = series_name(metric.name, attrs, quantile_suffix(q))
            ctx.out.add(ts, ctx.who, name, _clamp(value, low, high))
    ctx.out.add(ts, ctx.who, series_name(metric.name, attrs, "_count"), float(counts.count))


def _add_summary(ctx: _Context, metric: Any, point: Any) -> None:
    ts = _point_time(point, ctx.tally)
    if ts is None:
        return
    attrs = key_values(point.attributes)
    for qv in point.quantile_values:
        name = series_name(metric.name, attrs, quantile_suffix(qv.quantile))
        ctx.out.add(ts, ctx.who, name, float(qv.value))
    ctx.out.add(ts, ctx.who, series_name(metric.name, attrs, "_count"), float(point.count))


def _add_metric(ctx: _Context, metric: Any) -> None:
    kind = metric.WhichOneof("data")
    if kind is None:
        return
    for point in getattr(metric, kind).data_points:
        if point.flags & _NO_RECORDED_VALUE:
            continue
        if kind in ("gauge", "sum"):
            _add_number(ctx, metric, kind, point)
        elif kind == "summary":
            _add_summary(ctx, metric, point)
        else:
            _add_histogram(ctx, metric, kind, point)


def metric_columns(
    request: Any, tally: Tally, memory: SeriesMemory | None = None
) -> dict[str, list[Any]]:
    """The canonical metrics columns of one `ExportMetricsServiceRequest`."""
    out = MetricColumns()
    for resource_metrics in request.resource_metrics:
        who = resource_identity(resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                _add_metric(_Context(out, who, tally, memory), metric)
    return out.as_dict()
