"""Counts that describe a dataset (``radclr data summary``): images, patients, labels, boxes, problems.

Nothing here reads an image file, so a summary of any size of dataset costs only the label tables.
"""

from __future__ import annotations

import numpy as np

from radclr.data.dataset import NO_FINDING, CXRDataset


def dataset_summary(ds: CXRDataset) -> dict:
    """A JSON-ready dict: ``images``, ``patients``, ``findings``, ``label_counts`` (positives per finding and
    ``No Finding``), ``unlabelled_images`` (all labels unknown), ``images_with_unknown_labels`` (any unknown),
    ``boxes``, ``images_with_boxes``, ``boxes_per_label``, ``masks``, ``problems`` (total / errors / warnings)
    and ``metadata_columns``."""
    y = ds.labels
    n_err = sum(p.severity == "error" for p in ds.problems)
    box_labels = ds.boxes["label"].astype(str).replace("", "(none)") if len(ds.boxes) else []
    per_label = {str(k): int(v) for k, v in (box_labels.value_counts().sort_index().items() if len(ds.boxes) else [])}
    return {
        "name": ds.name,
        "format": ds.format,
        "root": str(ds.root),
        "images": int(len(ds)),
        "patients": int(ds.records["patient_id"].nunique()),
        "findings": list(ds.findings),
        "label_counts": ds.label_counts(),
        "unlabelled_images": int(np.all(np.isnan(y), axis=1).sum()) if y.shape[1] else 0,
        "images_with_unknown_labels": int(np.any(np.isnan(y), axis=1).sum()) if y.shape[1] else 0,
        "boxes": int(len(ds.boxes)),
        "images_with_boxes": int(ds.has_boxes().sum()),
        "boxes_per_label": per_label,
        "masks": int(len(ds.masks)),
        "problems": {"total": len(ds.problems), "errors": n_err, "warnings": len(ds.problems) - n_err},
        "metadata_columns": [c for c in ds.records.columns if c not in ("image_id", "path", "patient_id")],
    }


def format_summary(s: dict) -> str:
    """The summary as an aligned text block."""
    lines = [f"dataset   {s['name']}  (format: {s['format']})", f"root      {s['root']}",
             f"images    {s['images']:,}", f"patients  {s['patients']:,}"]
    if s["unlabelled_images"] or s["images_with_unknown_labels"]:
        lines.append(f"unknown   {s['images_with_unknown_labels']:,} image(s) with unknown labels "
                     f"({s['unlabelled_images']:,} wholly unlabelled)")
    lines.append("labels")
    width = max([len(k) for k in s["label_counts"]] + [10])
    n = max(s["images"], 1)
    for k, v in s["label_counts"].items():
        mark = "" if k != NO_FINDING else "   (all findings known and absent)"
        lines.append(f"  {k:<{width}}  {v:>7,}  {100.0 * v / n:5.1f} %{mark}")
    lines.append(f"boxes     {s['boxes']:,} on {s['images_with_boxes']:,} image(s)")
    for k, v in s["boxes_per_label"].items():
        lines.append(f"  {k:<{width}}  {v:>7,}")
    if s["masks"]:
        lines.append(f"masks     {s['masks']:,}")
    p = s["problems"]
    lines.append(f"problems  {p['total']:,} ({p['errors']:,} error(s), {p['warnings']:,} warning(s))"
                 + ("  -- run `radclr data validate` for the list" if p["total"] else ""))
    return "\n".join(lines)
