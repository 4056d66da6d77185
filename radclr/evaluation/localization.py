"""Localization accuracy at IoU thresholds (seed 001 §4 "Evaluation Metrics", Table 2).

Seed 001: "The localization is defined as correct only if IoU > T(IoU)", reported per finding and as the mean
over the 8 findings for T in {0.1, ..., 0.7}, on the annotated test images only.

What a *case* is (the seed does not say; radclr's definition, reported in every result under ``rule``):

* Predictions and ground truth are given per image and finding as lists of ``x, y, w, h`` boxes **in the same
  pixel space** (the image as read; move CAM/224-px boxes with :func:`radclr.boxes.scale_boxes` first).
  Pass ``image_sizes`` (and ``prediction_sizes``) so a mismatch raises instead of producing silently wrong IoUs.
* ``pred_rule="top1"`` (default): only the first predicted box of an (image, finding) is used -- the one the
  box selection chose (``cam_to_boxes`` orders boxes best first). ``pred_rule="any"`` takes the best of all
  predicted boxes against the ground truth: an **oracle** (it looks at the answer to pick the box) and is
  labelled as such (``"oracle": true``).
* ``rule="any_gt"`` (default): one case per (image, finding) with ground truth; the finding's GT boxes are
  several lesions of that finding, and the case is correct at T if IoU(prediction, g) > T for at least one GT
  box g (its IoU is the maximum over g). ``rule="all_gt"``: every GT box is a case of its own, correct if the
  prediction(s) overlap *that* box with IoU > T -- with ``top1``, a single predicted box cannot score on two
  separated lesions, so this is the stricter reading.
* An (image, finding) with ground truth but no predicted box is a case with IoU 0 (counted in
  ``n_missing_predictions``). Predicted boxes for (image, finding) pairs without ground truth are ignored.
* The per-threshold ``"mean"`` is the unweighted mean over findings with at least one case (Table 2's "Mean").
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from radclr.boxes import as_box_array, pairwise_iou
from radclr.errors import DataError
from radclr.evaluation.bootstrap import MIN_VALID_FRACTION

__all__ = [
    "DEFAULT_THRESHOLDS",
    "RULES",
    "PRED_RULES",
    "iou_accuracy",
    "localization_cases",
    "ground_truth_from_dataset",
    "mean_box_sizes",
    "centre_box_baseline",
    "whole_image_baseline",
]

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
RULES = ("any_gt", "all_gt")
PRED_RULES = ("top1", "any")

# image_id -> finding -> list of boxes (ScoredBox, Box, or (x, y, w, h))
BoxesByImage = Mapping[str, Mapping[str, Sequence[Any]]]


# --- cases --------------------------------------------------------------------------------------------------


def _check_sizes(ground_truth, predictions, image_sizes, prediction_sizes, tol: float) -> None:
    if prediction_sizes is not None:
        if image_sizes is None:
            raise ValueError("prediction_sizes needs image_sizes (the ground truth's pixel space) to compare with")
        for iid in ground_truth:
            if iid in prediction_sizes and iid in image_sizes:
                ps, gs = tuple(map(int, prediction_sizes[iid])), tuple(map(int, image_sizes[iid]))
                if ps != gs:
                    raise DataError(
                        f"image {iid}: predictions are in a {ps[0]}x{ps[1]} (HxW) pixel grid, ground truth in "
                        f"{gs[0]}x{gs[1]}; rescale first: radclr.boxes.scale_boxes(boxes, {ps}, {gs})"
                    )
    if image_sizes is None:
        return
    for source, table in (("ground-truth", ground_truth), ("predicted", predictions)):
        for iid, per_finding in table.items():
            if iid not in ground_truth:
                continue
            if iid not in image_sizes:
                raise DataError(f"image {iid}: no entry in image_sizes")
            h, w = (float(v) for v in image_sizes[iid])
            for finding, boxes in per_finding.items():
                arr = as_box_array(boxes)
                if len(arr) and (
                    (arr[:, 0] < -tol).any() or (arr[:, 1] < -tol).any()
                    or (arr[:, 0] + arr[:, 2] > w + tol).any() or (arr[:, 1] + arr[:, 3] > h + tol).any()
                ):
                    raise DataError(
                        f"image {iid}, {finding}: a {source} box {arr.tolist()} lies outside the {int(h)}x{int(w)} "
                        "image -- are the boxes in another pixel space (e.g. 1024-px NIH or 224-px network input)?"
                    )


def localization_cases(
    predictions: BoxesByImage,
    ground_truth: BoxesByImage,
    *,
    findings: Sequence[str],
    rule: str = "any_gt",
    pred_rule: str = "top1",
) -> dict[str, np.ndarray]:
    """The evaluated cases under ``rule`` / ``pred_rule`` (module docstring): arrays ``image_id``,
    ``finding`` (index into ``findings``), ``iou`` and ``missing`` (no predicted box), one entry per case,
    images in sorted order."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if pred_rule not in PRED_RULES:
        raise ValueError(f"pred_rule must be one of {PRED_RULES}, got {pred_rule!r}")
    fidx = {f: j for j, f in enumerate(findings)}
    img, fnd, ious, missing = [], [], [], []
    for iid in sorted(ground_truth):
        preds_of_image = predictions.get(iid, {}) or {}
        for finding, gt_boxes in ground_truth[iid].items():
            if finding not in fidx:
                continue
            gt = as_box_array(gt_boxes)
            if not len(gt):
                continue
            pred = as_box_array(preds_of_image.get(finding))
            if pred_rule == "top1":
                pred = pred[:1]
            m = pairwise_iou(pred, gt)  # [P, G]
            best_per_gt = m.max(axis=0) if len(pred) else np.zeros(len(gt))
            values = [best_per_gt.max()] if rule == "any_gt" else list(best_per_gt)
            for v in values:
                img.append(iid)
                fnd.append(fidx[finding])
                ious.append(float(v))
                missing.append(len(pred) == 0)
    return {
        "image_id": np.array(img, dtype=object),
        "finding": np.array(fnd, dtype=np.int64),
        "iou": np.array(ious, dtype=np.float64),
        "missing": np.array(missing, dtype=bool),
    }


def _threshold_key(t: float) -> str:
    return f"{float(t):g}"


def _definition(rule: str, pred_rule: str) -> str:
    case = (
        "one case per (image, finding) with ground truth; correct if IoU(prediction, g) > T for any GT box g "
        "of that finding"
        if rule == "any_gt"
        else "one case per ground-truth box; correct if the prediction overlaps that box with IoU > T"
    )
    pred = (
        "prediction = the selected (first) predicted box"
        if pred_rule == "top1"
        else "prediction = the best of all predicted boxes against the ground truth (ORACLE selection)"
    )
    return f"{case}; {pred}; no predicted box counts as IoU 0; mean = unweighted mean over findings with >= 1 case"


# --- accuracy ---------------------------------------------------------------------------------------------
def iou_accuracy(
    predictions: BoxesByImage,
    ground_truth: BoxesByImage,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    findings: Sequence[str] | None = None,
    *,
    rule: str = "any_gt",
    pred_rule: str = "top1",
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    prediction_sizes: Mapping[str, tuple[int, int]] | None = None,
    size_tolerance: float = 1.0,
    patient_ids: Mapping[str, str] | None = None,
    n_boot: int = 0,
    ci: float = 0.95,
    seed: int = 0,
) -> dict:
    """Localization accuracy at IoU thresholds per finding and mean (seed 001 §4, Table 2).

    ``predictions`` / ``ground_truth``: ``{image_id: {finding: [box, ...]}}`` with boxes as ScoredBox, Box or
    ``(x, y, w, h)``, all in the image's pixel space. ``findings`` defaults to the sorted GT labels; GT labels
    not in ``findings`` are listed under ``"ignored_findings"``. ``image_sizes`` (``{image_id: (H, W)}`` of the
    ground truth's pixel space): boxes reaching more than ``size_tolerance`` px outside the image raise
    :class:`~radclr.errors.DataError`; with ``prediction_sizes`` too, differing grids raise as well.

    Bootstrap (``n_boot > 0``): resample *patients* (``patient_ids``: image -> patient; images are their own
    unit when omitted) with replacement, ``n_boot`` times, vectorised; percentile interval at level ``ci``
    per threshold and finding and for the mean (a resample in which a finding of the point estimate's mean has no
    case is undefined for the mean, so every resample averages the same findings; an interval needs at least half
    of the resamples defined, as in :mod:`radclr.evaluation.bootstrap`).

    Returns ``{"iou_accuracy": {"0.1": {finding: acc | None, "mean": acc}, ...}, "n_images", "n_cases",
    "n_missing_predictions", "mean_iou", "rule", "pred_rule", "oracle", "definition", "thresholds",
    "findings", "ignored_findings"}`` plus ``"iou_accuracy_ci": {"0.1": {finding: {"ci_low", "ci_high"}}}`` and
    ``"bootstrap"`` when ``n_boot > 0``. Findings with no case have ``None``.
    """
    thresholds = [float(t) for t in thresholds]
    if not thresholds or any(not 0.0 <= t < 1.0 for t in thresholds):
        raise ValueError(f"thresholds must be a non-empty list of IoU values in [0, 1), got {thresholds}")
    gt_labels = sorted({f for per in ground_truth.values() for f, b in per.items() if len(as_box_array(b))})
    findings = list(gt_labels if findings is None else findings)
    if len(set(findings)) != len(findings):
        raise ValueError(f"findings contain duplicates: {findings}")
    _check_sizes(ground_truth, predictions, image_sizes, prediction_sizes, size_tolerance)
    cases = localization_cases(predictions, ground_truth, findings=findings, rule=rule, pred_rule=pred_rule)
    f_idx, ious = cases["finding"], cases["iou"]
    nf = len(findings)
    correct = ious[:, None] > np.asarray(thresholds)[None, :]  # [cases, T]; strict, as in seed 001

    n_cases = np.bincount(f_idx, minlength=nf)
    out: dict[str, Any] = {"iou_accuracy": {}}
    for ti, t in enumerate(thresholds):
        acc = np.bincount(f_idx, weights=correct[:, ti].astype(float), minlength=nf)
        out["iou_accuracy"][_threshold_key(t)] = _per_finding(acc, n_cases, findings)
    out["mean_iou"] = _per_finding(np.bincount(f_idx, weights=ious, minlength=nf), n_cases, findings)
    out["n_images"] = int(len(set(cases["image_id"].tolist())))
    out["n_cases"] = {f: int(n) for f, n in zip(findings, n_cases)}
    out["n_missing_predictions"] = {
        f: int(n) for f, n in zip(findings, np.bincount(f_idx[cases["missing"]], minlength=nf))
    }
    out["rule"], out["pred_rule"], out["oracle"] = rule, pred_rule, pred_rule == "any"
    out["definition"] = _definition(rule, pred_rule)
    out["thresholds"] = thresholds
    out["findings"] = findings
    out["ignored_findings"] = sorted(set(gt_labels) - set(findings))
    if n_boot:
        out.update(_bootstrap(cases, correct, findings, thresholds, patient_ids, n_boot, ci, seed))
    return out


def _per_finding(sums: np.ndarray, counts: np.ndarray, findings: Sequence[str]) -> dict:
    vals = {f: (float(s / n) if n else None) for f, s, n in zip(findings, sums, counts)}
    present = [v for v in vals.values() if v is not None]
    vals["mean"] = float(np.mean(present)) if present else None
    return vals


def _bootstrap(cases, correct, findings, thresholds, patient_ids, n_boot, ci, seed) -> dict:
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    images = cases["image_id"]
    if patient_ids is not None:
        missing = sorted({i for i in images if i not in patient_ids})
        if missing:
            raise DataError(f"patient_ids has no entry for image(s) {missing[:5]}")
        units_of_case = np.array([str(patient_ids[i]) for i in images], dtype=object)
    else:
        units_of_case = images
    units, unit_idx = np.unique(units_of_case.astype(str), return_inverse=True)
    nu, nf, nt = len(units), len(findings), len(thresholds)
    # per unit: cases and correct cases per finding (and threshold)
    n_uf = np.zeros((nu, nf))
    np.add.at(n_uf, (unit_idx, cases["finding"]), 1.0)
    c_uft = np.zeros((nu, nf, nt))
    np.add.at(c_uft, (unit_idx, cases["finding"]), correct.astype(float))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, nu, size=(n_boot, nu))
    counts = np.bincount((draws + nu * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * nu)
    counts = counts.reshape(n_boot, nu).astype(float)  # how often each unit was drawn, per resample
    den = counts @ n_uf  # [n_boot, F]
    num = (counts @ c_uft.reshape(nu, nf * nt)).reshape(n_boot, nf, nt)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = num / den[:, :, None]  # NaN where a finding has no case in the resample
    # the mean of a resample averages the same findings as the point estimate (those with a case): a resample
    # missing one of them is undefined for the mean (averaging fewer findings would mix other means in)
    members = n_uf.sum(axis=0) > 0
    mean = acc[:, members, :].mean(axis=1) if members.any() else np.full((n_boot, nt), np.nan)  # NaN propagates
    lo_q, hi_q = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2
    result: dict[str, Any] = {}
    for ti, t in enumerate(thresholds):
        per: dict[str, Any] = {}
        for fi, f in enumerate(findings):
            per[f] = _interval(acc[:, fi, ti], lo_q, hi_q)
        per["mean"] = _interval(mean[:, ti], lo_q, hi_q)
        result[_threshold_key(t)] = per
    return {
        "iou_accuracy_ci": result,
        "bootstrap": {"n_boot": int(n_boot), "ci": float(ci), "seed": int(seed),
                      "unit": "patient" if patient_ids is not None else "image", "n_units": int(nu),
                      "method": "percentile"},
    }


def _interval(values: np.ndarray, lo_q: float, hi_q: float) -> dict | None:
    """Percentile interval over the defined resamples; None when fewer than
    :data:`~radclr.evaluation.bootstrap.MIN_VALID_FRACTION` of them are defined (as for classification)."""
    v = values[~np.isnan(values)]
    if not len(v) or len(v) < MIN_VALID_FRACTION * len(values):
        return None
    lo, hi = np.percentile(v, [lo_q, hi_q])
    return {"ci_low": float(lo), "ci_high": float(hi)}


# --- ground truth from a dataset --------------------------------------------------------------------------
def ground_truth_from_dataset(dataset, findings: Sequence[str] | None = None) -> dict[str, dict[str, list]]:
    """``{image_id: {finding: [Box, ...]}}`` from a :class:`~radclr.data.dataset.CXRDataset`'s box table
    (pixels of the image as read). With ``findings``, other labels are dropped."""
    gt: dict[str, dict[str, list]] = {}
    keep = None if findings is None else set(findings)
    for iid in dataset.boxes["image_id"].astype(str).unique():
        for box in dataset.boxes_for(iid):
            if keep is None or box.label in keep:
                gt.setdefault(iid, {}).setdefault(box.label, []).append(box)
    return gt


# --- baselines --------------------------------------------------------------------------------------------
def mean_box_sizes(
    ground_truth: BoxesByImage, image_sizes: Mapping[str, tuple[int, int]], findings: Sequence[str] | None = None
) -> dict[str, tuple[float, float]]:
    """Mean ground-truth box size per finding as fractions of the image, ``{finding: (h / H, w / W)}``.
    Fit it on the *training* ground truth when it feeds :func:`centre_box_baseline` for a test set."""
    acc: dict[str, list[tuple[float, float]]] = {}
    for iid, per in ground_truth.items():
        if iid not in image_sizes:
            raise DataError(f"image {iid}: no entry in image_sizes")
        hh, ww = (float(v) for v in image_sizes[iid])
        for finding, boxes in per.items():
            if findings is not None and finding not in findings:
                continue
            for x, y, w, h in as_box_array(boxes):
                acc.setdefault(finding, []).append((h / hh, w / ww))
    return {f: (float(np.mean([s[0] for s in v])), float(np.mean([s[1] for s in v]))) for f, v in acc.items()}


def centre_box_baseline(
    ground_truth: BoxesByImage,
    image_sizes: Mapping[str, tuple[int, int]],
    box_sizes: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, dict[str, list[tuple[float, float, float, float]]]]:
    """Predictions that ignore the image: for each (image, finding) with ground truth, one box centred in the
    image with the finding's mean relative size ``box_sizes[finding] = (h / H, w / W)``.

    ``box_sizes=None`` uses :func:`mean_box_sizes` of ``ground_truth`` itself -- i.e. it peeks at the sizes of
    the evaluated boxes, a slightly *optimistic* baseline; pass sizes fit on training data for the strict one.
    """
    sizes = mean_box_sizes(ground_truth, image_sizes) if box_sizes is None else box_sizes
    out: dict[str, dict[str, list]] = {}
    for iid, per in ground_truth.items():
        hh, ww = (float(v) for v in image_sizes[iid])
        for finding in per:
            if finding not in sizes:
                raise DataError(f"centre-box baseline: no box size for finding {finding!r}")
            rh, rw = sizes[finding]
            bw, bh = rw * ww, rh * hh
            out.setdefault(iid, {})[finding] = [((ww - bw) / 2, (hh - bh) / 2, bw, bh)]
    return out


def whole_image_baseline(
    ground_truth: BoxesByImage, image_sizes: Mapping[str, tuple[int, int]]
) -> dict[str, dict[str, list[tuple[float, float, float, float]]]]:
    """Predictions that box the whole image, ``(0, 0, W, H)``, for each (image, finding) with ground truth."""
    out: dict[str, dict[str, list]] = {}
    for iid, per in ground_truth.items():
        if iid not in image_sizes:
            raise DataError(f"image {iid}: no entry in image_sizes")
        hh, ww = (float(v) for v in image_sizes[iid])
        out[iid] = {finding: [(0.0, 0.0, ww, hh)] for finding in per}
    return out
