"""HLOP (neuroadapt.learn.hlop): Oja subspace rule against NumPy's SVD, projection, schedule, errors."""
import numpy as np
import pytest
import torch
from torch import nn

from neuroadapt.errors import ConfigError, UnsupportedOptionError
from neuroadapt.learn.hlop import HLOP, LateralSubspace, principal_angles


def _low_rank_data(n=40, k=5, rows=4000, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(n, k)))[0].T               # (k, n) orthonormal
    scales = np.linspace(3.0, 1.5, k)
    x = (rng.normal(size=(rows, k)) * scales) @ basis + noise * rng.normal(size=(rows, n))
    return x.astype(np.float32)


def test_oja_converges_to_top_principal_subspace():
    x = _low_rank_data()
    sub = LateralSubspace("fc", 40, lr=0.01, momentum=0.9, iterations=5, clamp=10.0)
    sub.add(5, torch.Generator().manual_seed(1))
    xt = torch.from_numpy(x)
    for i in range(0, len(x), 64):
        sub.hebbian(xt[i:i + 64])
    _, _, vt = np.linalg.svd(x - 0 * x.mean(0), full_matrices=False)  # uncentred, as the rule
    angles = principal_angles(sub.H.numpy(), vt[:5])
    assert angles.max() < 3.0, angles
    # rows become orthonormal: H H^T ~ I
    assert np.allclose(sub.H.numpy() @ sub.H.numpy().T, np.eye(5), atol=0.05)


def test_new_block_learns_residual_directions_and_old_rows_stay():
    x = _low_rank_data(k=6)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    sub = LateralSubspace("fc", 40, lr=0.01, momentum=0.9, iterations=5, clamp=10.0)
    sub.add(3, torch.Generator().manual_seed(1))
    xt = torch.from_numpy(x)
    for i in range(0, len(x), 64):
        sub.hebbian(xt[i:i + 64])
    sub.merge()
    old = sub.H.clone()
    sub.add(3, torch.Generator().manual_seed(2))
    for i in range(0, len(x), 64):
        sub.hebbian(xt[i:i + 64])
    assert torch.equal(sub.H[:3], old)
    assert principal_angles(sub.H.numpy(), vt[:6]).max() < 3.0


def test_projection_removes_subspace_component_linear_and_old_outputs_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4))
    h = HLOP(model, lr=0.01)
    x_old = torch.from_numpy(_low_rank_data(n=20, k=4, rows=2000, noise=0.0))
    h.begin_task({"0": 4, "2": 0})
    for i in list(range(0, 2000, 64)) * 4:       # a few epochs: Oja is slow on the weakest direction
        model(x_old[i:i + 64])
        h.hebbian_step(); h._clear()
    _, _, vt = np.linalg.svd(x_old.numpy(), full_matrices=False)
    assert principal_angles(h.subspaces["0"].H.numpy(), vt[:4]).max() < 1.0
    h.end_task()
    h.begin_task(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = model[0](x_old[:50]).detach()
    x_new = torch.randn(64, 20)
    before_new = model[0](x_new).detach()
    loss = model(x_new).pow(2).sum()
    opt.zero_grad(); loss.backward(); h.step()
    Ho = h.subspaces["0"].old
    assert (model[0].weight.grad @ Ho.t()).abs().max() < 1e-3 * model[0].weight.grad.abs().max()
    assert model[0].bias.grad is None                # 1-D parameters held from task 1 on
    opt.step()
    after = model[0](x_old[:50]).detach()
    change_old = (after - before).abs().max()
    change_new = (model[0](x_new).detach() - before_new).abs().max()
    assert change_old < 0.01 * change_new, (change_old, change_new)


@pytest.mark.parametrize("conv", ["conv2d", "conv1d", "linear_time"])
def test_input_and_weight_projection_agree(conv):
    torch.manual_seed(0)
    if conv == "conv2d":
        make = lambda: nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, stride=2), nn.Flatten(), nn.Linear(5 * 4 * 4, 3))
        x = torch.rand(2, 6, 3, 8, 8)  # (T, B, C, H, W) run step by step
    elif conv == "conv1d":
        make = lambda: nn.Sequential(nn.Conv1d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 10, 3))
        x = torch.rand(2, 6, 3, 10)
    else:
        make = lambda: nn.Sequential(nn.Linear(12, 7), nn.Linear(7, 3))
        x = torch.rand(2, 6, 12)
    grads = {}
    for mode in ("weight", "input"):
        torch.manual_seed(1)
        model = make()
        h = HLOP(model, lr=0.05, proj_type=mode, seed=3)
        h.begin_task(2)
        for t in range(x.shape[0]):
            model(x[t])
        h.hebbian_step(); h._clear()
        h.end_task(); h.begin_task(1)
        model.zero_grad()
        sum(model(x[t]).pow(2).sum() for t in range(x.shape[0])).backward()
        h.step()
        grads[mode] = model[0].weight.grad.clone()
    assert torch.allclose(grads["weight"], grads["input"], atol=1e-5, rtol=1e-4)
    assert grads["weight"].abs().max() > 0


def test_bptt_time_major_linear_records_all_steps():
    from neuroadapt.engine.models import SpikingClassifier

    model = SpikingClassifier(12, 3, hidden=(8,))
    h = HLOP(model, lr=0.01)
    h.begin_task(2)
    model(torch.rand(5, 4, 12).bernoulli())
    rec = h._records["layers.0.fc"]
    assert len(rec.inputs) == 1 and h._rows("layers.0.fc", rec.inputs[0]).shape == (20, 12)


def test_rate_input_averaged_in_the_hook_gives_the_same_update():
    """Hebbian input "rate" with weight projection keeps only the time-major call's rate (taken in
    the hook), not the raw input; the update equals one on the rates computed afterwards."""
    import copy
    from neuroadapt.engine.models import SpikingClassifier

    torch.manual_seed(0)
    model = SpikingClassifier(12, 3, hidden=(8,))
    h = HLOP(model, lr=0.05, hebbian_input="rate")
    h.begin_task(2)
    x = torch.rand(5, 4, 12).bernoulli()
    model(x)
    rec = h._records["layers.0.fc"]
    assert rec.inputs == [] and len(rec.hebb) == 1 and torch.equal(rec.hebb[0], x.mean(0))
    ref = copy.deepcopy(h.subspaces["layers.0.fc"])
    ref.hebbian(x.mean(0))
    h.hebbian_step()
    assert torch.equal(h.subspaces["layers.0.fc"].H, ref.H)
    h._clear()
    hi = HLOP(model, lr=0.05, hebbian_input="rate", proj_type="input")   # input projection keeps the inputs
    hi.begin_task(2)
    model(x)
    assert len(hi._records["layers.0.fc"].inputs) == 1 and len(hi._records["layers.0.fc"].hebb) == 1
    hi.remove(); h.remove()


def test_norm_frozen_after_first_task():
    model = nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))
    h = HLOP(model, lr=0.01)
    h.begin_task(2); h.end_task(); h.begin_task(1)
    model.train()
    mean = model[1].running_mean.clone()
    model(torch.randn(16, 6) + 3)
    assert torch.equal(mean, model[1].running_mean)


def test_bad_input_errors():
    model = nn.Sequential(nn.Linear(6, 4), nn.GRU(4, 4))
    with pytest.raises(UnsupportedOptionError, match=r"1 \(GRU\)"):
        HLOP(model, layers=["0", "1"])
    with pytest.raises(UnsupportedOptionError, match="GRU-only|no nn.Linear"):
        HLOP(nn.GRU(3, 3))
    h = HLOP(nn.Sequential(nn.Linear(6, 4)))
    with pytest.raises(ConfigError, match="exceed the layer's input dimension 6"):
        h.begin_task(7)
    h.begin_task(4)
    with pytest.raises(ConfigError, match="at most 2"):
        h.begin_task(3)
    with pytest.raises(ConfigError, match="no module"):
        HLOP(nn.Linear(3, 3), layers=["fc9"])
    with pytest.raises(UnsupportedOptionError, match="proj_type"):
        HLOP(nn.Linear(3, 3), proj_type="fold")


def test_fast_update_equals_reference_formula():
    """The block update (only new rows) equals oja_subspace_update with frozen rows zeroed."""
    from neuroadapt.learn.hlop import oja_subspace_update

    torch.manual_seed(0)
    x = torch.randn(50, 12, dtype=torch.float64)
    a = LateralSubspace("a", 12, lr=0.05, momentum=0.9, iterations=3, clamp=0.5, dtype=torch.float64)
    a.add(3, torch.Generator().manual_seed(0)); a.hebbian(x); a.merge(); a.add(2, torch.Generator().manual_seed(1))
    H, V = a.H.clone(), a.V.clone()
    for _ in range(3):
        V = 0.9 * V + 0.1 * oja_subspace_update(H, x, n_frozen=3, clamp=0.5)
        H = H + 0.05 * V
    a.hebbian(x)
    assert torch.allclose(a.H, H, atol=1e-12)


def _reference_hebbian(H, V, x, n_frozen, lr, momentum, clamp, iterations):
    """The update as written in the module doc, on the full H (frozen rows zeroed)."""
    from neuroadapt.learn.hlop import oja_subspace_update

    for _ in range(iterations):
        V = momentum * V + (1 - momentum) * oja_subspace_update(H, x, n_frozen=n_frozen, clamp=clamp)
        H = H + lr * V
    return H, V


@pytest.mark.parametrize("form", ["rows", "cov"])
@pytest.mark.parametrize("n_old,clamp", [(0, 10.0), (3, 10.0), (9, 10.0), (9, 0.05)])
def test_both_update_forms_equal_reference_formula(monkeypatch, form, n_old, clamp):
    """Rows form (x_res stacked with H_new) and covariance form (C = x^T x / B) give the reference
    update, with a small old block (factored projection), a large one (cached projector: 2k > n),
    and with the clamp active; float64, so only rounding separates them."""
    torch.manual_seed(0)
    n, rows, new = 12, 40, 2
    x = torch.randn(rows, n, dtype=torch.float64) + 0.5
    sub = LateralSubspace("a", n, lr=0.05, momentum=0.9, iterations=4, clamp=clamp, dtype=torch.float64)
    if n_old:
        sub.add(n_old, torch.Generator().manual_seed(0))
        sub.H += 0.01 * torch.randn(n_old, n, dtype=torch.float64)   # not exactly orthonormal
        sub.merge()
    sub.add(new, torch.Generator().manual_seed(1))
    sub.V[n_old:] = 0.1 * torch.randn(new, n, dtype=torch.float64)   # momentum from an earlier batch
    monkeypatch.setattr(LateralSubspace, "_cov_cheaper", lambda self, B: form == "cov")
    H, V = _reference_hebbian(sub.H.clone(), sub.V.clone(), x, n_old, 0.05, 0.9, clamp, 4)
    if clamp < 1:                                         # the clamp does bite in this case
        H_free, _ = _reference_hebbian(sub.H.clone(), sub.V.clone(), x, n_old, 0.05, 0.9, None, 4)
        assert (H_free - H).abs().max() > 1e-3
    sub.hebbian(x)
    assert torch.allclose(sub.H, H, rtol=0, atol=1e-12)
    assert torch.allclose(sub.V, V, rtol=0, atol=1e-12)


def test_update_forms_agree_in_float32_and_cost_model_picks_cov_for_many_rows():
    """float32, the bench's shapes in small: both forms within float tolerance of each other."""
    torch.manual_seed(0)
    n, k, new = 144, 86, 12
    x = (torch.rand(4096, n) < 0.2).float()
    subs = []
    for form in ("rows", "cov"):
        sub = LateralSubspace("c", n, lr=0.01, momentum=0.9, iterations=5, clamp=10.0)
        sub.add(k, torch.Generator().manual_seed(0)); sub.merge(); sub.add(new, torch.Generator().manual_seed(1))
        H0 = sub.H.clone()
        getattr(sub, "_hebbian_" + form)(x)
        assert (sub.H - H0).abs().max() > 1e-3                 # a real step (about 2e-3 here)
        subs.append(sub)
    assert subs[1]._cov_cheaper(4096) and not subs[1]._cov_cheaper(16)
    diff = (subs[0].H[k:] - subs[1].H[k:]).abs().max()
    assert diff < 1e-6, diff                                   # measured 1.5e-8
    assert torch.equal(subs[0].H[:k], subs[1].H[:k])


def test_projected_gradient_handed_over_or_copied_into_a_view():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 3))
    h = HLOP(model, lr=0.05)
    h.begin_task({"0": 7, "2": 2}); h.end_task(); h.begin_task(1)   # 2k > n on layer 0: cached projector
    x = torch.randn(8, 10)
    model(x).sum().backward()
    h._clear()
    G = model[0].weight.grad.clone()
    Ho = h.subspaces["0"].old
    expect = G - (G @ Ho.t()) @ Ho
    buf = torch.zeros(2 * G.numel())
    view = buf[G.numel():].view_as(G)                  # a gradient living in a bucket, as DDP's
    view.copy_(G)
    model[0].weight.grad = view
    h.project_gradients()
    assert model[0].weight.grad is view                # kept, written in place
    assert torch.allclose(view, expect, atol=1e-6)
    model[0].weight.grad = G.clone()
    h.project_gradients()
    assert torch.allclose(model[0].weight.grad, expect, atol=1e-6)


def test_projector_matrix_path_equals_factored_form():
    torch.manual_seed(0)
    sub = LateralSubspace("a", 10, lr=0.0, momentum=0.0, iterations=1, clamp=None, dtype=torch.float64)
    sub.add(7, torch.Generator().manual_seed(0))
    sub.H += 0.01 * torch.randn(7, 10, dtype=torch.float64)      # not exactly orthonormal
    sub.merge()
    rows = torch.randn(5, 10, dtype=torch.float64)
    expect = rows - (rows @ sub.H.t()) @ sub.H
    assert 2 * sub.n_old > sub.n
    assert torch.allclose(sub.project_rows(rows), expect, atol=1e-12)


def test_state_dict_round_trip_restores_projection():
    torch.manual_seed(0)
    make = lambda: nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    m1 = make()
    h1 = HLOP(m1, lr=0.05)
    h1.begin_task(3)
    m1(torch.randn(32, 8)); h1.hebbian_step(); h1._clear()
    h1.end_task(); h1.begin_task(2)
    state = h1.state_dict()
    m2 = make(); m2.load_state_dict(m1.state_dict())
    h2 = HLOP(m2, lr=0.05)
    h2.load_state_dict(state)
    assert h2.sizes() == h1.sizes() and h2.task == 1
    x = torch.randn(16, 8)
    for m, h in ((m1, h1), (m2, h2)):
        m.zero_grad(); m(x).sum().backward(); h.project_gradients()
    assert torch.allclose(m1[0].weight.grad, m2[0].weight.grad)
    assert m2[0].bias.grad is None
