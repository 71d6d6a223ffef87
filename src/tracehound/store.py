"""`TelemetryStore`: the DuckDB store every method and agent tool queries (ARCHITECTURE §3).

It holds the three canonical tables (`spans`, `metrics`, `logs`), in memory by default or
in a DuckDB file. Every query is SQL and returns an Arrow table; nothing here scans rows
in Python. Spans are indexed by trace and span id so that the cost of following a failing
request grows with that request, not with the size of the system.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb
import pyarrow as pa

from tracehound.bundle import read_bundle
from tracehound.errors import BadInput
from tracehound.joinkeys import (
    DERIVED_LOG_KEY_COLUMNS,
    DERIVED_METRIC_COLUMNS,
    DERIVED_SPAN_COLUMNS,
)
from tracehound.logkeys import DERIVED_LOG_COLUMNS
from tracehound.model import IncidentData, Window
from tracehound.tables import SCHEMAS, TABLE_NAMES, TableName, conform

_SQL_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id, span_id)",
    "CREATE INDEX IF NOT EXISTS spans_parent ON spans (trace_id, parent_span_id)",
)


def relation_to_arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A relation as an Arrow table, across DuckDB versions (1.x `arrow`, 2.x `to_arrow_table`)."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    table: pa.Table = fetch()
    return table


#: Internal columns a table holds besides its canonical ones, each computed from the row
#: on insert (see `logkeys`, `joinkeys`): name -> (SQL, SQL type). Queries name canonical
#: columns when they return rows.
_DERIVED: dict[TableName, dict[str, tuple[str, str]]] = {
    "spans": DERIVED_SPAN_COLUMNS,
    "logs": {
        **{column: (sql, "VARCHAR") for column, sql in DERIVED_LOG_COLUMNS.items()},
        **DERIVED_LOG_KEY_COLUMNS,
    },
    "metrics": DERIVED_METRIC_COLUMNS,
}


def _lacking_sql(name: TableName) -> str:
    """A predicate true for rows of `name` that lack one of their derived columns."""
    return " OR ".join(f"{column} IS NULL" for column in _DERIVED.get(name, {}))


def _create_sql(name: TableName) -> str:
    columns = [f"{f.name} {_SQL_TYPES[f.type]}" for f in SCHEMAS[name]]
    columns += [f"{column} {kind}" for column, (_, kind) in _DERIVED.get(name, {}).items()]
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)})"


def columns_sql(name: TableName) -> str:
    """The canonical columns of a table, comma-separated, for `SELECT` lists."""
    return ", ".join(SCHEMAS[name].names)


class TelemetryStore:
    """A DuckDB connection holding spans, metrics and logs.

    `TelemetryStore()` is in memory; `TelemetryStore("incident.duckdb")` persists to a file.
    """

    def __init__(self, path: str | Path | None = None, *, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        target = str(self.path) if self.path is not None else ":memory:"
        try:
            self.con = duckdb.connect(target, read_only=read_only)
        except duckdb.Error as exc:
            raise BadInput(f"cannot open store ({exc})", file=target) from exc
        self.read_only = read_only
        if not read_only:
            for name in TABLE_NAMES:
                self.con.execute(_create_sql(name))
                for column, (_, kind) in _DERIVED.get(name, {}).items() if path else ():
                    # stores written before a derived column existed gain it (filled by
                    # `derive`)
                    self.con.execute(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {column} {kind}")
            for statement in _INDEXES:
                self.con.execute(statement)

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    def from_incident(cls, data: IncidentData, path: str | Path | None = None) -> Self:
        store = cls(path)
        store.add(data)
        return store

    @classmethod
    def from_bundle(cls, directory: str | Path, path: str | Path | None = None) -> Self:
        return cls.from_incident(read_bundle(directory), path)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- loading -------------------------------------------------------------------

    def add(self, data: IncidentData) -> None:
        """Append an incident's tables (canonical columns only; extra columns are dropped)."""
        for name in TABLE_NAMES:
            table: pa.Table | None = getattr(data, name)
            if table is not None and table.num_rows:
                self.add_table(name, table)

    def add_table(self, name: TableName, table: pa.Table) -> None:
        """Append rows to one table after validating them."""
        canonical = conform(table, name, f"{name} table").select(SCHEMAS[name].names)
        derived = "".join(
            f", {sql} AS {column}" for column, (sql, _) in _DERIVED.get(name, {}).items()
        )
        self.con.register("_incoming", canonical)
        try:
            self.con.execute(f"INSERT INTO {name} BY NAME SELECT *{derived} FROM _incoming")
        finally:
            self.con.unregister("_incoming")

    def derive(self) -> None:
        """Compute the derived columns of rows that arrived without them (rows another
        writer appended with plain SQL). A read-only store cannot be updated: it must
        already hold them, else `BadInput` says how to get a store that does."""
        if self.read_only:
            for name in _DERIVED:
                try:
                    lacking = self.con.sql(
                        f"SELECT count(*) FROM {name} WHERE {_lacking_sql(name)}"
                    ).fetchall()[0][0]
                except duckdb.Error:
                    lacking = -1  # written without the column at all
                if lacking:
                    raise BadInput(
                        f"the store's {name} lack the derived keys analysis needs, and it "
                        "is open read-only",
                        file=self.path,
                        hint="Open it writable, or copy it into memory with "
                        "tracehound.otlp.filestore.snapshot (as `investigate --store` does).",
                    )
            return
        for name, derived in _DERIVED.items():
            assignments = ", ".join(f"{column} = {sql}" for column, (sql, _) in derived.items())
            self.con.execute(f"UPDATE {name} SET {assignments} WHERE {_lacking_sql(name)}")

    @classmethod
    def over_arrow(cls, tables: dict[TableName, pa.Table]) -> Self:
        """A read-only in-memory store whose tables are views of Arrow tables (not
        copied; they must carry the derived columns). Tables not given are empty."""
        store = cls.__new__(cls)
        store.path, store.read_only = None, True
        store.con = duckdb.connect(":memory:")
        for name in TABLE_NAMES:
            if name in tables:
                store.show_arrow(name, tables[name])
            else:
                store.con.execute(_create_sql(name))
        return store

    def show_arrow(self, name: TableName, table: pa.Table) -> None:
        """Make the table `name` of an `over_arrow` store a view of `table` instead."""
        self.con.register(f"_arrow_{name}", table)
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _arrow_{name}")

    # -- generic -------------------------------------------------------------------

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL against the store and return an Arrow table."""
        relation = self.con.sql(sql, params=params or None)
        if relation is None:
            return pa.table({})
        return relation_to_arrow(relation)

    def counts(self) -> dict[str, int]:
        """Row count of each table."""
        return {
            name: int(self.con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0])
            for name in TABLE_NAMES
        }

    def modalities(self) -> list[str]:
        counts = self.counts()
        present = {"traces": counts["spans"], "logs": counts["logs"], "metrics": counts["metrics"]}
        return [name for name, n in present.items() if n]

    def time_range(self) -> Window | None:
        """The span of time covered by any row, or None for an empty store."""
        row = self.con.sql(
            """
            SELECT min(t0), max(t1) FROM (
              SELECT min(start_ns) t0, max(start_ns + duration_ns) t1 FROM spans
              UNION ALL SELECT min(ts_ns), max(ts_ns) FROM metrics
              UNION ALL SELECT min(ts_ns), max(ts_ns) FROM logs)
            """
        ).fetchall()[0]
        if row[0] is None:
            return None
        return Window.from_ns(int(row[0]), max(int(row[1]), int(row[0]) + 1))

    # -- traces --------------------------------------------------------------------

    def trace_spans(self, trace_id: str) -> pa.Table:
        """Every span of one trace, by start time."""
        return self.query(
            f"SELECT {columns_sql('spans')} FROM spans WHERE trace_id = ? "
            "ORDER BY start_ns, span_id",
            [trace_id],
        )

    def span(self, trace_id: str, span_id: str) -> pa.Table:
        """One span (zero rows when absent)."""
        return self.query(
            f"SELECT {columns_sql('spans')} FROM spans WHERE trace_id = ? AND span_id = ?",
            [trace_id, span_id],
        )

    def children(self, trace_id: str, span_id: str) -> pa.Table:
        """The direct children of a span, by start time."""
        return self.query(
            f"SELECT {columns_sql('spans')} FROM spans WHERE trace_id = ? AND parent_span_id = ? "
            "ORDER BY start_ns, span_id",
            [trace_id, span_id],
        )

    def root_spans(self, window: Window | None = None) -> pa.Table:
        """Spans without a parent, i.e. the requests, optionally starting inside `window`."""
        sql = f"SELECT {columns_sql('spans')} FROM spans WHERE parent_span_id IS NULL"
        params: list[Any] = []
        if window is not None:
            sql += " AND start_ns >= ? AND start_ns < ?"
            params = [window.start_ns, window.end_ns]
        return self.query(sql + " ORDER BY start_ns, trace_id", params)

    def operation_baseline(self, window: Window) -> pa.Table:
        """Per (service, operation): count, median, MAD and p95 of duration_ns, error share.

        Spans are those starting inside `window`. MAD is the median absolute deviation
        from the median, the robust spread the engine scores against.
        """
        return self.query(
            """
            WITH w AS (
              SELECT service, operation, duration_ns, status FROM spans
              WHERE start_ns >= ? AND start_ns < ?),
            m AS (
              SELECT service, operation, median(duration_ns) AS median_ns
              FROM w GROUP BY service, operation)
            SELECT w.service, w.operation, count(*) AS n,
                   any_value(m.median_ns) AS median_ns,
                   median(abs(w.duration_ns - m.median_ns)) AS mad_ns,
                   quantile_cont(w.duration_ns, 0.95) AS p95_ns,
                   avg(CASE WHEN w.status = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate
            FROM w JOIN m USING (service, operation)
            GROUP BY w.service, w.operation
            ORDER BY w.service, w.operation
            """,
            [window.start_ns, window.end_ns],
        )

    # -- logs ----------------------------------------------------------------------

    def instance_logs(
        self,
        instance: str,
        start_ns: int,
        end_ns: int,
        *,
        levels: list[str] | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Log rows of one instance in [start_ns, end_ns), optionally by level and ids.

        Levels compare case-insensitively. Rows linked to `trace_id`/`span_id` are
        returned when those are given (both must match when both are given).
        """
        sql = f"SELECT {columns_sql('logs')} FROM logs WHERE instance = ? "
        sql += "AND ts_ns >= ? AND ts_ns < ?"
        params: list[Any] = [instance, start_ns, end_ns]
        if levels:
            sql += " AND upper(level) IN (SELECT unnest(?))"
            params.append([level.upper() for level in levels])
        if trace_id is not None:
            sql += " AND trace_id = ?"
            params.append(trace_id)
        if span_id is not None:
            sql += " AND span_id = ?"
            params.append(span_id)
        sql += " ORDER BY ts_ns"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, params)

    def span_logs(self, trace_id: str, span_id: str) -> pa.Table:
        """Log rows linked to one span by trace and span id."""
        return self.query(
            f"SELECT {columns_sql('logs')} FROM logs WHERE trace_id = ? AND span_id = ? "
            "ORDER BY ts_ns",
            [trace_id, span_id],
        )

    # -- metrics -------------------------------------------------------------------

    def metric_series(
        self,
        window: Window,
        *,
        instance: str | None = None,
        node: str | None = None,
        service: str | None = None,
        names: list[str] | None = None,
    ) -> pa.Table:
        """Metric points in `window`, filtered by instance, node, service and names."""
        sql = f"SELECT {columns_sql('metrics')} FROM metrics WHERE ts_ns >= ? AND ts_ns < ?"
        params: list[Any] = [window.start_ns, window.end_ns]
        for column, value in (("instance", instance), ("node", node), ("service", service)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if names:
            sql += " AND name IN (SELECT unnest(?))"
            params.append(names)
        return self.query(sql + " ORDER BY service, instance, node, name, ts_ns", params)

    def metric_baseline(self, window: Window) -> pa.Table:
        """Per series (service, instance, node, name): n, median, MAD, p95 in `window`."""
        return self.query(
            """
            WITH w AS (
              SELECT service, instance, node, name, value FROM metrics
              WHERE ts_ns >= ? AND ts_ns < ? AND NOT isnan(value)),
            m AS (
              SELECT service, instance, node, name, median(value) AS median
              FROM w GROUP BY ALL)
            SELECT w.service, w.instance, w.node, w.name, count(*) AS n,
                   any_value(m.median) AS median,
                   median(abs(w.value - m.median)) AS mad,
                   quantile_cont(w.value, 0.95) AS p95
            FROM w JOIN m USING (service, instance, node, name)
            GROUP BY w.service, w.instance, w.node, w.name
            ORDER BY w.service, w.instance, w.node, w.name
            """,
            [window.start_ns, window.end_ns],
        )

    def metric_shift(self, normal: Window, incident: Window) -> pa.Table:
        """Per series: baseline in `normal` against behaviour in `incident`.

        Columns: service, instance, node, name, normal_median, normal_mad, incident_median,
        incident_max, incident_min, shift (incident median minus normal median). Series
        seen in only one of the two windows are left out.
        """
        return self.query(
            """
            WITH b AS (
              SELECT service, instance, node, name,
                     median(value) AS normal_median
              FROM metrics WHERE ts_ns >= ? AND ts_ns < ? AND NOT isnan(value)
              GROUP BY ALL),
            bm AS (
              SELECT m.service, m.instance, m.node, m.name, any_value(b.normal_median) AS nm,
                     median(abs(m.value - b.normal_median)) AS normal_mad
              FROM metrics m JOIN b USING (service, instance, node, name)
              WHERE m.ts_ns >= ? AND m.ts_ns < ? AND NOT isnan(m.value)
              GROUP BY ALL),
            i AS (
              SELECT service, instance, node, name, median(value) AS incident_median,
                     max(value) AS incident_max, min(value) AS incident_min
              FROM metrics WHERE ts_ns >= ? AND ts_ns < ? AND NOT isnan(value)
              GROUP BY ALL)
            SELECT i.service, i.instance, i.node, i.name,
                   bm.nm AS normal_median, bm.normal_mad, i.incident_median,
                   i.incident_max, i.incident_min, i.incident_median - bm.nm AS shift
            FROM i JOIN bm USING (service, instance, node, name)
            ORDER BY i.service, i.instance, i.node, i.name
            """,
            [
                normal.start_ns,
                normal.end_ns,
                normal.start_ns,
                normal.end_ns,
                incident.start_ns,
                incident.end_ns,
            ],
        )
