"""tracehound's own LLM types: messages, tool definitions, tool calls, completions, usage.

Backends translate these to and from their wire format; nothing else in tracehound sees
a vendor type. All are plain frozen dataclasses with `to_dict` / `from_dict` for
transcripts (JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asks for: an id, a tool name and its JSON arguments (a dict)."""

    id: str
    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ToolCall:
        return ToolCall(
            id=str(data["id"]), name=str(data["name"]), arguments=dict(data["arguments"])
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. `tool_calls` only on assistant messages, `tool_call_id` (the
    call answered) and `name` (the tool) only on tool messages."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Message:
        return Message(
            role=data["role"],
            content=str(data.get("content") or ""),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
        )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: name, description and a JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call (or a sum of calls) used."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


FinishReason = Literal["stop", "length", "tool_calls", "error"]


@dataclass(frozen=True, slots=True)
class Completion:
    """The model's answer to one request: text and/or tool calls, why it stopped, usage.

    `tool_calls_from_text` is true when the calls were parsed out of the text (a model
    that writes calls instead of returning them).
    """

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    tool_calls_from_text: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
            "model": self.model,
            "tool_calls_from_text": self.tool_calls_from_text,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Completion:
        usage = data.get("usage") or {}
        return Completion(
            content=str(data.get("content") or ""),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
            finish_reason=data.get("finish_reason", "stop"),
            usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
            model=str(data.get("model", "")),
            tool_calls_from_text=bool(data.get("tool_calls_from_text", False)),
        )


@dataclass(frozen=True, slots=True)
class Request:
    """One completion request, as the reasoner asks for it.

    `tool_choice`: "auto", "none", or the name of one tool the model must call.
    `json_schema`: when set, the answer must be a JSON object valid against it.
    `max_tokens` is always sent to the server.
    """

    messages: tuple[Message, ...]
    max_tokens: int
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    json_schema: dict[str, Any] | None = None
    temperature: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": [m.to_dict() for m in self.messages],
            "max_tokens": self.max_tokens,
            "tools": [t.to_dict() for t in self.tools],
            "tool_choice": self.tool_choice,
            "json_schema": self.json_schema,
            "temperature": self.temperature,
        }
