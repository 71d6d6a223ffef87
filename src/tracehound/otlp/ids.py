"""Trace and span ids in OTLP JSON: hex by the OTLP specification, base64 in the wild.

OTLP/JSON writes `traceId`, `spanId` and `parentSpanId` as hex strings, while the
standard protobuf JSON mapping (what `google.protobuf.json_format` parses) expects
base64 for `bytes` fields; some producers (e.g. Grafana Tempo's JSON endpoints) write
base64. `hex_ids_to_base64` rewrites a parsed OTLP JSON document in place so that both
spellings parse: an even-length string of hex digits is read as hex, anything else is
left for the protobuf parser to read as base64.
"""

from __future__ import annotations

import base64
import string
from typing import Any

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_HEX_DIGITS = frozenset(string.hexdigits)

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and _HEX_DIGITS.issuperset(text)


def hex_ids_to_base64(node: Any) -> None:
    """Rewrite every hex trace/span id under `node` (dicts and lists) to base64, in place.

    Only dict keys are id fields: OTLP JSON writes attributes as `{key, value}` lists,
    so no attribute can be mistaken for an id.
    """
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(value, str):
                    if key in _ID_KEYS and value and _is_hex(value):
                        item[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def valid_id(raw: bytes, size: int) -> bool:
    """True for an id of the right length that is not all zeros (OTLP's invalid id)."""
    return len(raw) == size and raw.count(0) != size
