"""Open a finished (or interrupted) run directory: config, split, checkpoint -> a ready method.

Used by ``evaluate``, ``predict``, ``report`` and ``table``: they all read runs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from radclr.engine import checkpoint as ckpt
from radclr.engine.config import STAGE_TRAINER_KEYS, resolve_config, stage_settings
from radclr.errors import RadclrError
from radclr.methods import Method, MethodContext, method_class
from radclr.training_data.volumes import input_channels


@dataclass
class LoadedRun:
    run_dir: Path
    cfg: dict
    method: Method  # the method of the checkpoint's stage, weights loaded, eval mode
    state: dict  # the raw checkpoint (history, best, ...)
    checkpoint: Path

    @property
    def findings(self) -> list[str]:
        return list(self.state["findings"])

    @property
    def task(self) -> str:
        """``data.task``: ``multilabel`` (sigmoid per finding) or ``multiclass`` (softmax; findings = classes)."""
        return str(self.cfg["data"].get("task", "multilabel"))

    @property
    def radiomics_names(self) -> list[str]:
        return list(self.state.get("radiomics_names", []))

    @property
    def image_size(self) -> int:
        return int(self.state.get("store_size", self.cfg["data"]["image_size"]))

    def metrics(self) -> pd.DataFrame:
        p = self.run_dir / "metrics.csv"
        return pd.read_csv(p) if p.exists() else pd.DataFrame(self.state.get("history", []))

    def split(self) -> pd.DataFrame:
        return pd.read_csv(self.run_dir / "splits.csv", dtype={"image_id": str, "patient_id": str})


def checkpoint_path(run_dir: Path, which: str = "best") -> Path:
    run_dir = Path(run_dir)
    if which in ("best", "last"):
        p = run_dir / "checkpoints" / f"{which}.pt"
        if which == "best" and not p.exists():
            p = run_dir / "checkpoints" / "last.pt"
    else:
        p = Path(which)
        if not p.is_absolute() and not p.exists():
            p = run_dir / "checkpoints" / which
    if not p.exists():
        raise RadclrError(f"{run_dir}: no checkpoint {which!r} (looked for {p}); has this run trained?")
    return p


def load_run(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the run's parts stage by stage (as training did) and load the checkpoint ``which``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise RadclrError(f"{run_dir} is not a radclr run directory (no config.yaml)")
    cfg = resolve_config(run_dir / "config.yaml")
    path = checkpoint_path(run_dir, which)
    state = ckpt.load_checkpoint(path)
    ctx = MethodContext(findings=list(state["findings"]), radiomics_names=list(state.get("radiomics_names", [])),
                        model_cfg=cfg["model"], image_size=int(state.get("store_size", cfg["data"]["image_size"])),
                        seed=int(cfg["seed"]), dataset_size=int(state.get("dataset_size", 0)),
                        extra={"radiomics_cfg": cfg["radiomics"]}, in_channels=input_channels(cfg),
                        task=cfg["data"].get("task", "multilabel"))
    parts = nn.ModuleDict()
    method = None
    for i in range(int(state["stage"]) + 1):
        st = stage_settings(cfg, i)
        method = method_class(st["method"])(parts, ctx, st["options"])
    try:
        method.load_state_dict(state["model"])
    except RuntimeError:  # torch's multi-KB list of keys: say which part and which setting instead
        raise RadclrError(state_mismatch(run_dir, path, cfg, state, method)) from None
    method.load_extra_state(state.get("extra", {}))
    method.to(device).eval()
    return LoadedRun(run_dir, cfg, method, state, path)


def _flat(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def architecture_differences(cfg: dict, state: dict, *, options: bool = True) -> list[str]:
    """Settings that shape the model (``model.*``, the stages' names, methods and -- with ``options`` -- method
    options) where ``cfg`` differs from the configuration the checkpoint was trained with (``state["config"]``):
    ``"model.encoder: 'resnet50' in config.yaml, 'resnet18' in the checkpoint"``."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return []

    def shape_keys(c):
        flat = _flat({"model": c.get("model", {})})
        for i, st in enumerate(c.get("stages", [])):
            for k, v in _flat(st).items():
                if k in ("name", "method") or (options and k.split(".")[0] not in STAGE_TRAINER_KEYS):
                    flat[f"stages.{i}.{k}"] = v
        return flat

    now, then = shape_keys(cfg), shape_keys(saved)
    keys = [k for k in sorted(set(now) | set(then)) if now.get(k) != then.get(k)
            and not k.startswith(("model.init_", "model.weights"))]  # where weights come from, not their shape
    return [f"{k}: {now.get(k)!r} in config.yaml, {then.get(k)!r} in the checkpoint" for k in keys]


def state_mismatch(run_dir: Path, path: Path, cfg: dict, state: dict, method: nn.Module) -> str:
    """One line: which parts of the model do not fit the checkpoint, and which settings differ."""
    own = method.state_dict()
    theirs = state["model"]
    parts: dict[str, list[int]] = {}
    for k in set(own) | set(theirs):
        part = k.split(".")[1] if k.startswith("parts.") else k.split(".")[0]
        c = parts.setdefault(part, [0, 0, 0])
        if k not in theirs:
            c[0] += 1
        elif k not in own:
            c[1] += 1
        elif tuple(own[k].shape) != tuple(theirs[k].shape):
            c[2] += 1
    bad = [f"{p} ({', '.join(w for w in (f'{a} missing' if a else '', f'{b} unexpected' if b else '', f'{c} of another shape' if c else '') if w)})"
           for p, (a, b, c) in sorted(parts.items()) if a or b or c]
    diffs = architecture_differences(cfg, state)
    msg = f"{path}: does not fit the model {run_dir / 'config.yaml'} describes: part(s) " + "; ".join(bad[:6])
    if diffs:
        msg += f". config.yaml differs from the configuration the checkpoint was trained with: {'; '.join(diffs[:5])}"
        msg += " -- was config.yaml edited after training? Restore it"
    return msg
