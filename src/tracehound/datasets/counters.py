"""Counters to per-second rates, for metric sources that store cumulative counts.

A cumulative counter (requests served, CPU seconds used) says little until it becomes a
rate. The rate at a sample is (value - previous value) / (time - previous time), in units
per second; a drop means the counter was reset, and the increase since the reset is the
value itself (as Prometheus's ``rate`` assumes). Each counter series loses its first
sample. Rates keep the metric's name.

Whether a series is a counter comes from its name (each source says how). Where names
are only a hint (`max_decrease_share` given), a series that goes down in more than that
share of its steps is not a counter after all (it is already a rate or a gauge) and is
kept as it is.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

NS_PER_S = 1_000_000_000


def counter_rates(
    series: npt.NDArray[np.int64],
    ts_ns: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    named_counter: npt.NDArray[np.bool_],
    max_decrease_share: float | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Rows to keep (indices into the inputs, series then time order) and their values.

    `series[i]` numbers row i's series; `named_counter[k]` says series k is named like a
    counter. Rows of other series keep their value; the rows of a counter series become
    rates, without the series' first row.
    """
    order = np.lexsort((ts_ns, series)).astype(np.int64)
    s, t, v = series[order], ts_ns[order], values[order]
    n = len(order)
    first = np.ones(n, dtype=bool)
    first[1:] = s[1:] != s[:-1]
    step = np.zeros(n)
    step[1:] = v[1:] - v[:-1]
    seconds = np.ones(n)
    seconds[1:] = (t[1:] - t[:-1]) / NS_PER_S
    counted = ~first & ~np.isnan(step)
    sizes = max(int(series.max()) + 1, len(named_counter)) if n else len(named_counter)
    steps = np.bincount(s[counted], minlength=sizes)
    drops = np.bincount(s[counted & (step < 0)], minlength=sizes)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(steps > 0, drops / np.maximum(steps, 1), 0.0)
    flags = np.zeros(sizes, dtype=bool)
    flags[: len(named_counter)] = named_counter
    if max_decrease_share is not None:
        flags &= share <= max_decrease_share
    counter = flags[s]
    increase = np.where(step < 0, v, step)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = increase / seconds
    keep = ~(counter & (first | (seconds <= 0)))
    out = np.where(counter, rate, v)
    return order[keep], out[keep]
