"""Tiny fabricated copies of real file layouts (torchxrayvision's habit): small but real PNG/JPEG/DICOM/NIfTI
files written with Pillow, pydicom and SimpleITK into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


# ---------------------------------------------------------------------------------------------------------
# single files
# ---------------------------------------------------------------------------------------------------------
def gradient(h: int = 40, w: int = 48, hi: int = 255, dtype=np.uint8) -> np.ndarray:
    """A deterministic non-constant test pattern with values 0..hi."""
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy * 7 + xx * 3) % (hi + 1)).astype(dtype)


def write_png(path, array: np.ndarray, mode: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(array)
    if a.dtype == np.uint16:
        Image.fromarray(a).save(path)  # Pillow writes a 16-bit grayscale PNG from I;16
    else:
        Image.fromarray(a, mode=mode).save(path) if mode else Image.fromarray(a).save(path)
    return path


def write_jpeg(path, array: np.ndarray, quality: int = 95) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, quality=quality)
    return path


def truncate(path, keep: float = 0.5) -> Path:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def write_bomb_png(path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny but well-formed PNG whose header claims ``width x height`` pixels (a "decompression bomb": Pillow
    refuses to open it)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    return path


def write_dicom(path, stored: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int = 12,
                signed: bool = False, slope: float | None = None, intercept: float | None = None,
                window: tuple[float, float] | None = None, voi_lut: tuple[int, int, list[int]] | None = None,
                pixel_spacing=None, imager_spacing=None, transfer_syntax=None, compress=None,
                preamble: bool = True, frames: int | None = None) -> Path:
    """A DX DICOM with the given stored values (uint16/int16). ``compress``: a pydicom transfer syntax UID to
    encode with (RLE Lossless, JPEG 2000 Lossless); ``transfer_syntax``: claim a syntax without encoding."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = np.asarray(stored)
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    fm.MediaStorageSOPInstanceUID = generate_uid()
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID, ds.SOPInstanceUID = fm.MediaStorageSOPClassUID, fm.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.ViewPosition = "DX", "P1", "PA"
    ds.Rows, ds.Columns = stored.shape[-2:]
    if frames:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept or 0.0, "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        from pydicom.dataset import Dataset as Item

        n, first, data = voi_lut
        item = Item()
        item.add_new(0x00283002, "US", [n, first, 16])  # LUT Descriptor
        item.add_new(0x00283006, "US", list(data))  # LUT Data
        ds.VOILUTSequence = [item]
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if imager_spacing is not None:
        ds.ImagerPixelSpacing = list(imager_spacing)
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
    if compress is not None:
        ds.compress(compress)
    if transfer_syntax is not None:
        from pydicom.encaps import encapsulate

        ds.file_meta.TransferSyntaxUID = transfer_syntax
        ds.PixelData = encapsulate([b"\xff\xd8 not really encoded \xff\xd9"])
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=preamble)
    return path


def write_sitk(path, array: np.ndarray, spacing_xyz=None) -> Path:
    import SimpleITK as sitk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(np.asarray(array))
    if spacing_xyz is not None:
        img.SetSpacing(tuple(float(s) for s in spacing_xyz))
    sitk.WriteImage(img, str(path))
    return path


# ---------------------------------------------------------------------------------------------------------
# folder-format datasets
# ---------------------------------------------------------------------------------------------------------
def make_folder(root, rows: list[tuple], boxes: list[tuple] | None = None, *, size=(64, 64),
                extra: dict | None = None, write_images: bool = True, with_size: bool = True) -> Path:
    """A folder-format dataset. ``rows``: ``(image, patient_id, labels)``; ``boxes``: ``(image, label, x, y, w,
    h)``; images are 8-bit gradient PNGs of ``size`` (H, W)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, columns=["image", "patient_id", "labels"])
    if with_size:
        df["height"], df["width"] = size
    for k, v in (extra or {}).items():
        df[k] = v
    if write_images:
        for i, name in enumerate(df["image"]):
            if "/" in name and (name.startswith("..") or name.startswith("/")):
                continue
            write_png(root / "images" / name, np.roll(gradient(*size), i, axis=1))
    df.to_csv(root / "labels.csv", index=False)
    if boxes is not None:
        pd.DataFrame(boxes, columns=["image", "label", "x", "y", "w", "h"]).to_csv(root / "boxes.csv", index=False)
    return root


def small_folder(root) -> Path:
    """Six images of four patients, two findings, three boxes -- a clean dataset."""
    rows = [("a.png", "p1", "Mass"), ("b.png", "p1", "No Finding"), ("c.png", "p2", "Mass|Nodule"),
            ("d.png", "p3", "Nodule"), ("e.png", "p4", "No Finding"), ("f.png", "p4", "")]
    boxes = [("a.png", "Mass", 10, 12, 20, 15), ("c.png", "Mass", 30, 30, 10, 10), ("c.png", "Nodule", 5, 5, 4, 4)]
    return make_folder(root, rows, boxes)


# ---------------------------------------------------------------------------------------------------------
# official layouts of datasets not kept locally
# ---------------------------------------------------------------------------------------------------------
NIH_HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
              "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]


def make_nih(root, *, image_size: int = 256, with_missing: bool = False) -> Path:
    """Data_Entry_2017_v2020.csv + BBox_List_2017.csv (its odd headers and 3 empty trailing columns) +
    images_001/images and images_002/images; PNGs written at ``image_size`` (a resized copy of the 1024 px
    release)."""
    root = Path(root)
    entries = [
        ("00000001_000.png", "Cardiomegaly", 0, 1, 57, "M", "PA", 2682, 2749, 0.143, 0.143),
        ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 1, 58, "M", "PA", 2894, 2729, 0.143, 0.143),
        ("00000002_000.png", "No Finding", 0, 2, 81, "M", "PA", 2500, 2048, 0.171, 0.171),
        ("00000003_000.png", "Infiltration|Mass", 0, 3, 74, "F", "AP", 2048, 2500, 0.168, 0.168),
        ("00000004_000.png", "Nodule", 0, 4, 82, "M", "AP", 2500, 2048, 0.168, 0.168),
    ]
    if with_missing:
        entries.append(("00000005_000.png", "Hernia", 0, 5, 70, "F", "PA", 2500, 2048, 0.168, 0.168))
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(entries, columns=NIH_HEADER).to_csv(root / "Data_Entry_2017_v2020.csv", index=False)
    for k, e in enumerate(entries[:5]):
        folder = root / ("images_001" if k < 3 else "images_002") / "images"
        write_png(folder / e[0], gradient(image_size, image_size))
    bbox = pd.DataFrame([
        ("00000003_000.png", "Infiltrate", 512.0, 256.0, 128.0, 64.0, "", "", ""),
        ("00000003_000.png", "Mass", 100.0, 200.0, 300.0, 100.0, "", "", ""),
        ("00000004_000.png", "Nodule", 1000.0, 1000.0, 48.0, 48.0, "", "", ""),  # partly outside 1024
    ], columns=["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]", "Unnamed: 6", "Unnamed: 7", "Unnamed: 8"])
    bbox.to_csv(root / "BBox_List_2017.csv", index=False)
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000002_000.png\n")
    (root / "test_list.txt").write_text("00000003_000.png\n00000004_000.png\n")
    return root


def make_rsna(root) -> Path:
    """stage_2_train_labels.csv (several rows = several boxes) + detailed class info + DICOMs."""
    root = Path(root)
    rows = [("aaa-1", 100, 150, 200, 250, 1), ("aaa-1", 600, 140, 180, 300, 1), ("bbb-2", "", "", "", "", 0),
            ("ccc-3", "", "", "", "", 0), ("ddd-4", 900, 900, 300, 300, 1)]
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["patientId", "x", "y", "width", "height", "Target"]).to_csv(
        root / "stage_2_train_labels.csv", index=False)
    pd.DataFrame([("aaa-1", "Lung Opacity"), ("aaa-1", "Lung Opacity"), ("bbb-2", "Normal"),
                  ("ccc-3", "No Lung Opacity / Not Normal"), ("ddd-4", "Lung Opacity")],
                 columns=["patientId", "class"]).to_csv(root / "stage_2_detailed_class_info.csv", index=False)
    for pid in ("aaa-1", "bbb-2", "ccc-3", "ddd-4"):
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", gradient(1024, 1024, 255).astype(np.uint16),
                    bits_stored=8, pixel_spacing=(0.168, 0.168))
    return root


CHEXPERT_COLUMNS = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
                    "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia",
                    "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
                    "Support Devices"]


def make_chexpert(root) -> Path:
    """CheXpert-v1.0-small/{train,valid}.csv with Paths prefixed by the folder name + JPEGs."""
    root = Path(root) / "CheXpert-v1.0-small"
    root.mkdir(parents=True, exist_ok=True)
    blank13 = [""] * 13

    def row(path, sex, age, fl, appa, nf, values):
        return [f"CheXpert-v1.0-small/{path}", sex, age, fl, appa, nf] + values

    v1 = list(blank13)
    v1[1], v1[9] = "1.0", "-1.0"  # Cardiomegaly 1, Pleural Effusion uncertain
    v2 = list(blank13)
    v2[12] = "1.0"  # Support Devices only
    v3 = list(blank13)
    v3[6] = "0.0"
    train = [row("train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP", "", v1),
             row("train/patient00001/study1/view2_lateral.jpg", "Female", 68, "Lateral", "", "", v1),
             row("train/patient00002/study2/view1_frontal.jpg", "Male", 87, "Frontal", "PA", "1.0", v2)]
    valid = [row("valid/patient64541/study1/view1_frontal.jpg", "Male", 73, "Frontal", "AP", "", v3)]
    pd.DataFrame(train, columns=CHEXPERT_COLUMNS).to_csv(root / "train.csv", index=False)
    pd.DataFrame(valid, columns=CHEXPERT_COLUMNS).to_csv(root / "valid.csv", index=False)
    for r in train + valid:
        write_jpeg(root / r[0].split("/", 1)[1], gradient(40, 48))
    return root


def make_kermany(root) -> Path:
    root = Path(root)
    files = ["train/NORMAL/IM-0115-0001.jpeg", "train/NORMAL/NORMAL2-IM-0383-0001.jpeg",
             "train/PNEUMONIA/person12_bacteria_46.jpeg", "train/PNEUMONIA/person12_bacteria_47.jpeg",
             "train/PNEUMONIA/person1_virus_6.jpeg", "test/NORMAL/IM-0001-0001.jpeg",
             "test/PNEUMONIA/person100_bacteria_475.jpeg"]
    for f in files:
        write_jpeg(root / f, gradient(40, 48))
    return root


COVID_COLUMNS = ["patientid", "offset", "sex", "age", "finding", "RT_PCR_positive", "survival", "view", "modality",
                 "date", "location", "folder", "filename", "doi", "url", "license", "clinical_notes", "other_notes"]


def make_covid(root) -> Path:
    root = Path(root)
    rows = [
        ("2", 0, "M", 65, "Pneumonia/Viral/COVID-19", "Y", "Y", "PA", "X-ray", "2020", "China", "images", "a.jpg"),
        ("2", 3, "M", 65, "Pneumonia/Viral/COVID-19", "Y", "Y", "AP Supine", "X-ray", "2020", "China", "images", "b.png"),
        ("3", 0, "F", 50, "Pneumonia/Bacterial/Streptococcus", "", "", "AP semi erect", "X-ray", "", "", "images", "c.jpeg"),
        ("4", 0, "F", 33, "No Finding", "", "", "PA", "X-ray", "", "", "images", "d.png"),
        ("5", 0, "M", 40, "Pneumonia/Viral/COVID-19", "", "", "Axial", "CT", "", "", "volumes", "e.nii.gz"),
        ("6", 0, "M", 41, "Pneumonia/Viral/COVID-19", "", "", "L", "X-ray", "", "", "images", "f.png"),
        ("7", 0, "M", 42, "todo", "", "", "PA", "X-ray", "", "", "images", "g.png"),
    ]
    df = pd.DataFrame([r + ("doi", "url", "CC BY", "", "") for r in rows], columns=COVID_COLUMNS)
    root.mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "metadata.csv", index=False)
    for r in rows:
        if r[11] == "images":
            name = r[12]
            (write_jpeg if name.endswith(("jpg", "jpeg")) else write_png)(root / "images" / name, gradient(40, 48))
    return root


# ---------------------------------------------------------------------------------------------------------
# a single-label (multi-class) folder dataset
# ---------------------------------------------------------------------------------------------------------
KIDNEY = {"Mass": "ccRCC", "Nodule": "pRCC", "Effusion": "chRCC", "Infiltration": "oncocytoma"}


def kidney_like_folder(root, n: int = 48, seed: int = 1, size: int = 64) -> Path:
    """A 4-class folder dataset: single-lesion phantoms (one lesion type per image, exact boxes) whose classes are
    renamed like seed 004's kidney tumour types (ccRCC, pRCC, chRCC, oncocytoma)."""
    from radclr.data.phantom_classes import write_single_label_phantoms

    root = Path(root)
    write_single_label_phantoms(root, n=n, size=size, seed=seed)
    labels = pd.read_csv(root / "labels.csv")
    labels["labels"] = labels["labels"].map(KIDNEY)
    labels.to_csv(root / "labels.csv", index=False)
    boxes = pd.read_csv(root / "boxes.csv")
    boxes["label"] = boxes["label"].map(KIDNEY)
    boxes.to_csv(root / "boxes.csv", index=False)
    (root / "findings.txt").write_text("\n".join(KIDNEY.values()) + "\n")
    return root
