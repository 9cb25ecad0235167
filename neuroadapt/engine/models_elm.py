"""``model.type: elm`` / ``branch_elm``: one ELM (or Branch-ELM) neuron as a sequence classifier.

Input spikes ``(T, B, n_inputs)`` -> (optional input dropout) -> :class:`neuroadapt.nn.ELM` with
``n_classes`` readout channels -> logits ``(B, n_classes)`` from the readout ``y_t``: the last
step (``readout: last``, as in the paper), or its sum / mean over time.
"""
from __future__ import annotations

import torch
from torch import nn

from neuroadapt.errors import ShapeError, UnsupportedOptionError
from neuroadapt.nn.elm import EXPORT_UNSUPPORTED

__all__ = ["ELMClassifier", "ELM_OPTIONS"]

#: recipe keys passed on to :class:`neuroadapt.nn.ELM` unchanged
ELM_OPTIONS = ("n_memory", "version", "lambda_value", "mlp_layers", "mlp_hidden", "mlp_activation", "tau_s",
               "learn_tau_s", "tau_m_min", "tau_m_max", "tau_m_init", "learn_tau_m", "w_s_init", "n_branches",
               "synapses_per_branch", "routing", "routing_seed", "dt")


class ELMClassifier(nn.Module):
    """An ELM neuron whose readout gives the class logits; time-major input ``(T, B, n_inputs)``."""

    export_unsupported_reason = EXPORT_UNSUPPORTED

    def __init__(self, n_inputs: int, n_classes: int, readout: str = "last", input_dropout: float = 0.0, **elm_opts):
        super().__init__()
        from neuroadapt.nn import ELM

        if readout not in ("last", "sum", "mean"):
            raise UnsupportedOptionError(f"model.readout: {readout!r} is not supported; choose last, sum or mean")
        if elm_opts.get("tau_m_init") is not None:
            elm_opts["tau_m_init"] = tuple(elm_opts["tau_m_init"])
        self.n_inputs, self.n_classes, self.readout_mode = int(n_inputs), int(n_classes), readout
        self.dropout = nn.Dropout(float(input_dropout)) if input_dropout else nn.Identity()
        self.elm = ELM(self.n_inputs, self.n_classes, **elm_opts)

    def forward(self, x: torch.Tensor, record: bool = False):
        """Logits ``(B, n_classes)``; with ``record=True`` also ``{"memory": (T, B, n_memory),
        "readout": (T, B, n_classes)}``."""
        if x.ndim != 3 or x.shape[-1] != self.n_inputs:
            raise ShapeError(f"ELMClassifier expects time-major input (T, B, {self.n_inputs}), got shape "
                             f"{tuple(x.shape)}; check the data set or model.n_inputs")
        y, mem, _ = self.elm.forward_sequence(self.dropout(x))
        logits = y[-1] if self.readout_mode == "last" else (y.sum(0) if self.readout_mode == "sum" else y.mean(0))
        if record:
            return logits, {"memory": mem, "readout": y}
        return logits


def build_elm_classifier(cfg: dict, n_inputs: int, n_classes: int) -> ELMClassifier:
    cfg = dict(cfg)
    cfg.pop("type", None)
    width = cfg.pop("n_inputs", None) or n_inputs
    opts = {k: cfg.pop(k) for k in ELM_OPTIONS if k in cfg}
    return ELMClassifier(width, n_classes, readout=cfg.pop("readout", "last"),
                         input_dropout=cfg.pop("input_dropout", 0.0), **opts)
