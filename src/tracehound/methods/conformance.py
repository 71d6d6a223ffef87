"""The public conformance suite: checks every method against the contract (ARCHITECTURE §4.1).

After scikit-learn's `check_estimator`. `check_method(MyMethod)` runs every check on a
small simulated incident and raises `ConformanceError` listing each failure. A method may
be exempt from a check only through its `conformance_exemptions` class attribute, which
maps the check's name to the written reason; `CHECKS` lists the names.

A method tagged `uses_llm` whose `conformance_model()` returns a scripted model runs every
check against that model (`llm.method_session.backend_override`): no server, no network.

Checks:
- `params`: `__init__` takes only keyword-only parameters with defaults and stores them
  unchanged; `get_params` / `set_params` round-trip; unknown parameters are an error.
- `valid_ranking`: finite scores in non-increasing order, no duplicate names, every
  candidate a service/instance (or span) that the incident's telemetry contains, and at
  least one service candidate.
- `not_mutated`: the incident and the store's contents are the same after `localize`.
- `deterministic`: (deterministic methods) two runs on fresh stores give equal rankings.
- `missing_modality`: removing each required modality raises `MissingModality`.
- `time_budget`: `localize` on the small incident finishes within the budget.
"""

from __future__ import annotations

import inspect
import itertools
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cache

from tracehound.errors import MissingModality, TracehoundError
from tracehound.methods.base import Method
from tracehound.methods.candidates import candidate_names
from tracehound.model import IncidentData, Ranking
from tracehound.store import TelemetryStore

CHECKS = (
    "params",
    "valid_ranking",
    "not_mutated",
    "deterministic",
    "missing_modality",
    "time_budget",
)
DEFAULT_TIME_BUDGET_S = 30.0
_TABLE_OF = {"traces": "spans", "logs": "logs", "metrics": "metrics"}


class ConformanceError(TracehoundError):
    """A method broke the contract; the message lists every failed check."""


@dataclass
class ConformanceReport:
    method: str
    passed: list[str] = field(default_factory=list)
    exempt: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@cache
def small_incident(seed: int = 11) -> IncidentData:
    """The conformance incident: a small simulated system with one cpu fault.

    It has all three modalities, a normal window and labels.
    """
    from tracehound.simulate import generate_incident, generate_system

    system = generate_system(12, seed)
    return generate_incident(system, index=1, seed=seed, fault_type="cpu", target_spans=4000)


def check_method(
    method_class: type[Method],
    *,
    data: IncidentData | None = None,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
) -> ConformanceReport:
    """Run every check on `method_class`; raise `ConformanceError` if any fails."""
    data = data if data is not None else small_incident()
    report = ConformanceReport(method=getattr(method_class, "name", method_class.__name__))
    exemptions = dict(getattr(method_class, "conformance_exemptions", {}))
    unknown = set(exemptions) - set(CHECKS)
    if unknown:
        report.failed["exemptions"] = f"unknown check name(s) {sorted(unknown)}"
    checks: dict[str, Callable[[], None]] = {
        "params": lambda: _check_params(method_class),
        "valid_ranking": lambda: _check_valid_ranking(method_class, data),
        "not_mutated": lambda: _check_not_mutated(method_class, data),
        "deterministic": lambda: _check_deterministic(method_class, data),
        "missing_modality": lambda: _check_missing_modality(method_class, data),
        "time_budget": lambda: _check_time_budget(method_class, data, time_budget_s),
    }
    for name, check in checks.items():
        if name in exemptions:
            if not exemptions[name].strip():
                report.failed[name] = "exempt without a written reason"
            else:
                report.exempt[name] = exemptions[name]
            continue
        try:
            with _model_for(method_class):
                check()
        except AssertionError as exc:
            report.failed[name] = str(exc) or "assertion failed"
        except Exception as exc:
            report.failed[name] = f"raised {type(exc).__name__}: {exc}"
        else:
            report.passed.append(name)
    if report.failed:
        lines = "; ".join(f"{check}: {why}" for check, why in report.failed.items())
        raise ConformanceError(f"method {report.method!r} fails conformance: {lines}")
    return report


def _model_for(method_class: type[Method]) -> AbstractContextManager[object]:
    """The scripted model an LLM method runs against in the checks, if it offers one."""
    model = method_class.conformance_model() if method_class.tags.uses_llm else None
    if model is None:
        return nullcontext()
    from tracehound.llm.method_session import backend_override

    return backend_override(model)


def _run(method: Method, data: IncidentData) -> Ranking:
    with TelemetryStore.from_incident(data) as store:
        return method.localize(data.incident, store)


def _check_params(method_class: type[Method]) -> None:
    signature = inspect.signature(method_class.__init__)
    for parameter in signature.parameters.values():
        if parameter.name == "self":
            continue
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, (
            f"__init__ parameter {parameter.name!r} is not keyword-only"
        )
        assert parameter.default is not inspect.Parameter.empty, (
            f"__init__ parameter {parameter.name!r} has no default"
        )
    method = method_class()
    params = method.get_params()
    defaults = {p.name: p.default for p in signature.parameters.values() if p.name != "self"}
    assert params == defaults, f"get_params() {params} differs from the defaults {defaults}"
    clone = method_class(**params)
    assert clone.get_params() == params, "a clone from get_params() has other parameters"
    assert method.set_params(**params) is method, "set_params() does not return self"
    try:
        method.set_params(no_such_parameter_xyz=1)
    except TracehoundError:
        pass
    else:
        raise AssertionError("set_params() accepted an unknown parameter")


def _check_valid_ranking(method_class: type[Method], data: IncidentData) -> None:
    ranking = _run(method_class(), data)
    assert isinstance(ranking, Ranking), f"localize() returned {type(ranking).__name__}"
    assert ranking.services, "the ranking has no service candidates"
    with TelemetryStore.from_incident(data) as store:
        services, instances = candidate_names(store)
        spans = set(store.query("SELECT DISTINCT span_id FROM spans").column(0).to_pylist())
    allowed = {"service": set(services), "instance": set(instances), "span": spans}
    for level, candidates in (
        ("services", ranking.services),
        ("instances", ranking.instances),
        ("spans", ranking.spans),
    ):
        names = [c.name for c in candidates]
        assert len(names) == len(set(names)), f"duplicate {level}: {names}"
        scores = [c.score for c in candidates]
        assert all(math.isfinite(s) for s in scores), f"non-finite score among {level}"
        assert all(a >= b for a, b in itertools.pairwise(scores)), (
            f"{level} are not ordered best first by score"
        )
        for candidate in candidates:
            expected_kind = level[:-1]
            assert candidate.kind == expected_kind, (
                f"{candidate.name!r} listed in {level} has kind {candidate.kind!r}"
            )
            assert candidate.name in allowed[expected_kind], (
                f"{expected_kind} {candidate.name!r} does not occur in the incident"
            )


def _fingerprint(store: TelemetryStore) -> tuple[object, ...]:
    parts: list[object] = []
    for table in ("spans", "metrics", "logs"):
        row = store.query(f"SELECT count(*), sum(hash(t)) FROM {table} t").to_pylist()[0]
        parts.append(tuple(row.values()))
    return tuple(parts)


def _check_not_mutated(method_class: type[Method], data: IncidentData) -> None:
    incident_before = data.incident.model_dump_json()
    tables_before = {
        name: getattr(data, name).to_pydict() if getattr(data, name) is not None else None
        for name in ("spans", "metrics", "logs")
    }
    with TelemetryStore.from_incident(data) as store:
        before = _fingerprint(store)
        method_class().localize(data.incident, store)
        assert _fingerprint(store) == before, "localize() changed the store's telemetry"
    assert data.incident.model_dump_json() == incident_before, "localize() changed the incident"
    for name, table in tables_before.items():
        current = getattr(data, name)
        assert (current.to_pydict() if current is not None else None) == table, (
            f"the incident's {name} table changed"
        )


def _check_deterministic(method_class: type[Method], data: IncidentData) -> None:
    if not method_class.tags.deterministic:
        return
    first = _run(method_class(), data)
    second = _run(method_class(), data)
    assert first == second, "two runs on the same incident gave different rankings"


def _check_missing_modality(method_class: type[Method], data: IncidentData) -> None:
    for modality in sorted(method_class.tags.modalities):
        table = _TABLE_OF[modality]
        reduced = IncidentData(
            incident=data.incident,
            spans=None if table == "spans" else data.spans,
            metrics=None if table == "metrics" else data.metrics,
            logs=None if table == "logs" else data.logs,
        )
        try:
            _run(method_class(), reduced)
        except MissingModality as exc:
            assert str(exc).strip(), "MissingModality without a message"
        else:
            raise AssertionError(f"no MissingModality error when {modality} are absent")
    if method_class.tags.needs_normal_window:
        reduced = IncidentData(
            incident=data.incident.model_copy(update={"normal_window": None}),
            spans=data.spans,
            metrics=data.metrics,
            logs=data.logs,
        )
        try:
            _run(method_class(), reduced)
        except MissingModality:
            pass
        else:
            raise AssertionError("no MissingModality error without a normal window")


def _check_time_budget(method_class: type[Method], data: IncidentData, budget_s: float) -> None:
    started = time.perf_counter()
    _run(method_class(), data)
    elapsed = time.perf_counter() - started
    assert elapsed <= budget_s, f"localize() took {elapsed:.1f} s, over the {budget_s} s budget"
