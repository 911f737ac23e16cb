"""What every bench script shares: printing its result as JSON or as an aligned table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def print_result(result: Mapping[str, Any], as_json: bool, *, width: int = 32, indent: int | None = None,
                 value_format: str = "") -> int:
    """Print ``result`` as one JSON document (``--json``) or one ``key value`` line per entry; exit status 0."""
    if as_json:
        print(json.dumps(result, indent=indent))
    else:
        for k, v in result.items():
            print(f"{k:{width}s} {v:{value_format}}")
    return 0
