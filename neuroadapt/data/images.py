"""Image data sets from local files: CIFAR-10 (torchvision), CIFAR-10-C (``.npy``) and sets in
CIFAR-10-C's format made here (e.g. "digits-C").

Nothing is downloaded unless you ask: :func:`cifar10` passes ``download`` through to
torchvision and defaults to ``False``.

CIFAR-10-C layout (Hendrycks & Dietterich, Zenodo record 2535967), one folder::

    <root>/gaussian_noise.npy   uint8 (5 n, H, W, 3): severity 1 in rows [0, n), 2 in [n, 2n), ...
    <root>/shot_noise.npy       ... one file per corruption
    <root>/labels.npy           integer (5 n,): the labels, repeated once per severity

The released files have ``n = 10000`` and 32x32x3 images. Sets written by
:func:`make_corrupted_set` use the same layout (grey images may be ``(5 n, H, W)``) and add
``<root>/info.json`` describing them; when it lists fewer than five severities the files stack
only those, in increasing order.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from neuroadapt.data.corruptions import (
    CORRUPTION_NAMES,
    SEVERITIES,
    _check_image_shape,
    _check_pixels,
    check_severity,
    corrupt,
    get_corruption,
)
from neuroadapt._io import atomic_path
from neuroadapt.errors import DataError, InvalidInputError, ShapeError, UnsupportedOptionError

__all__ = [
    "CIFAR10_FILES",
    "EXTRA_CORRUPTIONS",
    "cifar10",
    "load_cifar10",
    "load_cifar10c",
    "cifar10c_corruptions",
    "make_corrupted_set",
]

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch", "batches.meta")
#: The four extra ("validation") corruptions shipped with CIFAR-10-C; loadable, not generated here.
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
INFO_FILE = "info.json"
LABELS_FILE = "labels.npy"
_CIFAR10C_HINT = (
    "download CIFAR-10-C.tar (Zenodo record 2535967) and extract it there, so that the folder "
    "holds <corruption>.npy files and labels.npy, or write a set in the same format with "
    "neuroadapt.data.images.make_corrupted_set"
)


# ----------------------------------------------------------------------------- CIFAR-10


def _cifar10_root(root) -> Path:
    if root is None:
        raise DataError(
            "CIFAR-10 needs a local folder (--data-root): the folder that holds (or will hold) "
            f"{CIFAR10_FOLDER}/"
        )
    path = Path(os.fspath(root)).expanduser()
    return path.parent if path.name == CIFAR10_FOLDER else path


def cifar10(root, train: bool = True, download: bool = False, transform=None, target_transform=None):
    """torchvision's ``CIFAR10`` read from ``root`` (the folder holding ``cifar-10-batches-py/``).

    ``root`` may also be the ``cifar-10-batches-py`` folder itself. With ``download=False``
    (the default) nothing is fetched; missing or corrupted files raise :class:`DataError`
    naming the folder and the files it needs. ``download=True`` is passed to torchvision.
    """
    base = _cifar10_root(root)
    folder = base / CIFAR10_FOLDER
    if not download:
        missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
        if missing:
            tarball = base / "cifar-10-python.tar.gz"
            extra = (f"; {tarball} is there: extract it with `tar xzf {tarball} -C {base}`"
                     if tarball.is_file() else "")
            raise DataError(
                f"CIFAR-10 not found in {folder}: missing {', '.join(missing)}. Put the python "
                f"version of CIFAR-10 there (cifar-10-python.tar.gz from "
                f"https://www.cs.toronto.edu/~kriz/cifar.html, extracted into {base}), or pass "
                f"download=True on a machine with internet access{extra}"
            )
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as exc:  # pragma: no cover - torchvision is a dependency
        raise DataError(f"reading CIFAR-10 needs torchvision ({exc}); pip install torchvision") from None
    try:
        return CIFAR10(str(base), train=train, download=download, transform=transform,
                       target_transform=target_transform)
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        raise DataError(
            f"CIFAR-10 in {folder} is incomplete or corrupted (torchvision: {exc}); replace the "
            f"files {', '.join(CIFAR10_FILES)} with a fresh extraction of cifar-10-python.tar.gz"
        ) from None


def load_cifar10(root, train: bool = True, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 as arrays: images uint8 ``(N, 32, 32, 3)`` and labels int64 ``(N,)``."""
    ds = cifar10(root, train=train, download=download)
    return np.ascontiguousarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)


# ----------------------------------------------------------------------------- CIFAR-10-C


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # bad magic, truncated file, pickled objects, ...
        raise DataError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc}); "
                        f"replace it with the released file or regenerate the set") from None


def _severities_in(root: Path) -> tuple[int, ...]:
    info_path = root / INFO_FILE
    if not info_path.is_file():
        return SEVERITIES
    try:
        sev = json.loads(info_path.read_text())["severities"]
        sev = tuple(check_severity(s, str(info_path)) for s in sev)
    except (ValueError, KeyError, TypeError, InvalidInputError) as exc:
        raise DataError(f"{info_path}: malformed ({exc}); it must hold a 'severities' list of "
                        f"integers 1..5, or delete it to read the folder as released CIFAR-10-C") from None
    if not sev or list(sev) != sorted(set(sev)):
        raise DataError(f"{info_path}: 'severities' must be increasing and non-empty, got {list(sev)}")
    return sev


def cifar10c_corruptions(root) -> list[str]:
    """Names of the corruptions whose ``.npy`` files are present in ``root``."""
    root = Path(os.fspath(root)).expanduser()
    return [n for n in CORRUPTION_NAMES + EXTRA_CORRUPTIONS if (root / f"{n}.npy").is_file()]


def load_cifar10c(root, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` images of ``corruption`` at ``severity`` and their labels.

    Returns images uint8 ``(n, H, W, C)`` (or ``(n, H, W)`` for a grey set) and labels int64
    ``(n,)``. ``n`` is the file's first dimension divided by the number of severities it holds
    (5 for the released files: 10000). Missing or malformed files raise :class:`DataError`; an
    unknown corruption :class:`UnsupportedOptionError`; a severity outside 1..5
    :class:`InvalidInputError`.
    """
    if corruption not in CORRUPTION_NAMES + EXTRA_CORRUPTIONS:
        raise UnsupportedOptionError(
            f"unknown CIFAR-10-C corruption {corruption!r}; known: "
            f"{', '.join(CORRUPTION_NAMES + EXTRA_CORRUPTIONS)}"
        )
    severity = check_severity(severity, f"load_cifar10c({corruption!r})")
    root = Path(os.fspath(root)).expanduser()
    if not root.is_dir():
        raise DataError(f"CIFAR-10-C folder not found: {root}; {_CIFAR10C_HINT}")
    path = root / f"{corruption}.npy"
    if not path.is_file():
        present = cifar10c_corruptions(root)
        raise DataError(
            f"{path} not found (this folder holds: {', '.join(present) or 'no corruption files'}); "
            f"{_CIFAR10C_HINT}"
        )
    labels_path = root / LABELS_FILE
    if not labels_path.is_file():
        raise DataError(f"{labels_path} not found; CIFAR-10-C folders hold labels.npy next to the "
                        f"corruption files; {_CIFAR10C_HINT}")
    sevs = _severities_in(root)
    if severity not in sevs:
        raise DataError(f"{root} holds severities {list(sevs)} only (see {root / INFO_FILE}), "
                        f"not {severity}; regenerate it with that severity")
    images = _load_npy(path)
    if images.dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8 as in the released CIFAR-10-C, got "
                        f"{images.dtype}; convert with np.save(path, arr.astype(np.uint8))")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise DataError(f"{path}: expected shape ({len(sevs)} n, H, W, 3) (or (.., H, W) / "
                        f"(.., H, W, 1) for grey), got {images.shape}")
    total = images.shape[0]
    if total == 0 or total % len(sevs):
        raise DataError(f"{path}: first dimension {total} is not a positive multiple of the "
                        f"{len(sevs)} severities the folder holds; the file is truncated or mixed")
    labels = _load_npy(labels_path)
    if labels.ndim != 1 or labels.shape[0] != total:
        raise DataError(f"{labels_path}: expected shape ({total},) to match {path.name}, got "
                        f"{labels.shape}; the two files come from different sets")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{labels_path}: labels must be integers, got dtype {labels.dtype}")
    n = total // len(sevs)
    k = sevs.index(severity)
    lab = np.array(labels[k * n:(k + 1) * n], dtype=np.int64)
    if lab.size and lab.min() < 0:
        raise DataError(f"{labels_path}: negative labels found (minimum {lab.min()})")
    return np.array(images[k * n:(k + 1) * n]), lab


# ----------------------------------------------------------------------------- making sets


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr, allow_pickle=False)


def make_corrupted_set(images, labels, out_dir, severities=SEVERITIES, corruptions=None,
                       seed: int = 0, overwrite: bool = False) -> dict:
    """Write a CIFAR-10-C-format folder of ``images`` corrupted here; returns its ``info.json``.

    ``images``: ``(N, H, W)`` or ``(N, H, W, C)``, uint8 or float in [0, 1]; ``labels``: ``(N,)``
    non-negative integers. For every corruption (default: all 15) writes
    ``<out_dir>/<corruption>.npy`` uint8 ``(S N, ...)`` stacking the severities in increasing
    order, plus ``labels.npy`` (the labels repeated S times) and ``info.json``.
    :func:`load_cifar10c` reads the folder back.

    Randomness: image ``i`` at severity ``s`` of the corruption with index ``j`` in
    ``CORRUPTION_NAMES`` uses ``SeedSequence(seed, spawn_key=(j, s, i))``, so the set is a
    function of (images, seed). Every argument is checked before anything is written; each
    file is written to a temporary name and renamed into place, so no partial file is left.
    An ``out_dir`` that already holds a set is refused unless ``overwrite=True``.
    """
    names = list(CORRUPTION_NAMES) if corruptions is None else (
        [corruptions] if isinstance(corruptions, str) else list(corruptions))
    if not names:
        raise InvalidInputError("make_corrupted_set: corruptions is empty; name at least one")
    for name in names:
        get_corruption(name)
    if len(set(names)) != len(names):
        raise InvalidInputError(f"make_corrupted_set: corruptions repeat: {names}")
    sevs = [severities] if isinstance(severities, int) else list(severities)
    sevs = [check_severity(s, "make_corrupted_set") for s in sevs]
    if not sevs or len(set(sevs)) != len(sevs):
        raise InvalidInputError(f"make_corrupted_set: severities must be distinct values in 1..5, got {sevs}")
    sevs = sorted(sevs)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"make_corrupted_set: seed must be a non-negative int, got {seed!r}")
    arr = np.asarray(images)
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ShapeError(f"make_corrupted_set: images must be a non-empty batch (N, H, W[, C]), got {arr.shape}")
    _check_image_shape(arr.shape, "make_corrupted_set", batched=True)
    _check_pixels(arr, "make_corrupted_set")
    lab = np.asarray(labels)
    if lab.shape != (arr.shape[0],):
        raise ShapeError(f"make_corrupted_set: labels must have shape ({arr.shape[0]},) to match "
                         f"images {arr.shape}, got {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer) or (lab.size and lab.min() < 0):
        raise InvalidInputError("make_corrupted_set: labels must be non-negative integers")

    out = Path(os.fspath(out_dir)).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"make_corrupted_set: {out} exists and is not a folder")
    ours = [out / f"{n}.npy" for n in names] + [out / LABELS_FILE, out / INFO_FILE]
    clash = [p.name for p in ours if p.exists()]
    if clash and not overwrite:
        raise DataError(f"make_corrupted_set: {out} already holds {', '.join(clash)}; choose an "
                        f"empty folder or pass overwrite=True to replace them")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".tmp-corrupted-", dir=out))
    try:
        n = arr.shape[0]
        for name in names:
            j = CORRUPTION_NAMES.index(name)
            stacked = np.empty((len(sevs) * n,) + arr.shape[1:], dtype=np.uint8)
            for k, s in enumerate(sevs):
                ss = np.random.SeedSequence(int(seed), spawn_key=(j, s))
                stacked[k * n:(k + 1) * n] = corrupt(arr, name, s, seed=ss)
            _atomic_save(stage / f"{name}.npy", stacked)
        lab_dtype = np.uint8 if (lab.size == 0 or lab.max() < 256) else np.int64
        _atomic_save(stage / LABELS_FILE, np.tile(lab.astype(lab_dtype), len(sevs)))
        info = {
            "format": "CIFAR-10-C (.npy per corruption, severity-major)",
            "made_by": "neuroadapt.data.images.make_corrupted_set",
            "parameters": "CIFAR-10-C (neuroadapt.data.corruptions.CIFAR10C_PARAMS)",
            "corruptions": names,
            "severities": sevs,
            "n_per_severity": int(n),
            "image_shape": list(arr.shape[1:]),
            "seed": int(seed),
        }
        (stage / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        # move into place: corruption files, then labels, then info.json last
        for name in names:
            os.replace(stage / f"{name}.npy", out / f"{name}.npy")
        os.replace(stage / LABELS_FILE, out / LABELS_FILE)
        os.replace(stage / INFO_FILE, out / INFO_FILE)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(stage, ignore_errors=True)
    info["path"] = str(out)
    return info
