"""LLM settings and where they come from: flags > environment > config file.

The same investigation runs on a laptop against a local llama.cpp server, in CI from a
recorded transcript, and in production against a hosted API; each place sets the
endpoint its own way. Precedence, highest first:

1. command-line flags (values that are not None);
2. environment: `TRACEHOUND_LLM_<FIELD>` for every field (`TRACEHOUND_LLM_BASE_URL`,
   `TRACEHOUND_LLM_MODEL`, `TRACEHOUND_LLM_API_KEY`, `TRACEHOUND_LLM_MAX_CALLS`, ...),
   then the de-facto standard `OPENAI_BASE_URL` and `OPENAI_API_KEY`;
3. the `[llm]` table of a TOML file: `--config FILE`, else
   `$XDG_CONFIG_HOME/tracehound/config.toml` (default `~/.config/tracehound/config.toml`)
   when it exists.

Every error names where the bad value came from and what was expected, because a
misspelt key silently ignored costs an afternoon.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tracehound.errors import LLMError

DEFAULT_CONFIG = "~/.config/tracehound/config.toml"
_ENV_FALLBACKS = {"base_url": "OPENAI_BASE_URL", "api_key": "OPENAI_API_KEY"}


@dataclass(frozen=True)
class LLMConfig:
    """Everything needed to open an LLM session (see `llm.session.open_session`).

    `max_tokens` caps each call; `concurrency` is process-wide; `max_calls` and
    `max_total_tokens` are the budget of one investigation. Prices are USD per 1,000
    tokens, for the cost figure in `stats.llm`. `record` writes a transcript,
    `replay` answers from one (no endpoint needed).
    """

    backend: str = "openai"
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 4
    max_tokens: int = 512
    concurrency: int = 2
    max_calls: int = 200
    max_total_tokens: int = 400_000
    max_tool_output_chars: int = 2000
    json_mode: str = "json_schema"
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0
    record: str | None = None
    replay: str | None = None


_FIELDS = {f.name: f for f in dataclasses.fields(LLMConfig)}
# expected Python type of each field's value (None is always allowed for str | None)
_KINDS: dict[str, type] = {
    name: (int if f.type == "int" else float if f.type == "float" else str)
    for name, f in _FIELDS.items()
}
_JSON_MODES = ("json_schema", "json_object", "none")
_MINIMUM: dict[str, float] = {
    "max_retries": 0,
    "max_tokens": 1,
    "concurrency": 1,
    "max_calls": 0,
    "max_total_tokens": 0,
    "max_tool_output_chars": 0,
    "price_prompt_per_1k": 0,
    "price_completion_per_1k": 0,
}


def resolve_config(
    flags: Mapping[str, object],
    *,
    environ: Mapping[str, str] | None = None,
    config_path: str | Path | None = None,
) -> LLMConfig:
    """The `LLMConfig` from flags, environment and config file (module docstring).

    `flags` maps field names to values; None means "flag not given". `environ`
    defaults to `os.environ`. A `config_path` that does not exist is an error; the
    default file is optional.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}  # checked per field, so LLMConfig gets the right types
    values.update(_from_file(env, config_path))
    values.update(_from_env(env))
    for name, value in flags.items():
        if name not in _FIELDS:
            raise LLMError(f"unknown LLM setting {name!r}; known settings: {', '.join(_FIELDS)}")
        if value is not None:
            values[name] = _coerce(name, value, f"flag --llm-{name.replace('_', '-')}")
    return LLMConfig(**values)


def require_endpoint(config: LLMConfig) -> None:
    """Raise `LLMError` saying exactly what to set when the config cannot reach a model.

    A replayed transcript needs no endpoint; backends other than `openai` check their
    own options.
    """
    if config.replay or config.backend != "openai":
        return
    where = f"under [llm] in {DEFAULT_CONFIG} (or the file given with --config)"
    problems = []
    if not config.base_url:
        problems.append(
            "No LLM endpoint: set --llm URL, TRACEHOUND_LLM_BASE_URL (or "
            f"OPENAI_BASE_URL), or base_url {where}."
        )
    if not config.model:
        problems.append(f"No LLM model: set --llm-model, TRACEHOUND_LLM_MODEL, or model {where}.")
    host = urlsplit(config.base_url or "").hostname or ""
    if not config.api_key and (host == "api.openai.com" or host.endswith(".openai.com")):
        problems.append(
            f"No API key for {host}: set TRACEHOUND_LLM_API_KEY (or OPENAI_API_KEY), or "
            f"api_key {where}."
        )
    if problems:
        raise LLMError(" ".join(problems))


def _from_env(env: Mapping[str, str]) -> dict[str, str | int | float]:
    values: dict[str, str | int | float] = {}
    for name in _FIELDS:
        for var in (f"TRACEHOUND_LLM_{name.upper()}", _ENV_FALLBACKS.get(name)):
            if var and env.get(var, "").strip():
                values[name] = _coerce(name, env[var].strip(), f"environment variable {var}")
                break
    return values


def _from_file(
    env: Mapping[str, str], config_path: str | Path | None
) -> dict[str, str | int | float]:
    if config_path is not None:
        path = Path(config_path).expanduser()
        if not path.is_file():
            raise LLMError(f"config file {path} does not exist (given with --config)")
    else:
        base = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
        path = Path(base) / "tracehound" / "config.toml"
        if not path.is_file():
            return {}
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise LLMError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise LLMError(f"cannot read config file {path}: {exc.strerror}") from None
    table = document.get("llm", {})
    if not isinstance(table, dict):
        raise LLMError(f"config file {path}: llm must be a table ([llm]), not a value")
    values: dict[str, str | int | float] = {}
    for key, value in table.items():
        if key not in _FIELDS:
            raise LLMError(
                f"config file {path}: unknown key {key!r} under [llm]; known keys: "
                f"{', '.join(_FIELDS)}"
            )
        values[key] = _check(key, value, f"config file {path}, key {key!r} under [llm]")
    return values


def _coerce(name: str, value: object, source: str) -> str | int | float:
    """`value` as the field's type; strings (env, flags) are parsed for numeric fields."""
    kind = _KINDS[name]
    if isinstance(value, str) and kind is not str:
        try:
            value = kind(value)
        except ValueError:
            raise LLMError(f"{source}: expected {_describe(kind)}, got {value!r}") from None
    return _check(name, value, source)


def _check(name: str, value: object, source: str) -> str | int | float:
    """`value` if it has the field's type and range, else `LLMError` naming `source`."""
    kind = _KINDS[name]
    wrong = LLMError(f"{source}: expected {_describe(kind)}, got {type(value).__name__} {value!r}")
    if kind is str:
        if not isinstance(value, str):
            raise wrong
        if name == "json_mode" and value not in _JSON_MODES:
            raise LLMError(f"{source}: expected one of {', '.join(_JSON_MODES)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong
    if kind is int and not isinstance(value, int):
        raise wrong
    number = float(value) if kind is float else value
    minimum = _MINIMUM.get(name)
    if minimum is not None and number < minimum:
        raise LLMError(f"{source}: expected {name} of at least {minimum:g}, got {value!r}")
    if name == "timeout_s" and number <= 0:
        raise LLMError(f"{source}: expected a timeout above 0 seconds, got {value!r}")
    return number


def _describe(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string"}[kind]
