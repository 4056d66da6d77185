"""From a config to a run's prepared data: dataset, patient-wise split, image store, fixed-region radiomics.

``prepare_data(cfg, run_dir)`` does the one-off work of a run (load the dataset, split it patient-wise and
save ``splits.csv``, build the image store, compute the radiomics of fixed regions); a
:class:`radclr.training_data.view.TrainingView` then serves batches for any method.

Regions (``radiomics.region``), all in store pixels (:mod:`radclr.radiomics.regions` computes their radiomics):
* ``box`` -- seed 000 §3: the union of the image's ground-truth boxes (of the run's findings); the whole image
  for images without a box (normals).
* ``whole_image`` -- seed 000 Table 2 "FairRadi" control: the whole image for every image.
* ``roi_crop`` -- seed 004 §2.3: like ``box``; the image view is also the ROI crop (see the method).
* ``cam`` -- seed 001 BYOP: ground-truth boxes where annotated, otherwise boxes from the model's own Grad-CAM,
  refreshed during training (fixed radiomics here are only the starting point: the whole image).

3-D inputs (``data.volume`` set; seed 004 §3.1): images are volumes with tumour masks; the store holds each case's
``n x S x S`` tumour stack, ``image`` is ``[n, S, S]``, there is no ROI crop (the stack is the ROI) and the fixed
radiomics are PyRadiomics' 3-D features of the tumour volume (:mod:`radclr.training_data.volumes`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from radclr.boxes import Box, union_box
from radclr.data import demo_dataset_path, load_dataset
from radclr.data import splits as S
from radclr.data.combine import concat_datasets
from radclr.data.dataset import CXRDataset
from radclr.data.phantom import write_phantom_dataset
from radclr.data.phantom_classes import write_single_label_phantoms
from radclr.data.phantom_volumes import PHANTOM_VOLUME_VERSION, write_phantom_volumes
from radclr.errors import ConfigError, DataError
from radclr.radiomics.regions import RegionRadiomics
from radclr.safe_write import writable_dir
from radclr.training_data.data_config import DataConfig
from radclr.training_data.fixed_radiomics import cached_fixed_radiomics
from radclr.training_data.store import ImageStore, build_store, default_jobs
from radclr.training_data.volumes import build_volume_store, volume_radiomics, volume_settings
from radclr.transforms import ROICrop

log = logging.getLogger(__name__)
CACHE_FOLDER = "cache folder (data.cache_dir or RADCLR_CACHE)"
MIN_BOXED_TRAIN = 20  # BYOP's standardiser is fitted on boxed training rows from this many on (methods/byop.py)


# --------------------------------------------------------------------------------------------------------------
# dataset + split
# --------------------------------------------------------------------------------------------------------------
def open_dataset(data_cfg: dict | DataConfig) -> CXRDataset:
    """The dataset a config's ``data`` section names (the mapping or its :class:`DataConfig`): ``demo`` (embedded
    real sample), ``phantom`` (synthetic; single-label phantoms, :mod:`radclr.data.phantom_classes`, when
    ``data.task`` is ``multiclass``), ``phantom_volumes`` (synthetic CT tumour volumes with masks,
    :mod:`radclr.data.phantom_volumes`), a folder or a list of folders (combined)."""
    dc = DataConfig.from_dict(data_cfg)
    path = dc.path
    n, size, seed = dc.phantom.n, dc.phantom.size, dc.phantom.seed
    if path == "demo":
        ds = load_dataset(demo_dataset_path())
    elif path == "phantom":
        single = dc.task == "multiclass"
        cache = dc.cache / f"phantom{'-classes' if single else ''}-n{n}-s{size}-seed{seed}"
        if (cache / "labels.csv").exists():
            ds = load_dataset(cache, format="folder")
        elif single:
            ds = write_single_label_phantoms(cache, n=n, size=size, seed=seed)
        else:
            writable_dir(cache.parent, CACHE_FOLDER)
            ds = write_phantom_dataset(cache, n=n, size=size, seed=seed)
    elif path == "phantom_volumes":
        cache = dc.cache / f"phantom-volumes-v{PHANTOM_VOLUME_VERSION}-n{n}-s{size}-seed{seed}"
        if (cache / "labels.csv").exists():
            ds = load_dataset(cache, format="folder")
        else:
            writable_dir(cache.parent, CACHE_FOLDER)
            ds = write_phantom_volumes(cache, n=n, size=size, seed=seed)
    elif isinstance(path, tuple):  # several datasets combined (radclr.data.combine)
        parts = []
        for p in path:
            if not Path(p).exists():
                raise DataError(f"data.path entry {p!r} does not exist")
            parts.append(load_dataset(p, follow_links=dc.follow_links))
        ds = concat_datasets(parts)
    else:
        if not Path(path).exists():
            raise DataError(f"data.path {path!r} does not exist")
        ds = load_dataset(path, format=dc.format, follow_links=dc.follow_links)
    if dc.box_fraction < 1.0:
        ds = keep_boxes_of_fraction(ds, dc.box_fraction, dc.split.seed)
    # before any restriction to data.findings: the image has no positive label among ALL of its dataset's findings
    # (NIH "No Finding"); an image with only an unstudied finding (e.g. Emphysema) is not normal by this flag
    # (seed 001 hard negatives, byop negatives_normal: no_finding)
    ds.records["no_finding"] = ~np.any(ds.labels == 1, axis=1)
    findings = dc.findings
    if findings:
        unknown = [f for f in findings if f not in ds.findings]
        if unknown:
            raise ConfigError(f"data.findings: {unknown} not in the dataset's findings {ds.findings}")
        ds = ds.with_findings(findings)
    return ds


def keep_boxes_of_fraction(ds: CXRDataset, fraction: float, seed: int) -> CXRDataset:
    """Drop the ground-truth boxes of all but a seeded ``fraction`` of the annotated patients.

    Simulates the regime seed 001 targets (few annotated images among many unannotated ones) on a fully boxed
    dataset such as the phantoms; the dropped images then count as unannotated (BYOP uses their Grad-CAM)."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"data.box_fraction must be in [0, 1], got {fraction}")
    boxed = ds.records.loc[ds.has_boxes(), ["image_id", "patient_id"]]
    patients = np.unique(boxed["patient_id"].to_numpy())
    rng = np.random.default_rng([seed, 0xB0C5])
    keep = set(rng.permutation(patients)[: int(round(fraction * len(patients)))])
    keep_ids = set(boxed.loc[boxed["patient_id"].isin(keep), "image_id"])
    out = ds.subset(np.arange(len(ds)))
    out.boxes = ds.boxes[ds.boxes["image_id"].isin(keep_ids)].reset_index(drop=True)
    out._box_groups = None
    return out


def make_or_load_split(ds: CXRDataset, data_cfg: dict | DataConfig) -> pd.DataFrame:
    """Split table ``image_id, patient_id, split, labeled`` (patient-wise; label fraction applied to train)."""
    dc = DataConfig.from_dict(data_cfg)
    sp = dc.split
    if sp.file:
        table = S.load_split(sp.file)
        missing = set(ds.image_ids) - set(table["image_id"].astype(str))
        if missing:
            raise DataError(f"split file {sp.file} lacks {len(missing)} image(s) of the dataset, e.g. {sorted(missing)[:3]}")
        table = table.set_index(table["image_id"].astype(str)).loc[ds.image_ids].reset_index(drop=True)
    else:
        table = S.split_patients(ds, val=sp.val, test=sp.test, seed=sp.seed, protocol=sp.protocol)
    if "labeled" not in table.columns:
        table["labeled"] = True
    if dc.label_fraction < 1.0:
        table = S.apply_label_fraction(ds, table, dc.label_fraction, seed=sp.seed)
    S.check_patient_disjoint(table)
    return table


# --------------------------------------------------------------------------------------------------------------
# regions and fixed radiomics
# --------------------------------------------------------------------------------------------------------------
def store_boxes(ds: CXRDataset, store: ImageStore) -> list[list[Box]]:
    """Every image's ground-truth boxes (run findings only), rescaled to store pixels."""
    keep = set(ds.findings)
    out = []
    for i, iid in enumerate(ds.image_ids):
        sx, sy = store.box_scale(i)
        out.append([b.scaled(sx, sy) for b in ds.boxes_for(iid) if b.label in keep or not b.label])
    return out


def fixed_radiomics(ds: CXRDataset, store: ImageStore, boxes: list[list[Box]], rad_cfg: dict, cache_dir: Path,
                    progress: bool = True, rows: str = "all") -> tuple[list[str], np.ndarray]:
    """Raw radiomics ``[N, R]`` of every image's fixed region (``box`` / ``whole_image``), cached as one array per
    (store, regions, settings) under ``cache_dir/radiomics-fixed`` (:mod:`radclr.training_data.fixed_radiomics`);
    ``rows="boxed"``: only images with a ground-truth box (the others NaN)."""
    if store.volume is not None:  # 3-D tumour stacks: PyRadiomics on the volumes + masks (seed 004)
        return volume_radiomics(ds, rad_cfg, cache_dir, jobs=store.volume.jobs, progress=progress)
    # box, roi_crop and cam (its starting point): the ground-truth boxes, else the whole image
    regions = None if rad_cfg["region"] == "whole_image" else boxes
    if regions is None:
        rows = "all"
    service = RegionRadiomics(rad_cfg)
    values = cached_fixed_radiomics(service, store.images, store.key, regions, list(ds.image_ids), cache_dir,
                                    rows=rows, progress=progress)
    return list(service.names), values


def radiomics_rows_for(split: pd.DataFrame, boxes: list[list[Box]], rows: str) -> str:
    """``rows`` (``"all"`` / ``"boxed"``), or ``"all"`` when fewer than :data:`MIN_BOXED_TRAIN` training images
    have a box: BYOP then fits its radiomics standardiser on every training image, whole-image rows included
    (:meth:`radclr.methods.byop.BYOPMethod.setup`)."""
    if rows != "boxed":
        return rows
    train = np.flatnonzero((split["split"] == "train").to_numpy())
    return "boxed" if sum(bool(boxes[i]) for i in train) >= MIN_BOXED_TRAIN else "all"


# --------------------------------------------------------------------------------------------------------------
# prepared data
# --------------------------------------------------------------------------------------------------------------
@dataclass
class PreparedData:
    dataset: CXRDataset
    store: ImageStore
    split: pd.DataFrame  # aligned with dataset records
    boxes: list[list[Box]]  # store pixels
    radiomics_names: list[str] = field(default_factory=list)
    radiomics: np.ndarray | None = None  # float64 [N, R] fixed-region radiomics (raw, not standardised)
    roi_crop: object = None  # seed 004 ROI-crop view transform (radiomics.region: roi_crop), else None

    @property
    def findings(self) -> list[str]:
        return self.dataset.findings

    def indices(self, split: str, labeled_only: bool = False) -> np.ndarray:
        m = (self.split["split"] == split).to_numpy()
        if labeled_only:
            m = m & self.split["labeled"].to_numpy(dtype=bool)
        return np.flatnonzero(m)

    def labels_for_training(self) -> np.ndarray:
        """Labels with the unlabelled part of the training split masked to NaN (label fractions)."""
        y = self.dataset.labels.copy()
        y[~self.split["labeled"].to_numpy(dtype=bool)] = np.nan
        return y

    def annotated_cases(self, indices, limit: int | None = None):
        """``(images [K, 1, S, S], targets [K], gt boxes)``: model inputs, target finding and ground-truth boxes
        (store pixels, ``[k, 4]`` each) of every (image, finding) with ground truth among ``indices`` (at most
        ``limit``), or None when there is none -- e.g. to fit the CAM threshold on annotated training images."""
        findings = list(self.findings)
        cases = []
        for i in indices:
            per: dict[str, list] = {}
            for b in self.boxes[int(i)]:
                if b.label in findings:
                    per.setdefault(b.label, []).append([b.x, b.y, b.w, b.h])
            cases += [(int(i), findings.index(f), np.asarray(bx, dtype=np.float64)) for f, bx in sorted(per.items())]
        if limit is not None:
            cases = cases[:limit]
        if not cases:
            return None
        images = torch.from_numpy(np.asarray(self.store.images[[c[0] for c in cases]], dtype=np.float32)).unsqueeze(1) / 255.0
        return images, torch.tensor([c[1] for c in cases]), [c[2] for c in cases]


def _examples(ids, n: int = 5) -> str:
    ids = sorted(map(str, ids))
    return ", ".join(ids[:n]) + (f", ... ({len(ids) - n} more)" if len(ids) > n else "")


def check_split_contract(split: pd.DataFrame, ds: CXRDataset, path: Path, data_path=None) -> None:
    """A run's ``splits.csv`` is its contract with the data: the images it lists must be exactly the dataset's.
    Images deleted since training (an evaluation would silently score fewer) or added (they belong to no split)
    -> :class:`DataError` naming them; nothing is evaluated or written."""
    saved = set(split["image_id"].astype(str))
    current = set(map(str, ds.image_ids))
    missing, new = saved - current, current - saved
    if not missing and not new:
        return
    where = f" {data_path}" if data_path is not None and not isinstance(data_path, (list, tuple)) else ""
    parts = []
    if missing:
        parts.append(f"{len(missing)} image(s) of the run's split are no longer in the dataset{where} "
                     f"({_examples(missing)})")
    if new:
        parts.append(f"{len(new)} image(s) of the dataset{where} are not in the run's split ({_examples(new)})")
    raise DataError(f"{path}: the data changed since this run was trained: {'; '.join(parts)}. The run's split is "
                    f"its contract: restore the dataset as it was, or evaluate the changed data as another dataset "
                    f"(`radclr evaluate RUN --data PATH`, a copy of the data in another folder)")


def prepare_data(cfg: dict, run_dir: Path | None = None, *, need_radiomics: bool = True, radiomics_rows: str = "all",
                 progress: bool = True) -> PreparedData:
    """The run's :class:`PreparedData` (see module docstring); a run directory's saved ``splits.csv`` wins.
    ``radiomics_rows``: ``"boxed"`` computes the fixed radiomics of boxed images only (BYOP's loop; see
    :func:`radiomics_rows_for`)."""
    data_cfg = DataConfig.from_dict(cfg["data"])  # the data section, typed once here
    cache = data_cfg.cache
    ds = open_dataset(data_cfg)
    if len(ds) == 0:
        raise DataError(f"dataset {data_cfg.path} has no images")
    if data_cfg.task == "multiclass":
        ds.class_index()  # one class per labelled image, or a DataError naming the images that have not
    split = None
    if run_dir is not None and (Path(run_dir) / "splits.csv").exists():  # resume: the saved split is the truth
        split = pd.read_csv(Path(run_dir) / "splits.csv", dtype={"image_id": str, "patient_id": str})
        check_split_contract(split, ds, Path(run_dir) / "splits.csv", data_cfg.path)
        split = split.set_index("image_id").loc[ds.image_ids].reset_index()
    if split is None:
        split = make_or_load_split(ds, data_cfg)
        if run_dir is not None:
            split.to_csv(Path(run_dir) / "splits.csv", index=False)
    store = build_run_store(cfg, ds, cache, progress=progress)
    boxes = store_boxes(ds, store)
    pd_ = PreparedData(ds, store, split, boxes)
    if cfg["radiomics"]["region"] == "roi_crop" and store.volume is None:  # a tumour stack already is the ROI
        check_roi_coverage(boxes, ds.labels, str(data_cfg.path))
        pd_.roi_crop = make_roi_crop(pd_)
    if need_radiomics:
        rows = radiomics_rows_for(split, boxes, radiomics_rows)
        pd_.radiomics_names, pd_.radiomics = fixed_radiomics(ds, store, boxes, cfg["radiomics"], cache,
                                                             progress=progress, rows=rows)
    return pd_


def prepare_shared_data(cfg: dict, *, need_radiomics: bool = True, radiomics_rows: str = "all",
                        jobs: int | None = None, progress: bool = True) -> dict:
    """``radclr data prepare``: build what every run of ``cfg`` (and every ``torchrun`` rank) only maps -- the
    image store, decoded with ``jobs`` processes (default: every core), and the fixed-region radiomics -- so no
    run or rank has to build them while others wait. Returns what was prepared (paths, sizes, seconds)."""
    import time

    data_cfg = DataConfig.from_dict(cfg["data"])
    cache = data_cfg.cache
    jobs = default_jobs() if not jobs else int(jobs)
    t0 = time.perf_counter()
    ds = open_dataset(data_cfg)
    if len(ds) == 0:
        raise DataError(f"dataset {data_cfg.path} has no images")
    t1 = time.perf_counter()
    store = build_run_store(cfg, ds, cache, progress=progress, jobs=jobs)
    t2 = time.perf_counter()
    out = {"images": len(ds), "store": store.path, "store_bytes": int(store.images.nbytes), "jobs": jobs,
           "seconds": {"dataset": round(t1 - t0, 3), "store": round(t2 - t1, 3)}}
    if need_radiomics:
        boxes = store_boxes(ds, store)
        rows = radiomics_rows_for(make_or_load_split(ds, data_cfg), boxes, radiomics_rows)
        names, values = fixed_radiomics(ds, store, boxes, cfg["radiomics"], cache, progress=progress, rows=rows)
        out.update(radiomics_features=len(names), radiomics_rows=rows,
                   radiomics_computed=int((~np.isnan(values).all(axis=1)).sum()))
        out["seconds"]["radiomics"] = round(time.perf_counter() - t2, 3)
    return out


def label_coverage_warnings(data: "PreparedData") -> list[str]:
    """One line per finding without a positive image in the labelled training images, the validation or the test
    split, saying what follows (logged once when training starts). The same facts give metrics.json's ``null``
    AUCs and the 0.5 fallback threshold (:func:`radclr.runs.evaluate.evaluate_run`)."""
    y = data.dataset.labels
    parts = {"training labels": data.indices("train", labeled_only=True), "validation": data.indices("val"),
             "test": data.indices("test")}
    out = []
    for j, f in enumerate(data.findings):
        empty = []
        for name, idx in parts.items():
            col = y[idx, j]
            known = col[~np.isnan(col)]
            if len(idx) and not (known == 1).any():
                empty.append((name, len(known)))
        if not empty:
            continue
        where = ", ".join(f"{name} (0 of {n})" for name, n in empty)
        names = [name for name, _ in empty]
        effects = []
        if "training labels" in names:
            effects.append("the model cannot learn it")
        if "validation" in names:
            effects.append("its validation AUC is undefined (empty in metrics.csv, null in metrics.json) and its "
                           "decision threshold falls back to 0.5")
        if "test" in names:
            effects.append("its test AUC and sensitivity are undefined (null in metrics.json)")
        out.append(f"finding {f!r} has no positive image in: {where} -- {'; '.join(effects)}")
    return out


def build_run_store(cfg: dict, ds: CXRDataset, cache: Path, progress: bool = True, jobs: int | None = None) -> ImageStore:
    """The run's image store: ``[N, S, S]`` images, or ``[N, n, S, S]`` tumour stacks when ``data.volume`` is set;
    in ``data.store_dir`` when set, else in the cache folder ``cache``. ``jobs``: decoding processes (default
    ``data.jobs``; ``radclr data prepare`` passes every core)."""
    data_cfg = cfg["data"]
    folder = Path(data_cfg["store_dir"]) if data_cfg.get("store_dir") else cache
    vs = volume_settings(cfg)
    if vs is None:
        jobs = int(jobs or data_cfg.get("jobs") or 1)
        return build_store(ds, int(data_cfg["image_size"]), folder, rule=data_cfg.get("intensity", "auto"),
                           jobs=jobs, progress=progress)
    return build_volume_store(ds, vs.n_slices, vs.size, folder, window=vs.window, margin=vs.margin,
                              jobs=max(vs.jobs, int(jobs or 1)), progress=progress)


def check_roi_coverage(boxes: list, labels: np.ndarray, where: str) -> None:
    """``radiomics.region: roi_crop`` (seed 004 §2.3) crops each image to its ROI and takes the ROI's radiomics; an
    image without a ROI keeps the whole image. Where some labelled images have a ROI and others have none -- chest
    X-rays, where only positive images carry boxes -- the crop's geometry and the shape features say which kind
    an image is, i.e. give its label away at test time (the hybrid network and the classical baseline alike).
    Refused with the counts; seed 004's data (a ROI for every image) passes."""
    labelled = ~np.isnan(np.asarray(labels, dtype=float)).all(axis=1)
    has = np.asarray([bool(b) for b in boxes])
    with_roi, without = int((labelled & has).sum()), int((labelled & ~has).sum())
    if with_roi == 0 or without == 0:  # every labelled image has one (seed 004), or none (make_roi_crop refuses)
        return
    pos = np.nan_to_num(np.asarray(labels, dtype=float)) > 0
    share = [float(pos[labelled & m].any(axis=1).mean()) for m in (has, ~has)]
    raise DataError(f"{where}: radiomics.region: roi_crop needs a ROI (box) for every labelled image, but "
                    f"{without} of {with_roi + without} labelled images have none (they would be seen whole while "
                    f"the others are cropped: {100 * share[0]:.0f} % of the images with a ROI are positive for a "
                    f"finding, {100 * share[1]:.0f} % of those without), so the crop's geometry and shape features "
                    "would give the label away. Use radiomics.region: box (the image stays whole) or a dataset with "
                    "a ROI per image")


def make_roi_crop(data: "PreparedData"):
    """Seed 004 §2.3 image view: the ROI crop resized to the mean ROI size of the training split."""
    unions = [union_box(data.boxes[i]) for i in data.indices("train") if data.boxes[i]]
    sizes = [(u.w, u.h) for u in unions]
    if not sizes:
        raise DataError("radiomics.region: roi_crop needs ground-truth boxes (ROIs) in the training split")
    w, h = np.mean(np.asarray(sizes), axis=0)
    return ROICrop(output_size=(max(int(round(h)), 8), max(int(round(w)), 8)))


def pretext_subset(data: PreparedData, train_idx: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, patient-wise subset of the training images for label-free stages (seed 003 §V-B)."""
    if fraction >= 1.0:
        return train_idx
    if not 0 < fraction < 1:
        raise ConfigError(f"data.pretext_fraction must be in (0, 1], got {fraction}")
    patients = data.dataset.patient_ids[train_idx]
    uniq = np.unique(patients)
    rng = np.random.default_rng([seed, 0xF7AC])
    keep = set(rng.permutation(uniq)[: max(1, int(round(fraction * len(uniq))))])
    return train_idx[np.array([p in keep for p in patients])]
