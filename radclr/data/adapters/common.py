"""What every adapter needs: reading CSVs strictly, keeping paths inside the dataset root, multi-hot labels,
checking boxes against image sizes, and recording problems.

Policies (documented in ``docs/data.md``; each is tested):

* **Required columns** missing from a CSV -> :class:`DataError` naming the columns and the file.
* **Duplicate image ids** -> :class:`DataError` naming the ids and their CSV lines.
* **Label tables**: a row with more fields than the header -> :class:`DataError` naming the line (empty trailing
  fields, e.g. a trailing comma, are ignored).
* **Image paths escaping the root** (absolute, or ``..`` leading outside after normalisation) -> the record is
  refused (dropped) with an error :class:`Problem`.
* **Symbolic links** are judged by where they lead: a file that resolves outside the (resolved) dataset root --
  a link, or a file under a linked folder -- is refused like a ``..`` path (records dropped, one error
  :class:`Problem` with the count and examples), unless the caller passes ``follow_links=True`` (``radclr data
  ... --follow-links``, ``data.follow_links: true``). Links that stay inside the root are fine, and so is a
  dataset root that is itself a link. Applied by :func:`radclr.data.load_dataset` to every layout
  (:func:`refuse_outside_links`); folder walks never loop on a link to a parent folder.
* **Missing image file** -> record dropped, error Problem (the official-layout adapters of large collections
  report missing files as one warning with a count instead: a partial download is normal there).
* **Unknown label names** (not among the declared findings) -> error Problem naming the label, its count and
  lines; the label is ignored for those images (their other labels are kept).
* **Boxes** (``x, y, w, h`` = top-left + size, pixels of the image as read):
  non-numeric -> dropped + error; zero or negative width/height -> dropped + error; for an image that is not in
  the label table -> dropped + error; wholly outside the image -> dropped + error; partly outside -> clipped to
  the image + warning (overshoot up to :data:`BOX_TOLERANCE` px, e.g. from rescaling, is clipped silently);
  label not among the findings -> kept + error; label not among the image's positive labels -> kept + warning.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
import warnings
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from radclr.boxes import clip_box
from radclr.data.dataset import BOX_COLUMNS, NO_FINDING, CXRDataset, Problem
from radclr.errors import DataError, ImageReadError
from radclr.io import image_size

BOX_TOLERANCE = 0.01  # px: overshoot clipped without a problem (float rounding of rescaled boxes)
MAX_LISTED = 5  # examples named in one aggregated problem


class ProblemLog:
    """Collects :class:`Problem` s while an adapter loads."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def error(self, file, message: str) -> None:
        self.items.append(Problem(str(file), message, "error"))

    def warning(self, file, message: str) -> None:
        self.items.append(Problem(str(file), message, "warning"))

    def __len__(self) -> int:
        return len(self.items)


def csv_line(path, row: int) -> str:
    """``path:line`` of 0-based data row ``row`` (the header is line 1)."""
    return f"{path}:{row + 2}"


def _examples(items: Sequence, n: int = MAX_LISTED) -> str:
    items = list(items)
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more


def read_csv(path: str | Path, required: Iterable[str], *, what: str = "table") -> pd.DataFrame:
    """A CSV as strings (blank = ``""``), column names stripped; :class:`DataError` if unreadable or if a
    required column is missing (the message names the columns and the file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    kw = dict(dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    try:
        with warnings.catch_warnings():
            # index_col=False: a first data row with more fields than the header must not turn the first column
            # into the index (pandas' default); pandas then warns about the dropped fields, which we check
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, index_col=False, **kw)
    except (pd.errors.ParserWarning, pd.errors.ParserError) as e:
        extra = _rows_with_extra_fields(path)
        if extra is None:
            raise DataError(f"{path}: not a readable CSV {what}: {str(e).strip()}") from None
        if extra:
            line, n_fields, n_header = extra[0]
            raise DataError(f"{path}:{line}: row has {n_fields} fields but the header has {n_header} "
                            f"({len(extra)} such row(s)); fix the row (a value containing a comma must be quoted)"
                            ) from None
        with warnings.catch_warnings():  # only empty trailing fields (e.g. trailing commas): nothing is lost
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            df = pd.read_csv(path, index_col=False, **kw)
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV {what}: {str(e).strip()}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing required column(s) {missing}; found columns {list(df.columns)}")
    return df


def _rows_with_extra_fields(path: Path) -> list[tuple[int, int, int]] | None:
    """``(line, fields, header fields)`` of rows with non-empty fields beyond the header (``[]`` when the extra
    fields are all empty), or None when the file does not parse as CSV at all."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)
            header = next(reader, [])
            out = []
            for row in reader:
                if len(row) > len(header) and any(v.strip() for v in row[len(header):]):
                    out.append((reader.line_num, len(row), len(header)))
            return out
    except (csv.Error, UnicodeDecodeError, OSError):
        return None


def inside_root(rel: str) -> tuple[str | None, str | None]:
    """Normalised relative path, or ``(None, reason)`` if it is absolute or leads outside the root."""
    text = str(rel).strip().replace("\\", "/")
    if not text:
        return None, "empty image path"
    if text.startswith("/") or re.match(r"^[A-Za-z]:/", text) or PurePosixPath(text).is_absolute():
        return None, f"absolute image path {rel!r} refused (paths must be relative to the dataset root)"
    norm = os.path.normpath(text).replace("\\", "/")
    if norm == ".." or norm.startswith("../") or norm == ".":
        return None, f"image path {rel!r} escapes the dataset root; refused"
    return norm, None


def list_files(folder: Path, suffixes: Iterable[str] | None = None) -> dict[str, Path]:
    """``relative posix path -> Path`` of the files under ``folder`` (recursive, symlinks followed -- where they
    lead is judged by :func:`refuse_outside_links`; each resolved folder is walked once)."""
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    suffixes = tuple(s.lower() for s in suffixes) if suffixes else None
    seen: set[str] = set()  # resolved folders already walked: a link to a parent folder must not loop
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, folder)
        for f in filenames:
            if f.startswith(".") or (suffixes and not f.lower().endswith(suffixes)):
                continue
            rel = f if rel_dir == "." else f"{rel_dir}/{f}".replace(os.sep, "/")
            out[rel] = Path(dirpath) / f
    return out


def check_unique(ids: pd.Series, source) -> None:
    """:class:`DataError` naming duplicate ids and their lines."""
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        groups = defaultdict(list)
        for row, v in dup.items():
            groups[v].append(int(row) + 2)
        desc = "; ".join(f"{k!r} (lines {', '.join(map(str, v))})" for k, v in list(groups.items())[:MAX_LISTED])
        raise DataError(f"{source}: duplicate image id(s): {desc}" + (" ..." if len(groups) > MAX_LISTED else ""))


def split_labels(text: str, sep: str = "|") -> list[str]:
    return [t.strip() for t in str(text).split(sep) if t.strip()]


def _norm_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name).strip().lower()


def findings_from_labels(label_lists: Iterable[Sequence[str] | None], log: ProblemLog, source) -> list[str]:
    """Sorted distinct labels (minus ``No Finding``). With no declared finding list a typo would silently
    become a finding, so: spellings that differ only in case / ``_`` / ``-`` / spaces -> error Problem (they
    stay separate findings); spellings that are nearly alike (``Nodle`` / ``Nodule``) -> warning Problem."""
    label_lists = list(label_lists)
    counts: dict[str, int] = defaultdict(int)
    for names in label_lists:
        for n in set(names or ()):
            counts[n] += 1
    seen = sorted(n for n in counts if n != NO_FINDING)
    by_key = defaultdict(list)
    for n in seen + [NO_FINDING]:
        by_key[_norm_key(n)].append(n)
    for names in by_key.values():
        if len(names) > 1:
            log.error(source, f"labels {names} differ only in case or separators; they are treated as different "
                              "findings -- fix the spelling")
    keys = sorted(by_key)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if difflib.SequenceMatcher(None, a, b).ratio() >= 0.85:
                na, nb = by_key[a][0], by_key[b][0]
                log.warning(source, f"labels {na!r} ({counts.get(na, 0)} image(s)) and {nb!r} ({counts.get(nb, 0)} "
                                    "image(s)) are spelled almost alike -- a typo? Declare the findings "
                                    "(findings.txt or findings=[...]) to make unknown labels errors")
    return seen


LABEL_SEPARATORS = (",", ";")  # written where `|` was meant: "Mass,Nodule" is two findings, not one


def tidy_label_lists(label_lists: Sequence[Sequence[str] | None], declared: Sequence[str] | None, log: ProblemLog,
                     source, lines: Sequence[str]) -> tuple[list, dict[str, str]]:
    """Label lists with two careless spellings repaired, each said as a Problem; returns ``(lists, variants)``.

    * A label joined with ``,`` or ``;`` (``Mass,Nodule``) -> error Problem naming the lines; read as the
      separate labels (``|`` is the separator), never as a new finding ``"Mass,Nodule"``.
    * Labels that differ only in case, ``_``, ``-`` or spaces (``mass`` / ``Mass``) -> one finding, spelled as
      declared (findings.txt) or, without a declaration, as most images spell it; a warning Problem names the
      variants and their counts. ``variants`` maps each other spelling to the kept one (for box labels too).
    """
    out, joined = [], defaultdict(list)
    for i, names in enumerate(label_lists):
        if names is None:
            out.append(None)
            continue
        fixed = []
        for n in names:
            if any(sep in n for sep in LABEL_SEPARATORS):
                joined[n].append(lines[i])
                fixed += [t.strip() for t in re.split(r"[,;]", n) if t.strip()]
            else:
                fixed.append(n)
        out.append(fixed)
    for n, where in joined.items():
        log.error(source, f"label {n!r} in {len(where)} record(s) ({_examples(where)}) joins labels with "
                          f"{'/'.join(s for s in LABEL_SEPARATORS if s in n)!r}; labels are separated by '|': read "
                          f"as {' | '.join(t.strip() for t in re.split(r'[,;]', n) if t.strip())}")
    counts: dict[str, int] = defaultdict(int)
    for names in out:
        for n in set(names or ()):
            counts[n] += 1
    by_key = defaultdict(list)
    for n in counts:
        by_key[_norm_key(n)].append(n)
    declared_by_key = {_norm_key(d): d for d in (declared or ())}
    declared_by_key.setdefault(_norm_key(NO_FINDING), NO_FINDING)
    variants = {}
    for key, names in by_key.items():
        keep = declared_by_key.get(key) or sorted(names, key=lambda n: (-counts[n], n))[0]
        others = [n for n in names if n != keep]
        if not others:
            continue
        variants.update({n: keep for n in others})
        listed = ", ".join(f"{n!r} ({counts[n]} image(s))" for n in sorted(names, key=lambda n: -counts[n]))
        log.warning(source, f"labels {listed} differ only in case or separators: read as one finding {keep!r}")
    if variants:
        out = [None if names is None else [variants.get(n, n) for n in names] for names in out]
    return out, variants


def multi_hot(label_lists: Sequence[Sequence[str] | None], findings: Sequence[str], log: ProblemLog, source,
              lines: Sequence[str] | None = None, aliases: dict[str, str] | None = None) -> np.ndarray:
    """``float32 [N, F]``: 1 for listed findings, 0 otherwise; a ``None`` entry = unlabelled (all NaN).

    ``No Finding`` together with a finding -> error Problem, ``No Finding`` ignored. A name outside
    ``findings`` -> one error Problem per name (count and lines), ignored for those images. A name renamed by
    ``aliases`` -> one warning per name.
    """
    index = {f: j for j, f in enumerate(findings)}
    aliases = aliases or {}
    y = np.zeros((len(label_lists), len(findings)), dtype=np.float32)
    unknown: dict[str, list[str]] = defaultdict(list)
    mixed: list[str] = []
    renamed: dict[str, int] = defaultdict(int)
    for i, names in enumerate(label_lists):
        where = lines[i] if lines is not None else f"{source} row {i}"
        if names is None:
            y[i] = np.nan
            continue
        for n in names:
            if n in aliases:
                renamed[n] += 1
        names = [aliases.get(n, n) for n in names]
        if NO_FINDING in names and len(set(names)) > 1:
            mixed.append(where)
        for n in names:
            if n == NO_FINDING:
                continue
            j = index.get(n)
            if j is None:
                unknown[n].append(where)
            else:
                y[i, j] = 1.0
    for n, where in unknown.items():
        log.error(source, f"unknown label {n!r} in {len(where)} record(s) ({_examples(where)}); not among the "
                          f"findings {list(findings)}; ignored for those images")
    for where in mixed:
        log.error(where, f"'{NO_FINDING}' listed together with findings; '{NO_FINDING}' ignored")
    for n, k in renamed.items():
        log.warning(source, f"label {n!r} read as {aliases[n]!r} in {k} record(s)")
    return y


# ---------------------------------------------------------------------------------------------------------
# sizes and boxes
# ---------------------------------------------------------------------------------------------------------
def check_declared_sizes(records: pd.DataFrame, log: ProblemLog, where_column: str = "_where") -> pd.DataFrame:
    """The ``width``/``height`` policy: a value that is not a positive whole number of pixels (text, ``0``,
    ``-64``, ``64.5``) -> error :class:`Problem` naming the line, and the value is blanked (the file's own size is
    used instead, read from its header when needed). Blank = not declared."""
    out = records
    for col in ("width", "height"):
        if col not in records.columns:
            continue
        text = records[col].astype(str).str.strip()
        num = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = (text != "") & ~(np.isfinite(num) & (num > 0) & (num == np.round(num)))
        if bad.any():
            for where, value in zip(records.loc[bad, where_column], text[bad]):
                log.error(where, f"{col} {value!r} is not a positive whole number of pixels; ignored (the file's own "
                                 "size is used)")
            out = out.copy() if out is records else out
            out.loc[bad, col] = ""
    return out


def size_lookup(records: pd.DataFrame, log: ProblemLog) -> Callable[[str], tuple[int, int] | None]:
    """``image_id -> (height, width)``: the records' ``height``/``width`` columns when they are numbers,
    else the file header (:func:`radclr.io.image_size`); ``None`` (with an error Problem) if unreadable."""
    declared: dict[str, tuple[int, int]] = {}
    if "width" in records.columns and "height" in records.columns:
        w = pd.to_numeric(records["width"], errors="coerce")
        h = pd.to_numeric(records["height"], errors="coerce")
        for iid, hh, ww in zip(records["image_id"], h, w):
            if np.isfinite(hh) and np.isfinite(ww) and hh > 0 and ww > 0:
                declared[str(iid)] = (int(hh), int(ww))
    paths = dict(zip(records["image_id"].astype(str), records["path"]))
    cache: dict[str, tuple[int, int] | None] = {}

    def lookup(iid: str):
        if iid in declared:
            return declared[iid]
        if iid not in cache:
            try:
                cache[iid] = image_size(paths[iid])
            except ImageReadError as e:
                log.error(e.path, f"cannot read the image size to check its boxes: {e.reason}")
                cache[iid] = None
        return cache[iid]

    return lookup


def check_boxes(boxes: pd.DataFrame, records: pd.DataFrame, labels: np.ndarray, findings: Sequence[str],
                log: ProblemLog, size_of: Callable[[str], tuple[int, int] | None] | None = None) -> pd.DataFrame:
    """Apply the box policy (module docstring). ``boxes`` has ``image_id, label, x, y, w, h`` and a ``where``
    column (``file:line`` for messages). Returns the kept boxes (``BOX_COLUMNS``, floats)."""
    if boxes is None or len(boxes) == 0:
        return pd.DataFrame({c: pd.Series(dtype=float if c in "xywh" else str) for c in BOX_COLUMNS})
    row_of = {iid: i for i, iid in enumerate(records["image_id"].astype(str))}
    findex = {f: j for j, f in enumerate(findings)}
    size_of = size_of or size_lookup(records, log)
    kept = []
    unknown_labels: dict[str, list[str]] = defaultdict(list)
    not_positive: dict[str, set[str]] = defaultdict(set)
    for r in boxes.itertuples(index=False):
        iid, label, where = str(r.image_id), str(r.label).strip(), str(r.where)
        try:
            x, y, w, h = (float(v) for v in (r.x, r.y, r.w, r.h))
        except (TypeError, ValueError):
            log.error(where, f"box of {iid} has non-numeric coordinates ({r.x}, {r.y}, {r.w}, {r.h}); dropped")
            continue
        if not all(np.isfinite(v) for v in (x, y, w, h)):
            log.error(where, f"box of {iid} has missing/non-finite coordinates ({x}, {y}, {w}, {h}); dropped")
            continue
        if w <= 0 or h <= 0:
            log.error(where, f"zero-area or negative box of {iid} (w={w:g}, h={h:g}); dropped")
            continue
        if iid not in row_of:
            log.error(where, f"box for image {iid!r}, which is not in the label table (or was refused); dropped")
            continue
        size = size_of(iid)
        if size is not None:
            H, W = size
            clipped = clip_box(x, y, w, h, H, W)
            if clipped is None:
                log.error(where, f"box ({x:g}, {y:g}, {w:g}, {h:g}) of {iid} lies wholly outside the "
                                 f"{W}x{H} image; dropped")
                continue
            overshoot = max(-x, -y, x + w - W, y + h - H)
            if overshoot > BOX_TOLERANCE:
                log.warning(where, f"box ({x:g}, {y:g}, {w:g}, {h:g}) of {iid} extends outside the {W}x{H} image; "
                                   "clipped to ({:g}, {:g}, {:g}, {:g})".format(*clipped))
            x, y, w, h = clipped
        if label and label not in findex:
            unknown_labels[label].append(where)
        elif label:
            v = labels[row_of[iid], findex[label]]
            if v == 0:
                not_positive[iid].add(label)
        kept.append((iid, label, x, y, w, h))
    for label, where in unknown_labels.items():
        log.error(where[0].rsplit(":", 1)[0], f"unknown box label {label!r} on {len(where)} box(es) "
                                              f"({_examples(where)}); not among the findings {list(findings)}")
    for iid, labs in not_positive.items():
        log.warning(records["path"].iloc[row_of[iid]], f"has box(es) labelled {sorted(labs)} but its labels do not "
                                                     "include them")
    out = pd.DataFrame(kept, columns=list(BOX_COLUMNS))
    for c in "xywh":
        out[c] = out[c].astype(float)
    return out


def attach_paths(df: pd.DataFrame, rel_column: str, base: Path, log: ProblemLog, source, lines: Sequence[str],
                 missing: str = "error", available: dict[str, Path] | None = None) -> pd.DataFrame:
    """Add ``path`` (absolute) from a relative column; refuse escaping paths; drop rows whose file is absent.

    ``missing="error"``: one error Problem per missing file; ``"warning"``: one aggregated warning.
    ``available``: the files under ``base`` (from :func:`list_files`) to test existence without a stat each.
    """
    paths, keep, absent = [], [], []
    for i, rel in enumerate(df[rel_column].tolist()):
        norm, reason = inside_root(rel)
        if norm is None:
            log.error(lines[i], reason)
            paths.append("")
            keep.append(False)
            continue
        p = base / norm
        exists = (norm in available) if available is not None else p.is_file()
        if not exists:
            absent.append((lines[i], p, norm))
            paths.append(str(p))
            keep.append(False)
            continue
        paths.append(str(p))
        keep.append(True)
    if absent:
        if missing == "error":
            for where, p, _ in absent:
                log.error(p, f"image file missing (listed at {where}); record dropped")
        else:
            log.warning(source, f"{len(absent)} listed image(s) have no file (e.g. "
                                f"{_examples([n for _, _, n in absent], 3)}); those records are dropped")
    out = df.copy()
    out["path"] = paths
    mask = np.asarray(keep, dtype=bool)
    return out[mask]


def outside_links(paths: Iterable[str], root) -> list[tuple[str, str]]:
    """``(path, resolved path)`` of the ``paths`` whose file resolves outside the resolved ``root`` (through a link
    to the file or to a folder above it). One ``lstat`` per file; folders are resolved once each."""
    real_root = os.path.realpath(root)
    prefix = real_root.rstrip(os.sep) + os.sep
    real_dirs: dict[str, str] = {}
    out = []
    for p in paths:
        p = str(p)
        d, name = os.path.split(p)
        rd = real_dirs.get(d)
        if rd is None:
            rd = real_dirs[d] = os.path.realpath(d)
        full = os.path.join(rd, name)
        if os.path.islink(full):
            full = os.path.realpath(full)
        if full != real_root and not full.startswith(prefix):
            out.append((p, full))
    return out


def refuse_outside_links(ds: CXRDataset, follow_links: bool = False) -> CXRDataset:
    """The symlink policy (module docstring): drop the records (and masks) whose file resolves outside the
    dataset root, with one error :class:`Problem`; with ``follow_links=True`` keep them (no problem recorded)."""
    if follow_links or len(ds) == 0:
        return ds
    bad = outside_links(ds.records["path"], ds.root)
    bad_masks = outside_links(ds.masks.values(), ds.root) if ds.masks else []
    if not bad and not bad_masks:
        return ds
    hint = "refused like a '..' path; pass --follow-links (data.follow_links: true) to read files outside the root"
    problems = list(ds.problems)
    if bad:
        problems.append(Problem(str(ds.root), f"{len(bad)} image file(s) resolve outside the dataset root through "
                                              f"symbolic links ({_examples([f'{p} -> {r}' for p, r in bad], 3)}); "
                                              f"{hint}; those records are dropped"))
    masks = dict(ds.masks)
    if bad_masks:
        outside = {p for p, _ in bad_masks}
        masks = {k: v for k, v in masks.items() if str(v) not in outside}
        problems.append(Problem(str(ds.root), f"{len(bad_masks)} mask file(s) resolve outside the dataset root "
                                              f"through symbolic links ({_examples([f'{p} -> {r}' for p, r in bad_masks], 3)}); "
                                              f"{hint}; those masks are ignored"))
    drop = {p for p, _ in bad}
    keep = np.flatnonzero([str(p) not in drop for p in ds.records["path"]])
    out = ds.subset(keep)
    out.masks = {k: v for k, v in masks.items() if k in set(out.records["image_id"])}
    out.problems = problems
    return out


def make_dataset(name: str, fmt: str, root: Path, findings: list[str], records: pd.DataFrame, labels: np.ndarray,
                 boxes: pd.DataFrame | None, log: ProblemLog, masks: dict[str, str] | None = None) -> CXRDataset:
    """The :class:`CXRDataset` with ``records`` in the contract's column order (``image_id, path, patient_id``
    first, metadata after)."""
    first = ["image_id", "path", "patient_id"]
    records = records[first + [c for c in records.columns if c not in first]].reset_index(drop=True)
    return CXRDataset(name=name, format=fmt, root=Path(root), findings=list(findings), records=records,
                      labels=np.asarray(labels, dtype=np.float32), boxes=boxes, masks=masks or {},
                      problems=list(log.items))
