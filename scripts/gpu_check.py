"""Python sections of ``scripts/gpu_check.sh`` (see there). Each section writes one JSON object ``{name: {...}}``
to ``--part FILE``; an exception becomes ``{name: {"error": ..., "traceback": ...}}`` there (exit 1), so the other
sections go on and the merged JSON says what failed and why.

    python scripts/gpu_check.py SECTION --device cuda|cpu --work DIR --part FILE
    python scripts/gpu_check.py junit REPORT.xml --part FILE
    python scripts/gpu_check.py merge PART.json [PART.json ...] --out FILE

Sections (sizes: ``--device cuda`` measures at the sizes in PROFILES["cuda"]; ``--device cpu`` is the dry mode,
the same code at small sizes on the CPU -- it checks the script, not a GPU):

* ``numba_warm``    the radiomics CPU kernels compiled once, in the background at the start (numba's disk cache)
* ``phantom``       the phantom dataset the training sections share (written once into WORK/cache)
* ``throughput``    supervised ResNet-18 at 224 px: a resident batch (forward + backward + Adam, autocast as the
                    loop does, contiguous and channels_last) vs the real loop (``radclr.runs.train.train`` with
                    augmentation on and off, the CUDA defaults), images/s from the last epoch's step times, GPU
                    utilisation sampled by ``nvidia-smi -lms 200`` during each
* ``sync_audit``    ``torch.cuda.set_sync_debug_mode("warn")`` over 5 BYOP steps (configs/seed001/full.yaml's loop):
                    host syncs per step and their call sites
* ``radiomics_boxes`` BYOP-shaped radiomics: 8 / 32 / 64 boxes of varied size on 224- and 512-px images, the torch
                    engine on the device vs the CPU fast path at 1 and all threads, median times and parity
* ``cam_boxes``     ``cam_to_box_tensor`` on the device returns the CPU's boxes (three option sets, three map sizes)
* ``full_run``      configs/seed001/full.yaml on phantoms, >= 30 timed steps, stopped (SIGINT) mid-epoch and
                    resumed with ``--resume``, then ``predict`` and ``report`` on the device
* ``memory_512``    peak memory of forward + backward at 512 px for growing batches (until out of memory)
* ``fp16``          the fp16 + GradScaler path: resident steps (scale, finite losses) and one epoch of the loop
* ``ddp``           the BYOP run under torchrun on 2 processes (NCCL on >= 2 GPUs; gloo on the CPU in the dry mode)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import linecache
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROFILES = {
    "cuda": {"size": 224, "batch": 64, "phantom_n": 1024, "resident_warm": 5, "resident_steps": 20, "epochs": 2,
             "rad_sizes": (224, 512), "rad_boxes": (8, 32, 64), "rad_runs": 3, "cam_sizes": (14, 28, 224),
             "full_epochs": 6, "ckpt_every": 4, "n_boot": 50, "mem_size": 512, "mem_batches": (16, 32, 64, 128, 256),
             "fp16_steps": 10},
    "cpu": {"size": 64, "batch": 8, "phantom_n": 96, "resident_warm": 1, "resident_steps": 3, "epochs": 2,
            "rad_sizes": (64,), "rad_boxes": (8,), "rad_runs": 1, "cam_sizes": (14, 64),
            "full_epochs": 3, "ckpt_every": 2, "n_boot": 10, "mem_size": 128, "mem_batches": (2, 4),
            "fp16_steps": 2},
}
FINDINGS = 4  # the phantoms' findings (Mass, Nodule, Effusion, Infiltration)


def _profile(args) -> dict:
    return PROFILES["cuda" if args.device.startswith("cuda") else "cpu"]


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _data_overrides(args) -> list[str]:
    """The phantom every training section shares: written once into WORK/cache (the image store too)."""
    p = _profile(args)
    return ["data.path=phantom", f"data.image_size={p['size']}", f"data.cache_dir={Path(args.work) / 'cache'}",
            f"data.phantom.n={p['phantom_n']}", f"data.phantom.size={p['size']}", "data.phantom.seed=3"]


def _common_overrides(args) -> list[str]:
    p = _profile(args)
    return [*_data_overrides(args), f"trainer.device={args.device}", f"trainer.batch_size={p['batch']}",
            "trainer.progress=false"]


def _byop_overrides(args, epochs: int) -> list[str]:
    """configs/seed001/full.yaml with the loop from the first step (no classifier warm-up) on the phantoms."""
    return [*_common_overrides(args), f"trainer.epochs={epochs}", "data.box_fraction=0.3",
            "stages.0.classifier_warmup_epochs=0",
            "stages.0.contrastive_start_epoch=0", f"evaluation.n_boot={_profile(args)['n_boot']}"]


class GpuSampler:
    """GPU utilisation (%) and memory used (MiB) every 200 ms while open: ``nvidia-smi -lms 200`` in the
    background, else ``torch.cuda.utilization`` polled (needs pynvml); nothing on the CPU."""

    def __init__(self, device: str):
        self.device = device
        self.util: list[float] = []
        self.mem: list[float] = []
        self.source = None
        self._proc = None
        self._thread = None
        self._stop = threading.Event()

    def __enter__(self):
        import torch

        if not self.device.startswith("cuda"):
            return self
        index = torch.device(self.device).index or 0
        if shutil.which("nvidia-smi"):
            self.source = "nvidia-smi -lms 200"
            self._proc = subprocess.Popen(["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu,memory.used",
                                           "--format=csv,noheader,nounits", "-lms", "200"],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._read, daemon=True)
        else:
            self.source = "torch.cuda.utilization"
            self._thread = threading.Thread(target=self._poll, args=(index,), daemon=True)
        self._thread.start()
        return self

    def _read(self):
        for line in self._proc.stdout:
            parts = [x.strip() for x in line.split(",")]
            with contextlib.suppress(ValueError, IndexError):
                self.util.append(float(parts[0]))
                self.mem.append(float(parts[1]))

    def _poll(self, index):
        import torch

        while not self._stop.wait(0.2):
            try:
                self.util.append(float(torch.cuda.utilization(index)))
            except Exception as e:  # no pynvml: nothing to sample
                self.source = f"unavailable ({type(e).__name__}: {e})"
                return

    def __exit__(self, *exc):
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict | None:
        if self.source is None:
            return None
        if not self.util:
            return {"source": self.source, "samples": 0}
        return {"source": self.source, "samples": len(self.util), "util_mean_pct": statistics.fmean(self.util),
                "util_median_pct": statistics.median(self.util),
                "mem_used_max_mib": max(self.mem) if self.mem else None}


class StepClock:
    """``on_step`` callback of :func:`radclr.runs.train.train`: the time of every finished step, per epoch. No
    sync of its own (it would serialise data loading and compute): the mean over an epoch's steps is the rate the
    GPU sustains, since a queue that runs ahead blocks at the loop's own reads."""

    def __init__(self):
        self.times: dict[int, list[float]] = {}

    def __call__(self, stage, epoch, step):
        self.times.setdefault(epoch, []).append(time.perf_counter())

    def epoch_stats(self, epoch: int, batch: int) -> dict:
        t = self.times.get(epoch, [])
        gaps = [b - a for a, b in zip(t, t[1:])]  # step k+1 finished - step k finished: loading + compute
        if not gaps:
            return {"steps": len(t)}
        mean = (t[-1] - t[0]) / len(gaps)
        return {"steps": len(t), "timed_steps": len(gaps), "step_ms_median": 1000 * statistics.median(gaps),
                "step_ms_mean": 1000 * mean, "images_per_s": batch / mean}


# --------------------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------------------
def cmd_numba_warm(args) -> dict:
    """Compile the radiomics CPU kernels once (numba caches them on disk): run in the background at the start, so
    the training sections' fixed-region radiomics do not each pay the first compilation on a fresh checkout."""
    import torch

    from radclr.radiomics import extract
    from radclr.radiomics.kernels import AVAILABLE, numba_version

    if not AVAILABLE:
        return {"numba": None, "note": "numba unusable: the torch path runs instead"}
    images = _textures(4, 48, seed=1)
    masks = torch.zeros(4, 48, 48, dtype=torch.bool)
    masks[:, 8:40, 10:38] = True
    t0 = time.perf_counter()
    extract(images, masks)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    extract(images, masks)
    return {"numba": numba_version(), "first_call_s": first, "second_call_s": time.perf_counter() - t0}


def cmd_phantom(args) -> dict:
    from radclr.engine.config import resolve_config
    from radclr.training_data.prepare import open_dataset

    t0 = time.perf_counter()
    ds = open_dataset(resolve_config(base={}, overrides=_data_overrides(args))["data"])
    return {"n_images": len(ds), "size": _profile(args)["size"], "seconds": time.perf_counter() - t0}


def _resident_model(device, size: int, channels_last: bool):
    import torch
    from torch import nn

    from radclr.networks import build_image_encoder

    enc = build_image_encoder("resnet18", in_channels=1, seed=0)
    model = nn.Sequential(enc, nn.Linear(enc.out_dim, FINDINGS)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _resident_steps(device, size: int, batch: int, warm: int, steps: int, *, channels_last=False, amp="auto",
                    sampler_device=None) -> dict:
    """forward + backward + Adam on one batch that stays on the device: the GPU's own speed, no loading."""
    import torch

    from radclr.runtime.device import autocast_context

    torch.manual_seed(0)
    model = _resident_model(device, size, channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, FINDINGS, device=device) > 0.5).float()
    autocast, scaler = autocast_context(torch.device(device), amp)
    losses = []

    def step():
        with autocast:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss.detach()

    for _ in range(warm):
        step()
    _sync(device)
    with GpuSampler(sampler_device or str(device)) as sampler:
        t0 = time.perf_counter()
        for _ in range(steps):
            losses.append(step())
        _sync(device)
        dt = time.perf_counter() - t0
    return {"batch": batch, "size": size, "steps": steps, "channels_last": channels_last,
            "step_ms": 1000 * dt / steps, "images_per_s": batch * steps / dt, "gpu": sampler.summary(),
            "losses_finite": bool(torch.isfinite(torch.stack(losses)).all()),
            "grad_scale": float(scaler.get_scale()) if scaler is not None else None}


def cmd_throughput(args) -> dict:
    import torch

    from radclr.runs.train import train

    p = _profile(args)
    torch.backends.cudnn.benchmark = args.device.startswith("cuda")  # what trainer.deterministic: auto does there
    out = {"resident": [_resident_steps(args.device, p["size"], p["batch"], p["resident_warm"], p["resident_steps"],
                                        channels_last=cl) for cl in (False, True)]}
    loops = {}
    for augment in (True, False):
        clock = StepClock()
        run = Path(args.work) / f"throughput_{'aug' if augment else 'noaug'}"
        shutil.rmtree(run, ignore_errors=True)
        with GpuSampler(args.device) as sampler:
            train({}, run, [*_common_overrides(args), f"trainer.epochs={p['epochs']}",
                            f"trainer.augment.enabled={str(augment).lower()}", "trainer.precise_bn_batches=0"],
                  evaluate=False, progress=False, on_step=clock)
        from radclr.engine.config import resolve_config

        cfg = resolve_config(run / "config.yaml")
        last = _metrics_rows(run)[-1]
        stats = clock.epoch_stats(p["epochs"] - 1, p["batch"])
        loops["augment" if augment else "no_augment"] = {
            **stats, "train_time_s": float(last["train_time_s"]),
            "images_per_s_epoch": stats["steps"] * p["batch"] / float(last["train_time_s"]),
            "gpu_whole_run": sampler.summary(),
            "num_workers": cfg["trainer"]["num_workers"], "deterministic": cfg["trainer"]["deterministic"],
            "amp": cfg["trainer"]["amp"]}
    out["loop_last_epoch"] = loops
    best = max(r["images_per_s"] for r in out["resident"])
    out["loop_over_resident"] = {k: v.get("images_per_s", 0.0) / best for k, v in loops.items()}
    out["note"] = ("loop_over_resident near 1 = the GPU is fed; well below 1 = loading/augmentation or host syncs "
                   "bound the loop")
    return out


class _Enough(Exception):
    pass


def cmd_sync_audit(args) -> dict:
    import warnings

    import torch

    from radclr.runs.train import train

    cuda = args.device.startswith("cuda")
    audited = 5
    state = {"on": False, "steps": 0, "t": []}

    def on_step(stage, epoch, step):
        if state["on"]:
            state["steps"] += 1
            state["t"].append(time.perf_counter())
        if state["steps"] >= audited:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
            raise _Enough
        if not state["on"]:  # after the first step: CUDA context, cuDNN autotuning and the first CAMs are behind
            state["on"] = True
            state["t"].append(time.perf_counter())
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")

    run = Path(args.work) / "sync_audit"
    shutil.rmtree(run, ignore_errors=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            train(REPO / "configs/seed001/full.yaml", run, _byop_overrides(args, 1), evaluate=False, progress=False,
                  on_step=on_step)
        except _Enough:
            pass
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    sites: dict[str, int] = {}
    for w in syncs:
        try:
            where = f"{Path(w.filename).resolve().relative_to(REPO)}:{w.lineno}"
        except ValueError:
            where = f"{w.filename}:{w.lineno}"
        sites[where] = sites.get(where, 0) + 1
    top = sorted(sites.items(), key=lambda kv: -kv[1])[:25]
    t = state["t"]
    return {"steps_audited": state["steps"], "syncs": len(syncs), "syncs_per_step": len(syncs) / max(1, state["steps"]),
            "step_ms_under_audit": 1000 * (t[-1] - t[0]) / max(1, len(t) - 1) if len(t) > 1 else None,
            "sites": [{"where": w, "count": n,
                       "line": linecache.getline(str(REPO / w.rsplit(":", 1)[0]) if not w.startswith("/") else
                                                 w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])).strip()}
                      for w, n in top],
            "applies": "CUDA only (set_sync_debug_mode); the CPU dry run checks the plumbing" if not cuda else None}


def _textures(n: int, side: int, seed: int):
    """8-bit random-walk textures ``[n, side, side]`` (CXR-like smooth gradients with noise)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    walk = np.cumsum(np.cumsum(rng.normal(0, 2, (n, side, side)), 1), 2)
    walk = (walk - walk.min((1, 2), keepdims=True)) / np.ptp(walk, axis=(1, 2), keepdims=True) * 255
    return torch.from_numpy(np.round(walk))


def _varied_boxes(n: int, side: int, seed: int):
    """``[n, 4]`` x, y, w, h: widths and heights from side/16 to side/2 (Grad-CAM boxes of small nodules to large
    effusions)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    wh = rng.integers(max(4, side // 16), side // 2 + 1, size=(n, 2))
    xy = np.stack([rng.integers(0, side - wh[:, 0] + 1), rng.integers(0, side - wh[:, 1] + 1)], axis=1)
    return torch.from_numpy(np.concatenate([xy, wh], axis=1).astype(np.float64))


def _median_time(fn, runs: int, device) -> tuple[float, object]:
    fn()  # warm-up: CUDA context, kernels, numba compilation
    times, out = [], None
    for _ in range(runs):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def cmd_radiomics_boxes(args) -> dict:
    import torch

    from radclr.boxes import boxes_to_masks
    from radclr.radiomics.agreement import compare
    from radclr.radiomics.regions import RegionRadiomics

    p = _profile(args)
    regions = RegionRadiomics({"bin_width": 25})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = sorted({1, cores})
    saved = torch.get_num_threads()
    rows = []
    try:
        for side in p["rad_sizes"]:
            for n in p["rad_boxes"]:
                images = _textures(n, side, seed=side + n)
                boxes = _varied_boxes(n, side, seed=n)
                masks = boxes_to_masks(boxes, (side, side))
                row = {"image_px": side, "boxes": n, "box_px_mean": float((boxes[:, 2] * boxes[:, 3]).mean())}
                dev_images, dev_masks = images.to(args.device), masks.to(args.device)
                t_dev, v_dev = _median_time(lambda: regions.of_masks(dev_images, dev_masks), p["rad_runs"], args.device)
                row["device_ms"] = 1000 * t_dev
                for k in threads:
                    torch.set_num_threads(k)
                    t_cpu, v_cpu = _median_time(lambda: regions.of_masks(images, masks), p["rad_runs"], "cpu")
                    row[f"cpu_{k}_threads_ms"] = 1000 * t_cpu
                parity = compare(regions.names, v_dev.cpu().numpy(), regions.names, v_cpu.cpu().numpy())
                row["worst_rel_error_device_vs_cpu"] = parity["worst_rel_error"]
                row["parity_ok"] = parity["worst_rel_error"] <= 1e-4
                rows.append(row)
    finally:
        torch.set_num_threads(saved)
    return {"device": args.device, "cpu_threads": threads, "rows": rows,
            "all_parity_ok": all(r["parity_ok"] for r in rows),
            "note": "device_ms is the torch engine on --device; cpu_*_ms the CPU default backend (numba kernels)"}


def _smooth_cams(n: int, side: int, seed: int):
    """``[n, side, side]`` maps of 1-3 Gaussian blobs of varied width (Grad-CAM-like), ReLU'd noise added."""
    import torch

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64),
                            indexing="ij")
    maps = torch.zeros(n, side, side, dtype=torch.float64)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cy, cx = (torch.rand(2, generator=g, dtype=torch.float64) * side).tolist()
            s = float(side * (0.04 + 0.2 * torch.rand(1, generator=g, dtype=torch.float64)))
            a = float(0.3 + torch.rand(1, generator=g, dtype=torch.float64))
            maps[i] += a * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return (maps + 0.05 * torch.randn(n, side, side, generator=g, dtype=torch.float64)).clamp_min(0)


def cmd_cam_boxes(args) -> dict:
    import torch

    from radclr.cam.boxes import cam_to_box_tensor
    from radclr.cam.options import CamOptions

    p = _profile(args)
    options = [CamOptions(threshold=0.5, mode="relative", select="largest"),
               CamOptions(threshold=0.8, mode="percentile", select="max_mean", fallback="center"),
               CamOptions(threshold=0.4, mode="absolute", select="largest", fallback="none")]
    rows = []
    for side in p["cam_sizes"]:
        cams = _smooth_cams(32, side, seed=side)
        cams[0] = 0.0  # an uninformative map: the fallback
        for opt in options:
            t_cpu, (b_cpu, f_cpu) = _median_time(lambda: cam_to_box_tensor(cams, opt), 1, "cpu")
            dev = cams.to(args.device)
            t_dev, (b_dev, f_dev) = _median_time(lambda: cam_to_box_tensor(dev, opt), 1, args.device)
            rows.append({"map_px": side, "maps": 32, "mode": opt.mode, "select": opt.select, "fallback": opt.fallback,
                         "equal": bool(torch.equal(b_dev.cpu(), b_cpu) and torch.equal(f_dev.cpu(), f_cpu)),
                         "cpu_ms": 1000 * t_cpu, "device_ms": 1000 * t_dev})
    return {"device": args.device, "rows": rows, "all_equal": all(r["equal"] for r in rows)}


def _radclr(*argv: str) -> list[str]:
    return [sys.executable, "-m", "radclr", *argv]


def _run(cmd: list[str], log: Path, timeout: float) -> dict:
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO).returncode
    return {"rc": rc, "seconds": time.perf_counter() - t0}


def _metrics_rows(run: Path) -> list[dict]:
    import csv

    f = run / "metrics.csv"
    if not f.exists():
        return []
    with open(f) as fh:
        return list(csv.DictReader(fh))


def cmd_full_run(args) -> dict:
    """full.yaml on the phantoms: epoch 1, then SIGINT once the loop has checkpointed inside epoch 2 (the
    interrupt handler writes last.pt and exits), --resume to the end with evaluation, predict, report."""
    p = _profile(args)
    run = Path(args.work) / "full_run"
    shutil.rmtree(run, ignore_errors=True)
    log = Path(args.logs) / "full_run_commands.log"
    overrides = [*_byop_overrides(args, p["full_epochs"]), f"trainer.checkpoint_every_steps={p['ckpt_every']}"]
    out: dict = {"config": "configs/seed001/full.yaml", "overrides": overrides}
    cmd = _radclr("train", "configs/seed001/full.yaml", "--out", str(run), "--no-progress", "--no-eval", *overrides)
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
        ckpt = run / "checkpoints" / "last.pt"
        t0, seen, killed_at = time.perf_counter(), None, None
        while proc.poll() is None:
            time.sleep(0.2)
            if len(_metrics_rows(run)) >= 1 and ckpt.exists():
                mtime = ckpt.stat().st_mtime
                if seen is None:
                    seen = mtime  # the end-of-epoch-1 checkpoint
                elif mtime != seen:  # a mid-epoch-2 checkpoint: stop now, between two checkpoints
                    time.sleep(0.5)
                    proc.send_signal(signal.SIGINT)
                    killed_at = time.perf_counter() - t0
                    break
        rc = proc.wait(timeout=120)
    out["first_part"] = {"rc": rc, "interrupted_after_s": killed_at, "epochs_done": len(_metrics_rows(run))}
    if killed_at is None:
        out["first_part"]["note"] = "finished before the interrupt (too few steps per epoch?)"
    out["resume"] = _run(_radclr("train", "--resume", str(run), "--no-progress"), log, timeout=args.budget)
    rows = _metrics_rows(run)
    steps_per_epoch = None
    with contextlib.suppress(Exception):
        import pandas as pd

        steps_per_epoch = int(len(pd.read_csv(run / "splits.csv").query("split == 'train'")) // p["batch"])
    out["epochs"] = [{"epoch": int(r["epoch"]), "train_time_s": float(r["train_time_s"]),
                      "train_loss": float(r["train_loss"])} for r in rows]
    if steps_per_epoch:
        # timed: every epoch but the first (CUDA warm-up, cuDNN autotuning) and the interrupted one (two parts);
        # train_time_s includes the epoch's CAM-threshold calibration (BYOP's cost per epoch)
        skip = {1, out["first_part"]["epochs_done"] + 1}
        timed = [e for e in out["epochs"] if e["epoch"] not in skip]
        out["steps_per_epoch"] = steps_per_epoch
        out["timed_epochs"] = [e["epoch"] for e in timed]
        out["timed_steps"] = steps_per_epoch * len(timed)
        if timed:
            out["step_ms_mean_timed"] = 1000 * sum(e["train_time_s"] for e in timed) / out["timed_steps"]
            out["images_per_s_timed"] = 1000 * p["batch"] / out["step_ms_mean_timed"]
    out["metrics_json"] = (run / "metrics.json").exists()
    images = sorted((Path(args.work) / "cache").rglob("*.png"))
    if images:
        out["predict"] = _run(_radclr("predict", str(run), str(images[0]), "--device", args.device, "--out",
                                      str(run / "predict"), "--no-progress"), log, timeout=120)
    out["report"] = _run(_radclr("report", str(run), "--device", args.device, "--no-progress"), log, timeout=180)
    out["report"]["html"] = (run / "report.html").exists()
    return out


def cmd_memory_512(args) -> dict:
    import torch

    p = _profile(args)
    cuda = args.device.startswith("cuda")
    rows = []
    for batch in p["mem_batches"]:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            r = _resident_steps(args.device, p["mem_size"], batch, 1, 2)
        except torch.OutOfMemoryError:
            rows.append({"batch": batch, "out_of_memory": True})
            break
        if cuda:
            r["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 1024**3
            r["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 1024**3
        rows.append(r)
    total = torch.cuda.get_device_properties(0).total_memory / 1024**3 if cuda else None
    return {"size": p["mem_size"], "rows": rows, "device_total_gib": total}


def cmd_fp16(args) -> dict:
    import torch

    from radclr.runs.train import train

    p = _profile(args)
    out = {"resident": _resident_steps(args.device, p["size"], p["batch"], 1, p["fp16_steps"], amp="fp16")}
    run = Path(args.work) / "fp16_loop"
    shutil.rmtree(run, ignore_errors=True)
    clock = StepClock()
    train({}, run, [*_common_overrides(args), "trainer.epochs=1", "trainer.amp=fp16", "trainer.precise_bn_batches=0"],
          evaluate=False, progress=False, on_step=clock)
    rows = _metrics_rows(run)
    out["loop"] = {**clock.epoch_stats(0, p["batch"]), "train_loss": float(rows[-1]["train_loss"]),
                   "finite": bool(torch.isfinite(torch.tensor(float(rows[-1]["train_loss"]))))}
    if not args.device.startswith("cuda"):
        out["applies"] = "CUDA only (no autocast or GradScaler on the CPU); the dry run checks the plumbing"
    return out


def cmd_ddp(args) -> dict:
    import torch

    cuda = args.device.startswith("cuda")
    n_gpus = torch.cuda.device_count() if cuda else 0
    if cuda and n_gpus < 2:
        return {"skipped": f"{n_gpus} GPU(s): DDP needs 2"}
    run = Path(args.work) / "ddp"
    shutil.rmtree(run, ignore_errors=True)
    log = Path(args.logs) / "ddp_commands.log"
    overrides = [o for o in _byop_overrides(args, 2) if not o.startswith("trainer.device=")]
    overrides.append(f"trainer.device={'cuda' if cuda else 'cpu'}")
    env_threads = {"OMP_NUM_THREADS": "1"} if not cuda else {}
    os.environ.update(env_threads)
    r = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "radclr",
              "train", "configs/seed001/full.yaml", "--out", str(run), "--no-progress", "--no-eval", *overrides],
             log, timeout=args.budget)
    rows = _metrics_rows(run)
    return {**r, "processes": 2, "backend": "nccl" if cuda else "gloo",
            "epochs": [{"epoch": int(x["epoch"]), "train_time_s": float(x["train_time_s"]),
                        "train_loss": float(x["train_loss"])} for x in rows]}


def cmd_junit(args) -> dict:
    """Counts of a pytest JUnit XML report (the CUDA-marked tests) and the names of the failing ones."""
    import xml.etree.ElementTree as ET

    root = ET.parse(args.xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failing = [f"{c.get('classname')}::{c.get('name')}" for s in suites for c in s
               if c.find("failure") is not None or c.find("error") is not None]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failing": failing}


def cmd_merge(args) -> dict:
    """One JSON from the parts; a section without its part (killed by its time limit) is recorded as such."""
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
    steps = {k[len("step_"):]: v for k, v in merged.items() if k.startswith("step_")}
    for name, step in steps.items():
        if name not in merged and step.get("rc") not in (0, None):
            merged[name] = {"error": f"no result (rc {step['rc']}{', time limit' if step['rc'] == 124 else ''}); "
                                     f"see {step.get('log')}"}
    merged["failed_sections"] = sorted(k for k, v in merged.items() if isinstance(v, dict) and "error" in v)
    Path(args.out).write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return merged


SECTIONS = {"numba_warm": cmd_numba_warm, "phantom": cmd_phantom, "throughput": cmd_throughput, "sync_audit": cmd_sync_audit,
            "radiomics_boxes": cmd_radiomics_boxes, "cam_boxes": cmd_cam_boxes, "full_run": cmd_full_run,
            "memory_512": cmd_memory_512, "fp16": cmd_fp16, "ddp": cmd_ddp}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in SECTIONS:
        s = sub.add_parser(name)
        s.add_argument("--device", default="cuda")
        s.add_argument("--work", required=True, help="scratch folder shared by the sections")
        s.add_argument("--logs", default=".", help="folder for the commands' logs")
        s.add_argument("--part", required=True, help="JSON file to write")
        s.add_argument("--budget", type=float, default=300, help="seconds for a sub-command")
    j = sub.add_parser("junit")
    j.add_argument("xml")
    j.add_argument("--part", required=True)
    m = sub.add_parser("merge")
    m.add_argument("parts", nargs="+")
    m.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "merge":
        cmd_merge(args)
        return 0
    name = "cuda_tests" if args.cmd == "junit" else args.cmd
    t0 = time.perf_counter()
    try:
        result, rc = (cmd_junit if args.cmd == "junit" else SECTIONS[args.cmd])(args), 0
    except BaseException as e:  # noqa: BLE001 -- failing soft: the error goes into the JSON, the check goes on
        result = {"error": f"{type(e).__name__}: {e}".strip(),
                  "traceback": traceback.format_exc().strip().splitlines()[-12:]}
        rc = 1
    if isinstance(result, dict):
        result.setdefault("seconds", time.perf_counter() - t0)
    Path(args.part).write_text(json.dumps({name: result}, sort_keys=True, default=str) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
