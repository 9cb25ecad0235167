"""Surrogate spike functions and their derivatives.

A spike function maps ``u = mem - threshold`` to spikes: Heaviside ``u > 0`` in the forward
pass, a smooth surrogate derivative in the backward pass.  neuroadapt accepts any spike
function with that contract, in particular every ``snntorch.surrogate`` function
(``atan()``, ``fast_sigmoid()``, ``sigmoid()``, ...), and ships its own two below.

The fused time scans never run a spike function step by step: after the forward scan they
need only the elementwise derivative ``dS/du`` for all time steps, which
:func:`surrogate_derivative` obtains with one vectorised call.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


class _ATan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, alpha):
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        a = ctx.alpha
        return grad * (a / 2) / (1 + (math.pi / 2 * a * u) ** 2), None


class _FastSigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, slope):
        ctx.save_for_backward(u)
        ctx.slope = slope
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad / (ctx.slope * u.abs() + 1.0) ** 2, None


def atan(alpha: float = 2.0) -> SpikeFn:
    """Heaviside forward, ``alpha/2 / (1 + (pi/2 * alpha * u)^2)`` backward (snnTorch's default)."""

    def spike(u: torch.Tensor) -> torch.Tensor:
        return _ATan.apply(u, alpha)

    spike.derivative = lambda u: (alpha / 2) / (1 + (math.pi / 2 * alpha * u) ** 2)
    spike.kernel_code = (1, float(alpha))  # evaluated inside the C backward scan
    return spike


def fast_sigmoid(slope: float = 25.0) -> SpikeFn:
    """Heaviside forward, ``1 / (slope * |u| + 1)^2`` backward (SuperSpike)."""

    def spike(u: torch.Tensor) -> torch.Tensor:
        return _FastSigmoid.apply(u, slope)

    spike.derivative = lambda u: 1.0 / (slope * u.abs() + 1.0) ** 2
    spike.kernel_code = (2, float(slope))
    return spike


def heaviside(u: torch.Tensor) -> torch.Tensor:
    """Forward-only spike function (no surrogate: zero gradient)."""
    return (u > 0).to(u.dtype)


def surrogate_derivative(spike_fn: SpikeFn, u: torch.Tensor) -> torch.Tensor:
    """Elementwise ``dS/du`` of ``spike_fn`` at ``u`` (any shape), in one vectorised call.

    Uses ``spike_fn.derivative`` when the function carries one (neuroadapt's own); otherwise
    differentiates the function once with autograd, which works for every snnTorch
    surrogate and for user-written ``torch.autograd.Function`` spike functions.
    """
    deriv = getattr(spike_fn, "derivative", None)
    if deriv is not None:
        return deriv(u)
    with torch.enable_grad():
        u_ = u.detach().requires_grad_(True)
        out = spike_fn(u_)
        if not out.requires_grad:  # e.g. snntorch heaviside / surrogate_disable: no gradient
            return torch.zeros_like(u)
        (g,) = torch.autograd.grad(out, u_, torch.ones_like(out), allow_unused=True)
    return torch.zeros_like(u) if g is None else g.to(u.dtype)
