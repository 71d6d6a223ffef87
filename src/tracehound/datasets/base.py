"""The loader contract: a dataset is a directory that yields labelled incidents.

A loader parses one published layout. It lists incidents cheaply (metadata only) and
loads one incident's telemetry on demand, so `datasets info` never reads every table.
Loaders are the only modules that know a layout; nothing downstream branches on the
dataset kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from tracehound.model import Incident, IncidentData, Window


class DatasetInfo(BaseModel):
    """What `tracehound datasets info` reports."""

    kind: str
    path: str
    incidents: int
    fault_types: dict[str, int]
    systems: list[str]
    modalities: list[str]
    time_span: Window | None = None
    #: Files or rows the layout should have but that are absent, one line each.
    missing: list[str] = Field(default_factory=list)


class Dataset(ABC):
    """A dataset on disk in one layout."""

    kind: ClassVar[str]

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    @abstractmethod
    def detect(cls, root: Path) -> bool:
        """True when `root` is laid out the way this loader reads."""

    @abstractmethod
    def incidents(self) -> list[Incident]:
        """Every incident's metadata and labels, in a stable order, without telemetry."""

    @abstractmethod
    def load(self, incident_id: str) -> IncidentData:
        """One incident with its telemetry tables (raises `BadInput` for unknown ids)."""

    @abstractmethod
    def modalities(self) -> list[str]:
        """The modalities present, from {"traces", "logs", "metrics"}, without loading."""

    def missing(self) -> list[str]:
        """Files the layout should hold but does not, one readable line each."""
        return []

    def __iter__(self) -> Iterator[IncidentData]:
        for incident in self.incidents():
            yield self.load(incident.id)

    def info(self) -> DatasetInfo:
        incidents = self.incidents()
        fault_types = Counter(
            (i.labels.fault_type if i.labels and i.labels.fault_type else "unlabelled")
            for i in incidents
        )
        systems = sorted({i.system for i in incidents if i.system})
        span = None
        if incidents:
            span = Window(
                start=min(i.window.start for i in incidents),
                end=max(i.window.end for i in incidents),
            )
        return DatasetInfo(
            kind=self.kind,
            path=str(self.root),
            incidents=len(incidents),
            fault_types=dict(sorted(fault_types.items(), key=lambda kv: (-kv[1], kv[0]))),
            systems=systems,
            modalities=self.modalities(),
            time_span=span,
            missing=self.missing(),
        )
