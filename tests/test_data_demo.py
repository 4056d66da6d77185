"""The embedded demo sample (real Kermany images shipped in the package)."""

from __future__ import annotations

import numpy as np

from radclr.data import demo_dataset_path, load_dataset


def test_demo_loads_balanced_and_patient_whole():
    path = demo_dataset_path()
    ds = load_dataset(path)
    assert ds.format == "folder" and ds.problems == []
    assert 300 <= len(ds) <= 400
    assert ds.findings == ["Bacterial", "Pneumonia", "Viral"]
    counts = ds.label_counts()
    assert counts["Bacterial"] == counts["Viral"] == counts["No Finding"] == len(ds) // 3
    img = ds.read(0)
    assert img.shape == (128, 128) and img.meta["bit_depth"] == 8 and np.ptp(img.array) > 50
    # every patient has a single class (whole patients were taken)
    cls = ds.labels @ np.array([1, 0, 2]) + ds.is_normal() * 10
    assert (ds.records.assign(c=cls).groupby("patient_id")["c"].nunique() == 1).all()


def test_demo_size_and_licence():
    path = demo_dataset_path()
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert total <= 5 * 1024 * 1024
    text = (path / "LICENSE.md").read_text()
    for needed in ("CC BY 4.0", "Kermany", "10.1016/j.cell.2018.02.010", "10.17632/rscbjbr9sj.3", "Changes made"):
        assert needed in text
