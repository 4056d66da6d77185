"""``radclr report RUN``: one self-contained HTML page of a run's results (figures embedded, no requests).

If the run has no ``metrics.json`` yet, it is written first with :func:`radclr.runs.evaluate.evaluate_run`
(thresholds on validation, metrics with patient-bootstrap CIs on test, localization). The page's sections and
what they show are listed in :mod:`radclr.report.sections`; a section whose inputs are absent stays in the page
with a one-line reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

from radclr.errors import RadclrError
from radclr.report.context import ReportContext
from radclr.report.html import page
from radclr.report.sections import build_sections
from radclr.runs.evaluate import evaluate_run
from radclr.runs.lock import check_not_locked
from radclr.runs.seeds import SUMMARY_FILE, seed_runs
from radclr.runtime.device import resolve_device
from radclr.safe_write import atomic_path, writable_dir

log = logging.getLogger("radclr.report")

__all__ = ["write_report"]


def write_report(run_dir, out=None, *, device="auto", progress: bool = False) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN/report.html``) and return its path; the model
    runs on ``device`` (``auto``: the GPU when there is one).

    A directory of several training seeds (``radclr train --seeds``) gets the report of its first seed's run, with
    the across-seeds section, as ``OUT/report.html``."""
    run_dir = Path(run_dir)
    check_not_locked(run_dir)  # a run another process is training: its files are still changing
    if not (run_dir / "config.yaml").exists() and (run_dir / SUMMARY_FILE).exists():
        runs = seed_runs(run_dir)
        if runs:
            return write_report(runs[0], out or run_dir / "report.html", device=device, progress=progress)
    if not (run_dir / "config.yaml").exists():
        raise RadclrError(f"{run_dir} is not a radclr run directory (no config.yaml)")
    writable_dir(Path(out).parent if out else run_dir, "report folder")  # before evaluating: say it first
    has_checkpoints = any((run_dir / "checkpoints").glob("*.pt"))
    if not (run_dir / "metrics.json").exists() and has_checkpoints:
        log.info("%s has no metrics.json: evaluating the run first", run_dir)
        evaluate_run(run_dir, device=device, progress=progress)
    if not has_checkpoints:  # a killed run: the report says what is missing instead of refusing (docs/policies.md)
        log.warning("%s has no checkpoints (training did not finish an epoch, or they were deleted): sections that "
                    "need the model say the checkpoint is missing%s", run_dir,
                    "" if (run_dir / "metrics.json").exists() else "; no evaluation (metrics.json) either")
    if isinstance(device, str):
        device = resolve_device(device)
    ctx = ReportContext(run_dir, device=device, progress=progress)
    sections = build_sections(ctx)
    r = ctx.results
    methods = " -> ".join(str(st.get("method", "?")) for st in (ctx.cfg.get("stages") or [])) or ctx.metrics.get("method", "?")
    subtitle = (f"{methods} run on {(ctx.cfg.get('data') or {}).get('path', '?')}; "
                f"findings: {', '.join(r.findings)}")
    out = Path(out) if out else run_dir / "report.html"
    with atomic_path(out, "report") as tmp:
        tmp.write_text(page(f"radclr report: {r.name}", subtitle, sections), encoding="utf-8")
    return out
