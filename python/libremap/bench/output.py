"""The JSON file (issue 6's contract) and its schema (``schema.json``, next to
this file, for other tools: ``libremap.bench.output.schema()``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("schema.json")


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _clean(v: Any) -> Any:
    """NaN/inf are not JSON: write null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write(result: dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(_clean(result), f, indent=1, sort_keys=False)
        f.write("\n")


def validate(result: dict[str, Any]) -> None:
    """Raises jsonschema.ValidationError if ``result`` breaks the contract."""
    import jsonschema

    jsonschema.validate(_clean(result), schema())
