"""The openai backend against a real local HTTP server that misbehaves on purpose."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import BaseModel

from tracehound.errors import LLMError
from tracehound.llm.openai_http import OpenAIBackend
from tracehound.llm.session import LLMSession
from tracehound.llm.types import Completion, Message, Request, ToolCall, ToolSpec, Usage


@dataclass
class Reply:
    """One scripted answer: status, body (dict → JSON, str → as is), headers, delay."""

    status: int = 200
    body: dict[str, Any] | str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def ok(content: str | None = "hi", **extra: Any) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    message.update(extra.pop("message", {}))
    body = {
        "id": "x",
        "model": "served-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    body.update(extra)
    return Reply(body=body)


class ScriptedServer:
    """A ThreadingHTTPServer on 127.0.0.1 that answers POSTs from a script.

    Replies are used in order; the last one repeats. Every request body is kept.
    """

    def __init__(self) -> None:
        self.script: list[Reply] = [ok()]
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.scripted = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/"

    def next_reply(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        with self._lock:
            self.paths.append(path)
            self.headers.append(headers)
            self.bodies.append(body)
            return self.script[min(len(self.bodies), len(self.script)) - 1]

    def complete_once(self, **options: Any) -> Completion:
        """One `ask()` through a fresh backend built with `options`, closed afterwards."""
        backend = self.backend(**options)
        try:
            return backend.complete(ask())
        finally:
            backend.close()

    def backend(self, **options: Any) -> OpenAIBackend:
        settings: dict[str, Any] = {
            "base_url": self.base_url,
            "model": "m",
            "timeout_s": 10.0,
            "max_retries": 2,
            "backoff_s": 0.01,
            "max_backoff_s": 0.05,
        }
        settings.update(options)
        return OpenAIBackend(**settings)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        scripted: ScriptedServer = self.server.scripted  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        reply = scripted.next_reply(self.path, dict(self.headers), json.loads(raw))
        if reply.delay_s and scripted.stop.wait(reply.delay_s):
            return
        body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        data = body.encode()
        try:
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    scripted.thread.start()
    try:
        yield scripted
    finally:
        scripted.stop.set()
        scripted.httpd.shutdown()
        scripted.httpd.server_close()
        scripted.thread.join(timeout=5)


def ask(text: str = "hello", **options: Any) -> Request:
    return Request(messages=(Message(role="user", content=text),), max_tokens=64, **options)


TOOLS = (
    ToolSpec(
        name="span_timing",
        description="latency of a span",
        parameters={"type": "object", "properties": {"span_id": {"type": "string"}}},
    ),
    ToolSpec(name="instance_logs", description="logs of an instance"),
)


def test_plain_call_sends_model_max_tokens_and_temperature(server: ScriptedServer) -> None:
    completion = server.complete_once(api_key="sk-test")
    assert completion.content == "hi"
    assert completion.usage == Usage(7, 3)
    assert completion.model == "served-model"
    assert completion.finish_reason == "stop"
    assert server.paths == ["/v1/chat/completions"]
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert server.bodies == [
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 64,
            "temperature": 0.0,
        }
    ]


def test_429_with_retry_after_then_success(server: ScriptedServer) -> None:
    server.script = [Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}), ok()]
    completion = server.complete_once()
    assert completion.content == "hi"
    assert len(server.bodies) == 2


def test_retry_after_is_capped_by_max_backoff(server: ScriptedServer) -> None:
    server.script = [Reply(503, "busy", {"Retry-After": "120"}), ok()]
    backend = server.backend(max_backoff_s=0.05)
    start = time.monotonic()
    try:
        completion = backend.complete(ask())
    finally:
        backend.close()
    assert completion.content == "hi"
    assert len(server.bodies) == 2
    assert time.monotonic() - start < 10


def test_500_every_time_fails_after_max_retries_plus_one(server: ScriptedServer) -> None:
    server.script = [Reply(500, {"error": {"message": "model crashed"}})]
    backend = server.backend(max_retries=3)
    try:
        with pytest.raises(LLMError) as caught:
            backend.complete(ask())
    finally:
        backend.close()
    assert len(server.bodies) == 4
    message = str(caught.value)
    assert "failed after 4 attempts" in message
    assert f"{server.base_url}chat/completions" in message
    assert "HTTP 500: model crashed" in message


def test_timeout_then_success(server: ScriptedServer) -> None:
    server.script = [Reply(body=ok("late").body, delay_s=30.0), ok("on time")]
    completion = server.complete_once(timeout_s=0.3)
    assert completion.content == "on time"
    assert len(server.bodies) == 2


def test_invalid_json_body_is_retried_like_a_5xx(server: ScriptedServer) -> None:
    server.script = [Reply(200, "<html>proxy error</html>"), ok("fine")]
    completion = server.complete_once()
    assert completion.content == "fine"
    assert len(server.bodies) == 2


def test_invalid_json_every_time_names_the_problem(server: ScriptedServer) -> None:
    server.script = [Reply(200, "not json {")]
    backend = server.backend(max_retries=1)
    try:
        with pytest.raises(LLMError, match="failed after 2 attempts") as caught:
            backend.complete(ask())
    finally:
        backend.close()
    assert "body that is not JSON: not json {" in str(caught.value)
    assert len(server.bodies) == 2


def test_other_4xx_fails_at_once_with_the_server_message(server: ScriptedServer) -> None:
    server.script = [Reply(400, {"error": {"message": "unknown model 'm'"}}), ok()]
    backend = server.backend()
    try:
        with pytest.raises(LLMError) as caught:
            backend.complete(ask())
    finally:
        backend.close()
    assert len(server.bodies) == 1
    assert str(caught.value) == (
        f"LLM server at {server.base_url}chat/completions rejected the request (HTTP 400): "
        "unknown model 'm'"
    )


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAIBackend(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0.01
    )
    try:
        with pytest.raises(LLMError) as caught:
            backend.complete(ask())
    finally:
        backend.close()
    message = str(caught.value)
    assert message.startswith(
        f"LLM call to http://127.0.0.1:{port}/v1/chat/completions failed after 2 attempts"
    )
    assert "connection error" in message


def test_tool_call_written_as_text_is_parsed(server: ScriptedServer) -> None:
    text = (
        'Checking.\n<tool_call>{"name": "span_timing", "arguments": {"span_id": "s1"}}</tool_call>'
    )
    server.script = [ok(text)]
    backend = server.backend()
    try:
        completion = backend.complete(ask(tools=TOOLS))
    finally:
        backend.close()
    assert completion.tool_calls == (ToolCall("text-0", "span_timing", {"span_id": "s1"}),)
    assert completion.tool_calls_from_text is True
    assert completion.finish_reason == "tool_calls"
    assert completion.content == text


def test_text_is_not_parsed_when_tool_choice_is_none(server: ScriptedServer) -> None:
    server.script = [ok('span_timing(span_id="s1")')]
    backend = server.backend()
    try:
        completion = backend.complete(ask(tools=TOOLS, tool_choice="none"))
    finally:
        backend.close()
    assert completion.tool_calls == ()
    assert completion.tool_calls_from_text is False


def test_native_tool_calls_and_missing_usage(server: ScriptedServer) -> None:
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "span_timing", "arguments": '{"span_id": "a"}'},
        },
        {
            "id": "c2",
            "type": "function",
            "function": {"name": "instance_logs", "arguments": "{oops"},
        },
    ]
    reply = ok(None, message={"tool_calls": calls})
    assert isinstance(reply.body, dict)
    del reply.body["usage"]
    reply.body["choices"][0]["finish_reason"] = "tool_calls"
    server.script = [reply]
    backend = server.backend()
    try:
        completion = backend.complete(ask(tools=TOOLS))
    finally:
        backend.close()
    assert completion.content == ""
    assert completion.tool_calls == (
        ToolCall("c1", "span_timing", {"span_id": "a"}),
        ToolCall("c2", "instance_logs", {"_raw": "{oops"}),
    )
    assert completion.tool_calls_from_text is False
    assert completion.finish_reason == "tool_calls"
    assert completion.usage == Usage(0, 0)


def test_messages_tools_and_tool_choice_translation(server: ScriptedServer) -> None:
    messages = (
        Message(role="system", content="be brief"),
        Message(role="user", content="why slow?"),
        Message(role="assistant", tool_calls=(ToolCall("c1", "span_timing", {"span_id": "a"}),)),
        Message(role="tool", content="p99 900 ms", tool_call_id="c1", name="span_timing"),
    )
    backend = server.backend()
    try:
        backend.complete(Request(messages=messages, max_tokens=32, tools=TOOLS))
        backend.complete(
            Request(messages=messages, max_tokens=32, tools=TOOLS, tool_choice="instance_logs")
        )
        backend.complete(Request(messages=messages, max_tokens=32, tools=TOOLS, tool_choice="none"))
        with pytest.raises(LLMError, match="tool_choice 'nope' is not one of the offered tools"):
            backend.complete(
                Request(messages=messages, max_tokens=32, tools=TOOLS, tool_choice="nope")
            )
    finally:
        backend.close()
    assert len(server.bodies) == 3
    first = server.bodies[0]
    assert first["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "why slow?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "span_timing", "arguments": '{"span_id": "a"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "p99 900 ms"},
    ]
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "span_timing",
                "description": "latency of a span",
                "parameters": {"type": "object", "properties": {"span_id": {"type": "string"}}},
            },
        },
        {
            "type": "function",
            "function": {
                "name": "instance_logs",
                "description": "logs of an instance",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]
    assert first["tool_choice"] == "auto"
    assert server.bodies[1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "instance_logs"},
    }
    assert server.bodies[2]["tool_choice"] == "none"
    assert all(body["max_tokens"] == 32 for body in server.bodies)


SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@pytest.mark.parametrize(
    ("json_mode", "expected"),
    [
        (
            "json_schema",
            {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": SCHEMA, "strict": False},
            },
        ),
        ("json_object", {"type": "json_object", "schema": SCHEMA}),
        ("none", None),
    ],
)
def test_response_format_per_json_mode(
    server: ScriptedServer, json_mode: str, expected: dict[str, Any] | None
) -> None:
    backend = server.backend(json_mode=json_mode)
    try:
        backend.complete(ask(json_schema=SCHEMA))
        backend.complete(ask())
    finally:
        backend.close()
    assert server.bodies[0].get("response_format") == expected
    assert "response_format" not in server.bodies[1]
    assert [b["max_tokens"] for b in server.bodies] == [64, 64]
    assert "tools" not in server.bodies[0] and "tool_choice" not in server.bodies[0]


class Finding(BaseModel):
    abnormal: bool
    hypothesis: str


def test_truncated_answer_is_returned_and_repaired_once(server: ScriptedServer) -> None:
    cut = Reply(
        body={
            "model": "served-model",
            "choices": [
                {
                    "message": {"role": "assistant", "content": '{"abnormal": true, "hypo'},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 64},
        }
    )
    fixed = ok('```json\n{"abnormal": true, "hypothesis": "cpu"}\n```')
    server.script = [cut]
    backend = server.backend()
    completion = backend.complete(ask())
    assert completion.content == '{"abnormal": true, "hypo'
    assert completion.finish_reason == "length"
    assert completion.usage == Usage(50, 64)

    server.script = [cut, cut, fixed]
    session = LLMSession(backend, max_tokens=64)
    try:
        finding = session.complete_json(ask("verify"), Finding, agent="span-a")
    finally:
        session.close()
    assert finding == Finding(abnormal=True, hypothesis="cpu")
    assert len(server.bodies) == 3
    first, repair = server.bodies[1], server.bodies[2]
    assert first["response_format"]["json_schema"]["schema"] == Finding.model_json_schema()
    assert repair["messages"][:2] == [
        {"role": "user", "content": "verify"},
        {"role": "assistant", "content": '{"abnormal": true, "hypo'},
    ]
    assert repair["messages"][2]["role"] == "user"
    assert "cut off at the max_tokens limit" in repair["messages"][2]["content"]
    assert repair["messages"][2]["content"].endswith("Answer again with only the JSON object.")
    stats = session.stats()
    assert (stats["calls"], stats["repairs"], stats["failures"]) == (2, 1, 0)
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (57, 67)
