"""Time the simulator at scale: one incident of a large system, all three tables in memory.

    python benchmarks/simulate_scale.py --services 1000 --spans 1000000

Prints spans, metric rows, log rows, wall-clock seconds (system + incident) and the peak
resident set size of the process. ARCHITECTURE §7 asks for 1,000 services and 1,000,000
spans in under a minute.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from tracehound.simulate import expected_spans_per_request, generate_incident, generate_system


def main(argv: list[str] | None = None) -> int:
    """Run one timed simulation and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault", default="error")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    system = generate_system(args.services, args.seed)
    system_s = time.perf_counter() - began
    data = generate_incident(
        system, index=1, seed=args.seed, fault_type=args.fault, target_spans=args.spans
    )
    total_s = time.perf_counter() - began
    assert data.spans is not None and data.metrics is not None and data.logs is not None
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"services        {args.services}")
    print(f"operations      {len(system.operations)}")
    print(f"instances       {len(system.instances)}")
    print(f"levels          {system.levels}")
    print(f"spans/request   {expected_spans_per_request(system):.1f}")
    print(f"spans           {data.spans.num_rows}")
    print(f"metric rows     {data.metrics.num_rows}")
    print(f"log rows        {data.logs.num_rows}")
    print(f"system seconds  {system_s:.2f}")
    print(f"total seconds   {total_s:.2f}")
    print(f"peak RSS MiB    {peak_mib:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
