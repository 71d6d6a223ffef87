"""Recording transcripts and replaying them, strictly by content or in order."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tracehound.errors import LLMError
from tracehound.llm.backend import Backend, create_backend
from tracehound.llm.replay import RecordingBackend, ReplayBackend
from tracehound.llm.types import Completion, Message, Request, ToolCall, ToolSpec, Usage


class Echo(Backend):
    """Answers each request with its last message, a tool call and usage by length."""

    def __init__(self) -> None:
        self.closed = False

    def complete(self, request: Request) -> Completion:
        text = request.messages[-1].content
        return Completion(
            content=f"echo {text}",
            tool_calls=(ToolCall("c1", "span_timing", {"span_id": text}),),
            finish_reason="tool_calls",
            usage=Usage(len(text), 2),
            model="echo-1",
        )

    def close(self) -> None:
        self.closed = True


def ask(text: str) -> Request:
    return Request(
        messages=(Message(role="system", content="sys"), Message(role="user", content=text)),
        max_tokens=64,
        tools=(ToolSpec(name="span_timing", description="d"),),
    )


def record(path: Path, texts: list[str]) -> list[Completion]:
    recorder = RecordingBackend(Echo(), path=path)
    completions = [recorder.complete(ask(t)) for t in texts]
    recorder.close()
    assert isinstance(recorder.inner, Echo) and recorder.inner.closed
    return completions


def test_record_then_replay_gives_identical_completions(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "t.jsonl"
    recorded = record(path, ["a", "bb", "a"])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert json.loads(lines[1]) == {
        "request": ask("bb").to_dict(),
        "completion": recorded[1].to_dict(),
    }
    replay = create_backend("replay", path=path)
    assert isinstance(replay, ReplayBackend)
    assert [replay.complete(ask(t)) for t in ["a", "bb", "a"]] == recorded


def test_strict_replay_matches_by_content_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    recorded = record(path, ["a", "b", "c"])
    replay = ReplayBackend(path=path)
    assert [replay.complete(ask(t)) for t in ["c", "a", "b"]] == [
        recorded[2],
        recorded[0],
        recorded[1],
    ]


def test_strict_mismatch_names_call_and_first_differing_field(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    record(path, ["a", "b"])
    replay = ReplayBackend(path=path)
    replay.complete(ask("a"))
    with pytest.raises(LLMError) as caught:
        replay.complete(ask("z"))
    assert str(caught.value) == (
        f"replay {path}: call 2 matches no recorded request (strict replay matches by "
        "content); the closest is recorded call 2 (line 2), which differs at "
        'messages[1].content: recorded "b", got "z"'
    )
    changed = Request(messages=ask("b").messages, max_tokens=32, tools=ask("b").tools)
    with pytest.raises(LLMError, match="differs at max_tokens: recorded 64, got 32"):
        replay.complete(changed)


def test_running_past_the_end(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    record(path, ["a"])
    replay = ReplayBackend(path=path)
    replay.complete(ask("a"))
    with pytest.raises(LLMError) as caught:
        replay.complete(ask("a"))
    assert str(caught.value) == (
        f"replay {path}: call 2 asks for more than the 1 recorded call(s); record the "
        "transcript again with the current settings"
    )


def test_non_strict_replay_answers_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    recorded = record(path, ["a", "b"])
    replay = ReplayBackend(path=path, strict=False)
    assert replay.complete(ask("anything")) == recorded[0]
    assert replay.complete(ask("else")) == recorded[1]
    with pytest.raises(LLMError, match="call 3 asks for more than the 2 recorded"):
        replay.complete(ask("a"))


def test_bad_transcripts(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="does not exist"):
        ReplayBackend(path=tmp_path / "missing.jsonl")
    path = tmp_path / "bad.jsonl"
    path.write_text('\n{"request": {}, "completion": {}}\n{"request": 1}\n', encoding="utf-8")
    with pytest.raises(LLMError, match=f"replay transcript {path}, line 3: not a recorded call"):
        ReplayBackend(path=path)


def test_concurrent_recording_keeps_every_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    recorder = RecordingBackend(Echo(), path=path)
    texts = [f"req-{i}" * 50 for i in range(16)]
    threads = [threading.Thread(target=recorder.complete, args=(ask(t),)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert sorted(
        json.loads(line)["request"]["messages"][1]["content"] for line in lines
    ) == sorted(texts)
    replay = ReplayBackend(path=path)
    for text in reversed(texts):
        assert replay.complete(ask(text)).content == f"echo {text}"
