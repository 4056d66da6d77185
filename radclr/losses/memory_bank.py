"""Two-view InfoNCE against two memory banks (seed 004 §2.2; Wu et al. CVPR 2018 instance discrimination,
Tian et al. 2019 CMC).

Seed 004 eq. (1), with the temperature tau = 0.07 of §3.2 and L2-normalised embeddings (§2.3)::

    L(d->r) = -log( exp(d.r / tau) / (exp(d.r / tau) + sum_{j=1..K} exp(d.r^(j) / tau)) )

"select d corresponding to r out of a set S = {r, r^(1), ..., r^(K)} that contains K incongruent radiomics
features": the positive r is the radiomics embedding of the **same sample in the current batch**, the K
negatives r^(j) are entries of the radiomics memory bank at indices drawn uniformly (with replacement) from
the M - 1 indices other than the anchor's own. L(r->d) is symmetric with the deep-feature bank, and eq. (2)
sums the two: ``L = mean_batch [L(d->r) + L(r->d)]``. One index draw per step serves both directions.

Banks
-----
``bank_d`` and ``bank_r`` are registered buffers ``[M, D]`` (M = training-set size, §3.2), initialised with
random unit vectors from a seeded generator, kept L2-normalised, and updated **only by an explicit call**::

    loss = criterion(d, r, index)   # forward never changes the banks
    loss.backward(); optimizer.step()
    criterion.update(index, d.detach(), r.detach())   # training steps only

``update`` is the momentum rule of Wu et al.: ``bank[i] <- normalise(m * bank[i] + (1 - m) * new_i)``
(m = 0.5 in seed 004). Repeated indices in one update (e.g. a DDP sampler padding the last batch) are averaged
first, so the result does not depend on their order. Under DDP, gather ``index, d, r`` from all ranks before
``update`` so that every rank keeps identical banks.

Reproducibility: negatives come from an explicit ``torch.Generator`` whose state is part of
``state_dict()`` (``_extra_state``) and is also available via ``get_rng_state`` / ``set_rng_state``, so a
resumed run draws the same negatives. Note that *every* forward (also in ``eval()``) draws negatives.

Testable equivalence: a bank whose entries all equal the positive gives ``L = 2 log(K + 1)``
(the analogue of ``log(M + 1)`` in lightly's memory-bank tests).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from radclr.losses._checks import check_pair, check_positive, full_precision


class MemoryBankInfoNCELoss(nn.Module):
    """``forward(d [B, D], r [B, D], index [B] long) -> scalar``; ``update(index, d, r)`` after the step.

    Parameters
    ----------
    bank_size: M, the number of entries (indices are ``0 .. M-1``; the engine uses dataset indices), >= 2.
    dim: embedding size D.
    num_negatives: K negatives per anchor, sampled with replacement from the *pool* minus the anchor. The pool
        is every entry until :meth:`set_pool` restricts it to the training images (seed 004: "capacity = entire
        training data set"): rows of validation/test images are never updated, so they must not be negatives.
    temperature: tau (seed 004: 0.07).
    momentum: m of the bank update (seed 004: 0.5), in [0, 1).
    seed: seed of the generator used for the initial bank and for negative sampling.
    """

    def __init__(self, bank_size: int, dim: int, num_negatives: int = 4096, temperature: float = 0.07,
                 momentum: float = 0.5, seed: int = 0):
        super().__init__()
        name = type(self).__name__
        if int(bank_size) < 2:
            raise ValueError(f"{name}: bank_size must be >= 2 (one positive and at least one other entry), "
                             f"got {bank_size}")
        if int(dim) < 1 or int(num_negatives) < 1:
            raise ValueError(f"{name}: dim and num_negatives must be >= 1, got dim={dim}, "
                             f"num_negatives={num_negatives}")
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1), got {momentum}")
        self.bank_size, self.dim, self.num_negatives = int(bank_size), int(dim), int(num_negatives)
        self.temperature = check_positive(name, "temperature", temperature)
        self.momentum = float(momentum)
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))
        init = torch.randn(2, self.bank_size, self.dim, generator=self.generator)
        self.register_buffer("bank_d", F.normalize(init[0], dim=1))
        self.register_buffer("bank_r", F.normalize(init[1], dim=1))
        self.register_buffer("in_pool", torch.ones(self.bank_size, dtype=torch.bool))

    def set_pool(self, indices) -> None:
        """Restrict negatives to the entries ``indices`` (the images the stage trains on; >= 2 of them)."""
        idx = torch.as_tensor(indices, dtype=torch.int64).flatten()
        if idx.numel() < 2 or int(idx.min()) < 0 or int(idx.max()) >= self.bank_size:
            raise ValueError(f"{type(self).__name__}.set_pool: need >= 2 indices in [0, {self.bank_size}), got "
                             f"{idx.numel()} (min {int(idx.min()) if idx.numel() else None})")
        self.in_pool.zero_()
        self.in_pool[idx.to(self.in_pool.device)] = True

    # --- generator state (checkpointed with the module) ---------------------------------------------------
    def get_rng_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.to(device="cpu", dtype=torch.uint8))

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.set_rng_state(state["generator"])

    # --- checks --------------------------------------------------------------------------------------------
    def _check(self, what: str, index: torch.Tensor, d: torch.Tensor, r: torch.Tensor) -> None:
        name = f"{type(self).__name__}.{what}"
        check_pair(name, d, r, "d", "r")
        if d.shape[1] != self.dim:
            raise ValueError(f"{name}: embeddings must be [B, {self.dim}], got d {tuple(d.shape)}")
        if index.shape != (d.shape[0],) or index.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{name}: index must be an integer tensor [B] = [{d.shape[0]}], "
                             f"got {index.dtype} {tuple(index.shape)}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.bank_size):
            raise ValueError(f"{name}: index values must lie in [0, {self.bank_size}), "
                             f"got min {int(index.min())}, max {int(index.max())}")

    def sample_negatives(self, index: torch.Tensor) -> torch.Tensor:
        """``[B, K]`` bank indices, uniform over ``pool - {index[b]}`` (with replacement)."""
        idx = index.detach().to("cpu", torch.int64)
        pool = torch.nonzero(self.in_pool.cpu()).flatten()
        pos = torch.searchsorted(pool, idx).clamp(max=len(pool) - 1)
        member = pool[pos] == idx  # anchors in the pool skip their own entry; others (validation) draw from all
        choices = (len(pool) - member.long()).to(torch.float64)
        u = torch.rand(idx.shape[0], self.num_negatives, generator=self.generator, dtype=torch.float64)
        draw = torch.minimum((u * choices[:, None]).long(), (choices[:, None] - 1).long())
        draw = draw + (member[:, None] & (draw >= pos[:, None])).long()
        return pool[draw]

    @full_precision
    def terms(self, d: torch.Tensor, r: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample ``(L(d->r) [B], L(r->d) [B])`` of seed 004 eq. (1) and its mirror."""
        self._check("forward", index, d, r)
        d, r = F.normalize(d, dim=1), F.normalize(r, dim=1)
        neg = self.sample_negatives(index).to(self.bank_r.device)
        pos = (d * r).sum(dim=1, keepdim=True)  # d_b . r_b
        neg_r = torch.einsum("bd,bkd->bk", d, self.bank_r[neg].to(d.dtype))
        neg_d = torch.einsum("bd,bkd->bk", r, self.bank_d[neg].to(r.dtype))
        zeros = torch.zeros(d.shape[0], dtype=torch.long, device=d.device)
        l_dr = F.cross_entropy(torch.cat([pos, neg_r], dim=1) / self.temperature, zeros, reduction="none")
        l_rd = F.cross_entropy(torch.cat([pos, neg_d], dim=1) / self.temperature, zeros, reduction="none")
        return l_dr, l_rd

    def forward(self, d: torch.Tensor, r: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        l_dr, l_rd = self.terms(d, r, index)
        return (l_dr + l_rd).mean()  # eq. (2), averaged over the batch

    @torch.no_grad()
    def update(self, index: torch.Tensor, d: torch.Tensor, r: torch.Tensor) -> None:
        """Momentum update of both banks at ``index`` with the new embeddings (then re-normalised)."""
        self._check("update", index, d, r)
        idx = index.to(self.bank_d.device, torch.int64)
        uniq, inverse = torch.unique(idx, return_inverse=True)
        for bank, new in ((self.bank_d, d), (self.bank_r, r)):
            new = F.normalize(new.detach().to(bank.device, bank.dtype), dim=1)
            summed = torch.zeros(uniq.shape[0], self.dim, dtype=bank.dtype, device=bank.device)
            summed.index_add_(0, inverse, new)
            counts = torch.bincount(inverse, minlength=uniq.shape[0]).to(bank.dtype).unsqueeze(1)
            mixed = self.momentum * bank[uniq] + (1.0 - self.momentum) * summed / counts
            bank[uniq] = F.normalize(mixed, dim=1)
