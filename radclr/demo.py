"""The end-to-end demo behind ``make demo`` / ``radclr demo``: train, evaluate, localize, report.

Runs the packaged configuration ``radclr/resources/demo.yaml`` (seed 000's radiomics-contrastive pretraining,
then fine-tuning) on the embedded real Kermany sample, or on ``--data PATH``. Idempotent: a finished run with the
same configuration is reused (only missing outputs are rebuilt); an interrupted one is resumed; a run with a
different configuration is refused rather than overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

import yaml

from radclr.engine.config import resolve_config
from radclr.errors import RadclrError
from radclr.report import write_report
from radclr.runs.evaluate import evaluate_run
from radclr.runs.train import train

log = logging.getLogger("radclr.demo")


def demo_config(data: str | None = None, overrides=()) -> dict:
    base = yaml.safe_load(resources.files("radclr.resources").joinpath("demo.yaml").read_text())
    if data:
        base["data"]["path"] = str(Path(data).resolve()) if Path(data).exists() else data
    return resolve_config(base=base, overrides=list(overrides))


def _fingerprint(cfg: dict) -> str:
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_demo(out: str | Path = "runs/demo", data: str | None = None, overrides=(), progress: bool = True) -> dict:
    """Train (or reuse/resume) the demo run in ``out``, evaluate it, write the report; return the paths."""
    out = Path(out)
    cfg = demo_config(data, overrides)
    stamp = out / ".demo-config"
    fp = _fingerprint(cfg)
    if (out / "checkpoints" / "last.pt").exists():
        if stamp.exists() and stamp.read_text().strip() != fp:
            raise RadclrError(f"{out} holds a demo run with another configuration; remove it or use --out")
        done = (out / "checkpoints" / f"stage-{cfg['stages'][-1]['name']}.pt").exists()
        if not done:
            log.info("resuming the interrupted demo run in %s", out)
            train(None, out, resume=True, progress=progress, evaluate=True)
        elif not (out / "metrics.json").exists():
            evaluate_run(out, progress=progress)
        else:
            log.info("demo run in %s is complete: reusing it", out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fp)
        train(cfg, out, progress=progress, evaluate=True)
    stamp.write_text(fp)
    report = out / "report.html"
    if not report.exists() or report.stat().st_mtime < (out / "metrics.json").stat().st_mtime:
        write_report(out, progress=progress)
    return {"run": str(out), "report": str(report), "metrics": str(out / "metrics.json")}
