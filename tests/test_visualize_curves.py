"""Figures: ROC with CI bands, loss curves (seed 000 Fig. 2), label efficiency (seed 004 Fig. 2), t-SNE
(seed 003 Fig. 3) and the radiomics panel -- computations on synthetic data with known answers, and that each
figure has the expected axes / lines and is written as a non-empty PNG."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radclr.errors import DataError
from radclr.visualize.curves import label_efficiency_figure, loss_curves_figure, roc_figure, stage_epochs
from radclr.visualize.embedding import subsample_indices, tsne_embedding, tsne_figure
from radclr.visualize.radiomics_panel import radiomics_panel, radiomics_predictability

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return data[:8] == PNG and len(data) > 2000


def _data_lines(ax):
    return [ln for ln in ax.get_lines() if not str(ln.get_label()).startswith("_")]


# ----------------------------------------------------------------------------------------------------------- ROC
def test_roc_figure_panels_lines_bands(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    pid = rng.integers(0, 120, n)
    y = (rng.random((n, 3)) < 0.3).astype(float)
    y[:, 2] = 0  # no positives: a panel that explains itself
    s = np.clip(0.4 * y + rng.random((n, 3)), 0, 1)
    path = tmp_path / "roc.png"
    fig = roc_figure(y, {"radclr": s, "baseline": rng.random((n, 3))}, ["Mass", "Nodule", "Hernia"],
                     patient_ids=pid, n_boot=50, path=path)
    assert len(fig.axes) == 3
    a0 = fig.axes[0]
    labels = [ln.get_label() for ln in _data_lines(a0)]
    assert labels[0] == "chance" and len(labels) == 3
    assert labels[1].startswith("radclr: AUC") and "[" in labels[1]
    assert len(a0.collections) == 2  # one CI band per model
    assert [t.get_text() for t in fig.axes[2].texts][0].startswith("no ROC: 0 positive")
    assert len(_data_lines(fig.axes[2])) == 1 and fig.axes[2].get_title() == "Hernia"
    assert _is_png(path)


def test_roc_figure_shape_error():
    with pytest.raises(ValueError, match="shape"):
        roc_figure(np.zeros((5, 2)), np.zeros((5, 3)), patient_ids=None)


# ---------------------------------------------------------------------------------------------------- losses
def _metrics_csv():
    return pd.DataFrame({
        "stage": ["pretrain"] * 6 + ["finetune"] * 4,
        "epoch": list(range(1, 7)) + list(range(1, 5)),
        "train_loss": np.r_[np.linspace(5, 3, 6), np.linspace(0.7, 0.3, 4)],
        "val_loss": np.r_[[np.nan] * 6, np.linspace(0.8, 0.5, 4)],
        "val_auc_mean": np.r_[[np.nan] * 6, [0.6, 0.7, 0.75, 0.8]],
        "lr": 1e-3,
    })


def test_stage_epochs_run_on():
    df = stage_epochs(_metrics_csv(), "stage")
    assert df["global_epoch"].tolist() == list(range(1, 11))


def test_loss_curves(tmp_path):
    csv = tmp_path / "metrics.csv"
    _metrics_csv().to_csv(csv, index=False)
    path = tmp_path / "loss.png"
    fig = loss_curves_figure(csv, path=path)
    (ax,) = fig.axes
    labels = sorted(ln.get_label() for ln in _data_lines(ax))
    # one line per (stage, loss column) with values: train_loss in both stages, val_loss only in fine-tuning
    assert labels == ["train_loss (finetune)", "train_loss (pretrain)", "val_loss (finetune)"]
    dividers = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and list(ln.get_xdata()) == [6.5, 6.5]]
    assert len(dividers) == 1
    x_ft = [ln for ln in _data_lines(ax) if ln.get_label() == "train_loss (finetune)"][0].get_xdata()
    assert list(x_ft) == [7, 8, 9, 10]
    assert _is_png(path)


def test_loss_curves_single_stage_and_bad_columns():
    df = pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.5, 0.2]})
    fig = loss_curves_figure(df)
    assert [ln.get_label() for ln in _data_lines(fig.axes[0])] == ["loss"]
    with pytest.raises(DataError, match="no column"):
        loss_curves_figure(df, columns=["val_loss"])
    with pytest.raises(DataError, match="empty"):
        loss_curves_figure(pd.DataFrame())


# ------------------------------------------------------------------------------------------- label efficiency
def test_label_efficiency(tmp_path):
    runs = {}
    for name, base in (("M1", 0.75), ("supervised", 0.65)):
        runs[name] = pd.DataFrame({"label_fraction": [0.05, 0.2, 0.5, 1.0],
                                   "auc": base + np.array([0, 0.05, 0.08, 0.1])})
        runs[name]["auc_ci_low"] = runs[name]["auc"] - 0.04
        runs[name]["auc_ci_high"] = runs[name]["auc"] + 0.02
    path = tmp_path / "le.png"
    fig = label_efficiency_figure(runs, path=path)
    (ax,) = fig.axes
    assert len(ax.containers) == 2  # one errorbar line per method
    line = ax.containers[0].lines[0]
    assert list(line.get_xdata()) == [5.0, 20.0, 50.0, 100.0]  # fractions shown as %
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["M1", "supervised"]
    assert _is_png(path)
    with pytest.raises(DataError, match="missing column"):
        label_efficiency_figure(runs, metric="f1_weighted")


# ------------------------------------------------------------------------------------------------------ t-SNE
def test_subsample_is_stratified_and_bounded():
    labels = np.r_[np.zeros(900), np.ones(100)]
    idx = subsample_indices(labels, max_points=200, seed=0)
    assert len(idx) <= 200 and len(np.unique(idx)) == len(idx)
    assert abs(labels[idx].mean() - 0.1) < 0.02
    assert np.array_equal(idx, subsample_indices(labels, max_points=200, seed=0))
    assert len(subsample_indices(labels[:50], 200)) == 50


def test_tsne_separates_separable_classes_and_is_deterministic():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 120)
    feats = rng.normal(size=(120, 80)) + 6.0 * labels[:, None]  # wide: PCA to 50 first
    a = tsne_embedding(feats, seed=0, max_iter=500)
    b = tsne_embedding(feats, seed=0, max_iter=500)
    np.testing.assert_array_equal(a, b)
    # nearest neighbour in the 2-D map has the same class almost always
    d = ((a[:, None] - a[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.mean(labels[d.argmin(1)] == labels) > 0.95


def test_tsne_figure_panels(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 150)
    feats = {f"epoch {e}": rng.normal(size=(150, 20)) + (e / 50) * labels[:, None] for e in (10, 50, 100)}
    path = tmp_path / "tsne.png"
    fig = tsne_figure(feats, labels, class_names=["normal", "bacterial", "viral"], max_points=90, path=path)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["epoch 10", "epoch 50", "epoch 100"]
    assert len(fig.axes[0].collections) == 3  # one scatter per class
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["normal", "bacterial", "viral"]
    assert len(fig.tsne_indices) <= 90 and fig.tsne_coords["epoch 50"].shape == (len(fig.tsne_indices), 2)
    assert _is_png(path)
    with pytest.raises(ValueError, match="rows"):
        tsne_figure({"a": np.zeros((10, 3))}, np.zeros(11))


# ------------------------------------------------------------------------------------------- radiomics panel
def test_radiomics_predictability_known_answers():
    rng = np.random.default_rng(3)
    n, d = 240, 24
    y = rng.normal(size=(n, d))
    r = np.column_stack([
        y @ rng.normal(size=d) + 3.0,          # exact linear function of the embedding -> R2 ~ 1
        rng.normal(size=n),                     # unrelated noise -> R2 ~ 0
        y[:, 0] + rng.normal(size=n),           # half of the variance explained -> R2 ~ 0.5
        np.full(n, 2.0),                        # constant -> NaN with a reason
        np.r_[np.nan, rng.normal(size=n - 1)],  # NaN -> NaN with a reason
    ])
    names = ["original_glcm_Contrast", "noise", "half", "const", "has_nan"]
    t = radiomics_predictability(y, r, names, n_splits=5, seed=0).set_index("feature")
    assert t.loc["original_glcm_Contrast", "r2_cv"] > 0.99 and t.loc["original_glcm_Contrast", "r_cv"] > 0.99
    assert abs(t.loc["noise", "r2_cv"]) < 0.05
    assert 0.3 < t.loc["half", "r2_cv"] < 0.6
    assert np.isnan(t.loc["const", "r2_cv"]) and t.loc["const", "reason"] == "constant feature"
    assert np.isnan(t.loc["has_nan", "r2_cv"]) and "non-finite" in t.loc["has_nan", "reason"]
    # scale of a feature does not matter
    r2 = r.copy()
    r2[:, 2] *= 1000.0
    t2 = radiomics_predictability(y, r2, names, n_splits=5, seed=0).set_index("feature")
    assert t2.loc["half", "r2_cv"] == pytest.approx(t.loc["half", "r2_cv"], abs=1e-6)


def test_radiomics_panel_figure_and_groups(tmp_path):
    rng = np.random.default_rng(4)
    n = 200
    y = rng.normal(size=(n, 10))
    r = np.column_stack([y[:, k] + 0.3 * k * rng.normal(size=n) for k in range(8)])
    names = [f"original_firstorder_F{k}" for k in range(8)]
    pid = np.repeat(np.arange(50), 4)
    path = tmp_path / "panel.png"
    fig, table = radiomics_panel(y, r, names, top_k=5, groups=pid, path=path)
    assert list(table.columns) == ["feature", "r2_cv", "r_cv", "alpha_median", "reason"]
    assert table["feature"].iloc[0] == "original_firstorder_F0"  # the noiseless one ranks first
    (ax,) = fig.axes
    assert len(ax.patches) == 5
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "firstorder_F0"  # best at the top, prefix dropped
    assert _is_png(path)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        radiomics_predictability(y, r[:10], names)
