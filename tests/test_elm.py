"""ELM / Branch-ELM: the module, the fused scan and its backward, parameter counts, bad input."""
import math

import pytest
import torch

from neuroadapt.core import elm as F
from neuroadapt.core.elm_input import SPARSE_MAX_DENSITY, kernels, project
from neuroadapt.core import elm_scan
from neuroadapt.core.elm_scan import memory_scan
from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError
from neuroadapt.nn import ELM, ELMState

OPTIONS = [
    {},
    {"version": "v2", "learn_tau_m": True, "learn_tau_s": True},
    {"n_branches": 5, "synapses_per_branch": 4, "routing": "random", "mlp_layers": 2, "mlp_activation": "silu"},
    {"n_branches": 4, "synapses_per_branch": 5, "routing": "overlap", "mlp_activation": "tanh", "mlp_hidden": 7},
]



@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread is fastest, and two thrash on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

def _elm(n_in=12, n_out=3, n_mem=6, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return ELM(n_in, n_out, n_memory=n_mem, tau_m_min=2e-3, tau_m_max=0.2, **kw).to(dtype)


def _spikes(T, B, n, p=0.3, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < p).to(dtype)


def _random_state(elm, B, dtype=torch.float64):
    g = torch.Generator().manual_seed(5)
    return ELMState(torch.randn(B, elm.n_branches, generator=g, dtype=dtype),
                    torch.randn(B, elm.n_memory, generator=g, dtype=dtype))


# ----------------------------------------------------------------------------- parameter counts
def _formula(d_tree, d_brch, d_m, d_o, d_mlp=None):
    d_mlp = d_mlp or 2 * d_m
    return (d_tree + d_m) * d_mlp + d_mlp + d_mlp * d_m + d_m + d_tree * d_brch + d_m * d_o + d_o


@pytest.mark.parametrize("d_m,params", [(1, 4601), (5, 5077), (10, 5852), (15, 6827), (20, 8002), (30, 10952),
                                        (50, 19252), (75, 34127), (100, 54002)])
def test_neuronio_branch_elm_parameter_counts_match_the_released_models(d_m, params):
    elm = ELM(1278, 2, n_memory=d_m, n_branches=45, synapses_per_branch=100, routing="overlap")
    assert sum(p.numel() for p in elm.parameters()) == params == _formula(45, 100, d_m, 2)


def test_parameter_count_formula_for_plain_elm_and_learnable_timescales():
    elm = ELM(700, 20, n_memory=100)
    assert sum(p.numel() for p in elm.parameters()) == _formula(700, 1, 100, 20) == 183020
    learn = ELM(700, 20, n_memory=100, learn_tau_m=True, learn_tau_s=True)
    assert sum(p.numel() for p in learn.parameters()) == 183020 + 100 + 1


# ----------------------------------------------------------------------------- equations
def test_timescale_conversions_both_ways_and_log_spaced_init():
    tau = torch.tensor([1e-3, 0.02, 0.5], dtype=torch.float64)
    kappa = F.kappa_from_tau(tau, 1e-3)
    assert torch.allclose(kappa, torch.exp(-1e-3 / tau))
    assert torch.allclose(F.tau_from_kappa(kappa, 1e-3), tau)
    assert F.tau_from_kappa(F.kappa_from_tau(0.01, 2e-3), 2e-3) == pytest.approx(0.01)
    raw = F.raw_from_tau(torch.tensor([0.01, 0.3], dtype=torch.float64), 1e-3, 1.0)
    assert torch.allclose(F.tau_from_raw(raw, 1e-3, 1.0), torch.tensor([0.01, 0.3], dtype=torch.float64))
    elm = ELM(4, 2, n_memory=5, tau_m_min=1e-3, tau_m_max=1.0)
    tau_m = elm.tau_m.double()
    assert torch.allclose(torch.log10(tau_m), torch.linspace(-3, 0, 5, dtype=torch.float64), atol=1e-3)
    with pytest.raises(InvalidInputError):
        F.kappa_from_tau(0.0, 1e-3)
    with pytest.raises(InvalidInputError):
        F.tau_from_kappa(1.0, 1e-3)


def test_v1_and_v2_gains_and_scaled_tanh():
    k = torch.tensor([0.5, 0.9, 0.999], dtype=torch.float64)
    assert torch.allclose(F.memory_gain(k, 5.0, "v1"), 5.0 * (1 - k))
    assert torch.allclose(F.memory_gain(k, 5.0, "v2"), 1 - k ** 5)
    # v2: kappa_lambda = exp(-dt lambda / tau_m)
    elm = ELM(3, 1, n_memory=4, version="v2", lambda_value=3.0).double()
    assert torch.allclose(elm.gain, 1 - elm.kappa_lambda)
    assert torch.allclose(elm.kappa_lambda, torch.exp(-elm.dt * 3.0 / elm.tau_m))
    # the two agree for tau_m >> lambda dt
    assert torch.allclose(F.memory_gain(torch.tensor(0.9999), 5.0, "v1"), F.memory_gain(torch.tensor(0.9999), 5.0, "v2"),
                          rtol=1e-3)
    x = torch.linspace(-3, 3, 7)
    assert torch.allclose(F.scaled_tanh(x), 1.7159 * torch.tanh(2 * x / 3))


def test_step_matches_the_equations_by_hand():
    elm = _elm(n_in=4, n_mem=3, n_out=2)
    x = torch.tensor([[1.0, 0.0, 2.0, 0.0]], dtype=torch.float64)
    s0 = _random_state(elm, 1)
    y, st = elm(x, s0)
    with torch.no_grad():
        k_s, k_m, w_s = elm.kappa_s, elm.kappa_m, elm.w_s
        b = k_s * s0.trace + w_s * x
        h = torch.relu(elm.mlp[0](torch.cat([b, k_m * s0.memory], 1)))
        dm = 1.7159 * torch.tanh(2 / 3 * elm.mlp[1](h))
        m = k_m * s0.memory + 5.0 * (1 - k_m) * dm
    assert torch.allclose(st.trace, b) and torch.allclose(st.memory, m)
    assert torch.allclose(y, elm.readout(m))


# ----------------------------------------------------------------------------- fused == stepwise
@pytest.mark.parametrize("opts", OPTIONS)
def test_sequence_call_matches_step_by_step_values_and_gradients(opts):
    elm = _elm(**opts)
    x = _spikes(25, 3, 12)
    s0 = _random_state(elm, 3)
    y, mem, st = elm.forward_sequence(x, s0)
    ys, s, mems = [], s0, []
    for t in range(x.shape[0]):
        yt, s = elm(x[t], s)
        ys.append(yt)
        mems.append(s.memory)
    ys, mems = torch.stack(ys), torch.stack(mems)
    assert torch.allclose(y, ys, atol=1e-12) and torch.allclose(mem, mems, atol=1e-12)
    assert torch.allclose(st.trace, s.trace, atol=1e-12) and torch.allclose(st.memory, s.memory, atol=1e-12)
    w = torch.randn_like(y)
    params = [p for p in elm.parameters()]
    g1 = torch.autograd.grad((y * w).sum() + st.trace.sum() + st.memory.sum(), params)
    g2 = torch.autograd.grad((ys * w).sum() + s.trace.sum() + s.memory.sum(), params)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-8)


def test_memory_scan_gradcheck_all_inputs():
    g = torch.Generator().manual_seed(0)
    T, B, H, D = 5, 2, 4, 3
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_()  # noqa: E731
    zin, m0, w_rec, w_out, b_out = r(T, B, H), r(B, D), r(H, D), r(D, H), r(D)
    kappa = torch.rand(D, generator=g, dtype=torch.float64).requires_grad_()
    gain = torch.rand(D, generator=g, dtype=torch.float64).requires_grad_()
    hidden = [(r(H, H), r(H))]
    for act in ("relu", "silu", "tanh"):
        def f(zin, m0, w_rec, w_out, b_out, kappa, gain, wh, bh, act=act):
            return memory_scan(zin, m0, w_rec, w_out, b_out, kappa, gain, act, [(wh, bh)])
        assert torch.autograd.gradcheck(f, (zin, m0, w_rec, w_out, b_out, kappa, gain, *hidden[0]))


@pytest.mark.skipif(kernels() is None or elm_scan._blas_gemm() is None, reason="no C compiler / BLAS symbol")
def test_fused_memory_loop_passes_its_own_first_use_check(monkeypatch):
    """Where the library and the BLAS routine exist, the fused loop must agree with the torch loop
    (else it silently falls back and the tests below would only skip), also when first used
    inside torch.no_grad()."""
    assert elm_scan.fused_kernels() is not None
    assert elm_scan._self_check() < 1e-12
    monkeypatch.setattr(elm_scan, "_fused_state", {"tried": False, "value": None})
    with torch.no_grad():
        assert elm_scan.fused_kernels() is not None


@pytest.mark.skipif(elm_scan.fused_kernels() is None, reason="no C compiler / BLAS symbol: the torch loop runs")
def test_fused_memory_loop_gradcheck_and_matches_torch_loop(monkeypatch):
    """The C loop (no extra hidden layers, CPU) against finite differences and against the torch loop."""
    g = torch.Generator().manual_seed(1)
    T, B, H, D = 6, 3, 5, 4
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_()  # noqa: E731
    rand = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64).requires_grad_()  # noqa: E731
    args = (r(T, B, H), r(B, D), r(H, D), r(D, H), r(D), rand(D), rand(D))
    calls = []
    real = elm_scan._fused_forward
    monkeypatch.setattr(elm_scan, "_fused_forward", lambda *a: calls.append(1) or real(*a))
    for act in ("relu", "silu", "tanh"):
        def f(*a, act=act):
            return memory_scan(*a, act)
        f(*args)
        assert calls, "the fused loop did not run"
        assert torch.autograd.gradcheck(f, args)
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
            a = [t.detach().to(dtype).requires_grad_() for t in args]
            w = torch.randn(T, B, D, generator=g, dtype=torch.float64).to(dtype)
            out = []
            for fused in (True, False):
                monkeypatch.setattr(elm_scan, "USE_FUSED", fused)
                m = f(*a)
                out.append([m, *torch.autograd.grad((m * w).sum(), a)])
            monkeypatch.setattr(elm_scan, "USE_FUSED", True)
            for x, y in zip(*out):
                assert torch.allclose(x, y, atol=tol, rtol=tol), (act, dtype, float((x - y).abs().max()))


@pytest.mark.skipif(elm_scan.fused_kernels() is None, reason="no C compiler / BLAS symbol: the torch loop runs")
@pytest.mark.parametrize("shape", [(3, 32, 200, 100), (4, 7, 19, 17), (2, 1, 5, 3), (3, 13, 16, 33)])
def test_packed_float32_kernel_matches_blas_and_float64(monkeypatch, shape):
    """The float32 loop with packed weights (AVX2 + FMA builds) against the same loop through the
    BLAS routine and against float64: outputs and every gradient.  The shapes cover full 6-row
    blocks and remainders of 1-5 rows, full 16-column panels and partial ones."""
    from neuroadapt.core.elm_input import _cpu_flags

    lib = elm_scan.fused_kernels()[0]
    assert bool(lib.elm_packed_available()) == ("-mfma" in _cpu_flags())
    assert elm_scan._fused_state["packed"] == bool(lib.elm_packed_available())
    T, B, H, D = shape
    g = torch.Generator().manual_seed(3)
    r = lambda *s: (torch.rand(*s, generator=g, dtype=torch.float64) - 0.5)  # noqa: E731
    base = [r(T, B, H), r(B, H), torch.tensor(0.7, dtype=torch.float64), r(H), r(B, D), r(H, D) / 3, r(D, H) / 3,
            r(D), r(D) + 0.5, r(D)]
    w = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    res = {}
    for name, dtype, packed in (("packed", torch.float32, True), ("blas", torch.float32, False),
                                ("f64", torch.float64, True)):
        monkeypatch.setattr(elm_scan, "USE_PACKED", packed)
        a = [t.to(dtype).requires_grad_() for t in base]
        m = elm_scan.traced_memory_scan(*a, "silu")
        assert type(m.grad_fn).__name__ == "_TracedScanBackward"
        res[name] = [m.detach().double(), *(x.double() for x in torch.autograd.grad((m * w.to(dtype)).sum(), a))]
    for x, y, z in zip(res["packed"], res["blas"], res["f64"]):
        scale = float(z.abs().max()) or 1.0
        assert float((x - z).abs().max()) / scale < 1e-5      # float32 rounding, packed path
        assert float((y - z).abs().max()) / scale < 1e-5      # float32 rounding, BLAS path
        assert float((x - y).abs().max()) / scale < 1e-5


@pytest.mark.skipif(elm_scan.fused_kernels() is None, reason="no C compiler / BLAS symbol: the torch loop runs")
def test_traced_memory_scan_fused_matches_linear_scan_then_memory_scan(monkeypatch):
    """The trace a_t = κ_s a_{t-1} + u_t and the bias inside the C loop, against linear_scan +
    memory_scan, and against finite differences (gradients to u, a0, κ_s, b1 and the loop's inputs)."""
    g = torch.Generator().manual_seed(2)
    T, B, H, D = 7, 2, 5, 3
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_()  # noqa: E731
    args = (r(T, B, H), r(B, H), torch.tensor(0.8, dtype=torch.float64, requires_grad=True), r(H), r(B, D), r(H, D),
            r(D, H), r(D), torch.rand(D, generator=g, dtype=torch.float64).requires_grad_(),
            torch.rand(D, generator=g, dtype=torch.float64).requires_grad_())
    w = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    for act in ("relu", "tanh"):
        out = []
        for fused in (True, False):
            monkeypatch.setattr(elm_scan, "USE_FUSED", fused)
            m = elm_scan.traced_memory_scan(*args, act)
            assert (type(m.grad_fn).__name__ == "_TracedScanBackward") == fused
            out.append([m, *torch.autograd.grad((m * w).sum(), args)])
        monkeypatch.setattr(elm_scan, "USE_FUSED", True)
        for x, y in zip(*out):
            assert x.shape == y.shape and torch.allclose(x, y, atol=1e-12, rtol=1e-12)
        assert torch.autograd.gradcheck(lambda *a, act=act: elm_scan.traced_memory_scan(*a, act), args)


def test_batch_first_and_sequence_call_returns_state():
    elm = _elm(batch_first=True)
    x = _spikes(10, 2, 12).transpose(0, 1)
    y, st = elm(x)
    assert y.shape == (2, 10, 3) and isinstance(st, ELMState)
    ref = _elm()
    y2, _ = ref(x.transpose(0, 1))
    assert torch.allclose(y, y2.transpose(0, 1))


def _producer(u):
    """Name of the autograd node under the final reshape."""
    return type(u.grad_fn.next_functions[0][0]).__name__


@pytest.mark.skipif(kernels() is None, reason="no C compiler here: the dense path is what runs")
def test_sparse_input_kernel_matches_dense_matmul_and_is_used():
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = (torch.rand(40, 30) < 0.05).to(dtype) * torch.randint(1, 3, (40, 30)).to(dtype)
        assert int(torch.count_nonzero(x)) <= SPARSE_MAX_DENSITY * x.numel()
        w = torch.randn(7, 30, dtype=dtype, requires_grad=True)
        u = project(x, w)
        assert "SparseProject" in _producer(u)
        g = torch.randn_like(u)
        (gw,) = torch.autograd.grad(u, w, g)
        (gw_ref,) = torch.autograd.grad(x @ w.t(), w, g)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        assert torch.allclose(u, x @ w.t(), atol=tol) and torch.allclose(gw, gw_ref, atol=tol)
    dense = torch.rand(10, 30)
    assert "SparseProject" not in _producer(project(dense, w.float().detach().requires_grad_()))


@pytest.mark.skipif(kernels() is None, reason="no C compiler here: the dense path is what runs")
def test_sparse_input_kernel_at_the_density_cap_and_over_many_row_blocks():
    """Exactly at / one over the density cap (the listing pass switches to its checked path near
    the cap and gives up past it), and enough rows for several cache blocks of the weight gradient."""
    g = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64):
        R, K, H = 3000, 50, 64
        cap = int(SPARSE_MAX_DENSITY * R * K)
        for n, sparse in ((cap, True), (cap + 1, False)):
            x = torch.zeros(R * K, dtype=dtype)
            x[torch.randperm(R * K, generator=g)[:n]] = torch.rand(n, generator=g, dtype=dtype) + 0.5
            x = x.view(R, K)
            w = torch.randn(H, K, generator=g, dtype=dtype, requires_grad=True)
            u = project(x, w)
            assert ("SparseProject" in _producer(u)) == sparse
            gu = torch.randn(R, H, generator=g, dtype=dtype)
            (gw,) = torch.autograd.grad(u, w, gu)
            tol = 1e-4 if dtype == torch.float32 else 1e-11
            assert torch.allclose(u, x @ w.detach().t(), atol=tol) and torch.allclose(gw, gu.t() @ x, atol=tol)
            decay = torch.rand(R // 100, generator=g, dtype=dtype)
            u3, xs = project(x.view(R // 100, 100, K), w, decay)   # (T, B, n_in) with the decayed sum
            assert torch.allclose(u3.reshape(R, H), u, atol=tol)
            assert torch.allclose(xs, torch.einsum("t,tbn->bn", decay, x.view(R // 100, 100, K)), atol=tol)


# ----------------------------------------------------------------------------- routing
def test_routing_shapes_and_windows():
    route = F.overlap_routing(10, 4, 5)   # stride ceil(10/4) = 3
    assert route.view(4, 5).tolist()[1] == [3, 4, 5, 6, 7] and route.view(4, 5).tolist()[3] == [9, 0, 1, 2, 3]
    r = F.random_routing(7, 15, torch.Generator().manual_seed(0))
    counts = torch.bincount(r, minlength=7)
    assert r.numel() == 15 and counts.min() >= 2 and counts.max() <= 3
    elm = ELM(7, 2, n_memory=3, n_branches=5, synapses_per_branch=3, routing="random")
    q = F.synaptic_map(elm.route, elm.w_s, 5, 7)
    assert q.shape == (5, 7) and torch.allclose(q.sum(), elm.w_s.sum())
    same = ELM(7, 2, n_memory=3, n_branches=5, synapses_per_branch=3, routing="random")
    assert torch.equal(elm.route, same.route)  # routing_seed makes it reproducible


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,err", [
    ({"n_branches": 5, "synapses_per_branch": 3}, ShapeError),             # branches without routing
    ({"routing": "random"}, ShapeError),                                   # routing without n_branches
    ({"routing": "overlap", "n_branches": 2, "synapses_per_branch": 50}, ShapeError),  # window > inputs
    ({"routing": "sideways", "n_branches": 2}, UnsupportedOptionError),
    ({"tau_m_min": 0.5, "tau_m_max": 0.1}, InvalidInputError),             # bounds out of order
    ({"tau_m_min": 0.01, "tau_m_max": 0.1, "tau_m_init": (0.001, 0.05)}, InvalidInputError),
    ({"version": "v3"}, UnsupportedOptionError),
    ({"mlp_activation": "gelu"}, UnsupportedOptionError),
    ({"dt": 0.0}, InvalidInputError),
    ({"n_memory": 0}, ShapeError),
])
def test_bad_construction_is_refused_clearly(kwargs, err):
    with pytest.raises(err) as info:
        ELM(10, 2, **kwargs)
    assert "ELM" in str(info.value)


def test_wrong_input_width_and_state_shapes():
    elm = _elm()
    with pytest.raises(ShapeError, match="12 inputs but got 11"):
        elm(torch.zeros(5, 2, 11, dtype=torch.float64))
    with pytest.raises(ShapeError):
        elm(torch.zeros(12, dtype=torch.float64))
    with pytest.raises(ShapeError, match="state"):
        elm(torch.zeros(2, 12, dtype=torch.float64), ELMState(torch.zeros(3, 12), torch.zeros(3, 6)))


def test_export_is_refused_with_a_reason():
    from neuroadapt.engine.models_elm import ELMClassifier

    for obj in (ELM, ELMClassifier, ELM(3, 1, n_memory=2)):
        reason = getattr(obj, "export_unsupported_reason", None)
        assert isinstance(reason, str) and "MLP" in reason and "spiking" in reason


def test_learns_a_temporal_task():
    """A tiny ELM learns 'which of two channels fired first' from the last step (chance 0.5)."""
    torch.manual_seed(0)
    T, B = 20, 64
    first = torch.randint(0, 2, (B,))
    x = torch.zeros(T, B, 2)
    x[2, torch.arange(B), first] = 1
    x[12, torch.arange(B), 1 - first] = 1
    elm = ELM(2, 2, n_memory=8, tau_m_min=1e-3, tau_m_max=0.1, dt=1e-3)
    opt = torch.optim.Adam(elm.parameters(), lr=1e-2)
    for _ in range(150):
        y, _ = elm(x)
        loss = torch.nn.functional.cross_entropy(y[-1], first)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((y[-1].argmax(1) == first).float().mean()) > 0.95
    assert math.isfinite(loss.item())

