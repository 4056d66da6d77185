"""Combining datasets: one :class:`CXRDataset` from several (e.g. NIH images + a separate box annotation set).

Findings are the union (a finding a part does not have is *unknown*, NaN, for its images -- not absent). An image
id present in several parts is kept once: labels are merged (known values win over NaN; a conflict 1 vs 0 is a
:class:`DataError`), boxes are the union, and the record of the first part is kept. A patient id is global: the
same id in two parts is the same patient (true for parts of one collection such as NIH).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from radclr.data.dataset import CXRDataset
from radclr.errors import DataError


def concat_datasets(parts: list[CXRDataset], name: str | None = None) -> CXRDataset:
    if not parts:
        raise DataError("concat_datasets: no datasets given")
    if len(parts) == 1:
        return parts[0]
    findings = sorted(set().union(*(p.findings for p in parts)))
    records, labels, boxes, masks, problems = [], [], [], {}, []
    seen: dict[str, int] = {}
    for p in parts:
        rel = p.with_findings(findings)
        for i, iid in enumerate(rel.image_ids):
            if iid in seen:
                j = seen[iid]
                a, b = labels[j], rel.labels[i]
                clash = ~np.isnan(a) & ~np.isnan(b) & (a != b)
                if clash.any():
                    raise DataError(f"image {iid}: labels disagree between datasets for "
                                    f"{[f for f, c in zip(findings, clash) if c]}")
                labels[j] = np.where(np.isnan(a), b, a)
                continue
            seen[iid] = len(records)
            records.append(rel.records.iloc[i].to_dict())
            labels.append(rel.labels[i].copy())
        boxes.append(rel.boxes)
        masks.update(rel.masks)
        problems += rel.problems
    box_table = pd.concat(boxes, ignore_index=True).drop_duplicates() if boxes else None
    return CXRDataset(name=name or "+".join(p.name for p in parts), format="combined", root=parts[0].root,
                      findings=findings, records=pd.DataFrame(records), labels=np.stack(labels),
                      boxes=box_table, masks=masks, problems=problems)
