"""The Nezha loader on a tiny fake layout (exact outcomes) and on the development copy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from layouts_nezha import (
    BASIC,
    CART,
    CONTACTS,
    CONTACTS_LABEL,
    CONTACTS_NODE,
    FRONT_NAMES,
    LOG_0845_PARSED,
    LOG_0845_TIMES,
    LOG_HEADER,
    METRIC_NAMES,
    NAN_METRICS,
    SPAN_A_CHILD,
    SPAN_A_ROOT,
    TRACE_A,
    docker_json,
    log_row,
    write_tiny_nezha,
)

from tracehound.datasets.nezha import NezhaDataset, service_of_pod
from tracehound.errors import BadInput
from tracehound.model import IncidentData, Window

DEV_COPY = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nezha"
TT = "nezha-tt-2023-01-29"
OB_ID = "nezha-ob-2022-08-22-01"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(start: str, end: str) -> Window:
    return Window(start=utc(start), end=utc(end))


@pytest.fixture
def tiny(tmp_path: Path) -> NezhaDataset:
    write_tiny_nezha(tmp_path)
    return NezhaDataset(tmp_path)


@pytest.fixture
def first(tiny: NezhaDataset) -> IncidentData:
    return tiny.load(f"{TT}-01")


def column(table: pa.Table | None, name: str) -> list[object]:
    assert table is not None
    return list(table.column(name).to_pylist())


# --------------------------------------------------------------------------- metadata


def test_detect(tmp_path: Path) -> None:
    assert not NezhaDataset.detect(tmp_path)
    (tmp_path / "rca_data" / "2023-01-29").mkdir(parents=True)
    assert not NezhaDataset.detect(tmp_path)
    write_tiny_nezha(tmp_path)
    assert NezhaDataset.detect(tmp_path)


def test_service_of_pod() -> None:
    assert service_of_pod(CONTACTS) == "ts-contacts-service"
    assert service_of_pod("redis-cart") == "redis-cart"


def test_incidents_are_ordered_by_day_then_time_with_labels(tiny: NezhaDataset) -> None:
    incidents = tiny.incidents()
    assert [i.id for i in incidents] == [OB_ID, f"{TT}-01", f"{TT}-02", f"{TT}-03"]
    assert [i.system for i in incidents] == ["online-boutique"] + ["train-ticket"] * 3
    labels = [i.labels for i in incidents]
    assert all(label is not None for label in labels)
    assert [(lb.instance, lb.service, lb.fault_type, lb.detail) for lb in labels if lb] == [
        (CART, "cartservice", "cpu_consumed", None),
        (CONTACTS, "ts-contacts-service", "return", CONTACTS_LABEL),
        (BASIC, "ts-basic-service", "exception", None),
        (CONTACTS, "ts-contacts-service", "cpu_contention", "CpuUsageRate(%)"),
    ]
    # inject_time read as UTC; the (8 h early) inject_timestamp is ignored.
    assert [lb.fault_start for lb in labels if lb] == [
        utc("2022-08-22T03:51:00"),
        utc("2023-01-29T08:43:04"),
        utc("2023-01-29T08:52:06"),
        utc("2023-01-29T13:31:54"),
    ]


def test_incident_windows_are_estimated_from_file_names(tiny: NezhaDataset) -> None:
    by_id = {i.id: i for i in tiny.incidents()}
    assert by_id[OB_ID].window == window("2022-08-22T03:51", "2022-08-22T03:54")
    assert by_id[OB_ID].normal_window is None
    assert by_id[f"{TT}-01"].window == window("2023-01-29T08:43", "2023-01-29T08:46")
    # A +0 file exists for incident 02, and it may start a minute before its tag.
    assert by_id[f"{TT}-02"].window == window("2023-01-29T08:51", "2023-01-29T08:55")
    assert by_id[f"{TT}-03"].window == window("2023-01-29T13:31", "2023-01-29T13:34")
    normal = window("2023-01-29T08:47", "2023-01-29T08:51")
    assert {by_id[f"{TT}-0{n}"].normal_window for n in (1, 2, 3)} == {normal}


def test_info_and_missing(tiny: NezhaDataset, tmp_path: Path) -> None:
    info = tiny.info()
    assert info.incidents == 4
    assert info.fault_types == {
        "cpu_consumed": 1,
        "cpu_contention": 1,
        "exception": 1,
        "return": 1,
    }
    assert info.systems == ["online-boutique", "train-ticket"]
    assert info.modalities == ["traces", "logs", "metrics"]
    ob, tt = tmp_path / "rca_data" / "2022-08-22", tmp_path / "rca_data" / "2023-01-29"
    assert info.missing == [
        f"{ob}/log/03_53_log.csv ({OB_ID}: no log file for the analysis minute)",
        f"{tt}/trace/08_54_trace.csv ({TT}-02: no trace file for the analysis minute)",
        f"{tt}/log/08_54_log.csv ({TT}-02: no log file for the analysis minute)",
    ]


def test_missing_log_minute_is_reported_and_the_incident_still_loads(tmp_path: Path) -> None:
    write_tiny_nezha(tmp_path, drop_log_minute=True)
    dataset = NezhaDataset(tmp_path)
    line = (
        f"{tmp_path}/rca_data/2023-01-29/log/08_45_log.csv "
        f"({TT}-01: no log file for the analysis minute)"
    )
    assert line in dataset.missing()
    data = dataset.load(f"{TT}-01")
    assert data.notes == [line]
    assert data.spans is not None and data.spans.num_rows == 6
    # Only the baseline's log row is left; it still gives the contacts pod its node.
    assert column(data.logs, "ts_ns") == [1674982096550000000]
    metrics = data.metrics
    assert metrics is not None
    contacts = metrics.filter(pc.equal(metrics.column("instance"), CONTACTS))
    assert set(column(contacts, "node")) == {CONTACTS_NODE}


def test_unknown_id_is_bad_input(tiny: NezhaDataset) -> None:
    with pytest.raises(BadInput, match="unknown incident id 'nezha-tt-2023-01-29-99'"):
        tiny.load(f"{TT}-99")


# --------------------------------------------------------------------------- spans


def test_spans_are_deduplicated_and_converted(first: IncidentData) -> None:
    spans = first.spans
    assert spans is not None
    # 08_44 (+1) and 08_45 (+2) share trace A; then the baseline trace D.
    assert column(spans, "span_id") == [
        SPAN_A_ROOT[0],
        SPAN_A_CHILD[0],
        "c0c0c0c0c0c0c0c0",
        "b0b0b0b0b0b0b0b0",
        "d0d0d0d0d0d0d0d0",
        "d1d1d1d1d1d1d1d1",
    ]
    root, child = spans.slice(0, 2).to_pylist()
    assert root == {
        "trace_id": TRACE_A,
        "span_id": SPAN_A_ROOT[0],
        "parent_span_id": None,
        "service": "ts-gateway-service",
        "instance": SPAN_A_ROOT[2],
        "operation": "/*",
        "kind": "unset",
        "start_ns": 1674981892825000000,
        "duration_ns": 121989347,
        "status": "unset",
        "attributes": None,
    }
    assert child["parent_span_id"] == SPAN_A_ROOT[0]
    assert child["service"] == "ts-contacts-service"
    assert child["duration_ns"] == 69999877


def test_load_refines_windows_to_the_data(first: IncidentData) -> None:
    incident = first.incident
    assert incident.window == window("2023-01-29T08:43:30", "2023-01-29T08:45:05.100001")
    assert incident.normal_window == window("2023-01-29T08:48:16.478", "2023-01-29T08:51:04.146895")
    assert first.notes == []


def test_incident_with_only_the_first_minute_file(tiny: NezhaDataset) -> None:
    data = tiny.load(f"{TT}-02")
    assert data.incident.window == window("2023-01-29T08:51:30", "2023-01-29T08:51:30.250001")
    assert data.spans is not None and data.spans.num_rows == 3  # E + baseline D (2)
    assert data.logs is not None and data.logs.num_rows == 1  # baseline only
    assert len(data.notes) == 2


# --------------------------------------------------------------------------- logs


def test_logs_parse_levels_messages_and_times(first: IncidentData) -> None:
    logs = first.logs
    assert logs is not None
    assert logs.num_rows == 7  # six analysis rows, one baseline row
    analysis = logs.slice(0, 6)
    assert column(analysis, "ts_ns") == LOG_0845_TIMES
    assert list(zip(column(analysis, "level"), column(analysis, "message"), strict=True)) == (
        LOG_0845_PARSED
    )
    assert column(analysis, "trace_id")[2] is None
    assert column(analysis, "span_id")[2] is None
    assert column(analysis, "trace_id")[0] == TRACE_A
    assert column(analysis, "service")[0] == "ts-contacts-service"
    assert column(analysis, "node") == [CONTACTS_NODE] * 2 + ["33.33.33.167"] + [CONTACTS_NODE] * 3
    assert logs.column_names[:7] == [
        "ts_ns",
        "service",
        "instance",
        "level",
        "message",
        "trace_id",
        "span_id",
    ]


# --------------------------------------------------------------------------- metrics


def test_metrics_are_long_filtered_and_deduplicated(first: IncidentData) -> None:
    metrics = first.metrics
    assert metrics is not None
    per_pod = len(METRIC_NAMES) - len(NAN_METRICS)
    # Points are stamped at tick - 30 s: 14 of them in [08:33:30, 08:47:05.1] (ticks
    # 08:34:09-08:47:09) and 3 in the normal window [08:48:16.478, 08:51:04.1) (ticks
    # 08:49:09-08:51:09); rca and construct_data copies of the same rows count once.
    minutes = 14 + 3
    assert metrics.num_rows == minutes * (2 * per_pod + len(FRONT_NAMES))
    cpu = metrics.filter(
        pc.and_(
            pc.equal(metrics.column("instance"), CONTACTS),
            pc.equal(metrics.column("name"), "CpuUsageRate(%)"),
        )
    )
    times = [f"{datetime.fromtimestamp(t / 1e9, UTC):%H:%M:%S}" for t in column(cpu, "ts_ns")]
    assert times == [f"08:{m:02d}:39" for m in (*range(33, 47), 48, 49, 50)]
    assert set(column(cpu, "value")) == {1.7}
    assert set(column(cpu, "node")) == {CONTACTS_NODE}
    assert set(column(cpu, "service")) == {"ts-contacts-service"}
    names = set(column(metrics, "name"))
    assert not names & set(NAN_METRICS)
    front = metrics.filter(pc.equal(metrics.column("service"), "Frontend"))
    assert set(column(front, "instance")) == {""}
    assert set(column(front, "name")) == set(FRONT_NAMES)
    basic = metrics.filter(pc.equal(metrics.column("instance"), BASIC))
    assert set(column(basic, "node")) == {""}  # no basic-service log was loaded


def test_metric_points_sit_mid_minute_of_what_they_describe(tiny: NezhaDataset) -> None:
    data = tiny.load(f"{TT}-03")
    metrics = data.metrics
    assert metrics is not None
    cpu = metrics.filter(
        pc.and_(
            pc.equal(metrics.column("instance"), CONTACTS),
            pc.equal(metrics.column("name"), "CpuUsageRate(%)"),
        )
    )
    faulty = cpu.filter(pc.greater(cpu.column("value"), 50))
    first_faulty = datetime.fromtimestamp(column(faulty, "ts_ns")[0] / 1e9, UTC)
    # The row ticked 13:33:09 is the first to show the 13:31:54 fault; it describes
    # 13:32:09-13:33:09 and sits at 13:32:39, inside the analysis window.
    assert first_faulty == utc("2023-01-29T13:32:39")
    assert cpu.num_rows == 12 + 3  # stamps 13:22:39-13:33:39, then the baseline's three


def test_day_without_logs_or_baseline(tiny: NezhaDataset) -> None:
    data = tiny.load(OB_ID)
    assert data.logs is None
    assert data.incident.normal_window is None
    assert data.spans is not None and column(data.spans, "service") == ["frontend"]
    assert data.metrics is not None and data.metrics.num_rows == 10 * 16
    assert data.modalities == ["traces", "metrics"]


#: App lines of other systems' services (as Online Boutique's write them: Go's logrus,
#: Node's pino, Python's JSON logger, .NET's console logger, plain text) and the
#: (level, message) the loader must read from each.
OTHER_APP_LINES = [
    (
        '{"message":"TraceID: 5a SpanID: 6b PlaceOrder failed: rpc error","severity":"error"}',
        ("ERROR", "TraceID: 5a SpanID: 6b PlaceOrder failed: rpc error"),
    ),
    (
        '{"severity":"info","pid":1,"message":"TraceID: 5a SpanID: 6c Conversion request '
        'successful","v":1}',
        ("INFO", "TraceID: 5a SpanID: 6c Conversion request successful"),
    ),
    ('{"level":50,"time":1,"msg":"payment declined"}', ("ERROR", "payment declined")),
    ('{"level":40,"msg":"retrying charge"}', ("WARN", "retrying charge")),
    ('{"severity": "WARNING", "name": "r", "message": "slow list"}', ("WARNING", "slow list")),
    (
        "fail: cartservice.CartStore[0] Can't access cart storage",
        ("ERROR", "fail: cartservice.CartStore[0] Can't access cart storage"),
    ),
    ("[WARN] cache miss storm", ("WARN", "[WARN] cache miss storm")),
    ('time=1 level=error msg="boom"', ("ERROR", 'time=1 level=error msg="boom"')),
    (
        "TraceID: 5a SpanID: 6d GetCartAsync called with userId=u1",
        ("UNKNOWN", "TraceID: 5a SpanID: 6d GetCartAsync called with userId=u1"),
    ),
    ('{"foo": 1}', ("UNKNOWN", '{"foo": 1}')),
]


def test_logs_of_other_systems_give_their_levels_and_messages(tmp_path: Path) -> None:
    write_tiny_nezha(tmp_path)
    rows = [
        log_row(
            f"2022-08-22T03:52:{10 + k:02d}.5Z",
            "10.0.0.9",
            CART,
            "",
            "",
            docker_json(app + "\n", ""),
        )
        for k, (app, _) in enumerate(OTHER_APP_LINES)
    ]
    log_file = tmp_path / "rca_data" / "2022-08-22" / "log" / "03_53_log.csv"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(LOG_HEADER + "\n" + "".join(rows))
    logs = NezhaDataset(tmp_path).load(OB_ID).logs
    assert logs is not None
    parsed = list(zip(column(logs, "level"), column(logs, "message"), strict=True))
    assert parsed == [expected for _, expected in OTHER_APP_LINES]


def test_other_tables_in_a_metric_folder_are_skipped_and_named(tmp_path: Path) -> None:
    write_tiny_nezha(tmp_path)
    before = NezhaDataset(tmp_path).load(f"{TT}-01")
    extra = [
        tmp_path / "rca_data" / "2023-01-29" / "metric" / "dependency.csv",
        tmp_path / "construct_data" / "2023-01-29" / "metric" / "source_50.csv",
    ]
    extra[0].write_text("source,destination,count\nts-a,ts-b,3\n")
    extra[1].write_text("pod,value\nts-a-1-2,0.5\n")
    after = NezhaDataset(tmp_path).load(f"{TT}-01")
    assert after.metrics is not None and before.metrics is not None
    assert after.metrics.equals(before.metrics)
    assert after.notes == [
        *before.notes,
        *(
            f"{path}: skipped, not a metric file of this layout (its header lacks "
            "TimeStamp with PodName or ServiceName)"
            for path in extra  # the day's folder first, then the baseline's
        ),
    ]


# --------------------------------------------------------------------------- bad input


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number] = text
    path.write_text("\n".join(lines) + "\n")


def test_bad_number_in_trace_names_file_row_and_column(tmp_path: Path) -> None:
    write_tiny_nezha(tmp_path)
    path = tmp_path / "rca_data" / "2023-01-29" / "trace" / "08_45_trace.csv"
    fields = path.read_text().splitlines()[2].split(",")
    fields[5] = "soon"
    _replace_line(path, 2, ",".join(fields))
    with pytest.raises(BadInput) as caught:
        NezhaDataset(tmp_path).load(f"{TT}-01")
    assert caught.value.file == str(path)
    assert (caught.value.row, caught.value.column) == (2, "StartTimeUnixNano")


def test_short_row_names_file_and_row(tmp_path: Path) -> None:
    write_tiny_nezha(tmp_path)
    path = tmp_path / "rca_data" / "2023-01-29" / "trace" / "08_45_trace.csv"
    _replace_line(path, 3, "only,three,fields")
    with pytest.raises(BadInput, match="wrong number of fields") as caught:
        NezhaDataset(tmp_path).load(f"{TT}-01")
    assert (caught.value.file, caught.value.row) == (str(path), 3)


def test_bad_metric_value_names_file_row_and_column(tmp_path: Path) -> None:
    write_tiny_nezha(tmp_path)
    path = tmp_path / "rca_data" / "2023-01-29" / "metric" / f"{BASIC}_metric.csv"
    fields = path.read_text().splitlines()[4].split(",")
    fields[4] = "lots"
    _replace_line(path, 4, ",".join(fields))
    with pytest.raises(BadInput) as caught:
        NezhaDataset(tmp_path).load(f"{TT}-01")
    assert (caught.value.file, caught.value.row) == (str(path), 4)
    assert caught.value.column == "CpuUsageRate(%)"


def test_bad_fault_list_names_the_file(tmp_path: Path) -> None:
    write_tiny_nezha(tmp_path)
    path = tmp_path / "rca_data" / "2023-01-29" / "2023-01-29-fault_list.json"
    path.write_text('{"08": [{"inject_time": "yesterday", "inject_pod": "p", "inject_type": "x"}]}')
    with pytest.raises(BadInput, match="inject_time") as caught:
        NezhaDataset(tmp_path).incidents()
    assert caught.value.file == str(path)


# --------------------------------------------------------------------------- real data


@pytest.mark.integration
def test_development_copy() -> None:
    if not (DEV_COPY / "rca_data").is_dir():
        pytest.skip(f"no Nezha development copy at {DEV_COPY}")
    dataset = NezhaDataset(DEV_COPY)
    info = dataset.info()
    assert info.incidents == 28
    assert info.fault_types == {"exception": 13, "return": 11, "cpu_contention": 4}
    assert info.systems == ["train-ticket"]
    assert info.missing == []
    data = dataset.load(f"{TT}-01")
    spans, logs = data.spans, data.logs
    assert spans is not None and logs is not None
    start, end = data.incident.window.start_ns, data.incident.window.end_ns
    in_window = spans.filter(
        pc.and_(pc.greater_equal(spans.column("start_ns"), start), pc.less(spans["start_ns"], end))
    )
    # README: incident 1 has 58 traces, 5108 spans and 2795 log rows; the baseline minute
    # has 4890 spans and 2489 log rows.
    assert len(pc.unique(in_window.column("trace_id"))) == 58
    assert in_window.num_rows == 5108
    assert spans.num_rows == 5108 + 4890
    assert logs.num_rows == 2795 + 2489
    assert data.incident.window == window("2023-01-29T08:44:08.386", "2023-01-29T08:45:08.525914")


@pytest.mark.integration
def test_cpu_fault_metric_lands_inside_the_analysis_window() -> None:
    """Incident 25 (cpu_contention at 13:31:54): the first row showing 99.9 % CPU is ticked
    13:33:09 and describes the minute before, so it must fall inside the loaded window."""
    if not (DEV_COPY / "rca_data").is_dir():
        pytest.skip(f"no Nezha development copy at {DEV_COPY}")
    data = NezhaDataset(DEV_COPY).load(f"{TT}-25")
    labels = data.incident.labels
    assert labels is not None and labels.fault_type == "cpu_contention"
    metrics = data.metrics
    assert metrics is not None
    window = data.incident.window
    cpu = metrics.filter(
        pc.and_(
            pc.equal(metrics.column("instance"), labels.instance),
            pc.equal(metrics.column("name"), "CpuUsageRate(%)"),
        )
    )
    inside = cpu.filter(
        pc.and_(
            pc.greater_equal(cpu.column("ts_ns"), window.start_ns),
            pc.less(cpu.column("ts_ns"), window.end_ns),
        )
    )
    assert column(inside, "value") == [pytest.approx(99.9, abs=0.1)]
