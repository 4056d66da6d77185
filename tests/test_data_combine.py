"""Combining datasets: union of findings (missing = unknown), duplicates merged, conflicts refused."""

import numpy as np
import pandas as pd
import pytest

from radclr.data.combine import concat_datasets
from radclr.data.dataset import CXRDataset
from radclr.errors import DataError


def _ds(name, ids, findings, labels, boxes=None):
    rec = pd.DataFrame({"image_id": ids, "path": [f"/x/{i}.png" for i in ids], "patient_id": [i[:2] for i in ids]})
    return CXRDataset(name, "folder", "/x", findings, rec, np.asarray(labels, dtype=np.float32),
                      boxes=pd.DataFrame(boxes or [], columns=["image_id", "label", "x", "y", "w", "h"]))


def test_union_of_findings_and_merge_of_duplicates():
    a = _ds("a", ["p1_a", "p2_a"], ["Mass"], [[1], [0]])
    b = _ds("b", ["p2_a", "p3_b"], ["Nodule"], [[1], [0]], boxes=[("p2_a", "Nodule", 1, 2, 3, 4)])
    c = concat_datasets([a, b])
    assert c.findings == ["Mass", "Nodule"] and c.image_ids == ["p1_a", "p2_a", "p3_b"]
    np.testing.assert_array_equal(c.labels[0], [1, np.nan])  # Nodule unknown for a's images
    np.testing.assert_array_equal(c.labels[1], [0, 1])  # merged from both parts
    np.testing.assert_array_equal(c.labels[2], [np.nan, 0])
    assert [b.label for b in c.boxes_for("p2_a")] == ["Nodule"]


def test_conflicting_labels_are_refused():
    a = _ds("a", ["p1_a"], ["Mass"], [[1]])
    b = _ds("b", ["p1_a"], ["Mass"], [[0]])
    with pytest.raises(DataError, match="disagree"):
        concat_datasets([a, b])
