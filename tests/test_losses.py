"""Losses: hand-computed values, plain-loop references, gradients, bad input (radclr.losses)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from radclr.losses import (BidirectionalContrastiveLoss, CrossModalNTXentLoss, FocalLoss, MemoryBankInfoNCELoss,
                           NTXentLoss)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _pdist(a, b, p):
    if p == math.inf:
        return max(abs(x - y) for x, y in zip(a, b))
    return sum(abs(x - y) ** p for x, y in zip(a, b)) ** (1.0 / p)


# --- seed 000 bidirectional ------------------------------------------------------------------------------
def test_bidirectional_hand_computed():
    # 1-D embeddings, tau = 1, p = 2: distances d(u_i, v_k) = [[0, 2], [1, 1]]
    u = torch.tensor([[0.0], [1.0]])
    v = torch.tensor([[0.0], [2.0]])
    loss = BidirectionalContrastiveLoss(temperature=1.0, lambda_=0.5, p=2)
    l_uv, l_vu = loss.terms(u, v)
    assert l_uv.tolist() == pytest.approx([math.log(1 + math.exp(-2)), math.log(2)])
    assert l_vu.tolist() == pytest.approx([math.log(1 + math.exp(-1)), math.log(1 + math.exp(-1))])
    expected = 0.5 * (0.5 * (math.log(1 + math.exp(-2)) + math.log(2)) + 0.5 * 2 * math.log(1 + math.exp(-1)))
    assert float(loss(u, v)) == pytest.approx(expected)
    # the distance is negated: pulling the positive closer lowers the loss
    closer = torch.tensor([[0.0], [1.2]])
    assert float(loss(u, closer)) < float(loss(u, v))


def _bidirectional_loop(u, v, tau, lam, similarity, p):
    u, v = u.tolist(), v.tolist()
    n = len(u)
    sim = (lambda a, b: _cos(a, b)) if similarity == "cosine" else (lambda a, b: -_pdist(a, b, p))
    total = 0.0
    for i in range(n):
        l_uv = -math.log(math.exp(sim(u[i], v[i]) / tau) / sum(math.exp(sim(u[i], v[k]) / tau) for k in range(n)))
        l_vu = -math.log(math.exp(sim(v[i], u[i]) / tau) / sum(math.exp(sim(v[i], u[k]) / tau) for k in range(n)))
        total += lam * l_uv + (1 - lam) * l_vu
    return total / n


@pytest.mark.parametrize("similarity,p", [("pnorm", 2), ("pnorm", 1), ("pnorm", 3), ("pnorm", math.inf),
                                          ("cosine", 2)])
@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_bidirectional_matches_loop(similarity, p, lam):
    u, v = _rand(6, 5, seed=1) * 0.3, _rand(6, 5, seed=2) * 0.3
    loss = BidirectionalContrastiveLoss(temperature=0.1, lambda_=lam, similarity=similarity, p=p)
    assert float(loss(u, v)) == pytest.approx(_bidirectional_loop(u, v, 0.1, lam, similarity, p), rel=1e-9)


def test_bidirectional_symmetry_and_constant_similarity():
    u, v = _rand(5, 4, seed=3), _rand(5, 4, seed=4)
    a = BidirectionalContrastiveLoss(lambda_=0.3)
    b = BidirectionalContrastiveLoss(lambda_=0.7)
    assert float(a(u, v)) == pytest.approx(float(b(v, u)))
    same = torch.ones(5, 4)
    assert float(a(same, same)) == pytest.approx(math.log(5))


def test_bidirectional_gradients_finite_at_zero_distance():
    u = _rand(4, 3, seed=5).float().requires_grad_()
    v = u.detach().clone().requires_grad_()  # every positive distance is exactly 0
    loss = BidirectionalContrastiveLoss()(u, v)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(u.grad).all() and torch.isfinite(v.grad).all()


def test_bidirectional_bad_input():
    loss = BidirectionalContrastiveLoss()
    with pytest.raises(ValueError, match=r"u \(4, 3\) and v \(4, 2\)"):
        loss(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"u \(4,\)"):
        loss(torch.zeros(4), torch.zeros(4))
    for kw in ({"temperature": 0}, {"lambda_": 1.5}, {"similarity": "dot"}, {"p": 0.5}):
        with pytest.raises(ValueError):
            BidirectionalContrastiveLoss(**kw)


# --- seed 003 NT-Xent ------------------------------------------------------------------------------------
@pytest.mark.parametrize("b", [1, 2, 4, 16])
def test_ntxent_identical_embeddings_is_log_2b_minus_1(b):
    z = torch.ones(b, 8)
    assert float(NTXentLoss(0.5)(z, z)) == pytest.approx(math.log(2 * b - 1), abs=1e-6)


def test_ntxent_hand_computed():
    # B = 2, views equal and orthogonal across images, tau = 1: every anchor sees pos 1, negatives 0 and 0
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(NTXentLoss(1.0)(z, z)) == pytest.approx(math.log(1 + 2 / math.e))


def _ntxent_loop(z1, z2, tau):
    z = z1.tolist() + z2.tolist()
    b = len(z1)
    total = 0.0
    for i in range(2 * b):
        j = i + b if i < b else i - b
        den = sum(math.exp(_cos(z[i], z[k]) / tau) for k in range(2 * b) if k != i)
        total += -math.log(math.exp(_cos(z[i], z[j]) / tau) / den)
    return total / (2 * b)


def test_ntxent_matches_loop_and_gradients():
    z1, z2 = _rand(7, 6, seed=6), _rand(7, 6, seed=7)
    assert float(NTXentLoss(0.5)(z1, z2)) == pytest.approx(_ntxent_loop(z1, z2, 0.5), rel=1e-9)
    a, c = z1.float().requires_grad_(), z2.float().requires_grad_()
    NTXentLoss(0.5)(a, c).backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(c.grad).all()
    zero = torch.zeros(3, 4, requires_grad=True)  # degenerate all-zero projections stay finite
    out = NTXentLoss(0.5)(zero, zero)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(zero.grad).all()


def test_ntxent_bad_input():
    with pytest.raises(ValueError, match=r"z1 \(4, 3\) and z2 \(5, 3\)"):
        NTXentLoss()(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(-1)


# --- seed 001 cross-modal NT-Xent ------------------------------------------------------------------------
def test_cross_modal_hand_computed():
    zi = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    zr = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    mask = torch.tensor([[0, 1, 0], [0, 0, 0], [1, 1, 0]], dtype=torch.bool)
    loss = CrossModalNTXentLoss(temperature=1.0)
    losses, used = loss.per_anchor(zi, zr, mask)
    assert used.tolist() == [True, False, True]  # anchor 1 has no allowed negative: skipped
    # anchor 0: pos cos = 1, negative image 1 cos = 0 -> log(e + 1) - 1
    # anchor 2: pos cos(-e1, e1) = -1, negatives image 0 (cos -1) and image 1 (cos 0)
    l0 = math.log(math.e + 1) - 1
    l2 = math.log(math.exp(-1) + math.exp(-1) + 1) + 1
    assert losses[0].item() == pytest.approx(l0) and losses[2].item() == pytest.approx(l2)
    assert math.isnan(losses[1].item())
    assert float(loss(zi, zr, mask)) == pytest.approx((l0 + l2) / 2)
    literal = CrossModalNTXentLoss(temperature=1.0, include_positive=False)
    assert float(literal(zi, zr, mask)) == pytest.approx(((0.0 - 1) + (math.log(math.exp(-1) + 1) + 1)) / 2)
    only0 = torch.tensor([True, True, False])
    assert float(loss(zi, zr, mask, anchor_mask=only0)) == pytest.approx(l0)


def _cross_modal_loop(zi, zr, mask, anchors, tau, include_positive):
    zi, zr = zi.tolist(), zr.tolist()
    n = len(zi)
    terms = []
    for a in range(n):
        if not anchors[a]:
            continue
        negs = [k for k in range(n) if k != a and mask[a][k]]
        if not negs:
            continue
        pos = math.exp(_cos(zi[a], zr[a]) / tau)
        den = sum(math.exp(_cos(zi[a], zi[k]) / tau) for k in negs) + (pos if include_positive else 0.0)
        terms.append(-math.log(pos / den))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("include_positive", [True, False])
def test_cross_modal_matches_loop(include_positive):
    n = 9
    zi, zr = _rand(n, 4, seed=8), _rand(n, 4, seed=9)
    g = torch.Generator().manual_seed(10)
    mask = torch.rand(n, n, generator=g) < 0.4
    mask.fill_diagonal_(True)  # the anchor itself must be ignored even if the mask allows it
    anchors = torch.rand(n, generator=g) < 0.7
    loss = CrossModalNTXentLoss(0.1, include_positive=include_positive)
    expected = _cross_modal_loop(zi, zr, mask.tolist(), anchors.tolist(), 0.1, include_positive)
    assert float(loss(zi, zr, mask, anchors)) == pytest.approx(expected, rel=1e-9)
    everyone = [[True] * n for _ in range(n)]
    assert float(loss(zi, zr)) == pytest.approx(_cross_modal_loop(zi, zr, everyone, [True] * n, 0.1,
                                                                  include_positive), rel=1e-9)


def test_cross_modal_identical_embeddings_and_no_anchor():
    z = torch.ones(4, 3)
    mask = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    # used anchors 0 (2 negatives), 1 (1), 3 (3): each log(1 + n_neg)
    expected = (math.log(3) + math.log(2) + math.log(4)) / 3
    assert float(CrossModalNTXentLoss(0.1)(z, z, mask)) == pytest.approx(expected, rel=1e-6)
    zi = _rand(4, 3, seed=11).float().requires_grad_()
    zr = _rand(4, 3, seed=12).float().requires_grad_()
    out = CrossModalNTXentLoss()(zi, zr, torch.zeros(4, 4, dtype=torch.bool))
    out.backward()
    assert float(out.detach()) == 0.0 and torch.equal(zi.grad, torch.zeros_like(zi))
    zi.grad = None
    CrossModalNTXentLoss()(zi, zr, mask).backward()
    assert torch.isfinite(zi.grad).all() and zi.grad.abs().sum() > 0


def test_cross_modal_bad_input():
    loss = CrossModalNTXentLoss()
    with pytest.raises(ValueError, match=r"negative_mask must be \[N, N\] = \[3, 3\], got \(3, 2\)"):
        loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"anchor_mask must be \[N\] = \[3\], got \(2,\)"):
        loss(torch.zeros(3, 2), torch.zeros(3, 2), None, torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"z_img \(3, 2\) and z_rad \(3, 4\)"):
        loss(torch.zeros(3, 2), torch.zeros(3, 4))


# --- seed 004 memory-bank InfoNCE ------------------------------------------------------------------------
def test_memory_bank_identical_entries_is_2_log_k_plus_1():
    k = 7
    crit = MemoryBankInfoNCELoss(bank_size=10, dim=4, num_negatives=k, temperature=0.07)
    e = F.normalize(torch.ones(4), dim=0)
    crit.bank_d[:] = e
    crit.bank_r[:] = e
    d = e.expand(3, 4).clone()
    loss = crit(d, d.clone(), torch.tensor([0, 4, 9]))
    assert float(loss) == pytest.approx(2 * math.log(k + 1), rel=1e-6)


def test_memory_bank_matches_loop_reference():
    crit = MemoryBankInfoNCELoss(bank_size=12, dim=5, num_negatives=6, temperature=0.2, seed=3)
    d, r = _rand(4, 5, seed=13).float(), _rand(4, 5, seed=14).float()
    index = torch.tensor([0, 3, 7, 11])
    state = crit.get_rng_state()
    loss = crit(d, r, index)
    crit.set_rng_state(state)  # replay the negatives the loss drew (their distribution is tested below)
    draw = crit.sample_negatives(index)
    bd, br = crit.bank_d.tolist(), crit.bank_r.tolist()
    dn, rn = F.normalize(d, dim=1).tolist(), F.normalize(r, dim=1).tolist()
    total = 0.0
    for b in range(4):
        negs = [int(x) for x in draw[b]]
        assert int(index[b]) not in negs
        dot = lambda a, c: sum(x * y for x, y in zip(a, c))  # noqa: E731
        pos = math.exp(dot(dn[b], rn[b]) / 0.2)
        l_dr = -math.log(pos / (pos + sum(math.exp(dot(dn[b], br[j]) / 0.2) for j in negs)))
        l_rd = -math.log(pos / (pos + sum(math.exp(dot(rn[b], bd[j]) / 0.2) for j in negs)))
        total += l_dr + l_rd
    assert float(loss) == pytest.approx(total / 4, rel=1e-5)


def test_memory_bank_negatives_exclude_own_index_and_cover_the_rest():
    crit = MemoryBankInfoNCELoss(bank_size=5, dim=2, num_negatives=2000)
    neg = crit.sample_negatives(torch.tensor([2, 0]))
    assert set(neg[0].tolist()) == {0, 1, 3, 4} and set(neg[1].tolist()) == {1, 2, 3, 4}


def test_memory_bank_pool_restricts_negatives_to_training_entries():
    crit = MemoryBankInfoNCELoss(bank_size=12, dim=2, num_negatives=3000)
    crit.set_pool([1, 3, 5, 7])
    neg = crit.sample_negatives(torch.tensor([3, 10]))  # 3: a training anchor; 10: a validation image
    assert set(neg[0].tolist()) == {1, 5, 7}
    assert set(neg[1].tolist()) == {1, 3, 5, 7}
    counts = torch.bincount(neg[0], minlength=12)[[1, 5, 7]].double()
    assert float(counts.min() / counts.max()) > 0.85  # uniform over the pool
    with pytest.raises(ValueError, match="set_pool"):
        crit.set_pool([4])
    with pytest.raises(ValueError, match="set_pool"):
        crit.set_pool([0, 12])


def test_memory_bank_update_rule_and_forward_does_not_touch_banks():
    crit = MemoryBankInfoNCELoss(bank_size=6, dim=3, num_negatives=4, momentum=0.5)
    before_d, before_r = crit.bank_d.clone(), crit.bank_r.clone()
    assert torch.allclose(before_d.norm(dim=1), torch.ones(6))
    d, r = _rand(3, 3, seed=15).float(), _rand(3, 3, seed=16).float()
    index = torch.tensor([1, 4, 1])  # a repeated index (e.g. DDP padding) is averaged
    crit(d, r, index)
    assert torch.equal(crit.bank_d, before_d) and torch.equal(crit.bank_r, before_r)
    crit.update(index, d, r)
    dn, rn = F.normalize(d, dim=1), F.normalize(r, dim=1)
    exp1 = F.normalize(0.5 * before_d[1] + 0.5 * (dn[0] + dn[2]) / 2, dim=0)
    exp4 = F.normalize(0.5 * before_r[4] + 0.5 * rn[1], dim=0)
    assert torch.allclose(crit.bank_d[1], exp1, atol=1e-6) and torch.allclose(crit.bank_r[4], exp4, atol=1e-6)
    untouched = [0, 2, 3, 5]
    assert torch.equal(crit.bank_d[untouched], before_d[untouched])
    assert torch.allclose(crit.bank_d.norm(dim=1), torch.ones(6))


def test_memory_bank_state_dict_makes_negatives_resumable(tmp_path):
    crit = MemoryBankInfoNCELoss(bank_size=50, dim=8, num_negatives=16, seed=1)
    d, r = _rand(4, 8, seed=17).float(), _rand(4, 8, seed=18).float()
    idx = torch.tensor([1, 2, 3, 4])
    crit(d, r, idx)  # advance the generator
    crit.update(idx, d, r)
    path = tmp_path / "bank.pt"
    torch.save(crit.state_dict(), path)
    expected = crit(d, r, idx)
    resumed = MemoryBankInfoNCELoss(bank_size=50, dim=8, num_negatives=16, seed=999)
    resumed.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(resumed(d, r, idx), expected)
    other = MemoryBankInfoNCELoss(bank_size=50, dim=8, num_negatives=16, seed=1)
    other.set_rng_state(resumed.get_rng_state())
    assert torch.equal(other.sample_negatives(idx), resumed.sample_negatives(idx))


def test_memory_bank_gradients_and_bad_input():
    crit = MemoryBankInfoNCELoss(bank_size=8, dim=4, num_negatives=5)
    d = _rand(3, 4, seed=19).float().requires_grad_()
    r = _rand(3, 4, seed=20).float().requires_grad_()
    crit(d, r, torch.tensor([0, 1, 2])).backward()
    assert torch.isfinite(d.grad).all() and torch.isfinite(r.grad).all()
    with pytest.raises(ValueError, match=r"index values must lie in \[0, 8\)"):
        crit(d, r, torch.tensor([0, 1, 8]))
    with pytest.raises(ValueError, match=r"index must be an integer tensor \[B\] = \[3\]"):
        crit(d, r, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"embeddings must be \[B, 4\]"):
        crit(torch.zeros(3, 5), torch.zeros(3, 5), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"d \(3, 4\) and r \(2, 4\)"):
        crit.update(torch.tensor([0, 1, 2]), torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="bank_size must be >= 2"):
        MemoryBankInfoNCELoss(bank_size=1, dim=4)
    with pytest.raises(ValueError, match="momentum"):
        MemoryBankInfoNCELoss(bank_size=4, dim=4, momentum=1.0)


# --- seed 001 focal loss ---------------------------------------------------------------------------------
def test_focal_hand_computed():
    loss = FocalLoss(alpha=0.25, gamma=2.0, reduction="none")
    out = loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    # logit 0 -> y' = 0.5: positive -0.25 * 0.5^2 * log 0.5, negative -0.75 * 0.5^2 * log 0.5
    assert out[0].tolist() == pytest.approx([0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)])
    logit = math.log(3.0)  # y' = 0.75
    v = FocalLoss(alpha=0.25, gamma=2.0)(torch.tensor([[logit]]), torch.tensor([[1.0]]))
    assert float(v) == pytest.approx(0.25 * 0.25 ** 2 * -math.log(0.75))


def _focal_loop(x, y, alpha, gamma):
    total, n = 0.0, 0
    for xr, yr in zip(x.tolist(), y.tolist()):
        for xi, yi in zip(xr, yr):
            if math.isnan(yi):
                continue
            p = 1 / (1 + math.exp(-xi))
            if yi == 1:
                total += -alpha * (1 - p) ** gamma * math.log(p)
            else:
                total += -(1 - alpha) * p ** gamma * math.log(1 - p)
            n += 1
    return total / n


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_matches_loop_with_unknown_labels(gamma):
    x = _rand(6, 4, seed=21) * 2
    g = torch.Generator().manual_seed(22)
    y = (torch.rand(6, 4, generator=g) < 0.4).double()
    y[torch.rand(6, 4, generator=g) < 0.3] = float("nan")
    assert float(FocalLoss(0.25, gamma)(x, y)) == pytest.approx(_focal_loop(x, y, 0.25, gamma), rel=1e-9)


def test_focal_gamma_zero_is_weighted_bce():
    x, y = _rand(5, 3, seed=23), (torch.rand(5, 3, generator=torch.Generator().manual_seed(24)) < 0.5).double()
    a = 0.25
    ref = (1 - a) * F.binary_cross_entropy_with_logits(x, y, pos_weight=torch.full((3,), a / (1 - a),
                                                                                   dtype=torch.float64))
    assert float(FocalLoss(alpha=a, gamma=0.0)(x, y)) == pytest.approx(float(ref), rel=1e-12)
    assert float(FocalLoss(alpha=None, gamma=0.0)(x, y)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(x, y)), rel=1e-12)


def test_focal_unknown_labels_get_no_gradient_and_all_unknown_is_zero():
    x = torch.zeros(2, 3, requires_grad=True)
    y = torch.tensor([[1.0, float("nan"), 0.0], [float("nan"), float("nan"), 1.0]])
    loss = FocalLoss()(x, y)
    loss.backward()
    assert x.grad[0, 1] == 0 and x.grad[1, 0] == 0 and x.grad[1, 1] == 0 and x.grad[0, 0] != 0
    known = FocalLoss(reduction="sum")(torch.zeros(1, 3), torch.tensor([[1.0, 0.0, 1.0]]))
    assert float(loss.detach()) == pytest.approx(float(known) / 3)
    x2 = torch.zeros(2, 2, requires_grad=True)
    out = FocalLoss()(x2, torch.full((2, 2), float("nan")))
    out.backward()
    assert float(out.detach()) == 0.0 and torch.equal(x2.grad, torch.zeros(2, 2))
    none = FocalLoss(reduction="none")(torch.zeros(2, 3), y)
    assert none.shape == (2, 3) and none[1, 0] == 0


def test_focal_extreme_logits_are_finite():
    x = torch.tensor([[100.0, -100.0]], requires_grad=True)
    out = FocalLoss()(x, torch.tensor([[0.0, 1.0]]))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


def test_focal_bad_input():
    with pytest.raises(ValueError, match=r"logits \(2, 3\) and targets \(2, 2\)"):
        FocalLoss()(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="targets must be 0, 1"):
        FocalLoss()(torch.zeros(1, 2), torch.tensor([[2.0, 0.0]]))
    for kw in ({"alpha": 1.5}, {"gamma": -1}, {"reduction": "avg"}):
        with pytest.raises(ValueError):
            FocalLoss(**kw)


# --- integration: encoder -> heads -> loss, gradients through every part ---------------------------------------
def _tiny_batch(n=8, features=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 32, 32, generator=g)
    radiomics = images.mean(dim=(1, 2, 3)).unsqueeze(1) * torch.linspace(1, 2, features) \
        + 0.05 * torch.randn(n, features, generator=g)
    return images, radiomics


def _descends(loss_fn, modules, lr=1e-3):
    """One plain gradient step on the composed pipeline (eval mode: a fixed function) lowers the loss, and every
    module receives finite, non-zero gradients."""
    for m in modules:
        m.eval()
    params = [p for m in modules for p in m.parameters()]
    loss0 = loss_fn()
    grads = torch.autograd.grad(loss0, params, allow_unused=True)
    for m in modules:
        own = {id(p) for p in m.parameters()}
        gs = [g for p, g in zip(params, grads) if id(p) in own and g is not None]
        assert gs and all(torch.isfinite(g).all() for g in gs) and sum(float(g.abs().sum()) for g in gs) > 0, m
    norm2 = sum(float((g ** 2).sum()) for g in grads if g is not None)
    with torch.no_grad():
        for p, g in zip(params, grads):
            if g is not None:
                p -= lr / max(1.0, norm2 ** 0.5) * g
        loss1 = loss_fn()
    assert float(loss1) < float(loss0.detach())


def test_blocks_compose_for_m1_m2_m3_m4():
    from radclr.data.hierarchy import hard_negative_mask
    from radclr.networks import (LinearClassifier, ProjectionHead, RadiomicsEncoder, build_image_encoder,
                                 simclr_projection_head)
    from radclr.transforms import CXRAugment

    images, radiomics = _tiny_batch()
    enc = build_image_encoder("resnet18", seed=0)
    g_i = ProjectionHead(enc.out_dim, 64, 16)
    f_r = RadiomicsEncoder(6, hidden_dims=(32, 32), out_dim=32).fit_standardizer(radiomics)
    g_r = ProjectionHead(32, 32, 16)
    parts = [enc, g_i, f_r, g_r]

    m1 = BidirectionalContrastiveLoss(temperature=0.1, p=2)  # seed 000
    _descends(lambda: m1(g_i(enc(images)), g_r(f_r(radiomics))), parts)

    labels = torch.tensor([[1, 0], [0, 1], [0, 0], [1, 0], [0, 1], [0, 0], [1, 1], [0, 0]], dtype=torch.float32)
    labels[5, 1] = float("nan")
    neg, anchors = hard_negative_mask(labels, ["Pneumonia", "Atelectasis"]), (labels == 1).any(dim=1)
    clf = LinearClassifier(enc.out_dim, 2)
    cl, fl = CrossModalNTXentLoss(0.1), FocalLoss()

    def m2():  # seed 001: lambda L_cl + (1 - lambda) L_fl
        y = enc(images)
        return 0.5 * cl(g_i(y), g_r(f_r(radiomics)), neg, anchors) + 0.5 * fl(clf(y), labels)

    _descends(m2, parts + [clf])

    head = simclr_projection_head(enc.out_dim)  # seed 003
    aug = CXRAugment(32)
    v1 = torch.stack([aug(x, generator=torch.Generator().manual_seed(i)) for i, x in enumerate(images)])
    v2 = torch.stack([aug(x, generator=torch.Generator().manual_seed(100 + i)) for i, x in enumerate(images)])
    m3 = NTXentLoss(0.5)
    _descends(lambda: m3(head(enc(v1)), head(enc(v2))), [enc, head])

    bank = MemoryBankInfoNCELoss(bank_size=8, dim=16, num_negatives=7, seed=0)  # seed 004
    index = torch.arange(8)
    rng = bank.get_rng_state()

    def m4():
        bank.set_rng_state(rng)  # the same negatives for both evaluations
        d, r = F.normalize(g_i(enc(images)), dim=1), F.normalize(g_r(f_r(radiomics)), dim=1)
        return bank(d, r, index)

    _descends(m4, parts)
    start = bank.bank_d.clone()
    with torch.no_grad():
        bank.update(index, g_i(enc(images)), g_r(f_r(radiomics)))
    assert not torch.allclose(bank.bank_d, start)
    assert torch.allclose(bank.bank_d.norm(dim=1), torch.ones(8), atol=1e-5)


def test_contrastive_losses_compute_in_float32_under_bf16_autocast():
    z1, z2 = _rand(8, 16, seed=5).float(), _rand(8, 16, seed=6).float()
    h1, h2 = z1.bfloat16(), z2.bfloat16()
    for loss in (NTXentLoss(0.1), BidirectionalContrastiveLoss(0.1, 0.5)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = loss(h1, h2)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, loss(h1.float(), h2.float()), rtol=1e-6, atol=1e-6)


def test_cross_modal_background_of_the_same_image():
    """The background term: exp(sim(z_r, z_bg) / tau) joins each anchor's denominator (masked rows have none)."""
    zi = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zr = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    bg = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    loss = CrossModalNTXentLoss(temperature=1.0)
    losses, used = loss.per_anchor(zi, zr, None, None, bg)
    # anchor 0: pos 1, negative image 1 (cos 0), background cos(z_r, bg) = 0
    assert losses[0].item() == pytest.approx(math.log(math.e + 1 + 1) - 1)
    # anchor 1: pos cos(e2, e1) = 0, negative image 0 (cos 0), background cos(e1, -e1) = -1
    assert losses[1].item() == pytest.approx(math.log(1 + 1 + math.exp(-1)))
    masked, _ = loss.per_anchor(zi, zr, None, None, bg, torch.tensor([False, True]))
    plain, _ = loss.per_anchor(zi, zr)
    assert masked[0].item() == pytest.approx(plain[0].item()) and masked[1].item() == pytest.approx(losses[1].item())
    # identical embeddings: log(1 + n_negatives + 1) per anchor
    z = torch.ones(3, 2)
    assert float(loss(z, z, background=z)) == pytest.approx(math.log(1 + 2 + 1), rel=1e-6)
    # a masked background row carries no gradient (its pooled view may be undefined)
    b = torch.ones(3, 2, requires_grad=True)
    loss(z, z, background=b, background_mask=torch.tensor([True, False, True])).backward()
    assert torch.equal(b.grad[1], torch.zeros(2)) and torch.isfinite(b.grad).all()


def test_focal_runs_in_float32_under_bf16_autocast():
    # issue 19 item 3: under autocast the logits arrive in bf16; the focal factor (1 - p_t)^gamma must be computed
    # from float32 logits (bf16 puts 1 - p of a confident prediction at exactly 0)
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 4)
    x = torch.randn(16, 6) * 4
    y = (torch.rand(16, 4) > 0.5).float()
    y[0, 1] = float("nan")
    loss_fn = FocalLoss(alpha=0.25, gamma=2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = lin(x)
        assert logits.dtype == torch.bfloat16  # what the loss receives under autocast
        got = loss_fn(logits, y)
    assert got.dtype == torch.float32
    want = loss_fn(logits.detach().float(), y)  # the same bf16 logits, widened first
    assert float(got.detach()) == float(want)
    assert float(got) == pytest.approx(_focal_loop(logits.detach().double(), y.double(), 0.25, 2.0), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what it was: the same formula on the bf16 logits
        in_bf16 = FocalLoss.forward.__wrapped__(loss_fn, logits, y)
    assert abs(float(in_bf16) - float(got)) > 1e-4 * float(got)


def test_focal_without_known_labels_is_a_connected_zero():
    logits = torch.randn(3, 2, requires_grad=True)
    loss = FocalLoss()(logits, torch.full((3, 2), float("nan")))
    loss.backward()
    assert float(loss) == 0.0 and torch.equal(logits.grad, torch.zeros(3, 2))
