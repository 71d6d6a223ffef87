"""One exception hierarchy. The CLI turns each into a one-paragraph message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class TracehoundError(Exception):
    """Base of every error tracehound raises on purpose."""


class BadInput(TracehoundError):
    """Input that cannot be used: a missing file, a wrong type, an unparsable time.

    The message names the file, the row (1-based data row, header excluded) and the
    column where there are ones, and says what was expected.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.row = row
        self.column = column
        self.expected = expected
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        text = self.problem
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.expected:
            text += f"; expected {self.expected}"
        if not text.endswith("."):
            text += "."
        if self.hint:
            text += f" {self.hint}"
        return text


class UnknownDataset(BadInput):
    """A path that is not a dataset layout tracehound knows."""


class MissingModality(TracehoundError):
    """A method needs a table (traces, logs or metrics) the incident does not have."""


class LLMError(TracehoundError):
    """An LLM call that failed for good (after retries), or a configuration that cannot
    work (no endpoint, no model); the message says what to set."""


class BudgetExceeded(LLMError):
    """An investigation's LLM budget (calls or tokens) is spent; no further call is made.

    Callers fall back to the rule reasoner for the agents still waiting."""
