"""One configuration, several training seeds: ``radclr train CONFIG --out OUT --seeds 0,1,2``.

Each seed is a complete run in ``OUT/seed<k>/`` (the config's ``seed`` key set to ``k``: initialisation, sample
order and augmentation change; the data and its patient-wise split do not). ``OUT/seeds_summary.json`` and
``seeds_summary.csv`` then hold, for every headline number of the runs' primary evaluations, the mean, standard
deviation and 95 % Student-t interval over seeds (:func:`radclr.evaluation.seed_level.seed_interval`) next to each
seed's own value and 95 % patient-bootstrap interval: the bootstrap interval says how much the number would move
with other test patients, the seed-level interval how much the mean moves with other training runs. Re-running the
command keeps finished seeds and resumes an interrupted one.

:func:`compare_seed_dirs` pairs two such directories (two methods, the same seeds) metric by metric:
per-seed differences, their mean, t interval and sign count (:func:`radclr.evaluation.seed_level.paired_seed_diff`).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pandas as pd

from radclr.engine.config import resolve_config
from radclr.errors import ConfigError, RadclrError
from radclr.evaluation.seed_level import paired_seed_diff, seed_interval
from radclr.runs.train import train

__all__ = ["train_seeds", "summarise_seeds", "SUMMARY_FILE", "seed_runs", "seed_metrics", "compare_seed_dirs"]

SUMMARY_FILE = "seeds_summary.json"
CLASSIFICATION_METRICS = ("auc", "accuracy", "f1", "sensitivity", "specificity")


def train_seeds(config, out, seeds, overrides=(), *, progress=None) -> Path:
    """Train ``config`` once per seed into ``out/seed<k>`` and write the summary (module docstring)."""
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds needs at least two different seeds, got {seeds}")
    out = Path(out)
    if (out / "config.yaml").exists():
        raise RadclrError(f"{out} holds a single run; choose another --out for several seeds")
    cfg = resolve_config(config, overrides)
    out.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        run = out / f"seed{s}"
        if (run / "metrics.json").exists():  # finished: kept
            continue
        if (run / "checkpoints" / "last.pt").exists():
            train(None, run, resume=True, progress=progress)
        else:
            scfg = copy.deepcopy(cfg)
            scfg["seed"] = s
            train(scfg, run, progress=progress)
    summarise_seeds(out)
    return out


def seed_runs(out) -> list[Path]:
    """The run directories of a multi-seed directory (``seed<k>`` with a ``metrics.json``), by seed."""
    runs = [p for p in Path(out).glob("seed*") if p.is_dir() and (p / "metrics.json").exists()
            and p.name[4:].lstrip("-").isdigit()]
    return sorted(runs, key=lambda p: int(p.name[4:]))


def seed_metrics(out) -> dict[str, dict[int, tuple]]:
    """``{metric key: {seed: (value, [ci_low, ci_high] or None)}}`` from the seed runs' primary evaluations."""
    out = Path(out)
    runs = seed_runs(out)
    if not runs:
        raise RadclrError(f"{out}: no finished seed runs (seed<k>/metrics.json)")
    rows: dict[str, dict] = {}
    for p in runs:
        m = json.loads((p / "metrics.json").read_text())
        for key, value, ci in _headline(m):
            rows.setdefault(key, {})[int(p.name[4:])] = (value, ci)
    return rows


def summarise_seeds(out) -> dict:
    """Write ``OUT/seeds_summary.json`` (+ ``.csv``) from the seed runs' ``metrics.json`` and return it."""
    out = Path(out)
    runs = seed_runs(out)
    rows = seed_metrics(out)
    table = []
    for key, per_seed in rows.items():
        si = seed_interval([v for v, _ in per_seed.values()])
        entry = {"metric": key, "mean": _none(si.mean), "sd": _none(si.sd), "t_ci": [_none(si.low), _none(si.high)],
                 "n_seeds": si.n}
        for seed, (v, ci) in sorted(per_seed.items()):
            entry[f"seed{seed}"] = v
            entry[f"seed{seed}_ci"] = ci
        table.append(entry)
    seeds = sorted(int(p.name[4:]) for p in runs)
    summary = {"seeds": seeds, "runs": [p.name for p in runs], "metrics": table,
               "note": "mean, sd (ddof=1) and t_ci (95 % Student-t interval of the mean, t_{0.975,n-1} s/sqrt(n)) "
                       "over training seeds; seed<k>_ci is that run's 95 % patient-bootstrap interval"}
    if len(seeds) < 5:
        summary["warning"] = f"{len(seeds)} seeds: a seed-level interval needs >= 5 to be informative"
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    flat = pd.DataFrame([{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in e.items()} for e in table])
    flat.to_csv(out / "seeds_summary.csv", index=False)
    return summary


def compare_seed_dirs(out_a, out_b, names: tuple[str, str] = ("A", "B"), ci: float = 0.95) -> dict:
    """Seed-level paired comparison of two multi-seed directories (``radclr train --seeds`` outputs of two
    methods with the same seeds): for every headline metric both hold, :func:`paired_seed_diff` of A - B over
    the seeds both finished. Returns ``{"names", "seeds", "metrics": {key: paired result dict}}``."""
    ma, mb = seed_metrics(out_a), seed_metrics(out_b)
    seeds = sorted(set.intersection(*(set(v) for v in (*ma.values(), *mb.values()))))
    if len(seeds) < 2:
        raise RadclrError(f"{out_a} and {out_b} share {len(seeds)} finished seed(s); a paired comparison needs >= 2")
    metrics = {}
    for key in ma:
        if key in mb:
            metrics[key] = paired_seed_diff({s: ma[key][s][0] for s in seeds}, {s: mb[key][s][0] for s in seeds},
                                            ci=ci, names=names).to_dict()
    return {"names": list(names), "seeds": seeds, "metrics": metrics}


def _none(x):
    return None if x is None or not math.isfinite(x) else float(x)


def _headline(m: dict):
    """``(metric key, value, [ci_low, ci_high])`` of a run's primary evaluation."""
    cls = m.get("classification") or {}
    for metric in CLASSIFICATION_METRICS:
        values, cis = cls.get(metric) or {}, (cls.get("ci") or {}).get(metric) or {}
        for f, v in values.items():
            yield f"{metric}/{f}", _num(v), cis.get(f)
    loc = m.get("localization") or {}
    acc, ci = loc.get("iou_accuracy") or {}, loc.get("iou_accuracy_ci") or {}
    for t, per in acc.items():
        for f, v in per.items():
            c = (ci.get(t) or {}).get(f) or {}
            yield f"iou_accuracy@{t}/{f}", _num(v), [c.get("ci_low"), c.get("ci_high")] if c else None


def _num(v):
    return None if v is None else float(v)
