"""The backend interface and its entry-point registry (`tracehound.llm_backends`).

A backend turns one `Request` into one `Completion`. Retries, timeouts and the
translation to a wire format are the backend's business; budgets, concurrency limits,
accounting, JSON validation and repair live above it (`llm.session`), so every backend
gets them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from typing import Any

from tracehound.errors import LLMError
from tracehound.llm.types import Completion, Request

GROUP = "tracehound.llm_backends"


class Backend(ABC):
    """Turns one request into one completion (see module docstring)."""

    #: registry name, e.g. "openai" or "replay"
    name: str = ""

    @abstractmethod
    def complete(self, request: Request) -> Completion:
        """Answer one request; raise `LLMError` when it failed for good."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has nothing to release."""


def backend_names() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def backend_class(name: str) -> type[Backend]:
    """The registered backend class called `name`."""
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise LLMError(f"entry point {name!r} in {GROUP} is not a Backend subclass")
            return cls
    known = ", ".join(backend_names()) or "none"
    raise LLMError(f"unknown LLM backend {name!r}; registered backends: {known}")


def create_backend(name: str, **options: Any) -> Backend:
    """An instance of the registered backend `name` built with `options`."""
    return backend_class(name)(**options)
