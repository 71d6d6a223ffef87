"""What a raw log line states about its own level and message, for loaders whose files
carry the line as text (Nezha's Docker records, RCAEval's `message` column).

Services write lines in a handful of shapes: a JSON object (Go's logrus and Python's JSON
loggers: ``{"message": .., "severity": "info"}``; Node's pino: ``{"level": 30, "msg":
..}``), logfmt (``level=error msg=..``), a level near the start of a plain line, after
at most a few leading fields such as a date, a time, a thread or a process id
(``ERROR ..``, ``[WARN] ..``, ``2024-01-23 10:00:00.123  INFO 1 --- ..``), or .NET's
console prefixes (``fail: ..``). `stated_level_sql` and `stated_message_sql` are SQL
expressions over a text column that read these; `read_lines` applies them to an Arrow
column. A line that states no level gives NULL, and its loader decides (Nezha: UNKNOWN;
RCAEval: INFO).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from tracehound.store import relation_to_arrow

#: Level words a plain line may state (upper case, as loggers print them).
LEVEL_WORDS = ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL", "SEVERE")
#: Leading fields (date, time, thread, pid) a plain line may have before its level.
LEADING_FIELDS = 3
#: .NET console logger prefixes and the levels they stand for.
DOTNET_PREFIXES = {
    "fail": "ERROR",
    "crit": "CRITICAL",
    "warn": "WARN",
    "info": "INFO",
    "dbug": "DEBUG",
    "trce": "TRACE",
}


def _json_sql(text: str) -> str:
    return f"CASE WHEN ltrim({text}) LIKE '{{%' AND json_valid({text}) THEN {text} END"


def stated_level_sql(text: str) -> str:
    """SQL: the level (upper case) the line in column `text` states, or NULL."""
    obj = _json_sql(text)
    field = (
        f"coalesce(json_extract_string({obj}, '$.severity'), "
        f"json_extract_string({obj}, '$.level'), "
        f"json_extract_string({obj}, '$.levelname'), "
        f"json_extract_string({obj}, '$.lvl'))"
    )
    words = "|".join(LEVEL_WORDS)
    plain = (
        f"nullif(regexp_extract({text}, "
        f"'^\\s*(?:\\S+\\s+){{0,{LEADING_FIELDS}}}\\[?({words})\\]?[\\s:]', 1), '')"
    )
    logfmt = (
        f"nullif(regexp_extract({text}, '(?:^|\\s)(?:level|lvl|severity)=\"?([A-Za-z]+)', 1), '')"
    )
    prefix = "|".join(DOTNET_PREFIXES)
    dotnet = (
        f"CASE regexp_extract({text}, '^\\s*({prefix}):\\s', 1) "
        + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in DOTNET_PREFIXES.items())
        + " END"
    )
    number = f"TRY_CAST({field} AS INTEGER)"
    numeric = (  # pino's levels: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal
        f"CASE WHEN {number} >= 60 THEN 'FATAL' WHEN {number} >= 50 THEN 'ERROR' "
        f"WHEN {number} >= 40 THEN 'WARN' WHEN {number} >= 30 THEN 'INFO' ELSE 'DEBUG' END"
    )
    structured = (
        f"CASE WHEN {field} IS NULL OR {field} = '' THEN NULL "
        f"WHEN regexp_full_match({field}, '[0-9]+') THEN {numeric} ELSE upper({field}) END"
    )
    return f"coalesce({structured}, upper(coalesce({plain}, {logfmt})), {dotnet})"


def stated_message_sql(text: str) -> str:
    """SQL: the message of the line in column `text`: a JSON line's `message` or `msg`,
    else the line itself; trailing line breaks removed."""
    obj = _json_sql(text)
    message = (
        f"coalesce(json_extract_string({obj}, '$.message'), "
        f"json_extract_string({obj}, '$.msg'), {text})"
    )
    return f"rtrim({message}, chr(13) || chr(10))"


def read_lines(lines: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """The stated level (NULL where none) and the message of each line."""
    with duckdb.connect() as connection:
        connection.register("lines", pa.table({"line": lines}))
        found = relation_to_arrow(
            connection.sql(
                f"SELECT {stated_level_sql('line')} AS level, "
                f"{stated_message_sql('line')} AS message FROM lines"
            )
        )
    return found.column("level").combine_chunks(), found.column("message").combine_chunks()
