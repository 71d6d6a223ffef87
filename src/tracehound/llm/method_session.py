"""An LLM session from a method's LLM parameters (`llm`, `llm_model`, `llm_config`,
`llm_record`, `llm_replay`, `llm_max_calls`), the environment and the config file.

Every method that asks a model (rclagent's LLM reasoners, the Who&When protocols) takes
these parameters and opens its session here (`session_for`): the parameters act as flags
(highest precedence, `llm.config`), and ``llm="local"`` runs the packaged local model
(`llm.local`) for the session unless one already answers on its port.

`backend_override` is the seam for tests and the conformance suite: inside it, every
session opened in the same thread (or task) talks to the given backend instead of the
configured one, so a method can be exercised against a scripted model with no server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Protocol

from tracehound.llm import session as llm_session
from tracehound.llm.backend import Backend
from tracehound.llm.config import LLMConfig, resolve_config
from tracehound.llm.replay import RecordingBackend
from tracehound.llm.session import Budget, LLMSession

_OVERRIDE: ContextVar[Backend | None] = ContextVar("tracehound_llm_backend", default=None)


@contextmanager
def backend_override(backend: Backend) -> Iterator[Backend]:
    """Within the block, `method_session` answers from `backend` (module docstring)."""
    token = _OVERRIDE.set(backend)
    try:
        yield backend
    finally:
        _OVERRIDE.reset(token)


class LLMParameters(Protocol):
    """A method's LLM parameters, as `__init__` stored them (module docstring)."""

    llm: str | None
    llm_model: str | None
    llm_config: str | None
    llm_record: str | None
    llm_replay: str | None
    llm_max_calls: int | None


def session_for(
    method: LLMParameters, *, local_max_tokens: int | None = None
) -> AbstractContextManager[LLMSession]:
    """`method_session` for the LLM parameters `method` holds."""
    return method_session(
        llm=method.llm,
        llm_model=method.llm_model,
        llm_config=method.llm_config,
        llm_record=method.llm_record,
        llm_replay=method.llm_replay,
        llm_max_calls=method.llm_max_calls,
        local_max_tokens=local_max_tokens,
    )


@contextmanager
def method_session(
    *,
    llm: str | None = None,
    llm_model: str | None = None,
    llm_config: str | None = None,
    llm_record: str | None = None,
    llm_replay: str | None = None,
    llm_max_calls: int | None = None,
    local_max_tokens: int | None = None,
) -> Iterator[LLMSession]:
    """A session for the method parameters of the same names (module docstring).

    `llm` is ``"local"``, a base URL of an OpenAI-compatible server, or None (the
    environment and config file decide). With ``"local"``, `local_max_tokens` replaces
    `max_tokens` when the configuration left it at its default.
    """
    flags: dict[str, Any] = {
        "model": llm_model,
        "record": llm_record,
        "replay": llm_replay,
        "max_calls": llm_max_calls,
    }
    local = llm == "local"
    if llm is not None and not local:
        flags["base_url"] = llm
    override = _OVERRIDE.get()
    with ExitStack() as stack:
        if local:
            flags.update(_local_flags(llm_model))
            if not llm_replay and override is None:
                from tracehound.llm.local import local_server

                flags["base_url"] = stack.enter_context(local_server())
        config = resolve_config(flags, config_path=llm_config)
        if local and local_max_tokens is not None and config.max_tokens == LLMConfig().max_tokens:
            config = replace(config, max_tokens=local_max_tokens)
        session = _open(config, override)
        stack.callback(session.close)
        yield session


def _open(config: LLMConfig, override: Backend | None) -> LLMSession:
    if override is None:
        # looked up at call time, so that tests can script `open_session`
        return llm_session.open_session(config)
    backend: Backend = override
    if config.record:
        backend = RecordingBackend(backend, path=config.record)
    return LLMSession(
        backend,
        budget=Budget(max_calls=config.max_calls, max_total_tokens=config.max_total_tokens),
        max_tokens=config.max_tokens,
        model=config.model or "",
    )


def _local_flags(model: str | None) -> dict[str, Any]:
    """Flags for the packaged local model: the OpenAI-compatible backend, the model alias,
    and the JSON mode llama.cpp's server accepts (`llm.local`)."""
    from tracehound.llm.local import JSON_MODE, MODEL_ALIAS

    return {"backend": "openai", "model": model or MODEL_ALIAS, "json_mode": JSON_MODE}
