"""``model.type: astro_classifier``: one hidden layer (AM-SU, recurrent LIF or LSTM) and a leaky readout.

Input ``(T, B, n_inputs)`` -> hidden layer -> :class:`~neuroadapt.nn.LIReadout` -> logits
``(B, n_classes)`` from the readout membrane (``last`` step, ``mean`` or ``max`` over time).  The
three cells share everything else, so the comparison in ``docs/results.md (astrocytes section)`` differs only in
the hidden layer.
"""
from __future__ import annotations

import torch
from torch import nn

from neuroadapt.errors import ShapeError

__all__ = ["AstroClassifier", "build_astro_classifier", "n_params"]

_AMSU_KEYS = ("n_astro", "astrocyte", "excitability", "u_star", "alpha", "tau_f", "tau_d", "tau_p", "tau_c",
              "tau_gamma", "g_in", "g_c", "theta_p", "g_gamma", "g_exc", "learn_synapse", "learn_astro")
NOT_EXPORTABLE = ("model.type astro_classifier is not exported: its AM-SU layer has use-dependent synapses "
                  "with a slow astrocyte state (see neuroadapt.nn.amsu.EXPORT_UNSUPPORTED), and its lif / lstm "
                  "variants exist as baselines for that comparison; for hardware train a spiking_classifier")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class AstroClassifier(nn.Module):
    export_unsupported_reason = NOT_EXPORTABLE

    def __init__(self, n_inputs: int, n_classes: int, cell: str = "amsu", hidden: int = 128, recurrent: bool = True,
                 beta: float = 0.9, learn_beta: bool = True, threshold: float = 1.0, surrogate_slope: float = 2.0,
                 readout: str = "last", readout_beta: float = 0.9, dt: float = 0.01, **amsu_opts):
        super().__init__()
        from neuroadapt.core.surrogate import atan
        from neuroadapt.nn import AMSU, LIFLayer, LIReadout

        self.n_inputs, self.n_classes, self.cell, self.readout_mode = int(n_inputs), int(n_classes), cell, readout
        if cell == "amsu":
            self.hidden = AMSU(self.n_inputs, hidden, dt=dt, beta=beta, threshold=threshold, recurrent=recurrent,
                               spike_grad=atan(surrogate_slope), learn_beta=learn_beta, **amsu_opts)
        elif cell == "lif":
            self.hidden = LIFLayer(self.n_inputs, hidden, neuron="leaky", recurrent=recurrent, beta=beta,
                                   threshold=threshold, learn_beta=learn_beta, spike_grad=atan(surrogate_slope))
        else:
            self.hidden = nn.LSTM(self.n_inputs, hidden)
        self.readout = LIReadout(hidden, self.n_classes, beta=readout_beta)

    def forward(self, x: torch.Tensor, record: bool = False):
        if x.ndim != 3 or x.shape[-1] != self.n_inputs:
            raise ShapeError(f"AstroClassifier expects time-major input (T, B, {self.n_inputs}), got shape "
                             f"{tuple(x.shape)}; check the data set or model.n_inputs")
        h = self.hidden(x)[0] if self.cell == "lstm" else self.hidden(x)
        mem = self.readout(h)
        mode = self.readout_mode
        logits = mem[-1] if mode == "last" else (mem.mean(0) if mode == "mean" else mem.amax(0))
        if record:
            return logits, {"readout": mem}
        return logits


def build_astro_classifier(cfg: dict, n_inputs: int, n_classes: int) -> AstroClassifier:
    cfg = dict(cfg)
    cfg.pop("type", None)
    width = cfg.pop("n_inputs", None) or n_inputs
    amsu = {k: cfg.pop(k) for k in _AMSU_KEYS}
    if cfg["cell"] != "amsu":
        amsu = {}
    return AstroClassifier(width, n_classes, **cfg, **amsu)
