"""A directory of incident bundles is a dataset (a single bundle is a dataset of one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tracehound.bundle import is_bundle, read_bundle, read_incident
from tracehound.datasets.base import Dataset
from tracehound.errors import BadInput
from tracehound.model import Incident, IncidentData
from tracehound.tables import TABLE_NAMES

_MODALITY = {"spans": "traces", "logs": "logs", "metrics": "metrics"}


class BundleDataset(Dataset):
    """Bundles in `root` (sorted by directory name), or `root` itself when it is one."""

    kind = "bundles"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return _looks_like_bundle(root) or any(_looks_like_bundle(c) for c in _children(root))

    def bundle_dirs(self) -> list[Path]:
        """Bundle directories; one holding tables but no incident.json counts, so that
        reading it reports the missing file instead of an unknown layout."""
        if _looks_like_bundle(self.root):
            return [self.root]
        return [child for child in _children(self.root) if _looks_like_bundle(child)]

    def incidents(self) -> list[Incident]:
        return [read_incident(directory) for directory in self.bundle_dirs()]

    def _directory_of(self, incident_id: str) -> Path:
        for directory in self.bundle_dirs():
            if directory.name == incident_id or read_incident(directory).id == incident_id:
                return directory
        raise BadInput(f"no incident with id {incident_id!r}", file=self.root)

    def load(self, incident_id: str) -> IncidentData:
        return read_bundle(self._directory_of(incident_id))

    def __iter__(self) -> Iterator[IncidentData]:
        for directory in self.bundle_dirs():
            yield read_bundle(directory)

    def modalities(self) -> list[str]:
        present: set[str] = set()
        for directory in self.bundle_dirs():
            for name in TABLE_NAMES:
                if any((directory / f"{name}.{s}").is_file() for s in ("parquet", "csv")):
                    present.add(_MODALITY[name])
        return [m for m in ("traces", "logs", "metrics") if m in present]


def _looks_like_bundle(directory: Path) -> bool:
    if is_bundle(directory):
        return True
    return any(
        (directory / f"{name}.{suffix}").is_file()
        for name in TABLE_NAMES
        for suffix in ("parquet", "csv")
    )


def _children(root: Path) -> list[Path]:
    return sorted(child for child in root.iterdir() if child.is_dir())
