"""Dataset loaders. `open_dataset` picks the loader whose layout matches a directory."""

from __future__ import annotations

from pathlib import Path

from tracehound.datasets.base import Dataset, DatasetInfo
from tracehound.errors import BadInput, UnknownDataset

__all__ = ["Dataset", "DatasetInfo", "loaders", "open_dataset"]


def loaders() -> list[type[Dataset]]:
    """Every loader, most specific layout first."""
    from tracehound.datasets.bundles import BundleDataset
    from tracehound.datasets.nezha import NezhaDataset
    from tracehound.datasets.rcd import RcdSockShopDataset
    from tracehound.datasets.whowhen import WhoWhenDataset

    return [BundleDataset, NezhaDataset, RcdSockShopDataset, WhoWhenDataset]


def open_dataset(path: str | Path) -> Dataset:
    """The dataset at `path`, read by the loader whose layout it matches."""
    root = Path(path)
    if not root.exists():
        raise BadInput("path does not exist", file=root, hint="Check the spelling.")
    if not root.is_dir():
        raise BadInput(
            "is not a directory",
            file=root,
            expected="a dataset directory or an incident bundle directory",
        )
    for loader in loaders():
        if loader.detect(root):
            return loader(root)
    kinds = ", ".join(loader.kind for loader in loaders())
    raise UnknownDataset(
        "is not a dataset layout tracehound knows",
        file=root,
        expected=f"one of: {kinds} (see docs/bundle-format.md for bundles)",
    )
