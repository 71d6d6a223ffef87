"""`random`: the uniform baseline every paper reports ("Dummy" in RCAEval, "Random" in
Who&When). It ranks every service, instance and span seen in the telemetry in a random
order.

On an agent run (Who&When, Zhang et al., ICML 2025) the services are the agents and the
spans the steps, so the top agent is uniform over the run's distinct agents and the top
step uniform over its steps: the expected agent- and step-level accuracies are the means
of 1/(number of agents) and 1/(number of steps), which is how the paper's Random row is
computed. The three permutations are drawn from one generator seeded by `seed` and the
incident id, services first, then instances, then spans, so the method is deterministic:
the same seed and incident give the same ranking, whatever else runs.
"""

from __future__ import annotations

import hashlib

import numpy as np

from tracehound.methods.base import Method, Tags
from tracehound.methods.candidates import candidate_names
from tracehound.model import Candidate, Incident, Ranking
from tracehound.store import TelemetryStore


class RandomMethod(Method):
    """Uniformly random ranking of the services and instances in the telemetry."""

    name = "random"
    tags = Tags(modalities=frozenset(), deterministic=True)

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def localize(self, incident: Incident, store: TelemetryStore) -> Ranking:
        self.check_inputs(incident, store)
        digest = hashlib.sha256(f"{self.seed}:{incident.id}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        services, instances = candidate_names(store)
        spans = store.query(
            "SELECT DISTINCT span_id FROM spans WHERE span_id IS NOT NULL ORDER BY span_id"
        )
        return Ranking(
            services=_shuffled("service", services, rng),
            instances=_shuffled("instance", instances, rng),
            spans=_shuffled("span", spans.column(0).to_pylist(), rng),
        )


def _shuffled(kind: str, names: list[str], rng: np.random.Generator) -> list[Candidate]:
    order = rng.permutation(len(names))
    n = len(names)
    return [
        Candidate(kind=kind, name=names[i], score=float(n - rank), reason="random order")  # type: ignore[arg-type]
        for rank, i in enumerate(order)
    ]
