"""One step of the AM-SU: LIF neurons behind tripartite synapses (pure functions; our formulation).

This is neuroadapt's own astrocyte-modulated spiking unit.  The AstroSNN paper (Shen et al.,
arXiv 2312.07625) names an "Astrocyte-Modulated Spiking Unit" but its equations are not public;
nothing here reproduces it.  The ground is the tripartite synapse of Stimberg et al. (2019), see
:mod:`neuroadapt.core.astrocyte`.  Shapes: presynaptic channels ``(B, n_in)``, neurons
``(B, n_out)``, astrocytes ``(B, n_astro)``; ``dt`` in seconds.

Release (per presynaptic channel ``i``; the same equations as the biophysical synapse, with the
decays solved exactly over ``dt``)::

    u <- u e^{-dt/τ_f};   x <- 1 - (1 - x) e^{-dt/τ_d}
    U_0 = (1 - Γ) U* + α Γ                       Γ: presynaptic gliotransmitter-receptor activation
    u <- u + min(s, 1) U_0 (1 - u);   r = x min(1, s u);   x <- x - r       (s: input, spikes or counts)

For binary spikes this is exactly Tsodyks-Markram; a count ``s > 1`` releases ``min(1, s u)`` of the
available resources.

Astrocyte, ``reduced`` (cheap, stable at any ``dt``; every factor below is exact for its linear ODE)::

    y_a   = Σ_i M_in[a, i] r_i                   mean release seen by astrocyte a (rows of M_in sum to 1)
    p_a  <- p_a e^{-dt/τ_p} + g_in y_a           IP3-like integrator of synaptic activity
    c_a  <- c_a + (1 - e^{-dt/τ_c}) (σ(g_c (p_a - θ_p)) - c_a)         Ca2+-like response in [0, 1]
    Γ_i  <- Γ_i + (1 - e^{-dt/τ_Γ}) (g_Γ Σ_a M_out[i, a] c_a - Γ_i)    receptor activation in [0, g_Γ]

Astrocyte, ``gchi``: the biophysical G-ChI astrocyte and synapse of :mod:`neuroadapt.core.astrocyte`
(RK4, dt within its stability bound): the limiting case in which the AM-SU *is* the tripartite
synapse of Stimberg et al. (``Γ = Γ_S``, ``U*``, ``α``, ``τ_f = 1/Ω_f``, ``τ_d = 1/Ω_d`` from the
parameters).

Neuron (snnTorch ``Leaky``, subtract reset decided by the previous step's spike)::

    I   = κ W r + b (+ V s_out_{t-1})             κ = 1/U*_init: a rested synapse gives W per spike
    θ_j = θ (1 - g_e Σ_a P[j, a] c_a)            optional excitability modulation (g_e >= 0)
    m  <- β m + I - s_out_{t-1} θ_{t-1};   s_out = S(m - θ_j)            S: surrogate spike function
"""
from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["AMSUState", "release", "release_step", "reduced_astro_step", "lif_step"]


class AMSUState(NamedTuple):
    """``mem``, ``spk``, ``theta`` (B, n_out); ``u``, ``x``, ``r``, ``gamma`` (B, n_in);
    ``astro``: tuple of astrocyte tensors (reduced: ``(p, c)``; gchi: ``(Y_S, Γ_A, I, C, h, x_A, G_A,
    armed)``)."""

    mem: torch.Tensor
    spk: torch.Tensor
    theta: torch.Tensor
    u: torch.Tensor
    x: torch.Tensor
    r: torch.Tensor
    gamma: torch.Tensor
    astro: tuple


def release(s, u, x, gamma, u_star, alpha):
    """Release at input ``s`` (spikes or counts) on already decayed ``u``, ``x``; returns ``(u, x, r)``."""
    u0 = (1 - gamma) * u_star + alpha * gamma
    u = u + s.clamp(max=1) * u0 * (1 - u)
    r = x * (s * u).clamp(max=1)
    return u, x - r, r


def release_step(s, u, x, gamma, u_star, alpha, decay_f, decay_d):
    """Decay then release; returns ``(u, x, r)``.  ``decay_* = exp(-dt/τ_*)``."""
    return release(s, u * decay_f, 1 - (1 - x) * decay_d, gamma, u_star, alpha)


def reduced_astro_step(r, p, c, gamma, m_in, m_out, decay_p, decay_c, decay_g, g_in, g_c, theta_p, g_gamma):
    """The reduced astrocyte of the module docstring; returns ``(p, c, gamma)``."""
    p = p * decay_p + g_in * (r @ m_in.T)
    c = c + (1 - decay_c) * (torch.sigmoid(g_c * (p - theta_p)) - c)
    gamma = gamma + (1 - decay_g) * (g_gamma * (c @ m_out.T) - gamma)
    return p, c, gamma


def lif_step(current, mem, spk_prev, theta_prev, theta, beta, spike_fn):
    """Leaky neuron with subtract reset decided by the previous spike (detached, as snnTorch)."""
    mem = beta * mem + current - spk_prev.detach() * theta_prev
    return spike_fn(mem - theta), mem
