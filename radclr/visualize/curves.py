"""Curves: ROC with bootstrap CI bands, training / fine-tuning loss curves, label-efficiency curves.

* :func:`roc_figure` -- one panel per finding, the ROC curve of the test data with a 95 % band from the patient
  bootstrap (vertical averaging on a fixed FPR grid, :func:`radclr.evaluation.bootstrap.bootstrap_roc`) and the
  AUC with its interval in the legend; several models can share the panels (pass ``{name: scores}``).
* :func:`loss_curves_figure` -- seed 000 Fig. 2: the pre-training and fine-tuning losses in one plot over a
  running epoch axis, a dashed divider and the stage name at each stage boundary (a run's ``metrics.csv``).
* :func:`label_efficiency_figure` -- seed 004 Fig. 2: x = % of training labels, y = a metric with its CI as
  error bars, one line per method.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot (no global state; Agg is used to
render), returned to the caller and written as PNG when ``path`` is given (:func:`save_figure`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from radclr.errors import DataError
from radclr.evaluation.bootstrap import bootstrap_roc

__all__ = ["FONT", "new_figure", "save_figure", "roc_figure", "loss_curves_figure", "label_efficiency_figure",
           "stage_epochs"]

FONT = {"title": 12, "label": 11, "tick": 9, "legend": 9, "suptitle": 14}


def new_figure(n_panels: int, ncols: int, panel_size: tuple[float, float] = (4.0, 3.6)):
    """A Figure with ``n_panels`` axes on a grid of ``ncols`` columns (no empty axes left over)."""
    if n_panels < 1:
        raise ValueError(f"need at least one panel, got {n_panels}")
    ncols = max(1, min(int(ncols), n_panels))
    nrows = int(np.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.5), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    for ax in axes:
        ax.tick_params(labelsize=FONT["tick"])
    return fig, axes


def save_figure(fig, path: str | Path | None, dpi: int = 120):
    """Write ``fig`` as PNG at ``path`` (parent folders created) when a path is given; returns ``fig``."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, format="png")
    return fig


# --------------------------------------------------------------------------------------------------------------
def _fmt_ci(a: Mapping[str, Any]) -> str:
    v, lo, hi = a.get("value"), a.get("ci_low"), a.get("ci_high")
    if v is None or not np.isfinite(v):
        return "AUC undefined"
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"AUC {v:.3f}"
    return f"AUC {v:.3f} [{lo:.3f}, {hi:.3f}]"


def roc_figure(y_true, y_score, findings: Sequence[str] | None = None, *, patient_ids, n_boot: int = 200,
               ci: float = 0.95, seed: int = 0, ncols: int = 4, title: str | None = "ROC curves (test)",
               path: str | Path | None = None, dpi: int = 120):
    """ROC curves per finding with patient-bootstrap CI bands.

    ``y_true [N, F]`` (NaN unknown), ``y_score`` ``[N, F]`` probabilities or ``{model name: [N, F]}`` for
    several models in the same panels; ``patient_ids [N]`` (``None`` resamples images). A finding with one class
    gets a panel saying why there is no curve. Returns the Figure (one axes per finding); saved when ``path``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    models = dict(y_score) if isinstance(y_score, Mapping) else {"": y_score}
    models = {k: (np.asarray(v, dtype=np.float64)[:, None] if np.ndim(v) == 1 else np.asarray(v, np.float64))
              for k, v in models.items()}
    for k, v in models.items():
        if v.shape != y.shape:
            raise ValueError(f"y_score{'[' + repr(k) + ']' if k else ''} has shape {v.shape}, y_true {y.shape}")
    names = [f"finding_{j}" for j in range(y.shape[1])] if findings is None else [str(f) for f in findings]
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} finding names for {y.shape[1]} label columns")
    fig, axes = new_figure(len(names), ncols, panel_size=(4.4, 4.8))
    colors = [f"C{i}" for i in range(10)]
    for j, (ax, name) in enumerate(zip(axes, names)):
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6", label="chance")
        for m, (model, scores) in enumerate(models.items()):
            r = bootstrap_roc(y[:, j], scores[:, j], groups=patient_ids, n_boot=n_boot, ci=ci, seed=seed)
            if not np.isfinite(r["auc"]["value"]):
                known = y[~np.isnan(y[:, j]), j]
                ax.text(0.5, 0.5, f"no ROC: {int(known.sum())} positive,\n{int((known == 0).sum())} negative",
                        ha="center", va="center", fontsize=FONT["legend"], transform=ax.transAxes)
                break
            col = colors[m % len(colors)]
            label = (f"{model}: " if model else "") + _fmt_ci(r["auc"])
            ax.plot(r["fpr"], r["tpr"], color=col, lw=1.8, label=label)
            if n_boot > 0 and r["n_valid_boot"] > 0:
                ax.fill_between(r["fpr"], r["tpr_low"], r["tpr_high"], color=col, alpha=0.2, lw=0)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=FONT["title"])
        ax.set_xlabel("false positive rate (1 - specificity)", fontsize=FONT["label"])
        ax.set_ylabel("true positive rate (sensitivity)", fontsize=FONT["label"])
        ax.legend(loc="lower right", fontsize=FONT["legend"], frameon=False)
    if title:
        band = f"; bands: {int(round(ci * 100))} % CI, {n_boot} patient resamples" if n_boot else ""
        fig.suptitle(title + band, fontsize=FONT["suptitle"])
    return save_figure(fig, path, dpi)


# --------------------------------------------------------------------------------------------------------------
def stage_epochs(metrics: pd.DataFrame, stage_column: str | None, epoch_column: str = "epoch") -> pd.DataFrame:
    """Add ``global_epoch``: epochs counted on across stages in the order the stages appear (row order)."""
    df = metrics.reset_index(drop=True).copy()
    if stage_column is None:
        df["_stage"] = ""
        stage_column = "_stage"
    if epoch_column not in df:
        df[epoch_column] = df.groupby(stage_column, sort=False).cumcount() + 1
    offset, offsets = 0, {}
    for stage in pd.unique(df[stage_column]):
        offsets[stage] = offset
        offset += int(df.loc[df[stage_column] == stage, epoch_column].max())
    df["global_epoch"] = [offsets[s] + int(e) for s, e in zip(df[stage_column], df[epoch_column])]
    return df


def loss_curves_figure(metrics, *, columns: Sequence[str] | None = None, stage_column: str | None = "stage",
                       epoch_column: str = "epoch", log_y: bool = False,
                       title: str | None = "Training and fine-tuning loss", path: str | Path | None = None,
                       dpi: int = 120):
    """Seed 000 Fig. 2: every loss of every stage over a running epoch axis, stages separated by a divider.

    ``metrics`` is a DataFrame or the path of a ``metrics.csv`` with ``epoch``, a stage column (``stage``, or
    ``phase``; absent -> one stage) and loss columns (default: every numeric column whose name contains
    ``loss``). Each (stage, loss column) with values is one line, so a loss never connects across stages.
    Returns the Figure (one axes); saved when ``path``.
    """
    df = pd.read_csv(metrics) if isinstance(metrics, (str, Path)) else pd.DataFrame(metrics)
    if df.empty:
        raise DataError("loss curves: the metrics table is empty (has the run trained an epoch?)")
    if stage_column is not None and stage_column not in df:
        stage_column = "phase" if "phase" in df else None
    if columns is None:
        columns = [c for c in df.columns if "loss" in str(c).lower() and pd.api.types.is_numeric_dtype(df[c])]
    missing = [c for c in columns if c not in df]
    if missing or not columns:
        raise DataError(f"loss curves: no column(s) {missing or 'containing loss'} in the metrics table "
                        f"(columns: {list(df.columns)})")
    df = stage_epochs(df, stage_column, epoch_column)
    stage_col = stage_column or "_stage"
    stages = list(pd.unique(df[stage_col]))
    fig, (ax,) = new_figure(1, 1, panel_size=(7.5, 4.5))
    colors = {c: f"C{i % 10}" for i, c in enumerate(columns)}
    styles = ["-", "--", "-.", ":"]
    for si, stage in enumerate(stages):
        part = df[df[stage_col] == stage]
        for c in columns:
            vals = pd.to_numeric(part[c], errors="coerce")
            ok = vals.notna().to_numpy()
            if not ok.any():
                continue
            label = f"{c} ({stage})" if stage else str(c)
            ax.plot(part["global_epoch"].to_numpy()[ok], vals.to_numpy()[ok], color=colors[c],
                    ls=styles[si % len(styles)], marker="o" if ok.sum() < 30 else None, ms=3, lw=1.6, label=label)
    if len(stages) > 1:
        y_top = 1.0
        for si, stage in enumerate(stages):
            first = int(df.loc[df[stage_col] == stage, "global_epoch"].min())
            if si > 0:
                ax.axvline(first - 0.5, color="0.4", ls="--", lw=1.0)
            ax.text(first - 0.4, y_top, str(stage), transform=ax.get_xaxis_transform(), va="top", ha="left",
                    fontsize=FONT["legend"], color="0.25")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("epoch (running over stages)" if len(stages) > 1 else "epoch", fontsize=FONT["label"])
    ax.set_ylabel("loss", fontsize=FONT["label"])
    if title:
        ax.set_title(title, fontsize=FONT["title"])
    ax.legend(fontsize=FONT["legend"], frameon=False, loc="best")
    ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi)


# --------------------------------------------------------------------------------------------------------------
def _efficiency_table(results, method_column: str) -> pd.DataFrame:
    if isinstance(results, Mapping):
        parts = []
        for name, table in results.items():
            t = pd.read_csv(table) if isinstance(table, (str, Path)) else pd.DataFrame(table).copy()
            t[method_column] = name
            parts.append(t)
        return pd.concat(parts, ignore_index=True)
    if isinstance(results, (str, Path)):
        return pd.read_csv(results)
    return pd.DataFrame(results).copy()


def label_efficiency_figure(results, *, metric: str = "auc", x: str = "label_fraction", method_column: str = "method",
                            percent: bool | None = None, log_x: bool = False, ylabel: str | None = None,
                            title: str | None = "Label efficiency", path: str | Path | None = None, dpi: int = 120):
    """Seed 004 Fig. 2: a metric against the % of training labels, one line per method, CI error bars.

    ``results``: a DataFrame (or CSV path) with columns ``method``, ``label_fraction``, ``<metric>`` and
    optionally ``<metric>_ci_low`` / ``<metric>_ci_high`` (the layout of ``RUN/fractions/summary.csv``), or
    ``{method name: DataFrame | CSV path}``. Fractions in (0, 1] are shown as percent (``percent=None``: when
    every x <= 1). Returns the Figure (one axes, one line per method); saved when ``path``.
    """
    df = _efficiency_table(results, method_column)
    need = [c for c in (x, metric) if c not in df]
    if need:
        raise DataError(f"label efficiency: missing column(s) {need} (columns: {list(df.columns)})")
    if method_column not in df:
        df[method_column] = ""
    xs_all = pd.to_numeric(df[x], errors="coerce")
    if percent is None:
        percent = bool(xs_all.max() <= 1.0)
    fig, (ax,) = new_figure(1, 1, panel_size=(6.5, 4.5))
    lo_c, hi_c = f"{metric}_ci_low", f"{metric}_ci_high"
    for i, (method, part) in enumerate(df.groupby(method_column, sort=False)):
        part = part.sort_values(x)
        xs = pd.to_numeric(part[x], errors="coerce").to_numpy(dtype=float) * (100.0 if percent else 1.0)
        ys = pd.to_numeric(part[metric], errors="coerce").to_numpy(dtype=float)
        yerr = None
        if lo_c in part and hi_c in part:
            lo = pd.to_numeric(part[lo_c], errors="coerce").to_numpy(dtype=float)
            hi = pd.to_numeric(part[hi_c], errors="coerce").to_numpy(dtype=float)
            # a percentile interval need not contain the point estimate: clip, matplotlib refuses negative yerr
            yerr = np.clip(np.vstack([np.nan_to_num(ys - lo), np.nan_to_num(hi - ys)]), 0.0, None)
        ax.errorbar(xs, ys, yerr=yerr, marker="o", ms=5, lw=1.8, capsize=4, color=f"C{i % 10}",
                    label=str(method) if method != "" else metric)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("labelled training data (%)" if percent else x, fontsize=FONT["label"])
    ax.set_ylabel(ylabel or metric.replace("_", " "), fontsize=FONT["label"])
    if title:
        ax.set_title(title, fontsize=FONT["title"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT["legend"], frameon=False, loc="best")
    return save_figure(fig, path, dpi)
