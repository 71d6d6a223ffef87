"""Tool calls and JSON answers recovered from model text."""

from __future__ import annotations

import pytest

from tracehound.llm.textcalls import json_candidates, parse_tool_calls
from tracehound.llm.types import ToolCall

NAMES = ("span_timing", "instance_logs", "edge_timing")


def test_hermes_tags() -> None:
    text = (
        "I need timings.\n"
        '<tool_call>\n{"name": "span_timing", "arguments": {"span_id": "a"}}\n</tool_call>\n'
        '<tool_call>{"name": "instance_logs", "arguments": {"instance": "db-1", "n": 3}}'
        "</tool_call>"
    )
    assert parse_tool_calls(text, NAMES) == (
        ToolCall("text-0", "span_timing", {"span_id": "a"}),
        ToolCall("text-1", "instance_logs", {"instance": "db-1", "n": 3}),
    )


def test_unclosed_tag_and_missing_arguments_inside_a_tag() -> None:
    assert parse_tool_calls('<tool_call>{"name": "edge_timing"}', NAMES) == (
        ToolCall("text-0", "edge_timing", {}),
    )


def test_fenced_json_with_function_and_parameters() -> None:
    text = 'Let me call:\n```json\n{"function": "edge_timing", "parameters": {"to": "b"}}\n```'
    assert parse_tool_calls(text, NAMES) == (ToolCall("text-0", "edge_timing", {"to": "b"}),)


def test_bare_json_forms() -> None:
    text = (
        '{"tool": "span_timing", "args": {"span_id": "x"}} then '
        '{"type": "function", "function": {"name": "instance_logs", '
        '"arguments": "{\\"instance\\": \\"i\\"}"}} and '
        '[{"name": "edge_timing", "arguments": {}}]'
    )
    assert parse_tool_calls(text, NAMES) == (
        ToolCall("text-0", "span_timing", {"span_id": "x"}),
        ToolCall("text-1", "instance_logs", {"instance": "i"}),
        ToolCall("text-2", "edge_timing", {}),
    )


def test_wrapped_tool_calls_list() -> None:
    text = '{"tool_calls": [{"name": "span_timing", "arguments": {"span_id": "q"}}]}'
    assert parse_tool_calls(text, NAMES) == (ToolCall("text-0", "span_timing", {"span_id": "q"}),)


def test_call_syntax() -> None:
    text = (
        'First span_timing({"span_id": "a"}), then instance_logs(instance="db-1", n=3, '
        "errors=true, note='x)y'), and edge_timing()."
    )
    assert parse_tool_calls(text, NAMES) == (
        ToolCall("text-0", "span_timing", {"span_id": "a"}),
        ToolCall(
            "text-1", "instance_logs", {"instance": "db-1", "n": 3, "errors": True, "note": "x)y"}
        ),
        ToolCall("text-2", "edge_timing", {}),
    )


def test_unknown_names_and_answers_are_not_calls() -> None:
    text = (
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call> '
        '{"name": "span_timing"} '
        '{"abnormal": true, "hypothesis": "span_timing shows a slow span"} '
        "my_span_timing(x=1) obj.span_timing(x=2) span_timing(1, 2)"
    )
    assert parse_tool_calls(text, NAMES) == ()
    assert parse_tool_calls('span_timing(span_id="a")', ()) == ()
    assert parse_tool_calls("", NAMES) == ()


def test_unparsable_string_arguments_are_kept_raw() -> None:
    text = '{"name": "span_timing", "arguments": "span a, please"}'
    assert parse_tool_calls(text, NAMES) == (
        ToolCall("text-0", "span_timing", {"_raw": "span a, please"}),
    )


def test_a_call_is_found_once_and_results_are_deterministic() -> None:
    text = (
        '```json\n{"name": "span_timing", "arguments": {"span_id": "a"}}\n```\n'
        '<tool_call>{"name": "edge_timing", "arguments": {"to": "b"}}</tool_call>'
    )
    first = parse_tool_calls(text, NAMES)
    assert first == (
        ToolCall("text-0", "span_timing", {"span_id": "a"}),
        ToolCall("text-1", "edge_timing", {"to": "b"}),
    )
    assert parse_tool_calls(text, list(reversed(NAMES))) == first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', [{"a": 1}]),
        ('Sure! {} Here:\n```json\n{"a": 2}\n```\nDone {"b": 3}', [{"a": 2}, {}, {"b": 3}]),
        ("no json {here", []),
        ('[1, {"c": 4}]', []),
    ],
)
def test_json_candidates(text: str, expected: list[dict[str, int]]) -> None:
    assert list(json_candidates(text)) == expected


def test_call_syntax_inside_strings_is_not_a_call() -> None:
    text = '{"hypothesis": "edge_timing(to=1) was slow"} span_timing(note="see instance_logs(n=2)")'
    assert parse_tool_calls(text, NAMES) == (
        ToolCall("text-0", "span_timing", {"note": "see instance_logs(n=2)"}),
    )
