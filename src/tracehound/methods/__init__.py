"""Root-cause localization methods: the contract, the registry and the built-ins."""

from tracehound.methods.base import MODALITIES, Method, Tags
from tracehound.methods.registry import available_methods, get_method

__all__ = ["MODALITIES", "Method", "Tags", "available_methods", "get_method"]
