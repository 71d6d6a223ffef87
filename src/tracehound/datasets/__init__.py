"""Dataset loaders. `open_dataset` picks the loader whose layout matches a path.

A path is a directory in a dataset layout, a bundle, or a telemetry export: a Jaeger,
Zipkin, OTLP JSON or Prometheus file, or a directory of such files.
"""

from __future__ import annotations

from pathlib import Path

from tracehound.datasets.base import Dataset, DatasetInfo
from tracehound.errors import BadInput, UnknownDataset

__all__ = ["Dataset", "DatasetInfo", "file_loaders", "loaders", "open_dataset"]


def loaders() -> list[type[Dataset]]:
    """Every loader, most specific layout first."""
    from tracehound.datasets.bundles import BundleDataset
    from tracehound.datasets.exports import MixedExportDataset
    from tracehound.datasets.jaeger import JaegerDataset
    from tracehound.datasets.nezha import NezhaDataset
    from tracehound.datasets.otlp_file import OtlpFileDataset
    from tracehound.datasets.prometheus import PrometheusDataset
    from tracehound.datasets.rcaeval import RcaEvalDataset
    from tracehound.datasets.rcd import RcdSockShopDataset
    from tracehound.datasets.whowhen import WhoWhenDataset
    from tracehound.datasets.zipkin import ZipkinDataset

    # RCAEval first: its RE2 case folders hold a metrics.csv, which would otherwise
    # pass for a bundle without incident.json.
    return [
        RcaEvalDataset,
        BundleDataset,
        NezhaDataset,
        RcdSockShopDataset,
        WhoWhenDataset,
        JaegerDataset,
        ZipkinDataset,
        PrometheusDataset,
        OtlpFileDataset,
        MixedExportDataset,
    ]


def file_loaders() -> list[type[Dataset]]:
    """The loaders that read a single file."""
    from tracehound.datasets.jaeger import JaegerDataset
    from tracehound.datasets.otlp_file import OtlpFileDataset
    from tracehound.datasets.prometheus import PrometheusDataset
    from tracehound.datasets.zipkin import ZipkinDataset

    return [JaegerDataset, ZipkinDataset, PrometheusDataset, OtlpFileDataset]


def open_dataset(path: str | Path) -> Dataset:
    """The dataset at `path`, read by the loader whose layout it matches."""
    root = Path(path)
    if not root.exists():
        raise BadInput("path does not exist", file=root, hint="Check the spelling.")
    if not root.is_dir():
        for loader in file_loaders():
            if loader.detect(root):
                return loader(root)
        raise UnknownDataset(
            "is not a telemetry file tracehound reads",
            file=root,
            expected="a Jaeger, Zipkin, OTLP or Prometheus JSON file, a dataset directory "
            "or an incident bundle directory",
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
