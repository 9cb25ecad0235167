"""Data sets as spike trains, and the registry that maps a recipe's ``dataset.name`` to one.

A recipe names its data set (``dataset: {name: digits, ...}``); the engine looks the name up
here, checks the recipe's options against the class's ``OPTIONS`` and builds it. New data sets
(spoken digits in SHD format, CIFAR, ...) plug in with :func:`register_dataset`, without any
change to the engine. Imports are lazy: the registry holds ``"module:Class"`` strings, so
``import neuroadapt.data`` does not import torch or scikit-learn.

The interface a registered class provides (see :class:`neuroadapt.data.digits.DigitsSpikes`)::

    cls(root=None, **options)             # options: the keys of cls.OPTIONS
    cls.OPTIONS = {key: (types, default, "help text"), ...}
    .name: str, .task: "classification"
    .n_inputs: int, .n_classes: int, .n_steps: int
    .num_samples(split) -> int            # split in ("train", "test")
    .labels(split) -> LongTensor (N,)
    .batch(split, index, generator=None) -> (x, y)
        # index: LongTensor of sample indices; x: float32 (T, B, n_inputs), time-major;
        # y: int64 (B,). generator: the torch.Generator used by stochastic spike encodings,
        # so the caller controls (and can replay) every random draw.

Errors: a missing or malformed data file raises :class:`neuroadapt.errors.DataError`; NaN / inf
or out-of-range values raise :class:`neuroadapt.errors.InvalidInputError`.
"""
from __future__ import annotations

import importlib

from neuroadapt.errors import ConfigError

__all__ = ["register_dataset", "get_dataset_class", "dataset_names", "SPLITS",
           # file formats and images, imported on first use (see __getattr__)
           "write_shd", "read_shd", "SHDFile", "SHDDataset", "shd_collate", "bin_spikes", "bin_batch",
           "CORRUPTIONS", "CORRUPTION_NAMES", "CIFAR10C_PARAMS", "corrupt",
           "cifar10", "load_cifar10", "load_cifar10c", "make_corrupted_set",
           "dense_to_events", "events_to_dense", "to_tonic", "from_tonic", "read_aer", "write_aer",
           "read_events", "write_events", "convert_file"]

_LAZY = {
    **{k: "neuroadapt.data.shd" for k in ("write_shd", "read_shd", "SHDFile", "SHDDataset", "shd_collate")},
    **{k: "neuroadapt.data.events" for k in ("bin_spikes", "bin_batch")},
    **{k: "neuroadapt.data.corruptions" for k in ("CORRUPTIONS", "CORRUPTION_NAMES", "CIFAR10C_PARAMS", "corrupt")},
    **{k: "neuroadapt.data.images" for k in ("cifar10", "load_cifar10", "load_cifar10c", "make_corrupted_set")},
    **{k: "neuroadapt.data.events" for k in ("dense_to_events", "events_to_dense")},
    **{k: "neuroadapt.data.tonic_events" for k in ("to_tonic", "from_tonic")},
    **{k: "neuroadapt.data.aer" for k in ("read_aer", "write_aer")},
    **{k: "neuroadapt.data.convert" for k in ("read_events", "write_events", "convert_file")},
}


def __getattr__(name):  # PEP 562: keep ``import neuroadapt.data`` light
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuroadapt.data' has no attribute {name!r}")

SPLITS = ("train", "test")

_REGISTRY: dict[str, str | type] = {
    "digits": "neuroadapt.data.digits:DigitsSpikes",
    "shd": "neuroadapt.data.shd_folder:SHDFolder",
    "spoken_digits": "neuroadapt.data.spoken_digits:SpokenDigits",
    "shd_adding": "neuroadapt.data.shd_adding:SHDAdding",
    "delayed_recall": "neuroadapt.data.astro_tasks:DelayedRecall",
    "char_lm": "neuroadapt.data.astro_tasks:CharLM",
}


def register_dataset(name: str, target) -> None:
    """Register a data set class under ``name``.

    ``target`` is the class itself or a lazy ``"package.module:ClassName"`` string.
    Registering an existing name replaces it (so a later issue can swap what a name means).
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"dataset name must be a non-empty string, got {name!r}")
    if not (isinstance(target, type) or (isinstance(target, str) and ":" in target)):
        raise ConfigError(f"dataset {name!r}: target must be a class or 'module:Class', got {target!r}")
    _REGISTRY[name] = target


def dataset_names() -> list[str]:
    """Names a recipe's ``dataset.name`` may take."""
    return sorted(_REGISTRY)


def get_dataset_class(name: str) -> type:
    """The class registered under ``name``; :class:`ConfigError` listing the known names otherwise."""
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}"
        )
    target = _REGISTRY[name]
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module_name), attr)
        _REGISTRY[name] = target
    return target
