"""Source models for test-time adaptation: a conventional CNN and a surrogate-gradient spiking CNN.

Both take images ``(B, C, H, W)`` and return logits ``(B, n_classes)``, and have the same layout,
so every TTA method runs on both::

    conv1 -> bn1 -> act -> maxpool2 -> conv2 -> bn2 -> act -> maxpool2 -> conv3 -> bn3 -> act
          -> global average -> classifier (Linear)

``act`` is ReLU in :class:`ConvNet`; in :class:`SpikingConvNet` it is a layer of
:class:`neuroadapt.nn.Leaky` LIF neurons run for ``n_steps`` time steps (fused scan,
surrogate gradient ``atan``). The spiking net uses direct (current) input coding: ``conv1 ->
bn1`` of the static image is the input current of the first LIF layer at every step; the
deeper convolutions and batch norms act on the spikes of every step (statistics over time and
batch, as in tdBN); the classifier reads the spike rate of the last layer averaged over time
and space. ``bn1`` (after the first convolution) is the neuro-modulator NHL tunes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neuroadapt.errors import ShapeError
from neuroadapt.nn import Leaky

__all__ = ["ConvNet", "SpikingConvNet", "build_model", "MODEL_TYPES"]


def _check(x: torch.Tensor, channels: int, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"{who} expects images (B, {channels}, H, W), got {shape}")


class ConvNet(nn.Module):
    """Three-block CNN with batch norm (widths ``w, 2w, 4w``)."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 16):
        super().__init__()
        w = int(width)
        self.in_channels = int(in_channels)
        self.conv1 = nn.Conv2d(in_channels, w, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.conv2 = nn.Conv2d(w, 2 * w, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * w)
        self.conv3 = nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * w)
        self.classifier = nn.Linear(4 * w, n_classes)

    @property
    def modulator(self) -> nn.Module:
        return self.bn1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, self.in_channels, type(self).__name__)
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)
        h = F.relu(self.bn3(self.conv3(h)))
        return self.classifier(h.mean((2, 3)))


class SpikingConvNet(nn.Module):
    """The same layout with LIF neurons (``beta``, ``threshold``) over ``n_steps`` time steps."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 16, n_steps: int = 4,
                 beta: float = 0.5, threshold: float = 1.0):
        super().__init__()
        w = int(width)
        if int(n_steps) < 1:
            raise ShapeError(f"SpikingConvNet: n_steps must be >= 1, got {n_steps}")
        self.in_channels, self.n_steps = int(in_channels), int(n_steps)
        self.conv1 = nn.Conv2d(in_channels, w, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.lif1 = Leaky(beta, threshold=threshold)
        self.conv2 = nn.Conv2d(w, 2 * w, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * w)
        self.lif2 = Leaky(beta, threshold=threshold)
        self.conv3 = nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * w)
        self.lif3 = Leaky(beta, threshold=threshold)
        self.classifier = nn.Linear(4 * w, n_classes)

    @property
    def modulator(self) -> nn.Module:
        return self.bn1

    def _lif(self, lif: Leaky, cur: torch.Tensor, B: int) -> torch.Tensor:
        """(T*B, C, H, W) currents -> (T*B, C, H, W) spikes."""
        shape = cur.shape
        spk, _ = lif.forward_sequence(cur.reshape(self.n_steps, B, -1))
        return spk.reshape(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, self.in_channels, type(self).__name__)
        B, T = x.shape[0], self.n_steps
        c1 = self.bn1(self.conv1(x))
        cur = c1.unsqueeze(0).expand(T, *c1.shape).reshape(T * B, *c1.shape[1:])
        h = F.max_pool2d(self._lif(self.lif1, cur, B), 2)
        h = F.max_pool2d(self._lif(self.lif2, self.bn2(self.conv2(h)), B), 2)
        h = self._lif(self.lif3, self.bn3(self.conv3(h)), B)
        rate = h.mean((2, 3)).view(T, B, -1).mean(0)
        return self.classifier(rate)


MODEL_TYPES = {"cnn": ConvNet, "snn": SpikingConvNet}


def build_model(spec: dict) -> nn.Module:
    """A model from a recipe's ``model`` section: ``{"type": "cnn" | "snn", ...constructor options}``."""
    from neuroadapt.errors import ConfigError

    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in MODEL_TYPES:
        raise ConfigError(f"model.type must be one of {sorted(MODEL_TYPES)}, got {kind!r}")
    try:
        return MODEL_TYPES[kind](**spec)
    except TypeError as exc:
        raise ConfigError(f"model ({kind}): bad option(s) {sorted(spec)}: {exc}") from None
