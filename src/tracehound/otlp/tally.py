"""Counts of rejected and amended items in one export request, and their message.

The message goes back to the exporter in the response's `partial_success.error_message`
(OTLP: a human-readable English explanation of what was rejected and why).
"""

from __future__ import annotations

from collections import Counter

#: The largest time OTLP's unsigned 64-bit nanoseconds may hold in an int64 column.
MAX_NS = 2**63 - 1


class Tally:
    """Rejected items by reason, and kept-but-amended items by reason."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        self.rejected: Counter[str] = Counter()
        self.amended: Counter[str] = Counter()

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def amend(self, reason: str) -> None:
        self.amended[reason] += 1

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def message(self) -> str:
        """One English sentence per kind of problem; "" when there is none."""
        parts = []
        if self.rejected:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.rejected.items()))
            parts.append(f"rejected {self.rejected_count} {self.noun}: {reasons}.")
        if self.amended:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.amended.items()))
            parts.append(f"kept {sum(self.amended.values())} {self.noun} with changes: {reasons}.")
        return " ".join(parts)
