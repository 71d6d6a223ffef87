"""WhoWhenDataset on tiny copies of both schemas, and on the real subset when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from layouts_small import write_tiny_rcd, write_tiny_whowhen

from tracehound.datasets.whowhen import SYNTHETIC_EPOCH_NS, WhoWhenDataset, split_role
from tracehound.errors import BadInput
from tracehound.model import Window
from tracehound.tables import LOGS_SCHEMA, SPANS_SCHEMA

S = 1_000_000_000
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "who-and-when"


def _steps_window(n: int) -> Window:
    return Window.from_ns(SYNTHETIC_EPOCH_NS, SYNTHETIC_EPOCH_NS + n * S)


def test_epoch_is_2000_01_01() -> None:
    assert _steps_window(1).start.isoformat() == "2000-01-01T00:00:00+00:00"


def test_detect(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path / "ww")
    write_tiny_rcd(tmp_path / "rcd")
    (tmp_path / "empty").mkdir()
    assert WhoWhenDataset.detect(tmp_path / "ww")
    assert WhoWhenDataset.detect(tmp_path / "ww" / "Algorithm-Generated")
    assert not WhoWhenDataset.detect(tmp_path / "rcd")
    assert not WhoWhenDataset.detect(tmp_path / "empty")
    (tmp_path / "ww" / "Algorithm-Generated" / "1.json").write_text('{"history": 3}')
    assert not WhoWhenDataset.detect(tmp_path / "ww")


def test_incidents_ids_labels_windows(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path)
    incidents = WhoWhenDataset(tmp_path).incidents()
    assert [i.id for i in incidents] == [
        "ww-algorithm-generated-1",
        "ww-algorithm-generated-2",
        "ww-algorithm-generated-10",
    ]
    first = incidents[0]
    assert first.system == "algorithm-generated"
    assert first.window == _steps_window(3)
    assert first.normal_window is None
    assert first.labels is not None
    assert first.labels.service == "Excel_Expert"
    assert first.labels.span == "step-0"
    assert first.labels.step == 0
    assert first.labels.fault_type == "agent_mistake"
    assert first.labels.detail == "The code skipped edge cases."
    assert first.attributes == {
        "question": "How many even street numbers?",
        "ground_truth": "8",
        "question_id": "4d51c4bf-4b0e-4f3d-897b-3f6687a7d9f2",
        "level": "2",
        "subset": "Algorithm-Generated",
        "kind": "agent-run",
    }
    second = incidents[1].labels
    assert second is not None and second.step == 1 and isinstance(second.step, int)
    assert incidents[2].window == _steps_window(1)


def test_info(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path, hand_crafted=True)
    info = WhoWhenDataset(tmp_path).info()
    assert info.kind == "who-and-when"
    assert info.incidents == 4
    assert info.fault_types == {"agent_mistake": 3, "wrong_action": 1}
    assert info.systems == ["algorithm-generated", "hand-crafted"]
    assert info.modalities == ["traces", "logs"]


def test_load_spans_and_logs(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path)
    data = WhoWhenDataset(tmp_path).load("ww-algorithm-generated-1")
    spans, logs = data.spans, data.logs
    assert spans is not None and logs is not None and data.metrics is None
    assert spans.schema == SPANS_SCHEMA and logs.schema == LOGS_SCHEMA
    assert spans.to_pydict() == {
        "trace_id": ["ww-algorithm-generated-1"] * 3,
        "span_id": ["step-0", "step-1", "step-2"],
        "parent_span_id": [None, "step-0", "step-1"],
        "service": ["Excel_Expert", "Computer_terminal", "DataVerification_Expert"],
        "instance": ["Excel_Expert", "Computer_terminal", "DataVerification_Expert"],
        "operation": ["assistant", "user", "user"],
        "kind": ["internal"] * 3,
        "start_ns": [SYNTHETIC_EPOCH_NS + i * S for i in range(3)],
        "duration_ns": [S] * 3,
        "status": ["unset"] * 3,
        "attributes": [
            '{"step": 0, "role": "assistant", "chars": 29}',
            '{"step": 1, "role": "user", "chars": 33}',
            '{"step": 2, "role": "user", "chars": 9}',
        ],
    }
    assert logs.to_pydict() == {
        "ts_ns": [SYNTHETIC_EPOCH_NS + i * S for i in range(3)],
        "service": ["Excel_Expert", "Computer_terminal", "DataVerification_Expert"],
        "instance": ["Excel_Expert", "Computer_terminal", "DataVerification_Expert"],
        "level": ["INFO"] * 3,
        "message": [
            "You are given: (1) a task ...",
            "exitcode: 0 (execution succeeded)",
            "TERMINATE",
        ],
        "trace_id": ["ww-algorithm-generated-1"] * 3,
        "span_id": ["step-0", "step-1", "step-2"],
    }


def test_empty_step_content_is_kept(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path)
    data = WhoWhenDataset(tmp_path).load("ww-algorithm-generated-2")
    assert data.logs is not None and data.spans is not None
    assert data.logs["message"].to_pylist() == ["Plan the check.", ""]
    assert json.loads(data.spans["attributes"][1].as_py())["chars"] == 0


def test_hand_crafted_schema(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path, hand_crafted=True)
    dataset = WhoWhenDataset(tmp_path)
    incident = dataset.incidents()[-1]
    assert incident.id == "ww-hand-crafted-1"
    assert incident.system == "hand-crafted"
    assert incident.labels is not None
    assert incident.labels.service == "WebSurfer"
    assert (incident.labels.step, incident.labels.span) == (3, "step-3")
    assert incident.labels.fault_type == "wrong_action"
    assert incident.attributes["ground_truth"] == "Ottawa"  # the older key `groundtruth`
    assert incident.attributes["level"] == "1"
    spans = dataset.load(incident.id).spans
    assert spans is not None
    assert spans["service"].to_pylist() == [
        "human",
        "Orchestrator",
        "Orchestrator",
        "WebSurfer",
        "Orchestrator",
    ]
    assert spans["operation"][2].as_py() == "Orchestrator (-> WebSurfer)"
    attributes = [json.loads(a) for a in spans["attributes"].to_pylist()]
    assert [a.get("suffix") for a in attributes] == [
        None,
        "thought",
        "-> WebSurfer",
        None,
        "termination condition",
    ]
    assert attributes[1]["role"] == "Orchestrator (thought)"


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("Orchestrator (thought)", ("Orchestrator", "thought")),
        ("Orchestrator (-> WebSurfer)", ("Orchestrator", "-> WebSurfer")),
        ("WebSurfer", ("WebSurfer", None)),
        ("(odd)", ("(odd)", None)),
    ],
)
def test_split_role(role: str, expected: tuple[str, str | None]) -> None:
    assert split_role(role) == expected


def test_broken_json_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path)
    (tmp_path / "Algorithm-Generated" / "3.json").write_text('{"history": [')
    dataset = WhoWhenDataset(tmp_path)
    with pytest.raises(BadInput, match=r"3\.json.*not a readable JSON"):
        dataset.incidents()
    with pytest.raises(BadInput, match=r"3\.json"):
        dataset.load("ww-algorithm-generated-3")
    assert dataset.load("ww-algorithm-generated-1").spans is not None


def test_missing_history_is_bad_input(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path)
    (tmp_path / "Algorithm-Generated" / "4.json").write_text('{"question": "?"}')
    with pytest.raises(BadInput, match=r"4\.json.*'history'"):
        WhoWhenDataset(tmp_path).incidents()


def test_unknown_id_is_bad_input(tmp_path: Path) -> None:
    write_tiny_whowhen(tmp_path)
    with pytest.raises(BadInput, match="ww-algorithm-generated-99"):
        WhoWhenDataset(tmp_path).load("ww-algorithm-generated-99")


@pytest.mark.integration
def test_real_who_and_when() -> None:
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent")
    dataset = WhoWhenDataset(REAL)
    info = dataset.info()
    assert info.incidents == 126
    assert info.systems == ["algorithm-generated"]
    incidents = dataset.incidents()
    assert sum(round(i.window.seconds) for i in incidents) == 1099
    assert all(i.labels is not None and isinstance(i.labels.step, int) for i in incidents)
    data = dataset.load("ww-algorithm-generated-1")
    assert data.spans is not None and data.logs is not None
    assert data.spans.num_rows == data.logs.num_rows == 6
    assert data.spans["service"][0].as_py() == "Excel_Expert"
    assert data.logs["message"][5].as_py() == "TERMINATE"
    total = 0
    for incident in incidents:
        spans = dataset.load(incident.id).spans
        assert spans is not None
        total += spans.num_rows
    assert total == 1099
