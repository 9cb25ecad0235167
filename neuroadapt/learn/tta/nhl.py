"""NHL: neuro-modulated Hebbian learning for fully test-time adaptation (Tang et al., CVPR 2023).

Per test batch ``x`` (docs/nhl.md gives the equations and which choices are assumed):

1. **Hebbian step** on the first convolution ``W1`` (no backpropagation): the SoftHebb rule
   (:mod:`neuroadapt.learn.tta.hebbian`) on all input patches of the batch, soft WTA over the
   output channels (competitive lateral inhibition), ``W1 <- W1 + hebb_lr * dW1``; then
   (``keep_norm``) every filter is rescaled to its source norm and (``anchor``) pulled back
   towards the source filters ``W1 <- W1 + anchor * (W1_src - W1)``. Options against the
   accumulation of Hebbian changes over a continual stream (all off by default):
   ``hebb_decay`` k > 0: the rate decays as ``hebb_lr / (1 + t/k)``, ``t`` the Hebbian steps
   since the last reset; ``max_drift`` r > 0: every filter is projected back into the ball
   ``||w_k - w_k^src|| <= r ||w_k^src||``; ``shift_reset`` z > 0: a label-free shift detector
   (the jump of the first layer's per-channel response statistics, computed with the source
   filters, between consecutive batches) puts ``W1`` back to the source filters and ``t`` to 0
   when the jump exceeds z.
2. **Neuro-modulator step**: one Adam step on the mean prediction entropy w.r.t. the
   modulator's parameters only (the error is back-propagated from the frozen upper layers and
   classifier). The modulator is, by default, the normalisation layer right after the first
   convolution (a per-channel gain and bias of the first layer's responses), or the model's
   ``modulator`` attribute if it has one; ``modulator="all_norms"`` modulates every
   normalisation layer.
3. **Prediction** of ``x`` with the updated model. Batch-norm layers use the test batch's
   statistics, as in BN / Tent.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neuroadapt.errors import InvalidInputError, UnsupportedOptionError
from neuroadapt.learn.tta.base import TTAMethod, entropy, first_conv, norm_layers, set_norm_batch_stats
from neuroadapt.learn.tta.hebbian import softhebb_conv_delta

__all__ = ["NHL", "MODULATORS"]

MODULATORS = ("first_norm", "all_norms")


class _Captured(Exception):
    pass


class NHL(TTAMethod):
    name = "nhl"
    batch_stats = True

    def __init__(self, model: nn.Module, lr: float = 1e-3, hebb_lr: float = 0.01, tau: float = 1.0,
                 anti_hebbian: bool = False, keep_norm: bool = True, anchor: float = 0.0,
                 modulator: str = "first_norm", hebbian: bool = True, steps: int = 1,
                 standardise: bool = False, center_patches: bool = False, hebb_decay: float = 0.0,
                 max_drift: float = 0.0, shift_reset: float = 0.0, feedback_margin: float = 0.0,
                 feedback_weight: bool = False):
        if not lr >= 0 or not hebb_lr >= 0:
            raise InvalidInputError(f"nhl: lr and hebb_lr must be >= 0, got {lr} and {hebb_lr}")
        if not 0.0 <= anchor <= 1.0:
            raise InvalidInputError(f"nhl: anchor must lie in [0, 1], got {anchor}")
        if not tau > 0:
            raise InvalidInputError(f"nhl: tau must be > 0, got {tau}")
        if modulator not in MODULATORS:
            raise UnsupportedOptionError(f"nhl: modulator {modulator!r} is not one of {MODULATORS}")
        if int(steps) < 1:
            raise InvalidInputError(f"nhl: steps must be >= 1, got {steps}")
        for key, val in (("hebb_decay", hebb_decay), ("max_drift", max_drift), ("shift_reset", shift_reset)):
            if not (isinstance(val, (int, float)) and 0 <= val < math.inf):
                raise InvalidInputError(f"nhl: {key} must be a finite number >= 0 (0 = off), got {val!r}")
        if not (isinstance(feedback_margin, (int, float)) and 0 <= feedback_margin <= 1):
            raise InvalidInputError(f"nhl: feedback_margin must lie in [0, 1] (a fraction of ln C; 0 = off), "
                                    f"got {feedback_margin!r}")
        if feedback_weight and not feedback_margin > 0:
            raise InvalidInputError("nhl: feedback_weight weights samples by exp(-(H - E0)) with E0 = "
                                    "feedback_margin * ln C; set feedback_margin > 0")
        self.lr, self.hebb_lr, self.tau, self.anti_hebbian = float(lr), float(hebb_lr), float(tau), bool(anti_hebbian)
        self.keep_norm, self.anchor, self.modulator, self.hebbian = bool(keep_norm), float(anchor), modulator, bool(hebbian)
        self.steps, self.standardise, self.center_patches = int(steps), bool(standardise), bool(center_patches)
        self.hebb_decay, self.max_drift, self.shift_reset = float(hebb_decay), float(max_drift), float(shift_reset)
        self.feedback_margin, self.feedback_weight = float(feedback_margin), bool(feedback_weight)
        self.n_shifts = 0  # shifts detected since construction (diagnostics; not reset)
        self.conv_name, self.conv = first_conv(model)
        self.mod_params = self._modulator_params(model)
        super().__init__(model)
        self.w_src = self.conv.weight.detach().clone()
        self.norm_src = self.w_src.flatten(1).norm(dim=1).view(-1, *[1] * (self.w_src.dim() - 1))

    def _modulator_params(self, model) -> list[nn.Parameter]:
        own = getattr(model, "modulator", None)
        if self.modulator == "first_norm" and isinstance(own, nn.Module):
            params = list(own.parameters())
        elif self.modulator == "first_norm":
            names = [n for n, _ in model.named_modules()]
            after = names.index(self.conv_name)
            norms = [(n, m) for n, m in norm_layers(model, affine_only=True) if names.index(n) > after]
            params = [p for p in (norms[0][1].weight, norms[0][1].bias) if p is not None] if norms else []
        else:
            params = [p for _, m in norm_layers(model, affine_only=True) for p in (m.weight, m.bias) if p is not None]
        if not params:
            raise UnsupportedOptionError(
                f"nhl needs a neuro-modulator: a normalisation layer with affine parameters after the first "
                f"convolution ({self.conv_name!r}), or a `modulator` module attribute; "
                f"{type(model).__name__} has neither")
        return params

    def setup(self) -> None:
        self.model.requires_grad_(False)
        for p in self.mod_params:
            p.requires_grad_(True)
        set_norm_batch_stats(self.model)
        self.opt = torch.optim.Adam(self.mod_params, lr=self.lr, betas=(0.9, 0.999)) if self.lr > 0 else None
        self.hebb_t = 0          # Hebbian steps since the last reset (source filters)
        self.prev_stats = None   # the previous batch's first-layer response statistics (shift detector)

    def conv_input(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor the first convolution receives for ``x`` (the forward stops there)."""
        got = {}

        def hook(_mod, args):
            got["x"] = args[0]
            raise _Captured

        handle = self.conv.register_forward_pre_hook(hook)
        try:
            with torch.no_grad():
                self.model(x)
        except _Captured:
            pass
        finally:
            handle.remove()
        if "x" not in got:
            raise UnsupportedOptionError(f"nhl: the model's forward never called its first convolution {self.conv_name!r}")
        return got["x"]

    def hebb_rate(self) -> float:
        """The Hebbian rate of the next step: ``hebb_lr``, or ``hebb_lr / (1 + t/hebb_decay)``."""
        if self.hebb_decay > 0:
            return self.hebb_lr / (1.0 + self.hebb_t / self.hebb_decay)
        return self.hebb_lr

    @torch.no_grad()
    def response_stats(self, xin: torch.Tensor) -> torch.Tensor:
        """Per-channel mean and std (over batch and space) of the first layer's responses to its
        input ``xin`` with the **source** filters (so the statistic does not move with W1)."""
        c = self.conv
        r = F.conv2d(xin, self.w_src, None, c.stride, c.padding, c.dilation, c.groups)
        dims = [0] + list(range(2, r.dim()))
        return torch.stack([r.mean(dims), r.std(dims, unbiased=False).clamp_min(1e-8)])

    @staticmethod
    def shift_score(prev: torch.Tensor, cur: torch.Tensor) -> float:
        """Jump between two batches' statistics: mean over channels of
        ``|mu - mu_prev| / sd_prev + |log sd - log sd_prev|`` (dimensionless)."""
        return float(((cur[0] - prev[0]).abs() / prev[1] + (cur[1].log() - prev[1].log()).abs()).mean())

    @torch.no_grad()
    def detect_shift(self, xin: torch.Tensor) -> bool:
        """True (and W1 back to the source filters, Hebbian clock to 0) when the batch ``xin``
        jumps away from the previous batch by more than ``shift_reset``."""
        stats = self.response_stats(xin)
        prev, self.prev_stats = self.prev_stats, stats
        if prev is None or self.shift_score(prev, stats) <= self.shift_reset:
            return False
        self.conv.weight.copy_(self.w_src)
        self.hebb_t = 0
        self.n_shifts += 1
        return True

    @torch.no_grad()
    def hebbian_step(self, x: torch.Tensor, xin: torch.Tensor | None = None) -> None:
        w = self.conv.weight
        xin = self.conv_input(x) if xin is None else xin
        dw = softhebb_conv_delta(xin, self.conv, self.tau, self.anti_hebbian, self.standardise, self.center_patches)
        w += self.hebb_rate() * dw
        self.hebb_t += 1
        if self.keep_norm:
            self._rescale(w)
        if self.max_drift > 0:
            d = w - self.w_src
            ratio = d.flatten(1).norm(dim=1) / self.norm_src.flatten().clamp_min(1e-12)
            scale = (self.max_drift / ratio.clamp_min(1e-12)).clamp(max=1.0).view_as(self.norm_src)
            w.copy_(self.w_src + d * scale)
            if self.keep_norm:
                self._rescale(w)
        if self.anchor > 0:
            w += self.anchor * (self.w_src - w)

    def _rescale(self, w: torch.Tensor) -> None:
        w *= self.norm_src / w.flatten(1).norm(dim=1).clamp_min(1e-12).view_as(self.norm_src)

    def feedback_loss(self, logits: torch.Tensor) -> torch.Tensor | None:
        """Mean entropy of the samples that give feedback (all, or those with ``H < E0``); None if none."""
        ent = entropy(logits)
        if self.feedback_margin <= 0:
            return ent.mean()
        e0 = self.feedback_margin * math.log(logits.shape[1])
        e = ent[ent < e0]
        if e.numel() == 0:
            return None
        if self.feedback_weight:
            e = e * torch.exp(-(e.detach() - e0))
        return e.sum() / e.numel()

    def adapt(self, x: torch.Tensor) -> None:
        hebb = self.hebbian and self.hebb_lr > 0
        if hebb or self.shift_reset > 0:
            xin = self.conv_input(x)
            if self.shift_reset > 0:
                self.detect_shift(xin)
            if hebb:
                self.hebbian_step(x, xin)
        if self.opt is not None:
            for _ in range(self.steps):
                self.opt.zero_grad(set_to_none=True)
                loss = self.feedback_loss(self.model(x))
                if loss is None:
                    break
                loss.backward()
                self.opt.step()

    def hparams(self) -> dict:
        return {"lr": self.lr, "hebb_lr": self.hebb_lr, "tau": self.tau, "anti_hebbian": self.anti_hebbian,
                "keep_norm": self.keep_norm, "anchor": self.anchor, "modulator": self.modulator,
                "hebbian": self.hebbian, "standardise": self.standardise,
                "center_patches": self.center_patches, "hebb_decay": self.hebb_decay,
                "max_drift": self.max_drift, "shift_reset": self.shift_reset,
                "feedback_margin": self.feedback_margin, "feedback_weight": self.feedback_weight}
