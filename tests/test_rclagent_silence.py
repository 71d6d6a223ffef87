"""Incident-wide silence: a partial drop must clear a bound that grows with the rows tested."""

from __future__ import annotations

import string

from handmade import SECOND, T0, Builder

from tracehound.model import IncidentData, Labels
from tracehound.rclagent.context import wide_silence
from tracehound.rclagent.facts import new_context
from tracehound.store import TelemetryStore

T0_MS = T0 // 1_000_000
SECOND_MS = SECOND // 1_000_000


def _word(i: int) -> str:
    """Distinct letters-only words, so templates do not collapse (numbers are masked)."""
    letters = string.ascii_lowercase
    return letters[i // 26 % 26] + letters[i % 26]


def _incident(filler_ops: int) -> IncidentData:
    """Instance a-1's `work` writes "wrote the ledger" in 20 of 25 normal-window spans and
    7 of 25 incident-window spans (z = 3.69, a 65 % fall); `filler_ops` operations of f-1
    (10 + 5 spans each) write 20 lines each in every span, all steady."""
    b = Builder()
    for window, (start, writes) in enumerate(((T0_MS, 20), (T0_MS + 600 * SECOND_MS, 7))):
        for k in range(25):
            trace, at = f"a{window}-{k}", start + (k + 1) * 10 * SECOND_MS
            b.span(trace, "s", None, "a-1", "work", at, 10)
            if k < writes:
                b.log(trace, "s", "a-1", "INFO", "work: wrote the ledger", at + 5)
    for op in range(filler_ops):
        for window, (start, count) in enumerate(((T0_MS, 10), (T0_MS + 600 * SECOND_MS, 5))):
            for k in range(count):
                trace, at = f"f{op}-{window}-{k}", start + (k + 1) * 20 * SECOND_MS
                b.span(trace, "s", None, "f-1", f"op {_word(op)}", at, 10)
                for t in range(20):
                    b.log(
                        trace, "s", "f-1", "INFO", f"op {_word(op)}: step {_word(t)} done", at + 5
                    )
    return b.data(Labels(service="a"))


def _silenced(filler_ops: int) -> list[tuple[str, str, str]]:
    data = _incident(filler_ops)
    with TelemetryStore.from_incident(data) as store:
        ctx = new_context(data.incident, store, use_logs=True, use_metrics=False)
        return [(i, o, t) for i, o, t, _ in wide_silence(store, ctx)]


def test_a_partial_drop_counts_when_few_rows_are_tested() -> None:
    # 1 + 2 x 20 rows tested: the bound is SILENCE_Z_WIDE (3.1) and z = 3.69 clears it
    assert _silenced(2) == [("a-1", "work", "work: wrote the ledger")]


def test_the_same_drop_is_chance_among_two_thousand_rows() -> None:
    # 1 + 100 x 20 rows tested: one-sided p must be below 0.05 / 2,001 (z ~ 4.05)
    assert _silenced(100) == []
