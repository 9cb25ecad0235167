"""NHL: neuro-modulated Hebbian learning for fully test-time adaptation (Tang et al., CVPR 2023).

Per test batch ``x`` (docs/nhl.md gives the equations and which choices are assumed):

1. **Hebbian step** on the first convolution ``W1`` (no backpropagation): the SoftHebb rule
   (:mod:`neuroadapt.learn.tta.hebbian`) on all input patches of the batch, soft WTA over the
   output channels (competitive lateral inhibition), ``W1 <- W1 + hebb_lr * dW1``; then
   (``keep_norm``) every filter is rescaled to its source norm and (``anchor``) pulled back
   towards the source filters ``W1 <- W1 + anchor * (W1_src - W1)``.
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

import torch
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
                 standardise: bool = False, center_patches: bool = False):
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
        self.lr, self.hebb_lr, self.tau, self.anti_hebbian = float(lr), float(hebb_lr), float(tau), bool(anti_hebbian)
        self.keep_norm, self.anchor, self.modulator, self.hebbian = bool(keep_norm), float(anchor), modulator, bool(hebbian)
        self.steps, self.standardise, self.center_patches = int(steps), bool(standardise), bool(center_patches)
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

    @torch.no_grad()
    def hebbian_step(self, x: torch.Tensor) -> None:
        w = self.conv.weight
        dw = softhebb_conv_delta(self.conv_input(x), self.conv, self.tau, self.anti_hebbian,
                                 self.standardise, self.center_patches)
        w += self.hebb_lr * dw
        if self.keep_norm:
            w *= self.norm_src / w.flatten(1).norm(dim=1).clamp_min(1e-12).view_as(self.norm_src)
        if self.anchor > 0:
            w += self.anchor * (self.w_src - w)

    def adapt(self, x: torch.Tensor) -> None:
        if self.hebbian and self.hebb_lr > 0:
            self.hebbian_step(x)
        if self.opt is not None:
            for _ in range(self.steps):
                self.opt.zero_grad(set_to_none=True)
                entropy(self.model(x)).mean().backward()
                self.opt.step()

    def hparams(self) -> dict:
        return {"lr": self.lr, "hebb_lr": self.hebb_lr, "tau": self.tau, "anti_hebbian": self.anti_hebbian,
                "keep_norm": self.keep_norm, "anchor": self.anchor, "modulator": self.modulator,
                "hebbian": self.hebbian, "standardise": self.standardise,
                "center_patches": self.center_patches}
