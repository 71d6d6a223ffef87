"""Copy a directory of incident bundles with the log lines' trace and span ids removed.

    python benchmarks/unlink_logs.py SRC DST

SRC holds bundles (for instance from `tracehound datasets convert DATASET SRC`); DST gets
the same bundles, byte for byte, except `logs.parquet`, whose `trace_id` and `span_id`
columns are all null: what a system whose loggers do not record trace context gives the
engine. Benchmark both with `tracehound bench --method rclagent --dataset DIR` to see
what trace-linked logs are worth and how much matching lines to spans by instance and
time (`rclagent.context.NEAR_LOG_MS`) recovers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from tracehound.progress import progress_bar

#: The log columns that link a line to a span.
LINK_COLUMNS = ("trace_id", "span_id")


def unlink(table: pa.Table) -> pa.Table:
    """`table` with every link column replaced by nulls of its type."""
    for name in LINK_COLUMNS:
        index = table.schema.get_field_index(name)
        if index >= 0:
            field = table.schema.field(index)
            table = table.set_column(index, field, pa.nulls(table.num_rows, field.type))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="directory of incident bundles")
    parser.add_argument("dst", type=Path, help="output directory (created)")
    args = parser.parse_args(argv)
    bundles = sorted(p.parent for p in args.src.glob("*/incident.json"))
    if not bundles:
        print(f"no bundles (*/incident.json) under {args.src}", file=sys.stderr)
        return 2
    with progress_bar(Console(stderr=True)) as progress:
        task = progress.add_task("unlinking logs", total=len(bundles))
        for bundle in bundles:
            out = args.dst / bundle.name
            out.mkdir(parents=True, exist_ok=True)
            for path in bundle.iterdir():
                if path.name == "logs.parquet":
                    pq.write_table(unlink(pq.read_table(path)), out / path.name)
                elif path.is_file():
                    shutil.copy2(path, out / path.name)
            progress.advance(task)
    print(f"wrote {len(bundles)} bundles to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
