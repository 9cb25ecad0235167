"""Memory tasks for the astrocyte-modulated units: delayed recall and character-level prediction.

``delayed_recall`` (``DelayedRecall``): a cue, one of ``n_classes`` random binary spike patterns on
``n_inputs`` channels, is shown for ``cue_steps`` steps; then ``delay_steps`` steps of background
noise only (each channel spikes with probability ``noise``), then ``go_steps`` steps in which
``go_channels`` extra channels fire.  The label is the cue.  Nothing but the network's own state
carries the cue across the delay.  Patterns are fixed by ``pattern_seed``; every sample draws its
own noise (training batches from the trainer's generator; the test set from ``split_seed``).

``char_lm`` (``CharLM``): next-character prediction on text read at run time from the Python
installation's standard-library sources (``<stdlib>/*.py``, sorted by name; no download).  A
sample is ``context`` characters, one spike per step on the channel of its character (vocabulary:
``\\n`` and the 95 printable ASCII characters; anything else becomes ``?``), labelled with the
character that follows.  The first ``train_fraction`` of the text is the training split, the rest
the test split (different files).  The engine's test loss (nats) over ln 2 is bits per character.
"""
from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np

from neuroadapt.errors import ConfigError, DataError

__all__ = ["DelayedRecall", "CharLM", "stdlib_text", "VOCAB"]

VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
_UNKNOWN = VOCAB.index("?")


def _check_split(split: str):
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r}; use 'train' or 'test'")


class DelayedRecall:
    name, task = "delayed_recall", "classification"
    OPTIONS = {
        "n_inputs": (int, 40, "cue channels"),
        "n_classes": (int, 8, "number of cue patterns (classes)"),
        "cue_steps": (int, 5, "steps the cue is shown"),
        "delay_steps": (int, 50, "steps of noise between cue and go signal"),
        "go_steps": (int, 5, "steps of the go signal"),
        "go_channels": (int, 4, "channels carrying the go signal"),
        "density": (float, 0.3, "fraction of cue channels active in a pattern"),
        "cue_rate": (float, 0.8, "spike probability per step of an active cue channel"),
        "noise": (float, 0.02, "background spike probability per channel and step"),
        "n_train": (int, 2048, "training samples per epoch"),
        "n_test": (int, 512, "test samples"),
        "pattern_seed": (int, 0, "seed of the cue patterns"),
        "split_seed": (int, 1, "seed of the fixed test noise"),
        "dt": (float, 0.01, "seconds per step (for models that need one)"),
    }

    def __init__(self, root=None, **opts):
        import torch

        o = {k: v[1] for k, v in self.OPTIONS.items()}
        o.update(opts)
        for k in ("n_inputs", "n_classes", "cue_steps", "go_steps", "n_train", "n_test"):
            if o[k] < 1:
                raise ConfigError(f"dataset.{k} must be >= 1, got {o[k]}")
        if o["delay_steps"] < 0 or o["go_channels"] < 1:
            raise ConfigError("dataset.delay_steps must be >= 0 and dataset.go_channels >= 1")
        for k in ("density", "cue_rate", "noise"):
            if not 0 <= o[k] <= 1:
                raise ConfigError(f"dataset.{k} must lie in [0, 1], got {o[k]}")
        self.o = o
        self.dt = float(o["dt"])
        self.n_inputs = o["n_inputs"] + o["go_channels"]
        self.n_classes = o["n_classes"]
        self.n_steps = o["cue_steps"] + o["delay_steps"] + o["go_steps"]
        g = torch.Generator().manual_seed(o["pattern_seed"])
        self.patterns = (torch.rand(o["n_classes"], o["n_inputs"], generator=g) < o["density"]).float()
        self._test_y = torch.randint(0, o["n_classes"], (o["n_test"],),
                                     generator=torch.Generator().manual_seed(o["split_seed"]))
        self._train_y = torch.arange(o["n_train"]) % o["n_classes"]

    def num_samples(self, split):
        _check_split(split)
        return self.o["n_train"] if split == "train" else self.o["n_test"]

    def labels(self, split):
        _check_split(split)
        return self._train_y if split == "train" else self._test_y

    def _make(self, y, generator):
        import torch

        o, B = self.o, len(y)
        x = (torch.rand(self.n_steps, B, self.n_inputs, generator=generator) < o["noise"]).float()
        cue = (torch.rand(o["cue_steps"], B, o["n_inputs"], generator=generator) < self.patterns[y] * o["cue_rate"])
        x[: o["cue_steps"], :, : o["n_inputs"]] = torch.maximum(x[: o["cue_steps"], :, : o["n_inputs"]], cue.float())
        x[-o["go_steps"]:, :, o["n_inputs"]:] = 1.0
        return x

    def batch(self, split, index, generator=None):
        """``x`` (T, B, n_inputs) and labels; training batches with a generator are drawn afresh,
        test samples are fixed (made once from ``split_seed``)."""
        import torch

        idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        _check_split(split)
        if split == "train" and generator is not None:
            y = torch.randint(0, self.o["n_classes"], (len(idx),), generator=generator)
            return self._make(y, generator), y
        if split == "test":
            if not hasattr(self, "_test_x"):
                self._test_x = self._make(self._test_y, torch.Generator().manual_seed(self.o["split_seed"]))
            return self._test_x[:, idx], self._test_y[idx]
        y = self._train_y[idx]
        return self._make(y, torch.Generator().manual_seed(self.o["split_seed"] + 1)), y

    def __repr__(self):
        return f"DelayedRecall(T={self.n_steps}, delay={self.o['delay_steps']}, classes={self.n_classes})"


def stdlib_text(max_chars: int, files=None) -> str:
    """Text of the standard library's top-level ``*.py`` files, sorted by name, up to ``max_chars``."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(folder.glob("*.py")) if files is None else [folder / f for f in files]
    if not paths:
        raise DataError(f"no Python sources found in {folder}: the char_lm task reads its text from there")
    parts, total = [], 0
    for p in paths:
        try:
            t = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        parts.append(t)
        total += len(t)
        if total >= max_chars:
            break
    text = "".join(parts)[:max_chars]
    if len(text) < 1000:
        raise DataError(f"only {len(text)} characters of text found in {folder}")
    return text


class CharLM:
    name, task = "char_lm", "classification"
    OPTIONS = {
        "context": (int, 32, "characters per sample (time steps)"),
        "max_chars": (int, 400_000, "characters of stdlib source read"),
        "train_fraction": (float, 0.9, "leading fraction of the text used for training"),
        "n_train": (int, 8192, "training windows per epoch (drawn afresh every batch)"),
        "n_test": (int, 4096, "test windows (fixed, evenly spaced over the test text)"),
        "dt": (float, 0.01, "seconds per step (for models that need one)"),
    }

    def __init__(self, root=None, **opts):
        import torch

        o = {k: v[1] for k, v in self.OPTIONS.items()}
        o.update(opts)
        if o["context"] < 1 or o["n_train"] < 1 or o["n_test"] < 1:
            raise ConfigError("dataset.context, n_train and n_test must be >= 1")
        if not 0 < o["train_fraction"] < 1:
            raise ConfigError(f"dataset.train_fraction must lie in (0, 1), got {o['train_fraction']}")
        self.o, self.dt = o, float(o["dt"])
        text = stdlib_text(int(o["max_chars"]))
        lut = np.full(256, _UNKNOWN, dtype=np.int64)
        for i, ch in enumerate(VOCAB):
            lut[ord(ch)] = i
        codes = np.frombuffer(text.encode("latin-1", errors="replace"), dtype=np.uint8)
        self.codes = torch.from_numpy(lut[codes])
        cut = int(len(self.codes) * o["train_fraction"])
        self._range = {"train": (0, cut), "test": (cut, len(self.codes))}
        self.n_inputs = self.n_classes = len(VOCAB)
        self.n_steps = o["context"]
        lo, hi = self._range["test"]
        n_pos = hi - lo - o["context"]
        if n_pos < 1:
            raise DataError("the test text is shorter than one context window; raise dataset.max_chars")
        self._test_starts = lo + torch.linspace(0, n_pos - 1, o["n_test"]).long()
        self._train_starts = torch.linspace(0, cut - o["context"] - 1, o["n_train"]).long()
        self.source = f"{len(text)} characters of {Path(sysconfig.get_paths()['stdlib'])}/*.py"

    def num_samples(self, split):
        _check_split(split)
        return self.o["n_train"] if split == "train" else self.o["n_test"]

    def _starts(self, split, idx, generator):
        import torch

        if split == "train" and generator is not None:
            lo, hi = self._range["train"]
            return torch.randint(lo, hi - self.n_steps - 1, (len(idx),), generator=generator)
        return (self._train_starts if split == "train" else self._test_starts)[idx]

    def labels(self, split):
        _check_split(split)
        starts = self._train_starts if split == "train" else self._test_starts
        return self.codes[starts + self.n_steps]

    def batch(self, split, index, generator=None):
        import torch

        _check_split(split)
        idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        starts = self._starts(split, idx, generator)
        pos = starts[None, :] + torch.arange(self.n_steps)[:, None]          # (T, B)
        x = torch.nn.functional.one_hot(self.codes[pos], self.n_inputs).float()
        return x, self.codes[starts + self.n_steps]

    def __repr__(self):
        return f"CharLM(context={self.n_steps}, vocab={self.n_inputs}, {self.source})"

