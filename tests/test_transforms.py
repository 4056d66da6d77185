"""CXR-safe augmentations, preprocessing and ROI crops (radclr.transforms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radclr.data.dataset import Box
from radclr.errors import ConfigError, DataError
from radclr.transforms import (BrightnessContrast, Compose, CXRAugment, GaussianBlur, Preprocess, RandomHorizontalFlip,
                               RandomResizedCrop, RandomRotation, ROICrop, Sample, crop_matrix,
                               gaussian_blur, mean_box_size, rotation_matrix,
                               warp)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def square_sample(size=64, box=(36, 20, 12, 10)):
    x, y, w, h = box
    img = torch.full((1, size, size), 0.1)
    img[0, y:y + h, x:x + w] = 1.0
    mask = torch.zeros(size, size, dtype=torch.uint8)
    mask[y:y + h, x:x + w] = 1
    return Sample(img, mask, torch.tensor([list(map(float, box))]))


def bright_bbox(image, thr=0.55):
    ys, xs = torch.nonzero(image[0] > thr, as_tuple=True)
    return float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# --- reproducibility -------------------------------------------------------------------------------------
def test_same_generator_seed_same_output_and_global_rng_untouched():
    t = CXRAugment(48)
    s = square_sample()
    state = torch.get_rng_state()
    a, b, c = t.apply(s, gen(5)), t.apply(s, gen(5)), t.apply(s, gen(6))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.image, c.image)
    assert torch.equal(t(s.image, generator=gen(5)), a.image)


def test_random_transforms_need_an_explicit_generator():
    for t in (RandomResizedCrop(), RandomRotation(), RandomHorizontalFlip(), GaussianBlur(), BrightnessContrast(),
              CXRAugment()):
        with pytest.raises(ValueError, match="explicit torch.Generator"):
            t(torch.zeros(1, 16, 16))


def test_output_shapes_and_dtypes():
    s = square_sample()
    out = CXRAugment(32).apply(s, gen(0))
    assert out.image.shape == (1, 32, 32) and out.image.dtype == torch.float32
    assert out.mask.shape == (32, 32) and out.mask.dtype == torch.uint8
    assert out.boxes.dtype == torch.float32 and out.boxes.shape[1] == 4
    assert float(out.image.min()) >= 0 and float(out.image.max()) <= 1
    same = CXRAugment().apply(s, gen(0))
    assert same.image.shape == (1, 64, 64)
    multi = Sample(torch.rand(3, 40, 30), torch.zeros(2, 40, 30, dtype=torch.bool))
    out = CXRAugment((20, 16)).apply(multi, gen(1))
    assert out.image.shape == (3, 20, 16) and out.mask.shape == (2, 20, 16) and out.mask.dtype == torch.bool


# --- geometry: boxes and masks follow the content ------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_box_and_mask_follow_the_bright_square(seed):
    t = Compose([RandomResizedCrop(48, scale=(0.6, 1.0), contain_boxes=True), RandomRotation(10.0),
                 RandomHorizontalFlip(0.5)])
    out = t.apply(square_sample(), gen(seed))
    assert out.kept.tolist() == [0]
    bx, by, bw, bh = out.boxes[0].tolist()
    box = (bx, by, bx + bw, by + bh)
    bright = bright_bbox(out.image)
    # the transformed box covers the bright pixels (1 px tolerance for interpolation) ...
    assert box[0] <= bright[0] + 1 and box[1] <= bright[1] + 1 and box[2] >= bright[2] - 1 and box[3] >= bright[3] - 1
    # ... and is not much larger than them (a rotated box grows a little)
    assert iou(box, bright) > 0.6
    m = out.mask.bool()
    b = out.image[0] > 0.55
    assert (m & b).sum() / (m | b).sum() > 0.75


def test_rotation_and_flip_conventions():
    img = torch.arange(16.0).reshape(1, 4, 4)
    rotated = warp(Sample(img), rotation_matrix(90.0, (4, 4)), (4, 4)).image
    assert torch.equal(rotated, torch.rot90(img, 1, dims=(1, 2)))  # counter-clockwise on screen
    assert torch.equal(warp(Sample(img), crop_matrix(0, 0, 4, 4, (4, 4)), (4, 4)).image, img)  # identity exact
    flipped = RandomHorizontalFlip(p=1.0).apply(Sample(img, boxes=torch.tensor([[0.0, 1.0, 1.0, 2.0]])), gen(0))
    assert torch.equal(flipped.image, torch.flip(img, dims=[2]))
    assert flipped.boxes.tolist() == [[3.0, 1.0, 1.0, 2.0]]
    assert torch.equal(RandomRotation(0.0).apply(Sample(img), gen(0)).image, img)


def test_boxes_leaving_the_image_are_dropped_and_reported():
    img = torch.zeros(1, 40, 40)
    boxes = torch.tensor([[2.0, 2.0, 5.0, 5.0],      # left: leaves the crop
                          [25.0, 10.0, 6.0, 6.0],    # inside the crop
                          [18.0, 30.0, 6.0, 4.0]])   # straddles the crop edge x = 20: clipped
    out = warp(Sample(img, boxes=boxes), crop_matrix(20, 0, 20, 40, (40, 20)), (40, 20))  # right half, same scale
    assert out.kept.tolist() == [1, 2]
    assert out.boxes.tolist() == [[5.0, 10.0, 6.0, 6.0], [0.0, 30.0, 4.0, 4.0]]
    strict = warp(Sample(img, boxes=boxes), crop_matrix(20, 0, 20, 40, (40, 20)), (40, 20), min_visibility=0.7)
    assert strict.kept.tolist() == [1]  # the straddling box keeps only 4/6 of its area
    chained = warp(out, crop_matrix(0, 20, 20, 20, (20, 20)), (20, 20))  # kept indices refer to the original
    assert chained.kept.tolist() == [2]


def test_crop_keeps_minimum_area_and_contains_boxes():
    s = square_sample()
    crop = RandomResizedCrop(None, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3))
    g = gen(2)
    for _ in range(200):
        x0, y0, cw, ch = crop.params(s, g)
        assert cw * ch >= 0.6 * 64 * 64 * 0.95  # rounding of w, h
        assert 0 <= x0 and x0 + cw <= 64 and 0 <= y0 and y0 + ch <= 64
    keep = RandomResizedCrop(None, scale=(0.3, 0.5), contain_boxes=True)
    for seed in range(30):
        out = keep.apply(s, gen(seed))
        assert out.kept.tolist() == [0]
        bx, by, bw, bh = out.boxes[0].tolist()
        assert bx >= 0 and by >= 0 and bx + bw <= 64 + 1e-4 and by + bh <= 64 + 1e-4
        assert bw * bh >= 12 * 10 * 0.999  # a 0.3-0.5 area crop zoomed back to 64 px only enlarges the box
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(scale=(0.0, 1.0))


def test_intensity_transforms():
    img = torch.rand(1, 32, 32, generator=gen(3))
    s = Sample(img, torch.ones(32, 32, dtype=torch.bool), torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    out = BrightnessContrast(0.2, 0.2, p=1.0).apply(s, gen(4))
    assert not torch.equal(out.image, img) and float(out.image.min()) >= 0 and float(out.image.max()) <= 1
    assert torch.equal(out.mask, s.mask) and torch.equal(out.boxes, s.boxes)
    assert torch.equal(BrightnessContrast(p=0.0).apply(s, gen(4)).image, img)
    const = torch.full((1, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(const, 1.5), const)
    blurred = gaussian_blur(img, 1.0)
    assert blurred.shape == img.shape and float(blurred.std()) < float(img.std())
    assert float(blurred.mean()) == pytest.approx(float(img.mean()), abs=0.01)
    assert torch.equal(GaussianBlur(p=0.0).apply(s, gen(1)).image, img)


# --- preprocessing ---------------------------------------------------------------------------------------
def test_preprocess_intensity_policies():
    u8 = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    out = Preprocess(2, intensity="fixed", max_value=255)(u8)
    assert out.shape == (1, 2, 2) and out.dtype == torch.float32
    assert out.flatten().tolist() == pytest.approx([0.0, 1.0, 0.2, 0.4])
    img = torch.tensor([[10.0, 20.0], [30.0, 50.0]])
    assert Preprocess(2, intensity="minmax")(img).flatten().tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0])
    assert torch.equal(Preprocess(2, intensity="minmax")(torch.full((2, 2), 7.0)), torch.zeros(1, 2, 2))
    spikes = torch.zeros(100, 100)
    spikes[:50] = 100.0
    spikes[0, 0] = 1e6  # burnt-in outlier
    pct = Preprocess(100, intensity="percentile")(spikes)
    assert float(pct[0, 60, 0]) == 0.0 and float(pct[0, 10, 10]) == pytest.approx(1.0)
    with pytest.raises(DataError, match="NaN"):
        Preprocess(2)(torch.tensor([[float("nan"), 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="intensity"):
        Preprocess(2, intensity="zscore")
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\)"):
        Preprocess(2)(torch.zeros(2, 3, 4, 4))


def test_preprocess_resize_antialias_mask_and_boxes():
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2).float() * 255
    small = Preprocess(16)(checker)
    assert small.shape == (1, 16, 16)
    assert float(small.min()) > 0.4 and float(small.max()) < 0.6  # antialiased: no aliasing pattern
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[16:32, 32:48] = True
    s = Sample(checker.unsqueeze(0), mask, torch.tensor([[32.0, 16.0, 16.0, 16.0]]))
    out = Preprocess(32).apply(s)
    assert out.mask.dtype == torch.bool and out.mask.shape == (32, 32)
    assert out.boxes.tolist() == [[16.0, 8.0, 8.0, 8.0]]
    assert torch.equal(out.mask.nonzero().min(0).values, torch.tensor([8, 16]))
    assert out.kept.tolist() == [0]


# --- ROI crops (seed 004) ----------------------------------------------------------------------------------
def test_roi_crop_deterministic_and_random():
    ramp = torch.arange(100.0).repeat(100, 1).unsqueeze(0) / 100.0  # value = x / 100
    roi = ROICrop(output_size=(20, 30), crop_scale=(0.5, 0.9))
    out = roi(ramp, torch.tensor([40.0, 10.0, 30.0, 20.0]))
    assert out.shape == (1, 20, 30)
    assert float(out.min()) == pytest.approx(0.40, abs=0.006) and float(out.max()) == pytest.approx(0.69, abs=0.006)
    rnd = roi(ramp, Box(40.0, 10.0, 30.0, 20.0), generator=gen(1))
    assert rnd.shape == (1, 20, 30) and not torch.equal(rnd, out)
    assert float(rnd.min()) >= 0.40 - 0.006 and float(rnd.max()) <= 0.69 + 0.006  # stays inside the ROI
    span = float(rnd.max() - rnd.min())
    assert 0.29 * np.sqrt(0.5) - 0.02 <= span <= 0.29 * np.sqrt(0.9) + 0.02
    assert torch.equal(rnd, roi(ramp, Box(40.0, 10.0, 30.0, 20.0), generator=gen(1)))
    clipped = roi(ramp, torch.tensor([90.0, 10.0, 30.0, 20.0]))  # clipped to the image
    assert float(clipped.min()) >= 0.9 - 0.006
    with pytest.raises(DataError, match="no area inside"):
        roi(ramp, torch.tensor([150.0, 10.0, 30.0, 20.0]))
    stack = torch.rand(10, 64, 64)  # seed 004's 3-D tumour stack: slices as channels
    assert ROICrop(32)(stack, torch.tensor([8.0, 8.0, 40.0, 40.0]), generator=gen(0)).shape == (10, 32, 32)


def test_mean_box_size_and_box_conversion():
    boxes = [Box(0, 0, 10, 20), Box(5, 5, 30, 40)]
    assert mean_box_size(boxes) == (30, 20)
    assert mean_box_size(torch.tensor([[b.x, b.y, b.w, b.h] for b in boxes])) == (30, 20)
    with pytest.raises(DataError):
        mean_box_size(torch.zeros(0, 4))


def test_sample_validation():
    with pytest.raises(ValueError, match="float tensor"):
        Sample(torch.zeros(1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="mask"):
        Sample(torch.zeros(1, 4, 4), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="boxes"):
        Sample(torch.zeros(1, 4, 4), boxes=torch.zeros(2, 3))


def test_sample_accepts_box_objects_and_empty_boxes():
    s = Sample(torch.zeros(1, 8, 8), boxes=[Box(1, 2, 3, 4, "Mass")])
    assert s.boxes.tolist() == [[1.0, 2.0, 3.0, 4.0]] and s.kept.tolist() == [0]
    empty = CXRAugment(8).apply(Sample(torch.zeros(1, 8, 8), boxes=torch.zeros(0, 4)), gen(0))
    assert empty.boxes.shape == (0, 4) and empty.kept.tolist() == []


def test_cxr_augment_config_errors():
    assert [type(t).__name__ for t in CXRAugment().transforms] == [
        "RandomResizedCrop", "RandomRotation", "GaussianBlur", "BrightnessContrast"]  # no flip by default
    assert "RandomHorizontalFlip" in [type(t).__name__ for t in CXRAugment(hflip=True).transforms]
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['flip'\]"):
        CXRAugment(flip=True)
    with pytest.raises(ConfigError, match="scale"):
        CXRAugment(min_area=0.0)


def test_seed004_roi_view_is_the_roi_crop_alone():
    """Seed 004 §2.3: ROI crop resized to the mean ROI size + one random crop resized back -- nothing else: with
    crop: false and the other steps off the augmentation is the identity, the randomness is the ROI crop's."""
    paper = CXRAugment(crop=False, rotation=0, blur_p=0, jitter_p=0)
    assert paper.transforms == []
    img = torch.rand(1, 24, 20)
    assert torch.equal(paper(img, generator=gen(3)), img)
    roi = ROICrop((8, 6))
    a, b = roi(img, [4, 4, 12, 16], generator=gen(1)), roi(img, [4, 4, 12, 16], generator=gen(2))
    assert a.shape == (1, 8, 6) and not torch.equal(a, b)  # the random crop inside the ROI


def test_percentile_normalisation_of_an_image_above_torch_quantile_limit():
    from radclr.transforms.preprocess import normalise_intensity

    img = torch.arange(4200 * 4200, dtype=torch.float32).reshape(4200, 4200)  # > 2^24 pixels
    out = normalise_intensity(img, "percentile")
    lo, hi = np.quantile(img.numpy().ravel(), [0.005, 0.995])
    assert out.shape == img.shape and float(out.min()) == 0.0 and float(out.max()) == 1.0
    assert float(out[2100, 0]) == pytest.approx((2100 * 4200 - lo) / (hi - lo), rel=1e-5)
