"""The sections of ``radclr report``, one builder each: ``builder(ctx) -> html`` or ``raise Omit(reason)``.

=====================  ======================================================================================
id                     content (figure style of)
=====================  ======================================================================================
``summary``            name, stages/methods, data, split counts, findings, config, dates, radclr version
``training``           losses of every stage over a running epoch axis (seed 000 Fig. 2), last epoch per stage
``classification``     per-finding AUC/accuracy/F1/sensitivity/specificity with 95 % patient-bootstrap CIs,
                       thresholds + their rule, ROC curves with CI bands (``predictions_test.csv``); a
                       multi-class run: accuracy, weighted/macro F1, per-class recall/precision/F1/AUC, the
                       confusion matrix (arg-max, no thresholds) and one-vs-rest ROC curves
``localization``       accuracy at T(IoU) 0.1..0.7 per finding + mean with CIs, centre-box / whole-image
                       baselines, Grad-CAM overlays (seed 001 Table 2, Fig. 5)
``representation``     t-SNE of test-image representations from the kept checkpoints and the final one,
                       coloured by label (seed 003 Fig. 3); at most 2,000 test images (stratified sample), the
                       only ones whose representations are computed
``radiomics``          which radiomic features the image embedding predicts (cross-validated R^2 of each
                       standardised fixed-region feature from the test images' representations) + the
                       radiomics reference population ``radclr predict`` ranks against
``label-efficiency``   test metric vs fraction of training labels (seed 004 Fig. 2; ``fractions/summary.csv``)
``linear-eval``        linear evaluation of the frozen representation (seed 003 §V-B / seed 004 Table 1)
``seeds``              the run's numbers across training seeds (``radclr train --seeds``): mean +- sd over seeds
                       next to each seed's value and 95 % patient-bootstrap interval
=====================  ======================================================================================
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from radclr import __version__
from radclr.errors import RadclrError
from radclr.predict import build_radiomics_reference, load_radiomics_reference
from radclr.report.context import Omit, ReportContext
from radclr.report.html import esc, figure_uri, img, png_file_uri, table
from radclr.report.results import IOU_THRESHOLDS, Estimate
from radclr.runs.seeds import SUMMARY_FILE
from radclr.training_data import default_cache_dir
from radclr.training_data.prepare import fixed_radiomics
from radclr.visualize.curves import label_efficiency_figure, loss_curves_figure, roc_figure
from radclr.visualize.embedding import subsample_indices, tsne_figure
from radclr.visualize.radiomics_panel import radiomics_panel_figure, radiomics_predictability

__all__ = ["Section", "SECTIONS", "build_sections"]

METRICS = (("auc", "AUC"), ("accuracy", "Accuracy"), ("f1", "F1"), ("f1_weighted", "F1 (weighted)"),
           ("sensitivity", "Sensitivity"), ("specificity", "Specificity"))
#: a single-label multi-class task (data.task: multiclass): overall and per-class metrics
MULTICLASS_OVERALL = (("accuracy", "Accuracy"), ("f1_weighted", "F1 (weighted)"), ("f1_macro", "F1 (macro)"),
                      ("auc", "AUC (one-vs-rest, mean)"))
MULTICLASS_PER_CLASS = (("auc", "AUC (one-vs-rest)"), ("recall", "Recall"), ("precision", "Precision"), ("f1", "F1"))


@dataclass
class Section:
    id: str
    title: str
    body: str = ""
    status: str = "ok"  # ok | omitted | failed
    reason: str = ""

    def html(self) -> str:
        head = f'<section id="{esc(self.id)}" class="{esc(self.status)}"><h2>{esc(self.title)}</h2>'
        if self.status != "ok":
            label = "Omitted" if self.status == "omitted" else "Could not be built"
            return f'{head}<p class="reason">{label}: {esc(self.reason)}</p></section>'
        return f"{head}{self.body}</section>"


def _fmt(est: Estimate) -> str:
    return est.format()


def _close(fig) -> None:
    fig.clf()


# --------------------------------------------------------------------------------------------------------------
def summary(ctx: ReportContext) -> str:
    cfg, m = ctx.cfg, ctx.metrics
    stages = []
    for st in cfg.get("stages") or []:
        epochs = st.get("epochs", (cfg.get("trainer") or {}).get("epochs"))
        stages.append(f"{st.get('name', '?')}: {st.get('method', '?')} ({epochs} epoch{'s' if epochs != 1 else ''})")
    data = cfg.get("data") or {}
    rows = [("Name", cfg.get("name", ctx.run_dir.name)), ("Run directory", str(ctx.run_dir)),
            ("Stages (method)", " -> ".join(stages) or "?"),
            ("Encoder", (cfg.get("model") or {}).get("encoder", "?")),
            ("Data", f"{data.get('path', '?')} (image size {data.get('image_size', '?')} px, intensity "
                     f"{data.get('intensity', 'auto')})"),
            ("Findings", ", ".join(ctx.results.findings) or "?"),
            ("Evaluated checkpoint", f"{m.get('checkpoint', '?')} on the {m.get('split', 'test')} split")]
    split = ctx.table("splits.csv")
    if split is not None:
        parts = []
        for name in ("train", "val", "test"):
            part = split[split["split"] == name]
            text = f"{name} {len(part)} images / {part['patient_id'].nunique()} patients"
            if name == "train" and "labeled" in part and not part["labeled"].all():
                text += f" ({int(part['labeled'].sum())} labelled)"
            parts.append(text)
        rows.append(("Split (patient-wise)", "; ".join(parts)))
    cfg_path = ctx.run_dir / "config.yaml"
    metrics_csv = ctx.run_dir / "metrics.csv"
    when = metrics_csv if metrics_csv.exists() else cfg_path
    if when.exists():
        rows.append(("Trained", time.strftime("%Y-%m-%d %H:%M", time.localtime(when.stat().st_mtime))))
    rows += [("Report generated", time.strftime("%Y-%m-%d %H:%M")), ("radclr version", __version__),
             ("Seed", cfg.get("seed", "?"))]
    body = table(None, rows, row_headers=True)
    if cfg_path.exists():
        body += (f"<details><summary>Resolved configuration (config.yaml)</summary>"
                 f"<pre>{esc(cfg_path.read_text())}</pre></details>")
    return body


# --------------------------------------------------------------------------------------------------------------
def training(ctx: ReportContext) -> str:
    df = ctx.table("metrics.csv")
    if df is None or df.empty:
        raise Omit("no metrics.csv (the run has not finished an epoch)")
    fig = loss_curves_figure(df)
    body = img(figure_uri(fig), "training and fine-tuning losses",
               "Every loss of every stage over a running epoch axis; dashed lines separate the stages "
               "(seed 000 Fig. 2 style). Training losses are epoch means; validation losses on the validation split.")
    _close(fig)
    stage_col = "stage" if "stage" in df else None
    last = df.groupby(stage_col, sort=False).tail(1) if stage_col else df.tail(1)
    cols = [c for c in last.columns if c != "stage" and last[c].notna().any()]
    keys = ["stage"] if stage_col else []
    rows = [[(f"{v:.4g}" if isinstance(v, float) else v) for v in r] for r in last[keys + cols].itertuples(index=False)]
    numeric = [False] * len(keys) + [True] * len(cols)
    body += "<h3>Last epoch of each stage</h3>" + table(keys + cols, rows, numeric=numeric)
    return body


# --------------------------------------------------------------------------------------------------------------
def _est(entry) -> str:
    return Estimate.of(entry.get("value"), entry).format() if isinstance(entry, dict) else "n/a"


def multiclass_tables(report: dict) -> str:
    """Overall metrics, per-class metrics and the confusion matrix of a multi-class report
    (:func:`radclr.evaluation.bootstrap.multiclass_report`) as HTML tables."""
    mean, per = report.get("mean") or {}, report.get("per_finding") or {}
    classes = list(report.get("findings") or per)
    body = table([n for _, n in MULTICLASS_OVERALL], [[_est(mean.get(k)) for k, _ in MULTICLASS_OVERALL]],
                 numeric=[True] * len(MULTICLASS_OVERALL))
    rows = [[c] + [_est((per.get(c) or {}).get(k)) for k, _ in MULTICLASS_PER_CLASS] +
            [(per.get(c) or {}).get("n_positive", "")] for c in classes]
    body += "<h3>Per class</h3>" + table(["Class"] + [n for _, n in MULTICLASS_PER_CLASS] + ["images"], rows,
                                         numeric=[False] + [True] * (len(MULTICLASS_PER_CLASS) + 1))
    cm = (report.get("multiclass") or {}).get("confusion_matrix")
    if cm:
        body += "<h3>Confusion matrix</h3>" + table(
            ["true \\ predicted"] + classes, [[c] + [str(v) for v in row] for c, row in zip(classes, cm)],
            numeric=[False] + [True] * len(classes), row_headers=True)
    return body


def _multiclass_classification(ctx: ReportContext, cls: dict) -> str:
    report = dict(cls.get("report") or {})
    report["multiclass"] = cls.get("multiclass") or {}
    boot = report.get("bootstrap") or {}
    body = multiclass_tables(report)
    body += (f"<p class=\"note\">Single-label task with {len(report.get('findings') or [])} classes: each image is "
             f"assigned the class of highest probability ({esc(cls.get('decision_rule', 'arg-max'))}). "
             f"{esc(cls.get('split', 'test'))} split: {esc(cls.get('n_images', '?'))} images of "
             f"{esc(cls.get('n_patients', '?'))} patients. Weighted F1 = per-class F1 weighted by the class's "
             f"images (seed 004); macro F1 = their unweighted mean over the classes present. 95 % confidence "
             f"intervals from {esc(boot.get('n_boot', '?'))} bootstrap resamples of "
             f"{esc(boot.get('resampling', 'patients'))}.</p>")
    return body + (_roc_curves(ctx, cls, ctx.results.findings, "ROC curves (one-vs-rest)",
                               "One-vs-rest ROC curve of each class's probability on the {split} split") or "")


def _roc_curves(ctx: ReportContext, cls: dict, findings: list[str], title: str, caption: str) -> str | None:
    """ROC figure per finding/class of the evaluated split's predictions with patient-bootstrap bands (at most 200
    resamples); ``None`` without a predictions file. ``caption`` may name ``{split}``."""
    split = cls.get("split", "test")
    pred = ctx.table(f"predictions_{split}.csv")
    if pred is None:
        return None
    y = np.column_stack([pred[f"y_{f}"].to_numpy(dtype=float) for f in findings])
    p = np.column_stack([pred[f"p_{f}"].to_numpy(dtype=float) for f in findings])
    n_boot = min(int((ctx.cfg.get("evaluation") or {}).get("n_boot", 200)), 200)
    fig = roc_figure(y, p, findings, patient_ids=pred["patient_id"].to_numpy(), n_boot=n_boot,
                     seed=int(ctx.cfg.get("seed", 0)), ncols=min(4, len(findings)))
    out = img(figure_uri(fig), title, caption.format(split=split) + f"; bands: 95 % pointwise intervals from "
              f"{n_boot} patient-bootstrap resamples.")
    _close(fig)
    return out


def classification(ctx: ReportContext) -> str:
    cls = ctx.metrics.get("classification")
    if not cls:
        method = ctx.metrics.get("method", "?")
        extra = "; see Linear evaluation" if ctx.metrics.get("linear_eval") else ""
        raise Omit(f"the evaluated model ({method}) has no classifier, so there are no classification metrics{extra}")
    if cls.get("task") == "multiclass":
        return _multiclass_classification(ctx, cls)
    r = ctx.results
    findings = r.findings
    report = cls.get("report") or {}
    thresholds = cls.get("thresholds") or {}
    rows, classes = [], []
    for f in findings + ["mean"]:
        entry = (report.get("per_finding") or {}).get(f, {}) if f != "mean" else {}
        thr = thresholds.get(f)
        counts = f"{entry.get('n_positive', '?')} / {entry.get('n_negative', '?')}" if entry else ""
        rows.append([f] + [_fmt(r.classification(k, f)) for k, _ in METRICS] +
                    [f"{thr:.3f}" if isinstance(thr, (int, float)) else "", counts])
        classes.append("mean" if f == "mean" else "")
    boot = report.get("bootstrap") or {}
    body = table(["Finding"] + [n for _, n in METRICS] + ["Threshold", "positive / negative"], rows,
                 numeric=[False] + [True] * (len(METRICS) + 2), row_classes=classes)
    body += (f"<p class=\"note\">{esc(cls.get('split', 'test'))} split: {esc(cls.get('n_images', '?'))} images of "
             f"{esc(cls.get('n_patients', '?'))} patients. Values with 95 % confidence intervals from "
             f"{esc(boot.get('n_boot', '?'))} bootstrap resamples of {esc(boot.get('resampling', 'patients'))}. "
             f"Thresholds: {esc(cls.get('threshold_rule', '?'))}; an image is positive when p &ge; threshold. "
             f"Mean = unweighted mean over the findings where the metric is defined.</p>")
    roc = _roc_curves(ctx, cls, findings, "ROC curves", "ROC curves of the {split} split")
    return body + (roc if roc is not None else "<p class=\"note\">No predictions file, so no ROC curves.</p>")


# --------------------------------------------------------------------------------------------------------------
def localization(ctx: ReportContext) -> str:
    r = ctx.results
    loc = ctx.metrics.get("localization")
    if isinstance(loc, dict) and loc.get("scored") is False:  # no GT boxes: show, do not score
        fig_path = ctx.run_dir / "figures" / (loc.get("figure") or "localization_examples.png")
        body = f"<p class=\"note\">Not scored: {esc(loc.get('reason', ''))}.</p>"
        if fig_path.exists():
            body += img(png_file_uri(fig_path), "Grad-CAM localization (unscored)",
                        "Test images the model is most confident are positive: Grad-CAM heatmap and the predicted "
                        "box (red) for the top finding; there is no ground truth to compare with.")
        return body
    if not r.has_localization:
        if ctx.metrics.get("localization_skipped"):
            raise Omit(str(ctx.metrics["localization_skipped"]))
        if ctx.metrics.get("classification") is None:
            raise Omit("the evaluated model has no classifier to compute Grad-CAM from")
        raise Omit("no localization results: no test image with a ground-truth box (or localization is off)")
    loc = ctx.metrics["localization"]
    findings = [f for f in r.findings if f in (loc["iou_accuracy"].get("0.1") or {})]
    base = loc.get("baselines") or {}
    rows = []
    for t in IOU_THRESHOLDS:
        row = [t] + [_fmt(r.localization(t, f)) for f in findings] + [_fmt(r.localization(t, "mean"))]
        for b in ("centre_box", "whole_image"):
            v = ((base.get(b) or {}).get(t) or {}).get("mean")
            row.append(Estimate.of(v).format())
        rows.append(row)
    header = ["T(IoU)"] + findings + ["Mean", "centre box (mean)", "whole image (mean)"]
    body = table(header, rows, numeric=[False] + [True] * (len(header) - 1))
    n_cases = loc.get("n_cases") or {}
    cases = ", ".join(f"{k} {v}" for k, v in n_cases.items())
    rule = loc.get("definition", loc.get("rule", "?"))
    body += (f"<p class=\"note\">{esc(loc.get('n_images', '?'))} test images with ground-truth boxes; cases per "
             f"finding: {esc(cases)}. Rule: {esc(rule)}. "
             f"CAM to box: {esc(json.dumps(loc.get('cam_options', {})))}"
             f"{esc(_threshold_origin(loc))}; {esc(loc.get('n_fallback_boxes', '?'))} "
             f"fallback box(es). Baselines use the same rule (centre-box sizes from "
             f"{esc(base.get('centre_box_sizes', '?'))}).</p>")
    fig_path = ctx.run_dir / "figures" / (loc.get("figure") or "localization_examples.png")
    if fig_path.exists():
        body += img(png_file_uri(fig_path), "Grad-CAM localization examples",
                    "Test images: original, then Grad-CAM heatmap with the ground-truth box (yellow) and the "
                    "predicted box (red) for the finding in the title (seed 001 Fig. 5 style).")
    return body


def _threshold_origin(loc: dict) -> str:
    cal = loc.get("cam_threshold")
    return f" (threshold from {cal['fit_on']})" if isinstance(cal, dict) and cal.get("fit_on") else ""


# --------------------------------------------------------------------------------------------------------------
def _kept_checkpoints(ctx: ReportContext) -> list[tuple[str, object]]:
    ckdir = ctx.run_dir / "checkpoints"
    stages = [st.get("name") for st in ctx.cfg.get("stages") or []]
    kept = []
    for p in ckdir.glob("*-epoch*.pt"):
        name, _, ep = p.stem.rpartition("-epoch")
        if ep.isdigit():
            kept.append((stages.index(name) if name in stages else len(stages), int(ep), name, p))
    kept.sort()
    out = [(f"{name} epoch {ep}" if len(stages) > 1 else f"epoch {ep}", p) for _, ep, name, p in kept][-5:]
    if (ckdir / "last.pt").exists():
        out.append(("final", ckdir / "last.pt"))
    return out


TSNE_POINTS = 2000  # test images per t-SNE panel (a stratified sample of larger test splits)


def representation(ctx: ReportContext) -> str:
    idx = ctx.test_indices
    if len(idx) < 5:
        raise Omit(f"t-SNE needs at least 5 test images, the split has {len(idx)}")
    checkpoints = _kept_checkpoints(ctx)
    if not checkpoints:
        raise Omit("no checkpoints in the run directory")
    labels = ctx.class_labels(idx)
    seed = int(ctx.cfg.get("seed", 0))
    keep = subsample_indices(labels, TSNE_POINTS, seed)  # the images t-SNE shows: only their features are computed
    idx, labels = idx[keep], labels[keep]
    feats = {name: ctx.features(path, idx) for name, path in checkpoints}
    fig = tsne_figure(feats, labels, max_points=TSNE_POINTS, seed=seed, ncols=min(3, len(feats)), title="t-SNE")
    n = len(getattr(fig, "tsne_indices", idx))
    body = img(figure_uri(fig), "t-SNE of learned representations",
               f"Representations y_i = f_i(x) of {n} test images from {len(feats)} checkpoint(s) "
               "(kept epochs, trainer.keep_epochs, and the final one), coloured by label (seed 003 Fig. 3). "
               "Distances between clusters carry no meaning; look at how mixed the classes are.")
    _close(fig)
    return body


# --------------------------------------------------------------------------------------------------------------
def radiomics(ctx: ReportContext) -> str:
    data = ctx.data
    idx = ctx.test_indices
    note = ""
    if len(idx) < 10:  # 5-fold cross-validation needs at least 10 rows
        idx = np.sort(np.concatenate([idx, data.indices("val")]))
        note = " (the test split alone is too small: test + validation images)"
    if len(idx) < 10:
        raise Omit(f"the radiomics panel needs at least 10 held-out images, the run has {len(idx)}")
    if data.radiomics is None:
        cache = default_cache_dir() if not ctx.cfg["data"].get("cache_dir") else ctx.cfg["data"]["cache_dir"]
        data.radiomics_names, data.radiomics = fixed_radiomics(data.dataset, data.store, data.boxes,
                                                               ctx.run.cfg["radiomics"], cache, progress=ctx.progress)
    Y = ctx.features(ctx.run.checkpoint, idx)
    groups = data.dataset.patient_ids[idx]
    k = int(min(5, len(np.unique(groups))))
    if k < 2:
        raise Omit("the held-out images come from fewer than 2 patients: no cross-validation possible")
    tab = radiomics_predictability(Y, data.radiomics[idx], data.radiomics_names, groups=groups, n_splits=k,
                                   seed=int(ctx.cfg.get("seed", 0)))
    fig = radiomics_panel_figure(tab, title=None)  # the section heading and caption say what it is
    region = ctx.cfg.get("radiomics", {}).get("region", "box")
    where = "the whole image" if region == "whole_image" else "the ground-truth box (the whole image where none)"
    body = img(figure_uri(fig), "radiomics panel",
               f"How well each standardised radiomic feature of {where} can be predicted linearly from the "
               f"image representation of {len(idx)} held-out images{note}: out-of-fold R\u00b2 of a ridge "
               f"regression, {k}-fold patient-wise cross-validation. ~1: the embedding encodes the feature; "
               "~0 or below: it does not.")
    _close(fig)
    top = tab[np.isfinite(tab["r2_cv"])].head(15)
    body += "<h3>Features the embedding agrees with most</h3>" + table(
        ["Feature", "R\u00b2 (cross-validated)", "r (prediction vs feature)"],
        [[row.feature, f"{row.r2_cv:.3f}", f"{row.r_cv:.3f}"] for row in top.itertuples()], numeric=[False, True, True])
    n_bad = int((tab["reason"] != "").sum())
    if n_bad:
        body += f"<p class=\"note\">{n_bad} feature(s) left out (constant or non-finite on these images).</p>"
    return body + _reference_block(ctx)


def _reference_block(ctx: ReportContext) -> str:
    """Summary of (and, when missing, the build of) the population ``radclr predict`` ranks radiomics against."""
    if ctx.metrics.get("classification") is None or ctx.run.method.cam_head() is None or \
            ctx.cfg.get("radiomics", {}).get("region") == "roi_crop":
        return ""
    ref = load_radiomics_reference(ctx.run_dir)
    if ref is None:
        try:
            build_radiomics_reference(ctx.run_dir, run=ctx.run, data=ctx.data, progress=ctx.progress)
        except RadclrError as e:
            return f"<p class=\"note\">No radiomics reference population for <code>radclr predict</code>: {esc(e)}</p>"
        ref = load_radiomics_reference(ctx.run_dir)
    z = np.load(ref.path, allow_pickle=False)
    boxes = z["boxes"]
    S = int(ref.meta.get("image_size", ctx.run.image_size))
    area = 100.0 * boxes[:, 2] * boxes[:, 3] / float(S * S)
    counts = pd.Series(z["findings"]).value_counts()
    return ("<h3>Reference population for <code>radclr predict</code></h3>"
            f"<p>{len(ref)} training images (seed {ref.meta.get('seed')}, at most {ref.meta.get('max_images')}): "
            f"Grad-CAM box of each image's top finding ({esc(', '.join(f'{k} {v}' for k, v in counts.items()))}); "
            f"median box area {np.median(area):.0f} % of the image (IQR {np.percentile(area, 25):.0f}-"
            f"{np.percentile(area, 75):.0f} %), {int(z['fallback'].sum())} fallback box(es). "
            f"<code>radclr predict</code> reports each radiomic feature of a new image's box as a percentile "
            f"of this population. File: <code>{esc(ref.path.name)}</code>.</p>")


# --------------------------------------------------------------------------------------------------------------
def label_efficiency(ctx: ReportContext) -> str:
    df = ctx.table("fractions/summary.csv")
    if df is None or df.empty:
        raise Omit("no label-fraction results (train with --label-fractions to get fractions/summary.csv)")
    df = df.assign(method=ctx.results.name)
    fig = label_efficiency_figure(df, metric="auc", ylabel="mean test AUC")
    body = img(figure_uri(fig), "label efficiency", "Mean test AUC against the fraction of training labels, 95 % "
               "patient-bootstrap intervals as error bars (seed 004 Fig. 2 style).")
    _close(fig)
    metrics = [m for m in ("auc", "accuracy", "f1", "sensitivity", "specificity") if m in df]
    rows = []
    for row in df.sort_values("label_fraction").to_dict("records"):
        cells = [f"{100 * float(row['label_fraction']):g} %", row.get("n_labeled", "")]
        for m in metrics:
            cells.append(Estimate.of(row.get(m), [row.get(f"{m}_ci_low"), row.get(f"{m}_ci_high")]).format())
        rows.append(cells)
    return body + table(["labels", "labelled images"] + metrics, rows, numeric=[True] * (2 + len(metrics)))


# --------------------------------------------------------------------------------------------------------------
def linear_eval(ctx: ReportContext) -> str:
    lin = ctx.metrics.get("linear_eval")
    if not isinstance(lin, dict) or not lin:
        raise Omit("linear evaluation was not run (evaluation.linear_eval: false)")
    if lin.get("skipped"):
        raise Omit(str(lin["skipped"]))
    if lin.get("task") == "multiclass":
        rep = lin.get("test_ci") or {"mean": {k: {"value": (lin.get("test") or {}).get(k)}
                                              for k, _ in MULTICLASS_OVERALL}, "findings": lin.get("findings")}
        c = (lin.get("chosen_C") or {}).get("all")
        return multiclass_tables(rep) + (
            f"<p class=\"note\">Multinomial logistic regression on the frozen representation y_i "
            f"({esc(lin.get('standardize', ''))}; class weights {esc(lin.get('class_weight', ''))}; C = "
            f"{esc(c)} chosen by {esc(lin.get('selection', ''))}); {esc(lin.get('n_train_labeled', '?'))} labelled "
            f"training, {esc(lin.get('n_val', '?'))} validation, {esc(lin.get('n_test', '?'))} test images; arg-max "
            "prediction. 95 % patient-bootstrap intervals.</p>")
    rep = lin.get("test_ci") or {}
    names = list(rep.get("findings") or (lin.get("per_finding") or {}).keys())
    rows, classes = [], []
    for f in names + ["mean"]:
        entry = rep.get("mean") if f == "mean" else (rep.get("per_finding") or {}).get(f, {})
        cells = [f]
        for key, _ in METRICS:
            m = (entry or {}).get(key)
            if isinstance(m, dict):
                cells.append(Estimate.of(m.get("value"), m).format())
            else:
                v = (lin.get("test") or {}).get(key) if f == "mean" else \
                    ((lin.get("per_finding") or {}).get(f, {}).get("test") or {}).get(key)
                cells.append(Estimate.of(v).format())
        c = (lin.get("chosen_C") or {}).get(f)
        cells.append(f"{c:g}" if isinstance(c, (int, float)) else "")
        rows.append(cells)
        classes.append("mean" if f == "mean" else "")
    body = table(["Finding"] + [n for _, n in METRICS] + ["C"], rows, numeric=[False] + [True] * (len(METRICS) + 1),
                 row_classes=classes)
    n_train = lin.get("n_train_labeled", lin.get("n_train", "?"))
    body += (f"<p class=\"note\">Logistic regression on the frozen representation y_i "
             f"({esc(lin.get('standardize', ''))}; class weights {esc(lin.get('class_weight', ''))}; C chosen by "
             f"{esc(lin.get('selection', ''))}); {esc(n_train)} labelled training, {esc(lin.get('n_val', '?'))} "
             f"validation, {esc(lin.get('n_test', '?'))} test images; thresholds {esc(lin.get('threshold_rule', '?'))} "
             "on validation. 95 % patient-bootstrap intervals.</p>")
    return body


# --------------------------------------------------------------------------------------------------------------
def seeds(ctx: ReportContext) -> str:
    path = ctx.run_dir.parent / SUMMARY_FILE
    if not path.exists():
        raise Omit("one training seed: `radclr train CONFIG --out OUT --seeds 0,1,2` trains several and shows the "
                   "spread over seeds here")
    summary = json.loads(path.read_text())
    wanted = [m for m in summary["metrics"] if m["metric"].split("/")[0] in ("auc", "accuracy", "f1")
              or m["metric"].startswith("iou_accuracy@0.3/")]
    seeds_ = summary["seeds"]
    head = ["metric", f"mean ± sd over {len(seeds_)} seeds", "95 % t interval over seeds"] + [
        f"seed {s}" + (" (this run)" if ctx.run_dir.name == f"seed{s}" else "") for s in seeds_]
    rows = []
    for m in wanted:
        cells = [m["metric"].replace("iou_accuracy@", "IoU>").replace("/", ": "),
                 "n/a" if m["mean"] is None else f"{m['mean']:.3f} ± {m['sd'] or 0:.3f}"]
        lo, hi = (m.get("t_ci") or [None, None])[:2]
        cells.append("n/a" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]")
        for s in seeds_:
            v, ci = m.get(f"seed{s}"), m.get(f"seed{s}_ci") or [None, None]
            cells.append(Estimate(v, *(ci[:2] if ci else (None, None))).format() if v is not None else "n/a")
        rows.append(cells)
    return (f"<p>{len(seeds_)} training seeds of this configuration ({esc(', '.join(summary['runs']))}); the "
            "bracket after each seed's value is its 95 % patient-bootstrap interval (test patients), the ± the "
            "standard deviation over training runs and the t interval the uncertainty of their mean (Student-t, "
            "n-1 degrees of freedom).</p>" + table(head, rows))


SECTIONS: list[tuple[str, str, Callable[[ReportContext], str]]] = [
    ("summary", "Run summary", summary),
    ("training", "Training curves", training),
    ("classification", "Classification", classification),
    ("localization", "Localization", localization),
    ("representation", "Representation (t-SNE)", representation),
    ("radiomics", "Radiomics panel", radiomics),
    ("label-efficiency", "Label efficiency", label_efficiency),
    ("linear-eval", "Linear evaluation", linear_eval),
    ("seeds", "Across training seeds", seeds),
]


def build_sections(ctx: ReportContext) -> list[Section]:
    """Every section in order; a builder that cannot run gives an omitted section with its reason, one that
    fails unexpectedly a "could not be built" section with the error (logged with its traceback)."""
    log = logging.getLogger("radclr.report")
    out = []
    for sid, title, builder in SECTIONS:
        t0 = time.perf_counter()
        try:
            out.append(Section(sid, title, builder(ctx)))
        except (Omit, RadclrError) as e:  # absent inputs, or a user-facing problem such as a missing checkpoint
            out.append(Section(sid, title, status="omitted", reason=str(e)))
        except Exception as e:  # noqa: BLE001 - one broken figure must not cost the whole report
            log.warning("report section %s failed", sid, exc_info=True)
            out.append(Section(sid, title, status="failed", reason=f"{type(e).__name__}: {e}"))
        log.debug("section %s: %.2f s", sid, time.perf_counter() - t0)
    return out
