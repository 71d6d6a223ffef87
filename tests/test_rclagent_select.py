"""Request selection: diversity over what the requests' evidence says."""

from __future__ import annotations

from tracehound.rclagent.select import _diverse, _Root


def _root(trace: str, operation: str, signature: str, silence: float) -> _Root:
    return _Root(
        trace_id=trace,
        span_id="s",
        operation=operation,
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


def test_within_a_signature_root_operations_take_turns() -> None:
    roots = [
        _root("a1", "GET /a", "slow", 1.0),
        _root("a2", "GET /a", "slow", 0.9),
        _root("b1", "GET /b", "slow", 0.5),
    ]
    assert [r.trace_id for r in _diverse(roots, 3)] == ["a1", "b1", "a2"]
