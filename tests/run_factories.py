"""Tiny trained runs shared by the results-layer tests (tables, report, predict), trained once per session.

Each run is a tiny config from ``configs/tiny`` on phantom data, trained (and evaluated) into the session's
temporary folder the first time a test asks for it; its image store and radiomics cache live there too
(``data.cache_dir``), so nothing outside the session folder is touched.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tiny_run(tmp_path_factory, config: str, *overrides: str, name: str | None = None) -> Path:
    """Train ``configs/tiny/<config>.yaml`` (+ overrides) once per session; returns the run directory."""
    from radclr.runs.train import train

    base = tmp_path_factory.getbasetemp() / "results-runs"
    run = base / (name or config)
    if (run / "metrics.json").exists():
        return run
    cache = tmp_path_factory.getbasetemp() / "results-cache"
    train(REPO / "configs" / "tiny" / f"{config}.yaml", run, [f"data.cache_dir={cache}", *overrides], progress=False)
    return run


def byop_run(tmp_path_factory) -> Path:
    """Seed 001 BYOP at 48 px on 64-px phantoms: classifier, localization, radiomics, and a real resize."""
    return tiny_run(tmp_path_factory, "seed001_full", "data.image_size=48", name="byop48")


def simclr_run(tmp_path_factory) -> Path:
    """Seed 003 SimCLR pretraining alone (no classifier; linear evaluation only)."""
    return tiny_run(tmp_path_factory, "seed003_simclr", "data.image_size=48", name="simclr48")


def byop_report(tmp_path_factory) -> Path:
    """``report.html`` of :func:`byop_run`, written once per session."""
    from radclr.report import write_report

    run = byop_run(tmp_path_factory)
    out = run / "report.html"
    if not out.exists():
        write_report(run)
    return out


def cli(capsys, *argv):
    """``radclr ARGV`` in-process: ``(exit code, stdout, stderr)``, asserting no traceback reached the user."""
    from radclr.cli.main import main

    rc = main([*map(str, argv)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out, out.err
