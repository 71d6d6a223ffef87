"""An incident from a live store: the DuckDB file `tracehound collect` writes.

`live_incident` reads a time range of the file (through `otlp.filestore.snapshot`, which
copes with the collector writing meanwhile) and decides the incident and normal windows:

- ``--since`` / ``--until`` take a duration (``90s``, ``15m``, ``2h``, ``1d``; also
  ``500ms``) counted back from the **newest data in the store** — not from the wall
  clock, so that a replayed or paused capture works the same as a live one — or an
  RFC 3339 time (``2024-05-01T12:00:00Z``; without an offset it is read as UTC).
  ``--until`` defaults to the newest data.
- With ``--since``, the incident window is [since, until).
- Without it, the window is found in the data: the last `WindowRule.lookback_s` (3 h)
  before ``until`` are read and `window.detect` finds the recent stretch where error
  rate or latency (or, without spans, metrics) departs from the rest. When nothing
  departs, the window is the last `DEFAULT_SINCE_S` (15 min) before ``until``.
- The normal window is as long as the incident window and lies directly before it,
  clipped to the data; there is none when no data precedes the incident window.
- The incident id is ``live-<window start>`` (UTC, to the second); ``--alert-service``
  becomes the incident's alert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tracehound.errors import BadInput
from tracehound.live.window import DATA_RANGE_SQL, DEFAULT_RULE, WindowRule, detect, normal_before
from tracehound.model import Alert, Incident, Window, datetime_from_ns, ns_from_datetime
from tracehound.store import TelemetryStore

NS_PER_S = 1_000_000_000
#: The incident window's length when none is given and nothing departs in the data.
DEFAULT_SINCE_S = 15 * 60
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_NS = {
    "ms": 1_000_000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
}


@dataclass
class LiveIncident:
    """The incident and the in-memory store holding the rows it needs."""

    incident: Incident
    store: TelemetryStore
    notes: list[str] = field(default_factory=list)


def parse_moment(text: str, newest_ns: int, option: str) -> int:
    """Epoch ns of `text`: a duration back from `newest_ns`, or an RFC 3339 time."""
    match = _DURATION.match(text)
    if match:
        return newest_ns - int(Decimal(match.group(1)) * _UNIT_NS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError as exc:
        raise BadInput(
            f"cannot read {text!r}",
            column=option,
            expected="a duration such as 90s, 15m, 2h or 1d, or an RFC 3339 time "
            "such as 2024-05-01T12:00:00Z",
        ) from exc
    return ns_from_datetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def store_range(path: Path, timeout_s: float) -> tuple[int, int] | None:
    """[first, last + 1 ns) of the rows in a store file; None when it holds none."""
    from tracehound.otlp.filestore import connect

    if not path.exists():
        raise BadInput(
            "the store does not exist",
            file=path,
            hint="`tracehound collect --store FILE` creates it when it starts.",
        )
    con = connect(path, read_only=True, timeout_s=timeout_s)
    try:
        present = {row[0] for row in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
        if not {"spans", "metrics", "logs"} <= present:
            return None
        row = con.execute(DATA_RANGE_SQL).fetchone()
    finally:
        con.close()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1]) + 1


def incident_id(start_ns: int) -> str:
    """``live-<start>``, the start in UTC to the second (e.g. live-2024-05-01T12:00:00Z)."""
    moment = datetime_from_ns(start_ns).replace(microsecond=0)
    return "live-" + moment.isoformat().replace("+00:00", "Z")


def live_incident(
    path: str | Path,
    *,
    since: str | None = None,
    until: str | None = None,
    alert_service: str | None = None,
    rule: WindowRule = DEFAULT_RULE,
    timeout_s: float = 30.0,
) -> LiveIncident:
    """The incident in a store file (the rules are in the module docstring)."""
    from tracehound.otlp.filestore import snapshot

    file = Path(path)
    found_range = store_range(file, timeout_s)
    if found_range is None:
        raise BadInput(
            "the store holds no spans, logs or metrics yet",
            file=file,
            hint="Send telemetry to `tracehound collect` first.",
        )
    first_ns, newest_ns = found_range
    end_ns = parse_moment(until, newest_ns, "--until") if until else newest_ns
    notes: list[str] = []
    if since:
        start_ns, end_ns = _to_us(parse_moment(since, newest_ns, "--since"), end_ns)
        _check_order(start_ns, end_ns)
        normal = normal_before(start_ns, end_ns, first_ns)
        store = snapshot(
            file,
            since_ns=normal[0] if normal else start_ns,
            until_ns=end_ns,
            timeout_s=timeout_s,
        )
        notes.append("window: given by --since")
    else:
        history_ns = max(first_ns, end_ns - rule.lookback_s * NS_PER_S)
        _check_order(history_ns, end_ns)
        store = snapshot(file, since_ns=history_ns, until_ns=end_ns, timeout_s=timeout_s)
        found = detect(store.con, history_ns, end_ns, rule)
        if found.found:
            start_ns, end_ns = _to_us(found.start_ns, found.end_ns)
        else:
            start_ns, end_ns = _to_us(max(history_ns, end_ns - DEFAULT_SINCE_S * NS_PER_S), end_ns)
        normal = normal_before(start_ns, end_ns, history_ns)
        notes.append(f"window: {found.reason}" if found.found else _fallback_note(found.reason))
    incident = Incident(
        id=incident_id(start_ns),
        window=Window.from_ns(start_ns, end_ns),
        normal_window=Window.from_ns(*normal) if normal else None,
        alert=Alert(time=datetime_from_ns(end_ns), service=alert_service)
        if alert_service
        else None,
        attributes={"store": str(file), "window": notes[-1].removeprefix("window: ")},
    )
    return LiveIncident(incident=incident, store=store, notes=notes)


def _to_us(start_ns: int, end_ns: int) -> tuple[int, int]:
    """The window widened outwards to whole microseconds (what `Window` stores), so that
    the normal window computed from it ends exactly where it starts."""
    return start_ns // 1000 * 1000, -(-end_ns // 1000) * 1000


def _fallback_note(reason: str) -> str:
    first = reason.split(";")[0]
    return f"window: {first}; the window is the last {DEFAULT_SINCE_S // 60} min of data"


def _check_order(start_ns: int, end_ns: int) -> None:
    if end_ns <= start_ns:
        raise BadInput(
            f"the window is empty: it starts at {datetime_from_ns(start_ns).isoformat()} "
            f"and ends at {datetime_from_ns(end_ns).isoformat()}",
            column="--since",
            expected="--since before --until (and before the newest data)",
        )
