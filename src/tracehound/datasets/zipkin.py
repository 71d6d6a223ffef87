"""Zipkin v2 JSON traces (``zipkin2.Span``, zipkin.io): what ``/api/v2/trace/{id}``,
``/api/v2/traces`` (a list of traces) and the UI's JSON download return.

A span: ``traceId``, ``id``, ``parentId`` (absent at a root), ``name``, ``kind``
(CLIENT, SERVER, PRODUCER, CONSUMER), ``timestamp`` and ``duration`` (µs),
``localEndpoint {serviceName, ipv4, ipv6, port}``, ``remoteEndpoint``, ``tags`` (a string
map), ``annotations [{timestamp, value}]`` and ``shared``.

Mapping:

- ``service``: ``localEndpoint.serviceName`` (``unknown_service`` when absent);
  ``instance``: a tag among ``service.instance.id``, ``k8s.pod.name``, ``pod``,
  ``hostname``, ``host.name``, ``ip``, else the local endpoint's ``ipv4`` or ``ipv6``
  with ``:port``, else the service.
- ``status``: ``error`` when an ``error`` tag is present (Zipkin's convention; its value
  is the message, and only ``"false"`` means no error), ``otel.status_code`` is ERROR or
  ``http.status_code`` is 500 or more; ``ok`` when ``otel.status_code`` is OK.
- ``kind``: lower-cased; absent means ``unset``. A missing ``duration`` is 0.
- ``attributes``: the tags, plus ``peer.service`` from ``remoteEndpoint.serviceName``.
- Annotations become log rows linked to the span: level ERROR when the value mentions
  an error or exception, else INFO. The v1 core annotations (cs, sr, ss, cr, ws, wr)
  carry no message and are skipped.
- Shared spans: a server half marked ``shared: true`` that reuses its client's id
  becomes span ``<id>-shared``, a child of the client half; the spans below it (same
  ``parentId``, same service) move under it, so every span id is unique in its trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracehound.datasets.exports import (
    Columns,
    ExportDataset,
    ExportFormat,
    Parsed,
    attributes_json,
    instance_of,
    read_json_documents,
    span_kind,
    span_status,
)
from tracehound.errors import BadInput

NS_PER_US = 1_000
CORE_ANNOTATIONS = frozenset({"cs", "sr", "ss", "cr", "ws", "wr"})
SHARED_SUFFIX = "-shared"


def sniff(text: str) -> bool:
    """A JSON array of spans (or of traces) with ``traceId``."""
    return text.startswith("[") and '"traceId"' in text


def _spans(document: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(document, list):
        raise BadInput("is not a Zipkin span list", file=path, expected="a JSON array of spans")
    flat: list[Any] = []
    for item in document:
        flat.extend(item if isinstance(item, list) else [item])
    for number, span in enumerate(flat, 1):
        if not isinstance(span, dict) or "traceId" not in span or "id" not in span:
            raise BadInput(
                f"span {number} has no traceId or id",
                file=path,
                expected="Zipkin v2 spans with traceId, id, timestamp and duration",
            )
    return flat


def _instance(span: dict[str, Any], tags: dict[str, Any], service: str) -> str:
    endpoint = span.get("localEndpoint") or {}
    address = str(endpoint.get("ipv4") or endpoint.get("ipv6") or "")
    if address and endpoint.get("port"):
        address = f"{address}:{endpoint['port']}"
    return instance_of(tags, address or service)


def _reparent_shared(spans: list[dict[str, Any]]) -> dict[int, tuple[str, str | None]]:
    """New (span id, parent id) of shared server halves and the spans below them."""
    owners = {
        (s["traceId"], s["id"]) for s in spans if not s.get("shared") and s.get("kind") != "SERVER"
    }
    moved: dict[int, tuple[str, str | None]] = {}
    shared_service: dict[tuple[str, str], str] = {}
    for index, span in enumerate(spans):
        if span.get("shared") and (span["traceId"], span["id"]) in owners:
            moved[index] = (f"{span['id']}{SHARED_SUFFIX}", span["id"])
            service = (span.get("localEndpoint") or {}).get("serviceName", "")
            shared_service[(span["traceId"], span["id"])] = service
    for index, span in enumerate(spans):
        key = (span["traceId"], span.get("parentId"))
        if index in moved or key not in shared_service:
            continue
        if (span.get("localEndpoint") or {}).get("serviceName", "") == shared_service[key]:
            moved[index] = (span["id"], f"{span['parentId']}{SHARED_SUFFIX}")
    return moved


def parse(path: Path) -> Parsed:
    """Every span and annotation of a Zipkin v2 JSON file as canonical tables."""
    spans_out = Columns("spans")
    logs = Columns("logs")
    for document in read_json_documents(path):
        spans = _spans(document, path)
        moved = _reparent_shared(spans)
        for index, span in enumerate(spans):
            tags = {str(k): v for k, v in (span.get("tags") or {}).items()}
            service = str((span.get("localEndpoint") or {}).get("serviceName") or "unknown_service")
            instance = _instance(span, tags, service)
            span_id, parent = moved.get(index, (str(span["id"]), span.get("parentId")))
            remote = (span.get("remoteEndpoint") or {}).get("serviceName")
            attributes = dict(tags)
            if remote and "peer.service" not in attributes:
                attributes["peer.service"] = remote
            try:
                start = int(span["timestamp"]) * NS_PER_US
                length = int(span.get("duration") or 0) * NS_PER_US
            except (KeyError, TypeError, ValueError) as exc:
                raise BadInput(
                    f"span {span['id']} has no readable timestamp/duration",
                    file=path,
                    expected="µs integers",
                ) from exc
            trace_id = str(span["traceId"]).lower()
            spans_out.add(
                trace_id=trace_id,
                span_id=span_id.lower(),
                parent_span_id=parent.lower() if parent else None,
                service=service,
                instance=instance,
                operation=str(span.get("name") or ""),
                kind=span_kind(span.get("kind")),
                start_ns=start,
                duration_ns=length,
                status=span_status(tags, error_if_present=True),
                attributes=attributes_json(attributes),
            )
            for note in span.get("annotations") or []:
                value = str(note.get("value", ""))
                if value in CORE_ANNOTATIONS or not value:
                    continue
                lowered = value.lower()
                errorish = "error" in lowered or "exception" in lowered
                logs.add(
                    ts_ns=int(note.get("timestamp", span["timestamp"])) * NS_PER_US,
                    service=service,
                    instance=instance,
                    level="ERROR" if errorish else "INFO",
                    message=value,
                    trace_id=trace_id,
                    span_id=span_id.lower(),
                )
    return Parsed(spans=spans_out.table(str(path)), logs=logs.table(str(path)))


FORMAT = ExportFormat(name="zipkin", modalities=("traces", "logs"), sniff=sniff, parse=parse)


class ZipkinDataset(ExportDataset):
    """A Zipkin v2 JSON file, or a directory of them: one incident (see `exports`)."""

    kind = "zipkin"
    accepts = ("zipkin",)
