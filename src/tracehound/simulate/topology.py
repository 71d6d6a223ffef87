"""The synthetic system: services, operations, instances on nodes, and their call graph.

ARCHITECTURE §7. Services sit on levels (level 0 holds the frontends whose operations are
the entry points of requests); an operation calls operations of services on deeper levels
only, so the call graph is a DAG with at least three levels when there are three services.
Every call edge has a probability, which keeps traces of a large system a realistic size
(tens of spans) instead of touching every service. Names are generic word pairs from a
built-in list: nothing here comes from a real system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np

from tracehound.errors import BadInput
from tracehound.simulate.arrays import BoolArray, FloatArray, IntArray

_ADJECTIVES = (
    "amber", "basalt", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo",
    "juniper", "kestrel", "lumen", "meadow", "nickel", "onyx", "pebble", "quartz", "russet",
    "sable", "tundra", "umber", "violet", "willow", "yarrow", "zephyr", "cobalt",
)  # fmt: skip
_NOUNS = (
    "gateway", "ledger", "catalog", "router", "ingest", "scheduler", "billing", "profile",
    "search", "notify", "inventory", "session", "render", "auth", "pricing", "quota",
    "archive", "review", "cart", "media", "geo", "payment", "shipping", "audit",
)  # fmt: skip
_VERBS = ("GET", "POST", "PUT", "DELETE")
_RESOURCES = ("items", "status", "batch", "lookup", "summary", "events", "config", "records")
_POD_ALPHABET = np.array(list("bcdfghjklmnpqrstvwxz2456789"))

#: Expected number of calls an operation makes: edge probabilities are scaled towards it.
_BRANCHING = 1.6


@dataclass(frozen=True, eq=False)
class System:
    """A generated microservice system, as arrays indexed by service, operation, instance.

    Operations of a service, instances of a service and the call edges of an operation are
    contiguous, so "all instances of service s" is the slice
    `svc_inst_start[s] : svc_inst_start[s] + svc_inst_count[s]` and the edges of operation
    o are `op_edge_start[o] : op_edge_start[o + 1]`.
    """

    name: str
    seed: int
    services: tuple[str, ...]
    service_level: IntArray
    nodes: tuple[str, ...]
    operations: tuple[str, ...]
    op_service: IntArray
    #: median self-time of an operation, ms, and the lognormal spread around it
    op_median_ms: FloatArray
    op_sigma: FloatArray
    instances: tuple[str, ...]
    inst_service: IntArray
    inst_node: IntArray
    svc_inst_start: IntArray
    svc_inst_count: IntArray
    edge_src: IntArray
    edge_dst: IntArray
    edge_prob: FloatArray
    op_edge_start: IntArray
    entry_ops: IntArray
    entry_weight: FloatArray
    #: resting CPU (%) and memory (MiB) of each instance
    inst_cpu_base: FloatArray
    inst_mem_base: FloatArray

    @property
    def levels(self) -> int:
        """Number of service levels in the call graph."""
        return int(self.service_level.max()) + 1

    @property
    def is_entry_service(self) -> BoolArray:
        """True for frontend services (level 0)."""
        return np.asarray(self.service_level == 0, dtype=np.bool_)


def _level_count(services: int) -> int:
    """About log3(N) + 1 levels, between 3 and 8, never more than there are services."""
    wanted = round(math.log(max(services, 1)) / math.log(3)) + 1
    return max(1, min(services, max(3, min(8, wanted))))


def _level_widths(services: int, levels: int) -> IntArray:
    """Services per level: few frontends, then levels widening towards the leaves."""
    widths = np.ones(levels, dtype=np.int64)
    widths[0] = max(1, round(services * 0.05)) if levels > 1 else services
    spare = services - int(widths.sum())
    if levels > 1 and spare > 0:
        weights = 1.5 ** np.arange(1, levels, dtype=np.float64)
        share = np.floor(weights / weights.sum() * spare).astype(np.int64)
        share[-1] += spare - int(share.sum())
        widths[1:] += share
    return widths


def _service_names(count: int, rng: np.random.Generator) -> tuple[str, ...]:
    """Unique word-pair names; a numeric suffix once the pairs run out."""
    pairs = [f"{a}-{b}" for a, b in product(_ADJECTIVES, _NOUNS)]
    order = rng.permutation(len(pairs))
    names = []
    for i in range(count):
        base = pairs[int(order[i % len(pairs)])]
        names.append(base if i < len(pairs) else f"{base}-{i // len(pairs) + 1}")
    return tuple(names)


def _operation_names(
    services: tuple[str, ...], ops_per_service: IntArray, rng: np.random.Generator
) -> tuple[str, ...]:
    """Route-like names, unique within their service (e.g. ``GET /ledger/items``)."""
    routes = [f"{v} /{{noun}}/{r}" for v, r in product(_VERBS, _RESOURCES)]
    names: list[str] = []
    for name, count in zip(services, ops_per_service.tolist(), strict=True):
        noun = name.split("-")[1]
        picked = rng.choice(len(routes), size=count, replace=False)
        names.extend(routes[int(k)].format(noun=noun) for k in picked)
    return tuple(names)


def _instance_names(
    services: tuple[str, ...], inst_service: IntArray, rng: np.random.Generator
) -> tuple[str, ...]:
    """Pod-like names: the service, a replica-set hash and a pod suffix."""
    hashes = ["".join(rng.choice(_POD_ALPHABET, size=5)) for _ in services]
    return tuple(
        f"{services[s]}-{hashes[s]}-{''.join(rng.choice(_POD_ALPHABET, size=5))}"
        for s in inst_service.tolist()
    )


def _call_edges(
    op_level: IntArray,
    op_service: IntArray,
    levels: int,
    max_fanout: int,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray]:
    """Edges (caller op, callee op): fan-out to the next level, sometimes deeper.

    Afterwards every operation below level 0 gets a caller on the level above, so every
    service is reachable from a frontend.
    """
    by_level = [np.flatnonzero(op_level == lv) for lv in range(levels)]
    deeper = [np.flatnonzero(op_level > lv) for lv in range(levels)]
    src: list[int] = []
    dst: list[int] = []
    for op in range(len(op_level)):
        level = int(op_level[op])
        if level + 1 >= levels:
            continue
        fanout = int(rng.integers(1, max_fanout + 1))
        for _ in range(fanout):
            pool = by_level[level + 1] if rng.random() < 0.8 else deeper[level]
            callee = int(pool[rng.integers(len(pool))])
            if op_service[callee] != op_service[op]:
                src.append(op)
                dst.append(callee)
    called = np.zeros(len(op_level), dtype=bool)
    called[dst] = True
    for op in np.flatnonzero(~called & (op_level > 0)).tolist():
        above = by_level[int(op_level[op]) - 1]
        src.append(int(above[rng.integers(len(above))]))
        dst.append(op)
    pairs = np.unique(np.array([src, dst], dtype=np.int64).reshape(2, -1), axis=1)
    return pairs[0], pairs[1]


def generate_system(services: int, seed: int, *, max_fanout: int = 3) -> System:
    """A random system of `services` services, the same for the same seed.

    Each service gets 1-3 operations and 1-3 instances; instances are spread over
    max(2, N/8) nodes so that replicas of one service land on different nodes.
    """
    if services < 1:
        raise BadInput(f"cannot simulate {services} services", expected="at least 1 service")
    if max_fanout < 1:
        raise BadInput(f"max_fanout {max_fanout} is too small", expected="at least 1")
    rng = np.random.default_rng([seed, 0x70B0])
    levels = _level_count(services)
    service_level = np.repeat(np.arange(levels, dtype=np.int64), _level_widths(services, levels))
    names = _service_names(services, rng)

    ops_per_service = rng.integers(1, 4, size=services).astype(np.int64)
    op_service = np.repeat(np.arange(services, dtype=np.int64), ops_per_service)
    operations = _operation_names(names, ops_per_service, rng)
    op_median_ms = np.exp(rng.normal(math.log(4.0), 0.7, size=len(op_service)))
    op_sigma = rng.uniform(0.15, 0.45, size=len(op_service))

    inst_count = rng.integers(1, 4, size=services).astype(np.int64)
    inst_service = np.repeat(np.arange(services, dtype=np.int64), inst_count)
    inst_start = np.concatenate([[0], np.cumsum(inst_count)[:-1]]).astype(np.int64)
    node_count = max(2, round(services / 8))
    replica = np.arange(len(inst_service), dtype=np.int64) - inst_start[inst_service]
    offset = rng.integers(0, node_count, size=services)
    inst_node = (offset[inst_service] + replica) % node_count

    src, dst = _call_edges(service_level[op_service], op_service, levels, max_fanout, rng)
    out_degree = np.bincount(src, minlength=len(op_service)).astype(np.float64)
    scale = np.clip(_BRANCHING / np.maximum(out_degree[src], 1.0), 0.2, 1.0)
    edge_prob = scale * rng.uniform(0.75, 1.0, size=len(src))
    op_edge_start = np.concatenate([[0], np.cumsum(out_degree.astype(np.int64))]).astype(np.int64)

    entry_ops = np.flatnonzero(service_level[op_service] == 0).astype(np.int64)
    entry_weight = rng.dirichlet(np.full(len(entry_ops), 2.0))
    return System(
        name=f"sim-{seed}",
        seed=seed,
        services=names,
        service_level=service_level,
        nodes=tuple(f"node-{k:02d}" for k in range(node_count)),
        operations=operations,
        op_service=op_service,
        op_median_ms=op_median_ms,
        op_sigma=op_sigma,
        instances=_instance_names(names, inst_service, rng),
        inst_service=inst_service,
        inst_node=inst_node.astype(np.int64),
        svc_inst_start=inst_start,
        svc_inst_count=inst_count,
        edge_src=src,
        edge_dst=dst,
        edge_prob=edge_prob,
        op_edge_start=op_edge_start,
        entry_ops=entry_ops,
        entry_weight=entry_weight,
        inst_cpu_base=rng.uniform(8.0, 30.0, size=len(inst_service)),
        inst_mem_base=rng.uniform(256.0, 2048.0, size=len(inst_service)),
    )


def expected_visits(system: System) -> FloatArray:
    """Expected executions of each operation per request, one row per entry operation.

    Edges only go to deeper levels, so one pass in caller-level order is exact.
    """
    visits = np.zeros((len(system.entry_ops), len(system.op_service)), dtype=np.float64)
    visits[np.arange(len(system.entry_ops)), system.entry_ops] = 1.0
    edge_level = system.service_level[system.op_service[system.edge_src]]
    for level in range(system.levels):
        edges = np.flatnonzero(edge_level == level)
        contribution = visits[:, system.edge_src[edges]] * system.edge_prob[edges]
        np.add.at(visits.T, system.edge_dst[edges], contribution.T)
    return visits


def expected_spans_per_request(system: System) -> float:
    """Mean spans of one request: a server span per execution, a client span per call."""
    per_entry = 2.0 * expected_visits(system).sum(axis=1) - 1.0
    return float(per_entry @ system.entry_weight)
