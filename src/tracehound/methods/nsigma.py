"""`nsigma`: the N-Sigma metric baseline, as RCAEval runs it.

N-Sigma is the z-score baseline of RCAEval: Pham, Ha, Zhang, "Root Cause Analysis for
Microservices based on Causal Inference: How Far Are We?", ASE 2024, and Pham et al.,
"RCAEval: A Benchmark for Root Cause Analysis of Microservice Systems with Telemetry
Data", WWW 2025 (reference code ``phamquiluan/RCAEval``, ``RCAEval/e2e/__init__.py``
``nsigma``; the same function ships in ``phamquiluan/baro`` as a baseline for BARO,
FSE 2024).

For every metric series, the mean and the standard deviation over the fault-free data
(the reference: sklearn's ``StandardScaler`` fitted on the rows before the injection
time, i.e. the population standard deviation) turn each incident value into a z-score;
the series' score is its largest z-score in the incident. Series that are constant in the
normal data or constant in the incident data are dropped, each window judged on its own
(the reference's ``drop_constant`` on each part, then the intersection of columns); a
single incident point is kept (deviation 7).
Series are ranked by score; services and instances by their first series
(``to_service_ranks``).

Here the fault-free data is the incident's `normal_window` and the incident data its
`window`. Both are aggregated in one DuckDB query; nothing is pivoted.

Deviations from the reference:

1. The two parts are the normal and the incident windows, not "before / after the
   injection time" on one time-sorted frame: a dataset's normal recording may lie after
   the anomalous one (RCD Sock Shop).
2. Scores are one-sided, as in the reference (``max`` of the signed z-scores: a metric
   that rises scores high, one that drops does not); ``two_sided=True`` scores
   ``|x - mean| / std`` instead.
3. Missing, NaN and infinite values are left out of every statistic (the reference maps
   inf to NaN, forward-fills, then fills 0).
4. No dataset-specific preprocessing: the reference's ``convert_mem_mb`` (bytes to MB,
   which z-scores do not see) and RCAEval's per-dataset column drops (e.g. Sock Shop's
   ``_lat_50`` and ``_lat_99``) are not applied.
5. Ranking is at service and instance level; series without a service (node metrics)
   are ranked but name no candidate. Ties are broken by series key.
6. "Constant" allows float rounding: values that differ by at most 1e-12 of their
   magnitude count as one value (the reference compares exactly, then sklearn's scaler
   divides a near-zero standard deviation by 1 instead; dropping such a series is the
   unit-free equivalent). The standard deviation of a series kept is then clearly
   positive, so no floor is needed; any overflow is clipped to the largest finite float.
7. A series with a single point in the incident window is scored, not dropped as
   "constant": with metrics sampled once a minute (Nezha) a one-minute window holds one
   point per series, and the reference's rule would drop every series.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tracehound.methods.base import Method, Tags
from tracehound.methods.metric_ranking import SeriesScores, finite_scores, ranking_from_series
from tracehound.model import Incident, Ranking
from tracehound.store import TelemetryStore

#: A series whose values differ by no more than this share of their magnitude is constant:
#: the difference is float rounding (e.g. 0.0045 and 0.0045000000000000005).
CONSTANT_TOLERANCE = 1e-12

_WINDOW_STATS_SQL = """
WITH p AS (
  SELECT coalesce(service, '') AS service, coalesce(instance, '') AS instance,
         coalesce(node, '') AS node, name, value,
         ts_ns >= ? AND ts_ns < ? AS in_normal,
         ts_ns >= ? AND ts_ns < ? AS in_incident
  FROM metrics
  WHERE value IS NOT NULL AND isfinite(value))
SELECT service, instance, node, name,
       avg(value) FILTER (WHERE in_normal) AS mean,
       stddev_pop(value) FILTER (WHERE in_normal) AS std,
       min(value) FILTER (WHERE in_normal) AS normal_min,
       max(value) FILTER (WHERE in_normal) AS normal_max,
       min(value) FILTER (WHERE in_incident) AS incident_min,
       max(value) FILTER (WHERE in_incident) AS incident_max,
       count(value) FILTER (WHERE in_incident) AS incident_n
FROM p
WHERE in_normal OR in_incident
GROUP BY ALL
HAVING normal_max - normal_min > {tol} * greatest(abs(normal_max), abs(normal_min))
   AND incident_n > 0
   AND (incident_n = 1
        OR incident_max - incident_min > {tol} * greatest(abs(incident_max), abs(incident_min)))
ORDER BY service, instance, node, name
"""


class NSigmaMethod(Method):
    """Rank metric series by their largest z-score against the normal window.

    Parameters:
        two_sided: score ``|x - mean| / std`` (drops count too) instead of the
            reference's ``(x - mean) / std`` (rises only).
    """

    name = "nsigma"
    tags = Tags(modalities=frozenset({"metrics"}), deterministic=True, needs_normal_window=True)

    def __init__(self, *, two_sided: bool = False) -> None:
        self.two_sided = two_sided

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        self.check_inputs(incident, store)
        normal = incident.normal_window
        assert normal is not None  # check_inputs enforces it
        window = incident.window
        stats = store.query(
            _WINDOW_STATS_SQL.format(tol=CONSTANT_TOLERANCE),
            [normal.start_ns, normal.end_ns, window.start_ns, window.end_ns],
        )
        return ranking_from_series(z_scores(stats, two_sided=self.two_sided))


def z_scores(stats: pa.Table, *, two_sided: bool) -> SeriesScores:
    """Each series' largest z-score, from its window statistics (the columns of the SQL)."""
    column = {name: stats.column(name).to_numpy() for name in stats.column_names[4:]}
    mean, std = column["mean"].astype(np.float64), column["std"].astype(np.float64)
    rise = (column["incident_max"] - mean) / std
    score, extreme = rise, column["incident_max"].astype(np.float64)
    if two_sided:
        drop = (mean - column["incident_min"]) / std
        score = np.maximum(rise, drop)
        extreme = np.where(drop > rise, column["incident_min"], extreme)
    return SeriesScores(
        service=stats.column("service").to_pylist(),
        instance=stats.column("instance").to_pylist(),
        node=stats.column("node").to_pylist(),
        name=stats.column("name").to_pylist(),
        score=finite_scores(score),
        extreme=extreme,
        center=mean,
        scale=std,
        unit="standard deviations",
    )
