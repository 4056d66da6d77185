"""Sanity check of the Grad-CAM -> box -> IoU-accuracy chain on synthetic images with known lesion boxes.

Not a test: a once-run check whose numbers go into docs/localization.md. A tiny CNN is trained for a few hundred
steps to detect two synthetic "findings" (a bright blob and a textured patch, each at a random box) on noisy
backgrounds; then, on held-out positive images, Grad-CAM of the last conv block -> upsample -> threshold ->
largest component is scored with IoU accuracy (seed 001 §4, IoU > T) against a centre box of the training
mean size and a whole-image box. During training the CAM of every batch is computed from the training forward
(as BYOP does) and timed against the step; the box-change rate between two refreshes is reported too.
If ../shared/data/nih_community_boxes exists, the two baselines are also reported on its real (weak) boxes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cam_box_sanity.py [--steps 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from radclr.cam.boxes import box_change_rate, cam_to_boxes, count_fallbacks, upsample_cam
from radclr.cam.gradcam import grad_cam, grad_cam_from_activations, select_targets
from radclr.evaluation.localization import (
    centre_box_baseline,
    iou_accuracy,
    mean_box_sizes,
    whole_image_baseline,
)

FINDINGS = ["Blob", "Texture"]
SIZE = 64


def make_images(n: int, rng: np.random.Generator):
    """Images [n, 1, S, S], labels [n, 2], boxes {i: {finding: [(x, y, w, h)]}} (positives only)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    imgs = np.empty((n, 1, SIZE, SIZE), np.float32)
    labels = np.zeros((n, 2), np.float32)
    boxes: dict[str, dict[str, list]] = {}
    for i in range(n):
        # background: a smooth random gradient (chest-like shading) plus noise
        g = rng.normal(0, 0.15, 3)
        img = 0.4 + g[0] * (xx / SIZE - 0.5) + g[1] * (yy / SIZE - 0.5) + rng.normal(0, 0.08, (SIZE, SIZE))
        taken = np.zeros((SIZE, SIZE), bool)
        for f, finding in enumerate(FINDINGS):
            if rng.random() >= 0.5:
                continue
            for _ in range(20):  # place without overlapping the other lesion
                w, h = rng.integers(10, 21, 2)
                x, y = rng.integers(0, SIZE - w + 1), rng.integers(0, SIZE - h + 1)
                if not taken[y:y + h, x:x + w].any():
                    break
            taken[y:y + h, x:x + w] = True
            if f == 0:  # bright elliptical blob filling its box
                cx, cy = x + w / 2 - 0.5, y + h / 2 - 0.5
                r2 = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2
                img += 0.35 * (r2 <= 1.0)
            else:  # checkerboard texture, same mean brightness as the background
                patch = 0.25 * (((xx[y:y + h, x:x + w] // 2 + yy[y:y + h, x:x + w] // 2) % 2) * 2 - 1)
                img[y:y + h, x:x + w] += patch
            labels[i, f] = 1
            boxes.setdefault(str(i), {})[finding] = [(float(x), float(y), float(w), float(h))]
        imgs[i, 0] = img
    return torch.from_numpy(imgs), torch.from_numpy(labels), boxes


class TinyEncoder(nn.Module):
    """Four conv blocks, stride 4 overall: the Grad-CAM layer is a 16x16 map for 64-px input."""

    def __init__(self, c: int = 32):
        super().__init__()

        def block(i, o, s):
            return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())

        self.body = nn.Sequential(block(1, c, 1), block(c, c, 2), block(c, c, 1), block(c, c, 2))

    def forward_features(self, x):
        return self.body(x)

    def pool(self, fmap):
        return fmap.mean(dim=(2, 3))


def train(steps: int, batch: int, seed: int):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_tr, y_tr, boxes_tr = make_images(2000, rng)
    enc, cls = TinyEncoder(), nn.Linear(32, len(FINDINGS))
    opt = torch.optim.Adam(list(enc.parameters()) + list(cls.parameters()), 3e-3)
    t_step = t_cam = t_box = 0.0
    prev_boxes = None
    change_rates = []
    enc.train()
    for step in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(x_tr), batch))
        xb, yb = x_tr[idx], y_tr[idx]
        t0 = time.perf_counter()
        fmap = enc.forward_features(xb)
        logits = cls(enc.pool(fmap))
        t1 = time.perf_counter()
        # BYOP-style: CAM of the max-logit positive finding, from this forward, before backward
        targets = select_targets(yb, logits)
        cam = grad_cam_from_activations(fmap, logits.gather(1, targets[:, None])[:, 0])
        t2 = time.perf_counter()
        cam_to_boxes(upsample_cam(cam, (SIZE, SIZE)), threshold=0.5)  # timed, not used
        t3 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t4 = time.perf_counter()
        t_step += (t1 - t0) + (t4 - t3)
        t_cam += t2 - t1
        t_box += t3 - t2
        if step % 50 == 49:  # refresh a fixed probe set's boxes every 50 steps and measure how many change
            probe_targets = select_targets(y_tr[:256], torch.zeros(256, 2), no_positive="none")  # 1st positive
            probe = grad_cam(enc, cls, x_tr[:256], targets=probe_targets, upsample_to=(SIZE, SIZE))
            new = cam_to_boxes(probe, threshold=0.5)
            if prev_boxes is not None:
                change_rates.append(round(box_change_rate(prev_boxes, new, iou_thr=0.5), 3))
            prev_boxes = new
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:4d} loss {loss.item():.4f}", flush=True)
    timing = {"train_step_s": t_step, "cam_s": t_cam, "boxing_s": t_box,
              "cam_over_step": t_cam / t_step, "boxing_over_step": t_box / t_step}
    return enc, cls, boxes_tr, timing, change_rates


def evaluate(enc, cls, boxes_tr, seed: int, out: Path | None):
    rng = np.random.default_rng(seed + 1)
    x_te, y_te, boxes_te = make_images(400, rng)
    with torch.no_grad():
        probs = torch.sigmoid(cls(enc.pool(enc.eval().forward_features(x_te))))
    from sklearn.metrics import roc_auc_score

    auc = {f: float(roc_auc_score(y_te[:, j], probs[:, j])) for j, f in enumerate(FINDINGS)}
    cams = grad_cam(enc, cls, x_te, targets=torch.arange(2).repeat(len(x_te), 1), upsample_to=(SIZE, SIZE))
    sizes = {str(i): (SIZE, SIZE) for i in range(len(x_te))}
    results = {}
    fallbacks = {}
    for mode, thr in (("relative", 0.5), ("relative", 0.3), ("percentile", 0.9)):
        pred: dict[str, dict[str, list]] = {}
        n_fb = 0
        for j, f in enumerate(FINDINGS):
            bx = cam_to_boxes(cams[:, j], mode=mode, threshold=thr, select="largest")
            n_fb += count_fallbacks([bx[int(i)] for i in boxes_te if f in boxes_te[i]])
            for iid, per in boxes_te.items():
                if f in per:
                    pred.setdefault(iid, {})[f] = bx[int(iid)]
        key = f"cam_{mode}_{thr}"
        results[key] = iou_accuracy(pred, boxes_te, findings=FINDINGS, image_sizes=sizes, n_boot=500, seed=0)
        fallbacks[key] = n_fb
    sizes_tr = {iid: (SIZE, SIZE) for iid in boxes_tr}
    centre = centre_box_baseline(boxes_te, sizes, box_sizes=mean_box_sizes(boxes_tr, sizes_tr))
    results["centre_box"] = iou_accuracy(centre, boxes_te, findings=FINDINGS, image_sizes=sizes)
    results["whole_image"] = iou_accuracy(whole_image_baseline(boxes_te, sizes), boxes_te, findings=FINDINGS,
                                          image_sizes=sizes)
    if out is not None:
        from radclr.visualize.overlays import OverlayExample, overlay_grid

        ex = []
        for iid in list(boxes_te)[:6]:
            f = next(iter(boxes_te[iid]))
            j = FINDINGS.index(f)
            cam = cams[int(iid), j]
            ex.append(OverlayExample(x_te[int(iid), 0], cam, boxes_te[iid][f], cam_to_boxes(cam, threshold=0.5),
                                     f, float(probs[int(iid), j])))
        overlay_grid(ex, ncols=3, path=out / "cam_box_sanity_overlays.png")
    return auc, results, fallbacks


def real_baselines():
    """Whole-image and centre-box baselines on the community boxes (real CXR, weak boxes), if present."""
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nih_community_boxes"
    if not (root / "boxes.csv").exists():
        return None
    import pandas as pd

    labels = pd.read_csv(root / "labels.csv")
    boxes = pd.read_csv(root / "boxes.csv")
    sizes = {r.image: (int(r.height), int(r.width)) for r in labels.itertuples()}
    gt: dict[str, dict[str, list]] = {}
    for r in boxes.itertuples():
        gt.setdefault(r.image, {}).setdefault(r.label, []).append((r.x, r.y, r.w, r.h))
    pids = dict(zip(labels.image, labels.patient_id.astype(str)))
    out = {}
    for rule in ("any_gt", "all_gt"):
        out[f"centre_box_{rule}"] = iou_accuracy(centre_box_baseline(gt, sizes), gt, image_sizes=sizes, rule=rule,
                                                 patient_ids=pids, n_boot=500)
        out[f"whole_image_{rule}"] = iou_accuracy(whole_image_baseline(gt, sizes), gt, image_sizes=sizes,
                                                  rule=rule)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="folder for the overlay figure and results JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    enc, cls, boxes_tr, timing, changes = train(args.steps, args.batch, args.seed)
    auc, results, fallbacks = evaluate(enc, cls, boxes_tr, args.seed, args.out)
    print(f"\nAUC {auc}")
    print(f"{'method':28s} " + " ".join(f"T={t:<5}" for t in ("0.1", "0.3", "0.5", "0.7")) + "  meanIoU  "
          "acc@0.3 95% CI (mean)  fallbacks")
    for name, r in results.items():
        row = " ".join(f"{r['iou_accuracy'][t]['mean']:<7.3f}" for t in ("0.1", "0.3", "0.5", "0.7"))
        ci = r.get("iou_accuracy_ci", {}).get("0.3", {}).get("mean")
        ci_s = f"[{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]" if ci else " " * 14
        print(f"{name:28s} {row} {r['mean_iou']['mean']:.3f}    {ci_s}         {fallbacks.get(name, '')}")
    for name, r in results.items():
        print(f"  {name:26s} acc@0.3 per finding: "
              + ", ".join(f"{f} {r['iou_accuracy']['0.3'][f]:.3f}" for f in FINDINGS)
              + f"  (cases {r['n_cases']})")
    print(f"\ntiming over {args.steps} steps: {json.dumps({k: round(v, 4) for k, v in timing.items()})}")
    print(f"box change rate between refreshes every 50 steps (IoU<0.5, 256 probe images): {changes}")
    real = real_baselines()
    if real:
        print("\nnih_community_boxes (real, weak boxes), baselines:")
        for name, r in real.items():
            ci = r.get("iou_accuracy_ci", {}).get("0.3", {}).get("mean")
            print(f"  {name:24s} acc@0.1 {r['iou_accuracy']['0.1']['mean']:.3f} acc@0.3 "
                  f"{r['iou_accuracy']['0.3']['mean']:.3f}" + (f" CI [{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]"
                                                              if ci else "")
                  + f"  mean IoU {r['mean_iou']['mean']:.3f}  cases {r['n_cases']}")
    print(f"\nwall time {time.perf_counter() - t0:.1f} s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cam_box_sanity.json").write_text(json.dumps(
            {"auc": auc, "localization": results, "fallbacks": fallbacks, "timing": timing,
             "box_change_rate": changes, "real_baselines": real}, indent=1))


if __name__ == "__main__":
    main()
