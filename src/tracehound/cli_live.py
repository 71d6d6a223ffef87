"""`tracehound investigate --store FILE`: investigate what a running collector captured.

Kept out of `cli.py` so that command stays small; `investigate` calls `investigate_store`
when `--store` is given. The window rules are in `tracehound.live.incident`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from tracehound.errors import BadInput, TracehoundError

if TYPE_CHECKING:
    from tracehound.investigation import Investigation


def check_target(
    path: Path | None,
    incident: str | None,
    store: Path | None,
    since: str | None,
    until: str | None,
    alert_service: str | None,
) -> None:
    """Exactly one of PATH and `--store`; the live options only with `--store`."""
    if (path is None) == (store is None):
        raise BadInput(
            "give either PATH or --store FILE" if path is None else "both PATH and --store given",
            column="--store",
            expected="exactly one of PATH (a bundle, dataset or telemetry file) and "
            "--store FILE (a store written by `tracehound collect`)",
        )
    if store is None:
        given = [
            name
            for name, value in (
                ("--since", since),
                ("--until", until),
                ("--alert-service", alert_service),
            )
            if value is not None
        ]
        if given:
            raise BadInput(
                f"{', '.join(given)} apply only with --store",
                column=given[0],
                expected="--store FILE",
            )
    elif incident is not None:
        raise BadInput(
            "--incident does not apply to --store (the window picks the incident)",
            column="--incident",
            expected="--since/--until to choose the window",
        )


def investigate_store(
    store_path: Path,
    since: str | None,
    until: str | None,
    alert_service: str | None,
    method_name: str,
    params: dict[str, Any],
    stderr: Console,
) -> Investigation:
    """Build the live incident from the store file and run the method on it."""
    from tracehound.investigation import Investigation
    from tracehound.live import live_incident
    from tracehound.methods import get_method

    started = time.perf_counter()
    method = get_method(method_name, **params)
    with stderr.status(f"reading {store_path}"):
        live = live_incident(store_path, since=since, until=until, alert_service=alert_service)
    incident = live.incident
    with live.store as store, stderr.status(f"investigating {incident.id} with {method_name}"):
        loaded = time.perf_counter()
        explain = getattr(method, "investigate", None)
        if callable(explain):
            result = explain(incident, store)
            if not isinstance(result, Investigation):
                raise TracehoundError(
                    f"method {method_name!r} returned {type(result).__name__} from "
                    "investigate(), not an Investigation"
                )
        else:
            ranking = method.localize(incident, store)
            result = Investigation.from_ranking(
                incident, method_name, ranking, modalities=store.modalities()
            )
        finished = time.perf_counter()
    for note in live.notes:
        stderr.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    stats = {
        "wall_time_s": round(finished - loaded, 4),
        **result.stats,
        "load_time_s": round(loaded - started, 4),
    }
    return result.model_copy(update={"stats": stats})
