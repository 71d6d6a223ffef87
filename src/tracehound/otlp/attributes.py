"""OTLP attribute values and resource identity (service, instance, node).

`AnyValue` is OTLP's tagged union for attribute values and log bodies; here it becomes
plain JSON-able Python. A resource's attributes name the service, instance and node
every row from that resource belongs to (docs/opentelemetry.md, "Field mapping").
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

#: Service of a resource without `service.name` (the OpenTelemetry SDKs' own default).
UNKNOWN_SERVICE = "unknown_service"


def any_value(value: Any) -> Any:
    """One OTLP `AnyValue` message as JSON-able Python (bytes become base64 text)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return key_values(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)


def key_values(items: Any) -> dict[str, Any]:
    """Repeated OTLP `KeyValue` messages as a dict (a repeated key keeps its last value)."""
    return {kv.key: any_value(kv.value) for kv in items}


@dataclass(frozen=True)
class Identity:
    """Who emitted a resource's telemetry, in the canonical columns' terms."""

    service: str
    instance: str
    node: str


def _text(attrs: dict[str, Any], key: str) -> str:
    value = attrs.get(key)
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)


def resource_identity(resource: Any) -> Identity:
    """Service, instance and node of one OTLP `Resource`.

    service = `service.name` (else "unknown_service"); instance = `service.instance.id`,
    else `k8s.pod.name`, else `host.name:process.pid` (or `host.name` alone), else the
    service; node = `k8s.node.name`, else `host.name`, else "".
    """
    attrs = key_values(resource.attributes)
    service = _text(attrs, "service.name") or UNKNOWN_SERVICE
    host = _text(attrs, "host.name")
    pid = _text(attrs, "process.pid")
    instance = (
        _text(attrs, "service.instance.id")
        or _text(attrs, "k8s.pod.name")
        or (f"{host}:{pid}" if host and pid else host)
        or service
    )
    node = _text(attrs, "k8s.node.name") or host
    return Identity(service=service, instance=instance, node=node)
