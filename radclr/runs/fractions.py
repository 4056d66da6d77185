"""Label efficiency from one command: pretrain once, then the labelled stages at several label fractions.

``radclr train CONFIG --out RUN --label-fractions 0.01,0.05,0.1,0.2,0.5,1`` runs the configuration's leading
label-free stages (e.g. contrastive pretraining) once into ``RUN``, then, for each fraction F, the remaining
stages into ``RUN/fractions/F`` with the same patient split, ``data.label_fraction=F`` (nested labelled
subsets, whole patients) and the parts initialised from the pretraining run. ``RUN/fractions/summary.csv``
collects the test metrics (seed 004 Fig. 2; seed 003's 1/10/100 %).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd

from radclr.engine.config import resolve_config
from radclr.errors import ConfigError, RadclrError
from radclr.methods import method_class
from radclr.runs.evaluate import linear_eval_fractions
from radclr.runs.train import train


def split_stages(cfg: dict) -> tuple[list[dict], list[dict]]:
    stages = cfg["stages"]
    k = 0
    while k < len(stages) and not method_class(stages[k]["method"]).uses_labels:
        k += 1
    return stages[:k], stages[k:]


def train_label_fractions(config, out, fractions, overrides=(), *, progress=None) -> Path:
    """Pretrain once, then the labelled stages (or linear evaluation) at each label fraction (module docstring)."""
    out = Path(out)
    cfg = resolve_config(config, overrides)
    if not fractions or any(not (0 < f <= 1) for f in fractions):
        raise ConfigError(f"--label-fractions must be in (0, 1], got {fractions}")
    if len({f"{f:g}" for f in fractions}) != len(fractions):  # one run folder per fraction (fractions/<f:g>)
        raise ConfigError(f"--label-fractions lists a fraction more than once: {fractions}")
    pre, post = split_stages(cfg)
    linear = bool(cfg["evaluation"]["linear_eval"])
    if not post and not linear:
        raise ConfigError("label fractions need labelled stages after pretraining, or evaluation.linear_eval: true")
    init = None
    if pre:
        pre_cfg = copy.deepcopy(cfg)
        pre_cfg["stages"] = pre
        if (out / "checkpoints" / "last.pt").exists():
            raise RadclrError(f"{out} already holds a run; choose another --out")
        train(pre_cfg, out, progress=progress, evaluate=False)
        init = str(out / "checkpoints" / "last.pt")
    if not post:  # seed 003: linear evaluation of the frozen pretrained encoder at each label fraction
        summary = pd.DataFrame(linear_eval_fractions(out, fractions, progress=progress))
        (out / "fractions").mkdir(exist_ok=True)
        summary.to_csv(out / "fractions" / "summary.csv", index=False)
        return out
    rows = []
    for f in fractions:
        sub = out / "fractions" / f"{f:g}"
        fcfg = copy.deepcopy(cfg)
        fcfg["stages"] = post
        fcfg["data"]["label_fraction"] = float(f)
        if pre:
            fcfg["data"]["split"]["file"] = str(out / "splits.csv")
            fcfg["model"]["init_from"] = init
        train(fcfg, sub, progress=progress, evaluate=True)
        metrics = json.loads((sub / "metrics.json").read_text())
        rows.append(_summary_row(f, metrics))
    summary = pd.DataFrame(rows)
    summary.to_csv(out / "fractions" / "summary.csv", index=False)
    return out


def _summary_row(fraction: float, metrics: dict) -> dict:
    row = {"label_fraction": fraction}
    cls = metrics.get("classification", {})
    if cls.get("task") == "multiclass":  # arg-max metrics of the classes (seed 004 Fig. 2: weighted F1)
        for metric in ("accuracy", "f1_weighted", "f1_macro", "auc"):
            value = cls.get(metric)
            ci = (cls.get("ci") or {}).get(metric)
            if isinstance(value, dict):  # auc: per class + mean
                value, ci = value.get("mean"), (ci or {}).get("mean")
            row[metric] = value
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = ci or [None, None]
        return row
    for metric in ("auc", "accuracy", "f1", "sensitivity", "specificity"):
        row[metric] = (cls.get(metric) or {}).get("mean")
        lo, hi = ((cls.get("ci") or {}).get(metric) or {}).get("mean") or [None, None]
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = lo, hi
    return row
