"""Tiny on-disk copies of published dataset layouts, with their real names and quirks.

Each writer returns nothing and writes only under `root`; tests assert exact outcomes on
what they wrote, so every number here is chosen and documented.
"""

from __future__ import annotations

import json
from pathlib import Path

#: The real RCD Sock Shop columns, in file order (39 with time).
RCD_CONTAINERS = (
    "carts",
    "carts-db",
    "catalogue",
    "catalogue-db",
    "front-end",
    "orders",
    "orders-db",
    "payment",
    "queue-master",
    "rabbitmq",
    "shipping",
    "user",
    "user-db",
)
RCD_COLUMNS = (
    ["time"]
    + [f"{c}_cpu" for c in RCD_CONTAINERS]
    + [f"{c}_mem" for c in RCD_CONTAINERS]
    + [f"{c}_lod" for c in ("carts", "catalogue", "shipping")]
    + [f"{c}_lat_{q}" for q in (50, 90, 99) for c in ("carts", "catalogue", "shipping")]
)

#: (case folder, rep, normal first second, normal rows, anomalous first second, anomalous rows)
#: `orders-mem/2` has its normal recording *after* the anomalous one, as `orders-mem/5` does
#: in the real data; `carts-cpu/10` checks that reps sort numerically (2 before 10).
RCD_CASES = (
    ("carts-cpu", "2", 1_652_565_600, 4, 1_652_812_675, 3),
    ("carts-cpu", "10", 1_652_566_000, 3, 1_652_813_000, 5),
    ("orders-mem", "2", 1_652_846_640, 2, 1_652_846_051, 4),
)


def rcd_value(column_index: int, row: int, anomalous: bool) -> float:
    """The value written at a (1-based value column, 0-based row) cell: unique per cell."""
    return column_index * 1000.0 + row + (0.5 if anomalous else 0.25)


def _write_rcd_csv(path: Path, first_second: int, rows: int, anomalous: bool) -> None:
    lines = [",".join(RCD_COLUMNS)]
    for row in range(rows):
        cells = [str(first_second + row)]
        cells += [repr(rcd_value(j, row, anomalous)) for j in range(1, len(RCD_COLUMNS))]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def write_tiny_rcd(root: Path) -> None:
    """Three cases under ``root/sock-shop-data``, plus a stray file and a folder to ignore."""
    data = root / "sock-shop-data"
    for folder, rep, normal_start, normal_rows, anomalous_start, anomalous_rows in RCD_CASES:
        case = data / folder / rep
        case.mkdir(parents=True)
        _write_rcd_csv(case / "normal.csv", normal_start, normal_rows, anomalous=False)
        _write_rcd_csv(case / "anomalous.csv", anomalous_start, anomalous_rows, anomalous=True)
    (root / "cases.csv").write_text("case,root_cause_service\n")
    (data / "collect-data.py").write_text("# the collector script, not a case\n")


def _ag_run(steps: list[tuple[str, str, str]], mistake_step: str, agent: str) -> dict[str, object]:
    """An Algorithm-Generated run: steps are (name, role, content)."""
    return {
        "is_correct": False,
        "question": "How many even street numbers?",
        "question_ID": "4d51c4bf-4b0e-4f3d-897b-3f6687a7d9f2",
        "level": "2",
        "ground_truth": "8",
        "history": [{"content": c, "role": r, "name": n} for n, r, c in steps],
        "mistake_agent": agent,
        "mistake_step": mistake_step,
        "mistake_reason": "The code skipped edge cases.",
        "system_prompt": {agent: "## Your role"},
    }


def _hc_run() -> dict[str, object]:
    """A Hand-Crafted (Magentic-One) run: agent in `role` with suffixes, no `name`."""
    roles = [
        ("human", "What is the capital of the country with the most lakes?"),
        ("Orchestrator (thought)", "Plan: ask WebSurfer."),
        ("Orchestrator (-> WebSurfer)", "Search the web for lakes per country."),
        ("WebSurfer", "I typed 'lakes per country' into the search box."),
        ("Orchestrator (termination condition)", "Stop."),
    ]
    return {
        "is_corrected": False,
        "question": "What is the capital of the country with the most lakes?",
        "question_ID": "ab12" * 16,
        "level": 1,
        "groundtruth": "Ottawa",
        "history": [{"content": c, "role": r} for r, c in roles],
        "mistake_agent": "WebSurfer",
        "mistake_step": "3",
        "mistake_reason": "Searched the wrong phrase.",
        "mistake_type": "wrong_action",
    }


def write_tiny_whowhen(root: Path, *, hand_crafted: bool = False) -> None:
    """Algorithm-Generated runs 1, 2 and 10 (numeric order), optionally a Hand-Crafted run.

    Run 2 has an empty step (as `36.json` has) and a label whose agent did not speak the
    labelled step (as in `14.json`). With `hand_crafted`, ``Hand-Crafted/1.json`` is added.
    """
    ag = root / "Algorithm-Generated"
    ag.mkdir(parents=True)
    runs = {
        "1": _ag_run(
            [
                ("Excel_Expert", "assistant", "You are given: (1) a task ..."),
                ("Computer_terminal", "user", "exitcode: 0 (execution succeeded)"),
                ("DataVerification_Expert", "user", "TERMINATE"),
            ],
            "0",
            "Excel_Expert",
        ),
        "2": _ag_run(
            [
                ("Verification_Expert", "assistant", "Plan the check."),
                ("Computer_terminal", "user", ""),
            ],
            "1",
            "Verification_Expert",
        ),
        "10": _ag_run([("Web_Expert", "assistant", "Searching.")], "0", "Web_Expert"),
    }
    for stem, run in runs.items():
        (ag / f"{stem}.json").write_text(json.dumps(run))
    (root / "README.md").write_text("# Who&When\n")
    if hand_crafted:
        hc = root / "Hand-Crafted"
        hc.mkdir()
        (hc / "1.json").write_text(json.dumps(_hc_run()))
