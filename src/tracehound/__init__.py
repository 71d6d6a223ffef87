"""tracehound: find the root cause of an incident from traces, logs and metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tracehound")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
