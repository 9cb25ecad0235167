"""Sequence-level layers: one GEMM over all time steps, then a fused neuron scan.

``LIFLayer`` = ``nn.Linear`` + one of the neurons of :mod:`neuroadapt.nn.neurons`, applied to
a whole ``(T, B, in_features)`` sequence.  Its two children (``.fc`` and ``.neuron``) are
ordinary snnTorch-compatible modules, so exporters and Hebbian methods see a plain Linear
followed by a plain neuron.  ``LIReadout`` is the non-spiking leaky-integrator readout.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroadapt.core.scan import linear_scan
from neuroadapt.errors import ShapeError, UnsupportedOptionError
from neuroadapt.nn.neurons import Leaky, RLeaky, RSynaptic, Synaptic

NEURONS = ("leaky", "synaptic")
RESETS = ("subtract", "zero", "none")


def _as_time_major(x, in_features: int, batch_first: bool, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{who} expects a tensor, got {type(x).__name__}")
    if x.dim() != 3:
        layout = "(B, T, N)" if batch_first else "(T, B, N)"
        raise ShapeError(f"{who} expects a 3-d input {layout}, got shape {tuple(x.shape)}")
    if x.shape[-1] != in_features:
        raise ShapeError(f"{who} expects {in_features} input features in the last dimension, "
                         f"got shape {tuple(x.shape)}")
    return x.transpose(0, 1) if batch_first else x


class LIFLayer(nn.Module):
    """``Linear(in_features, out_features)`` followed by a LIF neuron, over a whole sequence.

    Args:
        neuron: ``"leaky"`` (snnTorch ``Leaky``) or ``"synaptic"`` (current-based, ``Synaptic``).
        recurrent: add all-to-all recurrent weights (``RLeaky`` / ``RSynaptic``).
        beta, alpha, threshold, reset_mechanism, learn_*, spike_grad: as in snnTorch.
        batch_first: accept and return ``(B, T, N)`` instead of ``(T, B, N)``.
        reset_delay: snnTorch's option; ``False`` resets in the step the neuron fires (with a zero
        reset this is NIR's / Loihi's / PyNN's reset; fused for recurrent leaky layers).

    ``layer(x)`` returns spikes; ``layer(x, return_mem=True)`` returns ``(spikes, membrane)``.
    """

    def __init__(self, in_features: int, out_features: int, neuron: str = "leaky", recurrent: bool = False,
                 beta=0.9, alpha=0.8, threshold=1.0, reset_mechanism: str = "subtract",
                 learn_beta: bool = False, learn_alpha: bool = False, learn_threshold: bool = False,
                 spike_grad=None, bias: bool = True, batch_first: bool = False, reset_delay: bool = True):
        super().__init__()
        if neuron not in NEURONS:
            raise UnsupportedOptionError(f"unknown neuron {neuron!r}; choose one of {NEURONS}")
        if reset_mechanism not in RESETS:
            raise UnsupportedOptionError(f"unknown reset_mechanism {reset_mechanism!r}; choose one of {RESETS}")
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise ShapeError(f"layer sizes must be positive (got {in_features} -> {out_features})")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.batch_first = batch_first
        self.fc = nn.Linear(self.in_features, self.out_features, bias=bias)
        common = dict(threshold=threshold, spike_grad=spike_grad, learn_beta=learn_beta,
                      learn_threshold=learn_threshold, reset_mechanism=reset_mechanism, reset_delay=bool(reset_delay))
        if neuron == "leaky" and not recurrent:
            self.neuron = Leaky(beta, **common)
        elif neuron == "leaky":
            self.neuron = RLeaky(beta, linear_features=self.out_features, **common)
        elif not recurrent:
            self.neuron = Synaptic(alpha, beta, learn_alpha=learn_alpha, **common)
        else:
            self.neuron = RSynaptic(alpha, beta, linear_features=self.out_features,
                                    learn_alpha=learn_alpha, **common)
        self.kind, self.recurrent = neuron, recurrent

    def forward(self, x: torch.Tensor, return_mem: bool = False):
        x = _as_time_major(x, self.in_features, self.batch_first, type(self).__name__)
        out = self.neuron.forward_sequence(self.fc(x))
        spk, mem = out[0], out[-1]
        if self.batch_first:
            spk, mem = spk.transpose(0, 1), mem.transpose(0, 1)
        return (spk, mem) if return_mem else spk

    def extra_repr(self) -> str:
        return f"neuron={self.kind!r}, recurrent={self.recurrent}, batch_first={self.batch_first}"


class LIReadout(nn.Module):
    """``Linear`` + leaky integrator without spikes: ``m_t = β m_{t-1} + W x_t + b``.

    Returns the membrane sequence ``(T, B, out_features)``; classify with its mean or max
    over time.  ``learn_beta=True`` makes the decay (clamped to [0, 1]) trainable.
    """

    def __init__(self, in_features: int, out_features: int, beta=0.9, bias: bool = True,
                 learn_beta: bool = False, batch_first: bool = False):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.batch_first = batch_first
        self.fc = nn.Linear(self.in_features, self.out_features, bias=bias)
        beta = torch.as_tensor(beta, dtype=torch.get_default_dtype())
        if learn_beta:
            self.beta = nn.Parameter(beta)
        else:
            self.register_buffer("beta", beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_time_major(x, self.in_features, self.batch_first, type(self).__name__)
        mem = linear_scan(self.fc(x), self.beta.clamp(0, 1))
        return mem.transpose(0, 1) if self.batch_first else mem
