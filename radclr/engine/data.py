"""From a config to tensors: dataset, split, image store, fixed-region radiomics, batches.

``prepare_data(cfg, run_dir)`` does the one-off work of a run (load the dataset, split it patient-wise and
save ``splits.csv``, build the image store, compute the radiomics of fixed regions); :class:`TrainingView`
then serves batches for any method.

Regions (``radiomics.region``), all in store pixels:
* ``box`` -- seed 000 §3: the union of the image's ground-truth boxes (of the run's findings); the whole image
  for images without a box (normals).
* ``whole_image`` -- seed 000 Table 2 "FairRadi" control: the whole image for every image.
* ``roi_crop`` -- seed 004 §2.3: like ``box``; the image view is also the ROI crop (see the method).
* ``cam`` -- seed 001 BYOP: ground-truth boxes where annotated, otherwise boxes from the model's own Grad-CAM,
  refreshed during training (fixed radiomics here are only the starting point: the whole image).

3-D inputs (``data.volume`` set; seed 004 §3.1): images are volumes with tumour masks; the store holds each case's
``n x S x S`` tumour stack, ``image`` is ``[n, S, S]``, there is no ROI crop (the stack is the ROI) and the fixed
radiomics are PyRadiomics' 3-D features of the tumour volume (:mod:`radclr.engine.volumes`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from radclr.data.dataset import Box, CXRDataset
from radclr.engine.sampling import sample_generator
from radclr.engine.store import ImageStore, build_store, default_cache_dir
from radclr.errors import ConfigError, DataError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------
# dataset + split
# --------------------------------------------------------------------------------------------------------------
def open_dataset(data_cfg: dict) -> CXRDataset:
    """The dataset a config names: ``demo`` (embedded real sample), ``phantom`` (synthetic), ``phantom_volumes``
    (synthetic CT tumour volumes with masks, :mod:`radclr.data.phantom_volumes`) or a folder."""
    from radclr.data import load_dataset

    path = str(data_cfg["path"])
    if path == "demo":
        from radclr.data import demo_dataset_path

        ds = load_dataset(demo_dataset_path())
    elif path == "phantom":
        from radclr.data.phantom import write_phantom_dataset

        ph = data_cfg.get("phantom") or {}
        n, size, seed = int(ph.get("n", 240)), int(ph.get("size", 128)), int(ph.get("seed", 0))
        cache = Path(data_cfg.get("cache_dir") or default_cache_dir()) / f"phantom-n{n}-s{size}-seed{seed}"
        if (cache / "labels.csv").exists():
            ds = load_dataset(cache, format="folder")
        else:
            ds = write_phantom_dataset(cache, n=n, size=size, seed=seed)
    elif path == "phantom_volumes":
        from radclr.data.phantom_volumes import PHANTOM_VOLUME_VERSION, write_phantom_volumes

        ph = data_cfg.get("phantom") or {}
        n, size, seed = int(ph.get("n", 240)), int(ph.get("size", 128)), int(ph.get("seed", 0))
        cache = (Path(data_cfg.get("cache_dir") or default_cache_dir())
                 / f"phantom-volumes-v{PHANTOM_VOLUME_VERSION}-n{n}-s{size}-seed{seed}")
        if (cache / "labels.csv").exists():
            ds = load_dataset(cache, format="folder")
        else:
            ds = write_phantom_volumes(cache, n=n, size=size, seed=seed)
    elif isinstance(data_cfg["path"], (list, tuple)):  # several datasets combined (radclr.data.combine)
        from radclr.data.combine import concat_datasets

        parts = []
        for p in data_cfg["path"]:
            if not Path(p).exists():
                raise DataError(f"data.path entry {p!r} does not exist")
            parts.append(load_dataset(p))
        ds = concat_datasets(parts)
    else:
        if not Path(path).exists():
            raise DataError(f"data.path {path!r} does not exist")
        ds = load_dataset(path, format=data_cfg.get("format"))
    frac = float(data_cfg.get("box_fraction", 1.0))
    if frac < 1.0:
        ds = keep_boxes_of_fraction(ds, frac, int(data_cfg["split"]["seed"]))
    findings = data_cfg.get("findings")
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


def make_or_load_split(ds: CXRDataset, data_cfg: dict) -> pd.DataFrame:
    """Split table ``image_id, patient_id, split, labeled`` (patient-wise; label fraction applied to train)."""
    from radclr.data import splits as S

    sp = data_cfg["split"]
    if sp.get("file"):
        table = S.load_split(sp["file"])
        missing = set(ds.image_ids) - set(table["image_id"].astype(str))
        if missing:
            raise DataError(f"split file {sp['file']} lacks {len(missing)} image(s) of the dataset, e.g. {sorted(missing)[:3]}")
        table = table.set_index(table["image_id"].astype(str)).loc[ds.image_ids].reset_index(drop=True)
    else:
        table = S.split_patients(ds, val=float(sp["val"]), test=float(sp["test"]), seed=int(sp["seed"]),
                                 protocol=sp.get("protocol", "random"))
    if "labeled" not in table.columns:
        table["labeled"] = True
    frac = float(data_cfg.get("label_fraction", 1.0))
    if frac < 1.0:
        table = S.apply_label_fraction(ds, table, frac, seed=int(sp["seed"]))
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


def boxes_mask(boxes: list[Box], size: int) -> np.ndarray:
    """Union mask of boxes in an ``size x size`` image; the whole image when there are none.

    Pixel ``(r, c)`` is inside box ``(x, y, w, h)`` when ``floor(x) <= c < ceil(x + w)`` and likewise for rows
    (so any box covering part of a pixel includes it); clipped to the image.
    """
    m = np.zeros((size, size), dtype=bool)
    for b in boxes:
        x0, y0 = max(int(np.floor(b.x)), 0), max(int(np.floor(b.y)), 0)
        x1, y1 = min(int(np.ceil(b.x + b.w)), size), min(int(np.ceil(b.y + b.h)), size)
        if x1 > x0 and y1 > y0:
            m[y0:y1, x0:x1] = True
    if not m.any():
        m[:] = True
    return m


def radiomics_settings(rad_cfg: dict):
    """(Settings, classes) from the config's radiomics section (or its PyRadiomics parameter file)."""
    from radclr.radiomics.base import Settings

    if rad_cfg.get("params"):
        from radclr.radiomics.params import load_params

        p = load_params(rad_cfg["params"])
        return p.settings, p.classes
    bc = rad_cfg.get("bin_count")
    return Settings(bin_width=float(rad_cfg.get("bin_width", 25.0)), bin_count=int(bc) if bc else None), rad_cfg.get("classes")


def compute_region_radiomics(images: np.ndarray, masks: np.ndarray, rad_cfg: dict, *, batch_size: int = 64,
                             device: str = "cpu", progress: bool = True) -> tuple[list[str], np.ndarray]:
    """Radiomics of ``masks`` on store-scale ``images`` (uint8/float ``[N,S,S]``) with the torch engine."""
    from tqdm import tqdm

    from radclr.radiomics import extract

    settings, classes = radiomics_settings(rad_cfg)
    names, chunks = None, []
    for s in tqdm(range(0, len(images), batch_size), desc="radiomics", unit="batch", disable=not progress, leave=False):
        img = torch.as_tensor(np.asarray(images[s:s + batch_size], dtype=np.float64), device=device)
        msk = torch.as_tensor(np.asarray(masks[s:s + batch_size]), device=device)
        names, vals = extract(img, msk, settings=settings, classes=classes)
        chunks.append(vals.cpu().numpy())
    return list(names or []), np.concatenate(chunks) if chunks else np.zeros((0, 0))


class _RegionMasks:
    """``masks[a:b]`` -> bool ``[b-a, S, S]`` of each image's boxes (or the whole image), built on demand."""

    def __init__(self, boxes: list[list[Box]], size: int, whole: bool):
        self.boxes, self.size, self.whole = boxes, int(size), bool(whole)

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, sl: slice) -> np.ndarray:
        S = self.size
        rows = [np.ones((S, S), bool) if self.whole else boxes_mask(b, S) for b in self.boxes[sl]]
        return np.stack(rows) if rows else np.zeros((0, S, S), bool)


def fixed_radiomics(ds: CXRDataset, store: ImageStore, boxes: list[list[Box]], rad_cfg: dict, cache_dir: Path,
                    progress: bool = True) -> tuple[list[str], np.ndarray]:
    """Radiomics of every image's fixed region (``box`` / ``whole_image``), cached on disk."""
    if store.volume is not None:  # 3-D tumour stacks: PyRadiomics on the volumes + masks (seed 004)
        from radclr.engine.volumes import volume_radiomics

        return volume_radiomics(ds, rad_cfg, cache_dir, jobs=store.volume.jobs, progress=progress)
    region = rad_cfg["region"]
    whole = region == "whole_image"  # box, roi_crop and cam (its starting point): GT box, else whole image
    spec = json.dumps({"store": store.key, "region": "whole" if whole else "box",
                       "boxes": None if whole else [[(b.x, b.y, b.w, b.h) for b in bx] for bx in boxes],
                       "settings": repr(radiomics_settings(rad_cfg))}, sort_keys=True)
    key = hashlib.sha1(spec.encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"radiomics-{key}.npz"
    if path.exists():
        try:
            z = np.load(path, allow_pickle=False)
            if z["values"].shape[0] == len(ds):
                return [str(n) for n in z["names"]], z["values"]
        except (OSError, ValueError, KeyError):
            log.warning("radiomics cache %s unreadable; recomputing", path)
    masks = _RegionMasks(boxes, store.size, whole)  # built per batch: N x S x S at once is GBs for NIH-sized data
    names, values = compute_region_radiomics(store.images, masks, rad_cfg, progress=progress)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.asarray(names), values=values)
    tmp.replace(path)
    return names, values


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


def prepare_data(cfg: dict, run_dir: Path | None = None, *, need_radiomics: bool = True, progress: bool = True) -> PreparedData:
    data_cfg = cfg["data"]
    cache = Path(data_cfg.get("cache_dir") or default_cache_dir())
    ds = open_dataset(data_cfg)
    if len(ds) == 0:
        raise DataError(f"dataset {data_cfg['path']} has no images")
    split = None
    if run_dir is not None and (Path(run_dir) / "splits.csv").exists():  # resume: the saved split is the truth
        split = pd.read_csv(Path(run_dir) / "splits.csv", dtype={"image_id": str, "patient_id": str})
        split = split.set_index("image_id").loc[ds.image_ids].reset_index()
    if split is None:
        split = make_or_load_split(ds, data_cfg)
        if run_dir is not None:
            split.to_csv(Path(run_dir) / "splits.csv", index=False)
    store = build_run_store(cfg, ds, cache, progress=progress)
    boxes = store_boxes(ds, store)
    pd_ = PreparedData(ds, store, split, boxes)
    if cfg["radiomics"]["region"] == "roi_crop" and store.volume is None:  # a tumour stack already is the ROI
        pd_.roi_crop = make_roi_crop(pd_)
    if need_radiomics:
        pd_.radiomics_names, pd_.radiomics = fixed_radiomics(ds, store, boxes, cfg["radiomics"], cache, progress=progress)
    return pd_


def build_run_store(cfg: dict, ds: CXRDataset, cache: Path, progress: bool = True) -> ImageStore:
    """The run's image store: ``[N, S, S]`` images, or ``[N, n, S, S]`` tumour stacks when ``data.volume`` is set."""
    from radclr.engine.volumes import build_volume_store, volume_settings

    data_cfg = cfg["data"]
    vs = volume_settings(cfg)
    if vs is None:
        return build_store(ds, int(data_cfg["image_size"]), cache, rule=data_cfg.get("intensity", "auto"),
                           progress=progress)
    return build_volume_store(ds, vs.n_slices, vs.size, cache, window=vs.window, margin=vs.margin, jobs=vs.jobs,
                              progress=progress)


def make_roi_crop(data: "PreparedData"):
    """Seed 004 §2.3 image view: the ROI crop resized to the mean ROI size of the training split."""
    from radclr.transforms import ROICrop

    train = data.indices("train")
    sizes = [(max(b.x2 for b in bx) - min(b.x for b in bx), max(b.y2 for b in bx) - min(b.y for b in bx))
             for bx in (data.boxes[i] for i in train) if bx]
    if not sizes:
        raise DataError("radiomics.region: roi_crop needs ground-truth boxes (ROIs) in the training split")
    w, h = np.mean(np.asarray(sizes), axis=0)
    return ROICrop(output_size=(max(int(round(h)), 8), max(int(round(w)), 8)))


def annotated_cases(data: "PreparedData", indices, limit: int | None = None):
    """Model inputs, target finding and GT boxes (store pixels) for every (image, finding) with ground truth
    among ``indices`` -- e.g. to fit the CAM threshold on annotated training images."""
    findings = list(data.findings)
    cases = []
    for i in indices:
        per: dict[str, list] = {}
        for b in data.boxes[int(i)]:
            if b.label in findings:
                per.setdefault(b.label, []).append([b.x, b.y, b.w, b.h])
        cases += [(int(i), findings.index(f), np.asarray(bx, dtype=np.float64)) for f, bx in sorted(per.items())]
    if limit is not None:
        cases = cases[:limit]
    if not cases:
        return None
    images = torch.from_numpy(np.asarray(data.store.images[[c[0] for c in cases]], dtype=np.float32)).unsqueeze(1) / 255.0
    return images, torch.tensor([c[1] for c in cases]), [c[2] for c in cases]


# --------------------------------------------------------------------------------------------------------------
# per-sample view
# --------------------------------------------------------------------------------------------------------------
class TrainingView(torch.utils.data.Dataset):
    """Samples of a :class:`PreparedData` as dicts of tensors.

    Keys: ``index`` (dataset row), ``image`` ``[1,S,S]`` (``[n,S,S]`` tumour stacks for volumes: every slice gets
    the same augmentation) in [0,1] (augmented when training), ``image2`` (a second
    augmented view, when ``views=2``), ``label`` ``[F]`` (NaN = unknown/unlabelled), ``has_box`` (ground truth
    region available), ``box`` ``[4]`` (x, y, w, h of the union of GT boxes, store pixels; whole image if none),
    ``radiomics`` ``[R]`` (fixed-region features, raw) when available. Augmentation randomness is a function of
    ``(seed, epoch, index, view)`` (see :mod:`radclr.engine.sampling`).
    """

    def __init__(self, data: PreparedData, labels: np.ndarray, *, augment=None, views: int = 1, seed: int = 0,
                 roi_crop=None):
        self.data = data
        self.labels = torch.as_tensor(labels, dtype=torch.float32)
        self.augment = augment
        self.views = views
        self.seed = seed
        self.epoch = 0
        self.roi_crop = roi_crop
        size = data.store.size
        boxes = []
        for bx in data.boxes:
            if bx:
                x0 = min(b.x for b in bx); y0 = min(b.y for b in bx)
                x1 = max(b.x2 for b in bx); y1 = max(b.y2 for b in bx)
                boxes.append([x0, y0, x1 - x0, y1 - y0])
            else:
                boxes.append([0.0, 0.0, float(size), float(size)])
        self.box = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        self.has_box = torch.tensor([bool(b) for b in data.boxes])
        self.radiomics = None if data.radiomics is None else torch.as_tensor(data.radiomics, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.data.store)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _view(self, img: torch.Tensor, index: int, view: int) -> torch.Tensor:
        if self.roi_crop is not None:
            img = self.roi_crop(img, self.box[index], generator=sample_generator(self.seed, self.epoch, index, 100 + view)
                                if self.augment is not None else None)
        if self.augment is None:
            return img
        return self.augment(img, generator=sample_generator(self.seed, self.epoch, index, view))

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        raw = torch.from_numpy(np.asarray(self.data.store.images[index], dtype=np.float32)) / 255.0
        if raw.dim() == 2:  # [S, S] image -> [1, S, S]; volume stacks already are [n, S, S]
            raw = raw.unsqueeze(0)
        out = {"index": torch.tensor(index), "label": self.labels[index], "has_box": self.has_box[index],
               "box": self.box[index], "image": self._view(raw, index, 0)}
        if self.views >= 2:
            out["image2"] = self._view(raw, index, 1)
        if self.radiomics is not None:
            out["radiomics"] = self.radiomics[index]
        return out


def collate(samples: list[dict]) -> dict:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
