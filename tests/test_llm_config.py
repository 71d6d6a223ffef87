"""LLM configuration: precedence, environment fallbacks, file errors, endpoint messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracehound.errors import LLMError
from tracehound.llm.config import LLMConfig, require_endpoint, resolve_config


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write(
        tmp_path / "config.toml",
        '[llm]\nbase_url = "http://file/v1"\nmodel = "file-model"\napi_key = "file-key"\n'
        "max_calls = 10\ntimeout_s = 5\nprice_prompt_per_1k = 0.5\n",
    )


def test_defaults_without_any_source(tmp_path: Path) -> None:
    config = resolve_config({}, environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert config == LLMConfig()
    assert (config.max_tokens, config.concurrency, config.max_calls) == (512, 2, 200)
    assert (config.max_total_tokens, config.max_tool_output_chars) == (400_000, 2000)


def test_file_values(config_file: Path) -> None:
    config = resolve_config({}, environ={}, config_path=config_file)
    assert config.base_url == "http://file/v1"
    assert config.model == "file-model"
    assert config.api_key == "file-key"
    assert config.max_calls == 10
    assert config.timeout_s == 5.0 and isinstance(config.timeout_s, float)
    assert config.price_prompt_per_1k == 0.5


def test_flag_beats_env_beats_file(config_file: Path) -> None:
    environ = {
        "TRACEHOUND_LLM_BASE_URL": "http://env/v1",
        "TRACEHOUND_LLM_MODEL": "env-model",
        "TRACEHOUND_LLM_MAX_CALLS": "20",
    }
    flags = {"base_url": "http://flag/v1", "model": None, "max_calls": None, "max_tokens": 99}
    config = resolve_config(flags, environ=environ, config_path=config_file)
    assert config.base_url == "http://flag/v1"
    assert config.model == "env-model"
    assert config.max_calls == 20
    assert config.max_tokens == 99
    assert config.api_key == "file-key"


def test_openai_fallbacks_rank_below_tracehound_variables(config_file: Path) -> None:
    environ = {"OPENAI_BASE_URL": "http://openai-env/v1", "OPENAI_API_KEY": "sk-env"}
    config = resolve_config({}, environ=environ, config_path=config_file)
    assert (config.base_url, config.api_key) == ("http://openai-env/v1", "sk-env")
    environ |= {"TRACEHOUND_LLM_API_KEY": "th-key", "TRACEHOUND_LLM_BASE_URL": "http://th/v1"}
    config = resolve_config({}, environ=environ, config_path=config_file)
    assert (config.base_url, config.api_key) == ("http://th/v1", "th-key")


def test_default_file_under_xdg_config_home(tmp_path: Path) -> None:
    write(tmp_path / "tracehound" / "config.toml", '[llm]\nmodel = "xdg-model"\n')
    config = resolve_config({}, environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert config.model == "xdg-model"


def test_api_key_is_not_in_repr() -> None:
    assert "secret" not in repr(LLMConfig(api_key="secret"))


def test_missing_config_path_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(LLMError) as caught:
        resolve_config({}, environ={}, config_path=missing)
    assert str(caught.value) == f"config file {missing} does not exist (given with --config)"


def test_wrong_type_in_file_names_file_key_and_type(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[llm]\nmax_calls = "many"\n')
    with pytest.raises(LLMError) as caught:
        resolve_config({}, environ={}, config_path=path)
    assert str(caught.value) == (
        f"config file {path}, key 'max_calls' under [llm]: expected an integer, got str 'many'"
    )
    path = write(tmp_path / "d.toml", "[llm]\nmodel = 3\n")
    with pytest.raises(LLMError, match="key 'model' under \\[llm\\]: expected a string, got int 3"):
        resolve_config({}, environ={}, config_path=path)


def test_unknown_key_and_bad_toml_in_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[llm]\nbase-url = "http://x"\n')
    with pytest.raises(LLMError, match="unknown key 'base-url' under \\[llm\\]; known keys: "):
        resolve_config({}, environ={}, config_path=path)
    path = write(tmp_path / "e.toml", "[llm\n")
    with pytest.raises(LLMError, match="is not valid TOML"):
        resolve_config({}, environ={}, config_path=path)


def test_bad_env_and_flag_values(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "TRACEHOUND_LLM_MAX_CALLS": "lots"}
    with pytest.raises(LLMError) as caught:
        resolve_config({}, environ=environ)
    assert str(caught.value) == (
        "environment variable TRACEHOUND_LLM_MAX_CALLS: expected an integer, got 'lots'"
    )
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    with pytest.raises(LLMError, match="flag --llm-json-mode: expected one of json_schema"):
        resolve_config({"json_mode": "yaml"}, environ=environ)
    with pytest.raises(
        LLMError, match="flag --llm-concurrency: expected concurrency of at least 1"
    ):
        resolve_config({"concurrency": 0}, environ=environ)
    with pytest.raises(LLMError, match="unknown LLM setting 'temperature'"):
        resolve_config({"temperature": 0.3}, environ=environ)


def test_missing_endpoint_messages() -> None:
    with pytest.raises(LLMError) as caught:
        require_endpoint(LLMConfig(model="m"))
    assert str(caught.value) == (
        "No LLM endpoint: set --llm URL, TRACEHOUND_LLM_BASE_URL (or OPENAI_BASE_URL), "
        "or base_url under [llm] in ~/.config/tracehound/config.toml (or the file given with "
        "--config)."
    )
    with pytest.raises(LLMError) as caught:
        require_endpoint(LLMConfig(base_url="http://127.0.0.1:8765/v1"))
    assert str(caught.value) == (
        "No LLM model: set --llm-model, TRACEHOUND_LLM_MODEL, or model under [llm] in "
        "~/.config/tracehound/config.toml (or the file given with --config)."
    )
    with pytest.raises(LLMError) as caught:
        require_endpoint(LLMConfig(base_url="https://api.openai.com/v1", model="gpt-4o-mini"))
    assert str(caught.value) == (
        "No API key for api.openai.com: set TRACEHOUND_LLM_API_KEY (or OPENAI_API_KEY), or "
        "api_key under [llm] in ~/.config/tracehound/config.toml (or the file given with "
        "--config)."
    )


def test_endpoint_is_complete_or_not_needed() -> None:
    require_endpoint(LLMConfig(base_url="http://127.0.0.1:8765/v1", model="m"))
    require_endpoint(LLMConfig(base_url="https://api.openai.com/v1", model="m", api_key="k"))
    require_endpoint(LLMConfig(replay="transcript.jsonl"))
