"""The data side at scale (issue 18): the image store pickles by path (spawn workers map it), one process builds a
shared store or radiomics array while the others wait, a killed build leaves no half file, the store's size is
said and a short disk refused first, ``data.store_dir``, the fixed radiomics as one array (BYOP: boxed rows
only), and `radclr data prepare`."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from radclr.engine.config import fixed_radiomics_rows, needs_fixed_radiomics, resolve_config
from radclr.errors import OutputError
from radclr.radiomics.regions import RegionRadiomics, region_masks
from radclr.training_data import store as store_mod
from radclr.training_data.fixed_radiomics import FIXED_FOLDER, cached_fixed_radiomics
from radclr.training_data.store import build_store, store_size_line

REPO = Path(__file__).resolve().parents[1]


def _dataset(tmp_path):
    from data_factories import small_folder

    from radclr.data import load_dataset

    return load_dataset(small_folder(tmp_path / "ds"))


# ------------------------------------------------------------------------------------------------ pickling by path
class _Sums(torch.utils.data.Dataset):
    def __init__(self, store):
        self.store = store

    def __len__(self):
        return len(self.store)

    def __getitem__(self, i):
        return int(np.asarray(self.store.images[i], dtype=np.int64).sum())


def test_store_pickles_by_path_and_spawn_workers_map_it(tmp_path):
    store = build_store(_dataset(tmp_path), 64, tmp_path / "cache", progress=False)
    blob = pickle.dumps(store)
    assert len(blob) < 4096 < store.images.nbytes  # the path, not the 24 kB of pixels
    back = pickle.loads(blob)
    assert isinstance(back.images, np.memmap) and back.path == store.path
    np.testing.assert_array_equal(back.images, store.images)
    np.testing.assert_array_equal(back.original_hw, store.original_hw)
    loader = torch.utils.data.DataLoader(_Sums(store), batch_size=None, num_workers=1,
                                         multiprocessing_context=torch.multiprocessing.get_context("spawn"))
    assert list(loader) == [int(np.asarray(store.images[i], dtype=np.int64).sum()) for i in range(len(store))]
    # an in-memory store (no file) still pickles by value
    mem = store_mod.ImageStore(np.zeros((2, 4, 4), np.uint8), np.ones((2, 2), np.int64), "k")
    assert pickle.loads(pickle.dumps(mem)).images.shape == (2, 4, 4)


# ------------------------------------------------------------------------------- one builder, the others wait
_BUILDER = textwrap.dedent("""
    import hashlib, sys, time
    import numpy as np
    from radclr.training_data.store import build_cached_store

    calls = []

    def decode(i):
        calls.append(i)
        time.sleep(0.02)
        if {crash} and len(calls) == 20:
            import os; os._exit(3)  # a killed build: no clean-up code runs
        return np.full((8, 8), i % 251, np.uint8), (8, 8)

    store = build_cached_store(list(range(60)), decode, (8, 8), "sharedkey", sys.argv[1], progress=False)
    print(len(calls), hashlib.sha1(np.ascontiguousarray(store.images)).hexdigest())
""")


def _builder(cache: Path, crash: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _BUILDER.format(crash=crash), str(cache)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_build_one_store_once(tmp_path):
    procs = [_builder(tmp_path), _builder(tmp_path)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    decoded, digests = zip(*(o[0].split() for o in outs))
    assert sorted(decoded) == ["0", "60"]  # one process decoded every image, the other waited and mapped
    assert digests[0] == digests[1]
    expected = np.repeat(np.arange(60, dtype=np.uint8)[:, None, None], 8, 1).repeat(8, 2)
    assert digests[0] == hashlib.sha1(expected).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".images-sharedkey.lock", "images-sharedkey.done",
                                                          "images-sharedkey.json", "images-sharedkey.npy"]


def test_a_killed_build_leaves_no_half_store_and_the_next_one_builds(tmp_path):
    p = _builder(tmp_path, crash=True)
    p.communicate(timeout=120)
    assert p.returncode == 3
    assert not (tmp_path / "images-sharedkey.npy").exists() and not (tmp_path / "images-sharedkey.done").exists()
    assert list(tmp_path.glob("images-sharedkey.npy.tmp-*"))  # the dead build's temporary file ...
    q = _builder(tmp_path)
    out, err = q.communicate(timeout=120)
    assert q.returncode == 0, err[-2000:]
    assert out.split()[0] == "60"
    assert not list(tmp_path.glob("*.tmp-*"))  # ... removed by the next builder


def test_a_failed_build_removes_its_temporary_file(tmp_path):
    def bad(i):
        if i == 5:
            raise ValueError("unreadable image")
        return np.zeros((4, 4), np.uint8), (4, 4)

    with pytest.raises(ValueError):
        store_mod.build_cached_store(list(range(10)), bad, (4, 4), "k2", tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".images-k2.lock"]


# ---------------------------------------------------------------------------------------------------------- disk
def test_store_size_is_said_and_a_short_disk_refused_before_writing(tmp_path, monkeypatch):
    assert store_size_line((112_120, 512, 512)) == "512 px x 112,120 images = 29.4 GB"
    assert store_size_line((100, 10, 64, 64)) == "64 px x 10 slices x 100 images = 4.1 MB"

    class Usage:
        free = 1000

    monkeypatch.setattr(store_mod.shutil, "disk_usage", lambda p: Usage)
    with pytest.raises(OutputError, match=r"images-[0-9a-f]+\.npy: cannot write the image store \(24.7 kB\): the "
                                          r"disk of .* has 1.0 kB free -- set data.store_dir"):
        build_store(_dataset(tmp_path), 64, tmp_path / "cache", progress=False)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")] == []


# ------------------------------------------------------------------------------------- fixed radiomics, one array
def test_fixed_radiomics_are_one_array_read_back_without_recomputing(tmp_path, monkeypatch):
    ds = _dataset(tmp_path)
    store = build_store(ds, 64, tmp_path / "cache", progress=False)
    from radclr.training_data.prepare import store_boxes

    boxes = store_boxes(ds, store)
    service = RegionRadiomics({"classes": ["firstorder"]})
    ids = list(ds.image_ids)
    cache = tmp_path / "cache"
    full = cached_fixed_radiomics(service, store.images, store.key, boxes, ids, cache, progress=False)
    regs = [b or None for b in boxes]
    direct = service.of_masks(torch.from_numpy(np.array(store.images, dtype=np.float64)),
                              region_masks(regs, 64)).numpy()
    np.testing.assert_allclose(full, direct, rtol=1e-12, equal_nan=True)
    files = sorted(p.name for p in (cache / FIXED_FOLDER).iterdir() if not p.name.startswith("."))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npy")
    meta = json.loads((cache / FIXED_FOLDER / files[0]).read_text())
    assert meta["names"] == service.names and meta["image_ids"] == ids and meta["rows"] == "all"

    def no_compute(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(RegionRadiomics, "fixed", no_compute)
    np.testing.assert_array_equal(cached_fixed_radiomics(service, store.images, store.key, boxes, ids, cache,
                                                         progress=False), full)
    # "boxed" is served by the complete array
    np.testing.assert_array_equal(cached_fixed_radiomics(service, store.images, store.key, boxes, ids, cache,
                                                         rows="boxed", progress=False), full)
    # other regions or settings: another array
    monkeypatch.undo()
    other = cached_fixed_radiomics(service, store.images, store.key, None, ids, cache, progress=False)
    assert not np.allclose(other, full)


def test_boxed_rows_skip_whole_image_rows_and_all_reuses_them(tmp_path, monkeypatch):
    ds = _dataset(tmp_path)
    store = build_store(ds, 64, tmp_path / "cache", progress=False)
    from radclr.training_data.prepare import store_boxes

    boxes = store_boxes(ds, store)
    boxed = np.array([bool(b) for b in boxes])
    service = RegionRadiomics({"classes": ["firstorder"]})
    computed = []
    real = RegionRadiomics.fixed

    def spy(self, images, regions, *, rows=None, **k):
        computed.append(list(rows))
        return real(self, images, regions, rows=rows, **k)

    monkeypatch.setattr(RegionRadiomics, "fixed", spy)
    part = cached_fixed_radiomics(service, store.images, store.key, boxes, list(ds.image_ids), tmp_path / "c",
                                  rows="boxed", progress=False)
    assert computed == [list(np.flatnonzero(boxed))]
    assert np.isnan(part[~boxed]).all() and np.isfinite(part[boxed]).all()
    full = cached_fixed_radiomics(service, store.images, store.key, boxes, list(ds.image_ids), tmp_path / "c",
                                  progress=False)
    assert computed[1] == list(np.flatnonzero(~boxed))  # the boxed rows are taken from the "boxed" array
    np.testing.assert_array_equal(full[boxed], part[boxed])
    assert np.isfinite(full).all()


def test_byop_with_its_loop_asks_for_boxed_rows_only():
    byop = resolve_config(REPO / "configs/phantom/byop.yaml")
    assert needs_fixed_radiomics(byop) and fixed_radiomics_rows(byop) == "boxed"
    assert fixed_radiomics_rows(resolve_config(REPO / "configs/phantom/byop.yaml", ["stages.0.byop=false"])) == "all"
    assert fixed_radiomics_rows(resolve_config(REPO / "configs/phantom/byop.yaml",
                                               ["radiomics.region=whole_image"])) == "all"
    assert fixed_radiomics_rows(resolve_config(REPO / "configs/phantom/byop.yaml",
                                               ["evaluation.classical_radiomics=true"])) == "all"
    sup = resolve_config(REPO / "configs/phantom/supervised.yaml")
    assert fixed_radiomics_rows(sup) == "all"


# --------------------------------------------------------------------------------- radclr data prepare, store_dir
def test_data_prepare_builds_store_in_store_dir_and_radiomics_in_cache(tmp_path, capsys):
    from radclr.cli.main import main
    from radclr.training_data.prepare import prepare_data

    cache, stores = tmp_path / "cache", tmp_path / "stores"
    over = [f"data.cache_dir={cache}", f"data.store_dir={stores}", "data.phantom.n=40", "data.image_size=64",
            "radiomics.classes=[firstorder]"]
    rc = main(["data", "prepare", str(REPO / "configs/phantom/byop.yaml"), *over, "--jobs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "image store: 40 images, 163.8 kB at " + str(stores) in out and "2 process(es)" in out
    assert "fixed-region radiomics: 40 of 40 rows (all)" in out  # 40 phantoms: < 20 boxed training images
    assert len(list(stores.glob("images-*.npy"))) == 1 and not list(cache.glob("images-*"))
    assert len(list((cache / FIXED_FOLDER).glob("*.npy"))) == 1
    cfg = resolve_config(REPO / "configs/phantom/byop.yaml", over)
    data = prepare_data(cfg, None, radiomics_rows="boxed", progress=False)  # maps what prepare built
    assert data.store.path.startswith(str(stores)) and data.radiomics.shape == (40, 18)
    assert len(list((cache / FIXED_FOLDER).glob("*.npy"))) == 1


def test_process_group_timeout_comes_from_the_config(monkeypatch):
    from radclr.runtime import distributed as D

    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(D.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(D.dist, "init_process_group", lambda **k: seen.update(k))
    monkeypatch.setattr(D.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(D.dist, "get_world_size", lambda: 2)
    info = D.init_distributed(torch.device("cpu"), 90)
    assert info.world_size == 2 and seen["backend"] == "gloo" and seen["timeout"].total_seconds() == 5400
    D.init_distributed(torch.device("cpu"))
    assert seen["timeout"].total_seconds() == 120 * 60
    assert resolve_config(None)["trainer"]["dist_timeout_minutes"] == 120


# ------------------------------------------------------------------------------------ benchmarks/scale.py, small
def test_scale_benchmark_layout_loads_as_nih_and_its_first_stages_run(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import scale
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    layout = scale.write_layout(tmp_path / "nih", 150, px=32)
    assert scale.write_layout(tmp_path / "nih", 150, px=32) == layout  # reused, not rewritten
    res = scale.run_stage("load", layout, tmp_path / "work", 32, 2, None)
    assert res["images"] == 150 and res["errors"] == 0 and res["boxes"] >= 10
    assert len({p.name for p in layout.glob("images_*/images/*.png")}) == 150
    res = scale.run_stage("split", layout, tmp_path / "work", 32, 2, None)
    assert 0 < res["labeled"] < 150
    assert scale.growth({"10000": {"load": {"ms_per_image": 2.0}}, "112120": {"load": {"ms_per_image": 3.0}}}) == \
        {"load": 1.5}
