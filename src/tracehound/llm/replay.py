"""Recording and replaying LLM transcripts, so an LLM investigation can be rerun offline.

A transcript is a JSONL file, one line per call:
`{"request": Request.to_dict(), "completion": Completion.to_dict()}`. `RecordingBackend`
wraps any backend and appends each successful call; `ReplayBackend` (registry name
`replay`) answers from such a file without a model, for tests, demos and bug reports.

Span agents run concurrently, so the order in which calls reach the backend varies from
run to run. A strict replay therefore matches each request by content — a canonical
JSON of the whole request (messages, tools, tool choice, schema, max_tokens,
temperature) keys a queue of recorded completions, consumed in recorded order when the
same request was made more than once — so any interleaving of the same calls replays
exactly, and a request that was never recorded fails loudly, naming the recorded call
it is closest to and the first field that differs. A non-strict replay ignores the
requests and answers in file order, which suits sequential runs and hand-written
transcripts.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from pathlib import Path
from typing import Any

from tracehound.errors import LLMError
from tracehound.llm.backend import Backend
from tracehound.llm.types import Completion, Request


def request_key(request: dict[str, Any]) -> str:
    """Canonical JSON of a request dict: equal requests give equal keys."""
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ReplayBackend(Backend):
    """Answers from a recorded transcript (see the module docstring for matching)."""

    name = "replay"

    def __init__(self, *, path: str | Path, strict: bool = True) -> None:
        self.path = Path(path)
        self.strict = strict
        self._entries = load_transcript(self.path)
        self._queues: dict[str, deque[int]] = {}
        for index, (request, _) in enumerate(self._entries):
            self._queues.setdefault(request_key(request), deque()).append(index)
        self._used = [False] * len(self._entries)
        self._calls = 0
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Completion:
        with self._lock:
            self._calls += 1
            call = self._calls
            if all(self._used):
                raise LLMError(
                    f"replay {self.path}: call {call} asks for more than the "
                    f"{len(self._entries)} recorded call(s); record the transcript again "
                    "with the current settings"
                )
            index = self._match(request, call) if self.strict else self._used.index(False)
            self._used[index] = True
            return self._entries[index][1]

    def _match(self, request: Request, call: int) -> int:
        wanted = request.to_dict()
        queue = self._queues.get(request_key(wanted))
        if queue:
            return queue.popleft()
        index = self._closest(wanted)
        field, recorded, got = _first_difference(self._entries[index][0], wanted)
        raise LLMError(
            f"replay {self.path}: call {call} matches no recorded request (strict replay "
            f"matches by content); the closest is recorded call {index + 1} (line "
            f"{index + 1}), which differs at {field}: recorded {_show(recorded)}, "
            f"got {_show(got)}"
        )

    def _closest(self, wanted: dict[str, Any]) -> int:
        """The unused recorded call sharing the most leading messages (earliest on ties)."""
        messages = wanted.get("messages", [])

        def shared(index: int) -> int:
            recorded = self._entries[index][0].get("messages", [])
            count = 0
            for a, b in zip(recorded, messages, strict=False):
                if a != b:
                    break
                count += 1
            return count

        unused = [i for i, used in enumerate(self._used) if not used]
        return max(unused, key=lambda i: (shared(i), -i))


class RecordingBackend(Backend):
    """Wraps `inner` and appends every successful call to the JSONL file at `path`.

    Appends rather than truncates, so several sessions of one run can share a file;
    a lock keeps lines whole when agents call concurrently.
    """

    name = "record"

    def __init__(self, inner: Backend, *, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Completion:
        completion = self.inner.complete(request)
        line = json.dumps(
            {"request": request.to_dict(), "completion": completion.to_dict()},
            ensure_ascii=False,
        )
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
        return completion

    def close(self) -> None:
        self.inner.close()


def load_transcript(path: Path) -> list[tuple[dict[str, Any], Completion]]:
    """(request dict, completion) per line of a transcript; `LLMError` names a bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LLMError(f"replay transcript {path} does not exist") from None
    except OSError as exc:
        raise LLMError(f"cannot read replay transcript {path}: {exc.strerror}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            request, completion = data["request"], Completion.from_dict(data["completion"])
            if not isinstance(request, dict):
                raise TypeError("request is not an object")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LLMError(
                f"replay transcript {path}, line {number}: not a recorded call ({exc}); "
                'expected {"request": {...}, "completion": {...}}'
            ) from None
        entries.append((request, completion))
    return entries


def _first_difference(recorded: Any, got: Any, where: str = "") -> tuple[str, Any, Any]:
    """(path, recorded value, new value) of the first place two JSON values differ."""
    if isinstance(recorded, dict) and isinstance(got, dict):
        for key in [*recorded, *(k for k in got if k not in recorded)]:
            if recorded.get(key) != got.get(key):
                return _first_difference(
                    recorded.get(key), got.get(key), f"{where}.{key}" if where else key
                )
    elif isinstance(recorded, list) and isinstance(got, list):
        for i, (a, b) in enumerate(zip(recorded, got, strict=False)):
            if a != b:
                return _first_difference(a, b, f"{where}[{i}]")
        if len(recorded) != len(got):
            return f"{where} (length)", len(recorded), len(got)
    return where or "(request)", recorded, got


def _show(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"
