"""Cost of the BYOP feedback loop: a BYOP epoch vs a supervised epoch, and vs the naive alternative (issue 5).

    .venv/bin/python benchmarks/byop_speed.py [--size 128] [--n 320] [--epochs 6] [--batch 32]
    .venv/bin/python benchmarks/byop_speed.py --data nih [--images 256] [--steps 8] [--rounds 3]

``--data nih`` (issue 19 item 8): ``configs/seed001/full.yaml``'s options on real NIH images at 224 px, both methods
in one process on the same prepared images (see :func:`main_real`). The default (phantoms) is described below.

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


NIH8 = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax"]


def real_config(method: str, paths: list[str], cache: str) -> dict:
    """``configs/seed001/full.yaml`` on ``paths`` (NIH's 8 findings); the BYOP loop on from the first step (the
    shipped schedule starts it at epoch 5: timing the warm-up would time a supervised step). ``supervised``: the
    same run with the stage replaced by plain supervised training (bce, as full.yaml's BYOP classification loss)."""
    from radclr.engine.config import resolve_config

    cfg = resolve_config(REPO / "configs" / "seed001" / "full.yaml", [
        f"data.findings=[{','.join(NIH8)}]", "trainer.progress=false", "data.follow_links=true"])
    cfg["data"]["path"] = paths
    cfg["data"]["cache_dir"] = cache
    stage = cfg["stages"][0]
    if method == "byop":
        stage.update(contrastive_start_epoch=0, classifier_warmup_epochs=0)
    else:
        cfg["stages"] = [{"name": "train", "method": "supervised", "loss": "bce"}]
    return cfg


class _Timed:
    """One method's stage, set up by the training loop itself, stepped ``steps`` at a time across epochs."""

    def __init__(self, trainer, method: str):
        self.trainer, self.name = trainer, method
        self.stage = trainer._setup_stage(0, None)
        self.epoch, self.step_in_epoch, self.batches = 0, 0, None
        self.step_s: list[float] = []
        self.calibrate_s: list[float] = []
        self.bn_val_s: list[float] = []

    def run_steps(self, steps: int) -> None:
        from radclr.training_data.sampling import EpochBatches

        tr, st = self.trainer, self.stage
        method = st.method
        done = 0
        while done < steps:
            if self.batches is None:  # a new epoch: the per-epoch work both methods do (and BYOP's calibration)
                method.on_epoch_start(self.epoch)
                t0 = time.perf_counter()
                method.calibrate(tr.data, tr.data.indices("train"))
                self.calibrate_s.append(time.perf_counter() - t0)
                self.batches = EpochBatches(st.train_idx, st.batch_size, int(tr.cfg["seed"]), self.epoch).batches
                self.it = iter(st.loader.passes("train", self.batches, self.epoch))
                method.train()
            try:
                t0 = time.perf_counter()
                batch = tr._to_device(next(self.it))
            except StopIteration:
                t1 = time.perf_counter()
                tr._precise_bn(st, self.epoch)
                tr._validate(st)
                self.bn_val_s.append(time.perf_counter() - t1)
                self.epoch, self.batches = self.epoch + 1, None
                continue
            out = st.model(batch)
            st.optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            st.optimizer.step()
            st.scheduler.step()
            method.after_optimizer_step(batch, out)
            float(out["loss"].detach())
            self.step_s.append(time.perf_counter() - t0)
            done += 1


def main_real(args) -> int:
    """Both methods in one process on the same prepared images (one Trainer, one image store), stepped in
    alternating order (round r: supervised first when r is even) so that a change in the shared cores' load
    reaches both; ``--steps`` training steps per method per round, the first round a warm-up. Per-epoch work
    (BYOP's CAM-threshold calibration; precise BN + validation for both) is timed separately and folded into an
    epoch estimate at this subset's steps per epoch."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from common import SHARED, machine
    from real_data import patient_subset

    from radclr.engine.loop import Trainer
    from radclr.training_data import prepare_data
    from radclr.training_data.sampling import EpochBatches

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="radclr-byop-speed-real-"))
    paths = [str(patient_subset(SHARED / "nih_cxr14", args.images - args.boxed, work / "nih")),
             str(patient_subset(SHARED / "nih_community_boxes", args.boxed, work / "boxes"))]
    cache = str(work / "cache")
    load0 = os.getloadavg()
    timed = {}
    for method in ("supervised", "byop"):
        run = work / method
        run.mkdir()
        trainer = Trainer(real_config(method, paths, cache), run, progress=False)
        trainer.data = prepare_data(trainer.cfg, run, need_radiomics=trainer._methods_need_radiomics(),
                                    progress=False)
        timed[method] = _Timed(trainer, method)
    rounds = []
    for r in range(args.rounds + 1):
        order = ("supervised", "byop") if r % 2 == 0 else ("byop", "supervised")
        row = {}
        for m in order:
            t = timed[m]
            n0 = len(t.step_s)
            t0 = time.perf_counter()
            t.run_steps(args.steps)
            row[m] = {"wall_s": time.perf_counter() - t0, "step_s": float(np.mean(t.step_s[n0:]))}
        row["ratio_wall"] = row["byop"]["wall_s"] / row["supervised"]["wall_s"]
        row["ratio_step"] = row["byop"]["step_s"] / row["supervised"]["step_s"]
        row["order"] = list(order)
        row["load_average_1min"] = os.getloadavg()[0]
        rounds.append(row)
        print(json.dumps(row))
    measured = rounds[1:]  # round 0 warms up (kernel compilation, caches)
    steps_per_epoch = len(EpochBatches(timed["byop"].stage.train_idx, timed["byop"].stage.batch_size, 0, 0))
    cal = float(np.median(timed["byop"].calibrate_s)) if timed["byop"].calibrate_s else 0.0
    bn_val = {m: float(np.median(timed[m].bn_val_s)) if timed[m].bn_val_s else 0.0 for m in timed}
    # the load of the shared cores changes by several times within minutes: each round's two methods ran back
    # to back, so the ratio within a round is the measurement; the median over rounds is reported
    ratio_step = float(np.median([r["ratio_step"] for r in measured]))
    ratio_wall = float(np.median([r["ratio_wall"] for r in measured]))
    tm = timed["byop"].stage.method.timings
    n_steps = len(timed["byop"].step_s)
    result = {
        "command": f"benchmarks/byop_speed.py --data nih --images {args.images} --boxed {args.boxed} "
                   f"--steps {args.steps} --rounds {args.rounds} --threads {args.threads}",
        "config": "configs/seed001/full.yaml (BYOP loop from step 0), NIH nih_cxr14 + nih_community_boxes subsets",
        "image_size": 224, "batch": int(timed["byop"].stage.batch_size), "threads": args.threads,
        "images": {"train": len(timed["byop"].stage.train_idx), "total": len(timed["byop"].trainer.data.store)},
        "steps_per_epoch": steps_per_epoch, "rounds": rounds,
        "ratio_step_median": ratio_step,
        "ratio_round_wall_median": ratio_wall,
        "round_covers": "one epoch boundary per round when --steps equals steps_per_epoch: precise BN + validation "
                        "of the last epoch, calibration (BYOP) and the steps of the next",
        "byop_calibration_per_epoch_s_median": cal, "precise_bn_and_validation_per_epoch_s_median": bn_val,
        "byop_split_per_step_s (all steps incl. warm-up)": {
            "cam": tm["cam"] / n_steps, "boxing": tm["boxing"] / n_steps, "radiomics": tm["radiomics"] / n_steps,
            "cam_boxes_per_step": tm.get("cam_rows", 0) / n_steps,
            "radiomics_regions_per_step": tm["regions"] / n_steps},
        "machine": machine(), "load_average_start": load0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["phantom", "nih"], default="phantom")
    ap.add_argument("--images", type=int, default=256, help="--data nih: images (whole patients) in all")
    ap.add_argument("--boxed", type=int, default=64, help="--data nih: of them from nih_community_boxes (boxes)")
    ap.add_argument("--steps", type=int, default=8, help="--data nih: steps per method per round")
    ap.add_argument("--rounds", type=int, default=3, help="--data nih: measured rounds (after one warm-up)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=320)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "byop_speed.json"))
    args = ap.parse_args(argv)
    if args.data == "nih":
        if args.out == str(REPO / "benchmarks" / "results" / "byop_speed.json"):
            args.out = str(REPO / "benchmarks" / "results" / "byop_speed_224.json")
        return main_real(args)
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
