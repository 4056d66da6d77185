"""The one training loop: every method, every stage, resumable, deterministic on CPU, DDP-ready.

Run directory written by :class:`Trainer` (the run-level orchestration -- refusing to overwrite a run, evaluating
it afterwards, several seeds -- is :mod:`radclr.runs.train`)::

    RUN/config.yaml          resolved configuration (what was actually run)
    RUN/splits.csv           patient-wise split (+ which training images are labelled)
    RUN/metrics.csv          one row per epoch: stage, epoch, steps (optimiser steps), images (training images
                             seen, all ranks), training losses, validation metrics, lr, time
    RUN/train.log            log
    RUN/events.out.tfevents.*  TensorBoard events of the same numbers (only with tensorboard installed)
    RUN/checkpoints/last.pt  latest state (resume point; also written every ``checkpoint_every_steps``)
    RUN/checkpoints/best.pt  best epoch of the last stage by its monitored validation quantity
    RUN/checkpoints/stage-<name>.pt   state at the end of each stage
    RUN/checkpoints/<name>-epoch<k>.pt   kept epochs (``trainer.keep_epochs``)

Exact resume: a checkpoint holds the model, optimiser, scheduler, RNG, memory banks, the position
(stage, epoch, step) and the running sums of the current epoch; sample order and augmentations are functions
of (seed, epoch, index) (:mod:`radclr.training_data.sampling`). A run interrupted anywhere -- even by SIGKILL
between two step checkpoints -- and resumed with ``radclr train --resume RUN`` ends with the same weights and
metrics as an uninterrupted run (on CPU, with or without loader workers; tested). SIGINT/SIGTERM save a checkpoint
at the next read of the step losses (every step on the CPU, every ``trainer.sync_every_steps`` on CUDA).

Keeping a GPU fed: one DataLoader per stage with persistent workers serves training, precise BN and validation
(:mod:`radclr.training_data.loader`; ``trainer.num_workers: auto``); the scalars a step reports are summed on the
device (:mod:`radclr.engine.sums`) and read every ``sync_every_steps`` and at the epoch's end, where the divergence
check (naming the step) and the DDP reductions happen; on CUDA the encoder runs ``channels_last``.

The loop calls only the hooks :class:`radclr.methods.Method` declares (``setup``, ``set_training_pool``,
``param_groups``, ``on_epoch_start``, ``calibrate``, ``training_step``, ``after_optimizer_step``,
``validation_step``); ``on_step`` callbacks given to :class:`Trainer` see every finished step.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from radclr.engine import checkpoint as ckpt
from radclr.engine.config import dump_config, fixed_radiomics_rows, stage_settings
from radclr.engine.optim import build_optimizer, build_scheduler, early_stop_due
from radclr.engine.sums import EpochSums
from radclr.errors import ConfigError, RadclrError
from radclr.evaluation.metrics import auc_per_finding, probabilities
from radclr.methods import Method, MethodContext, method_class
from radclr.progress import progress_bar
from radclr.runtime.device import autocast_context, resolve_device, set_determinism, to_device
from radclr.runtime.distributed import DistInfo, all_reduce_mean, all_reduce_sums, any_rank, init_distributed
from radclr.runtime.events import EventLog
from radclr.safe_write import atomic_path
from radclr.training_data import PreparedData, TrainingView, prepare_data
from radclr.training_data.checks import check_training_data
from radclr.training_data.loader import StageLoader, resolve_num_workers
from radclr.training_data.prepare import pretext_subset
from radclr.training_data.sampling import EpochBatches
from radclr.transforms import CXRAugment

log = logging.getLogger("radclr.train")
VALIDATION_EPOCH = 1_000_003  # seeds the fixed augmentations of two-view validation (never a training epoch)

#: ``on_step(stage_name, epoch, step)`` -- epoch 0-based, step = steps done in that epoch
StepCallback = Callable[[str, int, int], None]


class _StopRequested:
    """SIGINT/SIGTERM -> save at the next step boundary and stop."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.requested = True
        log.warning("signal %s: saving a checkpoint at the next step and stopping", signum)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Interrupted(RadclrError):
    """Training stopped on request after saving a resumable checkpoint."""


@dataclass
class StageRun:
    """Everything one stage's epochs share (built by :meth:`Trainer._run_stage`)."""

    index: int
    name: str
    settings: dict  # stage_settings(cfg, index)
    method: Method
    model: nn.Module  # the method, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: object  # torch.amp.GradScaler or None
    autocast: object  # context manager
    view: TrainingView
    train_idx: np.ndarray
    batch_size: int
    epochs: int
    best: dict  # {"value": monitored value or None, "epoch": 1-based}
    monitor: str
    mode: str  # "max" | "min"
    loader: StageLoader  # one DataLoader (persistent workers) for training, precise BN and validation
    start_epoch: int = 0  # where the stage (re)starts
    start_step: int = 0
    accum: dict = field(default_factory=dict)  # the resumed epoch's running sums
    sync_every: int = 1  # read step losses / stop flags every N steps


# --------------------------------------------------------------------------------------------------------------
class Trainer:
    """Runs the stages of one configuration in ``run_dir`` (see module docstring)."""

    def __init__(self, cfg: dict, run_dir: str | Path, *, resume: bool = False, progress: bool | None = None,
                 on_step: StepCallback | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = cfg["trainer"]["progress"] if progress is None else progress
        self.on_step = on_step
        self.device = resolve_device(cfg["trainer"]["device"], int(os.environ.get("LOCAL_RANK", "0")))
        self.dist: DistInfo = init_distributed(self.device, cfg["trainer"].get("dist_timeout_minutes"))
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.history: list[dict] = []
        self.parts = nn.ModuleDict()
        self.events = EventLog(None)  # TensorBoard events (main rank, when tensorboard is installed)

    # --- setup --------------------------------------------------------------------------------------------
    def _setup_run_dir(self) -> None:
        if self.dist.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                dump_config(self.cfg, self.run_dir / "config.yaml")
            fh = logging.FileHandler(self.run_dir / "train.log")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger("radclr").addHandler(fh)
            logging.getLogger("radclr").setLevel(logging.INFO)
            self._log_handler = fh
            self.events = EventLog.open(self.run_dir)
        if self.dist.enabled:
            torch.distributed.barrier()

    def _methods_need_radiomics(self) -> bool:
        return any(method_class(st["method"]).needs_radiomics for st in self.cfg["stages"]) or \
            self.cfg["radiomics"]["region"] == "cam"

    def _context(self, st: dict | None = None) -> MethodContext:
        d = self.data
        aug = (st or {}).get("augment") or {}
        geometric = bool(aug.get("enabled", True)) and (st is not None)
        return MethodContext(findings=list(d.findings), radiomics_names=list(d.radiomics_names),
                             model_cfg=self.cfg["model"], image_size=int(self.cfg["data"]["image_size"]),
                             seed=int(self.cfg["seed"]), world_size=self.dist.world_size, rank=self.dist.rank,
                             dataset_size=len(d.store), gather_negatives=bool(self.cfg["trainer"]["gather_negatives"]),
                             extra={"radiomics_cfg": self.cfg["radiomics"], "augment_geometric": geometric},
                             in_channels=self.data.store.channels, task=self.cfg["data"]["task"])

    def _build_method(self, index: int) -> Method:
        st = stage_settings(self.cfg, index)
        cls = method_class(st["method"])
        method = cls(self.parts, self._context(st), st["options"])
        return method.to(self.device)

    # --- main ---------------------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.cfg
        set_determinism(int(cfg["seed"]), cfg["trainer"]["deterministic"], self.device)
        self._setup_run_dir()
        state = None
        if self.resume:
            state = ckpt.load_checkpoint(self.ckpt_dir / "last.pt")
            self.history = list(state.get("history", []))
            log.info("resuming %s at stage %s epoch %d step %d", self.run_dir, state["stage_name"], state["epoch"], state["step"])
        # rank 0 builds the split, image store and radiomics cache; the other ranks then read them
        if self.dist.enabled and not self.dist.is_main:
            torch.distributed.barrier()
        self.data: PreparedData = prepare_data(cfg, self.run_dir, need_radiomics=self._methods_need_radiomics(),
                                               radiomics_rows=fixed_radiomics_rows(cfg),
                                               progress=self.progress and self.dist.is_main)
        if self.dist.enabled and self.dist.is_main:
            torch.distributed.barrier()
        # data nothing can be learned from is refused here (no run folder is left: radclr.runs.train); the rest
        # (findings without positives or negatives, constant or tiny images) is said once, before the first epoch
        lines = check_training_data(self.data, cfg["data"]["task"],
                                    any(method_class(st["method"]).uses_labels for st in cfg["stages"]),
                                    scan_images=self.dist.is_main)
        if self.dist.is_main:
            for line in lines:
                log.warning("%s", line)
        try:
            with _StopRequested() as stop:
                self.stop = stop
                for index in range(len(cfg["stages"])):
                    if state is not None and index < state["stage"]:
                        self._build_method(index)  # recreate its parts; weights come with the checkpoint
                        continue
                    self._run_stage(index, state if state is not None and index == state["stage"] else None)
                    state = None
        finally:
            self.events.close()
            if self.dist.is_main and hasattr(self, "_log_handler"):
                logging.getLogger("radclr").removeHandler(self._log_handler)
                self._log_handler.close()
        return self.run_dir

    # --- one stage ----------------------------------------------------------------------------------------
    def _run_stage(self, index: int, state: dict | None) -> None:
        stage = self._setup_stage(index, state)
        try:
            self._epochs(stage)
        finally:
            stage.loader.close()
        self._finish_stage(stage)

    def _setup_stage(self, index: int, state: dict | None) -> StageRun:
        """Build the stage's method (DDP-wrapped under torchrun), optimiser, schedule, views and loader; restore
        them from ``state`` when the stage resumes."""
        st = stage_settings(self.cfg, index)
        name = st["name"]
        method = self._build_method(index)
        self.method = method  # the current stage's method (benchmarks read its timers)
        all_train = self.data.indices("train")
        if method.uses_labels:
            train_idx = self.data.indices("train", labeled_only=True)
        else:
            train_idx = pretext_subset(self.data, all_train, float(self.cfg["data"].get("pretext_fraction", 1.0)),
                                       int(self.cfg["seed"]))
        if len(train_idx) < 2:
            raise RadclrError(f"stage {name}: only {len(train_idx)} training image(s) -- not enough to train")
        if state is None and index == 0 and self.cfg["model"].get("init_from"):
            self._init_parts_from(self.cfg["model"]["init_from"])
        if state is None:
            method.setup(self.data, all_train)
        method.set_training_pool(train_idx)  # e.g. memory banks: negatives from the images this stage trains on
        method.prepare_stage()
        if self.device.type == "cuda":  # NHWC convolutions (tensor cores); the inputs follow in _to_device
            method.encoder.to(memory_format=torch.channels_last)
            # the encoder's matrix products are its convolutions: TF32 where autocast leaves them in float32 (amp
            # off); plain matmuls keep float32 -- the losses compare embeddings at temperatures of 0.07-0.5
            torch.backends.cudnn.allow_tf32 = True
        model: nn.Module = method
        if self.dist.enabled:
            # buffers are not broadcast from rank 0 at every forward: BYOP's per-image box/radiomics caches are
            # large and each rank's entries are self-consistent (only rank 0's are checkpointed: after a resume
            # the other ranks recompute theirs); the encoder's BatchNorm statistics are averaged across ranks by
            # precise BN at the end of every epoch (when precise_bn_batches > 0 -- BatchNorm inside heads keeps
            # per-rank statistics); memory banks are updated identically on every rank
            model = nn.parallel.DistributedDataParallel(
                method, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=method.find_unused_parameters, broadcast_buffers=False)
        batch_size = int(st["batch_size"])
        epochs = int(st["epochs"])
        steps_per_epoch = len(EpochBatches(train_idx, batch_size, 0, 0, rank=self.dist.rank, world_size=self.dist.world_size))
        optimizer = build_optimizer(method.param_groups(), st["optimizer"])
        scheduler = build_scheduler(optimizer, steps_per_epoch, epochs, st["schedule"])
        autocast, scaler = autocast_context(self.device, st["amp"])
        view, loader = self._stage_views(st, method)
        start_epoch, start_step = 0, 0
        accum: dict[str, float] = {}
        best = {"value": None, "epoch": -1}
        if state is not None:
            method.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            method.load_extra_state(state.get("extra", {}))
            start_epoch, start_step = int(state["epoch"]), int(state["step"])
            accum = dict(state.get("accum", {}))
            best = dict(state.get("best", best))
            ckpt.set_rng_state(state["rng"])
        monitor, mode = method.monitor
        chosen = st.get("best_checkpoint") or {}
        if chosen.get("metric"):
            monitor, mode = str(chosen["metric"]), str(chosen.get("mode") or "min")
            if mode not in ("min", "max"):
                raise ConfigError(f"stage {name}: best_checkpoint.mode must be min or max, got {mode!r}")
        return StageRun(index=index, name=name, settings=st, method=method, model=model, optimizer=optimizer,
                        scheduler=scheduler, scaler=scaler, autocast=autocast, view=view, train_idx=train_idx,
                        batch_size=batch_size, epochs=epochs, best=best, monitor=monitor, mode=mode, loader=loader,
                        start_epoch=start_epoch, start_step=start_step, accum=accum,
                        sync_every=self._sync_every(st))

    def _stage_views(self, st: dict, method: Method) -> tuple[TrainingView, StageLoader]:
        """The training view and one loader serving it, precise BN's unaugmented view and validation's view."""
        seed, crop = int(self.cfg["seed"]), self.data.roi_crop
        augment = self._augmentation(st) if st["augment"].get("enabled", True) else None
        view = TrainingView(self.data, self.data.labels_for_training(), augment=augment, views=method.views,
                            seed=seed, roi_crop=crop)
        bn_view = TrainingView(self.data, self.data.labels_for_training(), augment=None, views=1, seed=seed,
                               roi_crop=crop)
        # two-view methods (SimCLR) compare two augmentations: without them the validation "positive pair" is
        # the same image twice and the loss only measures how spread the negatives are. The validation views
        # are drawn with a fixed epoch, so they are identical at every epoch and the loss curve is comparable.
        two_view = method.views >= 2 and st["augment"].get("enabled", True)
        val_view = TrainingView(self.data, self.data.dataset.labels,
                                augment=self._augmentation(st) if two_view else None, views=method.views, seed=seed,
                                roi_crop=crop)
        workers = resolve_num_workers(st["num_workers"], self.device)
        loader = StageLoader({"train": view, "bn": bn_view, "val": val_view}, num_workers=workers, device=self.device,
                             seed=seed)
        return view, loader

    def _sync_every(self, st: dict) -> int:
        n = st.get("sync_every_steps", "auto")
        if n in (None, "auto"):
            return 1 if self.device.type == "cpu" else 25
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"trainer.sync_every_steps must be auto or an integer >= 1, got {n!r}")
        return n

    def _epochs(self, stage: StageRun) -> None:
        """Train, re-estimate BatchNorm, validate and checkpoint each remaining epoch of the stage."""
        name, st, epochs = stage.name, stage.settings, stage.epochs
        for epoch in range(stage.start_epoch, epochs):
            stop, why = early_stop_due(self.history, name, st.get("early_stopping"))
            if stop:
                log.info("stage %s: early stopping before epoch %d: %s", name, epoch + 1, why)
                break
            resumed = epoch == stage.start_epoch
            t0 = time.time()
            train_stats = self._train_epoch(stage, epoch, stage.start_step if resumed else 0,
                                            stage.accum if resumed else {})
            t_train = time.time() - t0
            self._precise_bn(stage, epoch)
            val_stats = self._validate(stage)
            counts = {k: train_stats.pop(k) for k in ("steps", "images")}
            row = {"stage": name, "epoch": epoch + 1, **counts, **{f"train_{k}": v for k, v in train_stats.items()},
                   **val_stats, "lr": stage.optimizer.param_groups[0]["lr"], "train_time_s": round(t_train, 3),
                   "time_s": round(time.time() - t0, 3)}
            self.history.append(row)
            self.events.epoch(row, len(self.history))
            self._checkpoint_epoch(stage, epoch, row)
            log.info("stage %s epoch %d/%d %s", name, epoch + 1, epochs,
                     " ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))

    def _checkpoint_epoch(self, stage: StageRun, epoch: int, row: dict) -> None:
        """The checkpoint rule at an epoch's end: ``last.pt`` always, ``best.pt`` when the monitored quantity
        improved (or nothing was monitored yet), ``<stage>-epoch<k>.pt`` for the kept epochs; then metrics.csv."""
        best = stage.best
        improved = epoch >= stage.method.monitor_from_epoch and self._is_better(row.get(stage.monitor), best["value"],
                                                                                stage.mode)
        if improved:
            best = {"value": float(row[stage.monitor]), "epoch": epoch + 1}
            stage.best = best
        if not self.dist.is_main:
            return
        state = self._state(stage, epoch + 1, 0, {})
        ckpt.save_checkpoint(state, self.ckpt_dir / "last.pt")
        if improved or best["value"] is None:
            ckpt.save_checkpoint(state, self.ckpt_dir / "best.pt")
        if epoch + 1 in {int(k) for k in (stage.settings.get("keep_epochs") or [])}:
            ckpt.save_checkpoint(state, self.ckpt_dir / f"{stage.name}-epoch{epoch + 1}.pt")
        self._write_metrics()

    def _finish_stage(self, stage: StageRun) -> None:
        """``stage-<name>.pt`` and ``last.pt`` at the stage's end (``best.pt`` too when nothing was monitored)."""
        if self.dist.is_main:
            final = self._state(stage, stage.epochs, 0, {})
            ckpt.save_checkpoint(final, self.ckpt_dir / f"stage-{stage.name}.pt")
            ckpt.save_checkpoint(final, self.ckpt_dir / "last.pt")
            if stage.epochs == 0 or stage.best["value"] is None:
                ckpt.save_checkpoint(final, self.ckpt_dir / "best.pt")
            self._write_metrics()
        if self.dist.enabled:
            torch.distributed.barrier()

    def _init_parts_from(self, path: str) -> None:
        """Load the parts this run shares with a checkpoint (``model.init_parts``: all that fit, or those named)."""
        rep = ckpt.init_parts_from(self.parts, path, self.cfg["model"].get("init_parts"), list(self.data.findings))
        log.info("initialised part(s) %s from %s", rep["loaded"], path)
        for pname, why in rep["skipped"].items():
            log.warning("model.init_from: part %r keeps its initialisation: %s", pname, why)

    @staticmethod
    def _is_better(value, best, mode) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if best is None:
            return True
        return value > best if mode == "max" else value < best

    @staticmethod
    def _augmentation(st: dict) -> CXRAugment:
        return CXRAugment(**{k: v for k, v in st["augment"].items() if k != "enabled"})

    # --- one epoch ----------------------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict:
        batch = to_device(batch, self.device)
        if self.device.type == "cuda":  # the encoder is channels_last on CUDA (see _setup_stage)
            for k in ("image", "image2"):
                if k in batch and batch[k].dim() == 4:
                    batch[k] = batch[k].contiguous(memory_format=torch.channels_last)
        return batch

    def _train_epoch(self, stage: StageRun, epoch: int, start_step: int, accum: dict) -> dict:
        method, model, optimizer, scheduler = stage.method, stage.model, stage.optimizer, stage.scheduler
        stage.view.set_epoch(epoch)
        method.on_epoch_start(epoch)
        if start_step == 0:  # a resumed epoch keeps its checkpointed calibration
            cal = method.calibrate(self.data, self.data.indices("train"))
            if cal:
                log.info("epoch %d calibration: %s", epoch + 1, cal)
                accum = {**accum, **{k: float(v) for k, v in cal.items()}, **{"#" + k: 1.0 for k in cal}}
        batches = EpochBatches(stage.train_idx, stage.batch_size, int(self.cfg["seed"]), epoch,
                               rank=self.dist.rank, world_size=self.dist.world_size)
        method.train()
        sums = EpochSums(accum, self.device)  # (carries the calibration values into the epoch's metrics row)
        every = int(stage.settings["checkpoint_every_steps"] or 0)
        bar = progress_bar(total=len(batches), initial=start_step, enabled=self.progress and self.dist.is_main,
                           desc=f"{stage.name} {epoch + 1}/{stage.epochs}", unit="step")
        step, unread = start_step, []  # unread: this window's step losses, still on the device
        for batch in stage.loader.passes("train", batches.from_step(start_step), epoch):
            batch = self._to_device(batch)
            with stage.autocast:
                out = model(batch)
            loss = out["loss"]
            optimizer.zero_grad(set_to_none=True)
            if stage.scaler is not None:
                stage.scaler.scale(loss).backward()
                stage.scaler.step(optimizer)
                stage.scaler.update()
            else:
                loss.backward()
                optimizer.step()
            scheduler.step()
            method.after_optimizer_step(batch, out)
            step += 1
            sums.count("#steps")  # "#": counts, kept through step checkpoints
            sums.count("#images", len(batch["index"]))
            sums.add(out)  # epoch means of every scalar a step reports (over the steps reporting it)
            unread.append(loss.detach())
            bar.update()
            if self.on_step is not None:
                self.on_step(stage.name, epoch, step)
            save = bool(every and step % every == 0 and step < len(batches))
            # DDP: every rank reads at the same steps (a signal may reach the ranks at different steps)
            if save or step % stage.sync_every == 0 or step == len(batches) or \
                    (self.stop.requested and not self.dist.enabled):
                stop = self._read_steps(stage, epoch, step, unread, len(batches), bar)
                unread = []
                if save or stop:
                    if self.dist.is_main:
                        ckpt.save_checkpoint(self._state(stage, epoch, step, sums.values()),
                                             self.ckpt_dir / "last.pt")
                    if stop:
                        bar.close()
                        raise Interrupted(f"stopped at stage {stage.name} epoch {epoch + 1} step {step}; "
                                          f"resume with: radclr train --resume {self.run_dir}")
        bar.close()
        totals = sums.values()
        if self.dist.enabled:  # ranks may report different keys (e.g. BYOP's loop stats on some steps only)
            totals = all_reduce_sums(totals, self.device)
        means = {k: v / totals["#" + k] for k, v in totals.items() if not k.startswith("#") and totals["#" + k] > 0}
        # optimiser steps (every rank takes the same number) and images (all ranks) of the epoch
        return {"steps": int(round(totals.get("#steps", 0.0) / self.dist.world_size)),
                "images": int(round(totals.get("#images", 0.0))), **means}

    def _read_steps(self, stage: StageRun, epoch: int, step: int, losses: list, n_steps: int, bar) -> bool:
        """Read the step losses since the last read (one wait for the device), stop on a non-finite one, log
        them; -> whether to stop (a signal arrived; under DDP: on any rank)."""
        values = torch.stack(losses).double().tolist() if losses else []
        first = step - len(values) + 1
        bad = next((k for k, v in enumerate(values) if not math.isfinite(v)), None)
        diverged = bad is not None
        if self.dist.enabled:  # every rank stops together (one rank raising would leave the others waiting)
            diverged = any_rank(diverged, self.device)
        if diverged:
            where = f"step {first + bad}: loss is {values[bad]}" if bad is not None else \
                f"steps {first}-{step}: the loss of another rank is not finite"
            raise RadclrError(f"stage {stage.name} epoch {epoch + 1} {where} "
                              "(diverged; lower the learning rate or check the data)")
        for k, v in enumerate(values):
            self.events.step(stage.name, epoch * n_steps + first + k, v)
        if values:
            bar.set_postfix(loss=f"{values[-1]:.4f}")
        stop = self.stop.requested
        if self.dist.enabled:
            stop = any_rank(stop, self.device)
        return stop

    @torch.no_grad()
    def _precise_bn(self, stage: StageRun, epoch: int) -> None:
        """Re-estimate the encoder's BatchNorm running statistics with the epoch's final weights.

        With few steps per epoch (or a fast-moving network) the exponential running averages lag far behind the
        weights and eval-mode outputs drift (seen on phantoms: eval logits of -17 where train mode gave -2.5).
        This forwards up to ``precise_bn_batches`` seeded, unaugmented training batches through the encoder in
        train mode with cumulative averaging ("precise BN"). Training itself is unchanged (train-mode BN uses
        batch statistics); it uses no random state, so resumed runs stay identical.
        """
        n = int(stage.settings.get("precise_bn_batches") or 0)
        method = stage.method
        if n <= 0 or "encoder" in method.frozen:
            return
        held = {id(x) for fm in method.frozen_modules() for x in fm.modules()}  # frozen sub-modules keep theirs
        bns = [m for m in method.encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
               and m.track_running_stats and id(m) not in held]
        if not bns:
            return
        bn_epoch = 1_000_000 + epoch
        batches = EpochBatches(stage.train_idx, stage.batch_size, int(self.cfg["seed"]), bn_epoch,
                               rank=self.dist.rank, world_size=self.dist.world_size).batches[:n]
        if not batches:
            return
        momenta = [m.momentum for m in bns]
        was_training = method.encoder.training
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        method.encoder.train()
        for fm in method.frozen_modules():
            fm.eval()
        for batch in stage.loader.passes("bn", batches, bn_epoch):
            with stage.autocast:
                method.encoder(self._to_device(batch)["image"])
        for m, mom in zip(bns, momenta):
            m.momentum = mom
            if self.dist.enabled:  # identical statistics on every rank
                m.running_mean.copy_(all_reduce_mean(m.running_mean))
                m.running_var.copy_(all_reduce_mean(m.running_var))
        method.encoder.train(was_training)

    def _state(self, stage: StageRun, epoch: int, step: int, accum: dict) -> dict:
        method = stage.method
        return {
            "stage": stage.index, "stage_name": stage.name, "epoch": epoch, "step": step,
            "model": method.state_dict(), "optimizer": stage.optimizer.state_dict(),
            "scheduler": stage.scheduler.state_dict(),
            "scaler": stage.scaler.state_dict() if stage.scaler is not None else None,
            "rng": ckpt.rng_state(), "accum": {k: float(v) for k, v in accum.items()},
            "best": stage.best, "history": list(self.history), "extra": method.extra_state(),
            "config": self.cfg, "findings": list(self.data.findings),
            "radiomics_names": list(self.data.radiomics_names), "parts": list(self.parts.keys()),
            "store_size": int(self.data.store.size), "dataset_size": len(self.data.store),
        }

    # --- validation ---------------------------------------------------------------------------------------
    def _validate(self, stage: StageRun) -> dict:
        val_idx = self.data.indices("val")
        if len(val_idx) == 0:
            return {}
        method, bs = stage.method, int(stage.settings["eval_batch_size"])
        chunks = [val_idx[s:s + bs] for s in range(0, len(val_idx), bs)]
        if len(chunks) > 1 and len(chunks[-1]) < 2:  # a lone last image joins the previous batch (contrastive
            last = chunks.pop()                        # losses need >= 2 samples per batch)
            chunks[-1] = np.concatenate([chunks[-1], last])
        chunks = [c for c in chunks if len(c) >= 2]
        method.eval()
        sums, n, logits = EpochSums({}, self.device), 0, []
        with torch.no_grad():
            for chunk, batch in zip(chunks, stage.loader.passes("val", chunks, VALIDATION_EPOCH)):
                with stage.autocast:
                    out = method.validation_step(self._to_device(batch))
                if "logits" in out:
                    logits.append(out["logits"].detach().float())
                sums.add(out, weight=len(chunk))
                n += len(chunk)
        method.train()
        stats = {f"val_{k}": v / max(n, 1) for k, v in sums.values().items() if not k.startswith("#")}
        if logits:
            kept = np.concatenate(chunks)
            scores = torch.cat(logits).cpu().numpy()
            if self.cfg["data"]["task"] == "multiclass":  # one-vs-rest AUC of the softmax probabilities
                scores = probabilities(scores, "multiclass")
            aucs = auc_per_finding(self.data.dataset.labels[kept], scores, self.data.findings)
            stats.update({f"val_auc_{k}": v for k, v in aucs.items()})
        return stats

    def _write_metrics(self) -> None:
        with atomic_path(self.run_dir / "metrics.csv", "metrics table") as tmp:
            pd.DataFrame(self.history).to_csv(tmp, index=False)
