"""``radclr predict``: image files -> finding probabilities, Grad-CAM box and overlay, radiomics of the box
with each feature's percentile among the model's own boxes on training images, and plain-language lines.

Per image, every step is the one training and evaluation used, so a test image gets exactly the probability its
run wrote to ``predictions_test.csv``:

1. **read** (PNG/JPEG/DICOM, :func:`radclr.io.read_image`; DICOM MONOCHROME1 inverted) -> **store scale** 0..255
   (:func:`radclr.training_data.store.to_store_scale` with the run's ``data.intensity`` rule) -> **resize** to the
   run's ``S x S`` (:func:`radclr.training_data.store.resize_image`) -> rounded to uint8 as the image store keeps it -> /255.
2. **forward**: ``fmap = f_i.forward_features(x)``, ``logits = head(pool(fmap))``; probabilities = sigmoid
   (multi-label) or softmax over the classes (``data.task: multiclass``).
3. **thresholds** from ``RUN/thresholds.json`` (fit on the validation split by ``radclr evaluate``); a finding is
   positive when ``p >= threshold``. A multi-class run has no thresholds: it predicts **one class**, the arg-max,
   with its probability (``predicted_class``, ``probability``), and explains that class only.
4. **Grad-CAM** (seed 001 §3.2) of the top finding and of every positive finding, on the last block, one backward
   through the head per target (:func:`radclr.cam.gradcam.grad_cam_from_activations`).
5. **box**: CAM upsampled to ``S x S`` -> :func:`radclr.cam.boxes.cam_to_boxes` with the CAM options the run's
   evaluation used (:func:`_cam_options`) -> scaled to the file's own pixels.
6. **overlay** PNG at the file's resolution (:func:`radclr.visualize.overlays.save_overlay_png`): image, heatmap,
   predicted box in red.
7. **radiomics** of the box with the torch engine and the run's settings, on the store-scale ``S x S`` image with
   the one region rule (:class:`radclr.radiomics.regions.RegionRadiomics`) -- exactly how BYOP computes the
   radiomics of its CAM boxes -- and each feature's **percentile** in the reference population (below); one line gives the
   box's size among training boxes and the ``top_k`` non-shape features farthest from the median get a
   plain-language line ("GLCM contrast = 412: 94th percentile of training boxes (high)").

Reference population (:func:`build_radiomics_reference`): the radiomics of the model's own top-finding Grad-CAM
boxes on a seeded sample of at most 2000 TRAINING images, computed once and saved as
``RUN/radiomics_reference.npz``; rebuilt when the checkpoint or the radiomics settings changed. Only the sampled
images are read to build it (not the run's whole image store). Percentile of a
value v among the n finite reference values: ``100 * (#{r < v} + #{r == v} / 2) / n`` (mid-rank, in [0, 100]).
When the run's training data are not available to build it, predict still returns the radiomics values, with
``percentile: null`` and an explanation line saying why.

Images the model cannot say anything meaningful about -- under 32 px a side (e.g. 1 x 1) or constant -- are still
predicted, but the result carries ``warnings`` (also logged and printed first by ``radclr predict``), so a
"positive" finding on them is never reported without one.

Inputs predict refuses (:class:`radclr.errors.RadclrError`): a run without a classifier (e.g. SimCLR pretraining
alone -- fine-tune or use linear evaluation), a run whose classifier needs more than the image (seed 004 ROI-crop
runs and the hybrid network need the lesion's box/ROI radiomics), volumes, and unreadable files
(:class:`~radclr.errors.ImageReadError` naming the file). Several images are processed in order; the first bad
one stops the call with its name.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from radclr.boxes import scale_boxes
from radclr.cam.boxes import cam_to_boxes, upsample_cam
from radclr.cam.gradcam import grad_cam, grad_cam_from_activations, target_scores
from radclr.cam.options import CamOptions
from radclr.data.validate import SMALL_IMAGE_SIDE
from radclr.errors import DataError, RadclrError
from radclr.evaluation.metrics import probabilities
from radclr.io import read_image
from radclr.progress import progress_bar
from radclr.radiomics.regions import RegionRadiomics, radiomics_settings
from radclr.runs.evaluate import saved_thresholds
from radclr.runs.run import load_run
from radclr.runtime.device import resolve_device
from radclr.training_data import open_dataset
from radclr.training_data.prepare import check_split_contract
from radclr.training_data.store import resize_image, to_store_scale
from radclr.visualize.overlays import overlay_title, save_overlay_png

log = logging.getLogger("radclr.predict")

__all__ = ["Predictor", "predict", "build_radiomics_reference", "load_radiomics_reference", "RadiomicsReference",
           "percentiles", "feature_label", "explain", "box_line", "REFERENCE_FILE"]

REFERENCE_FILE = "radiomics_reference.npz"


# --------------------------------------------------------------------------------------------------------------
# run checks and shared settings
# --------------------------------------------------------------------------------------------------------------
def _check_predictable(run) -> None:
    """Refuse runs predict cannot serve from an image alone (see module docstring)."""
    method = run.method
    if not method.classifies:
        raise RadclrError(f"{run.run_dir}: method {method.name!r} has no classifier (label-free pretraining); "
                          "predict needs a fine-tuned run -- train a supervised stage on it, or use its linear "
                          "evaluation in `radclr report`")
    if run.cfg["data"].get("volume") is not None:
        raise RadclrError(f"{run.run_dir}: this run classifies 3-D tumour stacks (data.volume, seed 004); predict "
                          "takes 2-D images -- evaluate such runs with `radclr evaluate RUN --data FOLDER`")
    if run.cfg["radiomics"].get("region") == "roi_crop":
        raise RadclrError(f"{run.run_dir}: this run classifies ROI crops (seed 004, radiomics.region: roi_crop); "
                          "predict would need the lesion's box, which it does not take -- use a whole-image run")
    if method.cam_head() is None:
        raise RadclrError(f"{run.run_dir}: method {method.name!r} classifies from the image AND the ROI's "
                          "radiomics (needs a box); predict works on whole-image classifiers")


def _cam_options(run) -> CamOptions:
    """CAM -> box options: those the run's evaluation used for this checkpoint (``metrics.json``
    ``localization.cam_options``, e.g. a CAM threshold calibrated on annotated training images), else the
    method's own (BYOP's calibrated threshold, else the defaults) -- so predict's boxes are the ones whose
    localization accuracy the run reports."""
    opts = run.method.cam_options.to_dict()
    path = Path(run.run_dir) / "metrics.json"
    if path.exists():
        try:
            m = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            m = {}
        used = (m.get("localization") or {}).get("cam_options")
        if isinstance(used, dict) and m.get("checkpoint") == Path(run.checkpoint).name:
            opts.update({k: v for k, v in used.items() if k in opts})
    return CamOptions.from_dict(opts)


def model_input(path, size: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """``(store_scale_full [H, W] float32, model_input uint8 [size, size])`` of an image file, exactly as the image
    store builds it (step 1 of the module docstring)."""
    img = read_image(path)
    a = img.array
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise DataError(f"{path}: predict takes 2-D images; this file holds an array of shape {a.shape}")
    scaled = to_store_scale(a, img.meta, rule, source=str(path))
    small = np.clip(np.rint(resize_image(scaled, size)), 0, 255).astype(np.uint8)
    return scaled, small


def _checkpoint_id(path: Path) -> str:
    st = Path(path).stat()
    return f"{Path(path).name}:{st.st_size}:{st.st_mtime_ns}"


# --------------------------------------------------------------------------------------------------------------
# the reference population
# --------------------------------------------------------------------------------------------------------------
@dataclass
class RadiomicsReference:
    """Radiomics ``values [N, R]`` of the model's top-finding CAM boxes on ``N`` training images."""

    names: list[str]
    values: np.ndarray
    meta: dict
    path: Path | None = None

    def __post_init__(self):
        v = np.asarray(self.values, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != len(self.names):
            raise ValueError(f"reference values must be [N, {len(self.names)}], got shape {v.shape}")
        self.values = v
        self._sorted = np.sort(v, axis=0)  # NaN sort last
        self._n = np.isfinite(v).sum(axis=0)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def percentiles(self, values) -> np.ndarray:
        """Mid-rank percentile (0..100) of each feature value among the reference's finite values; NaN where
        the value is not finite or the feature has no finite reference value."""
        x = np.asarray(values, dtype=np.float64)
        if x.shape != (len(self.names),):
            raise ValueError(f"expected {len(self.names)} feature values, got shape {x.shape}")
        out = np.full(x.shape, np.nan)
        for j in np.flatnonzero(np.isfinite(x) & (self._n > 0)):
            col = self._sorted[: self._n[j], j]
            lo = np.searchsorted(col, x[j], side="left")
            hi = np.searchsorted(col, x[j], side="right")
            out[j] = 100.0 * (lo + 0.5 * (hi - lo)) / self._n[j]
        return out


def percentiles(reference, values) -> np.ndarray:
    """Mid-rank percentiles of ``values [R]`` in ``reference [N, R]`` (see :class:`RadiomicsReference`)."""
    ref = np.asarray(reference, dtype=np.float64)
    return RadiomicsReference([str(i) for i in range(ref.shape[1])], ref, {}).percentiles(values)


def load_radiomics_reference(run_dir) -> RadiomicsReference | None:
    """The saved reference of a run, or None when there is none (or it cannot be read)."""
    path = Path(run_dir) / REFERENCE_FILE
    if not path.exists():
        return None
    try:
        z = np.load(path, allow_pickle=False)
        return RadiomicsReference([str(n) for n in z["names"]], z["values"], json.loads(str(z["meta"])), path)
    except (OSError, ValueError, KeyError) as e:
        log.warning("radiomics reference %s unreadable (%s); it will be rebuilt", path, e)
        return None


def _reference_key(run) -> dict:
    return {"checkpoint": _checkpoint_id(run.checkpoint), "settings": repr(radiomics_settings(run.cfg["radiomics"])),
            "image_size": run.image_size, "cam_options": _cam_options(run).to_dict()}


def build_radiomics_reference(run_dir, *, max_images: int = 2000, seed: int = 0, device="cpu", batch_size: int = 32,
                              checkpoint: str = "best", run=None, data=None, progress: bool = False) -> Path:
    """Compute and save ``RUN/radiomics_reference.npz``: radiomics of the model's top-finding Grad-CAM box on a
    seeded sample of at most ``max_images`` training images (the population ``radclr predict`` ranks against).

    Each image: Grad-CAM of its highest-probability finding -> box with the method's CAM options (the whole image
    when no component survives) -> radiomics of the box on the store-scale image (torch engine, run settings).
    The file holds ``names``, ``values [N, R]``, ``image_ids``, ``boxes [N, 4]`` (store pixels), ``findings``
    (the target of each box), ``fallback`` flags and ``meta`` (JSON: checkpoint, settings, sample). Returns the path.
    ``data``: the run's prepared data when at hand (pixels from its image store); without it only the sampled
    image files are read (:class:`_ReferenceSample`).
    """
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    run_dir = Path(run_dir)
    if run is None:
        run = load_run(run_dir, checkpoint, resolve_device(device) if isinstance(device, str) else device)
    _check_predictable(run)
    dev = next(run.method.parameters()).device
    sample = _ReferenceSample(run, max_images, seed, data)
    S, findings = run.image_size, run.findings
    head, enc = run.method.cam_head(), run.method.encoder
    opts = _cam_options(run)
    regions = RegionRadiomics(run.cfg["radiomics"])
    boxes, targets, fallback, chunks = [], [], [], []
    for s in progress_bar(range(0, len(sample.pick), batch_size), desc="radiomics reference", unit="batch",
                          enabled=progress):
        store = sample.images(sample.pick[s:s + batch_size])
        x = torch.from_numpy(store.astype(np.float32) / 255.0).unsqueeze(1).to(dev)
        cams, logits = grad_cam(enc, head, x, None, upsample_to=(S, S), return_logits=True, layer=opts.layer)
        top = logits.argmax(dim=1).cpu().numpy()
        found = [cam_to_boxes(cam, opts.for_finding(findings[t])) for cam, t in zip(cams.cpu(), top)]
        bx = [b[0].as_array() if b else np.array([0.0, 0.0, S, S]) for b in found]
        vals = regions.of_boxes(torch.as_tensor(store, dtype=torch.float64), np.asarray(bx)).cpu().numpy()
        chunks.append(vals)
        boxes += bx
        targets += [findings[t] for t in top]
        fallback += [not b or b[0].fallback for b in found]
    pick, train = sample.pick, sample.train
    meta = {**_reference_key(run), "n": int(len(pick)), "n_train": int(len(train)), "max_images": int(max_images),
            "seed": int(seed), "population": "top-finding Grad-CAM boxes on training images",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = run_dir / REFERENCE_FILE
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.asarray(regions.names), values=np.concatenate(chunks), boxes=np.asarray(boxes, dtype=np.float64),
             image_ids=np.asarray(sample.image_ids(), dtype=str), findings=np.asarray(targets),
             fallback=np.asarray(fallback, dtype=bool), meta=np.asarray(json.dumps(meta)))
    tmp.replace(path)
    return path


class _ReferenceSample:
    """The seeded sample of at most ``max_images`` training images a reference is built from, and their pixels.

    With the run's prepared ``data`` (``radclr report`` has it) the pixels come from its image store; without,
    only the sampled files are read and brought to the store's pixels (:func:`model_input`), so a first
    ``radclr predict`` on a 112 k-image run decodes ~2,000 images, not the whole dataset. The split is the
    run's ``splits.csv``; both ways draw the same sample."""

    def __init__(self, run, max_images: int, seed: int, data=None):
        self.run, self.data = run, data
        if data is not None:
            self.dataset, train = data.dataset, data.indices("train")
        else:
            self.dataset = open_dataset(run.cfg["data"])
            train = self._training_indices()
        if len(train) == 0:
            raise DataError(f"{run.run_dir}: the run's split has no training images to build a radiomics reference "
                            "from")
        rng = np.random.default_rng([int(seed), 0x5EF])
        self.train = train
        self.pick = np.sort(rng.choice(train, size=min(int(max_images), len(train)), replace=False))

    def _training_indices(self) -> np.ndarray:
        path = Path(self.run.run_dir) / "splits.csv"
        if not path.exists():
            raise DataError(f"{path} is missing: the run's training images are unknown")
        split = pd.read_csv(path, dtype={"image_id": str, "patient_id": str})
        check_split_contract(split, self.dataset, path, self.run.cfg["data"].get("path"))
        train = set(split.loc[split["split"] == "train", "image_id"])
        return np.flatnonzero([iid in train for iid in self.dataset.image_ids])

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 ``[k, S, S]`` model inputs of dataset rows ``indices``, as the image store holds them."""
        if self.data is not None:
            return np.asarray(self.data.store.images[indices])
        rule = self.run.cfg["data"].get("intensity", "auto")
        return np.stack([model_input(self.dataset.path(i), self.run.image_size, rule)[1] for i in indices])

    def image_ids(self) -> list[str]:
        ids = self.dataset.image_ids
        return [ids[i] for i in self.pick]


# --------------------------------------------------------------------------------------------------------------
# plain language
# --------------------------------------------------------------------------------------------------------------
_CLASS_LABELS = {"firstorder": "first-order", "shape2D": "shape", "shape": "shape", "glcm": "GLCM",
                 "glrlm": "GLRLM", "glszm": "GLSZM", "gldm": "GLDM", "ngtdm": "NGTDM"}

# PyRadiomics' GLCM abbreviations (inverse difference / moment (normalised), informational measures of correlation)
_ACRONYMS = {"Id": "ID", "Idm": "IDM", "Idmn": "IDMN", "Idn": "IDN", "Imc1": "IMC1", "Imc2": "IMC2"}


def feature_label(name: str) -> str:
    """``original_glcm_ClusterProminence`` -> ``GLCM cluster prominence`` (acronyms such as IDMN kept)."""
    parts = name.split("_")
    image_type, cls, feat = (parts[0], parts[1], "_".join(parts[2:])) if len(parts) >= 3 else \
        ("original", parts[0] if len(parts) == 2 else "", parts[-1])
    if feat in _ACRONYMS:
        feat = _ACRONYMS[feat]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", feat).split()
    words = [w if sum(c.isupper() for c in w) >= 2 else w.lower() for w in words]
    head = [] if image_type == "original" else [image_type]
    return " ".join(head + [_CLASS_LABELS.get(cls, cls)] + words).strip()


def _fmt_value(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1e4 and abs(v) < 1e12 else f"{v:.4g}"


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _feature_class(name: str) -> str:
    parts = name.split("_")
    return parts[1] if len(parts) >= 3 else ""


def explain(names: Sequence[str], values, pct, top_k: int = 5, population: str = "training boxes", *,
            skip_classes: Sequence[str] = ("shape2D", "shape"), labels: dict[str, str] | None = None) -> list[str]:
    """One line for each of the ``top_k`` features farthest from the reference median (|percentile - 50|).

    Shape features are skipped by default: of a rectangular box they only restate its size and aspect
    (:func:`box_line` says how large the box is); the lines are about the tissue inside it."""
    pct = np.asarray(pct, dtype=np.float64)
    keep = np.array([_feature_class(n) not in skip_classes for n in names], dtype=bool)
    ok = np.flatnonzero(np.isfinite(pct) & keep)
    order = ok[np.argsort(-np.abs(pct[ok] - 50.0), kind="stable")][:top_k]
    lines = []
    for j in order:
        p, v = float(pct[j]), float(values[j])
        label = (labels or {}).get(names[j]) or feature_label(names[j])
        if p <= 0.0:
            where = f"lower than in every one of the {population}"
        elif p >= 100.0:
            where = f"higher than in every one of the {population}"
        else:
            k = min(max(int(round(p)), 1), 99)
            where = f"{_ordinal(k)} percentile of {population} ({'high' if p > 50 else 'low'})"
        lines.append(f"{label} = {_fmt_value(v)}: {where}")
    return lines


def box_line(names: Sequence[str], values, pct, population: str = "training boxes") -> list[str]:
    """``box area = 1234 px (at the model's resolution): 80th percentile of training boxes (high)``."""
    name = "original_shape2D_PixelSurface"
    if name not in names:
        return []
    j = list(names).index(name)
    return explain([name], [values[j]], [pct[j]], 1, population, skip_classes=(),
                   labels={name: "box area (pixels at the model's input size)"})


# --------------------------------------------------------------------------------------------------------------
# the predictor
# --------------------------------------------------------------------------------------------------------------
class Predictor:
    """A loaded run ready to predict many images (the model, thresholds and reference are loaded once)."""

    def __init__(self, run_dir, *, device="auto", checkpoint: str = "best", reference: bool = True,
                 reference_max_images: int = 2000, top_k: int = 5, top_only: bool = False, progress: bool = False):
        self.run_dir = Path(run_dir)
        self.device = resolve_device(device) if isinstance(device, str) or device is None else device
        self.run = load_run(self.run_dir, checkpoint, self.device)
        _check_predictable(self.run)
        self.method = self.run.method
        self.head = self.method.cam_head()
        self.findings = self.run.findings
        self.size = self.run.image_size
        self.rule = self.run.cfg["data"].get("intensity", "auto")
        self.cam_options = _cam_options(self.run)
        self.regions = RegionRadiomics(self.run.cfg["radiomics"])
        self.top_k = int(top_k)
        self.top_only = bool(top_only)
        self.task = self.run.task
        self.thresholds, self.threshold_rule = self._thresholds()
        self.reference: RadiomicsReference | None = None
        self.reference_note: str | None = None
        if reference:
            self._load_reference(reference_max_images, progress)
        else:
            self.reference_note = "no reference population requested"

    def _thresholds(self) -> tuple[dict[str, float], str]:
        if self.task == "multiclass":  # one class per image: the arg-max, nothing to threshold
            return {}, "arg-max of the class probabilities (single-label multi-class task, no thresholds)"
        thr, rule = saved_thresholds(self.run_dir, self.run.checkpoint.name)
        if thr is None:
            log.warning("%s: %s; using 0.5 for every finding", self.run_dir, rule)
            return {f: 0.5 for f in self.findings}, f"fixed 0.5 ({rule})"
        out = {}
        for f in self.findings:
            t = thr.get(f)
            out[f] = float(t) if t is not None and np.isfinite(float(t)) else 0.5
        return out, rule

    def _load_reference(self, max_images: int, progress: bool) -> None:
        ref = load_radiomics_reference(self.run_dir)
        same = ref is not None and all(ref.meta.get(k) == v for k, v in _reference_key(self.run).items())
        wanted = min(int(max_images), int(ref.meta.get("n_train", 0))) if same else None
        if same and ref.meta.get("n") == wanted:
            self.reference = ref
            return
        if same:  # --reference-max-images asks for another sample size than the saved reference's: honoured
            log.info("radiomics reference of %s holds %s training images; rebuilding it with up to %d "
                     "(--reference-max-images)", self.run_dir, ref.meta.get("n"), max_images)
        elif ref is not None:
            log.info("radiomics reference of %s is stale (checkpoint or settings changed); rebuilding", self.run_dir)
        else:
            log.info("building the radiomics reference population of %s (Grad-CAM boxes of up to %d training "
                     "images; once per checkpoint)", self.run_dir, max_images)
        try:
            build_radiomics_reference(self.run_dir, max_images=max_images, run=self.run, progress=progress)
        except DataError as e:
            self.reference_note = f"no reference population: the run's training data are unavailable ({e})"
            log.warning("%s", self.reference_note)
            return
        except OSError as e:
            self.reference_note = f"no reference population: could not read or write it ({e})"
            log.warning("%s", self.reference_note)
            return
        self.reference = load_radiomics_reference(self.run_dir)

    # --- steps --------------------------------------------------------------------------------------------
    def preprocess(self, path) -> tuple[np.ndarray, np.ndarray]:
        """``(store_scale_full [H, W] float32, model_input uint8 [S, S])`` exactly as the image store builds it."""
        return model_input(path, self.size, self.rule)

    def usability_warnings(self, full: np.ndarray) -> list[str]:
        """Why the model's answer for this image is not meaningful (tiny or constant image), or ``[]``."""
        H, W = full.shape
        out = []
        if min(H, W) < SMALL_IMAGE_SIDE:
            out.append(f"very small image ({W} x {H} px, under {SMALL_IMAGE_SIDE} px a side): it is stretched to the "
                       f"model's {self.size} x {self.size} px and carries no real detail; the probabilities and "
                       "box below are not meaningful")
        if full.size and float(full.min()) == float(full.max()):
            out.append("constant image (every pixel the same value): there is nothing to see; the probabilities "
                       "and box below are not meaningful")
        return out

    def predict_one(self, path, out_dir=None, *, stem: str | None = None) -> dict:
        t = _Timer(self.device)
        path = Path(path)
        full, small = self.preprocess(path)
        H, W = full.shape
        warnings = self.usability_warnings(full)
        for w in warnings:
            log.warning("%s: %s", path, w)
        S = self.size
        x = torch.from_numpy(small.astype(np.float32) / 255.0)[None, None].to(self.device)
        t.lap("preprocess")
        enc, layer = self.method.encoder, self.cam_options.layer
        with torch.no_grad():
            fmap = enc.forward_features(x) if layer == "last" else enc.feature_maps(x, layer)[0]
        with torch.enable_grad():
            fmap = fmap.detach().requires_grad_(True)
            logits = self.head(enc.pool(fmap if layer == "last" else enc.forward_from(layer, fmap)))
            probs = probabilities(logits.detach().float().cpu().numpy(), self.task)[0].astype(np.float64)
            t.lap("forward")
            order = [int(j) for j in np.argsort(-probs, kind="stable")]
            if self.task == "multiclass":  # the one predicted class
                positive = [order[0]]
            else:
                positive = [j for j in order if probs[j] >= self.thresholds[self.findings[j]]]
            targets = [order[0]] + ([] if self.top_only else [j for j in positive if j != order[0]])
            scores = target_scores(logits, torch.tensor([targets], device=logits.device))
            cams = grad_cam_from_activations(fmap, scores, retain_graph=False)[0]  # [K, h, w]
        cams = upsample_cam(cams.cpu(), (S, S))
        t.lap("cam")
        found = [cam_to_boxes(cam, self.cam_options.for_finding(self.findings[j])) for cam, j in zip(cams, targets)]
        regions, model_boxes = [], []
        for j, boxes in zip(targets, found):
            b = boxes[0].as_array() if boxes else np.array([0.0, 0.0, float(S), float(S)])
            model_boxes.append(b)
            regions.append({"finding": self.findings[j], "probability": float(probs[j]),
                            "above_threshold": bool(j in positive) if self.task == "multiclass"
                            else bool(probs[j] >= self.thresholds[self.findings[j]]),
                            "box": [round(float(v), 2) for v in scale_boxes(b, (S, S), (H, W))],
                            "box_model": [round(float(v), 2) for v in b],
                            "fallback": bool(not boxes or boxes[0].fallback)})
        t.lap("boxing")
        names, values = self._radiomics(small, model_boxes)
        for r, vals in zip(regions, values):
            pct = self.reference.percentiles(vals) if self.reference is not None and \
                list(self.reference.names) == list(names) else np.full(len(names), np.nan)
            r["radiomics"] = {n: {"value": _json_float(v), "percentile": _json_float(p)}
                              for n, v, p in zip(names, vals, pct)}
            r["explanation"] = box_line(names, vals, pct) + explain(names, vals, pct, self.top_k) \
                if np.isfinite(pct).any() else [self.reference_note or "no reference population"]
        t.lap("radiomics")
        if out_dir is not None:
            out_dir = Path(out_dir)
            base = stem or path.stem
            for r, cam in zip(regions, cams):
                png = out_dir / f"{base}_{_safe(r['finding'])}.png"
                r["overlay"] = str(save_overlay_png(full, cam, [], [r["box"]], png,
                                                    title=overlay_title(r["finding"], r["probability"])))
        else:
            for r in regions:
                r["overlay"] = None
        t.lap("overlay")
        top = regions[0]
        single = {"predicted_class": top["finding"], "probability": top["probability"]} \
            if self.task == "multiclass" else {}
        return {
            "image": str(path), "image_size": [int(H), int(W)], "model_input_size": int(S),
            "run": str(self.run_dir), "checkpoint": self.run.checkpoint.name, "task": self.task, **single,
            "probabilities": {f: float(probs[j]) for j, f in enumerate(self.findings)},
            "thresholds": dict(self.thresholds), "threshold_rule": self.threshold_rule,
            "positive_findings": [self.findings[j] for j in positive],
            "warnings": warnings,
            "top_finding": top["finding"], "box": top["box"], "box_fallback": top["fallback"],
            "overlay": top["overlay"], "radiomics": top["radiomics"], "explanation": top["explanation"],
            "regions": regions,
            "reference": {"path": str(self.reference.path) if self.reference is not None else None,
                          "n_boxes": len(self.reference) if self.reference is not None else 0,
                          "population": "top-finding Grad-CAM boxes on training images",
                          **({"note": self.reference_note} if self.reference is None else {})},
            "timing_ms": t.ms,
        }

    def _radiomics(self, small: np.ndarray, boxes_model: list) -> tuple[list[str], np.ndarray]:
        # several findings often share a box (the same hot spot, or the whole-image fallback): compute it once
        unique, inverse = np.unique(np.asarray(boxes_model, dtype=np.float64).reshape(-1, 4), axis=0,
                                    return_inverse=True)
        images = torch.from_numpy(np.repeat(small[None].astype(np.float64), len(unique), axis=0))
        vals = self.regions.of_boxes(images, unique)
        return list(self.regions.names), vals.cpu().numpy().astype(np.float64)[np.asarray(inverse).reshape(-1)]

    def __call__(self, paths, out_dir=None) -> list[dict]:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        paths = [Path(p) for p in paths]
        if not paths:
            raise RadclrError("predict: give at least one image file")
        stems = _unique_stems(paths)
        return [self.predict_one(p, out_dir, stem=s) for p, s in zip(paths, stems)]


def predict(run_dir, paths, out_dir=None, *, device="auto", checkpoint: str = "best", top_k: int = 5,
            top_only: bool = False, progress: bool = False, reference: bool = True,
            reference_max_images: int = 2000) -> list[dict]:
    """Predict image files with a trained run (see module docstring); overlays go to ``out_dir`` when given.

    Returns one JSON-ready dict per image: ``task``, ``probabilities``, ``thresholds``, ``positive_findings``,
    (multi-class runs: ``predicted_class`` and its ``probability``; no thresholds), ``warnings`` (why the result
    is not meaningful, e.g. a 1 x 1 image; usually empty), ``top_finding``, ``box`` (x, y, w, h in the file's
    pixels), ``overlay`` (path or None), ``radiomics`` ``{name: {value, percentile}}``, ``explanation`` (lines),
    ``regions`` (the same for every positive finding), ``timing_ms`` per step. ``top_only``: CAM, box, radiomics
    and overlay of the top finding only.
    """
    return Predictor(run_dir, device=device, checkpoint=checkpoint, top_k=top_k, top_only=top_only,
                     progress=progress, reference=reference, reference_max_images=reference_max_images)(paths, out_dir)


# --------------------------------------------------------------------------------------------------------------
class _Timer:
    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.t = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, name: str) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.ms[name] = round((now - self.t) * 1000.0, 3)
        self.t = now


def _json_float(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _unique_stems(paths: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = _safe(p.name[: -len(".nii.gz")] if p.name.endswith(".nii.gz") else p.stem)
        k = seen.get(stem, 0)
        seen[stem] = k + 1
        out.append(stem if k == 0 else f"{stem}-{k}")
    return out
