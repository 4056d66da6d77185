"""Evaluate a run: predictions, classification metrics with patient-bootstrap CIs, localization, linear eval.

``evaluate_run(RUN)`` (also ``radclr evaluate``) writes into the run directory::

    predictions_val.csv, predictions_test.csv   image_id, patient_id, y_<finding> (label), p_<finding> (probability)
    thresholds.json                             per-finding operating points, fit on the VALIDATION split only
    localization_test.csv                       per (image, finding): predicted box, GT boxes, IoU (file pixels)
    metrics.json                                everything below

That is the run's **primary** evaluation (its own data, ``best`` checkpoint, default output), the one ``radclr
report`` and ``radclr predict`` read. Any other evaluation (another checkpoint, another dataset, another --out)
writes its side files (predictions, thresholds, localization table, figures) to
``RUN/evaluations/<data>-<checkpoint>-<split>/`` and its metrics to ``--out`` (default: that folder's
``metrics.json``), so it never overwrites what the primary evaluation wrote.

``transfer_linear_eval(RUN, data_path=OTHER)`` (``radclr evaluate RUN --linear-eval --data OTHER``) probes the run's
frozen encoder on another dataset with its own findings (seeds 003 and 004 evaluate frozen features on other
tasks): logistic regression over the C grid on the representations, patient-wise stratified k-fold; it writes
``RUN/evaluations/<data>-<checkpoint>-linear/metrics.json``.

``metrics.json`` layout (other keys may be added)::

    {"classification": {"split": "test", "auc": {"<finding>": x, "mean": x}, "accuracy": {...}, "f1": {...},
                        "sensitivity": {...}, "specificity": {...}, "ci": {"auc": {"<finding>": [lo, hi], ...}, ...},
                        "thresholds": {...}, "threshold_rule": "youden (validation)", "report": {...full report...}},
     "localization": {"iou_accuracy": {"0.1": {"<finding>": x, "mean": x}, ..., "0.7": {...}}, "n_images": n,
                      "rule": ..., "baselines": {"centre_box": {...}, "whole_image": {...}}},
     "linear_eval": {...}}

A multi-class run (``data.task: multiclass``, seed 004's kidney task) predicts the arg-max class of the softmax
(no thresholds, no ``thresholds.json``)::

    {"classification": {"task": "multiclass", "split": "test", "accuracy": x, "f1_weighted": x, "f1_macro": x,
                        "auc": {"<class>": x, "mean": x}, "recall": {"<class>": x},
                        "ci": {"accuracy": [lo, hi], "f1_weighted": [lo, hi], "f1_macro": [lo, hi], "auc": {...}},
                        "multiclass": {"accuracy", "f1_weighted", "f1_macro", "recall": {...}, "per_class": {...},
                                       "confusion_matrix": [[...]], "classes": [...]}, "report": {...}}}

and ``predictions_*.csv`` add ``true_class`` and ``predicted_class``.

Localization (seed 001 §4): for every test image with ground-truth boxes and every finding it is annotated for,
Grad-CAM of that finding's logit on the last block, thresholded into one box (the method's CAM options), moved
from the model's pixel grid to the image's own pixels, compared with the finding's ground-truth boxes
(:mod:`radclr.evaluation.localization`: correct if IoU > T with any GT box of that finding; top-1 prediction,
no oracle). Centre-box (sizes fit on training boxes) and whole-image baselines are scored the same way.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from radclr.boxes import iou, scale_boxes
from radclr.cam.boxes import cam_to_boxes
from radclr.cam.calibrate import calibrate_cam_threshold
from radclr.cam.gradcam import grad_cam
from radclr.data.splits import apply_label_fraction
from radclr.engine.inference import run_inference
from radclr.errors import DataError, RadclrError
from radclr.evaluation.bootstrap import classification_report, multiclass_report
from radclr.evaluation.classical import classical_radiomics_eval
from radclr.evaluation.linear import linear_eval, linear_eval_cv
from radclr.evaluation.localization import (
    centre_box_baseline,
    ground_truth_from_dataset,
    iou_accuracy,
    mean_box_sizes,
    whole_image_baseline,
)
from radclr.evaluation.metrics import jsonable, probabilities
from radclr.evaluation.thresholds import choose_thresholds
from radclr.progress import progress_bar
from radclr.runs.lock import check_not_locked
from radclr.runs.run import LoadedRun, load_run
from radclr.runtime.device import resolve_device
from radclr.safe_write import atomic_path, writable_dir
from radclr.training_data import PreparedData, build_store, default_cache_dir, open_dataset, prepare_data
from radclr.training_data.prepare import build_run_store, check_roi_coverage, fixed_radiomics, store_boxes
from radclr.transforms import ROICrop
from radclr.visualize.overlays import OverlayExample, overlay_grid

log = logging.getLogger("radclr.evaluate")


def _short(image_id: str, n: int = 18) -> str:
    """An image id short enough for a figure title (start ... end)."""
    stem = str(image_id).rsplit(".", 1)[0]
    return stem if len(stem) <= n else f"{stem[:6]}...{stem[-(n - 9):]}"


def predictions_table(data: PreparedData, indices: np.ndarray, probs: np.ndarray, task: str = "multilabel") -> pd.DataFrame:
    """``image_id, patient_id, y_<finding>, p_<finding>`` (label, probability); a multi-class task adds
    ``true_class`` (empty when unlabelled) and ``predicted_class`` (the arg-max)."""
    rec = data.dataset.records.iloc[indices]
    table = pd.DataFrame({"image_id": rec["image_id"].to_numpy(), "patient_id": rec["patient_id"].to_numpy()})
    for j, f in enumerate(data.findings):
        table[f"y_{f}"] = data.dataset.labels[indices, j]
        table[f"p_{f}"] = probs[:, j]
    if task == "multiclass":
        y = data.dataset.labels[indices]
        has = (y == 1).any(axis=1)
        names = np.asarray(data.findings, dtype=object)
        table["true_class"] = np.where(has, names[np.argmax(y == 1, axis=1)], "")
        table["predicted_class"] = names[np.argmax(probs, axis=1)]
    return table


def _flat_metric(report: dict, metric: str, findings: list[str]) -> tuple[dict, dict]:
    values, cis = {}, {}
    for f in findings + ["mean"]:
        entry = report["mean"] if f == "mean" else report["per_finding"].get(f, {})
        m = entry.get(metric, {}) if isinstance(entry, dict) else {}
        values[f] = m.get("value")
        cis[f] = [m.get("ci_low"), m.get("ci_high")]
    return values, cis


def classification_section(y_true, probs, findings, patient_ids, thresholds, rule, n_boot, seed, split) -> dict:
    report = classification_report(y_true, probs, findings, patient_ids=patient_ids, thresholds=thresholds,
                                   n_boot=n_boot, seed=seed)
    section = {"split": split, "n_images": report.get("n_images"), "n_patients": report.get("n_patients"),
               "thresholds": thresholds, "threshold_rule": rule, "ci": {}}
    for metric in ("auc", "accuracy", "f1", "f1_weighted", "sensitivity", "specificity"):
        section[metric], section["ci"][metric] = _flat_metric(report, metric, list(findings))
    section["report"] = report
    return section


def multiclass_section(y_true, probs, classes, patient_ids, n_boot, seed, split) -> dict:
    """A single-label multi-class task (``data.task: multiclass``; seed 004's kidney tumour types): the arg-max
    class, accuracy, weighted and macro F1 with patient-bootstrap CIs (``ci.accuracy = [low, high]`` ...),
    one-vs-rest AUC per class, and ``multiclass`` = per-class recall / precision / F1 and the confusion matrix
    (rows: true class, columns: predicted class, in ``classes`` order)."""
    report = multiclass_report(y_true, probs, list(classes), patient_ids=patient_ids, n_boot=n_boot, seed=seed)
    mean, per = report["mean"], report["per_finding"]

    def ci(entry):
        return [entry.get("ci_low"), entry.get("ci_high")]

    section = {"task": "multiclass", "split": split, "n_images": report["n_images"], "n_patients": report["n_patients"],
               "decision_rule": report["decision_rule"], "ci": {}}
    for metric in ("accuracy", "f1_weighted", "f1_macro"):
        section[metric] = mean[metric]["value"]
        section["ci"][metric] = ci(mean[metric])
    section["auc"] = {**{c: per[c]["auc"]["value"] for c in classes}, "mean": mean["auc"]["value"]}
    section["ci"]["auc"] = {**{c: ci(per[c]["auc"]) for c in classes}, "mean": ci(mean["auc"])}
    section["recall"] = {c: per[c]["recall"]["value"] for c in classes}
    section["ci"]["recall"] = {c: ci(per[c]["recall"]) for c in classes}
    mc = report.pop("multiclass")
    mc["confusion_matrix_axes"] = "rows: true class, columns: predicted class (in the order of 'classes')"
    section["multiclass"] = mc
    section["report"] = report
    return section


# --------------------------------------------------------------------------------------------------------------
def localization_section(run: LoadedRun, data: PreparedData, indices: np.ndarray, device, *, n_boot: int, seed: int,
                         figure_dir: Path | None = None, progress: bool = False,
                         saved_calibration: dict | None = None) -> dict | None:
    """Grad-CAM boxes vs ground truth on the images of ``indices`` that have boxes (see module docstring)."""
    if run.method.cam_head() is None:
        return None
    ds = data.dataset
    findings = list(data.findings)
    gt_all = ground_truth_from_dataset(ds, findings)
    all_ids = ds.image_ids
    ids = [all_ids[i] for i in indices]
    cases = [(i, iid, f) for i, iid in zip(indices, ids) for f in sorted(gt_all.get(iid, {}))]
    if not cases:
        return unscored_examples(run, data, indices, device, figure_dir)
    sizes = {iid: tuple(int(v) for v in data.store.original_hw[ds.index_of(iid)]) for iid in gt_all}
    cam_opts, calibration = _localization_cam_options(run, data, indices, device, saved_calibration)
    preds, rows, examples = _score_cases(run, data, cases, gt_all, sizes, cam_opts, device, progress)
    gt = {iid: gt_all[iid] for iid in ids if iid in gt_all}
    pid = dict(zip(all_ids, ds.patient_ids))
    result = iou_accuracy(preds, gt, findings=findings, image_sizes={k: sizes[k] for k in gt},
                          patient_ids={k: pid[k] for k in gt}, n_boot=n_boot, seed=seed)
    train_gt = {all_ids[i]: gt_all[all_ids[i]] for i in data.indices("train") if all_ids[i] in gt_all}
    result["baselines"] = _localization_baselines(gt, train_gt, sizes, findings)
    result["cam_options"] = cam_opts.to_dict()
    result["cam_threshold"] = calibration
    result["n_fallback_boxes"] = int(sum(r["fallback"] for r in rows))
    if figure_dir is not None and examples:
        figure_dir.mkdir(parents=True, exist_ok=True)
        ex = [OverlayExample(image=im, cam=c, gt_boxes=g, pred_boxes=p, finding=t, probability=pr)
              for im, c, g, p, t, pr in examples]
        overlay_grid(ex, path=figure_dir / "localization_examples.png")
        result["figure"] = str((figure_dir / "localization_examples.png").name)
    result["_rows"] = rows
    return result


def _cam_layer_options(run: LoadedRun):
    """The method's CAM options with ``evaluation.cam_layer`` applied."""
    cam_opts = run.method.cam_options
    if run.cfg["evaluation"].get("cam_layer", "method") != "method":
        cam_opts = replace(cam_opts, layer=run.cfg["evaluation"]["cam_layer"])
    return cam_opts


def _localization_cam_options(run: LoadedRun, data: PreparedData, indices: np.ndarray, device,
                              saved_calibration: dict | None):
    """``(CAM options, calibration record)`` by ``evaluation.cam_threshold``: ``auto`` / ``auto_per_finding``
    fit the threshold on annotated train/val images other than ``indices`` (else use ``saved_calibration``, the
    primary evaluation's, on another dataset); a number sets it; ``method`` keeps the method's."""
    cam_opts = _cam_layer_options(run)
    calibration = {"threshold": cam_opts.threshold, "fit_on": "method setting (not fitted)"}
    rule = str(run.cfg["evaluation"].get("cam_threshold", "auto"))
    if rule in ("auto", "auto_per_finding"):
        fit_idx = np.concatenate([data.indices("train"), data.indices("val")])
        fit_idx = np.setdiff1d(fit_idx, indices)  # never the evaluated images
        fit_cases = data.annotated_cases(fit_idx, limit=512)
        if fit_cases is not None and len(fit_cases[1]) >= 5:
            fit_images, fit_targets, fit_gts = fit_cases
            cal = calibrate_cam_threshold(run.method.encoder, run.method.cam_head(), fit_images.to(device),
                                          fit_targets.to(device), fit_gts, cam_opts,
                                          per_finding=rule == "auto_per_finding", findings=list(data.findings))
            cam_opts = cal.apply(cam_opts)
            calibration = {**cal.to_dict(), "fit_on": f"annotated train/val images ({cal.n_cases} cases)"}
        elif saved_calibration is not None:  # another dataset: the threshold(s) fit on the run's own train/val
            per = {f: v["threshold"] for f, v in (saved_calibration.get("per_finding") or {}).items()}
            cam_opts = cam_opts.with_threshold(float(saved_calibration["threshold"]), tuple(per.items()))
            calibration = saved_calibration
    elif rule != "method":
        cam_opts = cam_opts.with_threshold(float(run.cfg["evaluation"]["cam_threshold"]))
        calibration = {"threshold": cam_opts.threshold, "fit_on": "evaluation.cam_threshold"}
    return cam_opts, calibration


def _score_cases(run: LoadedRun, data: PreparedData, cases: list, gt_all: dict, sizes: dict, cam_opts, device,
                 progress: bool) -> tuple[dict, list[dict], list]:
    """Grad-CAM -> top-1 box (file pixels) of every ``(index, image id, finding)`` case, in batches of 32.

    Returns ``(predicted boxes {image id: {finding: [box]}}, table rows with the best IoU, up to 8 figure
    examples)``."""
    method, findings, S = run.method, list(data.findings), data.store.size
    preds: dict[str, dict[str, list]] = {}
    rows, examples = [], []
    for s in progress_bar(range(0, len(cases), 32), desc="localization", unit="batch", enabled=progress):
        chunk = cases[s:s + 32]
        images = torch.stack([torch.from_numpy(np.asarray(data.store.images[i], dtype=np.float32)) / 255.0
                              for i, _, _ in chunk]).unsqueeze(1).to(device)
        targets = torch.tensor([findings.index(f) for _, _, f in chunk], device=device)
        cams, logits = grad_cam(method.encoder, method.cam_head(), images, targets, upsample_to=(S, S),
                                return_logits=True, layer=cam_opts.layer)
        probs = torch.from_numpy(probabilities(logits.detach().float().cpu().numpy(), run.task))
        found = [cam_to_boxes(cam, cam_opts.for_finding(f)) for cam, (_, _, f) in zip(cams.cpu(), chunk)]
        for (i, iid, f), boxes, cam, img, pr in zip(chunk, found, cams.cpu(), images.cpu(), probs):
            h, w = sizes[iid]
            pred = [scale_boxes(b.as_array(), (S, S), (h, w)) for b in boxes[:1]]
            preds.setdefault(iid, {})[f] = [tuple(map(float, p)) for p in pred]
            gts = gt_all[iid][f]
            best = float(np.max(iou(np.asarray([pred[0]]), np.asarray([[b.x, b.y, b.w, b.h] for b in gts])))) if pred else 0.0
            rows.append({"image_id": iid, "finding": f,
                         "pred_box": json.dumps([round(v, 2) for v in pred[0]]) if pred else "",
                         "gt_boxes": json.dumps([[round(b.x, 2), round(b.y, 2), round(b.w, 2), round(b.h, 2)] for b in gts]),
                         "iou": best, "fallback": bool(boxes and boxes[0].fallback)})
            if len(examples) < 8:
                examples.append((img[0].numpy(), cam.numpy(), [scale_boxes(np.array([b.x, b.y, b.w, b.h]), (h, w), (S, S)) for b in gts],
                                 [b.as_array() for b in boxes[:1]], f"{_short(iid)}: {f}", float(pr[findings.index(f)])))
    return preds, rows, examples


def _localization_baselines(gt: dict, train_gt: dict, sizes: dict, findings: list[str]) -> dict:
    """IoU accuracy of the whole-image box and of a centre box (mean training box size per finding)."""
    box_sizes = mean_box_sizes(train_gt, sizes) if train_gt else None
    baselines = {"whole_image": iou_accuracy(whole_image_baseline(gt, sizes), gt, findings=findings)["iou_accuracy"]}
    try:
        baselines["centre_box"] = iou_accuracy(centre_box_baseline(gt, sizes, box_sizes), gt, findings=findings)["iou_accuracy"]
        baselines["centre_box_sizes"] = "training boxes" if box_sizes else "evaluated boxes (optimistic)"
    except DataError as e:  # a test finding without training boxes
        baselines["centre_box_error"] = str(e)
    return baselines


def unscored_examples(run: LoadedRun, data: PreparedData, indices: np.ndarray, device, figure_dir: Path | None,
                      n: int = 8) -> dict | None:
    """No ground-truth boxes to score against: still show where the model looks (Grad-CAM + predicted box) on
    the test images it is most confident are positive -- clearly marked as unscored."""
    method = run.method
    if figure_dir is None or len(indices) == 0:
        return None
    probs = probabilities(run_inference(method, data, indices, device, 64)["logits"], run.task)
    top = np.argsort(-probs.max(axis=1))[:n]
    S = data.store.size
    images = torch.stack([torch.from_numpy(np.asarray(data.store.images[indices[k]], dtype=np.float32)) / 255.0
                          for k in top]).unsqueeze(1).to(device)
    targets = torch.as_tensor(probs[top].argmax(axis=1), device=device)
    cam_opts = _cam_layer_options(run)
    cams = grad_cam(method.encoder, method.cam_head(), images, targets, upsample_to=(S, S), layer=cam_opts.layer)
    found = cam_to_boxes(cams.cpu(), cam_opts)
    findings = list(data.findings)
    ex = [OverlayExample(image=images[j, 0].cpu().numpy(), cam=cams[j].cpu().numpy(), gt_boxes=[],
                         pred_boxes=[b.as_array() for b in found[j][:1]],
                         finding=f"{_short(data.dataset.image_id(indices[k]))}: {findings[int(targets[j])]}",
                         probability=float(probs[k, int(targets[j])]))
          for j, k in enumerate(top)]
    figure_dir.mkdir(parents=True, exist_ok=True)
    overlay_grid(ex, path=figure_dir / "localization_examples.png")
    return {"scored": False, "reason": "no evaluated image has a ground-truth box: predicted boxes are shown, "
            "not scored", "figure": "localization_examples.png", "cam_options": cam_opts.to_dict(), "_rows": []}


# --------------------------------------------------------------------------------------------------------------
def linear_section(run: LoadedRun, data: PreparedData, device, *, n_boot: int, seed: int, progress: bool) -> dict:
    """Seed 003 linear evaluation of the frozen representation y_i (labelled training images only)."""
    idx = {s: data.indices(s, labeled_only=(s == "train")) for s in ("train", "val", "test")}
    if min(len(v) for v in idx.values()) == 0:
        return {"skipped": "linear evaluation needs labelled train, val and test images"}
    feats = {s: run_inference(run.method, data, v, device, int(run.cfg["trainer"]["eval_batch_size"]),
                              want_logits=False, want_features=True, progress=progress)["features"]
             for s, v in idx.items()}
    y = data.dataset.labels
    res = linear_eval(feats["train"], y[idx["train"]], feats["val"], y[idx["val"]], feats["test"], y[idx["test"]],
                      findings=list(data.findings), patient_ids_test=data.dataset.patient_ids[idx["test"]],
                      n_boot=n_boot, seed=seed, task=_linear_task(run))
    k = int(run.cfg["evaluation"].get("linear_eval_folds") or 0)
    if k > 1:  # seed 003 §V-B: patient-wise stratified k-fold over every labelled image (frozen features)
        pool = np.concatenate([idx["train"], idx["val"], idx["test"]])
        x = np.concatenate([feats["train"], feats["val"], feats["test"]])
        res["cv"] = linear_eval_cv(x, y[pool], data.dataset.patient_ids[pool], n_splits=k,
                                   findings=list(data.findings), seed=seed, task=_linear_task(run))
    return res


def _linear_task(run: LoadedRun) -> str | None:
    """The label task of a run's linear evaluations: its ``data.task`` when multi-class, else inferred."""
    return "multiclass" if run.task == "multiclass" else None


def classical_section(cfg: dict, run_dir: Path, data: PreparedData, *, n_boot: int, seed: int, progress: bool) -> dict:
    """Seed 004's classical radiomics baseline on the fixed regions' radiomics (labelled training images)."""
    if data.radiomics is None:
        cache = Path(cfg["data"].get("cache_dir") or default_cache_dir())
        data.radiomics_names, data.radiomics = fixed_radiomics(data.dataset, data.store, data.boxes, cfg["radiomics"],
                                                               cache, progress)
    idx = {s: data.indices(s, labeled_only=(s == "train")) for s in ("train", "val", "test")}
    if min(len(v) for v in idx.values()) == 0:
        return {"skipped": "needs labelled train, val and test images"}
    y, R = data.dataset.labels, data.radiomics
    return classical_radiomics_eval(R[idx["train"]], y[idx["train"]], R[idx["val"]], y[idx["val"]], R[idx["test"]],
                                    y[idx["test"]], findings=list(data.findings),
                                    patient_ids_test=data.dataset.patient_ids[idx["test"]], n_boot=n_boot, seed=seed,
                                    task="multiclass" if cfg["data"].get("task") == "multiclass" else None)


def linear_eval_fractions(run_dir, fractions, *, progress=None) -> list[dict]:
    """Linear evaluation of a pretrained run at several label fractions (nested labelled subsets)."""
    run = load_run(run_dir, "last")
    cfg = run.cfg
    device = resolve_device(cfg["trainer"]["device"])
    run.method.to(device)
    data = prepare_data(cfg, Path(run_dir), need_radiomics=False, progress=bool(progress))
    base_split = data.split.copy()
    rows = []
    for f in fractions:
        data.split = apply_label_fraction(data.dataset, base_split.assign(labeled=True), float(f),
                                          seed=int(cfg["data"]["split"]["seed"])) if f < 1 else base_split.assign(labeled=True)
        res = linear_section(run, data, device, n_boot=int(cfg["evaluation"]["n_boot"]), seed=int(cfg["seed"]),
                             progress=bool(progress))
        row = {"label_fraction": f, "n_labeled": int(data.split["labeled"][data.split["split"] == "train"].sum())}
        test = res.get("test", {})
        for k in ("auc", "accuracy", "f1", "sensitivity", "specificity"):
            row[k] = test.get(k)
        ci = ((res.get("test_ci") or {}).get("mean") or {}).get("auc") or {}
        row["auc_ci_low"], row["auc_ci_high"] = ci.get("ci_low"), ci.get("ci_high")
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------------------
def _same_data(a, b) -> bool:
    """Whether two ``data.path`` values (a path or a list of paths) name the same dataset on disk."""
    def norm(v):
        items = v if isinstance(v, (list, tuple)) else [v]
        return [str(Path(str(x)).expanduser().resolve()) if str(x) != "demo" else "demo" for x in items]

    return norm(a) == norm(b)


def saved_thresholds(run_dir: Path, checkpoint_name: str) -> tuple[dict | None, str]:
    """``(thresholds, rule text)`` the primary evaluation fit on the validation split for this checkpoint, or
    ``(None, why not)`` -- used by evaluations on other data and by ``radclr predict``."""
    path = Path(run_dir) / "thresholds.json"
    if not path.exists():
        return None, "the run has no thresholds.json (run `radclr evaluate`)"
    saved = json.loads(path.read_text())
    owner = saved.get("checkpoint", "best.pt")  # files written before thresholds named their checkpoint
    if owner != checkpoint_name:
        return None, f"thresholds.json belongs to {owner}; no thresholds fit for {checkpoint_name}"
    return saved["thresholds"], saved.get("rule_text") or f"{saved.get('rule', '?')} (fit on the validation split)"


@dataclass
class _Evaluation:
    """What every part of one evaluation shares (made once by :func:`evaluate_run`)."""

    run_dir: Path
    run: LoadedRun
    data: PreparedData
    device: torch.device
    split: str
    indices: np.ndarray  # the evaluated images
    side_dir: Path  # where predictions, thresholds, localization table and figures go
    external: bool  # another dataset than the run's own
    n_boot: int
    seed: int
    progress: bool
    in_training: bool  # called by radclr.runs.train right after training (its start already warned)

    @property
    def findings(self) -> list[str]:
        return list(self.data.findings)

    def probabilities(self, indices: np.ndarray) -> np.ndarray:
        """The model's probabilities on ``indices`` (sigmoid, or softmax for a multi-class task)."""
        bs = int(self.run.cfg["trainer"]["eval_batch_size"])
        logits = run_inference(self.run.method, self.data, indices, self.device, bs, progress=self.progress)["logits"]
        return probabilities(logits, self.run.task)

    def validation_indices(self) -> np.ndarray:
        """The run's validation images (none on another dataset: its images are all tested)."""
        return self.data.indices("val") if not self.external else np.array([], dtype=int)

    def write_predictions(self, indices: np.ndarray, probs: np.ndarray, split: str) -> None:
        predictions_table(self.data, indices, probs, self.run.task).to_csv(
            self.side_dir / f"predictions_{split}.csv", index=False)


def evaluate_run(run_dir, *, data: PreparedData | None = None, data_path: str | None = None,
                 split: str | None = None, checkpoint: str = "best", device=None, n_boot: int | None = None,
                 out: str | Path | None = None, progress: bool = True, localization: bool | None = None) -> dict:
    """Evaluate a run on its own split (default test) or on another dataset (``data_path``; every image is
    tested with the run's saved thresholds and calibrated CAM threshold). See the module docstring for where
    the results go."""
    run_dir = Path(run_dir)
    check_not_locked(run_dir)  # a run being trained (by another process) is not evaluated under its feet
    in_training = data is not None  # called by radclr.runs.train right after training
    device = resolve_device(device or "auto") if not isinstance(device, torch.device) else device
    run = load_run(run_dir, checkpoint, device)
    cfg = run.cfg
    n_boot = int(cfg["evaluation"]["n_boot"] if n_boot is None else n_boot)
    if n_boot < 0:
        raise RadclrError(f"n_boot must be >= 0, got {n_boot}")
    external = data_path is not None and not _same_data(data_path, cfg["data"]["path"])
    if external and split not in (None, "all"):
        raise RadclrError(f"--split {split} applies to the run's own data; with another dataset (--data "
                          f"{data_path}) every image is evaluated")
    split = split or ("all" if external else "test")
    side_dir = _results_dir(run_dir, run.checkpoint.name, checkpoint, split, data_path if external else None, out)
    writable_dir(side_dir, "results folder")  # before any work: a read-only run directory is one message
    if out:
        writable_dir(Path(out).parent, "folder of --out")
    if data is None:
        data = _external_data(cfg, data_path, run, progress) if external else \
            prepare_data(cfg, run_dir, need_radiomics=run.method.needs_radiomics, progress=progress)
    if list(data.findings) != run.findings:
        raise RadclrError(f"the data's findings {list(data.findings)} differ from the run's {run.findings}")
    idx = data.indices(split) if split != "all" else np.arange(len(data.dataset))
    if len(idx) == 0:
        raise RadclrError(f"split {split!r} has no images")
    ev = _Evaluation(run_dir, run, data, device, split, idx, side_dir, external, n_boot, int(cfg["seed"]), progress,
                     in_training)
    results: dict = {"run": str(run_dir), "checkpoint": run.checkpoint.name, "split": split,
                     "method": run.method.name, "findings": ev.findings, "results_dir": str(side_dir)}
    if run.method.classifies:
        results["classification"] = _multiclass_results(ev) if run.task == "multiclass" else _multilabel_results(ev)
    results.update(_localization_results(ev, cfg["evaluation"]["localization"] if localization is None else localization))
    if cfg["evaluation"]["linear_eval"] and not external:
        results["linear_eval"] = linear_section(run, data, device, n_boot=n_boot, seed=ev.seed, progress=progress)
    if cfg["evaluation"].get("classical_radiomics") and not external:
        results["classical_radiomics"] = classical_section(cfg, run_dir, data, n_boot=n_boot, seed=ev.seed,
                                                           progress=progress)
    results = jsonable(results)
    with atomic_path(Path(out) if out else side_dir / "metrics.json", "metrics") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    return results


def _results_dir(run_dir: Path, checkpoint_file: str, checkpoint: str, split: str, external_data,
                 out: str | Path | None) -> Path:
    """The run directory for the primary evaluation (own data, ``best``, test split, default output), else
    ``RUN/evaluations/<data>-<checkpoint>-<split>/`` (see the module docstring)."""
    primary = (external_data is None and checkpoint == "best" and split == "test"  # "best" may resolve to last.pt
               and (out is None or Path(out).resolve() == (run_dir / "metrics.json").resolve()))
    if primary:
        return run_dir
    src = "own" if external_data is None else \
        Path(str(external_data if not isinstance(external_data, (list, tuple)) else external_data[0])).name
    return run_dir / "evaluations" / f"{src}-{Path(checkpoint_file).stem}-{split}"


def _multiclass_results(ev: _Evaluation) -> dict:
    """Arg-max of the softmax: no thresholds to fit (see :func:`multiclass_section`)."""
    probs = ev.probabilities(ev.indices)
    ev.write_predictions(ev.indices, probs, ev.split)
    val_idx = ev.validation_indices()
    if len(val_idx) and ev.split != "val":
        ev.write_predictions(val_idx, ev.probabilities(val_idx), "val")
    ds = ev.data.dataset
    return multiclass_section(ds.labels[ev.indices], probs, ev.findings, ds.patient_ids[ev.indices], ev.n_boot,
                              ev.seed, ev.split)


def _multilabel_results(ev: _Evaluation) -> dict:
    """Probabilities, thresholds (fit on the validation split, else the primary evaluation's, else 0.5) and
    :func:`classification_section` of the evaluated images."""
    probs = ev.probabilities(ev.indices)
    ev.write_predictions(ev.indices, probs, ev.split)
    val_idx = ev.validation_indices()
    if len(val_idx):
        p_val = ev.probabilities(val_idx)
        if ev.split != "val":
            ev.write_predictions(val_idx, p_val, "val")
        thresholds, rule_text = _validation_thresholds(ev, val_idx, p_val)
    else:
        thresholds, rule_text = _thresholds_without_validation(ev)
    ds = ev.data.dataset
    return classification_section(ds.labels[ev.indices], probs, ev.findings, ds.patient_ids[ev.indices], thresholds,
                                  rule_text, ev.n_boot, ev.seed, ev.split)


def _validation_thresholds(ev: _Evaluation, val_idx: np.ndarray, p_val: np.ndarray) -> tuple[dict, str]:
    """Per-finding thresholds fit on the validation split by ``evaluation.threshold_rule`` (0.5 for a finding
    with one class only there); written to ``thresholds.json``. Returns ``(thresholds, rule text)``."""
    rule = ev.run.cfg["evaluation"]["threshold_rule"]
    with warnings.catch_warnings():  # the fallback is said once below, in the words metrics.json keeps
        warnings.simplefilter("ignore", UserWarning)
        fitted = choose_thresholds(ev.data.dataset.labels[val_idx], p_val, ev.findings, rule=rule, fallback=None)
    fallback = sorted(f for f, t in fitted.items() if t is None or not np.isfinite(float(t)))
    thresholds = {f: (0.5 if f in fallback else float(t)) for f, t in fitted.items()}
    rule_text = f"{rule} (fit on the validation split)"
    if fallback:
        rule_text += f"; 0.5 for {', '.join(fallback)} (one class only in validation)"
        # training already said why at its start; a stand-alone evaluation says it here
        log.log(logging.INFO if ev.in_training else logging.WARNING, "thresholds: %s", rule_text)
    if ev.split == "val":
        rule_text += "; reported on that same split, so the thresholded metrics are optimistic"
    (ev.side_dir / "thresholds.json").write_text(json.dumps(jsonable(
        {"rule": rule, "rule_text": rule_text, "checkpoint": ev.run.checkpoint.name, "thresholds": thresholds,
         "fallback_0.5": fallback}), indent=2))
    return thresholds, rule_text


def _thresholds_without_validation(ev: _Evaluation) -> tuple[dict, str]:
    """No validation images (another dataset, or a split without one): the primary evaluation's thresholds for
    this checkpoint, else 0.5 for every finding."""
    saved, saved_rule = saved_thresholds(ev.run_dir, ev.run.checkpoint.name)
    if saved is not None:
        return saved, saved_rule
    rule_text = f"fixed 0.5 ({saved_rule})" if ev.external else "fixed 0.5 (no validation split)"
    log.warning("thresholds: %s", rule_text)
    return {f: 0.5 for f in ev.findings}, rule_text


def _localization_results(ev: _Evaluation, wanted: bool) -> dict:
    """``{"localization": ...}`` (and ``localization_<split>.csv``), ``{"localization_skipped": why}`` or ``{}``."""
    if not wanted:
        return {}
    if ev.data.store.volume is not None:
        why = ("3-D tumour stacks (data.volume): the input already is the ROI and Grad-CAM boxes are 2-D, so there "
               "is nothing to localize")
        log.info("localization skipped: %s", why)
        return {"localization_skipped": why}
    saved = _primary_cam_calibration(ev.run_dir, ev.run.checkpoint.name) if ev.external else None
    loc = localization_section(ev.run, ev.data, ev.indices, ev.device, n_boot=ev.n_boot, seed=ev.seed,
                               figure_dir=ev.side_dir / "figures", progress=ev.progress, saved_calibration=saved)
    if loc is None:
        return {}
    rows = loc.pop("_rows")
    if rows:
        pd.DataFrame(rows).to_csv(ev.side_dir / f"localization_{ev.split}.csv", index=False)
    return {"localization": loc}


def _primary_cam_calibration(run_dir: Path, checkpoint_name: str) -> dict | None:
    """The CAM threshold the primary evaluation fit on annotated train/val images (for another dataset)."""
    path = run_dir / "metrics.json"
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    cal = (m.get("localization") or {}).get("cam_threshold")
    if m.get("checkpoint") != checkpoint_name or not isinstance(cal, dict) or cal.get("threshold") is None:
        return None
    return {**cal, "fit_on": f"{cal.get('fit_on', '?')} of the run (primary evaluation)"}


def _external_data(cfg: dict, data_path: str, run: LoadedRun, progress: bool) -> PreparedData:
    """Another dataset, relabelled to the run's findings (missing findings = unknown), every image tested."""
    # every box of the other dataset is ground truth to score against: the run's box_fraction (which hid boxes
    # from training) does not apply
    dcfg = {**cfg["data"], "path": str(data_path), "format": None, "findings": None, "box_fraction": 1.0}
    other = open_dataset(dcfg)
    check_something_to_score(other.labels, list(other.findings), data_path, run.findings)
    ds = other.with_findings(run.findings)
    cache = Path(cfg["data"].get("cache_dir") or default_cache_dir())
    if cfg["data"].get("volume") is not None:  # tumour stacks with the run's slice settings
        store = build_run_store(cfg, ds, cache, progress=progress)
    else:
        store = build_store(ds, run.image_size, cache, rule=cfg["data"].get("intensity", "auto"), progress=progress)
    split = pd.DataFrame({"image_id": ds.image_ids, "patient_id": ds.patient_ids, "split": "test", "labeled": True})
    data = PreparedData(ds, store, split, store_boxes(ds, store))
    if run.method.needs_radiomics:
        data.radiomics_names, data.radiomics = fixed_radiomics(ds, store, data.boxes, cfg["radiomics"], cache, progress)
    return data


def check_something_to_score(y: np.ndarray, findings: list[str], source, run_findings: list[str] | None = None, *,
                             task: str = "multilabel") -> None:
    """Refuse an evaluation whose every metric would be null, saying why (issue 20): a dataset sharing no finding
    with the run (``run_findings``), or labels of which no finding has both a positive and a negative image (one
    class only, for a multi-class task). ``y``: ``[N, F]`` multi-hot with NaN = unknown, or ``[N]`` class
    indices."""
    if run_findings is not None:
        shared = [f for f in findings if f in run_findings]
        if not shared:
            raise DataError(f"{source}: shares no finding with the run (the run: {list(run_findings)}; the data: "
                            f"{list(findings)}): nothing to score. To probe the run's encoder on these findings, "
                            f"use `radclr evaluate RUN --linear-eval --data {source}`")
        return
    y = np.asarray(y, dtype=float)
    if not findings:
        raise DataError(f"{source}: the labels name no finding: nothing to score")
    if task == "multiclass" or y.ndim == 1:
        present = sorted({int(v) for v in y[~np.isnan(y)]})
        if len(present) < 2:
            raise DataError(f"{source}: every labelled image has the same class "
                            f"({[findings[i] for i in present]}): nothing to score (a classifier needs two classes)")
        return
    both = [f for j, f in enumerate(findings) if (y[:, j] == 1).any() and (y[:, j] == 0).any()]
    if not both:
        raise DataError(f"{source}: no finding has both positive and negative labelled images "
                        + "(" + "; ".join(f"{f}: {int((y[:, j] == 1).sum())} positive, {int((y[:, j] == 0).sum())} "
                                          f"negative" for j, f in enumerate(findings)) + "): nothing to score")


# --------------------------------------------------------------------------------------------------------------
def transfer_linear_eval(run_dir, data_path=None, *, checkpoint: str = "best", folds: int = 5,
                         findings: list[str] | None = None, task: str | None = None, device=None,
                         out: str | Path | None = None, progress: bool = True) -> dict:
    """Linear evaluation of a run's **frozen** encoder on a dataset with its own findings (seed 003 §V-B; seed 004
    Table 1 evaluates frozen features the same way).

    The images of ``data_path`` (default: the run's own data) are read with the run's image size, intensity rule
    and input mode (3-D stacks for volume runs; ROI crops, resized to the mean size of that dataset's boxes, for
    ROI-crop runs), passed once through the run's encoder (eval mode, no augmentation), and the representations
    y_i = f_i(x) of every labelled image are classified by :func:`radclr.evaluation.linear.linear_eval_cv`:
    logistic regression (standardised, balanced class weights) over the C grid, chosen by validation AUC inside
    each of ``folds`` patient-wise stratified folds, reported per fold and as mean +- sd. ``findings`` restricts
    the dataset's findings; ``task="multiclass"`` treats it as single-label (one multinomial model; accuracy,
    weighted F1). Nothing of the run is trained or changed. Writes
    ``RUN/evaluations/<data>-<checkpoint>-linear/metrics.json`` (or ``out``) and returns the result.
    """
    run_dir = Path(run_dir)
    device = resolve_device(device or "auto") if not isinstance(device, torch.device) else device
    run = load_run(run_dir, checkpoint, device)
    cfg = run.cfg
    own = data_path is None or _same_data(data_path, cfg["data"]["path"])
    path = cfg["data"]["path"] if data_path is None else data_path
    if task is None:
        task = run.task if own else "multilabel"
    dcfg = {**cfg["data"], "path": path if isinstance(path, (list, tuple)) else str(path), "task": task,
            "findings": findings if findings is not None else (cfg["data"].get("findings") if own else None),
            "format": cfg["data"].get("format") if own else None, "box_fraction": 1.0}
    ds = open_dataset(dcfg)
    if len(ds) == 0:
        raise RadclrError(f"dataset {path} has no images")
    if task == "multiclass":
        y = ds.class_index()
        labelled = ~np.isnan(y)
    else:
        y = ds.labels
        labelled = ~np.isnan(y).all(axis=1)
    cache = Path(cfg["data"].get("cache_dir") or default_cache_dir())
    if cfg["data"].get("volume") is not None:
        store = build_run_store(cfg, ds, cache, progress=progress)
    else:
        store = build_store(ds, run.image_size, cache, rule=cfg["data"].get("intensity", "auto"), progress=progress)
    split = pd.DataFrame({"image_id": ds.image_ids, "patient_id": ds.patient_ids, "split": "test", "labeled": True})
    data = PreparedData(ds, store, split, store_boxes(ds, store))
    input_note = "whole images"
    if cfg["radiomics"].get("region") == "roi_crop" and store.volume is None:  # the encoder learnt ROI crops
        check_roi_coverage(data.boxes, ds.labels, str(path))
        sizes = [(b.w, b.h) for bx in data.boxes for b in bx]
        if not sizes:
            raise DataError(f"{path}: the run's encoder was trained on ROI crops (radiomics.region: roi_crop); "
                            "the dataset needs boxes (boxes.csv) to cut them")
        w, h = np.mean(np.asarray(sizes), axis=0)
        data.roi_crop = ROICrop(output_size=(max(int(round(h)), 8), max(int(round(w)), 8)))
        input_note = f"ROI crops resized to the dataset's mean box size {data.roi_crop.size}"
    idx = np.flatnonzero(labelled)
    if len(idx) == 0:
        raise DataError(f"{path}: no labelled image to evaluate on")
    check_something_to_score(y[idx], list(ds.findings), path, task=task)
    feats = run_inference(run.method, data, idx, device, int(cfg["trainer"]["eval_batch_size"]), want_logits=False,
                          want_features=True, progress=progress)["features"]
    res = linear_eval_cv(feats, y[idx], ds.patient_ids[idx], n_splits=int(folds), findings=list(ds.findings),
                         seed=int(cfg["seed"]), task=task if task == "multiclass" else None)
    name = "own" if own else Path(str(path if not isinstance(path, (list, tuple)) else path[0])).name
    side_dir = run_dir / "evaluations" / f"{name}-{Path(run.checkpoint.name).stem}-linear"
    side_dir.mkdir(parents=True, exist_ok=True)
    results = jsonable({
        "run": str(run_dir), "checkpoint": run.checkpoint.name, "method": run.method.name, "data": str(path),
        "findings": list(ds.findings), "task": task, "n_images": int(len(idx)),
        "representation": f"y_i = f_i(x) of the run's frozen encoder ({input_note}; eval mode, no augmentation)",
        "protocol": f"patient-wise stratified {int(folds)}-fold cross-validation of a logistic regression on the "
                    "frozen representation (seed 003 §V-B)",
        "results_dir": str(side_dir), "linear_eval": res})
    target = Path(out) if out else side_dir / "metrics.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2))
    return results
