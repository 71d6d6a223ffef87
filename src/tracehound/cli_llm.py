"""`tracehound llm ...`: the packaged local model (docs/local-llm.md)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from tracehound.errors import LLMError

llm_app = typer.Typer(
    help="Run the small local model behind an OpenAI-compatible server (needs the "
    "local-llm extra).",
    no_args_is_help=True,
)

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@llm_app.callback()
def _llm() -> None:
    """Run the small local model behind an OpenAI-compatible server."""


@llm_app.command("serve")
def serve(
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1 to listen on.")
    ] = 8765,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="CPU threads for the model. Default: half the cores (fastest when other "
            "work shares the machine; use all cores on an idle one).",
        ),
    ] = None,
    ctx: Annotated[
        int,
        typer.Option(
            "--ctx",
            min=512,
            max=8192,
            help="Context window in tokens, prompt and answer together (the model is "
            "trained on 8192).",
        ),
    ] = 4096,
) -> None:
    """Serve SmolLM2-135M (llama.cpp, OpenAI-compatible API) on 127.0.0.1 until Ctrl-C.

    Prints the base URL and the environment variables that point tracehound at it.
    SIGTERM or Ctrl-C stops the server.

    Example: tracehound llm serve --port 8765
    """
    from tracehound.llm.local import LocalServer, answering, client_env

    url = f"http://127.0.0.1:{port}/v1"
    if answering(url):
        raise LLMError(f"a server already answers at {url}; use it, or choose another --port")
    server = LocalServer()
    handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        stderr.print("Starting the local model server...")
        base_url = server.start(port=port, threads=threads, n_ctx=ctx)
        env = " ".join(f"{name}={value}" for name, value in client_env(base_url).items())
        stdout.print(f"Serving {base_url} (pid {server.pid}, log {server.log_path})")
        stdout.print(f"Point tracehound at it:\n  export {env}")
        stderr.print("Ctrl-C stops the server.")
        code = server.wait()
        raise LLMError(
            f"the local LLM server exited by itself with code {code}; the end of its "
            f"log:\n{server.log_tail()}"
        )
    except KeyboardInterrupt:
        stderr.print("Stopping the local model server.")
    finally:
        for sig in _SIGNALS:  # a second Ctrl-C must not cut the bounded stop short
            signal.signal(sig, signal.SIG_IGN)
        try:
            server.stop()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the server is stopped by PID."""
    raise KeyboardInterrupt
