"""The batched, transactional writer behind `tracehound collect`.

Request handlers `submit` decoded tables; a background thread appends everything queued
every `flush_interval_s` (or as soon as `flush_rows` rows wait): it opens the DuckDB
file, inserts each table's rows with one `INSERT ... SELECT` from Arrow inside one
transaction, and closes the file so readers in other processes can open it between
flushes (see `filestore`). While a reader holds the file the rows stay queued and the
writer retries with backoff. A batch is taken off the queue only after its transaction
committed, and put back whole when it failed, so no row is lost or written twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from tracehound.otlp.filestore import TIME_COLUMN, connect, create_tables
from tracehound.tables import TABLE_NAMES, TableName

log = logging.getLogger(__name__)


@dataclass
class WriterStats:
    """What the writer has done so far (read without locking; for display)."""

    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_NAMES, 0))
    flushes: int = 0
    retries: int = 0
    deleted_by_retention: int = 0
    last_error: str | None = None


class QueueFull(Exception):
    """The writer holds `max_pending_rows` rows already; the caller should shed load."""


class FileWriter:
    """Appends queued tables to a DuckDB file in periodic transactions (module docstring).

    `retention_ns` drops rows older than that (by their time column, against the wall
    clock) every `retention_every_s`, in the same transaction as a flush.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        flush_interval_s: float = 0.5,
        flush_rows: int = 100_000,
        max_pending_rows: int = 5_000_000,
        retention_ns: int | None = None,
        retention_every_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self.max_pending_rows = max_pending_rows
        self.retention_ns = retention_ns
        self.retention_every_s = retention_every_s
        self.stats = WriterStats()
        self._pending: deque[tuple[TableName, pa.Table]] = deque()
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()  # one flush at a time (thread or `flush()`)
        self._last_retention = 0.0

    # -- lifecycle -----------------------------------------------------------------

    def start(self, *, timeout_s: float = 30.0) -> None:
        """Create the file and its tables (waiting for readers), then start flushing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(self.path, read_only=False, timeout_s=timeout_s)
        try:
            create_tables(con)
        finally:
            con.close()
        self._thread = threading.Thread(target=self._run, name="tracehound-writer", daemon=True)
        self._thread.start()

    def close(self, *, timeout_s: float = 60.0) -> int:
        """Stop the thread and flush what is queued; returns the rows left unwritten
        (0 unless the file stayed locked for `timeout_s`)."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + timeout_s
        while self.pending_rows and time.monotonic() < deadline:
            if not self.flush(timeout_s=max(0.0, deadline - time.monotonic())):
                time.sleep(0.05)
        return self.pending_rows

    def dump_pending(self, directory: str | Path) -> list[Path]:
        """Write the rows still queued to Parquet files next to the store (one per table)
        and forget them; the last resort when the file stays locked at shutdown."""
        import pyarrow.parquet as pq

        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._pending_rows = 0
        by_name: dict[TableName, list[pa.Table]] = {}
        for name, table in batch:
            by_name.setdefault(name, []).append(table)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        written = []
        for name, tables in by_name.items():
            target = Path(directory) / f"{self.path.name}.unwritten-{stamp}.{name}.parquet"
            pq.write_table(pa.concat_tables(tables), target)
            written.append(target)
        return written

    # -- queueing ------------------------------------------------------------------

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def submit(self, name: TableName, table: pa.Table) -> None:
        """Queue rows for the next flush; `QueueFull` when too many rows wait already."""
        if not table.num_rows:
            return
        with self._wake:
            if self._pending_rows + table.num_rows > self.max_pending_rows and self._pending:
                raise QueueFull(f"{self._pending_rows} rows are waiting to be written")
            self._pending.append((name, table))
            self._pending_rows += table.num_rows
            if self._pending_rows >= self.flush_rows:
                self._wake.notify_all()

    # -- flushing ------------------------------------------------------------------

    def _run(self) -> None:
        wait = self.flush_interval_s
        while True:
            with self._wake:
                if not self._stop and self._pending_rows < self.flush_rows:
                    self._wake.wait(wait)
                if self._stop:
                    return
            if self.flush(timeout_s=0.0):
                wait = self.flush_interval_s
            else:
                self.stats.retries += 1
                wait = min(max(wait * 2, 0.05), 2.0)

    def flush(self, *, timeout_s: float = 0.0) -> bool:
        """Append everything queued now in one transaction; False when the file was locked
        (or the write failed) and the rows stay queued for the next attempt."""
        with self._flush_lock:
            with self._lock:
                batch = list(self._pending)
            due = self._retention_due()
            if not batch and not due:
                return True
            try:
                self._write(batch, timeout_s=timeout_s, retention=due)
            except Exception as exc:  # any failure keeps the rows queued for a retry
                self.stats.last_error = str(exc)
                log.warning("flush to %s failed, will retry: %s", self.path, exc)
                return False
            with self._lock:
                for _ in batch:
                    self._pending.popleft()
                self._pending_rows -= sum(t.num_rows for _, t in batch)
            return True

    def _retention_due(self) -> bool:
        return (
            self.retention_ns is not None
            and time.monotonic() - self._last_retention >= self.retention_every_s
        )

    def _write(
        self, batch: list[tuple[TableName, pa.Table]], *, timeout_s: float, retention: bool
    ) -> None:
        by_name: dict[TableName, list[pa.Table]] = {}
        for name, table in batch:
            by_name.setdefault(name, []).append(table)
        con = connect(self.path, read_only=False, timeout_s=timeout_s)
        committed = False
        try:
            con.execute("BEGIN TRANSACTION")
            for name, tables in by_name.items():
                con.register("_incoming", pa.concat_tables(tables))
                con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _incoming")
                con.unregister("_incoming")
            deleted = self._apply_retention(con) if retention else 0
            con.execute("COMMIT")
            committed = True
        except BaseException:
            if not committed:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
            raise
        finally:
            try:
                con.close()
            except duckdb.Error as exc:
                # After a commit the rows are durable (DuckDB's WAL); only log the close.
                if not committed:
                    raise
                log.warning("closing %s after a commit failed: %s", self.path, exc)
        for name, tables in by_name.items():
            self.stats.written[name] += sum(t.num_rows for t in tables)
        self.stats.flushes += 1
        if retention:
            self._last_retention = time.monotonic()
            self.stats.deleted_by_retention += deleted

    def _apply_retention(self, con: duckdb.DuckDBPyConnection) -> int:
        assert self.retention_ns is not None
        cutoff = time.time_ns() - self.retention_ns
        deleted = 0
        for name in TABLE_NAMES:
            row = con.execute(
                f"DELETE FROM {name} WHERE {TIME_COLUMN[name]} < ?", [cutoff]
            ).fetchone()
            deleted += int(row[0]) if row else 0
        return deleted
