"""The shop's service graph: which service serves which endpoint, and what each endpoint calls.

The demo system is one generic service process (`service.py`) run once per service; its
behaviour comes entirely from the tables here. Eight services, four levels of calls:

```
load ─► frontend GET /home ─┬─► catalog GET /products ─┬─► inventory GET /stock
                            │                          └─► pricing GET /price
                            └─► cart GET /cart ──────────► pricing GET /price
         POST /buy ─────────► checkout POST /checkout ─┬─► cart GET /cart ─► pricing
                                                       ├─► payment POST /charge
                                                       └─► shipping GET /quote ─► inventory
```

Every endpoint answers a JSON object holding one numeric `field` (a price, a stock level,
...); callers check it is present and not negative, which is how a wrong return value is
caught upstream. Ports are not part of the topology: `system.py` picks free ones at start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """One outgoing HTTP call an endpoint makes, in order."""

    service: str
    method: str
    path: str


@dataclass(frozen=True)
class Endpoint:
    """One HTTP endpoint: its own work and the calls it makes."""

    method: str
    path: str
    #: the numeric field of the answer that callers validate (not negative)
    field: str
    #: waiting on its own storage (an asyncio sleep), in ms
    io_ms: float
    #: pure-Python work per request (rounds of hashing), so that CPU contention shows
    cpu_rounds: int
    calls: tuple[Call, ...] = ()
    #: what the handler logs when it starts and when it finishes (info lines)
    start_line: str = "handling request"
    done_line: str = "request done"


@dataclass(frozen=True)
class Service:
    """One service: a process with its endpoints."""

    name: str
    endpoints: tuple[Endpoint, ...]
    #: services the load generator calls directly (not behind the delay proxy)
    entry: bool = False

    def endpoint(self, method: str, path: str) -> Endpoint:
        for ep in self.endpoints:
            if (ep.method, ep.path) == (method, path):
                return ep
        raise KeyError(f"{self.name} has no endpoint {method} {path}")


SERVICES: tuple[Service, ...] = (
    Service(
        "frontend",
        (
            Endpoint(
                "GET",
                "/home",
                "items",
                io_ms=2.0,
                cpu_rounds=300,
                calls=(Call("catalog", "GET", "/products"), Call("cart", "GET", "/cart")),
                start_line="rendering home page",
                done_line="home page rendered",
            ),
            Endpoint(
                "POST",
                "/buy",
                "order_total",
                io_ms=2.0,
                cpu_rounds=300,
                calls=(Call("checkout", "POST", "/checkout"),),
                start_line="placing order",
                done_line="order placed",
            ),
        ),
        entry=True,
    ),
    Service(
        "checkout",
        (
            Endpoint(
                "POST",
                "/checkout",
                "order_total",
                io_ms=4.0,
                cpu_rounds=300,
                calls=(
                    Call("cart", "GET", "/cart"),
                    Call("payment", "POST", "/charge"),
                    Call("shipping", "GET", "/quote"),
                ),
                start_line="checkout started",
                done_line="checkout completed",
            ),
        ),
    ),
    Service(
        "catalog",
        (
            Endpoint(
                "GET",
                "/products",
                "items",
                io_ms=5.0,
                cpu_rounds=400,
                calls=(Call("inventory", "GET", "/stock"), Call("pricing", "GET", "/price")),
                start_line="listing products",
                done_line="products listed",
            ),
        ),
    ),
    Service(
        "cart",
        (
            Endpoint(
                "GET",
                "/cart",
                "cart_total",
                io_ms=4.0,
                cpu_rounds=300,
                calls=(Call("pricing", "GET", "/price"),),
                start_line="loading cart",
                done_line="cart loaded",
            ),
        ),
    ),
    Service(
        "payment",
        (
            Endpoint(
                "POST",
                "/charge",
                "amount",
                io_ms=8.0,
                cpu_rounds=500,
                start_line="authorising payment",
                done_line="payment authorised",
            ),
        ),
    ),
    Service(
        "shipping",
        (
            Endpoint(
                "GET",
                "/quote",
                "cost",
                io_ms=4.0,
                cpu_rounds=300,
                calls=(Call("inventory", "GET", "/stock"),),
                start_line="quoting shipment",
                done_line="shipment quoted",
            ),
        ),
    ),
    Service(
        "inventory",
        (
            Endpoint(
                "GET",
                "/stock",
                "stock",
                io_ms=5.0,
                cpu_rounds=300,
                start_line="reading stock level",
                done_line="stock level read",
            ),
        ),
    ),
    Service(
        "pricing",
        (
            Endpoint(
                "GET",
                "/price",
                "price",
                io_ms=3.0,
                cpu_rounds=300,
                start_line="computing price",
                done_line="price computed",
            ),
        ),
    ),
)

#: Requests of the load generator: (method, path) on the entry service, with weights.
LOAD_MIX: tuple[tuple[str, str, float], ...] = (("GET", "/home", 0.6), ("POST", "/buy", 0.4))


def service(name: str) -> Service:
    """The service called `name`; `KeyError` naming the known ones otherwise."""
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise KeyError(f"no service {name!r}; the shop has {', '.join(service_names())}")


def service_names() -> tuple[str, ...]:
    return tuple(s.name for s in SERVICES)


def entry_service() -> Service:
    return next(s for s in SERVICES if s.entry)


def internal_services() -> tuple[str, ...]:
    """Services only other services call: they sit behind the delay proxy."""
    return tuple(s.name for s in SERVICES if not s.entry)


def callers_of(name: str) -> tuple[str, ...]:
    """Services with an endpoint that calls `name`."""
    return tuple(
        s.name for s in SERVICES if any(c.service == name for e in s.endpoints for c in e.calls)
    )


def depth() -> int:
    """Levels of the call graph below the load generator (the entry service is level 1)."""

    def below(name: str, seen: frozenset[str]) -> int:
        calls = {c.service for e in service(name).endpoints for c in e.calls} - seen
        return 1 + max((below(c, seen | {c}) for c in calls), default=0)

    entry = entry_service().name
    return below(entry, frozenset({entry}))


def instance_id(name: str, index: int = 0) -> str:
    """The `service.instance.id` of a service's process: stable across restarts."""
    return f"{name}-{index}"
