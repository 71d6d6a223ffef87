"""Investigating live telemetry: windows found in the data, incidents from a store file.

- `window` — the rule that finds an incident window (and its normal window) in
  unlabelled telemetry; pure functions over numpy plus the SQL that buckets it, shared
  with the file importers.
- `incident` — `live_incident(path, since=..., until=...)`: the incident in the DuckDB
  file `tracehound collect` writes, for `tracehound investigate --store FILE`.
"""

from __future__ import annotations

from tracehound.live.incident import LiveIncident, live_incident, parse_moment
from tracehound.live.window import DEFAULT_RULE, Found, WindowRule, detect, find_window

__all__ = [
    "DEFAULT_RULE",
    "Found",
    "LiveIncident",
    "WindowRule",
    "detect",
    "find_window",
    "live_incident",
    "parse_moment",
]
