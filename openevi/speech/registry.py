"""The shared shape of the speech provider registries: name → "module:Class", imported on demand.

Heavy engines load only when configured; a missing optional dependency fails with the install line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openevi.lazy_import import MissingDependency, import_target


@dataclass(frozen=True)
class Provider:
    """Where a provider lives and what to install when its dependencies are missing."""

    target: str  # "package.module:Class"
    install: str


def build(kind: str, name: str, providers: Mapping[str, Provider], error: type[Exception], **options: Any) -> Any:
    """Import the provider registered as `name` and construct it with `options` as keywords."""
    provider = providers.get(name)
    if provider is None:
        raise error(f"Unknown {kind} provider {name!r}; known: {', '.join(sorted(providers))}")
    try:
        factory = import_target(provider.target)
    except MissingDependency as exc:
        what = f"{kind[:1].upper()}{kind[1:]} provider {name!r}"
        raise error(f"{what} needs {exc.name!r}, which is not installed: {provider.install}") from exc.__cause__
    return factory(**options)
