"""Metric series as a (time x series) matrix over an ordered list of segments.

Multivariate detectors such as BARO's BOCPD need every series on one time axis. Our
metrics are long rows (ts_ns, service, instance, node, name, value), and series need not
share timestamps (pods scraped a few seconds apart), so points are put on a grid:

- the grid step is the median gap between consecutive points of a series (over all series
  and segments), and each point goes to the nearest step from its segment's first point;
- points landing in the same cell are averaged;
- segments are stacked in the order given, *not* sorted by time: a normal recording may
  lie after the anomalous one, and it must still come first;
- gaps are forward-filled within a segment, leading gaps back-filled; a series missing
  from a whole segment is dropped (the reference keeps only the columns both parts have).

All of it is one DuckDB query and numpy indexing; no loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tracehound.methods.bocpd import fill_gaps
from tracehound.store import TelemetryStore

FloatArray = npt.NDArray[np.float64]

_GRID_SQL = """
WITH p AS (
  SELECT CASE {cases} END AS seg,
         coalesce(service, '') AS service, coalesce(instance, '') AS instance,
         coalesce(node, '') AS node, name, ts_ns, value
  FROM metrics
  WHERE value IS NOT NULL AND isfinite(value)),
s AS (SELECT * FROM p WHERE seg IS NOT NULL),
gaps AS (
  SELECT ts_ns - lag(ts_ns) OVER (
           PARTITION BY seg, service, instance, node, name ORDER BY ts_ns) AS gap
  FROM s),
grid AS (SELECT coalesce(median(gap) FILTER (WHERE gap > 0), 0) AS step FROM gaps),
starts AS (SELECT seg, min(ts_ns) AS seg_start FROM s GROUP BY seg),
cells AS (
  SELECT s.seg,
         CASE WHEN grid.step > 0
              THEN CAST(round((s.ts_ns - starts.seg_start) / grid.step) AS BIGINT)
              ELSE 0 END AS cell,
         service, instance, node, name, avg(value) AS value
  FROM s JOIN starts USING (seg) CROSS JOIN grid
  GROUP BY ALL)
SELECT seg,
       dense_rank() OVER (ORDER BY seg, cell) - 1 AS row_index,
       dense_rank() OVER (ORDER BY service, instance, node, name) - 1 AS col_index,
       service, instance, node, name, value
FROM cells
"""


@dataclass(frozen=True)
class SeriesMatrix:
    """Series side by side: `values[t, j]` is series j at grid row t.

    `segment[t]` is the index (into the segments passed) of the segment row t belongs to.
    """

    values: FloatArray
    segment: npt.NDArray[np.int64]
    service: list[str]
    instance: list[str]
    node: list[str]
    name: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.values.shape
        return rows, cols

    def columns(self, keep: npt.NDArray[np.bool_]) -> SeriesMatrix:
        """The matrix restricted to the columns where `keep` is true."""
        index = np.flatnonzero(keep).tolist()
        return SeriesMatrix(
            values=self.values[:, keep],
            segment=self.segment,
            service=[self.service[i] for i in index],
            instance=[self.instance[i] for i in index],
            node=[self.node[i] for i in index],
            name=[self.name[i] for i in index],
        )


def series_matrix(store: TelemetryStore, segments: list[tuple[int, int]]) -> SeriesMatrix:
    """All metric series over `segments` ([start_ns, end_ns) each, stacked in this order).

    A point in several segments belongs to the first one listed.
    """
    cases = " ".join(f"WHEN ts_ns >= ? AND ts_ns < ? THEN {i}" for i in range(len(segments)))
    params: list[object] = [bound for segment in segments for bound in segment]
    table = store.query(_GRID_SQL.format(cases=cases), params)
    if table.num_rows == 0:
        empty = np.zeros((0, 0))
        return SeriesMatrix(empty, np.zeros(0, np.int64), [], [], [], [])
    rows = table.column("row_index").to_numpy().astype(np.int64)
    cols = table.column("col_index").to_numpy().astype(np.int64)
    values = np.full((int(rows.max()) + 1, int(cols.max()) + 1), np.nan)
    values[rows, cols] = table.column("value").to_numpy()
    segment = np.zeros(values.shape[0], dtype=np.int64)
    segment[rows] = table.column("seg").to_numpy()
    _, first = np.unique(cols, return_index=True)
    keys = table.select(["service", "instance", "node", "name"]).take(first)
    matrix = SeriesMatrix(
        values=_fill_per_segment(values, segment),
        segment=segment,
        service=keys.column("service").to_pylist(),
        instance=keys.column("instance").to_pylist(),
        node=keys.column("node").to_pylist(),
        name=keys.column("name").to_pylist(),
    )
    complete = np.asarray(~np.isnan(matrix.values).any(axis=0), dtype=np.bool_)
    return matrix.columns(complete)


def _fill_per_segment(values: FloatArray, segment: npt.NDArray[np.int64]) -> FloatArray:
    """Gaps filled within each segment; a series absent from a segment stays NaN there."""
    filled = values.copy()
    for seg in np.unique(segment).tolist():
        rows = segment == seg
        filled[rows] = fill_gaps(values[rows])
    return filled
