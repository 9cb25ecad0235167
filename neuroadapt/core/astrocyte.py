"""Biophysical tripartite synapse + G-ChI astrocyte in torch (pure functions, batched, any float dtype).

The equations of Stimberg, Goodman, Brette & De Pittà (2019), "Modeling neuron-glia interactions
with the Brian 2 simulator" (parameters: :class:`neuroadapt.core.astro_params.AstroParams`, µM and
seconds).  Per synapse ``s`` (Tsodyks-Markram release with presynaptic gliotransmitter receptors)::

    dY_S/dt = -Ω_c Y_S                      dΓ_S/dt = O_G G_A (1 - Γ_S) - Ω_G Γ_S
    du_S/dt = -Ω_f u_S                      dx_S/dt = Ω_d (1 - x_S)
    at a presynaptic spike:  U_0 = (1 - Γ_S) U_0* + α Γ_S;  u_S += U_0 (1 - u_S)
                             r_S = u_S x_S;  x_S -= r_S;  Y_S += ρ_c Y_T r_S

Per astrocyte ``a`` (G-ChI: glutamate -> Γ_A -> IP3 -> Ca2+, Li-Rinzel CICR)::

    dΓ_A/dt = O_N Y (1 - Γ_A) - Ω_N (1 + ζ C/(C + K_KC)) Γ_A
    dI/dt   = O_β Γ_A + O_δ/(1 + I/κ_δ) C²/(C² + K_δ²) - O_3K C⁴/(C⁴ + K_D⁴) I/(I + K_3K) - Ω_5P I + J_ex
    J_ex    = -(F_ex/2)(1 + tanh((|I - I_bias| - I_Θ)/ω_I)) sign(I - I_bias)
    dC/dt   = (Ω_C m∞³ h³ + Ω_L)(C_T - (1 + ρ_A) C) - O_P C²/(C² + K_P²),   m∞ = I/(I + d_1) C/(C + d_5)
    dh/dt   = (h∞ - h)/τ_h,  h∞ = Q_2/(Q_2 + C),  τ_h = 1/(O_2 (Q_2 + C)),  Q_2 = d_2 (I + d_1)/(I + d_3)
    dx_A/dt = Ω_A (1 - x_A)                 dG_A/dt = -Ω_e G_A
    when C first exceeds C_Θ:  G_A += ρ_e G_T U_A x_A;  x_A -= U_A x_A

Coupling: ``Y = syn_to_astro @ Y_S`` (astrocyte input), ``G_A(synapse) = astro_to_syn @ G_A``.

Integration follows the Brian2 twin (:mod:`neuroadapt.reference.astrocyte_brian2`) step by step:
the astrocyte with classical RK4 (inputs ``Y``, ``I_bias`` held over the step), the synapse
exactly (``G_A`` held over the step), in the order: Y <- Σ Y_S; astrocyte RK4 (re-arm the
release if C <= C_Θ first); G_A(syn) <- Σ G_A; synapse decay; presynaptic spikes; gliotransmitter
release.  ``dt`` is checked against an RK4 stability bound (:func:`check_dt`).
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch

from neuroadapt.core.astro_params import STATE_NAMES, AstroParams, check_dt
from neuroadapt.errors import InvalidInputError, ShapeError

__all__ = ["TripartiteState", "SynapseFactors", "init_state", "astro_rhs", "astro_rk4", "synapse_factors",
           "synapse_factors_like", "synapse_decay", "presynaptic_release", "rearm", "glio_release", "glio_step",
           "tripartite_step", "tripartite_scan"]


class TripartiteState(NamedTuple):
    """Synapse variables ``(B, n_syn)``, astrocyte variables ``(B, n_astro)``; ``armed`` is
    1 where an astrocyte may release (Brian2's ``not_refractory``)."""

    Y_S: torch.Tensor
    Gamma_S: torch.Tensor
    u_S: torch.Tensor
    x_S: torch.Tensor
    r_S: torch.Tensor
    Gamma_A: torch.Tensor
    I: torch.Tensor
    C: torch.Tensor
    h: torch.Tensor
    x_A: torch.Tensor
    G_A: torch.Tensor
    armed: torch.Tensor


def init_state(batch: int, n_syn: int, n_astro: int, p: AstroParams, dtype=torch.float64, device=None):
    """The scripts' initial state: x_S = x_A = 1, h = 0.9, the rest 0 (from ``p``'s ``*0`` fields)."""
    def full(n, v):
        return torch.full((batch, n), float(v), dtype=dtype, device=device)

    return TripartiteState(full(n_syn, 0), full(n_syn, 0), full(n_syn, 0), full(n_syn, p.x_S0), full(n_syn, 0),
                           full(n_astro, 0), full(n_astro, p.I0), full(n_astro, p.C0), full(n_astro, p.h0),
                           full(n_astro, p.x_A0), full(n_astro, 0), full(n_astro, 1))


def astro_rhs(ga, ip3, c, h, xa, g, y, i_bias, p: AstroParams):
    """Time derivatives (per second) of ``(Γ_A, I, C, h, x_A, G_A)`` given the neurotransmitter ``y``."""
    d_ga = p.O_N * y * (1 - ga) - p.Omega_N * (1 + p.zeta * c / (c + p.K_KC)) * ga
    c2 = c * c
    j_delta = p.O_delta / (1 + ip3 / p.kappa_delta) * c2 / (c2 + p.K_delta ** 2)
    c4 = c2 * c2
    j_3k = p.O_3K * c4 / (c4 + p.K_D ** 4) * ip3 / (ip3 + p.K_3K)
    dib = ip3 - i_bias
    j_ex = -p.F_ex / 2 * (1 + torch.tanh((dib.abs() - p.I_Theta) / p.omega_I)) * torch.sign(dib)
    d_ip3 = p.O_beta * ga + j_delta - j_3k - p.Omega_5P * ip3 + j_ex
    m_inf = ip3 / (ip3 + p.d_1) * c / (c + p.d_5)
    d_c = (p.Omega_C * m_inf ** 3 * h ** 3 + p.Omega_L) * (p.C_T - (1 + p.rho_A) * c) - p.O_P * c2 / (c2 + p.K_P ** 2)
    q2 = p.d_2 * (ip3 + p.d_1) / (ip3 + p.d_3)
    d_h = (q2 / (q2 + c) - h) * (p.O_2 * (q2 + c))
    return d_ga, d_ip3, d_c, d_h, p.Omega_A * (1 - xa), -p.Omega_e * g


def astro_rk4(z: tuple, y, i_bias, p: AstroParams, dt: float) -> tuple:
    """One classical RK4 step of ``z = (Γ_A, I, C, h, x_A, G_A)`` with ``y``, ``i_bias`` held."""
    k1 = astro_rhs(*z, y, i_bias, p)
    k2 = astro_rhs(*(a + 0.5 * dt * k for a, k in zip(z, k1)), y, i_bias, p)
    k3 = astro_rhs(*(a + 0.5 * dt * k for a, k in zip(z, k2)), y, i_bias, p)
    k4 = astro_rhs(*(a + dt * k for a, k in zip(z, k3)), y, i_bias, p)
    return tuple(a + dt / 6 * (q1 + 2 * q2 + 2 * q3 + q4) for a, q1, q2, q3, q4 in zip(z, k1, k2, k3, k4))


class SynapseFactors(NamedTuple):
    """The synapse's constant decay factors over one step (0-dim tensors):
    ``clear`` = e^{-Ω_c dt} (Y_S), ``facil`` = e^{-Ω_f dt} (u_S), ``recov`` = e^{-Ω_d dt} (x_S)."""

    clear: torch.Tensor
    facil: torch.Tensor
    recov: torch.Tensor


@lru_cache(maxsize=256)
def _decay_factor(rate: float, dt: float, dtype: torch.dtype) -> torch.Tensor:
    # e^{-rate dt} as a 0-dim CPU tensor of ``dtype``: computed once per (rate, dt, dtype), not per step
    return torch.exp(torch.as_tensor(-rate * dt, dtype=dtype))


def synapse_factors(p: AstroParams, dt: float, dtype=torch.float64) -> SynapseFactors:
    """:class:`SynapseFactors` for ``p`` and ``dt`` in ``dtype`` (cached): hoist this out of a time loop
    and pass it to :func:`synapse_decay` / :func:`tripartite_step`."""
    return SynapseFactors(_decay_factor(p.Omega_c, dt, dtype), _decay_factor(p.Omega_f, dt, dtype),
                          _decay_factor(p.Omega_d, dt, dtype))


def synapse_factors_like(y_s, u_s, x_s, p: AstroParams, dt: float) -> SynapseFactors:
    """:func:`synapse_factors`, each factor in the dtype of the variable it multiplies (``Y_S``, ``u_S``, ``x_S``)."""
    return SynapseFactors(_decay_factor(p.Omega_c, dt, y_s.dtype), _decay_factor(p.Omega_f, dt, u_s.dtype),
                          _decay_factor(p.Omega_d, dt, x_s.dtype))


def synapse_decay(y_s, gamma_s, u_s, x_s, g_a, p: AstroParams, dt: float, factors: SynapseFactors | None = None):
    """Exact solution over ``dt`` of the synapse's linear ODEs (``g_a`` held over the step).

    ``factors``: :func:`synapse_factors` ``(p, dt)`` in the variables' dtype; looked up (cached) when
    not given, so a time loop that passes them does only arithmetic per step."""
    if factors is None:
        factors = synapse_factors_like(y_s, u_s, x_s, p, dt)
    og = p.O_G * g_a
    k = og + p.Omega_G
    g_inf = og / k
    decay = torch.exp(-k * dt)
    return (y_s * factors.clear,
            g_inf + (gamma_s - g_inf) * decay,
            u_s * factors.facil,
            1 - (1 - x_s) * factors.recov)


def presynaptic_release(spk, y_s, gamma_s, u_s, x_s, r_s, p: AstroParams):
    """Tsodyks-Markram update where ``spk`` is 1 (``r_S`` keeps its last value elsewhere)."""
    u0 = (1 - gamma_s) * p.U_0_star + p.alpha * gamma_s
    u_new = u_s + u0 * (1 - u_s)
    r_new = u_new * x_s
    u_s = torch.where(spk > 0, u_new, u_s)
    r_s = torch.where(spk > 0, r_new, r_s)
    x_s = torch.where(spk > 0, x_s - r_new, x_s)
    y_s = torch.where(spk > 0, y_s + p.rho_c * p.Y_T * r_new, y_s)
    return y_s, u_s, x_s, r_s


def rearm(armed, c, p: AstroParams):
    """Astrocytes whose Ca2+ is at or below ``C_Θ`` may release again (Brian2's refractory condition)."""
    return torch.maximum(armed, (c <= p.C_Theta).to(c.dtype))


def glio_release(event, x_a, g_a, p: AstroParams):
    """Gliotransmitter exocytosis where ``event`` is 1."""
    rel = event * (p.U_A * x_a)
    return x_a - rel, g_a + p.rho_e * p.G_T * rel


def glio_step(c, armed, x_a, g_a, p: AstroParams):
    """Release by the armed astrocytes whose Ca2+ is above ``C_Θ`` (they are then disarmed).
    Returns ``(x_a, g_a, armed, event)``."""
    event = (c > p.C_Theta).to(c.dtype) * armed
    x_a, g_a = glio_release(event, x_a, g_a, p)
    return x_a, g_a, armed * (1 - event), event


def tripartite_step(state: TripartiteState, spk, p: AstroParams, dt: float, syn_to_astro, astro_to_syn,
                    i_bias=0.0, factors: SynapseFactors | None = None):
    """One step (module docstring order). ``spk`` (B, n_syn) of 0/1; coupling matrices
    ``syn_to_astro`` (n_astro, n_syn), ``astro_to_syn`` (n_syn, n_astro); ``factors`` as
    :func:`synapse_decay`. Returns ``(new_state, glio_event (B, n_astro))``."""
    s = state
    y = s.Y_S @ syn_to_astro.T
    armed = rearm(s.armed, s.C, p)
    ga, ip3, c, h, xa, g = astro_rk4((s.Gamma_A, s.I, s.C, s.h, s.x_A, s.G_A), y, i_bias, p, dt)
    g_syn = g @ astro_to_syn.T
    y_s, gamma_s, u_s, x_s = synapse_decay(s.Y_S, s.Gamma_S, s.u_S, s.x_S, g_syn, p, dt, factors)
    y_s, u_s, x_s, r_s = presynaptic_release(spk, y_s, gamma_s, u_s, x_s, s.r_S, p)
    xa, g, armed, event = glio_step(c, armed, xa, g, p)
    return TripartiteState(y_s, gamma_s, u_s, x_s, r_s, ga, ip3, c, h, xa, g, armed), event


def _matrix(m, rows, cols, name, like):
    m = torch.as_tensor(m, dtype=like.dtype, device=like.device)
    if m.shape != (rows, cols):
        raise ShapeError(f"{name} must have shape ({rows}, {cols}), got {tuple(m.shape)}")
    if not torch.isfinite(m).all() or (m < 0).any():
        raise InvalidInputError(f"{name} must hold finite, non-negative coupling weights")
    return m


def tripartite_scan(spikes, syn_to_astro, astro_to_syn, *, params: AstroParams | None = None, dt: float = 1e-3,
                    i_bias=0.0, state: TripartiteState | None = None, record=STATE_NAMES):
    """Run :func:`tripartite_step` over ``spikes`` (T, B, n_syn) (or (T, n_syn): B = 1 added).

    Returns ``(traces, final_state)``: ``traces[name]`` is (T, B, n) for each name in ``record``
    (the state after each step) plus ``glio_events``.  Computes in ``spikes``' floating dtype.
    """
    p = params or AstroParams()
    dt = check_dt(dt, p)
    spikes = torch.as_tensor(spikes)
    if not spikes.is_floating_point():
        spikes = spikes.to(torch.get_default_dtype())
    if spikes.ndim == 2:
        spikes = spikes[:, None]
    if spikes.ndim != 3 or spikes.shape[0] == 0:
        raise ShapeError(f"spikes must be (T, B, n_syn) or (T, n_syn) with T >= 1, got {tuple(spikes.shape)}")
    if not ((spikes == 0) | (spikes == 1)).all():
        raise InvalidInputError("spikes must hold 0/1 values (one presynaptic spike per step at most)")
    T, B, n_syn = spikes.shape
    a_in = torch.as_tensor(syn_to_astro)
    n_astro = a_in.shape[0] if a_in.ndim == 2 else -1
    a_in = _matrix(syn_to_astro, n_astro, n_syn, "syn_to_astro", spikes)
    a_out = _matrix(astro_to_syn, n_syn, n_astro, "astro_to_syn", spikes)
    bias = torch.as_tensor(i_bias, dtype=spikes.dtype, device=spikes.device)
    if not torch.isfinite(bias).all() or (bias < 0).any():
        raise InvalidInputError(f"i_bias must be finite and >= 0 µM, got {i_bias!r}")
    unknown = [r for r in record if r not in STATE_NAMES]
    if unknown:
        raise InvalidInputError(f"cannot record {unknown}; choose from {STATE_NAMES}")
    s = state if state is not None else init_state(B, n_syn, n_astro, p, spikes.dtype, spikes.device)
    f = synapse_factors_like(s.Y_S, s.u_S, s.x_S, p, dt)          # hoisted: constant over the scan
    out = {name: [] for name in record}
    events = []
    for t in range(T):
        s, ev = tripartite_step(s, spikes[t], p, dt, a_in, a_out, bias, f)
        for name in record:
            out[name].append(getattr(s, name))
        events.append(ev)
    traces = {name: torch.stack(v) for name, v in out.items()}
    traces["glio_events"] = torch.stack(events)
    return traces, s
