"""Optimisers and learning-rate schedules (per optimiser step, so resumes land on the same value).

Schedules (``schedule.name``): ``none``; ``step`` (x ``gamma`` every ``step_size`` epochs -- seed 001 §4: Adam
1e-3, x0.1 every 5 epochs); ``cosine`` (to 0 over the stage). ``warmup_epochs`` adds a linear warm-up;
a method may ask for a warm-up on some parameter groups only (seed 001: the classifier's first 10 epochs).

Early stopping (``trainer.early_stopping``, :func:`early_stop_due`; seed 000 §4.1: "early stopped if the loss did
not decrease").
"""

from __future__ import annotations

import math

import torch

from radclr.errors import ConfigError


def build_optimizer(groups, opt_cfg: dict) -> torch.optim.Optimizer:
    name = opt_cfg.get("name", "adam").lower()
    lr, wd = float(opt_cfg.get("lr", 1e-3)), float(opt_cfg.get("weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, weight_decay=wd, momentum=float(opt_cfg.get("momentum", 0.9)))
    raise ConfigError(f"unknown optimizer {name!r} (adam | adamw | sgd)")


def lr_factor(step: int, steps_per_epoch: int, epochs: int, sched: dict, warmup_epochs: float) -> float:
    spe = max(int(steps_per_epoch), 1)
    epoch = step / spe
    name = sched.get("name", "none")
    if name == "none":
        f = 1.0
    elif name == "step":
        f = float(sched.get("gamma", 0.1)) ** math.floor(epoch / max(int(sched.get("step_size", 5)), 1))
    elif name == "cosine":
        f = 0.5 * (1 + math.cos(math.pi * min(epoch / max(epochs, 1), 1.0)))
    else:
        raise ConfigError(f"unknown schedule {name!r} (none | step | cosine)")
    if warmup_epochs and warmup_epochs > 0:
        f *= min(1.0, (step + 1) / (warmup_epochs * spe))
    return f


def early_stop_due(history: list[dict], stage: str, cfg: dict | None) -> tuple[bool, str]:
    """Whether stage ``stage`` stops before its next epoch, from the epoch rows written so far (``metrics.csv``).

    ``cfg`` = ``{patience, monitor, mode, min_delta}`` (``patience`` 0 = never). The best epoch is the first one
    whose ``monitor`` value beats every earlier one by more than ``min_delta`` (``mode`` ``min``: lower is better,
    ``max``: higher); a missing or NaN value never improves. The stage stops once ``patience`` epochs have passed
    since the best one. A pure function of the rows, so a resumed run (its history is checkpointed) stops exactly
    where an uninterrupted one does. Returns ``(stop, reason)``.
    """
    cfg = cfg or {}
    patience = int(cfg.get("patience") or 0)
    if patience <= 0:
        return False, ""
    monitor, mode = str(cfg.get("monitor", "train_loss")), str(cfg.get("mode", "min"))
    if mode not in ("min", "max"):
        raise ConfigError(f"early_stopping.mode must be min or max, got {mode!r}")
    delta = float(cfg.get("min_delta", 0.0) or 0.0)
    rows = [r for r in history if r.get("stage") == stage]
    best, best_epoch = None, 0
    for i, r in enumerate(rows, start=1):
        v = r.get(monitor)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        v = float(v)
        if best is None or (v < best - delta if mode == "min" else v > best + delta):
            best, best_epoch = v, i
    if not rows or len(rows) - best_epoch < patience:
        return False, ""
    return True, (f"{monitor} has not improved ({mode}, min_delta {delta:g}) for {len(rows) - best_epoch} epoch(s) "
                  f"since epoch {best_epoch} (patience {patience})")


def build_scheduler(optimizer, steps_per_epoch: int, epochs: int, sched: dict):
    """LambdaLR with one lambda per parameter group (a group's own ``warmup_epochs`` overrides the stage's)."""
    default_warm = float(sched.get("warmup_epochs", 0) or 0)
    lambdas = []
    for g in optimizer.param_groups:
        warm = float(g.get("warmup_epochs", default_warm))
        lambdas.append(lambda s, w=warm: lr_factor(s, steps_per_epoch, epochs, sched, w))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
