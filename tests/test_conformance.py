"""The conformance suite runs over every registered method, and catches broken ones."""

from __future__ import annotations

import itertools
from typing import ClassVar

import pytest

from tracehound.methods import Method, Tags, available_methods
from tracehound.methods.conformance import CHECKS, ConformanceError, check_method
from tracehound.methods.random import RandomMethod
from tracehound.model import Candidate, Incident, Ranking
from tracehound.store import TelemetryStore


@pytest.mark.parametrize("name", sorted(available_methods()))
def test_registered_method_conforms(name: str) -> None:
    report = check_method(available_methods()[name])
    assert set(report.passed) | set(report.exempt) == set(CHECKS)
    for check, reason in report.exempt.items():
        assert reason.strip(), f"{name} is exempt from {check} without a reason"


def test_builtin_methods_are_registered_through_entry_points() -> None:
    methods = available_methods()
    assert methods["random"] is RandomMethod


class _Base(Method):
    name = "broken"
    tags = Tags(modalities=frozenset({"traces"}))

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def candidates(self, store: TelemetryStore) -> list[str]:
        return store.query("SELECT DISTINCT service FROM spans ORDER BY 1").column(0).to_pylist()

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        self.check_inputs(incident, store)
        names = self.candidates(store)
        return Ranking(
            services=[
                Candidate(kind="service", name=n, score=float(len(names) - i))
                for i, n in enumerate(names)
            ]
        )


def test_the_control_passes() -> None:
    assert check_method(_Base).failed == {}


class _NanScores(_Base):
    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        ranking = super().localize(incident, store)
        first = ranking.services[0].model_copy(update={"score": float("nan")})
        return Ranking(services=[first, *ranking.services[1:]])


class _Duplicates(_Base):
    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        ranking = super().localize(incident, store)
        return Ranking(services=[ranking.services[0], *ranking.services])


class _Unordered(_Base):
    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        return Ranking(services=list(reversed(super().localize(incident, store).services)))


class _Invented(_Base):
    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        ranking = super().localize(incident, store)
        ghost = Candidate(kind="service", name="not-in-the-data", score=1e9)
        return Ranking(services=[ghost, *ranking.services])


class _Mutating(_Base):
    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        store.con.execute("DELETE FROM logs WHERE level = 'INFO'")
        return super().localize(incident, store)


_calls = itertools.count()


class _Flaky(_Base):
    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        ranking = super().localize(incident, store)
        if next(_calls) % 2:
            return Ranking(services=ranking.services[:1])
        return ranking


class _IgnoresModality(_Base):
    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        names = store.query("SELECT DISTINCT service FROM metrics ORDER BY 1").column(0)
        return Ranking(
            services=[
                Candidate(kind="service", name=n, score=-float(i))
                for i, n in enumerate(names.to_pylist())
            ]
        )


class _PositionalParam(_Base):
    def __init__(self, seed: int = 0) -> None:  # not keyword-only
        self.seed = seed


class _LogicInInit(_Base):
    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed + 1


class _UnreasonedExemption(_NanScores):
    conformance_exemptions: ClassVar[dict[str, str]] = {"valid_ranking": "  "}


@pytest.mark.parametrize(
    ("broken", "check", "fragment"),
    [
        (_NanScores, "valid_ranking", "non-finite score"),
        (_Duplicates, "valid_ranking", "duplicate services"),
        (_Unordered, "valid_ranking", "not ordered best first"),
        (_Invented, "valid_ranking", "'not-in-the-data' does not occur"),
        (_Mutating, "not_mutated", "changed the store"),
        (_Flaky, "deterministic", "different rankings"),
        (_IgnoresModality, "missing_modality", "no MissingModality error when traces"),
        (_PositionalParam, "params", "is not keyword-only"),
        (_LogicInInit, "params", "differs from the defaults"),
        (_UnreasonedExemption, "valid_ranking", "exempt without a written reason"),
    ],
)
def test_broken_methods_fail(broken: type[Method], check: str, fragment: str) -> None:
    with pytest.raises(ConformanceError) as info:
        check_method(broken)
    message = str(info.value)
    assert f"{check}: " in message
    assert fragment in message


def test_time_budget_is_enforced() -> None:
    with pytest.raises(ConformanceError, match="time_budget: localize\\(\\) took"):
        check_method(_Base, time_budget_s=0.0)


def test_written_exemption_is_honoured() -> None:
    class _Exempt(_Unordered):
        conformance_exemptions: ClassVar[dict[str, str]] = {
            "valid_ranking": "scores are undefined for this demo"
        }

    report = check_method(_Exempt)
    assert report.exempt == {"valid_ranking": "scores are undefined for this demo"}
    assert "valid_ranking" not in report.passed


def test_the_documented_example_method_conforms() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "methods.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/methods.md", "exec"), namespace)
    example = namespace["SlowestServices"]
    assert isinstance(example, type) and issubclass(example, Method)
    assert check_method(example).failed == {}
