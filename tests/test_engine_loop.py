"""The training loop's device plumbing, checked on the CPU (issue 19 items 4 and 6): one persistent DataLoader per
stage whose batches do not depend on the worker count, epoch sums kept on the device and read at sync points
(bit-identical means), the divergence check every N steps naming the step, and the worker defaults."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import REPO

from radclr.engine.sums import EpochSums
from radclr.errors import ConfigError, RadclrError
from radclr.runs import train
from radclr.training_data import TrainingView
from radclr.training_data.loader import StageLoader, resolve_num_workers
from radclr.training_data.sampling import EpochBatches
from radclr.transforms import CXRAugment

TINY = str(REPO / "configs" / "tiny" / "seed000_resnet18.yaml")


def test_epoch_sums_equal_host_float_accumulation():
    g = torch.Generator().manual_seed(0)
    steps = [{"loss": torch.randn((), generator=g) * 3, "acc": torch.rand((), generator=g),
              "_hidden": torch.ones(()), "logits": torch.ones(2, 2)} for _ in range(50)]
    steps[7]["extra"] = torch.tensor(0.3, dtype=torch.bfloat16)
    host = {"cal": 0.25, "#cal": 1.0}
    for out in steps:  # what the loop did before: float() of every scalar at every step
        for k, v in out.items():
            if torch.is_tensor(v) and v.dim() == 0 and not k.startswith("_"):
                host[k] = host.get(k, 0.0) + float(v)
                host["#" + k] = host.get("#" + k, 0.0) + 1
    sums = EpochSums({"cal": 0.25, "#cal": 1.0}, torch.device("cpu"))
    for out in steps:
        sums.add(out)
    assert sums.values() == host  # bit-identical, same keys and counts


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from radclr.engine.config import resolve_config
    from radclr.training_data import prepare_data
    cfg = resolve_config(TINY, [])
    run = tmp_path_factory.mktemp("loader")
    return prepare_data(cfg, run, need_radiomics=False, progress=False)


def test_stage_loader_batches_do_not_depend_on_workers(prepared):
    """Two epochs with augmentation, a partly read pass, then precise-BN-like and validation-like passes: the
    persistent workers (2) give exactly the main process's batches (0 workers)."""
    aug = CXRAugment()
    idx = prepared.indices("train")
    got = {}
    for workers in (0, 2):
        views = {"train": TrainingView(prepared, prepared.labels_for_training(), augment=aug, views=2, seed=5),
                 "plain": TrainingView(prepared, prepared.labels_for_training(), augment=None, views=1, seed=5)}
        loader = StageLoader(views, num_workers=workers, device=torch.device("cpu"), seed=5)
        try:
            seen = []
            for epoch in (0, 1):
                batches = EpochBatches(idx, 4, 5, epoch).batches
                it = loader.passes("train", batches, epoch)
                if epoch == 0:
                    next(it)  # a pass left unfinished (an interrupted epoch) must not leak into the next
                    it = loader.passes("train", batches[1:], epoch)
                seen += [(b["index"], b["image"], b["image2"]) for b in it]
            seen += [(b["index"], b["image"], b["image"]) for b in loader.passes("plain", [idx[:3], idx[3:6]], 7)]
            got[workers] = seen
        finally:
            loader.close()
    assert len(got[0]) == len(got[2]) > 4
    for a, b in zip(got[0], got[2]):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    view = TrainingView(prepared, prepared.labels_for_training(), augment=aug, views=2, seed=5)
    view.set_epoch(1)  # the same samples as view[i] after set_epoch (what validation and inference did)
    first = EpochBatches(idx, 4, 5, 1).batches[0]
    second_epoch_first = got[0][len(EpochBatches(idx, 4, 5, 0)) - 1]  # (epoch 0 gave all but its first)
    assert torch.equal(torch.stack([view[int(i)]["image"] for i in first]), second_epoch_first[1])


def test_num_workers_defaults(monkeypatch):
    assert resolve_num_workers("auto", torch.device("cpu")) == 0
    assert resolve_num_workers(3, torch.device("cpu")) == 3
    import radclr.training_data.loader as L
    monkeypatch.setattr(L, "_cores", lambda: 16)
    assert resolve_num_workers("auto", torch.device("cuda", 0)) == 14
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun with 4 GPUs on the node: the cores are shared
    assert resolve_num_workers("auto", torch.device("cuda", 0)) == 3
    for bad in (-1, "many", True):
        with pytest.raises(ConfigError, match="num_workers"):
            resolve_num_workers(bad, torch.device("cpu"))


def _weights(run):
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_reading_every_n_steps_changes_nothing(tmp_path):
    """Reads every 3 steps (what CUDA does every 25) train exactly as reads at every step."""
    runs = {}
    for n in (1, 3):
        runs[n] = train(TINY, tmp_path / f"n{n}", ["trainer.epochs=2", f"trainer.sync_every_steps={n}",
                                                   "trainer.checkpoint_every_steps=2"], progress=False, evaluate=False)
    a, b = _weights(tmp_path / "n1"), _weights(tmp_path / "n3")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ma = pd.read_csv(tmp_path / "n1" / "metrics.csv").drop(columns=["time_s", "train_time_s"])
    mb = pd.read_csv(tmp_path / "n3" / "metrics.csv").drop(columns=["time_s", "train_time_s"])
    pd.testing.assert_frame_equal(ma, mb)


def test_divergence_found_at_the_next_read_names_its_step(tmp_path, monkeypatch):
    from radclr.methods import method_class
    cls = method_class("supervised")
    original = cls.training_step
    calls = {"n": 0}

    def step(self, batch):
        out = original(self, batch)
        calls["n"] += 1
        if calls["n"] == 2:  # the second step's loss is NaN
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(cls, "training_step", step)
    with pytest.raises(RadclrError, match=r"epoch 1 step 2: loss is nan \(diverged"):
        train(TINY, tmp_path / "run", ["trainer.epochs=1", "trainer.sync_every_steps=3"], progress=False,
              evaluate=False)
    assert calls["n"] == 3  # found at the read after step 3, not before
