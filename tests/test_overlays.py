"""Seed 001 Fig. 5 overlays: files are written, and the yellow (ground truth) and red (prediction) box edges sit
at the expected pixels of the saved PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from radclr.cam.boxes import ScoredBox
from radclr.data.dataset import Box
from radclr.visualize.overlays import (
    OverlayExample,
    overlay_grid,
    overlay_title,
    save_overlay_png,
    title_band_px,
)

YELLOW, RED = np.array([255, 255, 0]), np.array([255, 0, 0])


def is_color(px, color, tol=40):
    return np.abs(px[:3].astype(int) - color).max() <= tol


def scene(h=120, w=160):
    rng = np.random.default_rng(0)
    image = rng.random((h, w)) * 0.3
    cam = np.zeros((7, 7))
    cam[2:4, 2:4] = 1.0
    return image, cam


def read_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_png_has_native_size_and_boxes_on_their_pixel_edges(tmp_path):
    image, cam = scene()
    gt, pred = Box(20, 30, 40, 50, "Mass"), ScoredBox(90, 10, 30, 20, 0.8)
    path = save_overlay_png(image, cam, [gt], [pred], tmp_path / "sub" / "one.png")
    assert path.exists() and path.stat().st_size > 0
    rgb = read_rgb(path)
    assert rgb.shape == (120, 160, 3)
    # a 2-px edge on the pixel boundary x covers columns x-1 and x
    for r in (40, 55, 70):  # rows along the left and right edges of the GT box
        assert is_color(rgb[r, 20], YELLOW) and is_color(rgb[r, 59], YELLOW), r
        assert not is_color(rgb[r, 40], YELLOW)  # box interior is not painted
    for c in (30, 45):  # top (y=30) and bottom (y=80) edges
        assert is_color(rgb[30, c], YELLOW) and is_color(rgb[79, c], YELLOW)
    for r in (15, 22):
        assert is_color(rgb[r, 90], RED) and is_color(rgb[r, 119], RED)
    assert is_color(rgb[10, 100], RED) and is_color(rgb[29, 100], RED)
    # no red or yellow far from every box
    far = rgb[100:118, 100:158].reshape(-1, 3)
    assert not any(is_color(p, RED) or is_color(p, YELLOW) for p in far)


def test_heatmap_is_visible_where_the_cam_is_high(tmp_path):
    image, cam = scene()
    rgb = read_rgb(save_overlay_png(np.zeros((120, 160)), cam, [], [], tmp_path / "heat.png", alpha=0.5))
    # CAM cells (2..3, 2..3) of 7x7 -> rows ~34-68, cols ~46-91; jet high = red dominant, low = blue dominant
    hot, cold = rgb[51, 68].astype(int), rgb[110, 10].astype(int)
    assert hot[0] > hot[2] + 40 and cold[2] > cold[0] + 40
    plain = read_rgb(save_overlay_png(image, None, [], [], tmp_path / "plain.png"))
    assert (plain[..., 0] == plain[..., 2]).all()  # no heatmap: gray only


def test_title_adds_a_band_on_top_and_shifts_the_image(tmp_path):
    image, cam = scene()
    path = save_overlay_png(image, cam, [(20, 30, 40, 50)], [], tmp_path / "t.png", title=overlay_title("Mass", 0.873))
    rgb = read_rgb(path)
    band = title_band_px(120)
    assert rgb.shape == (120 + band, 160, 3)
    assert is_color(rgb[band + 55, 20], YELLOW)
    assert (rgb[:band] < 128).any()  # the title text is drawn in the band
    assert overlay_title("Mass", 0.873) == "Mass  p=0.87" and overlay_title("Mass") == "Mass"


def test_torch_inputs_and_single_channel_images(tmp_path):
    image = torch.rand(1, 64, 64)
    cam = torch.rand(1, 8, 8)
    rgb = read_rgb(save_overlay_png(image, cam, [], [(8, 8, 16, 16)], tmp_path / "t.png"))
    assert rgb.shape == (64, 64, 3) and is_color(rgb[16, 8], RED)


def test_grid_writes_a_fig5_style_figure(tmp_path):
    image, cam = scene()
    examples = [
        OverlayExample(image, cam, [(20, 30, 40, 50)], [(25, 30, 40, 45)], "Mass", 0.91),
        {"image": image, "cam": cam, "gt_boxes": [], "pred_boxes": [(5, 5, 10, 10)], "finding": "Nodule",
         "probability": 0.4},
        OverlayExample(image),
    ]
    fig = overlay_grid(examples, ncols=2, path=tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert len(fig.axes) == 2 * 2 * 2
    titles = [ax.get_title() for ax in fig.axes]
    assert "Mass  p=0.91" in titles and "Nodule  p=0.40" in titles
    rgb = read_rgb(tmp_path / "grid.png")
    assert any(is_color(p, YELLOW, tol=10) for p in rgb.reshape(-1, 3)[::7])
    with pytest.raises(ValueError, match="at least one"):
        overlay_grid([])


def test_bad_input_raises(tmp_path):
    with pytest.raises(ValueError, match="grayscale"):
        save_overlay_png(np.zeros((10, 10, 3)), None, [], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="single"):
        save_overlay_png(np.zeros((10, 10)), np.zeros((2, 3, 3)), [], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="alpha"):
        save_overlay_png(np.zeros((10, 10)), None, [], [], tmp_path / "x.png", alpha=2.0)
    with pytest.raises(ValueError, match="NaN"):
        save_overlay_png(np.full((10, 10), np.nan), None, [], [], tmp_path / "x.png")
