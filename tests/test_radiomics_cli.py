"""`radclr radiomics extract|bench` on a tiny fabricated folder dataset, and the feature cache."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from radclr.cli.main import main
from radclr.radiomics.cache import CacheCorruptionWarning, FeatureCache
from optional_deps import require_module

require_module("radiomics")
logging.getLogger("radiomics").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture()
def dataset(tmp_path):
    """A folder-format dataset: 3 PNGs (two sizes), 4 boxes (one touching the border), masks for two images."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    sizes = {"a.png": (40, 48), "b.png": (40, 48), "c.png": (36, 30)}
    for name, (h, w) in sizes.items():
        img = np.clip(np.cumsum(rng.normal(0, 20, (h, w)), 1) + 120, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / name)
    pd.DataFrame({"image": list(sizes), "patient_id": ["p1", "p2", "p3"],
                  "labels": ["Mass|Nodule", "No Finding", "Nodule"]}).to_csv(root / "labels.csv", index=False)
    pd.DataFrame({"image": ["a.png", "a.png", "c.png", "c.png"], "label": ["Mass", "Nodule", "Nodule", "Nodule"],
                  "x": [5.2, 30.0, 0.0, 10.0], "y": [4.7, 20.0, 0.0, 12.0], "w": [20.0, 12.0, 9.0, 14.0],
                  "h": [18.0, 14.0, 9.0, 10.0]}).to_csv(root / "boxes.csv", index=False)
    for name in ("a", "c"):
        h, w = sizes[f"{name}.png"]
        m = np.zeros((h, w), np.uint8)
        m[5:25, 6:22] = 255
        Image.fromarray(m).save(root / "masks" / f"{name}.png")
    return root


def run(*args) -> int:
    return main(["radiomics", *map(str, args)])


def test_extract_boxes_with_both_engines(dataset, tmp_path, capsys):
    out_t, out_p = tmp_path / "t.csv", tmp_path / "p.csv"
    assert run("extract", dataset, "--boxes", "--out", out_t, "--no-progress") == 0
    assert run("extract", dataset, "--engine", "pyradiomics", "--jobs", "2", "--out", out_p, "--no-progress") == 0
    t, p = pd.read_csv(out_t), pd.read_csv(out_p)
    assert list(t.columns[:3]) == ["image_id", "region_id", "label"] and t.shape == (4, 3 + 102)
    assert list(t.columns) == list(p.columns)
    assert t[["image_id", "region_id", "label"]].values.tolist() == [
        ["a.png", 0, "Mass"], ["a.png", 1, "Nodule"], ["c.png", 0, "Nodule"], ["c.png", 1, "Nodule"]]
    a, b = t.iloc[:, 3:].to_numpy(), p.iloc[:, 3:].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-4)
    assert "4 region(s) x 102 feature(s)" in capsys.readouterr().out


def test_extract_whole_image_and_masks(dataset, tmp_path):
    out = tmp_path / "w.csv"
    assert run("extract", dataset, "--whole-image", "--out", out, "--no-progress", "--bin-count", "16") == 0
    w = pd.read_csv(out)
    assert w["image_id"].tolist() == ["a.png", "b.png", "c.png"] and w["original_shape2D_PixelSurface"].tolist() == [
        40 * 48, 40 * 48, 36 * 30]
    out_m = tmp_path / "m.csv"
    assert run("extract", dataset, "--masks", dataset / "masks", "--out", out_m, "--no-progress") == 0
    m = pd.read_csv(out_m)
    assert m["image_id"].tolist() == ["a.png", "c.png"] and (m["original_shape2D_PixelSurface"] == 20 * 16).all()


def test_extract_with_params_and_refusals(dataset, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("featureClass:\n  firstorder: [Mean]\nsetting:\n  binWidth: 10\n")
    out = tmp_path / "f.csv"
    assert run("extract", dataset, "--params", params, "--out", out, "--no-progress") == 0
    assert list(pd.read_csv(out).columns) == ["image_id", "region_id", "label", "original_firstorder_Mean"]
    params.write_text("imageType:\n  Wavelet: {}\n")
    assert run("extract", dataset, "--params", params, "--out", out, "--no-progress") == 2
    assert "imageType Wavelet" in capsys.readouterr().err
    assert run("extract", dataset, "--params", params, "--engine", "pyradiomics", "--out", out, "--no-progress") == 0
    assert any(c.startswith("wavelet-") for c in pd.read_csv(out).columns)


def test_cache_reruns_and_detects_corruption(dataset, tmp_path):
    cache = tmp_path / "cache"
    first, second = tmp_path / "1.csv", tmp_path / "2.csv"
    assert run("extract", dataset, "--out", first, "--cache", cache, "--no-progress") == 0
    entries = sorted(cache.rglob("*.rad"))
    assert len(entries) == 4
    stamps = [e.stat().st_mtime_ns for e in entries]
    entries[0].write_bytes(entries[0].read_bytes()[:50])  # truncated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run("extract", dataset, "--out", second, "--cache", cache, "--no-progress") == 0
    assert sum(issubclass(w.category, CacheCorruptionWarning) for w in caught) == 1
    pd.testing.assert_frame_equal(pd.read_csv(first), pd.read_csv(second))
    now = [e.stat().st_mtime_ns for e in sorted(cache.rglob("*.rad"))]
    assert now[1:] == stamps[1:] and now[0] != stamps[0]  # only the corrupted entry was recomputed
    # other settings -> other keys
    assert run("extract", dataset, "--out", second, "--cache", cache, "--no-progress", "--bin-count", "8") == 0
    assert len(list(cache.rglob("*.rad"))) == 8


def test_a_fully_cached_rerun_reads_every_row_from_the_cache(dataset, tmp_path):
    cache = tmp_path / "cache"
    first, second = tmp_path / "1.csv", tmp_path / "2.csv"
    assert run("extract", dataset, "--out", first, "--cache", cache, "--no-progress") == 0
    stamps = [e.stat().st_mtime_ns for e in sorted(cache.rglob("*.rad"))]
    assert run("extract", dataset, "--out", second, "--cache", cache, "--no-progress") == 0  # nothing to compute
    pd.testing.assert_frame_equal(pd.read_csv(first), pd.read_csv(second))
    assert [e.stat().st_mtime_ns for e in sorted(cache.rglob("*.rad"))] == stamps


def test_cache_entry_checksum(tmp_path):
    c = FeatureCache(tmp_path)
    key = c.key("img", "box", "cfg")
    c.put(key, ["a", "b"], np.array([1.0, np.nan]))
    names, values = c.get(key)
    assert names == ["a", "b"] and values[0] == 1.0 and np.isnan(values[1])
    blob = c.path(key).read_bytes()
    c.path(key).write_bytes(blob[:-16] + np.array([2.0], dtype="<f8").tobytes() + blob[-8:])  # value 1 -> 2
    with pytest.warns(CacheCorruptionWarning, match="checksum"):
        assert c.get(key) is None
    assert not c.path(key).exists() and c.rebuilt == 1
    assert FeatureCache.key("img", "box", "cfg") != FeatureCache.key("img2", "box", "cfg")


def test_benchmark_runner_times_and_compares_the_engines(dataset, monkeypatch):
    """The runner of benchmarks/radiomics_bench.py (moved out of the library, issue 18)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from radiomics_runner import run_benchmark

    result = run_benchmark(dataset, n=4, size=24, threads=1, rounds=1)
    json.dumps(result)
    assert result["n"] == 4 and result["size"] == 24 and result["threads"] == 1 and result["rounds"] == 1
    assert result["fast_ms_per_region"] > 0 and result["pyradiomics_ms_per_region"] > 0
    assert result["worst_rel_error"] < 1e-6 and result["n_features"] == 102
    assert result["torch_ms_per_region"] > 0 and result["pyradiomics_ms_per_region"] > 0 and result["ratio"] > 0
    assert len(result["worst_rel_error_per_feature"]) == 102 and result["worst_rel_error"] <= 1e-4
    assert set(result["worst_rel_error_per_class"]) == {"shape2D", "firstorder", "glcm", "gldm", "glrlm", "glszm",
                                                        "ngtdm"}
    assert len(result["load_avg_before"]) == 3


def test_user_errors_are_one_line(dataset, tmp_path, capsys):
    assert run("extract", tmp_path / "missing", "--out", tmp_path / "x.csv") == 2
    assert run("extract", dataset, "--jobs", "2", "--out", tmp_path / "x.csv") == 2
    err = capsys.readouterr().err
    assert "radclr: error:" in err and "Traceback" not in err
