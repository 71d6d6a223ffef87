"""The LLM and hybrid reasoners of rclagent, with a scripted model (no server, no network).

`Diligent` plays a careful model: on its first tool turn it calls every tool offered, on
the next it thinks aloud, and its final answers follow the evidence it was shown (error
lines -> error_logs, metric shifts -> metric_anomaly, every id cited) and pick the
rules' best candidate. So an LLM investigation must reach the rules' answer, and every
call is predictable: three per span agent, one per consolidation with candidates, one
for the synthesis.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from cli_helpers import assert_bad_input, run_cli
from tiny import tiny_incident

from tracehound.bundle import read_bundle, write_bundle
from tracehound.errors import BadInput, TracehoundError
from tracehound.investigation import Investigation
from tracehound.llm.backend import Backend
from tracehound.llm.prompts import render
from tracehound.llm.replay import RecordingBackend
from tracehound.llm.session import Budget, LLMSession
from tracehound.llm.types import Completion, Request, ToolCall, Usage
from tracehound.model import IncidentData
from tracehound.rclagent import RclAgentMethod
from tracehound.rclagent.llm_reasoner import (
    RERANK_MAX,
    LocalVerdict,
    SpanVerdict,
    SynthesisVerdict,
    apply_local,
    apply_synthesis,
    gate,
)
from tracehound.rclagent.reasoner import Blame, LocalReport, Signals, SuspectScore
from tracehound.report import render as render_report
from tracehound.simulate import generate_incident, generate_system
from tracehound.store import TelemetryStore

PROMPT_TOKENS = 100
COMPLETION_TOKENS = 10
#: Calls of one span agent with `Diligent`: tools, a thought, the final answer.
VERIFY_CALLS = 3


class Diligent(Backend):
    """A scripted model (see the module docstring); `garble(request)` true -> the final
    answer of that request is not JSON."""

    name = "diligent"

    def __init__(self, garble: Callable[[Request], bool] = lambda _: False) -> None:
        self.garble = garble
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Completion:
        with self._lock:
            self.calls += 1
        usage = Usage(PROMPT_TOKENS, COMPLETION_TOKENS)
        last = request.messages[-1]
        if request.tools:
            if last.role != "tool":
                calls = tuple(ToolCall(f"c{i}", t.name, {}) for i, t in enumerate(request.tools))
                return Completion("", calls, "tool_calls", usage)
            return Completion("The tools have spoken; let me weigh them.", (), "stop", usage)
        if self.garble(request):
            return Completion("I think it is fine, probably.", (), "stop", usage)
        title = (request.json_schema or {}).get("title")
        answer = {
            "SpanVerdict": _span_answer,
            "LocalVerdict": _local_answer,
            "SynthesisVerdict": _synthesis_answer,
        }[str(title)](request)
        return Completion(json.dumps(answer), (), "stop", usage)


def _span_answer(request: Request) -> dict[str, object]:
    seen = "\n".join(m.content for m in request.messages if m.role == "tool")
    return {
        "abnormal": True,
        "error_logs": "new warning/error line(s)" in seen,
        "metric_anomaly": "spreads" in seen,
        "key_symptoms": ["checked"],
        "hypothesis": "as the tools say",
        "evidence": [*sorted(set(re.findall(r"E\d+", seen))), "E999"],
    }


def _listed(request: Request, heading: str) -> list[tuple[str, str]]:
    """(key, fault) of each `- key: score, fault, ...` line under `heading`."""
    prompt = next(m.content for m in request.messages if heading in m.content)
    text = prompt.split(heading, 1)[1]
    found = []
    for line in text.strip().splitlines():
        key, rest = line.removeprefix("- ").split(": ", 1)
        found.append((key, rest.split(", ")[1]))
    return found


def _local_answer(request: Request) -> dict[str, object]:
    key, fault = _listed(request, "Candidates (key: score, fault, note):")[0]
    return {"root_cause": key, "confidence": 0.9, "fault_type": fault, "summary": "the best"}


def _synthesis_answer(request: Request) -> dict[str, object]:
    listed = _listed(request, "Suspects (key: score, fault, reason):")
    return {"ranking": [key for key, _ in listed], "fault_type": listed[0][1]}


@cache
def simulated(fault: str = "error", seed: int = 1) -> IncidentData:
    return generate_incident(
        generate_system(12, seed), index=1, seed=seed, fault_type=fault, target_spans=1500
    )


def investigate(
    data: IncidentData,
    monkeypatch: pytest.MonkeyPatch,
    backend: Backend,
    *,
    reasoner: str = "llm",
    budget: Budget | None = None,
) -> Investigation:
    """rclagent with `reasoner` on `data`, its session talking to `backend`."""

    def session(config: object) -> LLMSession:
        return LLMSession(backend, budget=budget, model="scripted")

    monkeypatch.setattr("tracehound.llm.session.open_session", session)
    with TelemetryStore.from_incident(data) as store:
        return RclAgentMethod(reasoner=reasoner).investigate(data.incident, store)


def rule_investigation(data: IncidentData) -> Investigation:
    with TelemetryStore.from_incident(data) as store:
        return RclAgentMethod().investigate(data.incident, store)


def findings(result: Investigation) -> dict[str, str | None]:
    """Source of every finding node of the evidence graph, by its original id."""
    return {
        str(n.keys["ref"]): n.source for n in result.evidence_graph.nodes if n.kind == "finding"
    }


# -- the LLM reasoner -------------------------------------------------------------


def test_llm_reasoner_reaches_the_rules_answer_and_counts_every_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = simulated()
    backend = Diligent()
    result = investigate(data, monkeypatch, backend)
    rules = rule_investigation(data)
    assert result.ranking == rules.ranking
    assert result.fault_type == rules.fault_type == "error"
    llm = result.stats["llm"]
    agents = result.stats["agents_run"]
    consolidated = sum(1 for a in llm["per_agent"] if a.startswith("consolidate:"))
    expected = VERIFY_CALLS * agents + consolidated + 1
    assert backend.calls == llm["calls"] == expected
    assert llm["prompt_tokens"] == PROMPT_TOKENS * expected
    assert llm["completion_tokens"] == COMPLETION_TOKENS * expected
    assert llm["total_tokens"] == (PROMPT_TOKENS + COMPLETION_TOKENS) * expected
    assert llm["wall_time_s"] >= 0
    assert llm["model"] == "scripted"
    assert llm["reasoner"] == "llm"
    assert llm["agents_fallback"] == llm["failures"] == 0
    assert llm["fallbacks"] == []
    # every span agent and every consolidation with candidates answered, and synthesis
    assert llm["agents_llm"] == agents + consolidated + 1
    assert llm["agents_llm"] + llm["agents_rule"] == 2 * agents + 1
    sources = findings(result)
    assert len(sources) == agents
    assert set(sources.values()) == {"llm"}
    assert result.path and all(step.source == "llm" for step in result.path)
    reports = [n for n in result.evidence_graph.nodes if n.kind == "report"]
    assert reports and {n.source for n in reports} <= {"llm", "rule (nothing to consolidate)"}


def test_model_cites_only_evidence_its_tools_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    result = investigate(simulated(), monkeypatch, Diligent())
    graph = result.evidence_graph
    ids = {n.id for n in graph.nodes}
    supports = [e for e in graph.edges if e.relation == "supports"]
    assert supports
    assert all(e.source in ids for e in supports)  # E999 (never returned) was dropped
    kinds = {n.kind for n in graph.nodes if any(e.source == n.id for e in supports)}
    assert kinds <= {"span_timing", "edge_timing", "log", "silence", "metric_shift"}


def test_malformed_answers_fall_back_to_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    data = simulated()
    culprit = data.incident.labels.instance if data.incident.labels else None
    assert culprit

    def garble(request: Request) -> bool:
        schema = request.json_schema or {}
        return schema.get("title") == "SpanVerdict" and f"/ {culprit}\n" in str(
            request.messages[1].content
        )

    backend = Diligent(garble)
    result = investigate(data, monkeypatch, backend)
    llm = result.stats["llm"]
    sources = findings(result)
    fell_back = {ref for ref, source in sources.items() if source != "llm"}
    assert fell_back
    assert all(ref.startswith("finding:") for ref in fell_back)
    for ref in fell_back:
        source = sources[ref]
        assert source is not None
        assert source.startswith("rule (fallback: LLMError: the LLM's answer for agent")
        assert "is not a valid SpanVerdict even after a repair round" in source
    assert llm["agents_fallback"] == len(fell_back) == llm["failures"] == llm["repairs"]
    listed = {f["agent"] for f in llm["fallbacks"]}
    assert listed == {f"verify:{ref.removeprefix('finding:')}" for ref in fell_back}
    # a failed agent costs one more call (the repair round); the rest answered
    agents = result.stats["agents_run"]
    consolidated = sum(1 for a in llm["per_agent"] if a.startswith("consolidate:"))
    assert llm["calls"] == VERIFY_CALLS * agents + len(fell_back) + consolidated + 1
    # the culprit's own findings fell back to the rules, which still find it
    assert result.ranking.instances[0].name == culprit
    text = render_report(result, "text")
    assert "(rule (fallback: LLMError" in text


def test_budget_exhaustion_makes_later_agents_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = Diligent()
    result = investigate(simulated(), monkeypatch, backend, budget=Budget(max_calls=10))
    llm = result.stats["llm"]
    assert backend.calls == llm["calls"] == 10
    assert llm["budget_exhausted"] is True
    assert llm["budget"] == {"max_calls": 10, "max_total_tokens": None}
    reasons = {f["reason"] for f in llm["fallbacks"]}
    assert reasons == {"budget exhausted"}
    assert llm["agents_fallback"] >= result.stats["agents_run"] - 4
    assert len(llm["fallbacks"]) == 20
    sources = set(findings(result).values())
    assert "rule (fallback: budget exhausted)" in sources
    assert sources <= {"llm", "rule (fallback: budget exhausted)"}
    assert result.ranking == rule_investigation(simulated()).ranking


# -- the hybrid reasoner ----------------------------------------------------------


@pytest.mark.parametrize(("fault", "seed"), [("error", 1), ("cpu", 1), ("cpu", 2)])
def test_hybrid_asks_a_fifth_of_the_calls_at_the_same_accuracy(
    monkeypatch: pytest.MonkeyPatch, fault: str, seed: int
) -> None:
    data = simulated(fault, seed)
    labels = data.incident.labels
    assert labels is not None
    full, screened = Diligent(), Diligent()
    llm = investigate(data, monkeypatch, full)
    hybrid = investigate(data, monkeypatch, screened, reasoner="hybrid")
    assert screened.calls * 5 <= full.calls
    services = [c.name for c in hybrid.ranking.services]
    assert services.index(labels.service) <= [c.name for c in llm.ranking.services].index(
        labels.service
    )
    stats = hybrid.stats["llm"]
    assert stats["reasoner"] == "hybrid"
    assert stats["calls"] == screened.calls
    ambiguous = stats["ambiguous_spans"]
    asked = {a.removeprefix("verify:") for a in stats["per_agent"] if a.startswith("verify:")}
    assert ambiguous == sorted(asked)
    sources = findings(hybrid)
    assert {ref for ref, s in sources.items() if s == "llm"} == {f"finding:{a}" for a in asked}
    assert {s for ref, s in sources.items() if ref.removeprefix("finding:") not in asked} <= {
        "rule"
    }


def test_hybrid_lists_its_ambiguous_spans_in_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    result = investigate(simulated("cpu", 1), monkeypatch, Diligent(), reasoner="hybrid")
    spans = result.stats["llm"]["ambiguous_spans"]
    assert spans
    text = " ".join(render_report(result, "text").split())
    assert f"ambiguous spans {len(spans)} sent to the model: {spans[0]}" in text
    assert "LLM (hybrid) " in text


# -- applying verdicts ------------------------------------------------------------


def test_verdict_gates_signals_off_never_on() -> None:
    signals = Signals(
        error=0.8,
        status_error=True,
        crashed=True,
        resource=0.5,
        resource_kind="cpu",
        self_time=0.4,
        mentions=(("db", "db-1"),),
        is_client=True,
        evidence={"logs": ("e1",)},
    )

    def verdict(abnormal: bool, errors: bool, metrics: bool) -> SpanVerdict:
        return SpanVerdict(
            abnormal=abnormal,
            error_logs=errors,
            metric_anomaly=metrics,
            key_symptoms=[],
            hypothesis="",
            evidence=[],
        )

    assert gate(signals, verdict(True, True, True)) == signals
    off = gate(signals, verdict(False, True, True))
    assert off == Signals(is_client=True, evidence={"logs": ("e1",)})
    quiet = gate(signals, verdict(True, False, False))
    assert (quiet.error, quiet.crashed, quiet.mentions, quiet.status_error) == (0, False, (), True)
    assert (quiet.resource, quiet.resource_kind, quiet.self_time) == (0, None, 0.4)
    assert gate(Signals(), verdict(True, True, True)) == Signals()


def _blame(instance: str, score: float) -> Blame:
    return Blame(
        service=instance.split("-")[0],
        instance=instance,
        score=score,
        fault_type="error",
        note=f"{instance} note",
        span_key=instance,
        evidence=(f"ev-{instance}",),
    )


def _report(*blames: Blame) -> LocalReport:
    from tracehound.model import Report

    top = max(blames, key=lambda b: b.score)
    return LocalReport(
        key="k",
        report=Report(span_id="k", root_cause=top.instance, confidence=0.5, summary=top.note),
        signals=Signals(),
        service="a",
        instance="a-1",
        blame={b.instance: b for b in blames},
        edge_blame={},
        edge_evidence={},
        error_chain=True,
    )


def test_a_local_choice_becomes_the_top_blame_just_above_the_best() -> None:
    rule = _report(_blame("a-1", 1.0), _blame("b-1", 0.5))
    verdict = LocalVerdict(root_cause="b-1", confidence=0.5, fault_type="cpu", summary="b")
    chosen = apply_local(rule, verdict)
    assert chosen.blame["b-1"].score == pytest.approx(1.05)
    assert chosen.blame["a-1"] == rule.blame["a-1"]
    assert chosen.report.root_cause == "b-1"
    assert (chosen.report.fault_type, chosen.report.summary) == ("cpu", "b")
    assert chosen.report.evidence == ["ev-b-1"]
    assert chosen.source == "llm"
    # the top again: no boost, so choices do not compound up the tree
    again = apply_local(rule, verdict.model_copy(update={"root_cause": "a-1"}))
    assert again.blame == rule.blame
    none = apply_local(rule, verdict.model_copy(update={"root_cause": "none"}))
    assert none.blame == rule.blame and none.report.root_cause is None


def _suspect(instance: str, score: float) -> SuspectScore:
    return SuspectScore(
        service=instance.split("-")[0],
        instance=instance,
        score=score,
        fault_type="latency",
        reason="r",
        evidence=(),
        span_key=None,
        trace_id=None,
    )


def test_synthesis_reorders_only_the_window_of_close_suspects() -> None:
    suspects = [_suspect(name, score) for name, score in [("a-1", 1.0), ("b-1", 0.8)]]
    suspects += [_suspect("c-1", 0.6), _suspect("d-1", 0.3)]
    verdict = SynthesisVerdict(ranking=["d-1", "c-1", "zzz"], fault_type="memory")
    out = {s.instance: s for s in apply_synthesis(suspects, verdict)}
    # d-1 is below half the best score: outside the window, it stays where it is
    assert [out[k].score for k in ("c-1", "a-1", "b-1", "d-1")] == [1.0, 0.8, 0.6, 0.3]
    assert out["c-1"].fault_type == "memory"
    assert out["c-1"].reason == "r; the model moved it from #3 to #1"
    assert out["d-1"] == suspects[3]
    assert RERANK_MAX == 5


# -- prompts, parameters, CLI -----------------------------------------------------


def test_prompts_are_templates_and_missing_parts_are_named() -> None:
    text = render("synthesize_user", reports="- r", suspects="- s")
    assert text == "Request reports:\n- r\nSuspects (key: score, fault, reason):\n- s"
    with pytest.raises(TracehoundError, match="prompt template 'nope' not found"):
        render("nope")
    with pytest.raises(TracehoundError, match=r"'synthesize_user' needs a value for \$suspects"):
        render("synthesize_user", reports="- r")


def test_unknown_reasoner_is_bad_input() -> None:
    data = tiny_incident()
    with (
        TelemetryStore.from_incident(data) as store,
        pytest.raises(BadInput, match="rclagent has no reasoner 'smart'; expected rule, llm"),
    ):
        RclAgentMethod(reasoner="smart").investigate(data.incident, store)


def test_llm_options_need_a_method_with_a_reasoner(tmp_path: Path) -> None:
    bundle = write_bundle(tiny_incident(), tmp_path / "tiny-0001")
    result = run_cli("investigate", str(bundle), "-m", "baro", "--reasoner", "llm")
    assert_bad_input(result, "--reasoner apply to methods with an LLM reasoner (rclagent)")


def test_llm_settings_without_a_model_reasoner_are_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tiny_incident(), tmp_path / "tiny-0001")
    result = run_cli("investigate", str(bundle), "--llm", "local", "--replay", "x.jsonl")
    assert_bad_input(
        result,
        "--llm, --replay given, but the reasoner is 'rule', which uses no model",
        "expected --reasoner llm or --reasoner hybrid",
    )


def test_cli_replays_a_recorded_llm_investigation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_bundle(tiny_incident(), tmp_path / "data" / "tiny-0001")
    transcript = tmp_path / "calls.jsonl"
    recorded = investigate(
        read_bundle(bundle), monkeypatch, RecordingBackend(Diligent(), path=transcript)
    )
    lines = transcript.read_text(encoding="utf-8").splitlines()
    assert len(lines) == recorded.stats["llm"]["calls"] > 0

    args = ["investigate", str(bundle), "--reasoner", "llm", "--replay", str(transcript)]
    result = run_cli(*args, "--llm-max-calls", "100", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    llm = data["stats"]["llm"]
    assert llm["calls"] == len(lines)
    assert llm["prompt_tokens"] == PROMPT_TOKENS * len(lines)
    assert llm["completion_tokens"] == COMPLETION_TOKENS * len(lines)
    assert llm["agents_fallback"] == 0
    assert data["ranking"] == json.loads(render_report(recorded, "json"))["ranking"]
    nodes = [n for n in data["evidence_graph"]["nodes"] if n["kind"] == "finding"]
    assert nodes and {n["source"] for n in nodes} == {"llm"}
    assert all(step["source"] == "llm" for step in data["path"])
    assert all("source" not in n for n in data["evidence_graph"]["nodes"] if n["kind"] == "log")

    text = run_cli(*args, columns=100)
    assert text.returncode == 0, text.stderr
    flat = " ".join(text.stdout.split())
    calls = len(lines)
    assert (
        f"LLM (llm) {calls} calls, {PROMPT_TOKENS * calls:,} prompt + "
        f"{COMPLETION_TOKENS * calls:,} completion tokens" in flat
    )
    assert "agents answered by the model, 0 fallbacks" in flat
    assert "by llm · tool verify" in flat


def test_replay_of_a_different_investigation_falls_back(tmp_path: Path) -> None:
    bundle = write_bundle(tiny_incident(), tmp_path / "tiny-0001")
    transcript = tmp_path / "other.jsonl"
    transcript.write_text("", encoding="utf-8")
    args = ["investigate", str(bundle), "--reasoner", "llm", "--replay", str(transcript)]
    result = run_cli(*args, "--format", "json")
    assert result.returncode == 0, result.stderr
    llm = json.loads(result.stdout)["stats"]["llm"]
    assert llm["agents_llm"] == 0
    assert llm["agents_fallback"] > 0
    assert all(f["reason"].startswith("LLMError: replay") for f in llm["fallbacks"])


def test_verdicts_may_name_disk_but_not_unknown_types() -> None:
    """The rule reasoner types disk I/O shifts `disk` (`PREDICTED_FAULT_TYPES`); a model
    agreeing with it must be able to say so, in any case, and nothing outside the list."""
    from pydantic import ValidationError

    assert SynthesisVerdict(ranking=["b-1"], fault_type="Disk").fault_type == "disk"
    with pytest.raises(ValidationError, match="fault_type must be one of"):
        SynthesisVerdict(ranking=["b-1"], fault_type="gremlins")
