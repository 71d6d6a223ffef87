"""Finding an incident window in telemetry that carries no label.

A live store, or a Jaeger, Zipkin, OTLP or Prometheus export, says nothing about when
things went wrong. The rule here finds the *recent stretch* that departs from what came
before it, and takes the normal window from just before that stretch.

The rule, with its named thresholds in `WindowRule`:

1. **Buckets.** The analysed range is cut into buckets of `bucket_s` seconds (60 s when
   the range covers at least `long_range_s`, else `short_bucket_s` = 10 s). Bucket
   statistics are computed in SQL (`SPAN_BUCKETS_SQL`, `METRIC_BUCKETS_SQL`), over a
   store or over Arrow tables registered in an in-memory DuckDB.
2. **Signals from spans** (when there are spans): per bucket, the error rate (share of
   spans with status ``error``) and a unit-free latency signal, the 90th percentile of
   each span's duration divided by the median duration of its (service, operation)
   over the whole range. A bucket with fewer than `min_spans` spans has no signal.
3. **Departure.** Each signal's baseline is the median over the range's buckets, its
   spread 1.4826 x the median absolute deviation (MAD), floored (`error_rate_floor`,
   `latency_floor`), which makes it a robust z-score. A bucket departs when
   ``z >= z`` (default 5) *and* the change is large in natural units: the error rate
   rose by at least `min_error_rise` (5 points), or the latency signal is at least
   `min_latency_factor` (1.5) times its baseline.
4. **Signals from metrics** (only when there are no spans): per series (service,
   instance, node, name), the bucket mean against the series' median and MAD over the
   range, the spread floored at `metric_rel_floor` (5 %) of the median's magnitude and
   at `metric_abs_floor`. A bucket departs when at least one series has
   ``|z| >= metric_z`` (default 6); a stretch of metric buckets counts only when it is
   at least `min_metric_run` (2) buckets long, which ignores single-sample blips.
5. **The stretch.** Departing buckets separated by at most `max_gap` (1) quiet bucket
   join into one stretch; the incident window is the *last* stretch, from its first
   bucket's start to its last bucket's end (clipped to the data).
6. **Normal window.** The same length, directly before the incident window, clipped
   to the start of the data; none when no data precedes the incident window.

Medians over the whole range are robust as long as the incident covers less than half
of it, which is why the live path looks back `lookback_s` (3 h) for history.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

NS_PER_S = 1_000_000_000
#: Robust z-score scale: 1.4826 x MAD estimates the standard deviation of normal data.
MAD_SCALE = 1.4826

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class WindowRule:
    """The named thresholds of the window rule (see the module docstring)."""

    bucket_s: int = 60
    short_bucket_s: int = 10
    long_range_s: int = 1800
    min_spans: int = 5
    z: float = 5.0
    error_rate_floor: float = 0.01
    min_error_rise: float = 0.05
    latency_floor: float = 0.05
    min_latency_factor: float = 1.5
    metric_z: float = 6.0
    metric_rel_floor: float = 0.05
    metric_abs_floor: float = 1e-9
    min_metric_run: int = 2
    max_gap: int = 1
    lookback_s: int = 3 * 3600


DEFAULT_RULE = WindowRule()


@dataclass(frozen=True)
class Found:
    """A window found in the data: [start_ns, end_ns), its normal window, and why."""

    start_ns: int
    end_ns: int
    normal: tuple[int, int] | None
    found: bool
    reason: str


# -- SQL over a `spans` / `metrics` relation --------------------------------------------

#: Per bucket: start, span count, error rate and the p90 latency ratio. Parameters:
#: bucket width (ns) twice, range start, range end.
SPAN_BUCKETS_SQL = """
WITH s AS (
  SELECT service, operation, start_ns, duration_ns, status FROM spans
  WHERE start_ns >= $start AND start_ns < $end),
op AS (
  SELECT service, operation, greatest(median(duration_ns), 1) AS med FROM s GROUP BY ALL)
SELECT (s.start_ns - $start) // $bucket AS bucket,
       count(*) AS n,
       avg(CASE WHEN s.status = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate,
       quantile_cont(s.duration_ns / op.med, 0.9) AS latency
FROM s JOIN op USING (service, operation)
GROUP BY 1 ORDER BY 1
"""

#: Per series and bucket: the mean value. Series are numbered by `dense_rank`.
METRIC_BUCKETS_SQL = """
SELECT dense_rank() OVER (ORDER BY service, instance, node, name) - 1 AS series,
       (ts_ns - $start) // $bucket AS bucket,
       avg(value) AS value
FROM metrics
WHERE ts_ns >= $start AND ts_ns < $end AND NOT isnan(value) AND isfinite(value)
GROUP BY service, instance, node, name, bucket
ORDER BY series, bucket
"""

#: First and last time of any row of spans and metrics (span ends count).
DATA_RANGE_SQL = """
SELECT min(t0), max(t1) FROM (
  SELECT min(start_ns) t0, max(start_ns + duration_ns) t1 FROM spans
  UNION ALL SELECT min(ts_ns), max(ts_ns) FROM metrics
  UNION ALL SELECT min(ts_ns), max(ts_ns) FROM logs)
"""


def bucket_ns_for(range_ns: int, rule: WindowRule = DEFAULT_RULE) -> int:
    """The bucket width for a range: `bucket_s` for long ranges, `short_bucket_s` else."""
    seconds = rule.bucket_s if range_ns >= rule.long_range_s * NS_PER_S else rule.short_bucket_s
    return seconds * NS_PER_S


def _robust_z(values: FloatArray, floor: float) -> tuple[FloatArray, float]:
    """Robust z-scores of `values` (NaN stays NaN) and their baseline median."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.full(len(values), np.nan), float("nan")
    median = float(np.median(finite))
    spread = max(MAD_SCALE * float(np.median(np.abs(finite - median))), floor)
    return (values - median) / spread, median


def span_departures(
    n: IntArray, error_rate: FloatArray, latency: FloatArray, rule: WindowRule = DEFAULT_RULE
) -> BoolArray:
    """Which span buckets depart from the range's baseline (steps 2 and 3)."""
    enough = n >= rule.min_spans
    err = np.where(enough, error_rate, np.nan)
    lat = np.where(enough, latency, np.nan)
    err_z, err_median = _robust_z(err, rule.error_rate_floor)
    lat_z, lat_median = _robust_z(lat, rule.latency_floor)
    with np.errstate(invalid="ignore"):
        err_up = (err_z >= rule.z) & (err - err_median >= rule.min_error_rise)
        lat_up = (lat_z >= rule.z) & (lat >= rule.min_latency_factor * lat_median)
    return np.asarray(enough & (np.nan_to_num(err_up) | np.nan_to_num(lat_up)), dtype=bool)


def metric_departures(
    series: IntArray, bucket: IntArray, value: FloatArray, buckets: int, rule: WindowRule
) -> BoolArray:
    """Which metric buckets have a series departing from its own baseline (step 4)."""
    if not len(series):
        return np.zeros(buckets, dtype=bool)
    matrix = np.full((int(series.max()) + 1, buckets), np.nan)
    matrix[series, bucket] = value
    with np.errstate(all="ignore"):
        median = np.nanmedian(matrix, axis=1, keepdims=True)
        mad = np.nanmedian(np.abs(matrix - median), axis=1, keepdims=True)
        spread = np.maximum(
            np.maximum(MAD_SCALE * mad, rule.metric_rel_floor * np.abs(median)),
            rule.metric_abs_floor,
        )
        z = np.abs(matrix - median) / spread
    departing = np.nan_to_num(z, nan=0.0) >= rule.metric_z
    flags: BoolArray = departing.any(axis=0)
    return flags


def last_stretch(flags: BoolArray, rule: WindowRule, min_run: int = 1) -> tuple[int, int] | None:
    """The last stretch of departing buckets as (first, last) bucket index (step 5).

    Departing buckets with at most `rule.max_gap` quiet buckets between them form one
    stretch; a stretch with fewer than `min_run` departing buckets is ignored.
    """
    hits = np.flatnonzero(flags)
    if not len(hits):
        return None
    breaks = np.flatnonzero(np.diff(hits) > rule.max_gap + 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(hits) - 1]])
    for first, last in zip(starts[::-1], ends[::-1], strict=True):
        if last - first + 1 >= min_run:
            return int(hits[first]), int(hits[last])
    return None


def normal_before(start_ns: int, end_ns: int, data_start_ns: int) -> tuple[int, int] | None:
    """The window of the same length directly before [start_ns, end_ns), clipped to the
    data's start; None when no data precedes `start_ns` (step 6)."""
    if data_start_ns >= start_ns:
        return None
    return max(data_start_ns, start_ns - (end_ns - start_ns)), start_ns


def detect(con: duckdb.DuckDBPyConnection, start_ns: int, end_ns: int, rule: WindowRule) -> Found:
    """Find the incident window in [start_ns, end_ns) of the `spans`/`metrics` relations
    that `con` sees; when nothing departs, the whole range with `found=False`."""
    bucket_ns = bucket_ns_for(end_ns - start_ns, rule)
    buckets = max(1, -(-(end_ns - start_ns) // bucket_ns))
    params = {"start": start_ns, "end": end_ns, "bucket": bucket_ns}
    spans = con.execute(SPAN_BUCKETS_SQL, params).fetchnumpy()
    stretch: tuple[int, int] | None
    if len(spans["bucket"]):
        flags = np.zeros(buckets, dtype=bool)
        index = np.asarray(spans["bucket"], dtype=np.int64)
        flags[index] = span_departures(
            np.asarray(spans["n"], dtype=np.int64),
            np.asarray(spans["error_rate"], dtype=np.float64),
            np.asarray(spans["latency"], dtype=np.float64),
            rule,
        )
        stretch, source = last_stretch(flags, rule), "spans (error rate, latency)"
    else:
        points = con.execute(METRIC_BUCKETS_SQL, params).fetchnumpy()
        flags = metric_departures(
            np.asarray(points["series"], dtype=np.int64),
            np.asarray(points["bucket"], dtype=np.int64),
            np.asarray(points["value"], dtype=np.float64),
            buckets,
            rule,
        )
        stretch = last_stretch(flags, rule, rule.min_metric_run)
        source = "metrics"
    if stretch is None:
        return Found(
            start_ns,
            end_ns,
            None,
            False,
            f"no {bucket_ns // NS_PER_S} s bucket of {source} departs from the rest; "
            "the window is the whole range",
        )
    first = start_ns + stretch[0] * bucket_ns
    last = min(end_ns, start_ns + (stretch[1] + 1) * bucket_ns)
    return Found(
        first,
        last,
        normal_before(first, last, start_ns),
        True,
        f"{source} depart from their baseline in {stretch[1] - stretch[0] + 1} "
        f"bucket(s) of {bucket_ns // NS_PER_S} s",
    )


def data_range(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """[first, last + 1 ns) over every row `con` sees in spans, metrics and logs."""
    row = con.execute(DATA_RANGE_SQL).fetchone()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1]) + 1


def find_window(
    spans: pa.Table | None,
    metrics: pa.Table | None,
    logs: pa.Table | None = None,
    rule: WindowRule = DEFAULT_RULE,
) -> Found | None:
    """The incident window of in-memory tables (importers use this); None without rows."""
    from tracehound.tables import TABLE_NAMES, empty_table

    con = duckdb.connect()
    given = {"spans": spans, "metrics": metrics, "logs": logs}
    try:
        for name in TABLE_NAMES:
            table = given[name]
            con.register(name, table if table is not None else empty_table(name))
        found_range = data_range(con)
        if found_range is None:
            return None
        return detect(con, found_range[0], found_range[1], rule)
    finally:
        con.close()
