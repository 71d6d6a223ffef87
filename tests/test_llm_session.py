"""LLMSession: budget, accounting, tool-output caps, concurrency, JSON answers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from tracehound.errors import LLMError
from tracehound.llm.backend import Backend
from tracehound.llm.config import LLMConfig
from tracehound.llm.openai_http import OpenAIBackend
from tracehound.llm.replay import RecordingBackend, ReplayBackend
from tracehound.llm.session import (
    Budget,
    BudgetExceeded,
    LLMSession,
    global_limiter,
    open_session,
)
from tracehound.llm.types import Completion, Message, Request, Usage


class Fake(Backend):
    """Answers from a list (the last repeats) and keeps the requests it saw."""

    name = "fake"

    def __init__(self, *answers: str, usage: Usage = Usage(10, 5)) -> None:
        self.answers = answers or ("ok",)
        self.usage = usage
        self.requests: list[Request] = []
        self.closed = False
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Completion:
        with self._lock:
            self.requests.append(request)
            answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if answer == "!fail":
            raise LLMError("server down")
        return Completion(content=answer, usage=self.usage, model="fake-1")

    def close(self) -> None:
        self.closed = True


def ask(text: str = "q", max_tokens: int = 100) -> Request:
    return Request(messages=(Message(role="user", content=text),), max_tokens=max_tokens)


def test_call_budget_stops_after_exactly_n_calls() -> None:
    fake = Fake()
    session = LLMSession(fake, budget=Budget(max_calls=3))
    for _ in range(3):
        session.complete(ask(), agent="a")
    with pytest.raises(BudgetExceeded, match="all 3 calls of this investigation are used"):
        session.complete(ask(), agent="a")
    with pytest.raises(LLMError):  # BudgetExceeded is an LLMError
        session.complete(ask(), agent="b")
    assert len(fake.requests) == 3
    stats = session.stats()
    assert (stats["calls"], stats["failures"], stats["budget_exhausted"]) == (3, 0, True)
    assert stats["budget"] == {"max_calls": 3, "max_total_tokens": None}


def test_token_budget_is_checked_before_each_call() -> None:
    fake = Fake(usage=Usage(60, 40))
    session = LLMSession(fake, budget=Budget(max_total_tokens=250))
    for _ in range(3):
        session.complete(ask(), agent="a")
    with pytest.raises(BudgetExceeded, match="300 of 250 tokens used"):
        session.complete(ask(), agent="a")
    assert len(fake.requests) == 3


def test_accounting_per_agent_and_cost() -> None:
    fake = Fake("ok", "!fail", "ok", usage=Usage(1000, 500))
    session = LLMSession(fake, price_prompt_per_1k=1.0, price_completion_per_1k=2.0, max_tokens=50)
    session.complete(ask(max_tokens=4096), agent="span-a")
    with pytest.raises(LLMError, match="server down"):
        session.complete(ask(), agent="span-b")
    session.complete(ask(max_tokens=20), agent="span-b")
    assert [r.max_tokens for r in fake.requests] == [50, 50, 20]
    stats = session.stats()
    wall = stats.pop("wall_time_s")
    per_agent = stats.pop("per_agent")
    assert wall >= 0
    assert stats == {
        "calls": 3,
        "prompt_tokens": 2000,
        "completion_tokens": 1000,
        "total_tokens": 3000,
        "cost_usd": 4.0,
        "failures": 1,
        "repairs": 0,
        "text_tool_calls": 0,
        "budget_exhausted": False,
        "budget": {"max_calls": None, "max_total_tokens": None},
        "model": "fake-1",
    }
    for agent in per_agent.values():
        agent.pop("wall_time_s")
    assert per_agent == {
        "span-a": {
            "calls": 1,
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "failures": 0,
            "repairs": 0,
        },
        "span-b": {
            "calls": 2,
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "failures": 1,
            "repairs": 0,
        },
    }
    assert LLMSession(fake, model="configured").stats()["model"] == "configured"


def test_text_tool_calls_are_counted() -> None:
    class Texty(Fake):
        def complete(self, request: Request) -> Completion:
            return Completion(content="x", tool_calls_from_text=True)

    session = LLMSession(Texty())
    session.complete(ask(), agent="a")
    session.complete(ask(), agent="a")
    assert session.stats()["text_tool_calls"] == 2


def test_cap_tool_output() -> None:
    session = LLMSession(Fake(), max_tool_output_chars=10)
    assert session.cap_tool_output("short") == "short"
    assert session.cap_tool_output("0123456789") == "0123456789"
    assert session.cap_tool_output("0123456789abc") == "0123456789\n…[truncated 3 characters]"


class Tracking(Backend):
    """Counts concurrent calls. Each call waits until a partner is inside (or all have
    started), so a limit of 2 is always reached, then lingers so a leak would show."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = 0
        self.current = 0
        self.max_current = 0
        self.cond = threading.Condition()

    def complete(self, request: Request) -> Completion:
        with self.cond:
            self.started += 1
            self.current += 1
            self.max_current = max(self.max_current, self.current)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.current >= 2 or self.started >= self.total, 10)
        time.sleep(0.05)  # room for a third caller to get in, if the limit leaked
        with self.cond:
            self.current -= 1
        return Completion(content="ok")


def test_concurrency_limit_is_respected() -> None:
    backend = Tracking(total=8)
    session = LLMSession(backend, limiter=threading.Semaphore(2))
    threads = [
        threading.Thread(target=session.complete, args=(ask(),), kwargs={"agent": f"a{i}"})
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert backend.started == 8
    assert backend.max_current == 2
    assert session.stats()["calls"] == 8


def test_global_limiter_is_shared_per_value() -> None:
    assert global_limiter(3) is global_limiter(3)
    assert global_limiter(3) is not global_limiter(4)
    with pytest.raises(LLMError, match="at least 1"):
        global_limiter(0)


class Finding(BaseModel):
    abnormal: bool
    hypothesis: str


def test_complete_json_tolerates_fences_and_prose() -> None:
    fake = Fake('Sure! {} Here it is:\n```json\n{"abnormal": false, "hypothesis": "none"}\n```')
    session = LLMSession(fake)
    assert session.complete_json(ask(), Finding, agent="a") == Finding(
        abnormal=False, hypothesis="none"
    )
    assert fake.requests[0].json_schema == Finding.model_json_schema()
    assert session.stats()["repairs"] == 0


def test_complete_json_keeps_a_given_schema_and_repairs_once() -> None:
    fake = Fake('{"abnormal": "maybe"}', 'Fixed: {"abnormal": true, "hypothesis": "disk"}')
    session = LLMSession(fake)
    request = Request(messages=ask().messages, max_tokens=100, json_schema={"type": "object"})
    assert session.complete_json(request, Finding, agent="a") == Finding(
        abnormal=True, hypothesis="disk"
    )
    assert [r.json_schema for r in fake.requests] == [{"type": "object"}] * 2
    repair = fake.requests[1].messages
    assert repair[1] == Message(role="assistant", content='{"abnormal": "maybe"}')
    assert repair[2].role == "user"
    assert repair[2].content.startswith("That answer is not valid: abnormal: ")
    assert "hypothesis: Field required" in repair[2].content
    assert repair[2].content.endswith("Answer again with only the JSON object.")
    assert session.stats()["per_agent"]["a"]["repairs"] == 1


def test_complete_json_fails_after_one_repair() -> None:
    fake = Fake("I think the database is slow.")
    session = LLMSession(fake)
    with pytest.raises(LLMError) as caught:
        session.complete_json(ask(), Finding, agent="span-x")
    assert str(caught.value) == (
        "the LLM's answer for agent 'span-x' is not a valid Finding even after a repair "
        "round: no JSON object found in the answer"
    )
    assert len(fake.requests) == 2
    stats = session.stats()
    assert (stats["calls"], stats["repairs"], stats["failures"]) == (2, 1, 1)


def test_open_session_builds_backends(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="No LLM endpoint"):
        open_session(LLMConfig(model="m"))
    with pytest.raises(LLMError, match="replay backend needs a transcript"):
        open_session(LLMConfig(backend="replay"))

    session = open_session(
        LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", max_calls=7, concurrency=3)
    )
    assert isinstance(session.backend, OpenAIBackend)
    assert session.backend.url == "http://127.0.0.1:9/v1/chat/completions"
    assert session.limiter is global_limiter(3)
    assert session.budget == Budget(max_calls=7, max_total_tokens=400_000)
    assert (session.max_tokens, session.model) == (512, "m")
    session.close()

    transcript = tmp_path / "t.jsonl"
    transcript.write_text("", encoding="utf-8")
    record = tmp_path / "out" / "r.jsonl"
    session = open_session(LLMConfig(replay=str(transcript), record=str(record)))
    assert isinstance(session.backend, RecordingBackend)
    assert isinstance(session.backend.inner, ReplayBackend)
    assert record.parent.is_dir()
    session.close()
