"""`random`: the uniform baseline every paper reports ("Dummy" in RCAEval, "Random" in
Who&When). It ranks every service and instance seen in the telemetry in a random order.

The order is drawn from a generator seeded by `seed` and the incident id, so the method is
deterministic: the same seed and incident give the same ranking, whatever else runs.
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
        return Ranking(
            services=_shuffled("service", services, rng),
            instances=_shuffled("instance", instances, rng),
        )


def _shuffled(kind: str, names: list[str], rng: np.random.Generator) -> list[Candidate]:
    order = rng.permutation(len(names))
    n = len(names)
    return [
        Candidate(kind=kind, name=names[i], score=float(n - rank), reason="random order")  # type: ignore[arg-type]
        for rank, i in enumerate(order)
    ]
