"""Derived keys of a log line: its normalised level and its message template.

The store computes both once per row when rows arrive (`TelemetryStore.add_table`), into
the internal columns `lvl` and `tpl` of its `logs` table, so analyses group and filter by
them without running the template's regular expressions again on every query: the cost
of a template is paid once per line, not once per line per question asked of it.
"""

from __future__ import annotations

#: Levels read as errors and as warnings (case-insensitive); anything else is chatter.
ERROR_LEVELS = ("ERROR", "FATAL", "CRITICAL", "SEVERE", "EMERG", "ALERT", "PANIC")
WARN_LEVELS = ("WARN", "WARNING")

#: A log template: the message with ids (hex runs, UUIDs) and free-standing numbers
#: masked, cut to its first 96 characters (variable text such as names and values
#: tends to come last). Numbers glued to `#` (source line markers such as ``Impl#31``)
#: are kept, because they tell code locations apart.
TEMPLATE_SQL = (
    "left(regexp_replace(regexp_replace(coalesce(message, ''), "
    "'[0-9a-fA-F]{8,}(-[0-9a-fA-F]{4,})*', '<id>', 'g'), "
    "'([^#A-Za-z0-9_])[0-9]+([.][0-9]+)?', '\\10', 'g'), 96)"
)
#: The level as one of 'error', 'warn', 'info'.
LEVEL_SQL = (
    "CASE WHEN upper(level) IN ({e}) THEN 'error' WHEN upper(level) IN ({w}) THEN 'warn' "
    "ELSE 'info' END"
).format(e=", ".join(f"'{x}'" for x in ERROR_LEVELS), w=", ".join(f"'{x}'" for x in WARN_LEVELS))

#: The store's derived log columns and the SQL that computes each from a logs row.
DERIVED_LOG_COLUMNS: dict[str, str] = {"lvl": LEVEL_SQL, "tpl": TEMPLATE_SQL}
