"""scikit-learn's bundled handwritten digits as a spiking data set (no download).

The images are the 1797 8x8 digits that ship with scikit-learn (``sklearn.datasets.load_digits``,
16 grey levels). Each pixel's intensity ``p`` in [0, 1] becomes one input channel's spike train
of ``n_steps`` time steps:

* ``encoding="rate"`` (Bernoulli rate code): at every step the channel spikes with probability
  ``min(1, gain * p)``, drawn from a ``torch.Generator`` the caller passes in, so every draw can
  be replayed;
* ``encoding="latency"`` (deterministic time-to-first-spike code): a pixel with ``p > threshold``
  spikes once, at step ``round((1 - p) * (n_steps - 1))`` -- the brighter, the earlier; darker
  pixels stay silent.

Output is time-major ``(T, B, resolution**2)``, float32 zeros and ones. The train/test split is
stratified per class and fixed by ``split_seed``. ``resolution`` other than 8 resamples the
images bilinearly (e.g. 16 -> 256 inputs).

``root`` (the CLI's ``--data-root``) replaces the bundled images by your own: a ``.npz`` file
(or a folder holding ``digits.npz``) with ``images`` (N, H, W) or (N, H*W) in [0, 1] and integer
``labels`` (N,) in 0..9 -- the same format, other pictures.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from neuroadapt.errors import ConfigError, DataError, InvalidInputError, ShapeError

__all__ = [
    "DigitsSpikes",
    "load_digit_images",
    "stratified_split",
    "resample",
    "rate_encode",
    "latency_encode",
]

_SIDE = 8


def load_digit_images(root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) float32 in [0, 1] and labels (N,) int64.

    ``root=None`` loads scikit-learn's bundled digits (8x8, 1797 samples). Otherwise ``root`` is a
    ``.npz`` file, or a folder holding ``digits.npz``, with arrays ``images`` and ``labels``.
    """
    if root is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = bunch.images.astype(np.float32) / 16.0
        return images, bunch.target.astype(np.int64)
    path = os.fspath(root)
    if os.path.isdir(path):
        path = os.path.join(path, "digits.npz")
    if not os.path.isfile(path):
        raise DataError(
            f"digits data file not found: {path} (expected a .npz with 'images' and 'labels', "
            f"or leave --data-root unset to use scikit-learn's bundled digits)"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("images", "labels") if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}; found {sorted(f.files)}")
            images, labels = np.asarray(f["images"]), np.asarray(f["labels"])
    except DataError:
        raise
    except Exception as exc:  # zipfile / pickle / format errors of a broken file
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ShapeError(f"{path}: 'images' of shape {images.shape} is not (N, H*W) of square images")
        images = images.reshape(len(images), side, side)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ShapeError(f"{path}: 'images' must be (N, H, W) square images, got shape {images.shape}")
    if labels.shape != (len(images),):
        raise ShapeError(f"{path}: 'labels' must have shape ({len(images)},), got {labels.shape}")
    if not np.issubdtype(images.dtype, np.number) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: 'images' must be numeric and 'labels' integer, "
                        f"got {images.dtype} and {labels.dtype}")
    images = images.astype(np.float32)
    bad = ~np.isfinite(images)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise InvalidInputError(
            f"{path}: 'images' contains {int(bad.sum())} NaN/inf value(s) (first in sample {first}); "
            f"clean the data before training"
        )
    if images.min() < 0.0 or images.max() > 1.0:
        raise InvalidInputError(
            f"{path}: pixel intensities must lie in [0, 1], found range "
            f"[{images.min():g}, {images.max():g}]; divide by the maximum grey level"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise InvalidInputError(f"{path}: labels must lie in 0..9, found range [{labels.min()}, {labels.max()}]")
    return images, labels.astype(np.int64)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: per class, a seeded permutation puts
    ``round(n_class * test_fraction)`` samples in the test set. Returns sorted index arrays."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"dataset.test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def resample(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resampling of (N, H, W) images in [0, 1] to (N, resolution, resolution)."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = torch.nn.functional.interpolate(
        images[:, None], size=(resolution, resolution), mode="bilinear", align_corners=False
    )[:, 0]
    return out.clamp_(0.0, 1.0)


def _check_intensity(intensity: torch.Tensor) -> None:
    if intensity.ndim != 2:
        raise ShapeError(f"intensities must be (B, features), got shape {tuple(intensity.shape)}")
    if not torch.isfinite(intensity).all():
        raise InvalidInputError("intensities contain NaN/inf; spike encoding needs finite values in [0, 1]")


def rate_encode(intensity: torch.Tensor, n_steps: int, generator: torch.Generator | None = None,
                gain: float = 1.0) -> torch.Tensor:
    """Bernoulli rate code: (B, F) intensities in [0, 1] -> (T, B, F) spikes, P(spike) = min(1, gain * p).

    All randomness comes from ``generator`` (on the intensities' device); pass a seeded one to
    replay the exact same spikes.
    """
    _check_intensity(intensity)
    prob = (intensity * gain).clamp(0.0, 1.0)
    prob = prob.unsqueeze(0).expand(n_steps, *prob.shape).contiguous()
    return torch.bernoulli(prob, generator=generator)


def latency_encode(intensity: torch.Tensor, n_steps: int, threshold: float = 0.0) -> torch.Tensor:
    """Deterministic latency code: (B, F) -> (T, B, F); one spike at ``round((1 - p) * (T - 1))`` for
    ``p > threshold``, none otherwise."""
    _check_intensity(intensity)
    p = intensity.clamp(0.0, 1.0)
    t_spike = torch.round((1.0 - p) * (n_steps - 1)).long()
    steps = torch.arange(n_steps, device=intensity.device).view(n_steps, 1, 1)
    spikes = (steps == t_spike.unsqueeze(0)) & (p > threshold).unsqueeze(0)
    return spikes.to(intensity.dtype)


class DigitsSpikes:
    """The scikit-learn digits as spike trains (see the module docstring)."""

    name = "digits"
    task = "classification"
    n_classes = 10
    #: recipe options: key -> (accepted types, default, help)
    OPTIONS = {
        "n_steps": (int, 25, "time steps per sample"),
        "encoding": (str, "rate", "'rate' (Bernoulli) or 'latency' (time to first spike)"),
        "gain": (float, 1.0, "rate code: spike probability per step = min(1, gain * intensity)"),
        "threshold": (float, 0.0, "latency code: pixels at or below this intensity stay silent"),
        "test_fraction": (float, 0.2, "fraction of each class held out for the test set"),
        "split_seed": (int, 0, "seed of the stratified train/test split"),
        "resolution": (int, 8, "image side after bilinear resampling (8 = original)"),
        "max_train": ((int, type(None)), None, "use only the first N training samples (quick tests)"),
        "max_test": ((int, type(None)), None, "use only the first N test samples (quick tests)"),
    }
    ENCODINGS = ("rate", "latency")

    def __init__(self, root=None, n_steps: int = 25, encoding: str = "rate", gain: float = 1.0,
                 threshold: float = 0.0, test_fraction: float = 0.2, split_seed: int = 0,
                 resolution: int = 8, max_train: int | None = None, max_test: int | None = None):
        if encoding not in self.ENCODINGS:
            raise ConfigError(f"dataset.encoding: {encoding!r} is not one of {', '.join(self.ENCODINGS)}")
        for key, val in (("n_steps", n_steps), ("resolution", resolution)):
            if val < 1:
                raise ConfigError(f"dataset.{key} must be >= 1, got {val}")
        if gain <= 0:
            raise ConfigError(f"dataset.gain must be > 0, got {gain}")
        self.n_steps, self.encoding, self.gain, self.threshold = int(n_steps), encoding, float(gain), float(threshold)
        self.resolution = int(resolution)
        self.n_inputs = self.resolution**2
        images, labels = load_digit_images(root)
        train_idx, test_idx = stratified_split(labels, test_fraction, split_seed)
        if max_train is not None:
            train_idx = train_idx[: max(1, int(max_train))]
        if max_test is not None:
            test_idx = test_idx[: max(1, int(max_test))]
        flat = resample(torch.from_numpy(images), self.resolution).reshape(len(images), -1)
        labels_t = torch.from_numpy(labels)
        self._x = {"train": flat[train_idx].contiguous(), "test": flat[test_idx].contiguous()}
        self._y = {"train": labels_t[train_idx].contiguous(), "test": labels_t[test_idx].contiguous()}

    def _split(self, split: str) -> str:
        if split not in self._x:
            raise ConfigError(f"unknown split {split!r}; use 'train' or 'test'")
        return split

    def num_samples(self, split: str) -> int:
        return len(self._y[self._split(split)])

    def labels(self, split: str) -> torch.Tensor:
        return self._y[self._split(split)]

    def intensities(self, split: str) -> torch.Tensor:
        """(N, n_inputs) pixel intensities in [0, 1] before spike encoding."""
        return self._x[self._split(split)]

    def encode(self, intensity: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.encoding == "rate":
            return rate_encode(intensity, self.n_steps, generator, self.gain)
        return latency_encode(intensity, self.n_steps, self.threshold)

    def batch(self, split: str, index: torch.Tensor, generator: torch.Generator | None = None):
        """Spike trains (T, B, n_inputs) and labels (B,) of the samples ``index`` of ``split``."""
        split = self._split(split)
        index = torch.as_tensor(index, dtype=torch.long)
        return self.encode(self._x[split][index], generator), self._y[split][index]

    def __repr__(self) -> str:
        return (f"DigitsSpikes(encoding={self.encoding!r}, n_steps={self.n_steps}, resolution={self.resolution}, "
                f"train={self.num_samples('train')}, test={self.num_samples('test')})")
