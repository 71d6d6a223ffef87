"""Prometheus ``query_range`` JSON: metrics from ``/api/v1/query_range`` answers.

Layout (prometheus.io/docs/prometheus/latest/querying/api; anchors §4.4)::

    {"status": "success",
     "data": {"resultType": "matrix",
              "result": [{"metric": {labels}, "values": [[<unix s>, "<value>"], ...]}]}}

A ``vector`` answer (``value`` instead of ``values``) is read as one sample per series.
Several files may be given (a directory of them); each is one or more queries' answers
(JSON lines hold one answer per line).

Mapping of a series' labels to the canonical columns:

- ``service``: the first non-empty of ``service``, ``container`` (not the ``POD`` pause
  container), ``app``; else the ``pod`` without its last two ``-`` parts (the
  ReplicaSet hash and the pod suffix, when it has at least three parts); else ``job``;
  else the ``instance`` label; else ``unknown_service``. ``job`` comes late because in
  Kubernetes it usually names the scrape job (``kubelet``), not the application.
- ``instance``: ``pod``, else ``instance``, else the service.
- ``node``: ``node``, else ``kubernetes_node``, else ``kubernetes_io_hostname``, else "".
- ``name``: ``__name__``, else the file name without its extension (PromQL drops
  ``__name__`` from the result of any function, such as ``rate(...)``).
- ``value``: the sample; ``NaN`` and ``±Inf`` are kept as such.
- Counters: a series whose ``__name__`` ends in ``_total``, ``_count``, ``_sum`` or
  ``_bucket`` holds raw counter samples and becomes a per-second rate under the same
  name (`counters.counter_rates`). Series without ``__name__`` are results of PromQL
  expressions and are kept as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tracehound.datasets.counters import counter_rates
from tracehound.datasets.exports import (
    ExportDataset,
    ExportFormat,
    Parsed,
    read_json_documents,
)
from tracehound.errors import BadInput
from tracehound.tables import from_columns

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
SERVICE_LABELS = ("service", "container", "app")
INSTANCE_LABELS = ("pod", "instance")
NODE_LABELS = ("node", "kubernetes_node", "kubernetes_io_hostname")


def sniff(text: str) -> bool:
    """A Prometheus API answer: it names its ``resultType``."""
    return text.startswith("{") and '"resultType"' in text


def service_of(labels: dict[str, str]) -> str:
    """The service a series belongs to (precedence in the module docstring)."""
    for key in SERVICE_LABELS:
        value = labels.get(key, "")
        if value and not (key == "container" and value == "POD"):
            return value
    pod = labels.get("pod", "")
    if pod:
        parts = pod.split("-")
        return "-".join(parts[:-2]) if len(parts) >= 3 else pod
    return labels.get("job", "") or labels.get("instance", "") or "unknown_service"


def _first(labels: dict[str, str], keys: tuple[str, ...], default: str) -> str:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return default


def _results(document: Any, path: Path) -> tuple[str, list[Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise BadInput(
            "is not a Prometheus API answer",
            file=path,
            expected='{"status": "success", "data": {"resultType": "matrix", "result": [...]}}',
        )
    if document.get("status", "success") != "success":
        raise BadInput(
            f"holds a failed query ({document.get('errorType')}: {document.get('error')})",
            file=path,
            expected='"status": "success"',
        )
    data = document["data"]
    kind = data.get("resultType")
    if kind not in ("matrix", "vector"):
        raise BadInput(
            f"holds a {kind!r} result", file=path, expected="a 'matrix' (or 'vector') result"
        )
    return str(kind), list(data.get("result") or [])


def parse(path: Path) -> Parsed:
    """Every sample of a Prometheus query answer file as canonical metric rows."""
    stem = path.name.split(".")[0]
    keys: list[tuple[str, str, str, str]] = []
    named_counter: list[bool] = []
    series_ids: list[int] = []
    times: list[Any] = []
    values: list[Any] = []
    for document in read_json_documents(path):
        kind, results = _results(document, path)
        for number, result in enumerate(results, 1):
            labels = {str(k): str(v) for k, v in (result.get("metric") or {}).items()}
            samples = result.get("values") if kind == "matrix" else [result.get("value")]
            if not isinstance(samples, list) or not all(
                isinstance(s, list) and len(s) == 2 for s in samples
            ):
                raise BadInput(
                    f"series {number} has no readable samples",
                    file=path,
                    expected='"values": [[<unix seconds>, "<value>"], ...]',
                )
            service = service_of(labels)
            name = labels.get("__name__", "")
            keys.append(
                (
                    service,
                    _first(labels, INSTANCE_LABELS, service),
                    _first(labels, NODE_LABELS, ""),
                    name or stem,
                )
            )
            named_counter.append(bool(name) and name.endswith(COUNTER_SUFFIXES))
            series_ids.extend([len(keys) - 1] * len(samples))
            times.extend(s[0] for s in samples)
            values.extend(s[1] for s in samples)
    if not keys:
        return Parsed()
    try:
        seconds = np.asarray(times, dtype=np.float64)
        numbers = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInput(
            f"holds a sample that is not a number ({exc})",
            file=path,
            expected='samples such as [1700000000.5, "0.25"]',
        ) from exc
    ts_ns = np.round(seconds * 1_000).astype(np.int64) * 1_000_000
    series = np.asarray(series_ids, dtype=np.int64)
    rows, kept = counter_rates(series, ts_ns, numbers, np.asarray(named_counter, dtype=bool))
    index = pa.array(series[rows])
    table = from_columns(
        "metrics",
        {
            "ts_ns": ts_ns[rows],
            "service": pa.array([k[0] for k in keys]).take(index),
            "instance": pa.array([k[1] for k in keys]).take(index),
            "node": pa.array([k[2] for k in keys]).take(index),
            "name": pa.array([k[3] for k in keys]).take(index),
            "value": kept,
        },
        str(path),
    )
    return Parsed(metrics=table)


FORMAT = ExportFormat(name="prometheus", modalities=("metrics",), sniff=sniff, parse=parse)


class PrometheusDataset(ExportDataset):
    """Prometheus query answers: a file, or a directory of them, is one incident."""

    kind = "prometheus"
    accepts = ("prometheus",)
