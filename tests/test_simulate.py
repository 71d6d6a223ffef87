"""The simulator: determinism, topology, and the signature each fault type leaves."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from tracehound.bundle import read_bundle
from tracehound.errors import BadInput
from tracehound.model import FAULT_TYPES, IncidentData, ns_from_datetime
from tracehound.simulate import (
    System,
    expected_spans_per_request,
    generate_incident,
    generate_system,
    simulate_dataset,
)
from tracehound.tables import conform

SEED = 11


@pytest.fixture(scope="module")
def system() -> System:
    return generate_system(12, SEED)


@pytest.fixture(scope="module")
def incidents(system: System) -> dict[str, IncidentData]:
    return {
        fault: generate_incident(system, index=k, seed=SEED, fault_type=fault)
        for k, fault in enumerate(FAULT_TYPES, start=1)
    }


class Case:
    """One incident in DuckDB, with its label, for signature queries."""

    def __init__(self, data: IncidentData) -> None:
        assert data.incident.labels is not None and data.incident.normal_window is not None
        labels = data.incident.labels
        assert labels.instance and labels.fault_start
        self.instance = labels.instance
        self.service = labels.service
        self.fault_ns = ns_from_datetime(labels.fault_start)
        self.normal = (
            data.incident.normal_window.start_ns,
            data.incident.normal_window.end_ns,
        )
        self.con = duckdb.connect()
        self.con.register("spans", data.spans)
        self.con.register("metrics", data.metrics)
        self.con.register("logs", data.logs)
        self.con.execute(
            """
            create view server_self as
            select s.instance, s.operation, s.start_ns,
                   s.duration_ns - coalesce(sum(c.duration_ns), 0) as self_ns
            from spans s left join spans c on c.parent_span_id = s.span_id
            where s.kind = 'server'
            group by s.span_id, s.instance, s.operation, s.start_ns, s.duration_ns
            """
        )
        self.con.execute(
            """
            create view edges as
            select c.instance as caller, s.instance as callee, s.start_ns,
                   c.duration_ns - s.duration_ns as gap_ns
            from spans c join spans s on s.parent_span_id = c.span_id
            where c.kind = 'client' and s.kind = 'server'
            """
        )

    def value(self, sql: str, *params: Any) -> Any:
        row = self.con.execute(sql, list(params)).fetchone()
        assert row is not None
        return row[0]

    def self_ms(self, window: tuple[int, int]) -> dict[str, float]:
        """Median server self-time (ms) of each operation of the victim in `window`."""
        rows = self.con.execute(
            "select operation, median(self_ns) / 1e6 from server_self "
            "where instance = ? and start_ns between ? and ? group by operation",
            [self.instance, *window],
        ).fetchall()
        return dict(rows)

    def before(self) -> tuple[int, int]:
        """The normal window."""
        return self.normal

    def after(self) -> tuple[int, int]:
        """From the fault start to the end of time."""
        return self.fault_ns, 2**62


@pytest.fixture(scope="module")
def cases(incidents: dict[str, IncidentData]) -> Iterator[dict[str, Case]]:
    built = {fault: Case(data) for fault, data in incidents.items()}
    yield built
    for case in built.values():
        case.con.close()


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


# --- topology -----------------------------------------------------------------------------


def test_topology_has_levels_reachable_services_and_placed_instances(system: System) -> None:
    assert system.levels >= 3
    assert len(set(system.services)) == 12
    assert len(set(system.instances)) == len(system.instances)
    levels = system.service_level[system.op_service]
    assert (levels[system.edge_dst] > levels[system.edge_src]).all()
    called = np.zeros(len(system.operations), dtype=bool)
    called[system.edge_dst] = True
    assert called[levels > 0].all()
    assert (levels[system.entry_ops] == 0).all()
    ops = np.bincount(system.op_service)
    assert ops.min() >= 1 and ops.max() <= 3
    assert system.svc_inst_count.min() >= 1 and system.svc_inst_count.max() <= 3
    assert len(system.nodes) == 2
    assert (system.inst_node < 2).all()


def test_topology_is_seeded() -> None:
    a, b, c = generate_system(40, 5), generate_system(40, 5), generate_system(40, 6)
    assert a.services == b.services and a.instances == b.instances
    assert np.array_equal(a.edge_src, b.edge_src) and np.array_equal(a.edge_prob, b.edge_prob)
    assert a.services != c.services


def test_bad_sizes_are_bad_input() -> None:
    with pytest.raises(BadInput, match="at least 1 service"):
        generate_system(0, 1)
    with pytest.raises(BadInput, match="unknown fault type"):
        generate_incident(generate_system(5, 1), index=1, seed=1, fault_type="disk")


# --- incidents ----------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_tables(system: System) -> None:
    first = generate_incident(system, index=3, seed=SEED)
    again = generate_incident(generate_system(12, SEED), index=3, seed=SEED)
    other = generate_incident(system, index=3, seed=SEED + 1)
    for name in ("spans", "metrics", "logs"):
        assert _ipc_bytes(getattr(first, name)) == _ipc_bytes(getattr(again, name))
        assert not getattr(first, name).equals(getattr(other, name))
    assert first.incident == again.incident


def test_tables_are_canonical_and_labels_set(incidents: dict[str, IncidentData]) -> None:
    for k, (fault, data) in enumerate(incidents.items(), start=1):
        for name in ("spans", "metrics", "logs"):
            table = getattr(data, name)
            assert table.num_rows > 0
            assert conform(table, name, name).equals(table)
        incident = data.incident
        assert incident.id == f"sim-{SEED}-{k:04d}"
        assert incident.system == f"sim-{SEED}"
        assert incident.labels is not None and incident.normal_window is not None
        assert incident.labels.fault_type == fault and incident.labels.span is None
        assert incident.window.start <= incident.labels.fault_start < incident.window.end
        assert incident.normal_window.end == incident.window.start
        assert incident.window.seconds == 600 and incident.normal_window.seconds == 600
        assert incident.alert is not None and incident.alert.service is not None


def test_spans_link_up_and_nest_in_time(cases: dict[str, Case]) -> None:
    case = cases["cpu"]
    assert case.value("select count(*) from spans where parent_span_id is null") > 0
    orphans = case.value(
        "select count(*) from spans s left join spans p on s.parent_span_id = p.span_id "
        "where s.parent_span_id is not null and p.span_id is null"
    )
    assert orphans == 0
    escaped = case.value(
        "select count(*) from spans s join spans p on s.parent_span_id = p.span_id "
        "where s.start_ns < p.start_ns or s.start_ns + s.duration_ns > "
        "p.start_ns + p.duration_ns + 1"
    )
    assert escaped == 0
    cross = case.value(
        "select count(*) from spans s join spans p on s.parent_span_id = p.span_id "
        "where s.kind = 'client' and s.instance <> p.instance"
    )
    assert cross == 0
    assert case.value("select count(distinct span_id) = count(*) from spans")


def test_no_errors_before_any_fault(cases: dict[str, Case]) -> None:
    for case in cases.values():
        early = case.value(
            "select count(*) from spans where status = 'error' and start_ns < ?", case.fault_ns
        )
        assert early == 0


def test_target_spans_sizes_the_traffic() -> None:
    system = generate_system(30, 2)
    data = generate_incident(system, index=1, seed=2, target_spans=20_000)
    assert data.spans is not None
    assert 18_000 < data.spans.num_rows < 22_000
    assert expected_spans_per_request(system) > 3


# --- fault signatures ---------------------------------------------------------------------


def test_error_fault_shows_at_the_cause_and_up_the_chain(cases: dict[str, Case]) -> None:
    case = cases["error"]
    at_cause = case.value(
        "select count(*) from spans where instance = ? and kind = 'server' and status = 'error'",
        case.instance,
    )
    assert at_cause > 20
    error_logs = case.value(
        "select count(*) from logs where instance = ? and level = 'ERROR' "
        "and message like 'Exception in %' and message like '%\n  at %.java:%' "
        "and span_id is not null",
        case.instance,
    )
    assert error_logs == at_cause
    failed_roots = case.value(
        "select count(*) from spans where parent_span_id is null and status = 'error'"
    )
    assert failed_roots > 0


def test_error_fault_silences_completion_lines(cases: dict[str, Case]) -> None:
    case = cases["error"]
    per_template = """
        select regexp_replace(message, '[0-9]+', '#', 'g') as template, count(*) / (
            select count(*) from spans where instance = $1 and kind = 'server'
            and start_ns >= $2 and start_ns < $3) as per_span
        from logs where instance = $1 and level = 'INFO' and ts_ns >= $2 and ts_ns < $3
        group by template
    """
    normal = dict(case.con.execute(per_template, [case.instance, *case.before()]).fetchall())
    faulty = dict(case.con.execute(per_template, [case.instance, *case.after()]).fetchall())
    ratios = sorted(faulty.get(template, 0.0) / rate for template, rate in normal.items())
    assert ratios[0] < 0.5  # a completion line the exception cut off
    assert ratios[-1] > 0.8  # an arrival line, still written


def test_wrong_return_surfaces_at_a_caller(cases: dict[str, Case]) -> None:
    case = cases["wrong_return"]
    at_cause = case.value(
        "select count(*) from spans where instance = ? and status = 'error'", case.instance
    )
    assert at_cause == 0
    assert case.value("select count(*) from logs where instance = ? and level = 'ERROR'",
                      case.instance) == 0  # fmt: skip
    surfaced = case.value(
        "select count(*) from logs where level = 'ERROR' and instance <> ? "
        "and message like '%invalid response from ' || ? || ':%'",
        case.instance,
        case.service,
    )
    assert surfaced > 20
    callers_failing = case.value(
        "select count(*) from spans s join spans c on s.parent_span_id = c.span_id "
        "join spans p on c.parent_span_id = p.span_id "
        "where s.instance = ? and s.status = 'ok' and c.status = 'ok' and p.status = 'error'",
        case.instance,
    )
    assert callers_failing > 20


def test_network_fault_grows_gaps_not_self_time(cases: dict[str, Case]) -> None:
    case = cases["network"]
    gap = "select median(gap_ns) / 1e6 from edges where callee = ? and start_ns between ? and ?"
    assert (
        case.value(gap, case.instance, *case.after())
        > case.value(gap, case.instance, *case.before()) + 100
    )
    out_gap = "select median(gap_ns) / 1e6 from edges where caller = ? and start_ns between ? and ?"
    if case.value(out_gap, case.instance, *case.before()) is not None:
        assert case.value(out_gap, case.instance, *case.after()) > 100
    normal, faulty = case.self_ms(case.before()), case.self_ms(case.after())
    assert all(faulty[op] < 1.5 * normal[op] for op in normal)


def test_unavailable_fault_drops_the_victim_and_refuses_callers(cases: dict[str, Case]) -> None:
    case = cases["unavailable"]
    spans_of_victim = "select count(*) from spans where instance = ? and start_ns between ? and ?"
    assert case.value(spans_of_victim, case.instance, *case.before()) > 20
    assert case.value(spans_of_victim, case.instance, *case.after()) == 0
    refused = case.value(
        "select count(*) from spans where kind = 'client' and status = 'error' "
        "and json_extract_string(attributes, '$.\"peer.instance\"') = ? and start_ns >= ?",
        case.instance,
        case.fault_ns,
    )
    assert refused > 20
    refused_logs = case.value(
        "select count(*) from logs where level = 'ERROR' and instance <> ? "
        "and message like 'java.net.ConnectException: Connection refused (' || ? || ')%'",
        case.instance,
        case.instance,
    )
    assert refused_logs == refused
    scraped = "select count(*) from metrics where instance = ? and ts_ns >= ?"
    assert case.value(scraped, case.instance, case.fault_ns) == 0


def test_cpu_fault_raises_cpu_and_self_time(cases: dict[str, Case]) -> None:
    case = cases["cpu"]
    cpu = (
        "select avg(value) from metrics where name = 'cpu_usage' and instance = ? "
        "and ts_ns between ? and ?"
    )
    assert case.value(cpu, case.instance, *case.after()) > 30 + case.value(
        cpu, case.instance, *case.before()
    )
    normal, faulty = case.self_ms(case.before()), case.self_ms(case.after())
    assert all(faulty[op] > 2 * normal[op] for op in normal)


def test_memory_fault_climbs(cases: dict[str, Case]) -> None:
    case = cases["memory"]
    memory = (
        "select {agg}(value) from metrics where name = 'memory_usage' and instance = ? "
        "and ts_ns between ? and ?"
    )
    normal = case.value(memory.format(agg="max"), case.instance, *case.before())
    assert case.value(memory.format(agg="max"), case.instance, *case.after()) > normal + 200


def test_latency_fault_adds_self_time_at_the_instance(cases: dict[str, Case]) -> None:
    case = cases["latency"]
    normal, faulty = case.self_ms(case.before()), case.self_ms(case.after())
    assert all(faulty[op] > normal[op] + 100 for op in normal)


def test_metrics_cover_instances_and_nodes(cases: dict[str, Case]) -> None:
    case = cases["latency"]
    names = {row[0] for row in case.con.execute("select distinct name from metrics").fetchall()}
    assert names == {
        "cpu_usage",
        "memory_usage",
        "latency_p50",
        "latency_p90",
        "latency_p99",
        "error_rate",
        "request_rate",
        "node_cpu_usage",
        "node_memory_usage",
    }
    node_rows = case.value(
        "select count(*) from metrics where name like 'node_%' and service = '' "
        "and instance = '' and node <> ''"
    )
    assert node_rows == 2 * 2 * 80
    ordered = case.value(
        "select bool_and(p50 <= p90 and p90 <= p99) from (pivot (select ts_ns, instance, name, "
        "value from metrics where name like 'latency_%') on name using first(value) "
        "group by ts_ns, instance) t(ts_ns, instance, p50, p90, p99)"
    )
    assert ordered


# --- dataset ------------------------------------------------------------------------------


def test_simulate_dataset_writes_bundles_cycling_fault_types(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    paths = simulate_dataset(
        tmp_path, services=10, incidents=8, seed=4, progress=lambda d, t: seen.append((d, t))
    )
    assert [p.name for p in paths] == [f"sim-4-{k:04d}" for k in range(1, 9)]
    assert seen[-1] == (8, 8)
    types = []
    for path in paths:
        data = read_bundle(path)
        assert data.incident.labels is not None
        types.append(data.incident.labels.fault_type)
        assert data.modalities == ["traces", "logs", "metrics"]
    assert types == [*FAULT_TYPES, FAULT_TYPES[0]]
