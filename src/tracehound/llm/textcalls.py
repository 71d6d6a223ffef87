"""Structure recovered from model text: tool calls written as text, and JSON answers.

Small local models often *write* a tool call instead of returning one through the
API's `tool_calls` field: Hermes/Qwen templates wrap it in `<tool_call>` tags, others
print a JSON object (fenced or bare) or a Python-like call `span_timing(span_id="a")`.
Throwing such an answer away wastes a call and stalls the agent, so the backend parses
the calls back here. Only names of tools actually offered count, so prose that happens
to contain JSON is not mistaken for a call, and the result depends on the text alone
(ids `text-0`, `text-1`, … in order of appearance).

`json_candidates` serves the same purpose for JSON answers: models wrap the object in
```json fences and prose, and the session must find it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from tracehound.llm.types import ToolCall

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()

# (name key, argument keys) pairs models use for a call written as JSON
_NAME_KEYS = ("name", "function", "tool", "tool_name")
_ARG_KEYS = ("arguments", "parameters", "args", "input")
# wrappers that hold one call or a list of calls
_WRAPPER_KEYS = ("tool_calls", "tool_call", "function_call")
_JSON_WORDS = {"true": True, "false": False, "null": None}


def parse_tool_calls(text: str, names: Collection[str]) -> tuple[ToolCall, ...]:
    """Tool calls written in `text`, in order of appearance, restricted to `names`.

    Recognised forms: `<tool_call>{"name": .., "arguments": {..}}</tool_call>`;
    fenced or bare JSON objects (or lists of them) with `name` + `arguments`,
    `function` + `parameters`, `tool` + `args`, or OpenAI's
    `{"function": {"name": .., "arguments": ..}}`; and call syntax `name({..})` or
    `name(key="v", n=3)`. Arguments given as a JSON string are decoded.
    """
    allowed = frozenset(names)
    if not allowed or not text:
        return ()
    found: list[tuple[int, str, dict[str, Any]]] = []
    taken: list[tuple[int, int]] = []

    for match in _TAGGED.finditer(text):
        calls = [c for obj in _json_values(match.group(1)) for c in _calls_in(obj, allowed, True)]
        if calls:
            taken.append(match.span())
            found.extend((match.start(), name, args) for name, args in calls)

    for match in _FENCED.finditer(text):
        if _overlaps(match.span(), taken):
            continue
        calls = [c for obj in _json_values(match.group(2)) for c in _calls_in(obj, allowed, False)]
        if calls:
            taken.append(match.span())
            found.extend((match.start(), name, args) for name, args in calls)

    json_spans = []  # JSON that is not a call still hides call syntax inside its strings
    for start, end, obj in _bare_json(text, taken):
        json_spans.append((start, end))
        calls = _calls_in(obj, allowed, False)
        found.extend((start, name, args) for name, args in calls)

    for start, _, name, args in _call_syntax(text, allowed, taken + json_spans):
        found.append((start, name, args))

    found.sort(key=lambda item: item[0])  # stable: calls found together keep their order
    return tuple(
        ToolCall(id=f"text-{i}", name=name, arguments=args)
        for i, (_, name, args) in enumerate(found)
    )


def json_candidates(text: str) -> Iterator[dict[str, Any]]:
    """JSON objects in `text`: those inside ``` fences first, then bare ones, in order.

    A model's JSON answer may come wrapped in fences and prose; the first candidate is
    usually the answer, later ones let a caller skip a stray `{}` in the prose.
    """
    fences = []
    for match in _FENCED.finditer(text):
        fences.append(match.span())
        for value in _json_values(match.group(2)):
            if isinstance(value, dict):
                yield value
    for _, _, value in _bare_json(text, fences):
        if isinstance(value, dict):
            yield value


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in taken)


def _json_values(text: str) -> list[Any]:
    """Every top-level JSON value in `text` (usually exactly one)."""
    return [value for _, _, value in _bare_json(text, [])]


def _bare_json(text: str, taken: list[tuple[int, int]]) -> Iterator[tuple[int, int, Any]]:
    """(start, end, value) for each top-level JSON object or array outside `taken`."""
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        inside = next((end for s, end in taken if s <= start < end), None)
        if inside is not None:
            pos = inside
            continue
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        yield start, end, value
        pos = end


def _calls_in(
    value: Any, allowed: frozenset[str], tagged: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The calls a decoded JSON value describes ([] when it describes none).

    Inside `<tool_call>` tags a call may omit its arguments; elsewhere an argument key
    is required, so a plain `{"name": "x"}` answer is not taken for a call.
    """
    if isinstance(value, list):
        return [c for item in value for c in _calls_in(item, allowed, tagged)]
    if not isinstance(value, dict):
        return []
    for key in _WRAPPER_KEYS:
        if key in value and isinstance(value[key], dict | list):
            return _calls_in(value[key], allowed, tagged)
    function = value.get("function")
    if isinstance(function, dict):  # OpenAI's {"type": "function", "function": {...}}
        return _calls_in(function, allowed, tagged)
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name not in allowed:
        return []
    arg_key = next((k for k in _ARG_KEYS if k in value), None)
    if arg_key is None:
        return [(name, {})] if tagged else []
    args = _as_arguments(value[arg_key])
    return [] if args is None else [(name, args)]


def _as_arguments(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return {"_raw": raw}
    return dict(raw) if isinstance(raw, dict) else None


def _call_syntax(
    text: str, allowed: frozenset[str], taken: list[tuple[int, int]]
) -> Iterator[tuple[int, int, str, dict[str, Any]]]:
    """`name(...)` calls of allowed tools outside `taken`, with parsable arguments."""
    alternatives = "|".join(re.escape(n) for n in sorted(allowed, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.])({alternatives})\s*\(")
    done = 0  # end of the last call found: calls inside its arguments are not calls
    for match in pattern.finditer(text):
        if match.start() < done or _overlaps(match.span(), taken):
            continue
        close = _closing_paren(text, match.end())
        if close is None:
            continue
        args = _call_arguments(text[match.end() : close])
        if args is not None:
            done = close + 1
            yield match.start(), done, match.group(1), args


def _closing_paren(text: str, pos: int) -> int | None:
    """Index of the `)` closing the `(` just before `pos`, skipping quoted strings."""
    depth, quote, i = 1, "", pos
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _call_arguments(inside: str) -> dict[str, Any] | None:
    """Arguments of `name(<inside>)`: empty, one JSON/Python dict, or keyword arguments."""
    inside = inside.strip()
    if not inside:
        return {}
    if inside.startswith("{"):
        try:
            value = json.loads(inside)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(inside)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                return None
        return dict(value) if isinstance(value, dict) else None
    try:
        call = ast.parse(f"_f({inside})", mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None
    if not isinstance(call, ast.Call) or call.args:
        return None
    args: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            return None
        try:
            args[keyword.arg] = _literal(keyword.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
    return args


def _literal(node: ast.expr) -> Any:
    """A Python literal, also accepting JSON's true/false/null spelled as names."""
    if isinstance(node, ast.Name) and node.id in _JSON_WORDS:
        return _JSON_WORDS[node.id]
    return ast.literal_eval(node)
