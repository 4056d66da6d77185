"""Train a configuration into a run directory (or resume it), then evaluate it -- what ``radclr train`` does.

The training itself is :class:`radclr.engine.loop.Trainer`; this module owns the run directory: it refuses to
overwrite a run, checks that a resumed one can be resumed, and writes the primary evaluation
(:func:`radclr.runs.evaluate.evaluate_run`) when training ends.
"""

from __future__ import annotations

from pathlib import Path

from radclr.engine.config import resolve_config
from radclr.engine.loop import StepCallback, Trainer
from radclr.errors import RadclrError
from radclr.runs.evaluate import evaluate_run
from radclr.runtime.distributed import shutdown_distributed
from radclr.safe_write import writable_dir

__all__ = ["train"]


def train(config: str | Path | dict | None, out: str | Path, overrides: list[str] | tuple[str, ...] = (), *,
          resume: bool = False, progress: bool | None = None, evaluate: bool = True,
          on_step: StepCallback | None = None) -> Path:
    """Train a configuration (a YAML path or a dict) into ``out``, or resume the run there; evaluate it after
    training unless ``evaluate=False``. ``on_step(stage, epoch, step)`` is called after every training step.
    Returns the run directory."""
    out = Path(out)
    if resume:
        if not (out / "config.yaml").exists():
            raise RadclrError(f"--resume: {out} is not a run directory (no config.yaml)")
        if not (out / "checkpoints" / "last.pt").exists():
            raise RadclrError(f"--resume: {out} has no checkpoints/last.pt to resume from")
        cfg = resolve_config(out / "config.yaml", overrides)
        writable_dir(out, "run directory")
    else:
        if (out / "checkpoints" / "last.pt").exists():
            raise RadclrError(f"{out} already holds a run; use --resume {out} or another --out")
        cfg = resolve_config(config if not isinstance(config, dict) else None, overrides,
                             base=config if isinstance(config, dict) else None)
        writable_dir(out, "run directory")  # after the config checks: a refused config leaves no directory
    trainer = Trainer(cfg, out, resume=resume, progress=progress, on_step=on_step)
    try:
        trainer.run()
        if evaluate and trainer.dist.is_main:
            evaluate_run(out, data=trainer.data, device=trainer.device, progress=trainer.progress)
    finally:
        shutdown_distributed()
    return out
