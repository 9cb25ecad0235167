"""SHD-Adding (Spieler et al., ICLR 2024): two spoken digits in a row, the label is their sum.

A sample is two samples of an SHD-format data set concatenated in time (``2 T`` steps); its
label is ``(y1 mod 10) + (y2 mod 10)``, 19 classes whatever the language (SHD classes 0-9 are
English digits, 10-19 German).  The base data set is ``spoken_digits`` (the shipped set, or a
folder given by ``root``) or ``shd`` (the real SHD, ``root`` required).

Training pairs are drawn afresh for every batch from the trainer's generator (as the paper
generates its training batches on the fly), so an epoch of ``n_train`` samples sees new pairs
every time; test pairs are fixed (``pair_seed``).  ``labels("train")`` describes the fixed
pairs used when ``batch`` is called without a generator.
"""
from __future__ import annotations

import numpy as np

from neuroadapt.errors import ConfigError

__all__ = ["SHDAdding", "pair_labels"]


def pair_labels(y1, y2):
    """``(y1 mod 10) + (y2 mod 10)``."""
    return (y1 % 10) + (y2 % 10)


class SHDAdding:
    """Pairs of SHD-format samples, label = sum of the two digits (module docstring)."""

    name = "shd_adding"
    task = "classification"
    OPTIONS = {
        "base": (str, "spoken_digits", "data set the digits come from: spoken_digits or shd"),
        "dt": (float, 0.02, "bin width in seconds"),
        "duration": (float, 1.0, "window of each of the two samples in seconds (the pair lasts twice as long)"),
        "val_speakers": (int, 0, "hold out the last N training speakers as the 'test' split"),
        "n_train": ((int, type(None)), None, "training pairs per epoch (null: as many as training samples)"),
        "n_test": ((int, type(None)), None, "test pairs (null: as many as test samples)"),
        "pair_seed": (int, 0, "seed of the fixed test pairs"),
        "max_train": ((int, type(None)), None, "use only the first N training samples of the base set"),
        "max_test": ((int, type(None)), None, "use only the first N test samples of the base set"),
    }

    def __init__(self, root=None, base: str = "spoken_digits", dt: float = 0.02, duration: float = 1.0,
                 val_speakers: int = 0, n_train=None, n_test=None, pair_seed: int = 0, max_train=None, max_test=None):
        import torch

        from neuroadapt.data import get_dataset_class

        if base not in ("spoken_digits", "shd"):
            raise ConfigError(f"dataset.base: {base!r} is not supported; choose spoken_digits or shd")
        self.base = get_dataset_class(base)(root=root, dt=dt, duration=duration, val_speakers=val_speakers,
                                            max_train=max_train, max_test=max_test)
        if self.base.n_classes > 20:
            raise ConfigError(f"dataset.base {base!r} has {self.base.n_classes} classes; SHD-Adding needs digit "
                              f"labels 0-19 (SHD layout)")
        self.dt, self.n_inputs, self.n_classes = float(dt), self.base.n_inputs, 19
        self.n_steps = 2 * self.base.n_steps
        self.classes = [str(k) for k in range(19)]
        sizes = {"train": n_train, "test": n_test}
        self._pairs, self._y = {}, {}
        for k, split in enumerate(("train", "test")):
            n_base = self.base.num_samples(split)
            n = n_base if sizes[split] is None else int(sizes[split])
            if n < 1:
                raise ConfigError(f"dataset.n_{split} must be >= 1, got {n}")
            rng = np.random.default_rng([int(pair_seed), k])
            pairs = rng.integers(0, n_base, size=(n, 2))
            self._pairs[split] = pairs
            y = self.base.labels(split).numpy()
            self._y[split] = torch.from_numpy(pair_labels(y[pairs[:, 0]], y[pairs[:, 1]]).astype(np.int64))

    def num_samples(self, split: str) -> int:
        return len(self._split(split))

    def _split(self, split: str):
        if split not in self._pairs:
            raise ConfigError(f"unknown split {split!r}; use 'train' or 'test'")
        return self._pairs[split]

    def labels(self, split: str):
        self._split(split)
        return self._y[split]

    def batch(self, split: str, index, generator=None):
        """``x`` ``(2 T, B, n_inputs)`` float32 and labels ``(B,)``; training batches with a
        ``generator`` get freshly drawn pairs."""
        import torch

        idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        pairs = self._split(split)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(pairs)):
            raise IndexError(f"sample index out of range for the {split} split ({len(pairs)} pairs)")
        if split == "train" and generator is not None:
            p = torch.randint(0, self.base.num_samples("train"), (len(idx), 2), generator=generator)
        else:
            p = torch.from_numpy(pairs[idx.numpy()])
        x1, y1 = self.base.batch(split, p[:, 0], generator)
        x2, y2 = self.base.batch(split, p[:, 1], generator)
        return torch.cat([x1, x2], 0), pair_labels(y1, y2)

    def __repr__(self) -> str:
        return (f"SHDAdding(base={self.base!r}, T={self.n_steps}, train={self.num_samples('train')}, "
                f"test={self.num_samples('test')})")
