"""The `openai` backend: any OpenAI-compatible chat-completions server over HTTP (httpx).

One protocol covers OpenAI itself, vLLM, Ollama, llama.cpp's server and
llama-cpp-python's server, so tracehound needs no vendor SDK. This module owns the
wire format and the network: it translates tracehound's types to the
`/chat/completions` request and back, and retries what is worth retrying.

Retries: 429, 5xx, connection errors, timeouts, and a 200 whose body is not the JSON
completion the protocol promises (a proxy's error page, a server that crashed while
writing) are transient, so they are retried with exponential backoff —
`backoff_s * 2**attempt`, capped at `max_backoff_s`, or the server's `Retry-After`
(seconds, same cap) when it sends one. No jitter: calls are already spread by the
session's global concurrency limit, and a fixed schedule keeps runs reproducible. Any
other 4xx means the request itself is wrong (bad model name, bad key, schema the server
rejects) and fails at once with the server's message, since repeating it cannot help.

Models that write tool calls as text instead of returning them are parsed back with
`textcalls.parse_tool_calls` (the completion is then marked `tool_calls_from_text`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tracehound.errors import LLMError
from tracehound.llm.backend import Backend
from tracehound.llm.textcalls import parse_tool_calls
from tracehound.llm.types import (
    Completion,
    FinishReason,
    Message,
    Request,
    ToolCall,
    ToolSpec,
    Usage,
)

#: how `Request.json_schema` is sent: OpenAI's `json_schema` response format,
#: llama-cpp-python's `json_object` + `schema` (it compiles a grammar from it), or
#: nothing (the prompt and the session's repair round must do the work)
JSON_MODES = ("json_schema", "json_object", "none")

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "error",
    "error": "error",
}


class _Transient(Exception):
    """A failed attempt worth repeating; `wait_s` is the server's Retry-After, if any."""

    def __init__(self, what: str, wait_s: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.wait_s = wait_s


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible server at `base_url` (e.g.
    `http://127.0.0.1:8765/v1`); see the module docstring for retries.

    `timeout_s` bounds each phase of one attempt (connect, write, each read), not the
    sum of attempts. `transport` lets tests and embedders swap httpx's transport.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        json_mode: str = "json_schema",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise LLMError("the openai backend needs base_url, e.g. http://127.0.0.1:8765/v1")
        if json_mode not in JSON_MODES:
            raise LLMError(f"json_mode must be one of {', '.join(JSON_MODES)}, not {json_mode!r}")
        if max_retries < 0:
            raise LLMError(f"max_retries must be 0 or more, not {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.json_mode = json_mode
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, transport=transport)

    def complete(self, request: Request) -> Completion:
        """POST the request, retrying transient failures; raise `LLMError` for good ones."""
        body = request_body(request, model=self.model, json_mode=self.json_mode)
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                return self._parse(self._post(body), request)
            except _Transient as failure:
                if attempt + 1 == attempts:
                    raise LLMError(
                        f"LLM call to {self.url} failed after {attempts} attempt"
                        f"{'s' if attempts != 1 else ''}; last error: {failure.what}"
                    ) from None
                time.sleep(self._delay(attempt, failure.wait_s))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._client.close()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        return float(min(self.backoff_s * 2**attempt, self.max_backoff_s))

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """One attempt: the decoded JSON body of a 200, or `_Transient`, or `LLMError`."""
        try:
            response = self._client.post(self.url, json=body, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise _Transient(f"no answer within {self.timeout_s:g} s (timeout)") from None
        except httpx.TransportError as exc:
            raise _Transient(f"connection error: {exc or type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}: {_server_message(response)}", _retry_after(response))
        if status != 200:
            raise LLMError(
                f"LLM server at {self.url} rejected the request (HTTP {status}): "
                f"{_server_message(response)}{_hint(status)}"
            )
        try:
            data = response.json()
        except ValueError:
            raise _Transient(
                f"HTTP 200 with a body that is not JSON: {_snippet(response.text)}"
            ) from None
        if not isinstance(data, dict):
            raise _Transient(f"HTTP 200 with a JSON body that is not an object: {_snippet(data)}")
        return data

    def _parse(self, data: dict[str, Any], request: Request) -> Completion:
        """The completion in a decoded response; a malformed one is transient, like bad JSON."""
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content") or ""
            raw_calls = message.get("tool_calls") or []
            if not isinstance(content, str) or not isinstance(raw_calls, list):
                raise TypeError("content or tool_calls of the wrong type")
            calls = tuple(_tool_call(raw, i) for i, raw in enumerate(raw_calls))
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _Transient(
                f"HTTP 200 without a usable choices[0].message ({exc}): {_snippet(data)}"
            ) from None
        reason = _FINISH_REASONS.get(str(choice.get("finish_reason")), "stop")
        if calls and reason == "stop":
            reason = "tool_calls"
        from_text = False
        if not calls and request.tools and request.tool_choice != "none":
            calls = parse_tool_calls(content, [t.name for t in request.tools])
            if calls:
                reason, from_text = "tool_calls", True
        return Completion(
            content=content,
            tool_calls=calls,
            finish_reason=reason,
            usage=_usage(data.get("usage")),
            model=str(data.get("model") or self.model),
            tool_calls_from_text=from_text,
        )


def request_body(request: Request, *, model: str, json_mode: str) -> dict[str, Any]:
    """The `/chat/completions` JSON body for `request` (see `OpenAIBackend`)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_wire_message(m) for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if request.tools:
        body["tools"] = [_wire_tool(t) for t in request.tools]
        body["tool_choice"] = _wire_tool_choice(request)
    if request.json_schema is not None and json_mode == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": request.json_schema, "strict": False},
        }
    elif request.json_schema is not None and json_mode == "json_object":
        body["response_format"] = {"type": "json_object", "schema": request.json_schema}
    return body


def _wire_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        # "" rather than OpenAI's null for a calls-only turn: llama.cpp's server answers
        # null content with HTTP 500, and OpenAI accepts ""
        out["content"] = message.content
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    return out


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _wire_tool_choice(request: Request) -> str | dict[str, Any]:
    choice = request.tool_choice
    if choice in ("auto", "none"):
        return choice
    if choice not in {t.name for t in request.tools}:
        offered = ", ".join(t.name for t in request.tools)
        raise LLMError(f"tool_choice {choice!r} is not one of the offered tools ({offered})")
    return {"type": "function", "function": {"name": choice}}


def _tool_call(raw: dict[str, Any], index: int) -> ToolCall:
    function = raw["function"]
    arguments = function.get("arguments")
    if isinstance(arguments, dict):  # some servers send an object, not a string
        parsed: dict[str, Any] = arguments
    else:
        text = arguments if isinstance(arguments, str) else ""
        try:
            value = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            value = None
        parsed = value if isinstance(value, dict) else {"_raw": text}
    return ToolCall(
        id=str(raw.get("id") or f"call-{index}"), name=str(function["name"]), arguments=parsed
    )


def _usage(raw: Any) -> Usage:
    """Token counts as reported; missing counts are 0 (nothing is estimated)."""
    if not isinstance(raw, dict):
        return Usage()
    return Usage(_count(raw.get("prompt_tokens")), _count(raw.get("completion_tokens")))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds, when the server sent one as a number."""
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _server_message(response: httpx.Response) -> str:
    """The error text a server put in its body (OpenAI, vLLM, Ollama and FastAPI forms)."""
    try:
        data = response.json()
    except ValueError:
        return _snippet(response.text) or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if error is not None:
            return _snippet(error)
    return _snippet(data)


def _hint(status: int) -> str:
    if status in (401, 403):
        return " (check the API key: TRACEHOUND_LLM_API_KEY or OPENAI_API_KEY)"
    if status == 404:
        return " (check base_url, which usually ends in /v1, and the model name)"
    return ""


def _snippet(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
