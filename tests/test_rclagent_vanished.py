"""When an instance counts as vanished: a large fall in its spans that chance does not explain."""

from __future__ import annotations

import math

import pytest

from tracehound.model import Incident, Window
from tracehound.rclagent.context import IncidentContext
from tracehound.rclagent.facts import _vanished, poisson_cdf

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


def _ctx(activity: dict[str, tuple[int, int]]) -> IncidentContext:
    """One instance per service (`<service>-1`), so each is compared with the system."""
    window = Window.from_ns(T0, T0 + 600 * SECOND)
    ctx = IncidentContext(
        incident=Incident(id="x", window=window),
        window=window,
        baseline=window,
        has_normal=True,
        use_logs=True,
        use_metrics=True,
    )
    ctx.activity = activity
    ctx.instance_service = {i: i.removesuffix("-1") for i in activity}
    return ctx


def testpoisson_cdf_exact_and_approximate() -> None:
    assert poisson_cdf(0, 4.6) == pytest.approx(math.exp(-4.6))
    assert poisson_cdf(10, 10.0) == pytest.approx(0.5830397502, rel=1e-9)
    assert poisson_cdf(4, 10.0) == pytest.approx(0.0292526881, rel=1e-9)
    # above a mean of 1,000: the continuity-corrected normal approximation
    assert poisson_cdf(1000, 1000.5) == pytest.approx(0.5, abs=1e-12)
    assert poisson_cdf(400, 2000.0) < 1e-100


def test_a_fall_chance_explains_among_many_instances_is_not_vanished() -> None:
    # 200 steady instances; one ran 10 spans before and 4 now: a 60 % fall that Poisson
    # noise gives 3 % of the time, far above 0.05 / 201
    activity = {f"s{k}-1": (10, 10) for k in range(200)}
    activity["odd-1"] = (4, 10)
    assert _vanished(_ctx(activity)) == {}


def test_a_busy_instance_that_stopped_is_vanished() -> None:
    activity = {f"s{k}-1": (10, 10) for k in range(200)}
    activity["dead-1"] = (0, 100)
    assert _vanished(_ctx(activity)) == {"dead-1": 1.0}


def test_in_a_small_system_a_smaller_count_suffices() -> None:
    # four instances: 1 span where 10 x 61/70 = 8.71 were expected has probability
    # 0.0016 < 0.05 / 4
    activity = {"a-1": (20, 20), "b-1": (20, 20), "c-1": (20, 20), "d-1": (1, 10)}
    found = _vanished(_ctx(activity))
    assert list(found) == ["d-1"]
    assert found["d-1"] == pytest.approx(1 - 70 / 610)
    # ... but not among 200 instances: P(X <= 1 | 9.98) = 0.0005 > 0.05 / 200
    many = {f"s{k}-1": (20, 20) for k in range(199)}
    many["d-1"] = (1, 10)
    assert _vanished(_ctx(many)) == {}


def test_chance_is_judged_on_traces_not_on_their_clumps_of_spans() -> None:
    # 20 spans before in only 2 requests, none now: two requests that did not come
    activity = {f"s{k}-1": (20, 20) for k in range(200)}
    activity["rare-1"] = (0, 20)
    ctx = _ctx(activity)
    ctx.activity_traces = {i: (10, 10) for i in activity}
    ctx.activity_traces["rare-1"] = (0, 2)
    assert _vanished(ctx) == {}
    # the same spans from 20 requests: their absence is no chance
    ctx.activity_traces["rare-1"] = (0, 20)
    assert _vanished(ctx) == {"rare-1": 1.0}
