"""Refactors of the tripartite synapse and the AM-SU that must not change a single bit.

The references are private copies of the code as it was before the refactor (``_old_*`` below,
verbatim but for names): the hoisted synapse decay factors (:func:`synapse_decay`,
:func:`tripartite_step`), the split of ``release_step`` and the AM-SU's gchi mode now built from
:mod:`neuroadapt.core.astrocyte`.  Every comparison is ``torch.equal`` (bit for bit), in float64
and float32, on random inputs / fixed seeds.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroadapt.core import astrocyte as tri
from neuroadapt.core.amsu import AMSUState, release_step
from neuroadapt.core.astro_params import PRESETS, AstroParams
from neuroadapt.nn import AMSU

DTYPES = [torch.float64, torch.float32]


# ------------------------------------------------------------------ the code before the refactor
def _old_synapse_decay(y_s, gamma_s, u_s, x_s, g_a, p, dt):
    k = p.O_G * g_a + p.Omega_G
    g_inf = p.O_G * g_a / k
    decay = torch.exp(-k * dt)
    return (y_s * torch.exp(torch.as_tensor(-p.Omega_c * dt, dtype=y_s.dtype)),
            g_inf + (gamma_s - g_inf) * decay,
            u_s * torch.exp(torch.as_tensor(-p.Omega_f * dt, dtype=u_s.dtype)),
            1 - (1 - x_s) * torch.exp(torch.as_tensor(-p.Omega_d * dt, dtype=x_s.dtype)))


def _old_tripartite_step(state, spk, p, dt, syn_to_astro, astro_to_syn, i_bias=0.0):
    s = state
    y = s.Y_S @ syn_to_astro.T
    armed = torch.maximum(s.armed, (s.C <= p.C_Theta).to(s.C.dtype))
    ga, ip3, c, h, xa, g = tri.astro_rk4((s.Gamma_A, s.I, s.C, s.h, s.x_A, s.G_A), y, i_bias, p, dt)
    g_syn = g @ astro_to_syn.T
    y_s, gamma_s, u_s, x_s = _old_synapse_decay(s.Y_S, s.Gamma_S, s.u_S, s.x_S, g_syn, p, dt)
    event = (c > p.C_Theta).to(c.dtype) * armed
    armed = armed * (1 - event)
    y_s, u_s, x_s, r_s = tri.presynaptic_release(spk, y_s, gamma_s, u_s, x_s, s.r_S, p)
    xa, g = tri.glio_release(event, xa, g, p)
    return tri.TripartiteState(y_s, gamma_s, u_s, x_s, r_s, ga, ip3, c, h, xa, g, armed), event


def _old_release_step(s, u, x, gamma, u_star, alpha, decay_f, decay_d):
    u = u * decay_f
    x = 1 - (1 - x) * decay_d
    u0 = (1 - gamma) * u_star + alpha * gamma
    s1 = s.clamp(max=1)
    u = u + s1 * u0 * (1 - u)
    r = x * (s * u).clamp(max=1)
    return u, x - r, r


class _OldGChiAMSU(AMSU):
    """The AM-SU with its gchi state and synapse as they were written before the refactor."""

    def init_state(self, batch, dtype=None, device=None):
        st = super().init_state(batch, dtype, device)
        if self.kind != "gchi":
            return st
        dtype, device = st.mem.dtype, st.mem.device
        z = lambda n: torch.zeros(batch, n, dtype=dtype, device=device)  # noqa: E731
        p = self.params
        full = lambda v: torch.full((batch, self.n_astro), float(v), dtype=dtype, device=device)  # noqa: E731
        astro = (z(self.in_features), full(0), full(p.I0), full(p.C0), full(p.h0), full(p.x_A0), full(0), full(1))
        return st._replace(x=torch.full((batch, self.in_features), float(p.x_S0), dtype=dtype, device=device),
                           astro=astro)

    def _gchi_synapse(self, s, state, factors=None):
        p, dt = self.params, self.dt
        y_s, ga, ip3, c, h, xa, g, armed = state.astro
        armed = torch.maximum(armed, (c <= p.C_Theta).to(c.dtype))
        ga, ip3, c, h, xa, g = tri.astro_rk4((ga, ip3, c, h, xa, g), y_s @ self.m_in.T, 0.0, p, dt)
        y_s, gamma, u, x = _old_synapse_decay(y_s, state.gamma, state.u, state.x, g @ self.m_out.T, p, dt)
        u0 = (1 - gamma) * p.U_0_star + p.alpha * gamma
        u = u + s.clamp(max=1) * u0 * (1 - u)
        r = x * (s * u).clamp(max=1)
        x, y_s = x - r, y_s + p.rho_c * p.Y_T * r
        event = (c > p.C_Theta).to(c.dtype) * armed
        xa, g = tri.glio_release(event, xa, g, p)
        return u, x, r, gamma, (y_s, ga, ip3, c, h, xa, g, armed * (1 - event))


def _equal(a, b):
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a.dtype == b.dtype and torch.equal(a, b)


# ------------------------------------------------------------------ synapse decay
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", [AstroParams(), PRESETS["stimberg_ex2"], AstroParams().replace(O_G=0.7,
                                                                                                  Omega_c=61.3)])
@pytest.mark.parametrize("dt", [1e-4, 1e-3, 1.7e-3])
def test_synapse_decay_is_bit_identical(dtype, params, dt):
    g = torch.Generator().manual_seed(7)
    shape = (5, 33)
    y_s, gamma_s, u_s, x_s = (torch.rand(shape, generator=g, dtype=dtype) for _ in range(4))
    y_s = y_s * 3000                                      # µM after release, like the scans
    g_a = torch.rand(shape, generator=g, dtype=dtype) * 2
    g_a[0, :5] = 0                                        # no gliotransmitter: Γ_S decays to 0
    old = _old_synapse_decay(y_s, gamma_s, u_s, x_s, g_a, params, dt)
    new = tri.synapse_decay(y_s, gamma_s, u_s, x_s, g_a, params, dt)
    hoisted = tri.synapse_decay(y_s, gamma_s, u_s, x_s, g_a, params, dt, tri.synapse_factors(params, dt, dtype))
    assert _equal(new, old) and _equal(hoisted, old)
    assert not torch.equal(old[0], y_s) and not torch.equal(old[3], x_s)    # the step did change them


def test_synapse_decay_mixed_dtypes_scale_each_variable_in_its_own_dtype():
    p, dt = AstroParams(), 1e-3
    g = torch.Generator().manual_seed(1)
    y_s, gamma_s, g_a = (torch.rand(4, 6, generator=g, dtype=torch.float64) for _ in range(3))
    u_s, x_s = (torch.rand(4, 6, generator=g, dtype=torch.float32) for _ in range(2))
    assert _equal(tri.synapse_decay(y_s, gamma_s, u_s, x_s, g_a, p, dt),
                  _old_synapse_decay(y_s, gamma_s, u_s, x_s, g_a, p, dt))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tripartite_scan_is_bit_identical(dtype):
    p = PRESETS["stimberg_ex4"].replace(O_beta=10.0, O_delta=1.2)   # astrocytes cross C_Θ within the run
    T, B, n_syn, n_astro, dt = 900, 2, 6, 3, 1e-3
    spikes = (torch.rand(T, B, n_syn, generator=torch.Generator().manual_seed(5)) < 0.03).to(dtype)
    a_in = torch.zeros(n_astro, n_syn, dtype=dtype)
    a_in[torch.arange(n_syn) % n_astro, torch.arange(n_syn)] = 1
    a_out = a_in.T.clone()
    traces, final = tri.tripartite_scan(spikes, a_in, a_out, params=p, dt=dt)
    s = tri.init_state(B, n_syn, n_astro, p, dtype)
    ref = {name: [] for name in traces}
    for t in range(T):
        s, ev = _old_tripartite_step(s, spikes[t], p, dt, a_in, a_out, torch.tensor(0.0, dtype=dtype))
        for name in traces:
            ref[name].append(ev if name == "glio_events" else getattr(s, name))
    assert traces["glio_events"].sum() >= 1 and traces["Gamma_S"].max() > 0.1     # the astrocytes acted
    for name, v in ref.items():
        assert _equal(traces[name], torch.stack(v)), name
    assert _equal(tuple(final), tuple(s))


# ------------------------------------------------------------------ AM-SU
@pytest.mark.parametrize("dtype", DTYPES)
def test_release_step_is_bit_identical(dtype):
    g = torch.Generator().manual_seed(3)
    u, x, gamma = (torch.rand(7, 20, generator=g, dtype=dtype) for _ in range(3))
    s = torch.randint(0, 3, (7, 20), generator=g).to(dtype)          # spikes and counts
    d_f, d_d = torch.tensor(0.97, dtype=dtype), torch.tensor(0.995, dtype=dtype)
    args = (s, u, x, gamma, torch.tensor(0.4, dtype=dtype), torch.tensor(0.1, dtype=dtype), d_f, d_d)
    assert _equal(release_step(*args), _old_release_step(*args))


def _gchi_pair(dtype, seed, **kw):
    p = AstroParams().replace(O_beta=10.0, O_delta=1.2)
    torch.manual_seed(seed)
    new = AMSU(6, 4, n_astro=3, astrocyte="gchi", dt=1e-3, params=p, **kw).to(dtype)
    old = _OldGChiAMSU(6, 4, n_astro=3, astrocyte="gchi", dt=1e-3, params=p, **kw).to(dtype)
    old.load_state_dict(new.state_dict())
    return new, old


def _run(layer, x, state):
    x = x.clone().requires_grad_(True)
    spk, mem, rec, state = layer(x, state, return_state=True)
    ((spk * torch.linspace(1, 2, spk.shape[-1], dtype=spk.dtype)).sum() + mem.pow(2).mean()).backward()
    grads = [x.grad] + [q.grad for q in layer.parameters() if q.requires_grad]
    return (spk, mem, rec["r"], rec["gamma"], rec["ca"]), state, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("counts", [False, True])
def test_amsu_gchi_forward_backward_is_bit_identical(dtype, counts):
    new, old = _gchi_pair(dtype, seed=11, recurrent=True, excitability=True)
    gen = torch.Generator().manual_seed(4)
    x = (torch.rand(800, 3, 6, generator=gen) < 0.04).to(dtype)
    if counts:
        x = x * torch.randint(1, 4, x.shape, generator=gen).to(dtype)      # counts > 1: the clamp acts
    warm = 650                                   # the astrocytes first cross C_Θ at ~0.7 s: warm up without grad
    with torch.no_grad():
        _, _, _, st_n = new(x[:warm], return_state=True)
        _, _, _, st_o = old(x[:warm], return_state=True)
    assert _equal(tuple(st_n[:7]), tuple(st_o[:7])) and _equal(st_n.astro, st_o.astro)
    out_n, st_n, g_n = _run(new, x[warm:], st_n)
    out_o, st_o, g_o = _run(old, x[warm:], st_o)
    assert out_n[4].max() > AstroParams().C_Theta and out_n[0].sum() > 0     # Ca crossed C_Θ; neurons spiked
    assert (st_n.astro[7] == 0).any()                                         # an astrocyte released
    assert all(g is not None and g.abs().sum() > 0 for g in g_n)             # gradients reach input and weights
    assert _equal(out_n, out_o)
    assert _equal(tuple(st_n[:7]), tuple(st_o[:7])) and _equal(st_n.astro, st_o.astro)
    assert _equal(g_n, g_o)


@pytest.mark.parametrize("dtype", DTYPES)
def test_amsu_gchi_step_calls_and_init_state_are_bit_identical(dtype):
    new, old = _gchi_pair(dtype, seed=2)
    s_n, s_o = new.init_state(2, dtype), old.init_state(2, dtype)
    assert _equal(tuple(s_n[:7]), tuple(s_o[:7])) and _equal(s_n.astro, s_o.astro)
    x = (torch.rand(300, 2, 6, generator=torch.Generator().manual_seed(9)) < 0.05).to(dtype)
    for t in range(x.shape[0]):
        spk_n, s_n = new(x[t], s_n)
        spk_o, s_o = old(x[t], s_o)
        assert torch.equal(spk_n, spk_o)
    assert isinstance(s_n, AMSUState)
    assert _equal(tuple(s_n[:7]), tuple(s_o[:7])) and _equal(s_n.astro, s_o.astro)
    assert not np.isclose(float(s_n.astro[3].max()), AstroParams().C0)      # the astrocytes moved
