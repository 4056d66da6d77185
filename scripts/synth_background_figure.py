"""Figure for docs/data.md: lesions inserted into real NIH normals (``radclr data synth --background``), with boxes.

    .venv/bin/python scripts/synth_background_figure.py [--background ../shared/data/nih_cxr14] [--contrast 1]
                                                        [--out docs/figures/synth_background.png]

Draws a small dataset into a temporary folder (seed 0, 384 px) and tiles the first lesion image of each kind next
to its untouched background, boxes drawn in the colour of their kind; the last column shows the lung-field masks
used to place the lesions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from radclr.data.background_lesions import write_background_lesions  # noqa: E402
from radclr.data.lung_mask import lung_fields  # noqa: E402

COLOURS = {"Mass": (255, 60, 60), "Nodule": (60, 220, 60), "Effusion": (80, 140, 255), "Infiltration": (255, 200, 0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--background", default=str(REPO.parent / "shared" / "data" / "nih_cxr14"))
    ap.add_argument("--contrast", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--out", default=str(REPO / "docs" / "figures" / "synth_background.png"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ds = write_background_lesions(tmp, args.background, n=60, seed=args.seed, contrast=args.contrast)
        labels = pd.read_csv(Path(tmp) / "labels.csv", dtype=str)
        rows = []
        for kind in COLOURS:
            hit = labels[labels["labels"].str.split("|").map(lambda ls, k=kind: k in ls)]
            if hit.empty:
                continue
            r = hit.iloc[0]
            img = Image.open(Path(tmp) / "images" / r["image"]).convert("RGB")
            src = ds.root  # noqa: F841  (the synthetic dataset; the background comes from the source dataset)
            bg_path = next(Path(args.background).glob(f"**/{r['background']}"))
            bg = Image.open(bg_path).convert("L").resize(img.size)
            boxed = img.copy()
            draw = ImageDraw.Draw(boxed)
            for b in ds.boxes[ds.boxes["image_id"] == r["image"]].itertuples():
                draw.rectangle([b.x, b.y, b.x + b.w - 1, b.y + b.h - 1], outline=COLOURS[b.label], width=2)
            mask = np.stack([np.asarray(bg, dtype=np.float64)] * 3, -1)
            for lung in lung_fields(np.asarray(bg, dtype=np.float64)):
                mask[lung.mask, 0] = np.clip(mask[lung.mask, 0] * 0.5 + 120, 0, 255)
            tiles = [bg.convert("RGB"), img, boxed, Image.fromarray(mask.astype(np.uint8))]
            rows.append([t.resize((args.tile, args.tile)) for t in tiles])
            ImageDraw.Draw(rows[-1][0]).text((4, 4), f"{kind}: background", fill=(255, 255, 0))
    grid = Image.new("RGB", (args.tile * 4, args.tile * len(rows)))
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            grid.paste(t, (j * args.tile, i * args.tile))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"written: {args.out} (columns: background, with lesion, with box, lung-field mask; contrast "
          f"{args.contrast}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
