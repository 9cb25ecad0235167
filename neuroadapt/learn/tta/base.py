"""The common interface of every test-time adaptation (TTA) method.

A method wraps a trained model. ``method(x)`` adapts on the unlabelled test batch ``x`` and
then predicts it with the adapted model (logits ``(B, n_classes)``); ``method.reset()`` puts the
model (and the method's optimiser) back to the source state. The two settings of the runner:

* **continual**: one method object sees the whole stream of domains, never reset;
* **reset** (reset-each-shift): ``reset()`` at the start of every domain.

Methods that normalise with test-batch statistics refuse a batch of one sample (the statistics
of one sample are undefined for fully connected layers and meaningless for convolutions);
:class:`Source` accepts any batch size.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError

__all__ = ["TTAMethod", "entropy", "norm_layers", "first_conv", "set_norm_batch_stats"]

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-sample Shannon entropy (nats) of ``softmax(logits)``: ``-sum_c p_c log p_c``."""
    logp = logits.log_softmax(dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def norm_layers(model: nn.Module, affine_only: bool = False) -> list[tuple[str, nn.Module]]:
    out = []
    for name, m in model.named_modules():
        if isinstance(m, NORMS):
            if affine_only and getattr(m, "weight", None) is None:
                continue
            out.append((name, m))
    return out


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise UnsupportedOptionError(
        f"{type(model).__name__} has no nn.Conv2d layer; NHL's Hebbian step updates the first convolution "
        f"(use a convolutional model, or another method)")


def set_norm_batch_stats(model: nn.Module) -> None:
    """Eval mode everywhere, except batch-norm layers, which normalise with the test batch's statistics."""
    model.eval()
    for _, m in norm_layers(model):
        if isinstance(m, BATCH_NORMS):
            m.train()


class TTAMethod:
    """Base class: source-state bookkeeping, input checks, adapt-then-predict."""

    name = "source"
    #: normalises with test-batch statistics (refuses batches of one sample)
    batch_stats = False

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise InvalidInputError(f"{type(self).__name__} needs a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self._source = copy.deepcopy(model.state_dict())
        self.n_batches = 0
        self.setup()

    # -- to override --------------------------------------------------------------------------
    def setup(self) -> None:
        """Put the model in the mode the method needs and build its optimiser (after every reset)."""
        self.model.eval()

    def adapt(self, x: torch.Tensor) -> None:
        """Update the model on the unlabelled batch ``x`` (nothing for Source)."""

    # -- shared -------------------------------------------------------------------------------
    def check_batch(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"{self.name}: a test batch must be a tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ShapeError(f"{self.name}: a test batch must be (B, ...) with a batch dimension, got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ShapeError(f"{self.name}: empty test batch")
        if self.batch_stats and x.shape[0] < 2:
            raise InvalidInputError(
                f"{self.name} normalises with test-batch statistics and needs at least 2 samples per batch, "
                f"got 1; use a batch size >= 2 (the runner merges a last batch of one into the previous "
                f"batch) or the 'source' method")
        if not torch.isfinite(x).all():
            raise InvalidInputError(f"{self.name}: the test batch contains NaN/inf values")
        return x

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_batch(x)
        self.adapt(x)
        self.n_batches += 1
        return self.predict(x)

    forward = __call__

    def reset(self) -> None:
        """Back to the source model (weights, normalisation buffers) and a fresh optimiser."""
        self.model.load_state_dict(self._source)
        self.n_batches = 0
        self.setup()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hparams()})"

    def hparams(self) -> dict:
        return {}


class Source(TTAMethod):
    """No adaptation: the source model in eval mode (running normalisation statistics)."""

    name = "source"


class BN(TTAMethod):
    """Test-batch normalisation statistics (Schneider et al. 2020 / Nado et al. 2020), no parameter update."""

    name = "bn"
    batch_stats = True

    def setup(self) -> None:
        if not [m for _, m in norm_layers(self.model) if isinstance(m, BATCH_NORMS)]:
            raise UnsupportedOptionError(
                f"BN adaptation needs BatchNorm layers (their statistics are replaced by the test batch's); "
                f"{type(self.model).__name__} has none")
        set_norm_batch_stats(self.model)
