"""Train a configuration into a run directory (or resume it), then evaluate it -- what ``radclr train`` does.

The training itself is :class:`radclr.engine.loop.Trainer`; this module owns the run directory: it refuses to
overwrite a run, holds the directory's lock (:mod:`radclr.runs.lock`) while training, checks that a resumed one
can be resumed (a finished run is left as it is: :class:`RunFinished`), removes the folder of a run refused before
its first checkpoint, and writes the primary evaluation (:func:`radclr.runs.evaluate.evaluate_run`) when training
ends.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from radclr.engine.checkpoint import load_checkpoint
from radclr.engine.config import resolve_config, stage_settings
from radclr.engine.loop import StepCallback, Trainer
from radclr.errors import RadclrError
from radclr.runs.evaluate import evaluate_run
from radclr.runs.lock import run_lock
from radclr.runs.run import architecture_differences
from radclr.runtime.device import resolve_device
from radclr.runtime.distributed import shutdown_distributed
from radclr.safe_write import writable_dir

__all__ = ["train", "training_finished", "RunFinished"]

log = logging.getLogger(__name__)


class RunFinished(RadclrError):
    """``--resume`` of a run whose training and evaluation are complete: nothing was changed."""


def training_finished(run_dir: str | Path, cfg: dict, state: dict | None = None) -> bool:
    """Whether ``checkpoints/last.pt`` (or ``state``) is the end of the last stage of ``cfg`` (every epoch
    trained)."""
    state = state if state is not None else load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")
    last = len(cfg["stages"]) - 1
    return (int(state["stage"]) == last and int(state.get("step", 0)) == 0
            and int(state["epoch"]) >= int(stage_settings(cfg, last)["epochs"]))


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def train(config: str | Path | dict | None, out: str | Path, overrides: list[str] | tuple[str, ...] = (), *,
          resume: bool = False, progress: bool | None = None, evaluate: bool = True,
          on_step: StepCallback | None = None) -> Path:
    """Train a configuration (a YAML path or a dict) into ``out``, or resume the run there; evaluate it after
    training unless ``evaluate=False``. ``on_step(stage, epoch, step)`` is called after every training step.
    Returns the run directory. Resuming a run whose training is complete only evaluates it when it has no
    ``metrics.json`` yet; with one, :class:`RunFinished` is raised and nothing is touched."""
    out = Path(out)
    created = False
    if resume:
        if not (out / "config.yaml").exists():
            raise RadclrError(f"--resume: {out} is not a run directory (no config.yaml)")
        if not (out / "checkpoints" / "last.pt").exists():
            raise RadclrError(f"--resume: {out} has no checkpoints/last.pt to resume from")
        cfg = resolve_config(out / "config.yaml", overrides)
        state = load_checkpoint(out / "checkpoints" / "last.pt")
        diffs = architecture_differences(cfg, state, options=False)
        if diffs:  # an edited config.yaml (or an override of the model): said before torch's state_dict error
            raise RadclrError(f"--resume: {out / 'config.yaml'} differs from the configuration "
                              f"{out / 'checkpoints' / 'last.pt'} was trained with: {'; '.join(diffs[:5])}; restore "
                              f"it (the model settings cannot change on resume)")
        if training_finished(out, cfg, state):
            if (out / "metrics.json").exists() or not evaluate:
                raise RunFinished(f"{out}: this run has finished (training complete"
                                  + (", metrics.json written" if (out / "metrics.json").exists() else "")
                                  + "); nothing to resume, nothing changed (re-evaluate with `radclr evaluate "
                                  f"{out}`)")
            writable_dir(out, "run directory")
            with run_lock(out):
                log.info("%s: training is complete; evaluating", out)
                evaluate_run(out, progress=progress if progress is not None else bool(cfg["trainer"]["progress"]))
            return out
        writable_dir(out, "run directory")
    else:
        if (out / "checkpoints" / "last.pt").exists():
            raise RadclrError(f"{out} already holds a run; use --resume {out} or another --out")
        cfg = resolve_config(config if not isinstance(config, dict) else None, overrides,
                             base=config if isinstance(config, dict) else None)
        if not any(int(stage_settings(cfg, i)["epochs"]) for i in range(len(cfg["stages"]))):
            log.warning("trainer.epochs: every stage has 0 epochs -- nothing is trained: the run holds the UNTRAINED "
                        "initial model and its metrics are those of the initialisation")
        resolve_device(cfg["trainer"]["device"])  # a device this machine lacks: said before the folder exists
        created = not out.exists()
        writable_dir(out, "run directory")  # after the config checks: a refused config leaves no directory
    before = set(os.listdir(out))
    if not _is_main_rank():  # under torchrun rank 0 holds the lock for all ranks
        return _train_locked(cfg, out, resume, progress, evaluate, on_step)
    try:
        with run_lock(out):
            try:
                return _train_locked(cfg, out, resume, progress, evaluate, on_step)
            except RadclrError:
                if not resume:
                    _remove_unstarted(out, before)
                raise
    except RadclrError:
        if created and not resume and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # the lock went with the refused run: no empty folder either
        raise


def _train_locked(cfg, out, resume, progress, evaluate, on_step) -> Path:
    trainer = Trainer(cfg, out, resume=resume, progress=progress, on_step=on_step)
    try:
        trainer.run()
        if evaluate and trainer.dist.is_main:
            evaluate_run(out, data=trainer.data, device=trainer.device, progress=trainer.progress)
    finally:
        shutdown_distributed()
    return out


# what a run writes before its first checkpoint: a run refused then (bad data, nothing to train) leaves nothing
_STARTUP_FILES = ("config.yaml", "splits.csv", "train.log")


def _remove_unstarted(out: Path, before: set[str]) -> None:
    """Remove what a refused new run wrote, when no checkpoint was written; files that were in the folder
    ``before`` the run are kept (the lock file goes with the lock)."""
    ckpt = out / "checkpoints"
    if ckpt.is_dir() and any(ckpt.iterdir()):
        return  # it trained: keep everything (resumable)
    root = logging.getLogger("radclr")  # the run's log file handler, when the refusal came before the loop's own
    for h in list(root.handlers):      # clean-up (prepare_data, the training-data checks)
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == (out / "train.log").absolute():
            root.removeHandler(h)
            h.close()
    if "checkpoints" not in before and ckpt.is_dir():
        ckpt.rmdir()
    for p in out.iterdir():
        if p.name not in before and p.is_file() and (p.name in _STARTUP_FILES or p.name.startswith("events.out.")):
            p.unlink()
