"""Does data loading starve the model? Training-loop throughput vs pure forward+backward (issue 4).

    .venv/bin/python benchmarks/loop_throughput.py [--size 128] [--batch 32] [--epochs 3] [--workers 0 2]

1. Pure forward+backward: the same supervised ResNet-18 and optimiser step on batches already in memory.
2. The real training loop (``radclr.engine.loop``, ``train_time_s`` of each epoch = data loading from the
   memory-mapped image store, CXR augmentation, collation, forward, backward, optimiser step; validation and
   precise-BN excluded) on the embedded Kermany sample at the same size and batch.
Images/s of both and their ratio (target >= 0.90) for each ``num_workers``; the first epoch (store build,
warm-up) is dropped. Writes ``benchmarks/results/loop_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pure_step_throughput(size: int, batch: int, steps: int, threads: int) -> float:
    import torch

    from radclr.methods.supervised import masked_bce_with_logits
    from radclr.networks import LinearClassifier, build_image_encoder

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    enc, clf = build_image_encoder("resnet18"), LinearClassifier(512, 3)
    opt = torch.optim.Adam(list(enc.parameters()) + list(clf.parameters()), lr=1e-3)
    x, y = torch.rand(batch, 1, size, size), (torch.rand(batch, 3) > 0.5).float()

    def step():
        loss = masked_bce_with_logits(clf(enc(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def loop_throughput(size: int, batch: int, epochs: int, workers: int, threads: int, cache: str) -> dict:
    import pandas as pd
    import torch

    from radclr.runs.train import train

    torch.set_num_threads(threads)
    cfg = {"name": "loop-bench", "data": {"path": "demo", "image_size": size, "cache_dir": cache,
                                          "split": {"val": 0.1, "test": 0.1, "seed": 0}},
           "model": {"encoder": "resnet18"},
           "trainer": {"epochs": epochs, "batch_size": batch, "num_workers": workers, "progress": False,
                       "precise_bn_batches": 0, "augment": {"enabled": True}},
           "stages": [{"name": "train", "method": "supervised"}]}
    with tempfile.TemporaryDirectory() as tmp:
        run = train(cfg, Path(tmp) / "run", evaluate=False, progress=False)
        m = pd.read_csv(run / "metrics.csv")
        split = pd.read_csv(run / "splits.csv")
    n_train = int((split["split"] == "train").sum())
    steps = n_train // batch
    rows = m.iloc[1:] if len(m) > 1 else m  # drop the warm-up epoch
    ips = steps * batch / rows["train_time_s"].to_numpy()
    return {"images_per_s": float(ips.mean()), "per_epoch": [float(v) for v in ips], "steps_per_epoch": steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "loop_throughput.json"))
    args = ap.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="radclr-loop-")
    pure = pure_step_throughput(args.size, args.batch, steps=16, threads=args.threads)
    result = {"size": args.size, "batch": args.batch, "threads": args.threads, "pure_fwd_bwd_images_per_s": pure,
              "loops": {}, "load_average_start": os.getloadavg(), "machine": platform.processor() or platform.machine()}
    for w in args.workers:
        loop = loop_throughput(args.size, args.batch, args.epochs, w, args.threads, cache)
        loop["ratio_to_pure"] = loop["images_per_s"] / pure
        result["loops"][f"num_workers={w}"] = loop
        print(f"num_workers={w}: loop {loop['images_per_s']:.1f} img/s vs pure {pure:.1f} img/s "
              f"-> {loop['ratio_to_pure']:.2f}")
    result["load_average_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
