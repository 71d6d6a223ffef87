"""OpenTelemetry (OTLP) input: decoding export requests into the canonical tables.

- `decode` — `decode_export(signal, body, json=...)`: an OTLP/HTTP request body
  (protobuf or JSON) as one canonical Arrow table, with the count of rejected items.
- `receiver` — the Starlette app behind `tracehound collect` (OTLP/HTTP on port 4318).
- `writer` — the batched, transactional writer that appends decoded rows to a DuckDB file.
- `filestore` — `snapshot(path, ...)`: a reader's consistent in-memory copy of that file.

docs/opentelemetry.md describes the field mapping, limits and response codes.
"""

from __future__ import annotations
