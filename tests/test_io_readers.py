"""radclr.io readers: values against hand-computed references, header-only sizes, and every bad-input case."""

from __future__ import annotations

import numpy as np
import pytest
from data_factories import gradient, truncate, write_bomb_png, write_dicom, write_jpeg, write_png, write_sitk

from radclr.errors import ImageReadError
from radclr.io import LoadedImage, image_size, read_image
from radclr.io.readers import ImageConversionWarning, image_kind, read_mask


# --------------------------------------------------------------------------------------------- PNG / JPEG
def test_png_8bit_exact(tmp_path):
    a = gradient(40, 48)
    img = read_image(write_png(tmp_path / "a.png", a))
    assert isinstance(img, LoadedImage)
    assert img.array.dtype == np.float32 and img.shape == (40, 48)
    np.testing.assert_array_equal(img.array, a.astype(np.float32))
    assert img.meta["bit_depth"] == 8 and img.meta["format"] == "png" and img.spacing is None
    assert image_size(tmp_path / "a.png") == (40, 48)


def test_png_16bit_kept_in_scale(tmp_path):
    a = (gradient(30, 20, 255).astype(np.uint16) * 257)  # 0..65535
    a[0, 0] = 65535
    img = read_image(write_png(tmp_path / "b16.png", a))
    assert img.meta["bit_depth"] == 16
    assert img.array.max() == 65535.0
    np.testing.assert_array_equal(img.array, a.astype(np.float32))


def test_rgb_png_to_luma_with_warning(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 50, 200
    path = write_png(tmp_path / "rgb.png", rgb)
    with pytest.warns(ImageConversionWarning, match="rgb.png.*grayscale"):
        img = read_image(path)
    # ITU-R 601: 0.299*100 + 0.587*50 + 0.114*200 = 82.05
    np.testing.assert_allclose(img.array, 82.05, rtol=1e-6)
    assert img.meta["converted"] == "luma"


def test_rgb_with_identical_channels_is_exact(tmp_path):
    g = gradient(10, 12)
    path = write_png(tmp_path / "gray_rgb.png", np.stack([g, g, g], -1))
    with pytest.warns(ImageConversionWarning, match="identical channels"):
        img = read_image(path)
    np.testing.assert_array_equal(img.array, g.astype(np.float32))


def test_rgba_and_palette_png(tmp_path):
    g = gradient(8, 9)
    rgba = np.stack([g, g, g, np.full_like(g, 255)], -1)
    with pytest.warns(ImageConversionWarning):
        img = read_image(write_png(tmp_path / "rgba.png", rgba, mode="RGBA"))
    np.testing.assert_array_equal(img.array, g.astype(np.float32))
    from PIL import Image

    Image.fromarray(g).convert("P").save(tmp_path / "pal.png")
    with pytest.warns(ImageConversionWarning, match="pal.png"):
        img = read_image(tmp_path / "pal.png")
    assert img.shape == (8, 9) and img.meta["mode"] == "P"


def test_jpeg_8bit(tmp_path):
    a = np.full((32, 32), 120, np.uint8)
    img = read_image(write_jpeg(tmp_path / "x.jpeg", a))
    assert img.meta["format"] == "jpeg" and img.shape == (32, 32)
    assert np.abs(img.array - 120).max() <= 2  # lossy, but a flat image survives almost exactly


def test_truncated_png_raises_but_header_size_works(tmp_path):
    path = truncate(write_png(tmp_path / "t.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)), 0.5)
    assert image_size(path) == (64, 64)  # header only: the truncation is not seen
    with pytest.raises(ImageReadError, match="t.png.*(truncated|corrupt)") as e:
        read_image(path)
    assert e.value.path == str(path)


def test_corrupt_bytes_missing_unknown_and_directory(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png at all")
    with pytest.raises(ImageReadError, match="bad.png"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "x.gif2").write_bytes(b"GIF89a")
    with pytest.raises(ImageReadError, match="unknown image format '.gif2'"):
        read_image(tmp_path / "x.gif2")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


# --------------------------------------------------------------------------------------------- DICOM
def test_decompression_bomb_header_is_an_image_read_error(tmp_path):
    path = write_bomb_png(tmp_path / "bomb.png")
    for fn in (read_image, image_size, read_mask):
        with pytest.raises(ImageReadError) as e:
            fn(path)
        assert e.value.path == str(path) and "enormous image" in e.value.reason
        assert "10,000,000,000 pixels" in str(e.value)


def test_dicom_plain_values_and_spacing(tmp_path):
    a = gradient(20, 30, 4095, np.uint16)
    img = read_image(write_dicom(tmp_path / "a.dcm", a, pixel_spacing=(0.2, 0.3)))
    np.testing.assert_array_equal(img.array, a.astype(np.float32))
    assert img.spacing == (0.2, 0.3)
    assert img.meta["format"] == "dicom" and img.meta["photometric"] == "MONOCHROME2"
    assert image_size(tmp_path / "a.dcm") == (20, 30)


def test_dicom_imager_pixel_spacing_used_when_no_pixel_spacing(tmp_path):
    img = read_image(write_dicom(tmp_path / "a.dcm", gradient(8, 8, 100, np.uint16), imager_spacing=(0.139, 0.14)))
    assert img.spacing == (0.139, 0.14)


def test_dicom_rescale_slope_intercept(tmp_path):
    a = gradient(10, 12, 4095, np.uint16)
    img = read_image(write_dicom(tmp_path / "r.dcm", a, slope=2.0, intercept=-1024.0))
    np.testing.assert_allclose(img.array, a * 2.0 - 1024.0)
    assert img.meta["rescale"] == (2.0, -1024.0)


def test_dicom_monochrome1_inverted(tmp_path):
    a = gradient(10, 12, 4095, np.uint16)
    img = read_image(write_dicom(tmp_path / "m1.dcm", a, photometric="MONOCHROME1", bits_stored=12))
    # stored range 0..4095 -> inverted inside it
    np.testing.assert_array_equal(img.array, (4095 - a).astype(np.float32))
    assert img.meta["inverted"] is True


def test_dicom_monochrome1_with_rescale(tmp_path):
    a = gradient(10, 12, 1023, np.uint16)
    img = read_image(write_dicom(tmp_path / "m1r.dcm", a, photometric="MONOCHROME1", bits_stored=10, slope=0.5,
                                 intercept=10.0))
    lo, hi = 10.0, 1023 * 0.5 + 10.0
    np.testing.assert_allclose(img.array, lo + hi - (a * 0.5 + 10.0))


def test_dicom_window_applied(tmp_path):
    a = gradient(10, 12, 4095, np.uint16)
    c, w = 2000.0, 1001.0
    img = read_image(write_dicom(tmp_path / "w.dcm", a, window=(c, w)))
    # DICOM PS3.3 C.11.2.1.2.1 (LINEAR), output range 0..4095
    x = a.astype(np.float64)
    ref = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0,
                   np.where(x > c - 0.5 + (w - 1) / 2, 4095.0, ((x - (c - 0.5)) / (w - 1) + 0.5) * 4095.0))
    np.testing.assert_allclose(img.array, ref, rtol=1e-5, atol=1e-3)
    assert img.meta["voi"] == "window"
    raw = read_image(tmp_path / "w.dcm", apply_voi=False)
    np.testing.assert_array_equal(raw.array, a.astype(np.float32))


def test_dicom_voi_lut_sequence(tmp_path):
    a = (np.arange(12, dtype=np.uint16) % 4).reshape(3, 4)
    lut = [0, 1000, 2000, 65535]
    img = read_image(write_dicom(tmp_path / "lut.dcm", a, voi_lut=(4, 0, lut)))
    np.testing.assert_array_equal(img.array, np.asarray(lut, np.float32)[a])
    assert img.meta["voi"] == "lut"


def test_dicom_compressed_rle_and_jpeg2000_round_trip(tmp_path):
    from pydicom.uid import JPEG2000Lossless, RLELossless

    a = gradient(32, 40, 4095, np.uint16)
    for uid in (RLELossless, JPEG2000Lossless):
        img = read_image(write_dicom(tmp_path / f"{uid.name[:4]}.dcm", a, compress=uid))
        np.testing.assert_array_equal(img.array, a.astype(np.float32))
        assert img.meta["transfer_syntax"] == str(uid)


def test_dicom_unsupported_transfer_syntax_named(tmp_path):
    path = write_dicom(tmp_path / "mpeg.dcm", gradient(8, 8, 100, np.uint16), transfer_syntax="1.2.840.10008.1.2.4.100")
    with pytest.raises(ImageReadError, match="MPEG2 Main Profile.*1.2.840.10008.1.2.4.100.*not supported"):
        read_image(path)


def test_dicom_corrupt_compressed_data(tmp_path):
    path = write_dicom(tmp_path / "jls.dcm", gradient(8, 8, 100, np.uint16), transfer_syntax="1.2.840.10008.1.2.4.80")
    with pytest.raises(ImageReadError, match="corrupt compressed pixel data.*JPEG-LS"):
        read_image(path)


def test_dicom_truncated_pixel_data_and_header(tmp_path):
    path = write_dicom(tmp_path / "t.dcm", gradient(64, 64, 4095, np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    with pytest.raises(ImageReadError, match="t.dcm.*(truncated|corrupt)"):
        read_image(path)
    path.write_bytes(data[:300])
    with pytest.raises(ImageReadError, match="t.dcm"):
        read_image(path)
    not_dicom = tmp_path / "n.dcm"
    not_dicom.write_bytes(b"\x00" * 50)
    with pytest.raises(ImageReadError, match="n.dcm"):
        read_image(not_dicom)


def test_dicom_without_preamble_and_without_suffix(tmp_path):
    a = gradient(8, 9, 200, np.uint16)
    img = read_image(write_dicom(tmp_path / "nopre.dcm", a, preamble=False))
    np.testing.assert_array_equal(img.array, a.astype(np.float32))
    p = write_dicom(tmp_path / "IM0001", a)
    assert image_kind(p) == "dicom"
    np.testing.assert_array_equal(read_image(p).array, a.astype(np.float32))


def test_dicom_multiframe_is_a_volume(tmp_path):
    a = np.stack([gradient(8, 9, 100, np.uint16) + k for k in range(3)])
    img = read_image(write_dicom(tmp_path / "mf.dcm", a, frames=3))
    assert img.shape == (3, 8, 9)
    np.testing.assert_array_equal(img.array, a.astype(np.float32))


# --------------------------------------------------------------------------------------------- NIfTI / NRRD / MHA
def test_nifti_3d_spacing_in_array_order(tmp_path):
    vol = np.arange(2 * 5 * 7, dtype=np.int16).reshape(2, 5, 7)
    img = read_image(write_sitk(tmp_path / "v.nii.gz", vol, spacing_xyz=(0.5, 0.7, 2.0)))
    assert img.shape == (2, 5, 7)
    np.testing.assert_array_equal(img.array, vol.astype(np.float32))
    assert img.spacing == pytest.approx((2.0, 0.7, 0.5))
    assert img.meta["format"] == "nifti"
    assert image_size(tmp_path / "v.nii.gz") == (5, 7)


@pytest.mark.parametrize("suffix,fmt", [(".nii", "nifti"), (".nrrd", "nrrd"), (".mha", "mha")])
def test_2d_volume_formats(tmp_path, suffix, fmt):
    a = gradient(6, 9, 1000, np.uint16)
    img = read_image(write_sitk(tmp_path / f"x{suffix}", a, spacing_xyz=(0.3, 0.4)))
    assert img.shape == (6, 9) and img.meta["format"] == fmt
    np.testing.assert_array_equal(img.array, a.astype(np.float32))
    assert img.spacing == pytest.approx((0.4, 0.3))


def test_corrupt_nifti(tmp_path):
    p = tmp_path / "bad.nii"
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(ImageReadError, match="bad.nii"):
        read_image(p)


# --------------------------------------------------------------------------------------------- masks
def test_read_mask_png_any_channel_and_nifti(tmp_path):
    m = np.zeros((5, 6, 3), np.uint8)
    m[1, 2, 2] = 10  # only blue
    m[3, 4, 0] = 1
    mask = read_mask(write_png(tmp_path / "m.png", m))
    assert mask.dtype == bool and mask.sum() == 2 and mask[1, 2] and mask[3, 4]
    lab = np.zeros((4, 5), np.uint8)
    lab[1:3, 1:4] = 2
    mask = read_mask(write_sitk(tmp_path / "m.nii.gz", lab))
    assert mask.shape == (4, 5) and mask.sum() == 6
