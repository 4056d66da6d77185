"""Python parts of ``scripts/gpu_check.sh`` (see there): each subcommand prints one JSON object.

    python scripts/gpu_check.py radiomics --device cuda [--n 256] [--size 224]   # engine on DEVICE vs CPU
    python scripts/gpu_check.py configs OUTDIR --device cuda [--n 512] [--size 224]   # training configs
    python scripts/gpu_check.py epochs RUN [RUN ...]                             # train_time_s per run
    python scripts/gpu_check.py junit REPORT.xml                                 # pytest counts
    python scripts/gpu_check.py merge PART.json [PART.json ...] --out FILE        # one JSON

``radiomics``: the same real NIH regions (synthetic textures when ``../shared/data`` is absent) through the
engine on ``--device`` (torch path) and on the CPU (the default backend: compiled kernels, 2 threads) -- warm
median time of 3 calls each, per-class split, and the worst relative error between the two per class.
``--device cpu`` is the dry mode: everything runs, on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cmd_radiomics(args) -> dict:
    import numpy as np
    import torch

    from radclr.radiomics import extract
    from radclr.radiomics.agreement import compare

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from radiomics_runner import default_dataset, sample_regions

    dataset = default_dataset()
    if dataset is not None:
        sample = sample_regions(dataset, args.n, args.size, seed=0)
        images, masks, source = sample["images"], sample["masks"], f"{Path(dataset).name} ({sample['layout']})"
    else:  # no real data on this machine: 8-bit random-walk textures in random boxes
        rng = np.random.default_rng(0)
        side = args.size + 32
        walk = np.cumsum(np.cumsum(rng.normal(0, 2, (args.n, side, side)), 1), 2)
        walk = (walk - walk.min((1, 2), keepdims=True)) / np.ptp(walk, axis=(1, 2), keepdims=True) * 255
        images = torch.from_numpy(np.round(walk).astype(np.float32))
        masks = torch.zeros(args.n, side, side, dtype=torch.bool)
        for k in range(args.n):
            y, x = rng.integers(0, 33, 2)
            masks[k, y:y + args.size, x:x + args.size] = True
        source = "synthetic random-walk textures (no ../shared/data)"
    torch.set_num_threads(2)
    timings: dict = {}
    values: dict = {}
    for label, device, kwargs in (("device", args.device, {"device": args.device, "backend": "torch"}),
                                  ("cpu_fast", "cpu", {})):
        extract(images[:8], masks[:8], **kwargs)  # warm-up (CUDA context, kernels)
        runs, profiles = [], []
        for _ in range(3):
            prof: dict = {}
            _sync(device)
            t0 = time.perf_counter()
            names, v = extract(images, masks, profile=prof, **kwargs)
            _sync(device)
            runs.append(time.perf_counter() - t0)
            profiles.append(prof)
        mid = sorted(range(3), key=lambda i: runs[i])[1]
        timings[label] = {"ms_per_region": 1000 * runs[mid] / args.n,
                          "ms_per_region_runs": [1000 * t / args.n for t in runs],
                          "class_ms_per_region": {k: 1000 * t / args.n for k, t in profiles[mid].items()}}
        values[label] = (names, v.cpu().numpy())
    parity = compare(values["device"][0], values["device"][1], values["cpu_fast"][0], values["cpu_fast"][1])
    return {"radiomics": {
        "device": args.device, "n": args.n, "size": args.size, "regions": source,
        "engine_on_device": timings["device"], "cpu_fast_path_2_threads": timings["cpu_fast"],
        "speedup_device_vs_cpu": timings["cpu_fast"]["ms_per_region"] / timings["device"]["ms_per_region"],
        "worst_rel_error_device_vs_cpu": parity["worst_rel_error"],
        "worst_rel_error_per_class": parity["worst_rel_error_per_class"],
        "parity_ok": parity["worst_rel_error"] <= 1e-4,
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
    }}


def cmd_configs(args) -> dict:
    """Two training configs that differ only in the method: supervised, and BYOP with its loop on every step."""
    import yaml

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for method in ("supervised", "byop"):
        stage = {"name": "train", "method": method}
        if method == "byop":  # the loop from the first step: Grad-CAM boxes + their radiomics on the device
            stage.update(loss="focal", byop=True, refresh_every=1, contrastive_start_epoch=0,
                         classifier_warmup_epochs=0, cam_threshold=0.5)
        cfg = {"name": f"gpu-check-{method}", "seed": 0,
               "data": {"path": "phantom", "image_size": args.size, "box_fraction": 0.2,
                        "cache_dir": str(out / "cache"),
                        "phantom": {"n": args.n, "size": args.size, "seed": 3},
                        "split": {"val": 0.1, "test": 0.1, "seed": 0}},
               "radiomics": {"region": "cam"}, "model": {"encoder": "resnet18"},
               "trainer": {"epochs": args.epochs, "batch_size": args.batch, "progress": False,
                           "precise_bn_batches": 0, "device": args.device, "augment": {"enabled": False},
                           "optimizer": {"name": "adam", "lr": 1e-3}},
               "evaluation": {"n_boot": 20},
               "stages": [stage]}
        path = out / f"{method}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        written[method] = str(path)
    return {"configs": written}


def cmd_epochs(args) -> dict:
    import pandas as pd

    out = {}
    for run in args.runs:
        m = pd.read_csv(Path(run) / "metrics.csv")
        out[Path(run).name] = [float(x) for x in m["train_time_s"]]
    result: dict = {"train_time_s": out}
    if "supervised" in out and "byop" in out and out["supervised"] and out["byop"]:
        result["byop_over_supervised_last_epoch"] = out["byop"][-1] / out["supervised"][-1]
        result["byop_over_supervised_first_epoch"] = out["byop"][0] / out["supervised"][0]
        result["target"] = "<= 1.10 (last epoch: cuDNN autotuning and CUDA warm-up fall in the first)"
    return {"training": result}


def cmd_junit(args) -> dict:
    """Counts of a pytest JUnit XML report (the CUDA-marked tests) and the names of the failing ones."""
    import xml.etree.ElementTree as ET

    root = ET.parse(args.xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failing = [f"{c.get('classname')}::{c.get('name')}" for s in suites for c in s
               if c.find("failure") is not None or c.find("error") is not None]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {"cuda_tests": {**counts, "failing": failing}}


def cmd_merge(args) -> dict:
    merged: dict = {}
    for part in args.parts:
        p = Path(part)
        if p.exists() and p.stat().st_size:
            try:
                merged.update(json.loads(p.read_text()))
            except json.JSONDecodeError as e:
                merged.setdefault("unreadable_parts", []).append(f"{p.name}: {e}")
        else:
            merged.setdefault("missing_parts", []).append(p.name)
    Path(args.out).write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return merged


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("radiomics")
    r.add_argument("--device", default="cuda")
    r.add_argument("--n", type=int, default=256)
    r.add_argument("--size", type=int, default=224)
    c = sub.add_parser("configs")
    c.add_argument("outdir")
    c.add_argument("--device", default="cuda")
    c.add_argument("--n", type=int, default=512)
    c.add_argument("--size", type=int, default=224)
    c.add_argument("--epochs", type=int, default=2)
    c.add_argument("--batch", type=int, default=64)
    e = sub.add_parser("epochs")
    e.add_argument("runs", nargs="+")
    j = sub.add_parser("junit")
    j.add_argument("xml")
    m = sub.add_parser("merge")
    m.add_argument("parts", nargs="+")
    m.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    commands = {"radiomics": cmd_radiomics, "configs": cmd_configs, "epochs": cmd_epochs, "junit": cmd_junit,
                "merge": cmd_merge}
    result = commands[args.cmd](args)
    if args.cmd != "merge":
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
