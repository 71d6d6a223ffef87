"""The candidate root causes an incident offers: every service and instance in its data."""

from __future__ import annotations

from tracehound.store import TelemetryStore


def candidate_names(store: TelemetryStore) -> tuple[list[str], list[str]]:
    """Sorted distinct non-empty service and instance names across all three tables."""
    rows = store.query(
        """
        SELECT DISTINCT kind, name FROM (
          SELECT 'service' AS kind, service AS name FROM spans
          UNION ALL SELECT 'instance', instance FROM spans
          UNION ALL SELECT 'service', service FROM metrics
          UNION ALL SELECT 'instance', instance FROM metrics
          UNION ALL SELECT 'service', service FROM logs
          UNION ALL SELECT 'instance', instance FROM logs)
        WHERE name IS NOT NULL AND name <> ''
        ORDER BY kind, name
        """
    )
    kinds = rows.column("kind").to_pylist()
    names = rows.column("name").to_pylist()
    services = [n for k, n in zip(kinds, names, strict=True) if k == "service"]
    instances = [n for k, n in zip(kinds, names, strict=True) if k == "instance"]
    return services, instances
