"""Methods register under the entry-point group `tracehound.methods`.

Built-in methods use the same mechanism as a third-party plugin: a package declares

    [project.entry-points."tracehound.methods"]
    mymethod = "mypackage.module:MyMethod"

and `tracehound methods list` shows it.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from tracehound.errors import BadInput, TracehoundError
from tracehound.methods.base import Method

GROUP = "tracehound.methods"


def available_methods() -> dict[str, type[Method]]:
    """Every registered method class by name, sorted by name."""
    found: dict[str, type[Method]] = {}
    for entry in entry_points(group=GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken plugin must not hide the others
            raise TracehoundError(
                f"the method plugin {entry.name!r} ({entry.value}) failed to import: {exc}"
            ) from exc
        if not (isinstance(loaded, type) and issubclass(loaded, Method)):
            raise TracehoundError(
                f"the method plugin {entry.name!r} ({entry.value}) is not a Method subclass"
            )
        found[entry.name] = loaded
    return dict(sorted(found.items()))


def get_method(name: str, **params: Any) -> Method:
    """A new instance of the method registered as `name`."""
    methods = available_methods()
    if name not in methods:
        raise BadInput(
            f"unknown method {name!r}",
            column="--method",
            expected=f"one of {', '.join(methods) or '(none registered)'}",
            hint="`tracehound methods list` shows them.",
        )
    return methods[name]().set_params(**params)
