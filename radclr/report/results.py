"""A run's results as tables and reports read them: ``metrics.json`` + ``config.yaml`` behind one accessor.

Every result a table or report shows comes from the files ``radclr train`` / ``radclr evaluate`` wrote into
the run directory (layout: :mod:`radclr.runs.evaluate`). An :class:`Estimate` is a value with its 95 %
patient-bootstrap interval; a value the run does not have is ``Estimate(None)`` -- shown as ``n/a``, never
replaced by a number.

Where a run has no fine-tuned classifier (e.g. SimCLR pretraining alone, seed 003), its classification numbers
are those of the **linear evaluation** of the frozen representation (``linear_eval.test_ci``, the same report
layout); :meth:`RunResults.classification_source` says which one a row shows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from radclr.errors import RadclrError

__all__ = ["Estimate", "RunResults", "load_results", "IOU_THRESHOLDS"]

#: T(IoU) of seed 001 Table 2
IOU_THRESHOLDS = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7")


def _num(x) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its interval; any part may be missing (None)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, value, interval=None) -> "Estimate":
        lo = hi = None
        if isinstance(interval, dict):
            lo, hi = interval.get("ci_low"), interval.get("ci_high")
        elif isinstance(interval, (list, tuple)) and len(interval) == 2:
            lo, hi = interval
        v = _num(value)
        return cls(v, _num(lo) if v is not None else None, _num(hi) if v is not None else None)

    @property
    def missing(self) -> bool:
        return self.value is None

    def format(self, digits: int = 3, ci_digits: int = 2) -> str:
        """``0.812 [0.78, 0.84]``; ``0.812`` without an interval; ``n/a`` without a value."""
        if self.value is None:
            return "n/a"
        text = f"{self.value:.{digits}f}"
        if self.low is not None and self.high is not None:
            text += f" [{self.low:.{ci_digits}f}, {self.high:.{ci_digits}f}]"
        return text


class RunResults:
    """Read-only view of a run directory's results (or of a lone ``metrics.json``)."""

    def __init__(self, path: str | Path, *, allow_unevaluated: bool = False):
        """``allow_unevaluated``: a run directory without ``metrics.json`` (a killed run, no checkpoint to evaluate)
        gives empty metrics (every value "n/a") instead of an error -- what ``radclr report`` shows for it."""
        path = Path(path)
        if path.is_file() and path.suffix == ".json":
            self.metrics_path, self.run_dir = path, path.parent
        else:
            self.run_dir, self.metrics_path = path, path / "metrics.json"
        if not self.run_dir.exists():
            raise RadclrError(f"{path}: no such run directory")
        if not self.metrics_path.exists() and not allow_unevaluated:
            raise RadclrError(f"{self.run_dir}: no metrics.json -- evaluate the run first "
                              f"(`radclr evaluate {self.run_dir}` or `radclr report {self.run_dir}`)")
        try:
            self.metrics: dict = json.loads(self.metrics_path.read_text()) if self.metrics_path.exists() else {}
        except (OSError, json.JSONDecodeError) as e:
            raise RadclrError(f"{self.metrics_path}: unreadable metrics file ({e})") from None
        self.cfg: dict = {}
        cfg_path = self.run_dir / "config.yaml"
        if cfg_path.exists():
            try:
                self.cfg = yaml.safe_load(cfg_path.read_text()) or {}
            except yaml.YAMLError as e:
                raise RadclrError(f"{cfg_path}: unreadable config ({e})") from None

    # --- identity -----------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self.cfg.get("name"):
            return str(self.cfg["name"])
        return self.run_dir.name if self.metrics_path.name == "metrics.json" else self.metrics_path.stem

    @property
    def findings(self) -> list[str]:
        f = self.metrics.get("findings")
        if f:
            return [str(x) for x in f]
        cls = self.metrics.get("classification", {}).get("auc") or {}
        return [k for k in cls if k != "mean"]

    @property
    def task(self) -> str:
        """``multiclass`` for single-label runs (``data.task``; arg-max metrics), else ``multilabel``."""
        cls = self.metrics.get("classification") or {}
        lin = self.metrics.get("linear_eval") or {}
        if cls.get("task") == "multiclass" or (not cls and lin.get("task") == "multiclass"):
            return "multiclass"
        return str((self.cfg.get("data") or {}).get("task") or "multilabel")

    @property
    def stages(self) -> list[dict]:
        return list(self.cfg.get("stages") or [])

    @property
    def dataset(self) -> str:
        path = str((self.cfg.get("data") or {}).get("path", "")) or "?"
        return Path(path).name if path not in ("demo", "phantom") else path

    def ablation_label(self) -> str | None:
        """Seed 001 Table 3 row of a BYOP run: Base / w. FL / w. BYOP / Full model (from the last stage)."""
        if not self.stages or self.stages[-1].get("method") != "byop":
            return None
        st = self.stages[-1]
        focal = st.get("loss", "focal") == "focal"  # the byop method's defaults: focal loss, BYOP on
        byop = bool(st.get("byop", True))
        return {(False, False): "Base", (True, False): "w. FL", (False, True): "w. BYOP",
                (True, True): "Full model"}[(focal, byop)]

    # --- classification -----------------------------------------------------------------------------------
    def _report(self) -> tuple[dict | None, str | None]:
        cls = self.metrics.get("classification")
        if isinstance(cls, dict) and cls:
            return cls.get("report"), "classifier"
        lin = self.metrics.get("linear_eval")
        if isinstance(lin, dict) and isinstance(lin.get("test_ci"), dict):
            return lin["test_ci"], "linear eval"
        return None, None

    def classification_source(self) -> str | None:
        """``"classifier"`` (the run's own fine-tuned classifier), ``"linear eval"`` or None (no numbers)."""
        return self._report()[1]

    def classification(self, metric: str, finding: str = "mean") -> Estimate:
        """``metric`` (auc, accuracy, f1, f1_weighted, sensitivity, specificity) of ``finding`` or ``mean``.

        A multi-class run (:attr:`task`) has one accuracy, weighted F1 and macro F1 for all classes (under
        ``mean``) and per class AUC, recall, precision and F1."""
        report, source = self._report()
        if report is not None:
            entry = report.get("mean") if finding == "mean" else (report.get("per_finding") or {}).get(finding)
            m = (entry or {}).get(metric)
            if isinstance(m, dict):
                return Estimate.of(m.get("value"), m)
        if source == "classifier":  # flat keys (reports written without the full report)
            cls = self.metrics["classification"]
            values, cis = cls.get(metric), (cls.get("ci") or {}).get(metric)
            if not isinstance(values, dict):  # multi-class: one value for all classes
                return Estimate.of(values, cis) if finding == "mean" else Estimate(None)
            return Estimate.of(values.get(finding), (cis or {}).get(finding) if isinstance(cis, dict) else None)
        return Estimate(None)

    def n_test_images(self) -> int | None:
        report, _ = self._report()
        n = (report or {}).get("n_images")
        return int(n) if n is not None else None

    # --- localization -------------------------------------------------------------------------------------
    @property
    def has_localization(self) -> bool:
        return isinstance(self.metrics.get("localization"), dict) and "iou_accuracy" in self.metrics["localization"]

    def localization(self, threshold: str, finding: str = "mean") -> Estimate:
        """Accuracy at T(IoU) = ``threshold`` (``"0.1"`` .. ``"0.7"``) of ``finding`` or ``mean``."""
        if not self.has_localization:
            return Estimate(None)
        loc = self.metrics["localization"]
        value = (loc["iou_accuracy"].get(_tkey(threshold)) or {}).get(finding)
        ci = ((loc.get("iou_accuracy_ci") or {}).get(_tkey(threshold)) or {}).get(finding)
        return Estimate.of(value, ci)

    def get(self, *keys: str, default: Any = None) -> Any:
        node: Any = self.metrics
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return default
            node = node[k]
        return node


def _tkey(t) -> str:
    return f"{float(t):.1f}"


def load_results(runs) -> list[RunResults]:
    """:class:`RunResults` for each run directory (or metrics.json path) in ``runs``."""
    return [r if isinstance(r, RunResults) else RunResults(r) for r in runs]
