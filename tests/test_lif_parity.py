"""neuroadapt's LIF neurons against snnTorch 1.0 (the behaviour we promise to reproduce).

Spikes must be identical and membranes equal to 1e-6 (in practice they are bit-identical:
the fused kernel performs snnTorch's float operations in the same order, without FMA);
gradients equal to float rounding.
"""

import pytest
import snntorch as snn
import snntorch.utils
import torch

import neuroadapt.core.scan as scan_mod
from neuroadapt import nn as nnn
from neuroadapt.core import atan, fast_sigmoid, leaky_scan
from neuroadapt.errors import ShapeError, UnsupportedOptionError

T, B, N = 60, 8, 24
RESETS = ["subtract", "zero", "none"]


def _inputs(dtype=torch.float32, seed=0, scale=0.7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, N, generator=g, dtype=dtype) * scale


def _snn_run(mod, x, kind):
    """Step an snnTorch neuron through x; returns stacked (spk, mem)."""
    spk, syn, mem = (torch.zeros(B, N, dtype=x.dtype) for _ in range(3))
    S, M = [], []
    for t in range(x.shape[0]):
        if kind == "leaky":
            spk, mem = mod(x[t], mem)
        elif kind == "synaptic":
            spk, syn, mem = mod(x[t], syn, mem)
        elif kind == "rleaky":
            spk, mem = mod(x[t], spk, mem)
        else:
            spk, syn, mem = mod(x[t], spk, syn, mem)
        S.append(spk)
        M.append(mem)
    return torch.stack(S), torch.stack(M)


def _pair(kind, reset, dtype=torch.float64, spike_grad=None, **kw):
    """Build (snnTorch module, neuroadapt module) with identical parameters."""
    g = torch.Generator().manual_seed(1)
    beta = torch.rand(N, generator=g, dtype=dtype) * 0.4 + 0.55
    alpha = torch.rand(N, generator=g, dtype=dtype) * 0.4 + 0.4
    common = dict(threshold=torch.tensor(1.0, dtype=dtype), reset_mechanism=reset, learn_beta=True,
                  learn_threshold=True, spike_grad=spike_grad, **kw)
    mods = []
    for lib in (snn, nnn):
        torch.manual_seed(2)
        if kind == "leaky":
            m = lib.Leaky(beta.clone(), **common)
        elif kind == "synaptic":
            m = lib.Synaptic(alpha.clone(), beta.clone(), learn_alpha=True, **common)
        elif kind == "rleaky":
            m = lib.RLeaky(beta.clone(), linear_features=N, **common)
        else:
            m = lib.RSynaptic(alpha.clone(), beta.clone(), linear_features=N, learn_alpha=True, **common)
        mods.append(m.to(dtype))
    return mods


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", ["leaky", "synaptic"])
def test_step_and_sequence_match_snntorch_float32(kind, reset):
    x = _inputs()
    ref, ours = _pair(kind, reset, dtype=torch.float32, spike_grad=snn.surrogate.atan())
    S_ref, M_ref = _snn_run(ref, x, kind)
    S_step, M_step = _snn_run(ours, x, kind)
    out = ours.forward_sequence(x)
    S_seq, M_seq = out[0], out[-1]
    assert S_ref.sum() > 20, "inputs must make the neurons spike for the test to mean anything"
    for S, M in ((S_step, M_step), (S_seq, M_seq)):
        assert torch.equal(S.float(), S_ref.float())
        assert (M - M_ref).abs().max() <= 1e-6


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("kind", ["leaky", "synaptic", "rleaky", "rsynaptic"])
def test_fused_gradients_match_snntorch_autograd(kind, reset):
    """Float64 with a dtype-preserving surrogate: gradients agree to ~1e-12."""
    sg = atan()
    x0 = _inputs(torch.float64, scale=0.9)
    wS = torch.randn(T, B, N, dtype=torch.float64)
    wM = torch.randn(T, B, N, dtype=torch.float64)
    ref, ours = _pair(kind, reset, spike_grad=sg)
    grads = []
    for mod, seq in ((ref, False), (ours, True)):
        x = x0.clone().requires_grad_()
        if seq:
            out = mod.forward_sequence(x)
            S, M = out[0], out[-1]
        else:
            S, M = _snn_run(mod, x, kind)
        loss = (S * wS).sum() + (M * wM).sum()
        names = sorted(n for n, p in mod.named_parameters())
        params = dict(mod.named_parameters())
        grads.append(torch.autograd.grad(loss, [x] + [params[n] for n in names]))
        if seq:
            assert torch.equal(S, S_prev) and (M - M_prev).abs().max() <= 1e-12
        S_prev, M_prev = S, M
    assert S_prev.sum() > 20
    for g_ref, g_ours in zip(*grads):
        assert torch.allclose(g_ours, g_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("spike_fn", [atan(), fast_sigmoid(), snn.surrogate.fast_sigmoid()],
                         ids=["atan-in-kernel", "fast_sigmoid-in-kernel", "snntorch-surrogate-generic"])
def test_c_kernel_and_torch_fallback_agree(monkeypatch, spike_fn):
    x = _inputs(scale=0.9).requires_grad_()
    beta = torch.full((N,), 0.8, requires_grad=True)
    thr = torch.full((N,), 1.0, requires_grad=True)
    res = []
    for use_kernel in (True, False):
        if not use_kernel:
            monkeypatch.setattr(scan_mod, "kernels", lambda: None)
        elif scan_mod.kernels() is None:
            pytest.fail("the C kernel should build on this machine (is a C compiler installed?)")
        for reset in RESETS:
            spk, mem = leaky_scan(x, beta, thr, reset=reset, spike_fn=spike_fn)
            g = torch.autograd.grad((spk * mem).sum() + spk.sum(), [x, beta, thr])
            res.append((spk, mem, *g))
    half = len(res) // 2
    assert res[0][0].sum() > 20
    for a, b in zip(res[:half], res[half:]):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for ga, gb in zip(a[2:], b[2:]):
            assert torch.allclose(ga, gb, rtol=1e-5, atol=1e-5)


def test_lif_layer_equals_linear_plus_snntorch_leaky():
    torch.manual_seed(0)
    layer = nnn.LIFLayer(30, N, neuron="leaky", beta=0.9)
    fc = torch.nn.Linear(30, N)
    fc.load_state_dict(layer.fc.state_dict())
    x = (torch.rand(T, B, 30) < 0.3).float()
    lif = snn.Leaky(beta=0.9)
    S_ref, M_ref = _snn_run(lif, fc(x), "leaky")
    spk, mem = layer(x, return_mem=True)
    assert S_ref.sum() > 20
    assert torch.equal(spk, S_ref) and (mem - M_ref).abs().max() <= 1e-6
    bf = nnn.LIFLayer(30, N, batch_first=True)
    bf.load_state_dict(layer.state_dict())
    assert torch.equal(bf(x.transpose(0, 1)).transpose(0, 1), spk)


@pytest.mark.parametrize("mem0", [False, True])
def test_fused_immediate_zero_reset_matches_snntorch(mem0):
    """RLeaky with reset_delay=False and a zero reset (the membrane zeroed in the step it fires) runs
    fused; spikes, membranes and every gradient (input, weights, beta, threshold) equal snnTorch's
    autograd through its own step loop. ``mem0``: start above threshold (the delayed reset term)."""
    sg = atan()
    x0 = _inputs(torch.float64, scale=0.9)
    wS, wM = torch.randn(T, B, N, dtype=torch.float64), torch.randn(T, B, N, dtype=torch.float64)
    m0 = torch.rand(B, N, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 2 if mem0 else None
    ref, ours = _pair("rleaky", "zero", spike_grad=sg, reset_delay=False)
    out = []
    for mod, seq in ((ref, False), (ours, True)):
        x = x0.clone().requires_grad_()
        if seq:
            S, M = mod.forward_sequence(x, mem=m0)
        else:
            spk, mem = torch.zeros(B, N, dtype=x.dtype), torch.zeros(B, N, dtype=x.dtype) if m0 is None else m0
            S, M = [], []
            for t in range(T):
                spk, mem = mod(x[t], spk, mem)
                S.append(spk)
                M.append(mem)
            S, M = torch.stack(S), torch.stack(M)
        loss = (S * wS).sum() + (M * wM).sum()
        params = dict(mod.named_parameters())
        names = sorted(params)
        out.append((S.detach(), M.detach(), torch.autograd.grad(loss, [x] + [params[n] for n in names])))
    (S_ref, M_ref, g_ref), (S_ours, M_ours, g_ours) = out
    assert S_ref.sum() > 20 and (M_ref == 0).sum() >= S_ref.sum()  # it fires, and fired neurons sit at 0
    assert torch.equal(S_ours, S_ref) and (M_ours - M_ref).abs().max() <= 1e-12
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10)
    assert ours._fusable(recurrent=True, immediate_zero=True)


def test_fallback_configurations_still_match_snntorch():
    """state_quant / reset_delay=False are stepped in a loop rather than fused: same results."""
    x = _inputs(scale=1.0)
    for kw in (dict(reset_delay=False), dict(graded_spikes_factor=0.5)):
        ref = snn.Leaky(beta=0.8, **kw)
        ours = nnn.Leaky(beta=0.8, spike_grad=snn.surrogate.atan(), **kw)
        S_ref, M_ref = _snn_run(ref, x, "leaky")
        S, M = ours.forward_sequence(x)
        assert torch.equal(S, S_ref) and torch.equal(M, M_ref)


@pytest.mark.parametrize("kind", ["leaky", "synaptic", "rleaky", "rsynaptic"])
def test_stepped_fallback_starts_each_sequence_from_zero(kind):
    """A configuration that is stepped rather than fused (reset_delay=False with a subtract
    reset) starts every sequence from zero, like the fused scans: the second batch must not pick
    up the first batch's final state (nor its autograd graph: both backward passes run)."""
    ref, ours = _pair(kind, "subtract", dtype=torch.float32, spike_grad=snn.surrogate.atan(), reset_delay=False)
    for seed in (0, 1):
        x = _inputs(seed=seed, scale=1.0).requires_grad_()
        S_ref, M_ref = _snn_run(ref, x, kind)
        out = ours.forward_sequence(x)
        assert torch.equal(out[0], S_ref) and torch.equal(out[-1], M_ref)
        (out[0].sum() + out[-1].sum()).backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


def test_init_hidden_and_snntorch_utils_reset():
    net = torch.nn.Sequential(torch.nn.Linear(10, N), nnn.Leaky(beta=0.9, init_hidden=True))
    x = torch.rand(5, 3, 10) * 2
    outs = [net(x[t]) for t in range(5)]
    assert outs[0].shape == (3, N)
    snntorch.utils.reset(net)
    assert float(net[1].mem.abs().sum()) == 0.0


def test_mixed_snntorch_and_neuroadapt_model_trains():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    X = (torch.rand(20, 64, 16, generator=g) < 0.2).float()
    y = (X[:, :, :8].sum((0, 2)) > X[:, :, 8:].sum((0, 2))).long()

    class Mixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = nnn.LIFLayer(16, 32, neuron="synaptic", recurrent=True, beta=0.9)
            self.fc2 = torch.nn.Linear(32, 2)
            self.lif2 = snn.Leaky(beta=0.9)

        def forward(self, x):
            s1 = self.l1(x)
            mem = torch.zeros(x.shape[1], 2)
            out = []
            for t in range(x.shape[0]):
                _, mem = self.lif2(self.fc2(s1[t]), mem)
                out.append(mem)
            return torch.stack(out).mean(0)

    model = Mixed()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    assert model.l1.fc.weight.grad is not None and model.l1.neuron.recurrent.weight.grad.abs().sum() > 0


def test_bad_inputs_raise_neuroadapt_errors():
    with pytest.raises(UnsupportedOptionError, match="neuron"):
        nnn.LIFLayer(4, 4, neuron="izhikevich")
    with pytest.raises(UnsupportedOptionError, match="reset"):
        nnn.LIFLayer(4, 4, reset_mechanism="bounce")
    layer = nnn.LIFLayer(4, 3)
    with pytest.raises(ShapeError, match="4 input features"):
        layer(torch.zeros(5, 2, 7))
    with pytest.raises(ShapeError, match="3-d"):
        layer(torch.zeros(5, 4))
    with pytest.raises(ShapeError, match="beta"):
        leaky_scan(torch.zeros(5, 2, 4), torch.ones(3) * 0.5, 1.0)
