"""`datasets convert`: every loader's incidents survive the trip through a bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from layouts_nezha import write_tiny_nezha
from layouts_small import write_tiny_rcd, write_tiny_whowhen

from tracehound.bundle import read_bundle, write_bundle
from tracehound.datasets import open_dataset


def _whowhen_both(root: Path) -> None:
    write_tiny_whowhen(root, hand_crafted=True)


def _nezha_two_days(root: Path) -> None:
    write_tiny_nezha(root)


LAYOUTS: dict[str, Callable[[Path], None]] = {
    "nezha": _nezha_two_days,
    "rcd": write_tiny_rcd,
    "who-and-when": _whowhen_both,
}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_converted_bundles_read_back_identically(tmp_path: Path, kind: str, fmt: str) -> None:
    LAYOUTS[kind](tmp_path / "src")
    dataset = open_dataset(tmp_path / "src")
    assert dataset.kind == kind
    incidents = dataset.incidents()
    assert incidents
    for incident in incidents:
        original = dataset.load(incident.id)
        back = read_bundle(write_bundle(original, tmp_path / "out" / incident.id, fmt))  # type: ignore[arg-type]
        assert back.incident == original.incident
        for name in ("spans", "metrics", "logs"):
            left, right = getattr(original, name), getattr(back, name)
            assert (left is None) == (right is None), name
            if left is not None:
                assert left.equals(right), (incident.id, name)
    converted = open_dataset(tmp_path / "out")
    assert converted.kind == "bundles"
    assert [i.id for i in converted.incidents()] == sorted(i.id for i in incidents)
    assert converted.info().fault_types == dataset.info().fault_types
