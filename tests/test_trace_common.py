"""Shared ranking helpers: ordering is immune to last-bit float differences."""

from __future__ import annotations

from tracehound.methods.trace_common import Scored, ordered, to_candidates


def test_sums_that_differ_in_the_last_bit_tie_and_fall_to_the_name() -> None:
    # 0.1 + 0.2 is 0.30000000000000004; summed the other way round, the same evidence
    # would give 0.3 and, unrounded, put "b" first
    items = [Scored("b", 0.1 + 0.2, "x"), Scored("a", 0.3, "y")]
    assert 0.1 + 0.2 > 0.3
    ranked = to_candidates("service", ordered(items))
    assert [c.name for c in ranked] == ["a", "b"]
    assert [c.score for c in ranked] == [0.3, 0.3]


def test_real_differences_still_order() -> None:
    items = [Scored("a", 0.3, "x"), Scored("b", 0.3 + 1e-9, "y")]
    assert [s.name for s in ordered(items)] == ["b", "a"]
