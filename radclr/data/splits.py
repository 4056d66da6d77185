"""Patient-wise splits, k-fold and label fractions -- seeded, stratified, saved to a CSV.

SPEC §5: "No patient may appear in two splits". Every function here works on *patients*: all images of a
patient go to the same part, and :func:`check_patient_disjoint` refuses (:class:`SplitError` naming the
patient) any table in which one patient sits in two parts -- whether it was made here or loaded from a file.

* :func:`split_patients` -- train / val / test by fractions of the *images*, stratified by label with
  iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML-PKDD 2011) over patients: each patient carries
  the counts of its images per finding (plus "normal"); the rarest label is distributed first, each patient to
  the part that still wants most of that label. ``protocol="byop"`` is seed 001 §4's protocol: patients with
  ground-truth boxes are split train/test (``annotated_train``, default 20/80), the others train/val/test.
* :func:`kfold_patients` -- patient-wise stratified k-fold (seed 003 §IV, seed 004 §3: 5-fold), optionally
  after holding out a test part.
* :func:`apply_label_fraction` -- keep the labels of a fraction F of the *training* images (whole patients),
  the rest become unlabelled (seed 003 §V: 1/10/100 %; seed 004 Fig. 4: 5/20/50/100 %). The labelled patients
  are a prefix of one seeded, stratified ordering of the training patients, so for one seed the sets are
  **nested**: the 5 % set is inside the 10 % set, which is inside the 20 % set.

Split CSV (``save_split`` / ``load_split``): ``image_id, patient_id, split[, fold][, labeled]`` where ``split``
is ``train``/``val``/``test``, ``fold`` is ``0..k-1`` (``-1`` for held-out test images) and ``labeled`` is
``True``/``False``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from radclr.data.dataset import CXRDataset
from radclr.errors import SplitError

PARTS = ("train", "val", "test")
SPLIT_COLUMNS = ("image_id", "patient_id", "split")


# ---------------------------------------------------------------------------------------------------------
# patients and their label counts
# ---------------------------------------------------------------------------------------------------------
def patient_label_counts(ds: CXRDataset, rows: np.ndarray | None = None):
    """``(patients, patient_of_row, counts [P, F+1], n_images [P])`` over ``rows`` (default: all).

    ``counts[p, j]`` = images of patient p positive for finding j; the last column counts normal images
    (all findings known and 0). Unknown (NaN) labels count nowhere.
    """
    rows = np.arange(len(ds)) if rows is None else np.asarray(rows, dtype=np.int64)
    pids = ds.patient_ids[rows]
    patients, inverse = np.unique(pids, return_inverse=True)
    y = ds.labels[rows]
    per_image = np.concatenate([(y == 1), ds.is_normal()[rows][:, None]], axis=1).astype(np.float64)
    counts = np.zeros((len(patients), per_image.shape[1]))
    np.add.at(counts, inverse, per_image)
    n_images = np.bincount(inverse, minlength=len(patients)).astype(np.float64)
    return patients, inverse, counts, n_images


def iterative_stratification(counts: np.ndarray, sizes: np.ndarray, fractions: Sequence[float],
                             rng: np.random.Generator) -> np.ndarray:
    """Part index (``0..K-1``) of each item (patient) -- Sechidis et al. 2011, Algorithm 1, weighted.

    ``counts [P, L]``: label counts per item; ``sizes [P]``: weight of each item (its image count);
    ``fractions [K]``: desired share of each part. Labels are processed rarest first; an item goes to the part
    with the largest remaining demand for the current label (ties: largest remaining total, then random).
    Items without any label go to the part with the largest remaining total demand.
    """
    counts = np.asarray(counts, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    fr = np.asarray(fractions, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != sizes.shape[0]:
        raise ValueError(f"counts must be [P, L] and sizes [P], got {counts.shape} and {sizes.shape}")
    P = counts.shape[0]
    want_label = fr[:, None] * counts.sum(axis=0)[None, :]
    want_total = fr * sizes.sum()
    assign = np.full(P, -1, dtype=np.int64)
    has = counts > 0
    remaining = np.ones(P, dtype=bool)
    allowed = fr > 0

    def pick(primary: np.ndarray, secondary: np.ndarray) -> int:
        primary = np.where(allowed, primary, -np.inf)
        cand = np.flatnonzero(primary == primary.max())
        if len(cand) > 1:
            sec = secondary[cand]
            cand = cand[sec == sec.max()]
        return int(cand[rng.integers(len(cand))]) if len(cand) > 1 else int(cand[0])

    while True:
        pending = has & remaining[:, None]
        n_left = pending.sum(axis=0)
        active = np.flatnonzero(n_left > 0)
        if len(active) == 0:
            break
        label = active[np.argmin(n_left[active])]
        members = np.flatnonzero(pending[:, label])
        for p in members[rng.permutation(len(members))]:
            k = pick(want_label[:, label], want_total)
            assign[p] = k
            remaining[p] = False
            want_label[k] -= counts[p]
            want_total[k] -= sizes[p]
    for p in rng.permutation(np.flatnonzero(remaining)):
        k = pick(want_total, fr)
        assign[p] = k
        want_total[k] -= sizes[p]
    _fill_empty_parts(assign, sizes, fr)
    return assign


def _fill_empty_parts(assign: np.ndarray, sizes: np.ndarray, fr: np.ndarray) -> None:
    """A part with a positive fraction but no item takes the smallest item of the most populated part
    (when there are enough items), so that e.g. a tiny dataset still gets a validation patient."""
    wanted = np.flatnonzero(fr > 0)
    if len(assign) < len(wanted):
        return
    for k in wanted:
        if np.any(assign == k):
            continue
        counts = np.bincount(assign, minlength=len(fr))
        donor = int(np.argmax(counts))
        if counts[donor] <= 1:
            continue
        members = np.flatnonzero(assign == donor)
        assign[members[np.argmin(sizes[members])]] = k


# ---------------------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------------------
def _check_fractions(**fractions: float) -> None:
    for name, f in fractions.items():
        if not (0.0 <= float(f) < 1.0):
            raise SplitError(f"{name} fraction must be in [0, 1), got {f}")
    if sum(fractions.values()) >= 1.0:
        raise SplitError(f"fractions {fractions} leave nothing for training (their sum must be < 1)")


def _table(ds: CXRDataset, rows: np.ndarray | None = None) -> pd.DataFrame:
    rows = np.arange(len(ds)) if rows is None else rows
    return pd.DataFrame({"image_id": ds.records["image_id"].to_numpy()[rows],
                         "patient_id": ds.records["patient_id"].to_numpy()[rows]})


def split_patients(ds: CXRDataset, val: float = 0.1, test: float = 0.2, seed: int = 0, protocol: str = "random",
                   annotated_train: float = 0.2) -> pd.DataFrame:
    """Patient-wise, label-stratified train/val/test split: ``image_id, patient_id, split`` aligned with
    ``ds.records`` (module docstring; ``protocol`` ``"random"`` or ``"byop"``)."""
    if len(ds) == 0:
        raise SplitError(f"{ds.name}: cannot split an empty dataset")
    _check_fractions(val=val, test=test)
    rng = np.random.default_rng(seed)
    table = _table(ds)
    split = np.empty(len(ds), dtype=object)
    if protocol == "random":
        pools = [(np.arange(len(ds)), (1.0 - val - test, val, test), PARTS)]
    elif protocol == "byop":
        if not 0.0 < annotated_train < 1.0:
            raise SplitError(f"annotated_train must be in (0, 1), got {annotated_train}")
        boxed_patients = set(ds.records.loc[ds.has_boxes(), "patient_id"])
        annotated = ds.records["patient_id"].isin(boxed_patients).to_numpy()
        pools = [(np.flatnonzero(~annotated), (1.0 - val - test, val, test), PARTS),
                 (np.flatnonzero(annotated), (annotated_train, 1.0 - annotated_train), ("train", "test"))]
    else:
        raise SplitError(f"unknown split protocol {protocol!r}; use 'random' or 'byop'")
    for rows, fractions, names in pools:
        if len(rows) == 0:
            continue
        patients, inverse, counts, sizes = patient_label_counts(ds, rows)
        part = iterative_stratification(counts, sizes, fractions, rng)
        split[rows] = np.asarray(names, dtype=object)[part[inverse]]
    table["split"] = split
    check_patient_disjoint(table)
    return table


def kfold_patients(ds: CXRDataset, k: int = 5, seed: int = 0, test: float = 0.0) -> pd.DataFrame:
    """Patient-wise stratified k-fold: ``image_id, patient_id, split, fold``. With ``test > 0`` a stratified
    test part is held out first (``split="test"``, ``fold=-1``); the rest has ``split="train"`` and a fold
    ``0..k-1`` (fold f = the validation part of round f)."""
    if int(k) != k or k < 2:
        raise SplitError(f"k-fold needs an integer k >= 2, got {k}")
    k = int(k)
    _check_fractions(test=test)
    patients, inverse, counts, sizes = patient_label_counts(ds)
    if len(patients) < k:
        raise SplitError(f"{ds.name}: {len(patients)} patient(s) cannot make {k} patient-wise folds")
    rng = np.random.default_rng(seed)
    fractions = [test] + [(1.0 - test) / k] * k
    part = iterative_stratification(counts, sizes, fractions, rng)[inverse]
    table = _table(ds)
    table["split"] = np.where(part == 0, "test", "train")
    table["fold"] = (part - 1).astype(np.int64)
    check_patient_disjoint(table)
    return table


# ---------------------------------------------------------------------------------------------------------
# label fractions
# ---------------------------------------------------------------------------------------------------------
def stratified_patient_order(ds: CXRDataset, rows: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Patients of ``rows`` in a seeded order whose every prefix is stratified: ``(patients, n_images)``.

    Each patient is put in the stratum of its rarest positive label (by patient frequency in ``rows``;
    ``normal`` and ``unlabelled`` are strata too); strata are shuffled internally and interleaved so that at
    every position the stratum furthest below its share of the images comes next.
    """
    patients, inverse, counts, sizes = patient_label_counts(ds, rows)
    rng = np.random.default_rng([seed, 0x1abe1])  # independent of the split's stream
    freq = (counts > 0).sum(axis=0)
    stratum = np.full(len(patients), counts.shape[1], dtype=np.int64)  # the unlabelled stratum
    for p in range(len(patients)):
        present = np.flatnonzero(counts[p] > 0)
        if len(present):
            stratum[p] = present[np.argmin(freq[present])]
    queues = [list(rng.permutation(np.flatnonzero(stratum == s))) for s in range(counts.shape[1] + 1)]
    share = np.array([sizes[q].sum() if q else 0.0 for q in queues]) / max(sizes.sum(), 1.0)
    taken = np.zeros(len(queues))
    order = []
    total = 0.0
    for _ in range(len(patients)):
        deficit = np.array([share[s] * total - taken[s] if queues[s] else -np.inf for s in range(len(queues))])
        best = np.flatnonzero(deficit == deficit.max())
        s = int(best[np.argmax(share[best])])
        p = queues[s].pop(0)
        order.append(p)
        taken[s] += sizes[p]
        total += sizes[p]
    order = np.asarray(order, dtype=np.int64)
    return patients[order], sizes[order]


def apply_label_fraction(ds: CXRDataset, table: pd.DataFrame, fraction: float, seed: int = 0,
                         part: str = "train") -> pd.DataFrame:
    """Copy of ``table`` (aligned with ``ds``) with ``labeled``: True for every image outside ``part`` and for
    the images of the patients holding the first ``fraction`` of ``part``'s images in
    :func:`stratified_patient_order` (nested across fractions for one seed); False for the rest of ``part``."""
    if not 0.0 < float(fraction) <= 1.0:
        raise SplitError(f"label fraction must be in (0, 1], got {fraction}")
    table = align_split(ds, table)
    in_part = (table["split"] == part).to_numpy()
    labeled = np.ones(len(table), dtype=bool)
    if fraction < 1.0 and in_part.any():
        rows = np.flatnonzero(in_part)
        patients, sizes = stratified_patient_order(ds, rows, seed)
        cum = np.cumsum(sizes)
        target = fraction * cum[-1]
        n = int(np.argmin(np.abs(cum - target))) + 1  # ties -> the shorter prefix (keeps nesting)
        keep = set(patients[:n])
        labeled[rows] = table["patient_id"].iloc[rows].isin(keep).to_numpy()  # hashed: O(N), not np.isin on objects
    out = table.copy()
    out["labeled"] = labeled
    return out


# ---------------------------------------------------------------------------------------------------------
# checks, files, parts
# ---------------------------------------------------------------------------------------------------------
def check_patient_disjoint(table: pd.DataFrame) -> None:
    """:class:`SplitError` naming the patient(s) found in two parts (``split``, and ``fold`` when present)."""
    for column in ("split", "fold"):
        if column not in table.columns:
            continue
        sub = table[["patient_id", column]]
        if column == "fold":
            sub = sub[pd.to_numeric(sub["fold"], errors="coerce") >= 0]
        pairs = sub.drop_duplicates()  # one row per (patient, part): vectorised, no Python loop over patients
        mixed = pairs[pairs["patient_id"].duplicated(keep=False)]
        if len(mixed):
            bad = mixed.groupby("patient_id", sort=True)[column].unique()
            desc = "; ".join(f"patient {pid!r} in {sorted(map(str, v))}" for pid, v in bad.head(5).items())
            raise SplitError(f"{len(bad)} patient(s) appear in two {column} parts: {desc}"
                             + (" ..." if len(bad) > 5 else ""))


def align_split(ds: CXRDataset, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` re-ordered to ``ds.records``; :class:`SplitError` if images are missing or patients differ."""
    t = table.copy()
    t["image_id"] = t["image_id"].astype(str)
    twice = t["image_id"].duplicated()
    if twice.any():
        raise SplitError(f"split table lists image(s) twice: {sorted(set(t.loc[twice, 'image_id']))[:5]}")
    t = t.set_index("image_id")
    missing = [i for i in ds.image_ids if i not in t.index]
    if missing:
        raise SplitError(f"split table lacks {len(missing)} image(s) of {ds.name}, e.g. {missing[:3]}")
    t = t.loc[ds.image_ids].reset_index()
    if "patient_id" in t.columns:
        differ = t["patient_id"].astype(str).to_numpy() != ds.patient_ids.astype(str)
        if differ.any():
            i = int(np.flatnonzero(differ)[0])
            raise SplitError(f"split table gives image {t.at[i, 'image_id']!r} patient {t.at[i, 'patient_id']!r}, "
                             f"the dataset says {ds.patient_ids[i]!r}")
    return t


def save_split(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a split table as CSV (``image_id, patient_id, split[, fold][, labeled]``) after checking it."""
    missing = [c for c in SPLIT_COLUMNS if c not in table.columns]
    if missing:
        raise SplitError(f"split table lacks column(s) {missing}")
    check_patient_disjoint(table)
    cols = list(SPLIT_COLUMNS) + [c for c in ("fold", "labeled") if c in table.columns]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table[cols].to_csv(path, index=False)
    return path


def load_split(path: str | Path) -> pd.DataFrame:
    """Read and check a split CSV (:class:`SplitError` naming the file and what is wrong)."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"{path}: split file not found")
    try:
        t = pd.read_csv(path, dtype={"image_id": str, "patient_id": str, "split": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise SplitError(f"{path}: not a readable split CSV: {e}") from None
    missing = [c for c in SPLIT_COLUMNS if c not in t.columns]
    if missing:
        raise SplitError(f"{path}: missing required column(s) {missing}; found {list(t.columns)}")
    bad = ~t["split"].isin(PARTS)
    if bad.any():
        raise SplitError(f"{path}: split values must be {PARTS}; line {int(np.flatnonzero(bad)[0]) + 2} has "
                         f"{t['split'][bad].iloc[0]!r}")
    if "labeled" in t.columns:
        text = t["labeled"].astype(str).str.strip().str.lower()
        ok = text.isin(["true", "false", "1", "0"])
        if not ok.all():
            raise SplitError(f"{path}: labeled must be True/False; line {int(np.flatnonzero(~ok)[0]) + 2} has "
                             f"{t['labeled'][~ok].iloc[0]!r}")
        t["labeled"] = text.isin(["true", "1"])
    if "fold" in t.columns:
        t["fold"] = pd.to_numeric(t["fold"], errors="coerce").fillna(-1).astype(np.int64)
    try:
        check_patient_disjoint(t)
    except SplitError as e:
        raise SplitError(f"{path}: {e}") from None
    return t


def make_split(ds: CXRDataset, *, val: float | None = None, test: float | None = None, folds: int | None = None,
               label_fraction: float | None = None, seed: int = 0) -> pd.DataFrame:
    """What ``radclr data split`` does: a train/val/test split (defaults 0.1 / 0.2) or, with ``folds``, k-fold
    with an optional held-out test part (default 0); then an optional label fraction of the training images."""
    if folds:
        if val:
            raise SplitError("--val and --folds exclude each other: in k-fold each fold is the validation part once")
        table = kfold_patients(ds, k=folds, seed=seed, test=test or 0.0)
    else:
        table = split_patients(ds, val=0.1 if val is None else val, test=0.2 if test is None else test, seed=seed)
    if label_fraction is not None and not 0.0 < float(label_fraction) <= 1.0:
        raise SplitError(f"label fraction must be in (0, 1] (0.1 = 10 % of the training labels), got {label_fraction}")
    if label_fraction is not None and label_fraction < 1.0:
        table = apply_label_fraction(ds, table, label_fraction, seed=seed)
    return table


def split_summary(ds: CXRDataset, table: pd.DataFrame) -> pd.DataFrame:
    """Images, patients, labelled images and positives per finding, one row per part (and fold)."""
    table = align_split(ds, table)
    keys = ["split", "fold"] if "fold" in table.columns else ["split"]
    rows = []
    for key, sub in table.groupby(keys, sort=True):
        idx = sub.index.to_numpy()
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        row.update(images=len(idx), patients=int(sub["patient_id"].nunique()))
        if "labeled" in sub.columns:
            row["labeled"] = int(sub["labeled"].sum())
        y = ds.labels[idx]
        for j, f in enumerate(ds.findings):
            row[f] = int(np.sum(y[:, j] == 1))
        row["No Finding"] = int(np.all(y == 0, axis=1).sum())
        rows.append(row)
    return pd.DataFrame(rows)
