"""Seed 004's 3-D path: slice rule, tumour stacks, windowing, the stack store, 3-D PyRadiomics, end-to-end training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from radclr.training_data import volumes as V
from radclr.engine.config import resolve_config
from radclr.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny" / "seed004_volumes.yaml"


# --------------------------------------------------------------------------------------------------------------
# slice selection (seed 004 §3.1)
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m, expected", [
    (10, list(range(10))),
    (20, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]),
    (15, [0, 2, 3, 5, 6, 8, 9, 11, 12, 14]),  # floor((k + 1/2) * 1.5)
    (7, [0, 1, 2, 2, 3, 3, 4, 4, 5, 6]),  # 3 extra copies: middle (3), then 2, then 4
    (4, [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]),  # middle pair 1, 2; then the ends 0, 3; then 1, 2 again
    (3, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]),  # 7 extra: 1, 0, 2, 1, 0, 2, 1
    (1, [0] * 10),
])
def test_slice_rule_uniform_or_repeated_from_the_middle(m, expected):
    got = V.select_slices(m, 10)
    assert got.tolist() == expected
    assert np.all(np.diff(got) >= 0)  # anatomical order kept
    if m <= 10:
        assert set(got.tolist()) == set(range(m))  # fewer than n: every slice is used


def test_slice_rule_repeats_are_symmetric_and_bad_counts_refused():
    for m in range(1, 10):
        counts = np.bincount(V.select_slices(m, 10), minlength=m)
        assert counts.sum() == 10 and counts.max() - counts.min() <= 1
        mid = (m - 1) / 2  # more copies never sit farther from the middle than fewer copies
        far = [abs(i - mid) for i in range(m)]
        assert all(counts[i] >= counts[j] for i in range(m) for j in range(m) if far[i] < far[j])
    with pytest.raises(ValueError, match="m >= 1"):
        V.select_slices(0, 10)


# --------------------------------------------------------------------------------------------------------------
# one stack: slices, crop, intensity, resize
# --------------------------------------------------------------------------------------------------------------
def _coded_volume(D=12, H=20, W=20):
    """Slice z holds the value 10 z everywhere (so a stack's slice tells which slice it came from)."""
    return np.broadcast_to((10.0 * np.arange(D, dtype=np.float32))[:, None, None], (D, H, W)).copy()


def test_stack_takes_the_rule_slices_and_the_common_box():
    vol = _coded_volume()
    mask = np.zeros(vol.shape, bool)
    mask[3, 5:10, 4:8] = True  # three tumour slices with different in-plane boxes
    mask[4, 8:13, 6:12] = True
    mask[5, 6:8, 5:7] = True
    assert V.roi_box(mask) == (5, 13, 4, 12)  # union over all tumour slices
    stack = V.tumour_stack(vol, mask, n_slices=10, size=8, window=(0.0, 255.0))  # 8 x 8 box: no resize
    assert stack.shape == (10, 8, 8) and stack.dtype == np.float32
    assert stack[:, 0, 0].tolist() == [30, 30, 30, 40, 40, 40, 40, 50, 50, 50]
    # voxels in the box but outside the mask are kept: the crop is exactly the box of those slices
    vol2 = np.random.default_rng(0).uniform(0, 255, vol.shape).astype(np.float32)
    got = V.tumour_stack(vol2, mask, 10, 8, window=(0.0, 255.0))
    np.testing.assert_allclose(got[3], vol2[4, 5:13, 4:12], atol=1e-4)


def test_margin_enlarges_and_clips_the_box():
    mask = np.zeros((4, 20, 20), bool)
    mask[1, 2:10, 12:20] = True  # 8 x 8, touching the right edge
    assert V.roi_box(mask, margin=0.25) == (0, 12, 10, 20)  # 2 px each side, clipped at 0 and 20


def test_windowing_and_minmax_rules():
    a = np.array([-1000.0, -200.0, 50.0, 300.0, 1000.0])
    np.testing.assert_allclose(V.to_store_window(a, (-200.0, 300.0)), [0, 0, 127.5, 255, 255], atol=1e-4)
    np.testing.assert_allclose(V.to_store_window(np.array([2.0, 4.0, 6.0])), [0, 127.5, 255], atol=1e-4)
    assert not V.to_store_window(np.full(5, 7.0)).any()  # constant -> 0
    # without a window the min-max runs over the cropped stack, not the whole volume (air at -1000 elsewhere)
    vol = np.full((6, 16, 16), -1000.0, np.float32)
    vol[2:4, 4:12, 4:12] = np.linspace(20, 80, 64, dtype=np.float32).reshape(8, 8)
    mask = np.zeros(vol.shape, bool)
    mask[2:4, 4:12, 4:12] = True
    stack = V.tumour_stack(vol, mask, 4, 8)
    assert stack.min() == 0.0 and abs(stack.max() - 255.0) < 1e-3


def test_resize_is_antialiased_bilinear_per_slice():
    vol = _coded_volume(D=12, H=40, W=40)
    mask = np.zeros(vol.shape, bool)
    mask[2:9, 5:35, 10:30] = True  # 7 slices, 30 x 20 box -> squashed to 16 x 16
    stack = V.tumour_stack(vol, mask, 10, 16, window=(0.0, 255.0))
    assert stack.shape == (10, 16, 16)
    for k, z in enumerate(np.arange(2, 9)[V.select_slices(7, 10)]):  # constant slices stay constant
        np.testing.assert_allclose(stack[k], 10.0 * z, atol=1e-3)
    ramp = np.tile(np.arange(40, dtype=np.float32)[None, :, None] * 6.0, (12, 1, 40))  # rows 0..234
    out = V.tumour_stack(ramp, mask, 10, 15, window=(0.0, 255.0))
    ref = torch.nn.functional.interpolate(torch.from_numpy(ramp[None, 2:3, 5:35, 10:30].copy()),
                                          size=(15, 15), mode="bilinear", antialias=True)[0, 0].numpy()
    np.testing.assert_allclose(out[0], ref, atol=1e-4)


def test_stack_bad_input():
    vol = _coded_volume()
    with pytest.raises(DataError, match="empty"):
        V.tumour_stack(vol, np.zeros(vol.shape, bool))
    with pytest.raises(ValueError, match="volume"):
        V.tumour_stack(vol, np.ones((3, 4, 4), bool))
    vol[3, 6, 6] = np.nan
    mask = np.zeros(vol.shape, bool)
    mask[3, 5:9, 5:9] = True
    with pytest.raises(DataError, match="NaN"):
        V.tumour_stack(vol, mask)


# --------------------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------------------
def test_volume_settings_validation():
    cfg = resolve_config(TINY)
    vs = V.volume_settings(cfg)
    assert (vs.n_slices, vs.size, vs.window) == (10, 32, (-200.0, 300.0)) and V.input_channels(cfg) == 10
    assert V.volume_settings(resolve_config(REPO / "configs" / "tiny" / "seed004_correspondence.yaml")) is None
    bad = {"data.volume.window=[300,-200]": "window", "data.volume.n_slices=0": "n_slices",
           "+data.volume.depth=3": "unknown key", "radiomics.engine=torch": "pyradiomics",
           "radiomics.region=cam": "region", "data.volume.margin=-1": "margin"}
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            resolve_config(TINY, [override])


# --------------------------------------------------------------------------------------------------------------
# the stack store and 3-D radiomics
# --------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_volumes(tmp_path_factory):
    from radclr.data.phantom_volumes import write_phantom_volumes

    root = tmp_path_factory.mktemp("volumes")
    return write_phantom_volumes(root / "ds", n=4, size=32, depth=12, seed=3), root


def test_phantom_volumes_load_with_nifti_masks(small_volumes):
    ds, _ = small_volumes
    assert len(ds.masks) == len(ds) == 4  # masks/case_000.nii.gz matched to images/case_000.nii.gz
    vol, mask, spacing = V.read_case(ds.records["path"][0], ds.masks[ds.image_ids[0]])
    assert vol.shape == mask.shape == (12, 32, 32) and mask.any() and len(spacing) == 3
    assert vol.min() < -900 and mask.any(axis=(1, 2)).sum() == ds.records["tumour_slices"][0]


def test_store_holds_stacks_and_is_cached(small_volumes, monkeypatch):
    ds, root = small_volumes
    cache = root / "cache-store"
    store = V.build_volume_store(ds, 10, 24, cache, window=(-200, 300), progress=False)
    assert store.images.shape == (4, 10, 24, 24) and store.images.dtype == np.uint8 and store.channels == 10
    vol, mask, _ = V.read_case(ds.records["path"][1], ds.masks[ds.image_ids[1]])
    np.testing.assert_array_equal(store.images[1], np.rint(V.tumour_stack(vol, mask, 10, 24, window=(-200, 300))))
    assert tuple(store.original_hw[1]) == (32, 32)

    def refuse(task):
        raise AssertionError("a valid cached store must not be decoded again")

    monkeypatch.setattr(V, "_decode_volume", refuse)
    again = V.build_volume_store(ds, 10, 24, cache, window=(-200, 300), progress=False)
    assert again.key == store.key
    with pytest.raises(AssertionError, match="decoded again"):  # other settings -> another store
        V.build_volume_store(ds, 10, 24, cache, window=None, progress=False)
    (cache / f"images-{store.key}.done").unlink()  # an interrupted build is rebuilt
    with pytest.raises(AssertionError, match="decoded again"):
        V.build_volume_store(ds, 10, 24, cache, window=(-200, 300), progress=False)
    monkeypatch.undo()
    mask_file = Path(ds.masks[ds.image_ids[2]])  # a changed mask file changes the key
    st = mask_file.stat()
    os.utime(mask_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert V.build_volume_store(ds, 10, 24, cache, window=(-200, 300), progress=False).key != store.key


def test_store_needs_a_mask_per_image(small_volumes):
    ds, root = small_volumes
    partial = ds.subset(np.arange(len(ds)))
    partial.masks = {k: v for k, v in ds.masks.items() if k != ds.image_ids[0]}
    with pytest.raises(DataError, match="needs a tumour mask for every image"):
        V.build_volume_store(partial, 10, 24, root / "cache-x", progress=False)


def test_3d_radiomics_are_pyradiomics_on_the_volume(small_volumes):
    import SimpleITK as sitk
    from radiomics import featureextractor

    from radclr.radiomics.pyradiomics_engine import extract_pyradiomics_volumes, pyradiomics_params

    ds, root = small_volumes
    cases = [V.read_case(p, ds.masks[i]) for p, i in zip(ds.records["path"], ds.image_ids)]
    rad_cfg = resolve_config(TINY)["radiomics"]
    names, values = V.volume_radiomics(ds, rad_cfg, root / "cache-rad", progress=False)
    assert values.shape == (4, len(names)) and np.isfinite(values).all()
    assert "original_shape_VoxelVolume" in names and not any("shape2D" in n for n in names)
    # reference: PyRadiomics itself on the full (uncropped) volume with the file's spacing
    vol, mask, spacing = cases[0]
    ext = featureextractor.RadiomicsFeatureExtractor(pyradiomics_params(volume=True))
    img, msk = sitk.GetImageFromArray(vol.astype(np.float64)), sitk.GetImageFromArray(mask.astype(np.uint8))
    img.SetSpacing(tuple(reversed(spacing)))
    msk.SetSpacing(tuple(reversed(spacing)))
    ref = {k: float(v) for k, v in ext.execute(img, msk).items() if not k.startswith("diagnostics_")}
    assert list(ref) == names
    np.testing.assert_allclose(values[0], [ref[n] for n in names], rtol=1e-9, atol=1e-12)
    # hand check: voxel volume = voxel count x voxel size
    assert values[0, names.index("original_shape_VoxelVolume")] == pytest.approx(mask.sum() * np.prod(spacing))
    # cached: a second call reads the file
    again = V.volume_radiomics(ds, rad_cfg, root / "cache-rad", progress=False)
    np.testing.assert_array_equal(again[1], values)
    with pytest.raises(ConfigError, match="shape2D"):
        extract_pyradiomics_volumes([vol], [mask], classes=["shape2D", "firstorder"])
    sub_names, sub = extract_pyradiomics_volumes([c[0] for c in cases[:2]], [c[1] for c in cases[:2]],
                                                 spacings=[c[2] for c in cases[:2]], classes=["shape"], jobs=2)
    np.testing.assert_allclose(sub, values[:2, [names.index(n) for n in sub_names]], rtol=1e-9)


def test_3d_filtered_image_types_send_the_whole_volume(small_volumes, tmp_path):
    import SimpleITK as sitk
    import yaml
    from radiomics import featureextractor

    ds, _ = small_volumes
    params = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}},
              "featureClass": {"shape": ["VoxelVolume"], "firstorder": ["Mean", "Entropy"]},
              "setting": {"binWidth": 10}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    rad_cfg = {**resolve_config(TINY)["radiomics"], "params": str(path)}
    names, values = V.volume_radiomics(ds, rad_cfg, tmp_path / "cache", progress=False, chunk=2)
    assert "log-sigma-1-0-mm-3D_firstorder_Mean" in names and "original_shape_VoxelVolume" in names
    vol, mask, spacing = V.read_case(ds.records["path"][3], ds.masks[ds.image_ids[3]])
    img, msk = sitk.GetImageFromArray(vol.astype(np.float64)), sitk.GetImageFromArray(mask.astype(np.uint8))
    img.SetSpacing(tuple(reversed(spacing)))
    msk.SetSpacing(tuple(reversed(spacing)))
    ref = featureextractor.RadiomicsFeatureExtractor({**params, "setting": {**params["setting"], "force2D": False,
                                                                            "additionalInfo": False}}).execute(img, msk)
    np.testing.assert_allclose(values[3], [float(ref[n]) for n in names], rtol=1e-9)
    path.write_text(yaml.safe_dump({**params, "featureClass": {"shape2D": None}}))
    with pytest.raises(ConfigError, match="shape2D"):
        V.volume_radiomics(ds, rad_cfg, tmp_path / "cache", progress=False)


# --------------------------------------------------------------------------------------------------------------
# the training view and the whole pipeline
# --------------------------------------------------------------------------------------------------------------
def test_augmentation_acts_on_every_slice_alike():
    from radclr.transforms import CXRAugment

    stack = torch.rand(10, 32, 32)
    aug = CXRAugment(blur_p=1.0, jitter_p=1.0)
    for seed in range(3):
        out = aug(stack, generator=torch.Generator().manual_seed(seed))
        assert out.shape == (10, 32, 32)
        # the same crop, rotation, blur sigma and brightness/contrast factors on every slice: augmenting the stack
        # equals augmenting each slice alone with the same random draws
        alone = torch.cat([aug(stack[k:k + 1], generator=torch.Generator().manual_seed(seed)) for k in range(10)])
        torch.testing.assert_close(out, alone, atol=1e-5, rtol=0)


def test_volume_config_trains_evaluates_and_uses_3d_radiomics(tmp_path, tmp_path_factory, monkeypatch):
    from radclr.cli.main import main
    from radclr.training_data import TrainingView, prepare_data

    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path_factory.getbasetemp() / "radclr-cache"))
    run = tmp_path / "run"
    assert main(["train", str(TINY), "--out", str(run), "--no-progress"]) == 0
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["stage_name"] == "finetune" and state["store_size"] == 32
    assert state["model"]["parts.encoder.backbone.conv1.weight"].shape[1] == 10  # in_channels = n_slices
    assert "original_shape_Sphericity" in state["radiomics_names"]  # 3-D shape: PyRadiomics, not the 2-D engine
    res = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= res["classification"]["auc"]["mean"] <= 1.0
    assert "test" in res["classical_radiomics"]
    assert "localization" not in res and "3-D" in res["localization_skipped"]

    cfg = resolve_config(run / "config.yaml")
    data = prepare_data(cfg, run, progress=False)
    assert data.roi_crop is None and data.store.images.shape[1:] == (10, 32, 32)
    view = TrainingView(data, data.dataset.labels, augment=None)
    sample = view[0]
    assert sample["image"].shape == (10, 32, 32) and sample["radiomics"].shape == (len(data.radiomics_names),)
    np.testing.assert_allclose(sample["image"].numpy() * 255.0, data.store.images[0], atol=1e-4)

    # another dataset folder (here the phantom's own files): every case tested, stacks + 3-D radiomics rebuilt
    from radclr.runs.evaluate import evaluate_run
    from radclr.runs.run import load_run
    from radclr.errors import RadclrError
    from radclr.predict import _check_predictable

    ext = evaluate_run(run, data_path=str(data.dataset.root), out=tmp_path / "ext.json", n_boot=10, progress=False)
    assert ext["split"] == "all" and ext["classification"]["n_images"] == len(data.dataset)
    with pytest.raises(RadclrError, match="3-D tumour stacks"):  # predict takes 2-D images only
        _check_predictable(load_run(run))


def test_volume_config_cross_validates(tmp_path, tmp_path_factory, monkeypatch):
    from radclr.cli.main import main

    monkeypatch.setenv("RADCLR_CACHE", str(tmp_path_factory.getbasetemp() / "radclr-cache"))
    out = tmp_path / "cv"
    assert main(["train", str(TINY), "--out", str(out), "--folds", "3", "--no-progress", "stages.0.epochs=0"]) == 0
    summary = json.loads((out / "cv_summary.json").read_text())
    assert len(summary["folds"]) == 3 and sum(r["n_test_images"] for r in summary["folds"]) == 36
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in summary["folds"])
