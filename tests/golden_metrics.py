"""Golden metrics of the tiny configs: refactors must leave what every tiny config computes unchanged.

``fingerprint(RUN)`` is every number a run reports (``metrics.csv`` rows and ``metrics.json``, flattened) except
wall-clock times and paths. ``tests/golden/tiny_metrics.json`` holds the fingerprints recorded before a refactor;
``test_engine_train`` compares each tiny run with it. A deliberate change of what a tiny config computes (a new
default, a fixed bug) re-records the file with ``RADCLR_UPDATE_GOLDEN=1 make test`` and says why in its commit.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

GOLDEN = Path(__file__).resolve().parent / "golden" / "tiny_metrics.json"
_SKIP = {"run", "results_dir", "figure", "train_time_s", "time_s"}


def _flat(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k not in _SKIP:
                out.update(_flat(v, f"{prefix}{k}."))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flat(v, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: obj}


def fingerprint(run: Path) -> dict:
    m = pd.read_csv(Path(run) / "metrics.csv")
    m = m.drop(columns=[c for c in m.columns if c in _SKIP])
    return {"metrics_csv": _flat(json.loads(m.to_json(orient="records"))),
            "metrics_json": _flat(json.loads((Path(run) / "metrics.json").read_text()))}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        # CSV floats are written to 10 significant digits; the rest are exact on one machine
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def check_against_golden(name: str, run: Path) -> list[str]:
    """Differences between run ``name``'s fingerprint and the recorded one (empty: identical). With
    ``RADCLR_UPDATE_GOLDEN=1`` the run's fingerprint is recorded instead, and what changed is printed key by key
    (``pytest -s`` shows it; the warnings summary gives the count and the first lines), so a re-recording commit
    can say what moved."""
    fp = json.loads(json.dumps(fingerprint(run)))
    if os.environ.get("RADCLR_UPDATE_GOLDEN") == "1":
        recorded = json.loads(GOLDEN.read_text()).get(name) if GOLDEN.exists() else None
        diffs = diff_fingerprints(name, recorded, fp)
        report = f"golden {name}: re-recorded, {len(diffs)} key(s) changed" + "".join(f"\n  {d}" for d in diffs)
        print(report, file=sys.stderr)
        if diffs:
            warnings.warn("\n".join(report.splitlines()[:40]), stacklevel=2)
        GOLDEN.parent.mkdir(exist_ok=True)
        # one file per config while xdist workers write concurrently; merged on the next read
        (GOLDEN.parent / f"tiny_metrics.{name}.json").write_text(json.dumps(fp, indent=0, sort_keys=True))
        return []
    return diff_fingerprints(name, load_golden().get(name), fp)


def diff_fingerprints(name: str, recorded: dict | None, fp: dict) -> list[str]:
    """One line per key whose value differs (or exists on one side only) between a recorded fingerprint and
    ``fp``."""
    if recorded is None:
        return [f"{name}: no golden fingerprint recorded"]
    diffs = []
    for part in ("metrics_csv", "metrics_json"):
        want, got = recorded[part], fp[part]
        for key in sorted(set(want) | set(got)):
            if key not in got or key not in want or not _same(want[key], got[key]):
                diffs.append(f"{name} {part} {key}: golden {want.get(key, '<missing>')!r}, now {got.get(key, '<missing>')!r}")
    return diffs


def load_golden() -> dict:
    parts = sorted(GOLDEN.parent.glob("tiny_metrics.*.json"))
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if parts:  # fold freshly recorded per-config files into the one file
        for p in parts:
            golden[p.name[len("tiny_metrics."):-len(".json")]] = json.loads(p.read_text())
            p.unlink()
        GOLDEN.write_text(json.dumps(golden, indent=0, sort_keys=True))
    return golden
