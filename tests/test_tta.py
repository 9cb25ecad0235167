"""Test-time adaptation methods (neuroadapt.learn.tta): interface, each method's update, bad input."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from neuroadapt.errors import InvalidInputError, UnsupportedOptionError
from neuroadapt.learn.tta import BN, EATA, NHL, Source, Tent, entropy, make_method
from neuroadapt.learn.tta.hebbian import conv_patches, soft_wta, softhebb_conv_delta, softhebb_delta
from neuroadapt.learn.tta.models import ConvNet, SpikingConvNet

torch.set_num_threads(1)


def _model(kind="cnn", seed=0):
    torch.manual_seed(seed)
    m = ConvNet(width=4) if kind == "cnn" else SpikingConvNet(width=4, n_steps=3)
    # give the batch norms non-trivial running statistics, as a trained model has
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(16, 1, 16, 16))
    m.eval()
    return m


def _x(n=8, seed=1):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------- SoftHebb rule
def _softhebb_loop(x, w, tau, anti=False):
    """The rule written out per presentation and neuron (NumPy, float64)."""
    dw = np.zeros_like(w)
    for xi in x:
        u = w @ xi
        e = np.exp((u - u.max()) / tau)
        y = e / e.sum()
        if anti:
            y = np.where(np.arange(len(u)) == np.argmax(u), y, -y)
        for k in range(w.shape[0]):
            dw[k] += y[k] * (xi - u[k] * w[k])
    return dw / len(x)


@pytest.mark.parametrize("anti", [False, True])
def test_softhebb_delta_matches_loop(anti):
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(50, 7)), rng.normal(size=(4, 7)) * 0.5
    got = softhebb_delta(torch.from_numpy(x), torch.from_numpy(w), tau=0.7, anti_hebbian=anti).numpy()
    np.testing.assert_allclose(got, _softhebb_loop(x, w, 0.7, anti), rtol=1e-10, atol=1e-12)


def test_soft_wta_rows_and_hard_limit():
    u = torch.randn(20, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    top2 = u.topk(2, dim=1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 0.002  # gap/tau > 20: tau -> 0 is one-hot to 1e-6
    y = soft_wta(u, 1.0)
    torch.testing.assert_close(y.sum(1), torch.ones(20, dtype=torch.float64))
    hard = soft_wta(u, 1e-4)  # tau -> 0: hard winner-take-all
    torch.testing.assert_close(hard, nn.functional.one_hot(u.argmax(1), 5).double(), atol=1e-6, rtol=0)
    with pytest.raises(InvalidInputError, match="tau"):
        soft_wta(u, 0.0)


def test_conv_delta_uses_every_patch():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False).double()
    x = torch.rand(2, 2, 5, 5, dtype=torch.float64)
    P = conv_patches(x, conv)
    assert P.shape == (2 * 25, 18)
    # the patches reproduce the convolution itself
    u = (P @ conv.weight.reshape(3, -1).T).reshape(2, 25, 3).permute(0, 2, 1).reshape(2, 3, 5, 5)
    torch.testing.assert_close(u, conv(x))
    got = softhebb_conv_delta(x, conv, tau=0.5)
    want = _softhebb_loop(P.numpy(), conv.weight.detach().reshape(3, -1).numpy(), 0.5)
    np.testing.assert_allclose(got.reshape(3, -1).numpy(), want, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------- methods
@pytest.mark.parametrize("kind", ["cnn", "snn"])
def test_source_is_the_model_and_takes_one_sample(kind):
    m = _model(kind)
    x = _x()
    with torch.no_grad():
        want = m(x)
    meth = Source(copy.deepcopy(m))
    torch.testing.assert_close(meth(x), want)
    assert meth(x[:1]).shape == (1, 10)


@pytest.mark.parametrize("name", ["bn", "tent", "eata", "nhl"])
def test_batch_of_one_is_refused(name):
    opts = {"fisher_alpha": 0.0} if name == "eata" else {}
    meth = make_method(name, _model(), **opts)
    with pytest.raises(InvalidInputError, match="at least 2 samples"):
        meth(_x(1))


def test_bn_uses_test_batch_statistics():
    m = _model()
    x = _x(16)
    meth = BN(copy.deepcopy(m))
    ref = copy.deepcopy(m).train()  # batch statistics in every batch norm
    with torch.no_grad():
        torch.testing.assert_close(meth(x), ref(x))
        assert not torch.allclose(meth(x), m(x))  # differs from the source (running statistics)


@pytest.mark.parametrize("kind", ["cnn", "snn"])
def test_tent_moves_only_norm_affine_and_lowers_entropy(kind):
    m = _model(kind)
    x = _x(16)
    meth = Tent(copy.deepcopy(m), lr=1e-2)
    with torch.no_grad():
        h0 = entropy(meth.model(x)).mean()
    for _ in range(5):
        meth(x)
    with torch.no_grad():
        h1 = entropy(meth.model(x)).mean()
    assert h1 < h0
    src = dict(m.named_parameters())
    for name, p in meth.model.named_parameters():
        changed = not torch.equal(p, src[name])
        assert changed == (name.startswith("bn")), name
    meth.reset()
    for (n, a), b in zip(meth.model.state_dict().items(), m.state_dict().values()):
        assert torch.equal(a, b), n


def test_tent_refuses_model_without_normalisation():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
    with pytest.raises(UnsupportedOptionError, match="normalisation"):
        Tent(net)
    with pytest.raises(UnsupportedOptionError, match="BatchNorm"):
        BN(net)
    with pytest.raises(UnsupportedOptionError, match="neuro-modulator"):
        NHL(net)
    with pytest.raises(UnsupportedOptionError, match="Conv2d"):
        NHL(nn.Sequential(nn.Flatten(), nn.Linear(256, 10), nn.BatchNorm1d(10)))


def test_eata_filters_and_regularises():
    m = _model()
    x = _x(16)
    with pytest.raises(InvalidInputError, match="fisher_data"):
        EATA(copy.deepcopy(m))
    # no sample is reliable enough (margin ~0): nothing to learn, no parameter moves
    meth = EATA(copy.deepcopy(m), e_margin_frac=1e-6, fisher_alpha=0.0, lr=1e-2)
    meth(x)
    assert meth.n_used == 0
    assert all(torch.equal(a, b) for a, b in zip(meth.model.parameters(), m.parameters()))
    # every sample reliable: it updates; a strong Fisher anchor keeps the parameters nearer the source
    free = EATA(copy.deepcopy(m), e_margin_frac=10.0, d_margin=2.0, fisher_alpha=0.0, lr=1e-2)
    tied = EATA(copy.deepcopy(m), fisher_data=_x(32, 5), e_margin_frac=10.0, d_margin=2.0,
                fisher_alpha=1e6, lr=1e-2)
    assert all(bool((f >= 0).all()) for f in tied.fisher)
    for _ in range(10):
        free(x), tied(x)

    def drift(meth):
        return sum(float((p.detach() - a).abs().sum()) for p, a in zip(meth.params, meth.anchor))
    assert free.n_used > 0 and drift(free) > 0
    assert drift(tied) < drift(free)


@pytest.mark.parametrize("kind", ["cnn", "snn"])
def test_nhl_hebbian_conv_and_modulator_only(kind):
    m = _model(kind)
    x = _x(16)
    meth = NHL(copy.deepcopy(m), lr=1e-2, hebb_lr=0.05)
    conv_in = meth.conv_input(x)
    torch.testing.assert_close(conv_in, x)  # the first conv sees the image itself
    w0 = meth.conv.weight.detach().clone()
    want = w0 + 0.05 * softhebb_conv_delta(x, meth.conv, 1.0)
    want = want * (w0.flatten(1).norm(dim=1) / want.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    meth(x)
    torch.testing.assert_close(meth.conv.weight.detach(), want)
    # filter norms kept at the source norms; only conv1 and the modulator (bn1) moved
    torch.testing.assert_close(meth.conv.weight.flatten(1).norm(dim=1), w0.flatten(1).norm(dim=1))
    src = dict(m.named_parameters())
    for name, p in meth.model.named_parameters():
        assert (not torch.equal(p, src[name])) == (name.startswith(("conv1", "bn1"))), name
    meth.reset()
    assert torch.equal(meth.conv.weight, m.conv1.weight)


def test_nhl_without_hebbian_is_entropy_on_the_modulator():
    m = _model()
    x = _x(16)
    meth = NHL(copy.deepcopy(m), lr=1e-2, hebb_lr=0.0)
    meth(x)
    assert torch.equal(meth.conv.weight, m.conv1.weight)
    assert not torch.equal(meth.model.bn1.weight, m.bn1.weight)
    assert torch.equal(meth.model.bn2.weight, m.bn2.weight)


def test_nhl_anchor_and_options():
    m = _model()
    meth = NHL(copy.deepcopy(m), hebb_lr=0.5, anchor=1.0, lr=0.0)
    meth(_x(16))
    torch.testing.assert_close(meth.conv.weight.detach(), m.conv1.weight.detach())  # anchor 1: back to source
    for bad in ({"anchor": 2.0}, {"tau": 0.0}, {"hebb_lr": -1.0}):
        with pytest.raises(InvalidInputError):
            NHL(copy.deepcopy(m), **bad)
    with pytest.raises(UnsupportedOptionError, match="modulator"):
        NHL(copy.deepcopy(m), modulator="everything")
    with pytest.raises(UnsupportedOptionError, match="unknown test-time adaptation method"):
        make_method("cotta", m)


def test_bad_batches():
    meth = Source(_model())
    with pytest.raises(InvalidInputError, match="NaN"):
        meth(torch.full((2, 1, 16, 16), float("nan")))
    with pytest.raises(Exception, match="batch"):
        meth(torch.rand(16))


def test_centred_patches_keep_zero_mean_filters_zero_mean():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight -= conv.weight.mean((1, 2, 3), keepdim=True)  # zero-mean (edge-like) filters
    x = torch.rand(3, 1, 6, 6, dtype=torch.float64) + 0.5  # bright images: a strong mean-intensity component
    P = conv_patches(x, conv)
    got = softhebb_conv_delta(x, conv, 0.5, center_patches=True)
    want = _softhebb_loop((P - P.mean(1, keepdim=True)).numpy(), conv.weight.detach().reshape(4, -1).numpy(), 0.5)
    np.testing.assert_allclose(got.reshape(4, -1).numpy(), want, rtol=1e-10, atol=1e-12)
    assert float(got.mean((1, 2, 3)).abs().max()) < 1e-12  # the update has no DC part
    plain = softhebb_conv_delta(x, conv, 0.5)
    assert float(plain.mean((1, 2, 3)).abs().max()) > 1e-3  # without centring it pulls towards the mean patch


def test_nhl_all_norms_modulator_keeps_classifier_frozen():
    m = _model("snn")
    meth = NHL(copy.deepcopy(m), lr=1e-2, hebb_lr=0.05, modulator="all_norms", center_patches=True)
    meth(_x(16))
    src = dict(m.named_parameters())
    for name, p in meth.model.named_parameters():
        assert (not torch.equal(p, src[name])) == (name.startswith(("conv1", "bn"))), name
    assert torch.equal(meth.model.classifier.weight, m.classifier.weight)


# ------------------------------------------------------- NHL options against Hebbian accumulation
def test_nhl_hebb_decay_lowers_the_rate_and_restarts_after_reset():
    m = _model()
    meth = NHL(copy.deepcopy(m), lr=0.0, hebb_lr=0.04, hebb_decay=2.0, keep_norm=False, center_patches=True)
    rates = []
    for i in range(3):
        rates.append(meth.hebb_rate())
        x = _x(16, seed=10 + i)
        w0 = meth.conv.weight.detach().clone()
        dw = softhebb_conv_delta(x, meth.conv, 1.0, center_patches=True)
        meth(x)
        torch.testing.assert_close(meth.conv.weight.detach(), w0 + rates[-1] * dw)  # the step used that rate
    assert rates == pytest.approx([0.04, 0.04 / 1.5, 0.04 / 2.0])
    meth.reset()
    assert meth.hebb_rate() == pytest.approx(0.04)
    assert NHL(copy.deepcopy(m), hebb_lr=0.04).hebb_rate() == 0.04  # off by default: constant rate


def test_nhl_max_drift_bounds_every_filter():
    m = _model()
    free = NHL(copy.deepcopy(m), lr=0.0, hebb_lr=2.0, keep_norm=False)
    bound = NHL(copy.deepcopy(m), lr=0.0, hebb_lr=2.0, keep_norm=False, max_drift=0.05)
    for i in range(3):
        free(_x(16, seed=i))
        bound(_x(16, seed=i))
    w_src = m.conv1.weight.detach().flatten(1)
    rel = lambda meth: (meth.conv.weight.detach().flatten(1) - w_src).norm(dim=1) / w_src.norm(dim=1)
    assert float(rel(free).min()) > 0.05  # without the bound every filter moves further
    assert float(rel(bound).max()) <= 0.05 + 1e-6
    assert float(rel(bound).max()) > 0.049  # ... and the bound is reached, not a no-op


def test_nhl_shift_reset_puts_the_first_layer_back_on_a_jump_only():
    m = _model()
    meth = NHL(copy.deepcopy(m), lr=0.0, hebb_lr=0.5, shift_reset=0.5, center_patches=True)
    a = lambda s: _x(16, seed=s) * 0.2  # one "domain": dim images
    meth(a(1))
    meth(a(2))
    assert meth.n_shifts == 0 and meth.hebb_t == 2  # same distribution: no shift, W1 keeps moving
    assert not torch.equal(meth.conv.weight, m.conv1.weight)
    prev = meth.prev_stats
    b = 1.0 - _x(16, seed=3) * 0.2  # a new domain: bright, inverted
    assert meth.shift_score(prev, meth.response_stats(b)) > 0.5
    w_src = m.conv1.weight.detach().clone()
    meth.hebbian = False  # look at the reset itself: no Hebbian step after it
    meth(b)
    assert meth.n_shifts == 1 and meth.hebb_t == 0
    assert torch.equal(meth.conv.weight, w_src)
    # the detector never sees labels or domain names; identical statistics score 0
    s = meth.response_stats(a(4))
    assert meth.shift_score(s, s) == 0.0


def test_nhl_feedback_margin_keeps_only_reliable_samples():
    m = _model()
    meth = NHL(copy.deepcopy(m), feedback_margin=0.4, feedback_weight=True)
    logits = torch.tensor([[8.0] + [0.0] * 9, [0.0] * 10, [3.0] + [0.0] * 9])
    ent = entropy(logits)
    e0 = 0.4 * np.log(10)
    keep = ent < e0
    assert keep.tolist() == [True, False, False]
    want = (ent[keep] * torch.exp(-(ent[keep] - e0))).sum() / keep.sum()
    torch.testing.assert_close(meth.feedback_loss(logits), want)
    assert meth.feedback_loss(torch.zeros(3, 10)) is None  # nobody reliable: no modulator step
    plain = NHL(copy.deepcopy(m), feedback_margin=0.4)
    torch.testing.assert_close(plain.feedback_loss(logits), ent[keep].mean())
    torch.testing.assert_close(NHL(copy.deepcopy(m)).feedback_loss(logits), ent.mean())  # off: all samples
    # no sample reliable -> the modulator does not move
    strict = NHL(copy.deepcopy(m), hebb_lr=0.0, lr=1e-2, feedback_margin=1e-6)
    strict(_x(16))
    assert torch.equal(strict.model.bn1.weight, m.bn1.weight)


@pytest.mark.parametrize("bad", [{"hebb_decay": -1.0}, {"max_drift": -0.1}, {"shift_reset": float("inf")},
                                 {"feedback_margin": 1.5}, {"feedback_margin": -0.1},
                                 {"feedback_weight": True}, {"hebb_decay": "fast"}])
def test_nhl_bad_new_options_are_refused(bad):
    with pytest.raises(InvalidInputError, match=next(iter(bad)) if "weight" not in str(bad) else "feedback_margin"):
        NHL(_model(), **bad)
