"""Incident-wide silence: a partial drop must clear a bound that grows with the rows tested."""

from __future__ import annotations

import string

import pytest
from handmade import SECOND, T0, Builder

from tracehound.model import IncidentData, Labels
from tracehound.rclagent.context import ANY_OPERATION, UNLINKED_SHARE, wide_silence
from tracehound.rclagent.facts import new_context
from tracehound.rclagent.select import _scored_roots
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
    return _ledger_incident((25, 20), (25, 7), filler_ops)


def _ledger_incident(
    normal: tuple[int, int], incident: tuple[int, int], filler_ops: int
) -> IncidentData:
    """a-1's `work` runs (spans, of which write "wrote the ledger") in each window; fillers."""
    b = Builder()
    for window, (start, (count, writes)) in enumerate(
        ((T0_MS, normal), (T0_MS + 600 * SECOND_MS, incident))
    ):
        for k in range(count):
            trace, at = f"a{window}-{k}", start + (k + 1) * 10 * SECOND_MS
            b.span(trace, "s", None, "a-1", "work", at, 10)
            if k < writes:
                b.log(trace, "s", "a-1", "INFO", "work: wrote the ledger", at + 5)
    _add_fillers(b, filler_ops)
    return b.data(Labels(service="a"))


def _add_fillers(b: Builder, filler_ops: int) -> None:
    """`filler_ops` operations of f-1 (10 + 5 spans each), 20 steady lines in each span."""
    for op in range(filler_ops):
        for window, (start, count) in enumerate(((T0_MS, 10), (T0_MS + 600 * SECOND_MS, 5))):
            for k in range(count):
                trace, at = f"f{op}-{window}-{k}", start + (k + 1) * 20 * SECOND_MS
                b.span(trace, "s", None, "f-1", f"op {_word(op)}", at, 10)
                for t in range(20):
                    b.log(
                        trace, "s", "f-1", "INFO", f"op {_word(op)}: step {_word(t)} done", at + 5
                    )


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


def _unlinked_incident() -> IncidentData:
    """Lines without trace ids. Each window has 20 requests `GET /x` (gw-1, then a-1's
    `GET /x` and its inner `write op`); a-1 writes "wrote the ledger" during each in the
    normal window and during 2 of 20 in the incident window. In the normal window a-1
    also serves 20 `GET /y`, each writing "listed the seats", and none in the incident
    window: a change in request mix, not a silence."""
    b = Builder()
    for window, start in enumerate((T0_MS, T0_MS + 600 * SECOND_MS)):
        for k in range(20):
            trace, at = f"x{window}-{k}", start + (k + 1) * 20 * SECOND_MS + 7
            b.span(trace, "r", None, "gw-1", "GET /x", at, 50)
            b.span(trace, "s", "r", "a-1", "GET /x", at + 1, 45)
            b.span(trace, "w", "s", "a-1", "write op", at + 2, 40)
            if window == 0 or k < 2:
                b.log(None, None, "a-1", "INFO", "write: wrote the ledger", at + 10)
            if window == 0:
                trace, at = f"y-{k}", at + 10 * SECOND_MS
                b.span(trace, "s", None, "a-1", "GET /y", at, 30)
                b.log(None, None, "a-1", "INFO", "seats: listed the seats", at + 10)
    return b.data(Labels(service="a"))


def test_lines_without_trace_ids_fall_silent_against_their_writers_traffic() -> None:
    """Expected 20 x 20 / 20 = 20 ledger lines, seen 2: a fall of 0.9 at z = 18 / sqrt(20)
    (4.02, strength 0.9); "listed the seats" fell with its writer's traffic (no `GET /y`
    ran) and is not silence. Every incident request through a-1 counts the silence
    once, at `UNLINKED_SHARE`: none can be shown to have written the line."""
    data = _unlinked_incident()
    with TelemetryStore.from_incident(data) as store:
        ctx = new_context(data.incident, store, use_logs=True, use_metrics=False)
        found = wide_silence(store, ctx)
        roots = {r.trace_id: r for r in _scored_roots(store, ctx)}
    assert [(i, o, t) for i, o, t, _ in found] == [
        ("a-1", ANY_OPERATION, "write: wrote the ledger")
    ]
    assert found[0][3] == pytest.approx(0.9)
    assert roots["x1-0"].silence == roots["x1-5"].silence == pytest.approx(0.9 * UNLINKED_SHARE)


def _complete_drop(filler_ops: int) -> IncidentData:
    """a-1's `work` writes "wrote the ledger" in 7 of 12 normal-window spans and in none
    of 5 incident-window spans (z = 2.23); fillers as in `_incident`."""
    return _ledger_incident((12, 7), (5, 0), filler_ops)


def test_a_complete_drop_over_few_spans_is_held_to_the_bound_in_a_sample() -> None:
    """Read whole, a line gone from every incident span needs only z >= 2 (2.23 here);
    over a sample of traces (`IncidentContext.sampled`) it must clear the bound for the
    101 rows tested (z ~ 3.4) like a partial drop, and does not."""
    data = _complete_drop(5)
    found = []
    for sampled in (False, True):
        with TelemetryStore.from_incident(data) as store:
            ctx = new_context(data.incident, store, use_logs=True, use_metrics=False)
            ctx.sampled = sampled
            found.append([(i, o, t) for i, o, t, _ in wide_silence(store, ctx)])
    assert found == [[("a-1", "work", "work: wrote the ledger")], []]
