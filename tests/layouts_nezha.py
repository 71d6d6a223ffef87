"""A tiny on-disk Nezha layout with the real file names, columns and quirks.

Two days under `rca_data/`, so ordering, ids and per-day system inference are exercised:

- `2022-08-22`, an Online Boutique day (pods without the `ts-` prefix), one incident whose
  analysis minute has a trace file but no log file, and no `construct_data` baseline.
- `2023-01-29`, a Train-Ticket day, three incidents listed out of order (hour "13" first,
  and 08:52 before 08:43 within hour "08"), with wrong `inject_timestamp`s (trap 3):

  | id | inject (UTC) | pod | type | files |
  |---|---|---|---|---|
  | 01 | 08:43:04 | contacts | return | trace 08_44 (+1), 08_45 (+2); log 08_45 (+2) |
  | 02 | 08:52:06 | basic | exception | trace 08_52 (+0) only: +2 trace and log missing |
  | 03 | 13:31:54 | contacts | cpu_contention | trace 13_33, log 13_33 (+2) |

  `08_44` repeats trace A of `08_45` (a shared boundary trace). The baseline minute is
  `construct_data/2023-01-29/*/08_50_*`, and its metric files repeat the rca rows of
  08:41-08:59. `08_45_log.csv` holds a row without `Z` and a garbage `TimeUnixNano`, a row
  whose `Log` is not JSON, a row whose quoting is broken so it has 10 fields (as in the
  real `10_06`), a row with empty TraceID/SpanID and a multi-line stack trace.

Every time is written from the constants below so tests can assert exact values.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

TT_DAY = "2023-01-29"
OB_DAY = "2022-08-22"
CONTACTS = "ts-contacts-service-866bd68c97-xcqfx"
BASIC = "ts-basic-service-5dc8d4f9fd-46997"
GATEWAY = "ts-gateway-service-6f6cfc45b-h5m2n"
CART = "cartservice-5d844fc8b7-r6m2k"
CONTACTS_NODE = "33.33.33.79"
GATEWAY_NODE = "33.33.33.167"
CONTACTS_LABEL = "c.s.ContactsServiceImpl#31_c.s.ContactsServiceImpl#34"

TRACE_HEADER = (
    "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration"
)
LOG_HEADER = "Timestamp,TimeUnixNano,Node,PodName,Container,TraceID,SpanID,Log"
METRIC_NAMES = (
    "CpuUsage(m)",
    "CpuUsageRate(%)",
    "MemoryUsage(Mi)",
    "MemoryUsageRate(%)",
    "SyscallRead",
    "SyscallWrite",
    "NetworkReceiveBytes",
    "NetworkTransmitBytes",
    "PodClientLatencyP90(s)",
    "PodServerLatencyP90(s)",
    "PodClientLatencyP95(s)",
    "PodServerLatencyP95(s)",
    "PodClientLatencyP99(s)",
    "PodServerLatencyP99(s)",
    "PodWorkload(Ops)",
    "PodSuccessRate(%)",
    "NodeCpuUsageRate(%)",
    "NodeMemoryUsageRate(%)",
    "NodeNetworkReceiveBytes",
)
#: Always NaN in the tiny files, as `PodServerLatency*` mostly is in the real data.
NAN_METRICS = ("PodServerLatencyP90(s)", "PodServerLatencyP95(s)", "PodServerLatencyP99(s)")
FRONT_NAMES = (
    "SuccessRate(%)",
    "LatencyP50(s)",
    "LatencyP90(s)",
    "LatencyP95(s)",
    "LatencyP99(s)",
)
#: The first metric row showing the cpu_contention fault (trap 7: the minute after).
CPU_FAULT_ROW = datetime(2023, 1, 29, 13, 33, 9, tzinfo=UTC)


def ns(text: str) -> int:
    """Epoch ns of a UTC time written `YYYY-MM-DDTHH:MM:SS[.fffffffff]`."""
    whole, _, fraction = text.partition(".")
    moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


# Spans: (trace, span, parent, pod, operation, start, end)
TRACE_A = "65b3af7cd0587ce2950a88dc1f25bd7c"
TRACE_B = "0b7a1e0c3f9d4c2a8e6f5d4c3b2a1908"
TRACE_C = "c0ffee00c0ffee00c0ffee00c0ffee00"
TRACE_D = "d00dd00dd00dd00dd00dd00dd00dd00d"
TRACE_E = "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0"
TRACE_F = "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1"
TRACE_G = "9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a"
SPAN_A_ROOT = (
    "5f8bc997f73f7ae4",
    "root",
    GATEWAY,
    "/*",
    ns("2023-01-29T08:44:52.825"),
    ns("2023-01-29T08:44:52.946989347"),
)
SPAN_A_CHILD = (
    "ecc8c454bc614936",
    "5f8bc997f73f7ae4",
    CONTACTS,
    "ContactsController.find",
    ns("2023-01-29T08:44:52.830000123"),
    ns("2023-01-29T08:44:52.900000000"),
)
SPAN_B_ROOT = (
    "b0b0b0b0b0b0b0b0",
    "root",
    GATEWAY,
    "/*",
    ns("2023-01-29T08:45:05"),
    ns("2023-01-29T08:45:05.1"),
)
SPAN_C_ROOT = (
    "c0c0c0c0c0c0c0c0",
    "root",
    GATEWAY,
    "/*",
    ns("2023-01-29T08:43:30"),
    ns("2023-01-29T08:43:30.05"),
)
SPAN_D_ROOT = (
    "d0d0d0d0d0d0d0d0",
    "root",
    GATEWAY,
    "/*",
    ns("2023-01-29T08:48:16.478"),
    ns("2023-01-29T08:51:04.146894"),
)
SPAN_D_CHILD = (
    "d1d1d1d1d1d1d1d1",
    "d0d0d0d0d0d0d0d0",
    CONTACTS,
    "ContactsController.find",
    ns("2023-01-29T08:48:16.5"),
    ns("2023-01-29T08:48:16.6"),
)
SPAN_E_ROOT = (
    "e0e0e0e0e0e0e0e0",
    "root",
    GATEWAY,
    "/*",
    ns("2023-01-29T08:51:30"),
    ns("2023-01-29T08:51:30.25"),
)
SPAN_F_ROOT = (
    "f0f0f0f0f0f0f0f0",
    "root",
    GATEWAY,
    "/*",
    ns("2023-01-29T13:32:12"),
    ns("2023-01-29T13:32:12.5"),
)
SPAN_G_ROOT = (
    "a0a0a0a0a0a0a0a0",
    "root",
    "frontend-579b9bff58-t2dbm",
    "hipstershop.Frontend",
    ns("2022-08-22T03:52:20"),
    ns("2022-08-22T03:52:21"),
)


def _trace_file(path: Path, spans: list[tuple[str, tuple[str, str, str, str, int, int]]]) -> None:
    lines = [TRACE_HEADER]
    for trace, (span, parent, pod, operation, start, end) in spans:
        micros = (end - start) // 1000
        lines.append(f"{trace},{span},{parent},{pod},{operation},{start},{end},{micros}")
    _write(path, "\n".join(lines) + "\n")


def docker_json(app_line: str, timestamp: str) -> str:
    """The Docker json-file record, with Go's HTML escaping of `<`, `>` and `&`."""
    record = json.dumps(
        {"log": app_line, "stream": "stdout", "time": timestamp},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return record.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _csv_line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()


def log_row(
    timestamp: str, node: str, pod: str, trace: str, span: str, log: str, unix: str = ""
) -> str:
    unix = unix or str(ns(timestamp.rstrip("Z")))
    return _csv_line([timestamp, unix, node, pod, "server", trace, span, log])


def _app(clock: str, level: str, where: str, trace: str, span: str, text: str) -> str:
    """An app line as Train-Ticket writes it (clock in UTC+8, trap 2)."""
    return f"{clock} {level}  {where} TraceID: {trace} SpanID: {span} {text}\n"


#: The 08_45 log rows, in file order (not time-sorted, as in the real files).
LOG_0845 = [
    log_row(
        "2023-01-29T08:44:52.835933053Z",
        CONTACTS_NODE,
        CONTACTS,
        TRACE_A,
        SPAN_A_CHILD[0],
        docker_json(
            _app(
                "16:44:52.835",
                "INFO",
                "c.s.ContactsServiceImpl#31",
                TRACE_A,
                SPAN_A_CHILD[0],
                "FIND CONTACTS BY ID: <8c756d0c>",
            ),
            "2023-01-29T08:44:52.835933053Z",
        ),
    ),
    log_row(  # 7 fractional digits
        "2023-01-29T08:44:52.8400001Z",
        CONTACTS_NODE,
        CONTACTS,
        TRACE_A,
        SPAN_A_CHILD[0],
        docker_json(
            _app(
                "16:44:52.840",
                "ERROR",
                "c.s.ContactsServiceImpl#37",
                TRACE_A,
                SPAN_A_CHILD[0],
                "[findContactsById][No contacts according to contactsId]",
            ),
            "2023-01-29T08:44:52.8400001Z",
        ),
    ),
    log_row(  # no trace context
        "2023-01-29T08:44:20.5Z",
        GATEWAY_NODE,
        GATEWAY,
        "",
        "",
        docker_json(
            "08:44:20.500 INFO  g.GatewayApplication#12 route refresh\n", "2023-01-29T08:44:20.5Z"
        ),
    ),
    log_row(  # not valid JSON: truncated record
        "2023-01-29T08:44:58.1Z",
        CONTACTS_NODE,
        CONTACTS,
        TRACE_A,
        SPAN_A_CHILD[0],
        '{"log":"16:44:58.100 WARN  c.s.ContactsServiceImpl#40 TraceID: x SpanID: y slow',
    ),
    log_row(  # trap 9: no Z, garbage TimeUnixNano, multi-line stack trace
        "2023-01-29T08:44:59.295",
        CONTACTS_NODE,
        CONTACTS,
        TRACE_A,
        SPAN_A_CHILD[0],
        docker_json(
            _app(
                "16:44:59.295",
                "ERROR",
                "c.s.ContactsServiceImpl#44",
                TRACE_A,
                SPAN_A_CHILD[0],
                "boom\njava.lang.IllegalStateException: x\n\tat c.s.A(A.java:1)",
            ),
            "2023-01-29T08:44:59.295Z",
        ),
        unix="-6795364578871345152",
    ),
    # Broken quoting, copied in shape from the real 10_06 file: 10 fields.
    "2023-01-29T08:45:01.361647039Z,1674981901361647039,33.33.33.79,"
    + CONTACTS
    + ",server,"
    + TRACE_B
    + ",b0b0b0b0b0b0b0b0,"
    + '"{""log"":""16:45:01.361 INFO  u.c.UserController#48 TraceID: t SpanID: s get\\n"",'
    + '""stream"":""stdout""}"ulate distance]\\n"",""stream"":""stdout"",""time"":""x""}"\n',
]
#: Expected (level, message) of each LOG_0845 row, in the same order.
LOG_0845_PARSED = [
    (
        "INFO",
        f"INFO  c.s.ContactsServiceImpl#31 TraceID: {TRACE_A} SpanID: "
        f"{SPAN_A_CHILD[0]} FIND CONTACTS BY ID: <8c756d0c>",
    ),
    (
        "ERROR",
        f"ERROR  c.s.ContactsServiceImpl#37 TraceID: {TRACE_A} SpanID: "
        f"{SPAN_A_CHILD[0]} [findContactsById][No contacts according to contactsId]",
    ),
    ("INFO", "INFO  g.GatewayApplication#12 route refresh"),
    ("WARN", '{"log":"16:44:58.100 WARN  c.s.ContactsServiceImpl#40 TraceID: x SpanID: y slow'),
    (
        "ERROR",
        f"ERROR  c.s.ContactsServiceImpl#44 TraceID: {TRACE_A} SpanID: {SPAN_A_CHILD[0]}"
        " boom\njava.lang.IllegalStateException: x\n\tat c.s.A(A.java:1)",
    ),
    (
        "INFO",
        '{"log":"16:45:01.361 INFO  u.c.UserController#48 TraceID: t SpanID: s get\\n",'
        '"stream":"stdout"}"ulate distance]\\n","stream":"stdout","time":"x"}',
    ),
]
LOG_0845_TIMES = [
    ns("2023-01-29T08:44:52.835933053"),
    ns("2023-01-29T08:44:52.8400001"),
    ns("2023-01-29T08:44:20.5"),
    ns("2023-01-29T08:44:58.1"),
    ns("2023-01-29T08:44:59.295"),
    ns("2023-01-29T08:45:01.361647039"),
]
LOG_0850 = log_row(
    "2023-01-29T08:48:16.55Z",
    CONTACTS_NODE,
    CONTACTS,
    TRACE_D,
    SPAN_D_CHILD[0],
    docker_json(
        _app(
            "16:48:16.550",
            "INFO",
            "c.s.ContactsServiceImpl#31",
            TRACE_D,
            SPAN_D_CHILD[0],
            "FIND CONTACTS BY ID: 1",
        ),
        "2023-01-29T08:48:16.55Z",
    ),
)
LOG_1333 = log_row(
    "2023-01-29T13:32:12.2Z",
    CONTACTS_NODE,
    CONTACTS,
    TRACE_F,
    SPAN_F_ROOT[0],
    docker_json("21:32:12.200 INFO  c.s.ContactsServiceImpl#31 hello\n", "2023-01-29T13:32:12.2Z"),
)


def _metric_minutes(day: str, ranges: list[tuple[str, str]]) -> list[datetime]:
    """One row per minute at :09 s, for each inclusive (HH:MM, HH:MM) range."""
    minutes = []
    for first, last in ranges:
        moment = datetime.fromisoformat(f"{day}T{first}:09").replace(tzinfo=UTC)
        end = datetime.fromisoformat(f"{day}T{last}:09").replace(tzinfo=UTC)
        while moment <= end:
            minutes.append(moment)
            moment += timedelta(minutes=1)
    return minutes


def _pod_metric_file(path: Path, pod: str, minutes: list[datetime], cpu_fault: bool) -> None:
    lines = ["Time,TimeStamp,PodName," + ",".join(METRIC_NAMES)]
    for moment in minutes:
        values = []
        for index, name in enumerate(METRIC_NAMES):
            if name in NAN_METRICS:
                values.append("NaN")
            elif name == "CpuUsageRate(%)":
                values.append("99.9" if cpu_fault and moment >= CPU_FAULT_ROW else "1.7")
            else:
                values.append(str(index + 0.5))
        stamp = int(moment.timestamp())
        clock = f"{moment:%Y-%m-%d %H:%M:%S}.858280782 +0000 UTC m=+0.934442642"
        lines.append(f"{clock},{stamp},{pod}," + ",".join(values))
    _write(path, "\n".join(lines) + "\n")


def _front_file(path: Path, minutes: list[datetime]) -> None:
    lines = ["Time,TimeStamp,ServiceName," + ",".join(FRONT_NAMES)]
    for moment in minutes:
        clock = f"{moment:%Y-%m-%d %H:%M:%S}.043078357 +0000 UTC m=+0.119240217"
        lines.append(f"{clock},{int(moment.timestamp())},Frontend,0,0.09,0.48,0.72,0.94")
    _write(path, "\n".join(lines) + "\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _write_json(path: Path, data: object) -> None:
    _write(path, json.dumps(data, indent=4))


def write_tiny_nezha(root: Path, *, drop_log_minute: bool = False) -> None:
    """Write the tiny layout under `root`; `drop_log_minute` omits incident 01's +2 log."""
    tt = root / "rca_data" / TT_DAY
    _write_json(
        tt / f"{TT_DAY}-fault_list.json",
        {
            "13": [
                {
                    "inject_time": "2023-01-29 13:31:54",
                    "inject_timestamp": "1675001514",
                    "inject_pod": CONTACTS,
                    "inject_type": "cpu_contention",
                }
            ],
            "08": [
                {
                    "inject_time": "2023-01-29 08:52:06",
                    "inject_timestamp": "1674953526",
                    "inject_pod": BASIC,
                    "inject_type": "exception",
                },
                {
                    "inject_time": "2023-01-29 08:43:04",
                    "inject_timestamp": "1674953044",
                    "inject_pod": CONTACTS,
                    "inject_type": "return",
                },
            ],
        },
    )
    _trace_file(
        tt / "trace" / "08_44_trace.csv",
        [(TRACE_A, SPAN_A_ROOT), (TRACE_A, SPAN_A_CHILD), (TRACE_C, SPAN_C_ROOT)],
    )
    _trace_file(
        tt / "trace" / "08_45_trace.csv",
        [(TRACE_A, SPAN_A_ROOT), (TRACE_A, SPAN_A_CHILD), (TRACE_B, SPAN_B_ROOT)],
    )
    _trace_file(tt / "trace" / "08_52_trace.csv", [(TRACE_E, SPAN_E_ROOT)])
    _trace_file(tt / "trace" / "13_33_trace.csv", [(TRACE_F, SPAN_F_ROOT)])
    if not drop_log_minute:
        _write(tt / "log" / "08_45_log.csv", LOG_HEADER + "\n" + "".join(LOG_0845))
    _write(tt / "log" / "13_33_log.csv", LOG_HEADER + "\n" + LOG_1333)
    rca_minutes = _metric_minutes(TT_DAY, [("08:30", "09:00"), ("13:20", "13:45")])
    _pod_metric_file(tt / "metric" / f"{CONTACTS}_metric.csv", CONTACTS, rca_minutes, True)
    _pod_metric_file(tt / "metric" / f"{BASIC}_metric.csv", BASIC, rca_minutes, False)
    _front_file(tt / "metric" / "front_service.csv", rca_minutes)

    base = root / "construct_data" / TT_DAY
    _trace_file(
        base / "trace" / "08_50_trace.csv", [(TRACE_D, SPAN_D_ROOT), (TRACE_D, SPAN_D_CHILD)]
    )
    _write(base / "log" / "08_50_log.csv", LOG_HEADER + "\n" + LOG_0850)
    base_minutes = _metric_minutes(TT_DAY, [("08:41", "08:59")])
    _pod_metric_file(base / "metric" / f"{CONTACTS}_metric.csv", CONTACTS, base_minutes, True)
    _pod_metric_file(base / "metric" / f"{BASIC}_metric.csv", BASIC, base_minutes, False)
    _front_file(base / "metric" / "front_service.csv", base_minutes)
    _write_json(
        root / "construct_data" / "root_cause_ts.json",
        {
            "ts-contacts-service": {"return": CONTACTS_LABEL, "cpu_contention": "CpuUsageRate(%)"},
            "ts-basic-service": {"return": "f.m.s.BasicServiceImpl#405_f.m.s.BasicServiceImpl#418"},
        },
    )

    ob = root / "rca_data" / OB_DAY
    _write_json(
        ob / f"{OB_DAY}-fault_list.json",
        {
            "03": [
                {
                    "inject_time": "2022-08-22 03:51:00",
                    "inject_timestamp": "1661111460",
                    "inject_pod": CART,
                    "inject_type": "cpu_consumed",
                }
            ]
        },
    )
    _trace_file(ob / "trace" / "03_53_trace.csv", [(TRACE_G, SPAN_G_ROOT)])
    ob_minutes = _metric_minutes(OB_DAY, [("03:45", "03:55")])
    _pod_metric_file(ob / "metric" / f"{CART}_metric.csv", CART, ob_minutes, False)
