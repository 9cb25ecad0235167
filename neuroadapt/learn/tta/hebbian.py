"""The soft winner-take-all Hebbian rule (SoftHebb, Moraitis et al. 2022) as pure functions.

For ``K`` neurons with weight vectors ``w_k`` and inputs ``x`` (one row per presentation)::

    u_k = w_k . x                              pre-activation
    y_k = exp(u_k / tau) / sum_l exp(u_l / tau)   soft WTA (competitive lateral inhibition)
    dw_k = mean over presentations of  y_k (x - u_k w_k)      (Oja-like Hebbian update)

``anti_hebbian=True`` gives Journe et al.'s multilayer variant: the winner keeps ``+y_k``, every
other neuron gets ``-y_k``. For a convolution the presentations are all patches of all images
of the batch (``F.unfold``), so one update uses the whole mini-batch; no backpropagation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from neuroadapt.errors import InvalidInputError, ShapeError

__all__ = ["soft_wta", "softhebb_delta", "softhebb_conv_delta", "conv_patches"]


def soft_wta(u: torch.Tensor, tau: float, anti_hebbian: bool = False) -> torch.Tensor:
    """Post-synaptic activities ``y`` (N, K) from pre-activations ``u`` (N, K)."""
    if not tau > 0:
        raise InvalidInputError(f"soft-WTA temperature tau must be > 0, got {tau}")
    y = torch.softmax(u / tau, dim=1)
    if anti_hebbian:
        win = torch.nn.functional.one_hot(u.argmax(1), u.shape[1]).bool()
        y = torch.where(win, y, -y)
    return y


def softhebb_delta(x: torch.Tensor, w: torch.Tensor, tau: float = 1.0, anti_hebbian: bool = False) -> torch.Tensor:
    """``dW`` (K, D) of the SoftHebb rule for inputs ``x`` (N, D) and weights ``w`` (K, D), averaged over N."""
    if x.dim() != 2 or w.dim() != 2 or x.shape[1] != w.shape[1]:
        raise ShapeError(f"softhebb_delta needs x (N, D) and w (K, D), got {tuple(x.shape)} and {tuple(w.shape)}")
    u = x @ w.T
    y = soft_wta(u, tau, anti_hebbian)
    return (y.T @ x - (y * u).sum(0).unsqueeze(1) * w) / x.shape[0]


def conv_patches(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """All input patches a ``Conv2d`` sees in ``x`` (B, C, H, W), as rows (B*L, C*kh*kw)."""
    if conv.groups != 1:
        raise ShapeError(f"the Hebbian convolution must have groups=1, got {conv.groups}")
    if isinstance(conv.padding, str):
        raise ShapeError("the Hebbian convolution needs numeric padding (not 'same'/'valid')")
    if conv.padding_mode != "zeros":
        raise ShapeError(f"the Hebbian convolution needs zero padding, got padding_mode={conv.padding_mode!r}")
    p = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
    return p.transpose(1, 2).reshape(-1, p.shape[1])


def softhebb_conv_delta(x: torch.Tensor, conv: torch.nn.Conv2d, tau: float = 1.0,
                        anti_hebbian: bool = False, standardise: bool = False,
                        center_patches: bool = False) -> torch.Tensor:
    """SoftHebb ``dW`` for a ``Conv2d``'s weight (same shape), from the batch ``x`` it receives.

    ``standardise``: first normalise each input channel by the batch's mean and standard
    deviation (SoftHebb's affine-free batch norm in front of every Hebbian convolution).
    ``center_patches``: subtract from every patch its own mean (local mean removal, as
    centre-surround receptive fields do), so the rule cannot pull the filters towards the
    mean-intensity (DC) patch.
    """
    w = conv.weight.detach()
    x = x.detach()
    if standardise:
        dims = [0] + list(range(2, x.dim()))
        x = (x - x.mean(dims, keepdim=True)) / (x.var(dims, keepdim=True, unbiased=False) + 1e-5).sqrt()
    patches = conv_patches(x, conv)
    if center_patches:
        patches = patches - patches.mean(1, keepdim=True)
    return softhebb_delta(patches, w.reshape(w.shape[0], -1), tau, anti_hebbian).view_as(w)
