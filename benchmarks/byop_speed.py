"""Cost of the BYOP feedback loop: a BYOP epoch vs a supervised epoch, and vs the naive alternative (issue 5).

    .venv/bin/python benchmarks/byop_speed.py [--size 128] [--n 320] [--epochs 6] [--batch 32]

Same model (ResNet-18), data (phantoms at 128 px, boxes kept for 20 % of patients so that most disease-positive
images need Grad-CAM boxes), batch size and optimiser; augmentation off; the BYOP loop active from the first step
and refreshed every step (``refresh_every: 1``). Reports per-epoch training time (first epoch dropped), the
BYOP/supervised ratio (target <= 1.25, aim <= 1.05), BYOP's split (forward/backward+optimiser, Grad-CAM,
boxing, radiomics), and the naive alternative's radiomics cost: PyRadiomics, one region at a time, for every
CAM box of every step (per-region time measured on the run's own final CAM boxes, times the number of CAM boxes
per epoch). Writes ``benchmarks/results/byop_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def config(method: str, args, cache: str) -> dict:
    stage = {"name": "train", "method": method}
    if method == "byop":
        stage.update(loss="focal", byop=True, refresh_every=1, contrastive_start_epoch=0, cam_threshold=0.5)
    return {"name": f"speed-{method}", "seed": 0,
            "data": {"path": "phantom", "image_size": args.size, "cache_dir": cache, "box_fraction": 0.2,
                     "phantom": {"n": args.n, "size": args.size, "seed": 3},
                     "split": {"val": 0.1, "test": 0.1, "seed": 0}},
            "radiomics": {"region": "cam"}, "model": {"encoder": "resnet18"},
            "trainer": {"epochs": args.epochs, "batch_size": args.batch, "progress": False, "precise_bn_batches": 0,
                        "augment": {"enabled": False}, "optimizer": {"name": "adam", "lr": 1e-3}},
            "stages": [stage]}


def run(method: str, args, cache: str):
    import pandas as pd

    from radclr.engine.config import resolve_config
    from radclr.engine.loop import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        out.mkdir()
        trainer = Trainer(resolve_config(base=config(method, args, cache)), out, progress=False)
        trainer.run()
        m = pd.read_csv(out / "metrics.csv")
    return trainer, m["train_time_s"].to_numpy()


def pyradiomics_ms_per_region(trainer, n: int = 48) -> float:
    import numpy as np
    import torch

    from radclr.radiomics import extract
    from radclr.radiomics.regions import region_masks

    method, data = trainer.method, trainer.data
    rows = torch.nonzero(method.box_step >= 0).flatten()[:n].tolist()
    if not rows:
        return float("nan")
    size = data.store.size
    images = torch.as_tensor(np.asarray(data.store.images[rows], dtype=np.float64))
    masks = region_masks([method.box_cache[r] for r in rows], size)
    t0 = time.perf_counter()
    extract(images, masks, engine="pyradiomics", jobs=1)
    return (time.perf_counter() - t0) * 1000 / len(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=320)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "byop_speed.json"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    cache = tempfile.mkdtemp(prefix="radclr-byop-speed-")
    load0 = os.getloadavg()
    _, sup = run("supervised", args, cache)
    trainer, byop = run("byop", args, cache)
    t = dict(trainer.method.timings)
    total_byop = float(byop.sum())  # timers cover every epoch
    sup_epoch, byop_epoch = float(sup[1:].mean()), float(byop[1:].mean())
    loop_s = t["cam"] + t["boxing"] + t["radiomics"]
    per_epoch = {k: t[k] / args.epochs for k in ("cam", "boxing", "radiomics")}
    per_epoch["forward_backward_optimizer"] = total_byop / args.epochs - sum(per_epoch.values())
    cam_rows_epoch = t.get("cam_rows", 0) / args.epochs
    pyr_ms = pyradiomics_ms_per_region(trainer)
    naive_radiomics = cam_rows_epoch * pyr_ms / 1000
    naive_epoch = per_epoch["forward_backward_optimizer"] + per_epoch["cam"] + per_epoch["boxing"] + naive_radiomics
    result = {
        "size": args.size, "n_images": args.n, "batch": args.batch, "threads": args.threads, "epochs": args.epochs,
        "supervised_epoch_s": sup_epoch, "byop_epoch_s": byop_epoch, "ratio_byop_to_supervised": byop_epoch / sup_epoch,
        "byop_split_per_epoch_s": per_epoch, "byop_loop_share": loop_s / total_byop,
        "cam_boxes_per_epoch": cam_rows_epoch, "radiomics_regions_computed_per_epoch": t["regions"] / args.epochs,
        "pyradiomics_ms_per_region": pyr_ms, "naive_epoch_s_estimate": naive_epoch,
        "naive_ratio_to_supervised": naive_epoch / sup_epoch,
        "load_average": [load0, os.getloadavg()],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
