"""Plan benchmark cases and fan them out over Dask distributed (ARCHITECTURE §10, §11).

A case is one (method, incident) pair. The plan is checked in the calling process (known
methods, valid parameters, a readable dataset) so bad input fails before any worker
starts. Cases then run as Dask tasks, on a `LocalCluster` of worker processes bound to
127.0.0.1 or on an existing scheduler; each task loads its incident from the dataset path,
so remote workers need the dataset on shared storage at the same path and tracehound
installed. Results are sorted by (method, incident id), and every method gets the same
seed, so the outcome does not depend on the number of workers.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client, Future, LocalCluster, as_completed

from tracehound import __version__
from tracehound.bench.case import (
    GROUND_TRUTH_ATTRIBUTE,
    GROUND_TRUTH_PARAM,
    CaseLabels,
    CaseResult,
    CaseSpec,
    run_case,
)
from tracehound.bench.metrics import MethodSummary, ground_truth_order, summarize
from tracehound.datasets import open_dataset
from tracehound.errors import BadInput
from tracehound.methods import Method, available_methods, get_method

#: Called after each finished case with (cases done, cases in all, the result).
ResultCallback = Callable[[int, int, CaseResult], None]

#: How long to wait for an existing scheduler to answer.
CONNECT_TIMEOUT_S = 10

#: The values of `BenchConfig.ground_truth` and the settings each one runs.
GROUND_TRUTH_SETTINGS: dict[str, tuple[bool, ...]] = {
    "both": (True, False),
    "with": (True,),
    "without": (False,),
}


@dataclass(frozen=True)
class BenchConfig:
    """What to run: methods, their parameters, the dataset, and where to run it.

    `params` maps a method name to the parameters it is built with (see `parse_params`).
    `workers` and `scheduler` exclude each other; with neither, one local worker runs.
    `ground_truth` ("both", "with", "without") says in which settings a method with a
    `use_ground_truth` parameter runs on data whose incidents carry a reference answer
    (agent runs); each setting is reported as its own row. Other methods, other data, or
    a `use_ground_truth` given as a parameter run once.
    """

    methods: tuple[str, ...]
    dataset: Path
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None
    workers: int | None = None
    scheduler: str | None = None
    ground_truth: str = "both"


@dataclass(frozen=True)
class BenchRun:
    """A finished benchmark: every case, sorted, and one summary per method."""

    version: str
    seed: int
    dataset: str
    cases: list[CaseResult]
    summaries: list[MethodSummary]


def parse_params(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Method parameters from `NAME=VALUE` or `METHOD.NAME=VALUE` items.

    `NAME=VALUE` applies to every selected method that has the parameter (and is an error
    when none has it); `METHOD.NAME=VALUE` to that method only. Values are read as JSON
    (`3`, `0.5`, `true`, `null`, `[1, 2]`) and otherwise kept as text.
    """
    classes = check_methods(methods)
    params: dict[str, dict[str, Any]] = {name: {} for name in methods}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise BadInput(
                f"cannot read parameter {item!r}",
                column="--param",
                expected="NAME=VALUE or METHOD.NAME=VALUE",
            )
        value = _parse_value(text)
        target, dot, name = key.rpartition(".")
        if dot:
            if target not in params:
                raise BadInput(
                    f"parameter {item!r} names method {target!r}, which is not selected",
                    column="--param",
                    expected=f"one of the --method names: {', '.join(methods)}",
                )
            params[target][name] = value
            continue
        owners = [m for m in methods if name in classes[m].param_names()]
        if not owners:
            raise BadInput(
                f"no selected method has a parameter {name!r}",
                column="--param",
                hint="`tracehound methods list` shows each method's parameters.",
            )
        for owner in owners:
            params[owner][name] = value
    return params


def check_methods(methods: Sequence[str]) -> dict[str, type[Method]]:
    """The registered method classes, after checking that every name in `methods` is one
    (`BadInput` listing the registered names otherwise)."""
    classes = available_methods()
    for name in methods:
        if name not in classes:
            get_method(name)  # raises the registry's own message, listing the methods
    return classes


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def plan_cases(config: BenchConfig) -> list[CaseSpec]:
    """Every (method, incident) case, sorted by method then incident id.

    Raises `BadInput` for an unknown method, an unknown parameter, a path that is not a
    dataset, or a dataset without incidents.
    """
    if config.workers is not None and config.scheduler is not None:
        raise BadInput(
            "--workers and --scheduler exclude each other",
            hint="Use --workers N for a local cluster, or --scheduler ADDRESS to use a running "
            "one whose workers you started yourself.",
        )
    if config.workers is not None and config.workers < 1:
        raise BadInput(f"--workers {config.workers}", expected="at least 1 worker")
    if not config.methods:
        raise BadInput("no method given", column="--method", expected="at least one --method")
    if config.ground_truth not in GROUND_TRUTH_SETTINGS:
        raise BadInput(
            f"--ground-truth {config.ground_truth!r}",
            column="--ground-truth",
            expected=", ".join(GROUND_TRUTH_SETTINGS),
        )
    methods = _method_params(config)
    dataset = open_dataset(config.dataset)
    incidents = dataset.incidents()[: config.limit]
    if not incidents:
        raise BadInput("the dataset has no incidents", file=config.dataset)
    has_answers = any(GROUND_TRUTH_ATTRIBUTE in i.attributes for i in incidents)
    classes = check_methods(config.methods)
    location = str(Path(config.dataset).resolve())
    specs = [
        CaseSpec(
            method=name,
            params=settings,
            dataset=str(config.dataset),
            dataset_path=location,
            incident=incident.id,
            system=incident.system,
            labels=CaseLabels.of(incident),
            ground_truth=setting,
        )
        for name, params in methods.items()
        for setting, settings in _ground_truth_variants(
            params, classes[name], has_answers, config.ground_truth
        )
        for incident in incidents
    ]
    return sorted(specs, key=lambda s: (s.method, ground_truth_order(s.ground_truth), s.incident))


def _ground_truth_variants(
    params: Mapping[str, Any], method: type[Method], has_answers: bool, choice: str
) -> list[tuple[bool | None, dict[str, Any]]]:
    """(setting, parameters) of each run of a method (see `BenchConfig.ground_truth`)."""
    if not has_answers or GROUND_TRUTH_PARAM not in method.param_names():
        return [(None, dict(params))]
    if GROUND_TRUTH_PARAM in params:
        return [(bool(params[GROUND_TRUTH_PARAM]), dict(params))]
    return [
        (setting, {**params, GROUND_TRUTH_PARAM: setting})
        for setting in GROUND_TRUTH_SETTINGS[choice]
    ]


def _method_params(config: BenchConfig) -> dict[str, dict[str, Any]]:
    """Each selected method's parameters, with `seed` filled in where the method has one;
    building each method once checks the names and parameters before any worker starts."""
    classes = check_methods(config.methods)
    resolved: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(config.methods):
        params = dict(config.params.get(name, {}))
        if "seed" in classes[name].param_names():
            params.setdefault("seed", config.seed)
        get_method(name, **params)
        resolved[name] = params
    return resolved


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A client of a fresh `LocalCluster` on 127.0.0.1 (default one worker), or of the
    scheduler at `scheduler`. Cluster and client are closed on exit, also on errors and
    Ctrl-C."""
    if scheduler is not None:
        try:
            client = Client(  # type: ignore[no-untyped-call]
                scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False
            )
        except OSError as exc:
            raise BadInput(
                f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}",
                column="--scheduler",
                expected="the address of a running scheduler, e.g. tcp://10.0.0.5:8786",
            ) from exc
        with client:
            yield client
        return
    cluster: LocalCluster | None = None
    try:
        with _sigint_ignored_by_children():
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
            )
        with Client(cluster, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            yield client
    finally:
        if cluster is not None:
            cluster.close()


@contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Ignore SIGINT while the cluster spawns its worker processes.

    Ctrl-C reaches the whole foreground process group. Worker processes inherit an
    ignored SIGINT across exec, so they never see it and print no tracebacks; this
    process restores its handler once the workers run and then shuts the cluster down in
    order on Ctrl-C. The price: a Ctrl-C during the second or two of start-up is lost.
    (Blocking the signal instead does not work: distributed's IO-loop thread, which
    spawns the workers, does not keep the mask.) Only the main thread may do this.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_cases(
    specs: Sequence[CaseSpec], client: Client, on_result: ResultCallback | None = None
) -> list[CaseResult]:
    """Run every case on the client's workers; results sorted by (method, incident id).

    A case whose task is lost (a worker died) becomes an error row like any other failure.
    Unfinished tasks are cancelled if collecting stops early (Ctrl-C).
    """
    futures: dict[Future[CaseResult], CaseSpec] = {}
    for index, spec in enumerate(specs):
        key = f"tracehound-case-{index}-{spec.method}-{spec.incident}"
        futures[client.submit(run_case, spec, key=key, pure=False)] = spec
    results: list[CaseResult] = []
    try:
        for future in as_completed(list(futures), loop=client.loop):  # type: ignore[no-untyped-call]
            results.append(_collect(future, futures[future]))
            if on_result is not None:
                on_result(len(results), len(specs), results[-1])
    finally:
        client.cancel(list(futures))  # type: ignore[no-untyped-call]
    return sorted(results, key=lambda r: (r.method, ground_truth_order(r.ground_truth), r.incident))


def _collect(future: Future[CaseResult], spec: CaseSpec) -> CaseResult:
    try:
        result = future.result()
    except Exception as exc:  # the task itself was lost; the run goes on
        return CaseResult(
            method=spec.method,
            dataset=spec.dataset,
            incident=spec.incident,
            system=spec.system,
            labels=spec.labels,
            params=dict(spec.params),
            ground_truth=spec.ground_truth,
            error=f"{type(exc).__name__}: {exc}",
        )
    if not isinstance(result, CaseResult):
        raise TypeError(f"a benchmark task returned {type(result).__name__}, not CaseResult")
    return result


def run_bench(config: BenchConfig, on_result: ResultCallback | None = None) -> BenchRun:
    """Plan, run and summarize a benchmark."""
    return run_planned(config, plan_cases(config), on_result)


def run_planned(
    config: BenchConfig, specs: Sequence[CaseSpec], on_result: ResultCallback | None = None
) -> BenchRun:
    """Run the cases `plan_cases(config)` returned and summarize them."""
    with dask_client(config.workers, config.scheduler) as client:
        cases = run_cases(specs, client, on_result)
    return BenchRun(
        version=__version__,
        seed=config.seed,
        dataset=str(config.dataset),
        cases=cases,
        summaries=summarize(cases),
    )
