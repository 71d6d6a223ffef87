"""What raw log lines state about their level and message (`datasets.loglines`)."""

from __future__ import annotations

import pyarrow as pa

from tracehound.datasets.loglines import read_lines

#: A line, then the level it states (None: none) and its message.
LINES = [
    (
        '{"message":"PlaceOrder failed: rpc error","severity":"error"}',
        "ERROR",
        "PlaceOrder failed: rpc error",
    ),
    ('{"severity":"info","pid":1,"message":"Conversion ok","v":1}', "INFO", "Conversion ok"),
    ('{"level":50,"time":1,"msg":"payment declined"}', "ERROR", "payment declined"),
    ('{"level":60,"msg":"dying"}', "FATAL", "dying"),
    ('{"level":20,"msg":"details"}', "DEBUG", "details"),
    ('{"severity": "WARNING", "message": "slow list"}', "WARNING", "slow list"),
    ('{"levelname": "error", "message": "db down"}', "ERROR", "db down"),
    (
        "2024-01-23 10:00:00.123  WARN 1 --- [main] c.s.Cart : retry\n",
        "WARN",
        "2024-01-23 10:00:00.123  WARN 1 --- [main] c.s.Cart : retry",
    ),
    (
        "16:44:10.576 ERROR c.s.Impl#31 lookup failed",
        "ERROR",
        "16:44:10.576 ERROR c.s.Impl#31 lookup failed",
    ),
    ("[WARN] cache miss storm", "WARN", "[WARN] cache miss storm"),
    ('time=1 level=error msg="boom"', "ERROR", 'time=1 level=error msg="boom"'),
    (
        "fail: CartStore[0] Can't access cart storage",
        "ERROR",
        "fail: CartStore[0] Can't access cart storage",
    ),
    ("GET /api/ERROR handler answered", None, "GET /api/ERROR handler answered"),
    ("a b c d ERROR too far in", None, "a b c d ERROR too far in"),
    ('{"foo": 1}', None, '{"foo": 1}'),
    ("", None, ""),
]


def test_levels_and_messages_stated_by_each_shape_of_line() -> None:
    levels, messages = read_lines(pa.array([line for line, _, _ in LINES]))
    assert list(zip(levels.to_pylist(), messages.to_pylist(), strict=True)) == [
        (level, message) for _, level, message in LINES
    ]
