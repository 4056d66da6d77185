"""The seed papers' published result rows (``radclr/data/resources/published_results.yaml``).

Used by ``radclr table --published`` to print a user's runs beside the numbers the papers report. The file
holds the papers' numbers on the papers' data; they are always labelled "published" and never mixed into a
run's own results.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from radclr.errors import RadclrError

__all__ = ["PUBLISHED_PATH", "published_rows"]

PUBLISHED_PATH = Path(__file__).resolve().parents[1] / "data" / "resources" / "published_results.yaml"


@lru_cache(maxsize=1)
def _load(path: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:  # pragma: no cover - a broken installation
        raise RadclrError(f"{path}: cannot read the published results ({e})") from None
    return data or {}


def published_rows(layout: str, path: str | Path = PUBLISHED_PATH) -> tuple[list[dict], str, str | None]:
    """``(rows, source, note)`` of a layout: each row ``{"model", "values": {column: x}, ...}``."""
    data = _load(str(path))
    if layout not in data:
        raise RadclrError(f"no published rows for layout {layout!r} (have: {sorted(data)})")
    entry = data[layout]
    return list(entry.get("rows") or []), str(entry.get("source", "")), entry.get("note")
