"""BYOP under DDP (issue 19 item 2): its cross-modal contrast spans every rank's batch -- on 2 gloo CPU processes
with 4 images each, the loss (mean over the ranks) and the averaged gradient of every parameter equal those of one
process training on the 8 images."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from radclr.methods import MethodContext, method_class
from radclr.radiomics import feature_names
from radclr.radiomics.regions import RegionRadiomics

S = 64
FINDINGS = ["Mass", "Nodule", "Effusion"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch() -> dict:
    """Eight images with a bright blob each; anchors on both ranks' halves, normals and a ground-truth box."""
    g = torch.Generator().manual_seed(3)
    x = torch.full((8, 1, S, S), 0.1)
    for i in range(8):
        r, c = (int(v) for v in torch.randint(4, S - 16, (2,), generator=g))
        x[i, 0, r:r + 12, c:c + 12] = 0.9
    x = torch.round(x * 255) / 255
    labels = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 1, 0], [1, 0, 1],
                           [0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]])
    whole = torch.tensor([[0.0, 0, S, S]] * 8)
    box = whole.clone()
    box[2] = torch.tensor([10.0, 12, 20, 16])
    rad = RegionRadiomics({"bin_width": 25.0}).of_boxes(torch.round(x[:, 0].double() * 255), box).float()
    return {"image": x, "index": torch.arange(8), "label": labels, "has_box": torch.arange(8) == 2, "box": box,
            "no_finding": (labels == 0).all(dim=1), "radiomics": rad}


def _method(world: int, rank: int, options: dict):
    torch.manual_seed(0)
    ctx = MethodContext(findings=FINDINGS, radiomics_names=feature_names(), image_size=S, dataset_size=8,
                        world_size=world, rank=rank,
                        model_cfg={"encoder": "resnet18", "encoder_options": {"width": 0.25, "no_max_pool": True},
                                   "weights": None, "proj_hidden": 32, "proj_dim": 16,
                                   "radiomics_hidden": [32, 32], "radiomics_dim": 16},
                        extra={"radiomics_cfg": {"bin_width": 25.0}})
    method = method_class("byop")(nn.ModuleDict(), ctx, options)
    method.parts["radiomics_encoder"].standardizer.fit(_batch()["radiomics"])
    method.train()
    method.encoder.eval()  # BatchNorm from running statistics: the per-image path does not depend on the batch
    return method


def _step(method, batch) -> tuple[torch.Tensor, dict]:
    out = method.training_step(batch)
    out["loss"].backward()
    grads = {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in method.named_parameters()
             if p.requires_grad}
    return out, grads


def _worker(rank, world, port, options, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    method = _method(world, rank, options)
    batch = _batch()
    n = 8 // world
    mine = {k: v[rank * n:(rank + 1) * n] for k, v in batch.items()}
    res, grads = _step(method, mine)
    loss = res["loss"].detach().clone()
    dist.all_reduce(loss)  # the mean of the ranks' losses
    for g in grads.values():  # what DDP does: average the ranks' gradients
        dist.all_reduce(g)
        g /= world
    if rank == 0:
        out["result"] = (loss / world, res["loss_contrastive"], grads)
    dist.destroy_process_group()


@pytest.mark.parametrize("extra", [{}, {"contrastive_grad_bound": 1e9}],
                         ids=["plain", "grad-bound"])  # the bound's gradient probes run through the gathered contrast
def test_byop_contrast_over_two_ranks_equals_one_process(extra):
    options = {"loss": "focal", "negatives": "hierarchy", "cam_threshold": 0.6, "embedding_pool": "region",
               "background_negative": True, **extra}
    single = _method(1, 0, options)
    res, grads = _step(single, _batch())
    assert float(res["loss_contrastive"]) > 0
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(2, _free_port(), options, out), nprocs=2, join=True)
    d_loss, d_contrastive, d_grads = out["result"]
    torch.testing.assert_close(d_contrastive, res["loss_contrastive"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d_loss, res["loss"].detach(), rtol=1e-5, atol=1e-6)
    assert set(d_grads) == set(grads)
    moved = 0
    for name, g in grads.items():
        torch.testing.assert_close(d_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
        moved += bool(g.abs().sum() > 0)
    assert moved > 10  # encoder, heads and radiomics branch all receive gradient
