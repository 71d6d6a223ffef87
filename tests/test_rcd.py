"""RcdSockShopDataset on a tiny copy of the layout, and on the real set when present."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from layouts_small import RCD_COLUMNS, rcd_value, write_tiny_rcd

from tracehound.datasets.rcd import RcdSockShopDataset, edge_times
from tracehound.errors import BadInput
from tracehound.model import Window
from tracehound.tables import METRICS_SCHEMA

S = 1_000_000_000
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "rcd-sockshop"
VALUE_COLUMNS = len(RCD_COLUMNS) - 1  # 38


def _window(first_s: int, last_s: int) -> Window:
    return Window.from_ns(first_s * S, (last_s + 1) * S)


def _series(table: pa.Table, service: str, name: str) -> pa.Table:
    mask = pc.and_(pc.equal(table["service"], service), pc.equal(table["name"], name))
    return table.filter(mask)


@pytest.fixture
def tiny_rcd(tmp_path: Path) -> RcdSockShopDataset:
    write_tiny_rcd(tmp_path)
    return RcdSockShopDataset(tmp_path)


def test_detect_accepts_root_and_data_folder(tmp_path: Path) -> None:
    write_tiny_rcd(tmp_path / "rcd")
    (tmp_path / "other").mkdir()
    assert RcdSockShopDataset.detect(tmp_path / "rcd")
    assert RcdSockShopDataset.detect(tmp_path / "rcd" / "sock-shop-data")
    assert not RcdSockShopDataset.detect(tmp_path / "other")


def test_incidents_ids_order_and_labels(tiny_rcd: RcdSockShopDataset) -> None:
    incidents = tiny_rcd.incidents()
    assert [i.id for i in incidents] == ["rcd-carts-cpu-2", "rcd-carts-cpu-10", "rcd-orders-mem-2"]
    first = incidents[0]
    assert first.system == "sock-shop"
    assert first.window == _window(1_652_812_675, 1_652_812_677)
    assert first.normal_window == _window(1_652_565_600, 1_652_565_603)
    assert first.labels is not None
    assert first.labels.service == "carts"
    assert first.labels.fault_type == "cpu"
    assert first.labels.instance is None
    assert first.labels.fault_start == first.window.start
    last = incidents[2]
    assert last.labels is not None
    assert (last.labels.service, last.labels.fault_type) == ("orders", "mem")
    # The normal recording lies after the anomalous one: kept as is, not reordered.
    assert last.window == _window(1_652_846_051, 1_652_846_054)
    assert last.normal_window == _window(1_652_846_640, 1_652_846_641)


def test_root_given_as_data_folder_gives_same_incidents(tiny_rcd: RcdSockShopDataset) -> None:
    inner = RcdSockShopDataset(tiny_rcd.root / "sock-shop-data")
    assert inner.incidents() == tiny_rcd.incidents()


def test_info_counts(tiny_rcd: RcdSockShopDataset) -> None:
    info = tiny_rcd.info()
    assert info.kind == "rcd"
    assert info.incidents == 3
    assert info.fault_types == {"cpu": 2, "mem": 1}
    assert info.systems == ["sock-shop"]
    assert info.modalities == ["metrics"]
    assert info.missing == []


def test_load_unpivots_every_cell(tiny_rcd: RcdSockShopDataset) -> None:
    data = tiny_rcd.load("rcd-carts-cpu-2")
    metrics = data.metrics
    assert metrics is not None
    assert data.spans is None and data.logs is None
    assert data.notes == []
    assert metrics.schema == METRICS_SCHEMA
    assert metrics.num_rows == (4 + 3) * VALUE_COLUMNS
    assert set(metrics["node"].to_pylist()) == {""}
    assert pc.all(pc.equal(metrics["service"], metrics["instance"])).as_py()
    db_cpu = _series(metrics, "carts-db", "cpu")  # column 2 of the file
    assert db_cpu["ts_ns"].to_pylist() == [
        *(t * S for t in range(1_652_565_600, 1_652_565_604)),
        *(t * S for t in range(1_652_812_675, 1_652_812_678)),
    ]
    assert db_cpu["value"].to_pylist() == [
        *(rcd_value(2, r, anomalous=False) for r in range(4)),
        *(rcd_value(2, r, anomalous=True) for r in range(3)),
    ]
    lat = _series(metrics, "carts", "lat_90")
    assert lat["value"].to_pylist()[0] == rcd_value(RCD_COLUMNS.index("carts_lat_90"), 0, False)
    assert sorted(set(metrics["name"].to_pylist())) == [
        "cpu",
        "lat_50",
        "lat_90",
        "lat_99",
        "lod",
        "mem",
    ]
    assert len(set(metrics["service"].to_pylist())) == 13


def test_unknown_id_is_bad_input(tiny_rcd: RcdSockShopDataset) -> None:
    with pytest.raises(BadInput, match="rcd-carts-cpu-3"):
        tiny_rcd.load("rcd-carts-cpu-3")


def test_missing_normal_file_is_reported(tiny_rcd: RcdSockShopDataset) -> None:
    (tiny_rcd.root / "sock-shop-data" / "carts-cpu" / "10" / "normal.csv").unlink()
    assert tiny_rcd.missing() == ["carts-cpu/10: normal.csv is missing"]
    incident = tiny_rcd.incidents()[1]
    assert incident.normal_window is None
    data = tiny_rcd.load(incident.id)
    assert data.metrics is not None and data.metrics.num_rows == 5 * VALUE_COLUMNS
    assert data.notes == ["carts-cpu/10: normal.csv is missing"]


def test_listing_reads_edges_only_and_load_names_bad_cell(tiny_rcd: RcdSockShopDataset) -> None:
    path = tiny_rcd.root / "sock-shop-data" / "carts-cpu" / "10" / "anomalous.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(repr(rcd_value(1, 1, True)), "oops", 1)
    path.write_text("\n".join(lines) + "\n")
    assert len(tiny_rcd.incidents()) == 3  # the middle row is never read when listing
    with pytest.raises(BadInput, match=r"anomalous\.csv.*oops"):
        tiny_rcd.load("rcd-carts-cpu-10")


def test_edge_times_without_final_newline_and_unsorted(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("time,carts_cpu\n10,1.0\n11,2.0\n12,3.0\n\n")
    assert edge_times(path) == (10 * S, 12 * S)
    path.write_text("time,carts_cpu\n10,1.0\n12,2.0\n9,3.0")
    assert edge_times(path) == (9 * S, 12 * S)


@pytest.mark.integration
def test_real_rcd_set() -> None:
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent")
    dataset = RcdSockShopDataset(REAL)
    info = dataset.info()
    assert info.incidents == 50
    assert info.fault_types == {"cpu": 25, "mem": 25}
    assert info.missing == []
    data = dataset.load("rcd-carts-cpu-1")
    assert data.incident.window == _window(1_652_812_675, 1_652_812_956)
    assert data.incident.normal_window == _window(1_652_565_600, 1_652_565_891)
    metrics = data.metrics
    assert metrics is not None
    assert metrics.num_rows == (292 + 282) * 38
    assert metrics["value"].null_count == 0
    first = _series(metrics, "carts-db", "cpu")
    assert first["ts_ns"][0].as_py() == 1_652_565_600 * S
    assert first["value"][0].as_py() == pytest.approx(100.19, abs=0.01)
    anomalous_start = 1_652_812_675 * S
    carts = _series(metrics, "carts", "cpu")
    carts = carts.filter(pc.equal(carts["ts_ns"], anomalous_start))
    assert carts["value"][0].as_py() == pytest.approx(100.0627, abs=1e-4)
