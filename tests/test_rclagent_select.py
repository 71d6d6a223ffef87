"""Request selection: latency against the request's own type, and diversity over what
the requests' evidence says."""

from __future__ import annotations

import pytest
from handmade import SECOND, T0, Builder

from tracehound.model import Labels
from tracehound.rclagent.context import UNLINKED_SHARE
from tracehound.rclagent.facts import fill_context, new_context
from tracehound.rclagent.select import _diverse, _Root, _scored_roots, select_requests
from tracehound.simulate import generate_incident, generate_system
from tracehound.store import TelemetryStore

T0_MS = T0 // 1_000_000
SECOND_MS = SECOND // 1_000_000


def _root(trace: str, operation: str, signature: str, silence: float) -> _Root:
    return _Root(
        trace_id=trace,
        span_id="s",
        operation=operation,
        kind=f"{operation} > ",
        duration_ms=10.0,
        excess_ms=0.0,
        error_spans=0,
        log_weight=0.0,
        silence=silence,
        signature=signature,
        signature_excess=0.0,
    )


def test_one_explanation_takes_one_slot_per_round_across_root_operations() -> None:
    """Four roots of four operations share one silence; two other signatures are weaker.
    Each signature gets one slot per round (best first, operations interleaved), so the
    shared silence cannot take four of five slots."""
    silent = "db-1: silent SELECT: committed"
    roots = [
        _root("a", "GET /a", silent, 1.2),
        _root("b", "GET /b", silent, 1.1),
        _root("c", "GET /c", silent, 1.0),
        _root("d", "GET /d", silent, 0.9),
        _root("e", "GET /a", "cache-1: timeout", 0.8),
        _root("f", "GET /b", "slow", 0.7),
        _root("g", "GET /c", "slow", 0.6),
    ]
    picked = [r.trace_id for r in _diverse(roots, 5)]
    assert picked == ["a", "e", "f", "b", "g"]


def test_faint_requests_wait_for_the_slots_strong_ones_leave() -> None:
    """Three requests of one type are very slow (silence stands in for the score here);
    five others each carry a different faint warning. Without tiers the faint signatures
    would take two of three slots; below 0.3 of the best score they wait."""
    roots = [
        _root("s1", "GET /p", "slow", 0.79),
        _root("s2", "GET /p", "slow", 0.78),
        _root("s3", "GET /p", "slow", 0.77),
        *(_root(f"w{k}", f"GET /{k}", f"svc: WARN {k}", 0.07) for k in range(5)),
    ]
    assert [r.trace_id for r in _diverse(roots, 3)] == ["s1", "s2", "s3"]
    assert [r.trace_id for r in _diverse(roots, 5)] == ["s1", "s2", "s3", "w0", "w1"]


def test_within_a_signature_root_operations_take_turns() -> None:
    roots = [
        _root("a1", "GET /a", "slow", 1.0),
        _root("a2", "GET /a", "slow", 0.9),
        _root("b1", "GET /b", "slow", 0.5),
    ]
    assert [r.trace_id for r in _diverse(roots, 3)] == ["a1", "b1", "a2"]


def _gateway_incident() -> Builder:
    """One gateway operation `/*` in front of two endpoints: `GET /fast` (about 60 ms) and
    `GET /slow` (about 600 ms), 20 requests each per window; in the incident window one
    more `/fast` request takes 300 ms (5 times its type's normal) and one more `/slow`
    request 640 ms (within its type's spread)."""
    b = Builder()
    for window, start in enumerate((T0_MS, T0_MS + 600 * SECOND_MS)):
        for k in range(40):
            fast = k % 2 == 0
            trace, at = f"w{window}-{k}", start + (k + 1) * 10 * SECOND_MS
            total = (60.0 if fast else 600.0) * (1 + (k % 5 - 2) / 100)
            b.span(trace, "r", None, "gw-1", "/*", at, total)
            endpoint = "GET /fast" if fast else "GET /slow"
            b.span(trace, "c", "r", "api-1", endpoint, at + 2, total - 4)
    late = T0_MS + 600 * SECOND_MS + 450 * SECOND_MS
    for trace, endpoint, total in (("x-fast", "GET /fast", 300.0), ("x-slow", "GET /slow", 640.0)):
        b.span(trace, "r", None, "gw-1", "/*", late, total)
        b.span(trace, "c", "r", "api-1", endpoint, late + 2, total - 4)
    return b


def test_a_root_is_slow_against_its_request_type_not_its_root_operation() -> None:
    """Against all `/*` roots (median about 330 ms, MAD about 270 ms) neither extra request
    is slow; against its own type (root operation and first operation of another service)
    the 300 ms `/fast` request is 210 ms beyond its bound (1.5 x 60 ms) and the 640 ms
    `/slow` one is within its bound (1.5 x 600 ms)."""
    data = _gateway_incident().data(Labels(service="api"))
    with TelemetryStore.from_incident(data) as store:
        ctx = new_context(data.incident, store, use_logs=False, use_metrics=False)
        roots = {r.trace_id: r for r in _scored_roots(store, ctx)}
    assert roots["x-fast"].kind == "/* > GET /fast"
    assert round(roots["x-fast"].excess_ms, 6) == 210.0
    assert roots["x-slow"].excess_ms == 0.0
    assert sorted(t for t, r in roots.items() if r.score > 0) == ["x-fast"]


def _unlinked_incident() -> Builder:
    """20 requests `GET /a` (gateway gw-1, then api-1, 50 ms) per window; in the incident
    window request `x` runs on api-1 from 7 ms after a whole second for 48 ms, and api-1
    writes three error lines without a trace id 10, 20 and 30 ms into it, and one more
    5 s later, when no request runs; request `y` starts 200 ms after `x`."""
    b = Builder()
    for window, start in enumerate((T0_MS, T0_MS + 600 * SECOND_MS)):
        for k in range(20):
            trace, at = f"w{window}-{k}", start + (k + 1) * 20 * SECOND_MS
            b.span(trace, "r", None, "gw-1", "GET /a", at, 50.0)
            b.span(trace, "c", "r", "api-1", "a op", at + 1, 48.0)
    t = T0_MS + 600 * SECOND_MS + 450 * SECOND_MS + 7
    for trace, at in (("x", t), ("y", t + 200)):
        b.span(trace, "r", None, "gw-1", "GET /a", at, 50.0)
        b.span(trace, "c", "r", "api-1", "a op", at + 1, 48.0)
    for offset in (10, 20, 30, 5_000):
        b.log(None, None, "api-1", "error", "payment gateway refused the card", t + 1 + offset)
    return b


def test_lines_without_a_trace_id_count_for_the_requests_running_on_their_instance() -> None:
    """The template is new (4 lines, none in the baseline: novelty 1 - 1/4); `x` gets its
    three lines at `UNLINKED_SHARE`; `y` and the line written between requests get none."""
    data = _unlinked_incident().data(Labels(service="api"))
    with TelemetryStore.from_incident(data) as store:
        ctx = new_context(data.incident, store, use_logs=True, use_metrics=False)
        roots = {r.trace_id: r for r in _scored_roots(store, ctx)}
        fill_context(store, ctx, ["x"])
    assert ctx.unlinked_margin == 10 * 1_000_000
    assert roots["x"].log_weight == pytest.approx(3 * 0.75 * UNLINKED_SHARE)
    assert roots["y"].log_weight == 0.0
    lines = ctx.span_logs[("x", "c")]
    assert [(line.linked, line.ts_ns) for line in lines] == [
        (False, (T0_MS + 600 * SECOND_MS + 450 * SECOND_MS + 8 + k) * 1_000_000)
        for k in (10, 20, 30)
    ]
    assert lines[0].weight == pytest.approx(0.75 * UNLINKED_SHARE)
    assert ("x", "r") not in ctx.span_logs  # gw-1 wrote nothing


@pytest.mark.parametrize("fault", ["error", "latency", "unavailable"])
def test_the_pruned_scoring_selects_what_scoring_every_root_selects(fault: str) -> None:
    """`select_requests` reads only the roots `_diverse` could take; choosing from every
    scored root picks the same requests, in the same order."""
    data = generate_incident(
        generate_system(20, 5), index=1, seed=5, fault_type=fault, target_spans=3000
    )
    with TelemetryStore.from_incident(data) as store:
        ctx = new_context(data.incident, store, use_logs=True, use_metrics=False)
        every = _scored_roots(store, ctx)
        picked = select_requests(store, ctx, 3)
    anomalous = [r for r in every if r.score > 0]
    assert len(anomalous) > 3
    assert [p.trace_id for p in picked] == [r.trace_id for r in _diverse(anomalous, 3)]


def test_without_an_anomalous_root_the_slowest_against_their_type_are_chosen() -> None:
    b = Builder()
    for k in range(30):
        for t in (T0_MS + 10 * SECOND_MS, T0_MS + 610 * SECOND_MS):
            b.span(f"{t}-{k}", "a", None, "api-1", "GET /", t + k * 1000, 50 + k % 7)
    data = b.data(Labels(service="api"))
    with TelemetryStore.from_incident(data) as store:
        ctx = new_context(data.incident, store, use_logs=False, use_metrics=False)
        every = _scored_roots(store, ctx)
        picked = select_requests(store, ctx, 4)
    assert not [r for r in every if r.score > 0]
    slowest = sorted(every, key=lambda r: (-r.signature_excess, r.trace_id))[:4]
    assert [p.trace_id for p in picked] == [r.trace_id for r in slowest]
    assert all(p.reason.startswith("no anomalous request") for p in picked)
