"""Multi-process logic on 2 CPU processes (gloo): gathered contrastive losses give the single-process gradient,
and `torchrun --nproc_per_node 2 -m radclr train` runs a method end-to-end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from radclr.runtime.distributed import all_reduce_sums, any_rank, gather_with_grad
from radclr.losses import BidirectionalContrastiveLoss, NTXentLoss

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, x1, x2, w, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    lin = torch.nn.Linear(x1.shape[1], 8, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    n = x1.shape[0] // world
    sl = slice(rank * n, (rank + 1) * n)
    for name, loss_fn in (("ntxent", NTXentLoss(0.5)), ("bidir", BidirectionalContrastiveLoss(0.1, 0.3))):
        lin.zero_grad()
        z1, z2 = gather_with_grad(lin(x1[sl])), gather_with_grad(lin(x2[sl]))
        loss = loss_fn(z1, z2)
        loss.backward()
        g = lin.weight.grad.clone()
        dist.all_reduce(g)  # what DDP does: average the ranks' gradients
        g /= world
        if rank == 0:
            out[name] = (loss.detach(), g)
    dist.destroy_process_group()


def _sums_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    # BYOP reports its loop statistics on some steps only: the ranks' key sets differ
    mine = {"loss": 2.0, "#loss": 4.0, "box_change": 0.5, "#box_change": 1.0} if rank == 0 else \
        {"loss": 6.0, "#loss": 4.0, "cam_fallback": 0.25, "#cam_fallback": 2.0}
    out[rank] = all_reduce_sums(mine, torch.device("cpu"))
    out[f"any{rank}"] = (any_rank(rank == 1, torch.device("cpu")), any_rank(False, torch.device("cpu")))
    dist.destroy_process_group()


def test_epoch_sums_reduce_over_ranks_with_different_keys():
    out = mp.Manager().dict()
    mp.spawn(_sums_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    expected = {"loss": 8.0, "#loss": 8.0, "box_change": 0.5, "#box_change": 1.0, "cam_fallback": 0.25,
                "#cam_fallback": 2.0}
    assert out[0] == expected and out[1] == expected
    assert out["any0"] == out["any1"] == (True, False)  # one rank's stop/divergence stops every rank


def test_gathered_losses_match_single_process_gradient():
    torch.manual_seed(0)
    x1, x2, w = torch.randn(8, 5), torch.randn(8, 5), torch.randn(8, 5)
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), x1, x2, w, out), nprocs=2, join=True)
    for name, loss_fn in (("ntxent", NTXentLoss(0.5)), ("bidir", BidirectionalContrastiveLoss(0.1, 0.3))):
        lin = torch.nn.Linear(5, 8, bias=False)
        with torch.no_grad():
            lin.weight.copy_(w)
        loss = loss_fn(lin(x1), lin(x2))
        loss.backward()
        d_loss, d_grad = out[name]
        torch.testing.assert_close(d_loss, loss.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(d_grad, lin.weight.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("config", ["seed000_resnet18_radi.yaml", "seed004_correspondence.yaml", "seed001_full.yaml"])
def test_torchrun_two_processes_trains(config, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RADCLR_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(_free_port()),
           "-m", "radclr", "train", str(REPO / "configs" / "tiny" / config), "--out", str(run),
           "--no-progress", "trainer.epochs=2"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 * len(set(metrics["stage"]))  # rank 0 alone wrote one row per epoch
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["format"] == "radclr-checkpoint-1"
    assert (run / "metrics.json").exists()
