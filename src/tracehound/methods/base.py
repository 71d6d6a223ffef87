"""The method contract (ARCHITECTURE §4.1), shaped after scikit-learn's estimators.

A method is a class with keyword-only parameters that `__init__` stores and does nothing
else with; `get_params` / `set_params` read and write them; `fit(history)` may learn from
past incidents and returns `self` (learned state ends in `_`); `localize(incident, store)`
returns a `Ranking`. Class tags say which modalities a method needs, whether it uses an
LLM, whether it is deterministic, and whether it needs a normal window.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from tracehound.errors import BadInput, MissingModality
from tracehound.model import Incident, IncidentData, Ranking
from tracehound.store import TelemetryStore

if TYPE_CHECKING:
    from tracehound.llm.backend import Backend

MODALITIES = ("traces", "logs", "metrics")


@dataclass(frozen=True)
class Tags:
    """What a method needs and promises.

    `modalities` are required (all of them); `any_modality` lets a method run on any
    one of them (a method that ranks from whatever telemetry exists).
    """

    modalities: frozenset[str] = field(default_factory=frozenset)
    uses_llm: bool = False
    deterministic: bool = True
    needs_normal_window: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "modalities": sorted(self.modalities, key=MODALITIES.index),
            "uses_llm": self.uses_llm,
            "deterministic": self.deterministic,
            "needs_normal_window": self.needs_normal_window,
        }


class Method(ABC):
    """Base class of every root-cause localization method."""

    name: ClassVar[str]
    tags: ClassVar[Tags] = Tags()
    #: Conformance checks this method is exempt from, each with the reason (check name →
    #: reason). Keep empty unless a check truly cannot apply.
    conformance_exemptions: ClassVar[dict[str, str]] = {}

    @classmethod
    def param_names(cls) -> list[str]:
        """The keyword-only parameters of `__init__`, in order."""
        signature = inspect.signature(cls.__init__)
        return [
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
        ]

    def get_params(self) -> dict[str, Any]:
        """The method's parameters, as passed to `__init__`."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set parameters by name; unknown names are an error."""
        known = set(self.param_names())
        for name, value in params.items():
            if name not in known:
                raise BadInput(
                    f"method {self.name!r} has no parameter {name!r}",
                    expected=f"one of {', '.join(sorted(known)) or '(none)'}",
                )
            setattr(self, name, value)
        return self

    @classmethod
    def conformance_model(cls) -> Backend | None:
        """For a method tagged `uses_llm` that cannot run without a model: a scripted
        model (no server, no network) the conformance suite runs it against, through
        `llm.method_session.backend_override`. None (the default): the method needs none
        with its default parameters."""
        return None

    def fit(self, history: Iterable[IncidentData]) -> Self:
        """Learn from past incidents; the default learns nothing."""
        return self

    def get_tags(self) -> Tags:
        """The tags of this instance as configured: the class tags unless a parameter
        changes what the method needs or promises (an LLM reasoner, say)."""
        return self.tags

    @abstractmethod
    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        """Rank suspects for `incident`, whose telemetry is in `store`."""

    def check_inputs(self, incident: Incident, store: TelemetryStore) -> None:
        """Raise `MissingModality` when the incident lacks what the tags require."""
        present = set(store.modalities())
        tags = self.get_tags()
        missing = sorted(tags.modalities - present, key=MODALITIES.index)
        if missing:
            raise MissingModality(
                f"method {self.name!r} needs {', '.join(missing)}, which incident "
                f"{incident.id!r} does not have (it has: {', '.join(sorted(present)) or 'none'})"
            )
        if not present:
            raise MissingModality(f"incident {incident.id!r} has no telemetry at all")
        if tags.needs_normal_window and incident.normal_window is None:
            raise MissingModality(
                f"method {self.name!r} needs a normal (fault-free) window, and incident "
                f"{incident.id!r} has none"
            )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
