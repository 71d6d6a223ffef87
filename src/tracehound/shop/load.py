"""The shop's load generator: `python -m tracehound.shop.load --url URL --rate N`.

Open-loop traffic, as users make it: requests arrive at `rate` per second with
exponential gaps (a Poisson process), whatever the answers' speed, mixed over the entry
endpoints by `topology.LOAD_MIX`. At most `max_in_flight` requests wait at once, so a
stalled system does not pile up unbounded work. The generator is not instrumented:
the entry service's server spans are the traces' roots. Every `report_s` seconds it
prints one line of counts to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
from collections import Counter

import httpx

from tracehound.shop.topology import LOAD_MIX

#: A user gives up on a request after this long.
REQUEST_TIMEOUT_S = 10.0


async def generate(
    url: str,
    rate: float,
    *,
    seed: int = 0,
    duration_s: float | None = None,
    max_in_flight: int = 200,
    report_s: float = 10.0,
    stop: asyncio.Event | None = None,
) -> Counter[str]:
    """Send requests until `duration_s` passed or `stop` is set; counts of outcomes."""
    rng = random.Random(seed)
    stop = stop or asyncio.Event()
    counts: Counter[str] = Counter()
    slots = asyncio.Semaphore(max_in_flight)
    paths = [(method, path) for method, path, _ in LOAD_MIX]
    weights = [weight for _, _, weight in LOAD_MIX]
    started = time.monotonic()
    next_report = started + report_s
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def one(method: str, path: str, item: int) -> None:
            try:
                response = await client.request(method, path, params={"item": item})
                counts[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                counts[type(exc).__name__] += 1
            finally:
                slots.release()

        while not stop.is_set():
            now = time.monotonic()
            if duration_s is not None and now - started >= duration_s:
                break
            if now >= next_report:
                print(f"load: {dict(sorted(counts.items()))}", file=sys.stderr, flush=True)
                next_report = now + report_s
            gap = rng.expovariate(rate)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), gap)
            if stop.is_set() or slots.locked():
                if slots.locked():
                    counts["skipped"] += 1
                continue
            await slots.acquire()
            method, path = rng.choices(paths, weights)[0]
            task = asyncio.create_task(one(method, path, rng.randrange(1, 500)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Open-loop load on the shop's entry service.")
    parser.add_argument("--url", required=True, help="base URL of the entry service")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: ever)")
    args = parser.parse_args(argv)

    async def run() -> Counter[str]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await generate(
            args.url, args.rate, seed=args.seed, duration_s=args.duration, stop=stop
        )

    counts = asyncio.run(run())
    print(f"load: done {dict(sorted(counts.items()))}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
