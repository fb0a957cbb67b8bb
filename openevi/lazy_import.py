"""Import a provider ("package.module:attr") only when it is asked for.

Both provider registries (speech/registry.py, llm/registry.py) use it, so heavy engines load only
when configured, and a missing optional dependency is told apart from a packaging bug.
"""

from __future__ import annotations

import importlib
from typing import Any


class MissingDependency(Exception):
    """A third-party module the provider needs is not installed (`name` says which)."""

    def __init__(self, name: str | None) -> None:
        super().__init__(f"{name!r} is not installed")
        self.name = name


def import_target(target: str) -> Any:
    """The attribute `target` ("package.module:attr") names, importing its module now."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Our own module missing is a packaging bug, not a missing optional dependency.
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise
        raise MissingDependency(exc.name) from exc
    return getattr(module, attr)
