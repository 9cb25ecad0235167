"""One time step of the LIF dynamics (pure functions).

These are the definitions; :mod:`neuroadapt.core.scan` runs the same arithmetic for many
steps at once.  Conventions follow snnTorch 1.0 (``reset_delay=True``): the reset applied at
step ``t`` is decided by the membrane of step ``t-1``, ``r_t = H(m_{t-1} - θ)``, and is
detached from the graph.

Leaky (snnTorch ``Leaky``)::

    subtract:  m_t = β m_{t-1} + x_t - r_t θ
    zero:      m_t = β (1 - r_t) m_{t-1} + x_t
    none:      m_t = β m_{t-1} + x_t
    s_t = S(m_t - θ)         S: Heaviside forward, surrogate derivative backward

Synaptic / current-based (snnTorch ``Synaptic``, NIR ``CubaLIF``)::

    syn_t = α syn_{t-1} + x_t
    subtract:  m_t = β m_{t-1} + syn_t - r_t θ
    zero:      m_t = (1 - r_t)(β m_{t-1} + syn_t)
    none:      m_t = β m_{t-1} + syn_t

With a time step ``dt`` and time constants, ``β = exp(-dt/τ_mem)`` and ``α = exp(-dt/τ_syn)``
(:func:`decay_from_tau` / :func:`tau_from_decay`).
"""

from __future__ import annotations

import math

import torch

from neuroadapt.core.surrogate import SpikeFn, atan
from neuroadapt.errors import InvalidInputError, UnsupportedOptionError

RESETS = ("subtract", "zero", "none")
_DEFAULT_SPIKE = atan()


def _check_reset(reset: str) -> None:
    if reset not in RESETS:
        raise UnsupportedOptionError(f"reset mechanism {reset!r} is not supported; use one of {RESETS}")


def decay_from_tau(tau: float, dt: float) -> float:
    """Per-step decay factor ``exp(-dt / tau)`` of a leak with time constant ``tau`` (seconds)."""
    if not (tau > 0 and dt > 0):
        raise InvalidInputError(f"time constant and dt must be positive (got tau={tau}, dt={dt})")
    return math.exp(-dt / tau)


def tau_from_decay(decay: float, dt: float) -> float:
    """Inverse of :func:`decay_from_tau`: ``tau = -dt / ln(decay)`` for ``0 < decay < 1``."""
    if not (0 < decay < 1 and dt > 0):
        raise InvalidInputError(f"decay must lie in (0, 1) and dt > 0 (got decay={decay}, dt={dt})")
    return -dt / math.log(decay)


def leaky_step(x: torch.Tensor, mem: torch.Tensor, beta, threshold, reset: str = "subtract",
               spike_fn: SpikeFn | None = None):
    """One step of the leaky neuron. Returns ``(spk, mem)``."""
    _check_reset(reset)
    r = (mem - threshold > 0).to(x.dtype)
    if reset == "subtract":
        mem = beta * mem + x - r * threshold
    elif reset == "zero":
        mem = beta * ((1 - r) * mem) + x
    else:
        mem = beta * mem + x
    return (spike_fn or _DEFAULT_SPIKE)(mem - threshold), mem


def synaptic_step(x: torch.Tensor, syn: torch.Tensor, mem: torch.Tensor, alpha, beta, threshold,
                  reset: str = "subtract", spike_fn: SpikeFn | None = None):
    """One step of the current-based neuron. Returns ``(spk, syn, mem)``."""
    _check_reset(reset)
    r = (mem - threshold > 0).to(x.dtype)
    syn = alpha * syn + x
    mem = beta * mem + syn
    if reset == "subtract":
        mem = mem - r * threshold
    elif reset == "zero":
        mem = mem - mem * r
    return (spike_fn or _DEFAULT_SPIKE)(mem - threshold), syn, mem
