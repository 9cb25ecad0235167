"""Gradient-based baselines: Tent and EATA (both adapt normalisation affine parameters only).

* **Tent** (Wang et al., ICLR 2021): test-batch normalisation statistics; one Adam step per
  batch on the mean prediction entropy, w.r.t. the affine parameters (gamma, beta) of every
  normalisation layer; everything else frozen.
* **EATA** (Niu et al., ICML 2022): Tent's parameters and loss, but only on *reliable* samples
  (entropy below ``e_margin = e_margin_frac * ln C``) that are *non-redundant* (|cosine| between
  the sample's probabilities and a moving average of past probabilities below ``d_margin``),
  each weighted by ``exp(-(H - e_margin))``; plus an anti-forgetting regulariser
  ``fisher_alpha * sum_i F_i (theta_i - theta_i^src)^2`` with the diagonal Fisher information
  ``F`` estimated on clean unlabelled data (gradients of the cross-entropy with the model's own
  predictions as labels).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from neuroadapt.errors import InvalidInputError, UnsupportedOptionError
from neuroadapt.learn.tta.base import TTAMethod, entropy, norm_layers, set_norm_batch_stats

__all__ = ["Tent", "EATA", "norm_affine_params"]


def norm_affine_params(model, who: str) -> list[torch.nn.Parameter]:
    params = []
    for _, m in norm_layers(model, affine_only=True):
        params += [p for p in (m.weight, getattr(m, "bias", None)) if p is not None]
    if not params:
        raise UnsupportedOptionError(
            f"{who} adapts the affine parameters of normalisation layers (BatchNorm/GroupNorm/LayerNorm with "
            f"affine=True); {type(model).__name__} has none. Add normalisation layers to the model or use "
            f"the 'source' method")
    return params


def _adam(params, lr: float, who: str):
    if not lr > 0:
        raise InvalidInputError(f"{who}: lr must be > 0, got {lr}")
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)


class Tent(TTAMethod):
    """Entropy minimisation of the normalisation affine parameters (one step per batch)."""

    name = "tent"
    batch_stats = True

    def __init__(self, model, lr: float = 1e-3, steps: int = 1):
        if int(steps) < 1:
            raise InvalidInputError(f"tent: steps must be >= 1, got {steps}")
        self.lr, self.steps = float(lr), int(steps)
        super().__init__(model)

    def setup(self) -> None:
        self.model.requires_grad_(False)
        self.params = norm_affine_params(self.model, self.name)
        for p in self.params:
            p.requires_grad_(True)
        set_norm_batch_stats(self.model)
        self.opt = _adam(self.params, self.lr, self.name)

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        return entropy(logits).mean()

    def adapt(self, x: torch.Tensor) -> None:
        for _ in range(self.steps):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(x))
            if loss.requires_grad:
                loss.backward()
                self.opt.step()

    def hparams(self) -> dict:
        return {"lr": self.lr, "steps": self.steps}


class EATA(Tent):
    """Tent on reliable, non-redundant samples, with a Fisher-weighted anchor to the source parameters."""

    name = "eata"

    def __init__(self, model, fisher_data: torch.Tensor | None = None, lr: float = 1e-3, steps: int = 1,
                 e_margin_frac: float = 0.4, d_margin: float = 0.4, fisher_alpha: float = 1.0,
                 fisher_batch: int = 64):
        if fisher_alpha > 0 and fisher_data is None:
            raise InvalidInputError(
                "eata: fisher_alpha > 0 needs fisher_data (clean unlabelled source-domain samples to estimate the "
                "Fisher information; the runner uses the source validation images); or set fisher_alpha=0")
        if fisher_data is not None and (not isinstance(fisher_data, torch.Tensor) or fisher_data.shape[0] < 2):
            raise InvalidInputError("eata: fisher_data must be a tensor of at least 2 samples")
        self.e_margin_frac, self.d_margin = float(e_margin_frac), float(d_margin)
        self.fisher_alpha, self.fisher_batch = float(fisher_alpha), int(fisher_batch)
        self._fisher_data = fisher_data
        self.fisher = None
        super().__init__(model, lr=lr, steps=steps)
        self.anchor = [p.detach().clone() for p in self.params]
        if self.fisher_alpha > 0:
            self.fisher = self._estimate_fisher(fisher_data)
            self.reset()  # the Fisher pass moved the running statistics and the optimiser: start clean

    def setup(self) -> None:
        super().setup()
        self.avg_probs = None
        self.n_used = 0

    def _estimate_fisher(self, data: torch.Tensor) -> list[torch.Tensor]:
        fisher = [torch.zeros_like(p) for p in self.params]
        chunks = [c for c in data.split(self.fisher_batch) if c.shape[0] >= 2]
        for chunk in chunks:
            self.model.zero_grad(set_to_none=True)
            logits = self.model(chunk)
            F.cross_entropy(logits, logits.argmax(1)).backward()
            for f, p in zip(fisher, self.params):
                if p.grad is not None:
                    f += p.grad.detach() ** 2 / len(chunks)
        self.model.zero_grad(set_to_none=True)
        return fisher

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        ent = entropy(logits)
        e_margin = self.e_margin_frac * math.log(logits.shape[1])
        keep = ent < e_margin
        probs = logits.softmax(1)
        if self.avg_probs is not None and keep.any():
            cos = F.cosine_similarity(self.avg_probs.unsqueeze(0), probs, dim=1)
            keep = keep & (cos.abs() < self.d_margin)
        n = int(keep.sum())
        if n:
            kept = probs[keep].detach().mean(0)
            self.avg_probs = kept if self.avg_probs is None else 0.9 * self.avg_probs + 0.1 * kept
        self.n_used += n
        e = ent[keep]
        loss = (e * torch.exp(-(e.detach() - e_margin))).sum() / max(1, n)
        if self.fisher is not None:
            loss = loss + self.fisher_alpha * sum(
                (f * (p - a) ** 2).sum() for f, p, a in zip(self.fisher, self.params, self.anchor))
        return loss

    def hparams(self) -> dict:
        return {"lr": self.lr, "steps": self.steps, "e_margin_frac": self.e_margin_frac,
                "d_margin": self.d_margin, "fisher_alpha": self.fisher_alpha}
