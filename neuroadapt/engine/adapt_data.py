"""Data of the test-time adaptation runner: a clean source set and a stream of corrupted domains.

* ``digits-c`` (embedded): scikit-learn's 1797 digits, resampled bilinearly to ``resolution``
  (32: the size the CIFAR-10-C parameters are meant for), quantised to 8 bits, split per class
  into source-train / validation / test. The test stream is the **test** images under each of
  the 15 CIFAR-10-C corruptions (``neuroadapt.data.corruptions``, CIFAR parameters) at
  ``severity``. ``split="val"`` builds the same stream from the **validation** images with
  another corruption seed: hyperparameters are chosen there, never on the test stream.
* ``cifar10-c``: CIFAR-10 (torchvision layout under ``source_root``) for the source model, the
  last ``val_size`` training images held out as validation (clean, for EATA's Fisher and for
  early checks), and the released CIFAR-10-C ``.npy`` files under ``root`` as the test stream.
  ``split="val"`` corrupts the validation images here (as digits-C does) for tuning.

Images are float32 ``(N, C, H, W)`` in [0, 1]; labels int64 ``(N,)``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuroadapt._io import atomic_path
from neuroadapt.errors import ConfigError

__all__ = ["AdaptData", "load_adapt_data", "DATASETS"]

DATASETS = ("digits-c", "cifar10-c")


@dataclass
class AdaptData:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    clean_x: torch.Tensor  # clean images of the stream's split (for the source model's clean error)
    clean_y: torch.Tensor
    domains: list = field(default_factory=list)  # [(corruption, x, y)]
    severity: int = 5
    split: str = "test"

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, :, :, None]
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return x / 255.0 if arr.dtype == np.uint8 else x


def _corrupt_all(images_u8: np.ndarray, names, severity: int, seed: int, cache: Path | None, tag: str):
    from neuroadapt.data.corruptions import CORRUPTION_NAMES, corrupt

    key = hashlib.sha1(json.dumps([tag, list(names), severity, seed, images_u8.shape]).encode()
                       + hashlib.sha1(images_u8.tobytes()).digest()).hexdigest()[:16]
    path = None if cache is None else Path(cache) / f"{tag}-{key}.npz"
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            return {n: f[n] for n in names}
    out = {}
    for name in names:
        j = CORRUPTION_NAMES.index(name)
        out[name] = corrupt(images_u8, name, severity, seed=np.random.SeedSequence(seed, spawn_key=(j, severity)))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **out)
    return out


def _digits_c(ds: dict, severity: int, names, split: str, cache) -> AdaptData:
    from neuroadapt.data.digits import load_digit_images, resample, stratified_split

    images, labels = load_digit_images(ds.get("root"))
    res = int(ds.get("resolution", 32))
    up = resample(torch.from_numpy(images), res).numpy()
    u8 = np.round(up * 255).astype(np.uint8)
    seed = int(ds.get("split_seed", 0))
    test_frac, val_frac = float(ds.get("test_fraction", 0.4)), float(ds.get("val_fraction", 0.15))
    if not (0 < test_frac < 1 and 0 < val_frac < 1 and test_frac + val_frac < 1):
        raise ConfigError(f"dataset: test_fraction {test_frac} and val_fraction {val_frac} must be in (0, 1) "
                          f"with a sum below 1")
    rest, test = stratified_split(labels, test_frac, seed)
    tr_rel, val_rel = stratified_split(labels[rest], val_frac / (1 - test_frac), seed + 1)
    train, val = rest[tr_rel], rest[val_rel]
    stream_idx = test if split == "test" else val
    cseed = int(ds.get("corruption_seed", 0)) + (0 if split == "test" else 1000)
    corrupted = _corrupt_all(u8[stream_idx], names, severity, cseed, cache, f"digits{res}-{split}")
    y = torch.from_numpy(labels)
    domains = [(n, _to_tensor(corrupted[n]), y[stream_idx]) for n in names]
    return AdaptData("digits-c", _to_tensor(u8[train]), y[train], _to_tensor(u8[val]), y[val],
                     _to_tensor(u8[stream_idx]), y[stream_idx], domains, severity, split)


def _cifar10_c(ds: dict, severity: int, names, split: str, cache) -> AdaptData:
    from neuroadapt.data.images import load_cifar10, load_cifar10c

    if not ds.get("source_root"):
        raise ConfigError("dataset.source_root: the folder holding cifar-10-batches-py/ (CIFAR-10 for the source model)")
    x, y = load_cifar10(ds["source_root"], train=True)
    val_size = int(ds.get("val_size", 5000))
    if not 0 < val_size < len(x):
        raise ConfigError(f"dataset.val_size must be in 1..{len(x) - 1}, got {val_size}")
    yt = torch.from_numpy(y)
    train_x, train_y, val_x, val_y = _to_tensor(x[:-val_size]), yt[:-val_size], _to_tensor(x[-val_size:]), yt[-val_size:]
    if split == "val":
        corrupted = _corrupt_all(x[-val_size:], names, severity, int(ds.get("corruption_seed", 0)) + 1000,
                                 cache, "cifar10-val")
        domains = [(n, _to_tensor(corrupted[n]), val_y) for n in names]
        return AdaptData("cifar10-c", train_x, train_y, val_x, val_y, val_x, val_y, domains, severity, split)
    tx, ty = load_cifar10(ds["source_root"], train=False)  # only the test stream needs the clean test set
    if not ds.get("root"):
        raise ConfigError("dataset.root (or --data-root): the CIFAR-10-C folder with <corruption>.npy and labels.npy")
    domains = []
    for n in names:
        cx, cy = load_cifar10c(ds["root"], n, severity)
        domains.append((n, _to_tensor(cx), torch.from_numpy(cy)))
    return AdaptData("cifar10-c", train_x, train_y, val_x, val_y, _to_tensor(tx), torch.from_numpy(ty),
                     domains, severity, split)


def load_adapt_data(ds: dict, split: str = "test", cache: str | Path | None = None) -> AdaptData:
    """The source set and the corrupted stream described by a recipe's ``dataset`` section."""
    from neuroadapt.data.corruptions import CORRUPTION_NAMES, check_severity

    name = ds.get("name")
    if name not in DATASETS:
        raise ConfigError(f"dataset.name must be one of {DATASETS}, got {name!r}")
    if split not in ("test", "val"):
        raise ConfigError(f"split must be 'test' or 'val', got {split!r}")
    severity = check_severity(ds.get("severity", 5), "dataset.severity")
    names = ds.get("corruptions", "all")
    names = list(CORRUPTION_NAMES) if names == "all" else list(names)
    bad = [n for n in names if n not in CORRUPTION_NAMES]
    if bad or not names:
        raise ConfigError(f"dataset.corruptions: unknown {bad} (known: {', '.join(CORRUPTION_NAMES)})" if bad
                          else "dataset.corruptions is empty")
    fn = _digits_c if name == "digits-c" else _cifar10_c
    return fn(ds, severity, names, split, cache)
