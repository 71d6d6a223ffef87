"""`baro`: BARO, multivariate BOCPD to find the onset, then RobustScorer to rank metrics.

Luan Pham, Huong Ha, Hongyu Zhang, "BARO: Robust Root Cause Analysis for Microservices via
Multivariate Bayesian Online Change Point Detection", FSE 2024 (reference code
``phamquiluan/baro``: ``baro/anomaly_detection.py`` ``bocpd``, ``baro/_bocpd.py``,
``baro/root_cause_analysis.py`` ``robust_scorer``; the same scorer is RCAEval's ``baro``).

The method, as the reference runs it:

1. **Anomaly detection.** The metrics form one multivariate series (time x metrics).
   Constant columns are dropped, each column is min-max normalised, and multivariate
   Bayesian online change-point detection (Adams & MacKay 2007, Normal-Wishart model,
   constant hazard 1/50; see `tracehound.methods.bocpd`) yields change points where the
   most probable run length jumps. The first change point is the anomaly onset.
2. **RobustScorer.** For each metric, the median and the inter-quartile range (IQR) of
   the data before the onset (sklearn's ``RobustScaler``) turn each later value into a
   robust z-score; the metric's score is the largest one. Metrics constant before or after
   the onset are dropped (``drop_constant`` on each part).
3. **Ranking.** Metrics by score; services by their first metric (``to_service_ranks``).

How the normal window is used (``use_normal_window=True``, the default, when the incident
has one): the sequence is the normal window's rows followed by the incident window's
rows, stacked in that order and *not* sorted by time (in RCD Sock Shop the normal
recording can lie after the anomalous one; dataset README trap 1). The normal window is
fault-free by definition, so the onset is the first change whose new run starts at or
after the first incident row; when BOCPD finds none, the onset falls back to the
boundary between the two windows. Without a normal window (or with
``use_normal_window=False``) the sequence is every metric row before the end of the
incident window, in time order, and the onset is the first change point BOCPD finds; if
it finds none, the start of the incident window (when rows precede it), else the middle
of the sequence. So the method does not need a normal window. A normal window without
metric rows counts as absent; an incident window without metric rows gives an empty
ranking.

Parameters (all keyword-only, with defaults):

- ``use_normal_window`` (True): stack normal then incident rows, as above.
- ``hazard_lambda`` (50.0): expected run length of BOCPD's constant hazard (BARO's 50).
- ``detector_metrics`` (""): a regular expression; when set, BOCPD runs only on series
  whose metric name matches it (BARO's reproduction runs it on latency and error
  columns: ``"latency|error"``); empty, or no match, means every series.
- ``max_runs`` (128): run-length hypotheses BOCPD keeps per step.
- ``max_points`` (1200): longer sequences are averaged in blocks to at most this many
  rows for BOCPD only (the scorer keeps every row).
- ``flat_scale`` (0.01): the spread assumed, relative to the level, for a series whose
  IQR before the onset is 0 (deviation 6).
- ``two_sided`` (False): score ``|x - median| / IQR`` instead of the reference's one-sided
  ``(x - median) / IQR``.

Deviations from the paper and the reference:

1. Series order and onset with a normal window: normal rows, then incident rows, and the
   onset is searched for from the incident rows on (see above); the reference cuts one
   time-sorted frame at the first change point.
2. The onset is where the newly most probable run begins (detection step minus its run
   length), not the detection step itself: the reference splits at the step where the
   jump is seen, which puts the first anomalous row(s) into the baseline.
3. BOCPD runs on all series by default; the reference's reproduction selects latency and
   error columns by name (available through ``detector_metrics``).
4. BOCPD details (log space, exact row-space projection, pruning to ``max_runs``, no
   spurious end-of-series change point): see `tracehound.methods.bocpd`. Sequences
   longer than ``max_points`` rows are averaged in blocks for BOCPD (the reference
   always works on at most 300 + 300 rows at 1 s).
5. Series are put on a common time grid (`tracehound.methods.metric_matrix`); gaps are
   forward-filled within a window and leading gaps back-filled (the reference
   forward-fills, then fills 0).
6. Zero IQR: when the IQR before the onset is 0 (a series at one value more than half of
   the time), sklearn divides by 1 in the series' own units, so the score depends on the
   unit (the reference converts memory to MB first, which makes a 4 MB rise of a flat
   267 MB series score 4). Unit-free here: the spread becomes the larger of the series'
   standard deviation before the onset and ``flat_scale`` (1 %) of its median's
   magnitude; should both be 0, ``1e-9 * max(1, |median|)``. Taking the standard
   deviation alone let flat memory series with a single 4 KiB blip outrank the culprit
   in 4 of 50 RCD Sock Shop cases; a series flat at 0 (an error count) still scores by
   its standard deviation. "Constant" allows float rounding (values within 1e-12 of
   their magnitude count as equal). Scores are finite.
7. One-sided by default, as the reference (``max`` of signed scores); ``two_sided``
   optional.
8. No dataset-specific preprocessing (``convert_mem_mb``, per-dataset column drops).
9. Ranking at service and instance level; series without a service (node metrics) are
   ranked but name no candidate; ties broken by series key.
10. A single row after the onset is scored, not dropped as "constant" (with metrics
    sampled once a minute a short incident window holds one row; the reference's rule
    would drop every series).

Known limitation (of the model, kept as is): the prior's identity scale makes a change
hard to see when there are many series and few points (hundreds of pod metrics over a
few minutes, as in Nezha); BOCPD then finds nothing and the onset is the window boundary.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from tracehound.methods.base import Method, Tags
from tracehound.methods.bocpd import DEFAULT_HAZARD_LAMBDA, DEFAULT_MAX_RUNS, bocpd
from tracehound.methods.bocpd import normalise_columns as normalise_for_bocpd
from tracehound.methods.metric_matrix import SeriesMatrix, series_matrix
from tracehound.methods.metric_ranking import SeriesScores, finite_scores, ranking_from_series
from tracehound.methods.nsigma import CONSTANT_TOLERANCE
from tracehound.model import Incident, Ranking
from tracehound.store import TelemetryStore

FloatArray = npt.NDArray[np.float64]

#: Relative floor of a spread that is exactly 0 (see deviation 6).
_SCALE_FLOOR = 1e-9
_INT64_MIN = -(2**63)


class BaroMethod(Method):
    """BARO (Pham, Ha, Zhang, FSE 2024): BOCPD onset, then RobustScorer (see module doc)."""

    name = "baro"
    tags = Tags(modalities=frozenset({"metrics"}), deterministic=True, needs_normal_window=False)

    def __init__(
        self,
        *,
        use_normal_window: bool = True,
        hazard_lambda: float = DEFAULT_HAZARD_LAMBDA,
        detector_metrics: str = "",
        max_runs: int = DEFAULT_MAX_RUNS,
        max_points: int = 1200,
        flat_scale: float = 0.01,
        two_sided: bool = False,
    ) -> None:
        self.use_normal_window = use_normal_window
        self.hazard_lambda = hazard_lambda
        self.detector_metrics = detector_metrics
        self.max_runs = max_runs
        self.max_points = max_points
        self.flat_scale = flat_scale
        self.two_sided = two_sided

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        self.check_inputs(incident, store)
        window = incident.window
        normal = incident.normal_window if self.use_normal_window else None
        if normal is not None:
            segments = [(normal.start_ns, normal.end_ns), (window.start_ns, window.end_ns)]
        else:
            segments = [(_INT64_MIN, window.start_ns), (window.start_ns, window.end_ns)]
        matrix = series_matrix(store, segments)
        rows = matrix.shape[0]
        boundary = int(np.sum(matrix.segment == 0))
        if rows < 2 or boundary == rows:
            return Ranking()  # no metric row inside the incident window: nothing to score
        trust_boundary = normal is not None and boundary > 0
        onset = self.find_onset(matrix, boundary, trust_boundary=trust_boundary)
        scores = robust_scores(matrix, onset, flat_scale=self.flat_scale, two_sided=self.two_sided)
        return ranking_from_series(scores)

    def find_onset(self, matrix: SeriesMatrix, boundary: int, *, trust_boundary: bool) -> int:
        """The first row of the anomalous part (1 <= onset < rows), see the module doc."""
        rows = matrix.shape[0]
        detect = normalise_for_bocpd(self._detector_columns(matrix))
        factor = max(1, -(-rows // max(1, self.max_points)))
        if factor > 1:
            detect = _block_means(detect, factor)
        result = bocpd(detect, hazard_lambda=self.hazard_lambda, max_runs=self.max_runs)
        onsets = result.onsets * factor
        lowest = boundary if trust_boundary else 1
        found = onsets[(onsets >= lowest) & (onsets < rows)]
        if found.size:
            return max(1, int(found[0]))
        if 0 < boundary < rows:
            return boundary
        return max(1, rows // 2)

    def _detector_columns(self, matrix: SeriesMatrix) -> FloatArray:
        if self.detector_metrics:
            pattern = re.compile(self.detector_metrics)
            keep = np.array([bool(pattern.search(name)) for name in matrix.name], dtype=bool)
            if keep.any():
                return matrix.values[:, keep]
        return matrix.values


def _block_means(values: FloatArray, factor: int) -> FloatArray:
    """Means of consecutive blocks of `factor` rows (the last block may be shorter)."""
    starts = np.arange(0, values.shape[0], factor)
    sums = np.add.reduceat(values, starts, axis=0)
    counts = np.diff(np.append(starts, values.shape[0]))
    means: FloatArray = sums / counts[:, None]
    return means


def robust_scale(before: FloatArray, flat_scale: float) -> tuple[FloatArray, FloatArray]:
    """Median and spread of each column (deviation 6 in the module doc).

    The spread is the IQR; for a column whose IQR is 0 (flat more than half of the time),
    the larger of its standard deviation and `flat_scale` times its median's magnitude;
    should both be 0, ``1e-9 * max(1, |median|)``. Quartiles interpolate linearly, as
    sklearn's ``RobustScaler`` (numpy percentiles).
    """
    q25, median, q75 = np.percentile(before, [25.0, 50.0, 75.0], axis=0)
    iqr = q75 - q25
    flat = np.maximum(before.std(axis=0), flat_scale * np.abs(median))
    floor = _SCALE_FLOOR * np.maximum(1.0, np.abs(median))
    scale = np.where(iqr > 0, iqr, np.where(flat > 0, flat, floor))
    return median, scale


def is_varying(values: FloatArray) -> npt.NDArray[np.bool_]:
    """Columns that are not constant, float rounding allowed (see `CONSTANT_TOLERANCE`)."""
    magnitude = np.max(np.abs(values), axis=0)
    varying: npt.NDArray[np.bool_] = np.ptp(values, axis=0) > CONSTANT_TOLERANCE * magnitude
    return varying


def robust_scores(
    matrix: SeriesMatrix, onset: int, *, flat_scale: float = 0.01, two_sided: bool = False
) -> SeriesScores:
    """RobustScorer: each series' largest robust z-score from row `onset` on.

    Series constant before or after the onset are dropped, as the reference does; a single
    row after the onset is kept (deviation 10).
    """
    before, after = matrix.values[:onset], matrix.values[onset:]
    varying = is_varying(before) & (is_varying(after) | (after.shape[0] == 1))
    kept = matrix.columns(varying)
    before, after = before[:, varying], after[:, varying]
    median, scale = robust_scale(before, flat_scale)
    z = (after - median) / scale
    rise_at = np.argmax(z, axis=0)
    cols = np.arange(z.shape[1])
    score, at = z[rise_at, cols], rise_at
    if two_sided:
        drop_at = np.argmin(z, axis=0)
        drop = -z[drop_at, cols]
        at = np.where(drop > score, drop_at, rise_at)
        score = np.maximum(score, drop)
    return SeriesScores(
        service=kept.service,
        instance=kept.instance,
        node=kept.node,
        name=kept.name,
        score=finite_scores(score),
        extreme=after[at, cols],
        center=median,
        scale=scale,
        unit="IQRs",
    )
