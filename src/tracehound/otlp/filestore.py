"""The DuckDB file `tracehound collect` appends to, shared with readers in other processes.

DuckDB lets one process open a file for writing, and while it holds the file no other
process can open it, not even to read. So the collector holds the file only while it
flushes (connect, append in one transaction, close), and readers take a `snapshot`: open
read-only (retrying while the collector flushes), copy the rows of a time range into an
in-memory `TelemetryStore`, close. Both sides retry with backoff while the other holds it.

The file holds the canonical tables of ARCHITECTURE §2 (spans, metrics, logs) without
indexes: appends stay cheap, and a snapshot builds its indexes in memory.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pyarrow as pa

from tracehound.errors import BadInput, TracehoundError
from tracehound.store import TelemetryStore, relation_to_arrow
from tracehound.tables import SCHEMAS, TABLE_NAMES, TableName

_SQL_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE"}

#: The time column each table's rows are ranged and retained by.
TIME_COLUMN: dict[TableName, str] = {"spans": "start_ns", "metrics": "ts_ns", "logs": "ts_ns"}


class StoreLocked(TracehoundError):
    """The store file stayed locked by another process for longer than allowed."""


def is_lock_error(exc: BaseException) -> bool:
    """True for DuckDB's error when another process holds the file."""
    text = str(exc).lower()
    # Within one process DuckDB refuses a read-only and a read-write connection to the
    # same file at once; that clears as soon as the other connection closes, too.
    return isinstance(exc, duckdb.Error) and any(
        word in text for word in ("lock", "conflicting", "different configuration")
    )


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the canonical tables that do not exist yet (no indexes)."""
    for name in TABLE_NAMES:
        columns = ", ".join(f"{f.name} {_SQL_TYPES[f.type]}" for f in SCHEMAS[name])
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")


def connect(
    path: str | Path, *, read_only: bool, timeout_s: float, first_wait_s: float = 0.01
) -> duckdb.DuckDBPyConnection:
    """Open the file, retrying with exponential backoff (up to 0.5 s apart) while another
    process holds it; `StoreLocked` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    wait = first_wait_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreLocked(
                    f"the store {path} stayed locked by another process for {timeout_s:g} s ({exc})"
                ) from exc
            time.sleep(min(wait, left))
            wait = min(wait * 2, 0.5)


def _range_sql(
    name: TableName, since_ns: int | None, until_ns: int | None
) -> tuple[str, list[int]]:
    column = TIME_COLUMN[name]
    where: list[str] = []
    params: list[int] = []
    if since_ns is not None:
        where.append(f"{column} >= ?")
        params.append(since_ns)
    if until_ns is not None:
        where.append(f"{column} < ?")
        params.append(until_ns)
    columns = ", ".join(SCHEMAS[name].names)
    sql = f"SELECT {columns} FROM {name}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params


def snapshot(
    path: str | Path,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    timeout_s: float = 30.0,
) -> TelemetryStore:
    """An in-memory `TelemetryStore` holding the file's rows in [since_ns, until_ns).

    Spans are ranged by start_ns, metrics and logs by ts_ns; None leaves that side open.
    The file is opened read-only (retrying while the collector flushes, `StoreLocked`
    after `timeout_s`), read in one pass and closed before the copy is indexed, so the
    collector waits for no more than the read. A table the file lacks is left empty.
    """
    if not Path(path).exists():
        raise BadInput(
            "the store does not exist",
            file=path,
            hint="`tracehound collect --store FILE` creates it when it starts.",
        )
    con = connect(path, read_only=True, timeout_s=timeout_s)
    tables: dict[TableName, pa.Table] = {}
    try:
        present = {row[0] for row in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
        for name in TABLE_NAMES:
            if name in present:
                sql, params = _range_sql(name, since_ns, until_ns)
                tables[name] = relation_to_arrow(con.sql(sql, params=params or None))
    finally:
        con.close()
    store = TelemetryStore()
    for name, table in tables.items():
        if table.num_rows:
            store.add_table(name, table)
    return store
