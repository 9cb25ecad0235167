"""Models built from a recipe's ``model:`` section.

``elm`` / ``branch_elm``: one ELM neuron, see :mod:`neuroadapt.engine.models_elm`.

``spiking_classifier``: input spikes (T, B, n_inputs) -> ``len(hidden)`` :class:`~neuroadapt.nn.LIFLayer`
layers (leaky or synaptic, optionally recurrent) -> a non-spiking :class:`~neuroadapt.nn.LIReadout`
-> logits (B, n_classes) = mean (or max) over time of the readout membrane.  ``dropout`` drops
hidden spikes while training (inverted dropout; nothing in eval mode).  ``init_scale`` /
``recurrent_scale`` multiply the default initial feed-forward / recurrent weights and biases of the hidden
layers (with a threshold well below 1 the default scale drives the layer into self-sustained firing).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from neuroadapt.errors import ShapeError, UnsupportedOptionError

__all__ = ["SpikingClassifier", "build_model", "NEURONS", "RESETS", "SURROGATES"]

NEURONS = ("leaky", "synaptic")
RESETS = ("subtract", "zero", "none")
SURROGATES = ("fast_sigmoid", "atan", "sigmoid")


def _surrogate(name: str | None, slope: float):
    if name is None:
        return None
    from snntorch import surrogate

    if name == "fast_sigmoid":
        return surrogate.fast_sigmoid(slope=slope)
    if name == "sigmoid":
        return surrogate.sigmoid(slope=slope)
    if name == "atan":
        return surrogate.atan(alpha=slope)
    raise UnsupportedOptionError(f"model.surrogate: {name!r} is not supported; choose one of {', '.join(SURROGATES)}")


class SpikingClassifier(nn.Module):
    """Stacked LIF layers with a leaky-integrator readout; time-major input (T, B, n_inputs)."""

    def __init__(self, n_inputs: int, n_classes: int, hidden=(128,), neuron: str = "leaky",
                 recurrent: bool = False, beta: float = 0.9, alpha: float = 0.8, threshold: float = 1.0,
                 reset: str = "subtract", learn_beta: bool = False, learn_alpha: bool = False,
                 learn_threshold: bool = False, surrogate: str | None = None, surrogate_slope: float = 25.0,
                 bias: bool = True, readout: str = "mean", readout_beta: float = 0.9, dropout: float = 0.0,
                 init_scale: float = 1.0, recurrent_scale: float = 1.0, reset_delay: bool = True):
        super().__init__()
        from neuroadapt.nn import LIFLayer, LIReadout

        if neuron not in NEURONS:
            raise UnsupportedOptionError(f"model.neuron: {neuron!r} is not supported; choose one of {', '.join(NEURONS)}")
        if reset not in RESETS:
            raise UnsupportedOptionError(f"model.reset: {reset!r} is not supported; choose one of {', '.join(RESETS)}")
        if readout not in ("mean", "max"):
            raise UnsupportedOptionError(f"model.readout: {readout!r} is not supported; choose mean or max")
        if not reset_delay and (reset != "zero" or (neuron == "synaptic" and recurrent)):
            raise UnsupportedOptionError(f"model.reset_delay: false is supported with reset 'zero' in leaky layers and "
                                         f"feed-forward synaptic layers (got reset {reset!r}, neuron {neuron!r}, "
                                         f"recurrent {recurrent}; snnTorch's RSynaptic cannot run it)")
        if not 0.0 <= float(dropout) < 1.0:
            raise UnsupportedOptionError(f"model.dropout: {dropout!r} must be in [0, 1)")
        self.n_inputs, self.n_classes, self.readout_mode = int(n_inputs), int(n_classes), readout
        # spike dropout between layers, training only (a no-op in eval mode, so export is unaffected)
        self.dropout = nn.Dropout(float(dropout)) if dropout else None
        spike_grad = _surrogate(surrogate, surrogate_slope)
        layers, width = [], self.n_inputs
        for size in hidden:
            layers.append(LIFLayer(width, int(size), neuron=neuron, recurrent=recurrent, beta=beta, alpha=alpha,
                                   threshold=threshold, reset_mechanism=reset, learn_beta=learn_beta,
                                   learn_alpha=learn_alpha, learn_threshold=learn_threshold,
                                   spike_grad=spike_grad, bias=bias, reset_delay=reset_delay))
            width = int(size)
        self.layers = nn.ModuleList(layers)
        for key, val in (("init_scale", init_scale), ("recurrent_scale", recurrent_scale)):
            if not (math.isfinite(float(val)) and float(val) > 0.0):
                raise UnsupportedOptionError(f"model.{key}: {val!r} must be a positive number")
        with torch.no_grad():  # rescale the default (uniform +-1/sqrt(fan_in)) initialisation; RNG use unchanged
            for layer in self.layers:
                for p in layer.fc.parameters():
                    p.mul_(float(init_scale))
                rec = getattr(layer.neuron, "recurrent", None)
                if rec is not None:
                    for p in rec.parameters():
                        p.mul_(float(recurrent_scale))
        self.readout = LIReadout(width, self.n_classes, beta=readout_beta, bias=bias)

    def forward(self, x: torch.Tensor, record: bool = False):
        """Logits (B, n_classes). With ``record=True`` also a list of (spikes, membrane), each
        (T, B, hidden), one per hidden layer, and the readout membrane (T, B, n_classes)."""
        if x.ndim != 3:
            raise ShapeError(f"SpikingClassifier expects time-major input (T, B, {self.n_inputs}), "
                             f"got a {x.ndim}-d tensor of shape {tuple(x.shape)}")
        if x.shape[-1] != self.n_inputs:
            raise ShapeError(f"SpikingClassifier expects {self.n_inputs} input channels (T, B, {self.n_inputs}), "
                             f"got shape {tuple(x.shape)}; check the data set or model.n_inputs")
        trace = []
        for layer in self.layers:
            if record:
                x, mem = layer(x, return_mem=True)
                trace.append((x, mem))
            else:
                x = layer(x)
            if self.dropout is not None:
                x = self.dropout(x)
        mem_out = self.readout(x)
        logits = mem_out.mean(0) if self.readout_mode == "mean" else mem_out.amax(0)
        if record:
            return logits, {"hidden": trace, "readout": mem_out}
        return logits


def build_model(model_cfg: dict, n_inputs: int, n_classes: int) -> nn.Module:
    """The model a resolved recipe's ``model:`` section describes.

    ``model_cfg["n_inputs"]`` (when not null) overrides the data set's width -- a mismatch then
    surfaces as a :class:`ShapeError` on the first batch.
    """
    cfg = dict(model_cfg)
    kind = cfg.pop("type", "spiking_classifier")
    if kind in ("elm", "branch_elm"):
        from neuroadapt.engine.models_elm import build_elm_classifier

        return build_elm_classifier(cfg, n_inputs, n_classes)
    if kind == "astro_classifier":
        from neuroadapt.engine.models_astro import build_astro_classifier

        return build_astro_classifier(cfg, n_inputs, n_classes)
    if kind != "spiking_classifier":
        raise UnsupportedOptionError(f"model.type: {kind!r} is not supported; use spiking_classifier, elm, branch_elm or astro_classifier")
    width = cfg.pop("n_inputs", None) or n_inputs
    return SpikingClassifier(n_inputs=width, n_classes=n_classes, **cfg)
