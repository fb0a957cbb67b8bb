"""The REST OpenAPI document the API must match, kept in the repository at `docs/spec/`."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "spec" / "evi-rest-openapi.json"


@functools.cache
def load_spec() -> dict[str, Any]:
    """The parsed document (read once per process; callers must not mutate it)."""
    return json.loads(SPEC_PATH.read_text())  # type: ignore[no-any-return]
